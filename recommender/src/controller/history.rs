//! The initial history load: `--history-length` of usage from Prometheus at
//! start, so the first loop already recommends. Containers of pods that no
//! longer run are mapped to a VPA through kube-state-metrics' owner series
//! (pod → ReplicaSet → Deployment, Job → CronJob), the same resolution as the
//! one-shot report; their requests (the CPU sample weight) come from
//! `kube_pod_container_resource_requests`.

use super::r#loop::VpaInfo;
use super::state::{ClusterState, SampleStats, VpaKey};
use crate::prom::{
    ContainerKey, ContainerRequests, History, Inventory, Owners, PromClient, PromError,
    SeriesConfig,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use tailor_core::recommender::Timestamp;
use tailor_core::resources::Resources;

/// The window to load and its resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryWindow {
    /// Seconds of history (`--history-length`).
    pub length_secs: i64,
    /// Seconds between samples (`--history-resolution`).
    pub resolution_secs: i64,
}

/// Usage and owners over `[end − length, end]`.
///
/// # Errors
/// Prometheus unreachable or answering with an error.
pub async fn load(
    prom: &PromClient,
    series: &SeriesConfig,
    window: HistoryWindow,
    end: Timestamp,
) -> Result<(History, Inventory), PromError> {
    let start = end - window.length_secs;
    let history = prom
        .load_history(series, None, start, end, window.resolution_secs)
        .await?;
    let inventory = prom
        .load_inventory(None, None, window.length_secs, end)
        .await?;
    Ok((history, inventory))
}

/// Why the initial load stopped.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// Prometheus failed.
    #[error(transparent)]
    Prometheus(#[from] PromError),
    /// The state rejected its options (validated before, so not expected).
    #[error("history: {0}")]
    State(#[from] tailor_core::recommender::RecommenderError),
}

/// The initial load, one `chunk_secs` slice at a time (oldest first), so
/// only one slice of samples is in memory at once: 8 days for 10,000
/// containers at once is about 60 MiB of samples, a day slice 8. Every
/// container goes through `resolve` (owners from kube-state-metrics), running
/// or not: the running ones are tracked by the first step after. A load
/// Prometheus interrupted resumes where it stopped: slices are contiguous
/// and disjoint, so no sample is read twice or skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLoad {
    /// The window.
    pub window: HistoryWindow,
    /// Its end (the time of the start-up).
    pub end: Timestamp,
    /// Start of the first slice not loaded yet.
    pub next: Timestamp,
    /// What the slices loaded so far gave.
    pub loaded: SampleStats,
}

impl HistoryLoad {
    /// Nothing loaded yet of `[end − length, end]`.
    #[must_use]
    pub fn new(window: HistoryWindow, end: Timestamp) -> Self {
        HistoryLoad {
            window,
            end,
            next: end - window.length_secs,
            loaded: SampleStats::default(),
        }
    }

    /// True once every slice is loaded.
    #[must_use]
    pub fn done(&self) -> bool {
        self.next > self.end
    }

    /// Loads the slices not loaded yet.
    ///
    /// # Errors
    /// Prometheus unreachable or answering with an error; the slices loaded
    /// before it stay loaded and are not read again.
    pub async fn resume(
        &mut self,
        prom: &PromClient,
        series: &SeriesConfig,
        chunk_secs: i64,
        vpas: &BTreeMap<VpaKey, Arc<VpaInfo>>,
        state: &mut ClusterState,
    ) -> Result<(), HistoryError> {
        if self.done() {
            return Ok(());
        }
        let inventory = prom
            .load_inventory(None, None, self.window.length_secs, self.end)
            .await?;
        let resolver = WorkloadResolver::new(inventory, vpas);
        // Slices are whole multiples of the resolution so no sample is read twice.
        let step = self.window.resolution_secs.max(1);
        let chunk = (chunk_secs.max(step) / step) * step;
        while !self.done() {
            let to = (self.next + chunk - step).min(self.end);
            let history = prom.load_history(series, None, self.next, to, step).await?;
            self.loaded += state.add_history(&history, |k| resolver.resolve(k), self.end)?;
            self.next = to + step;
        }
        Ok(())
    }
}

impl HistoryError {
    /// What went wrong, without the URL (it may hold credentials) or the
    /// query: for the `FetchingHistory` condition, which anyone who reads the
    /// VPA sees, and which must not change while the cause does not (every
    /// change is a status write). The log has the whole error.
    #[must_use]
    pub fn brief(&self) -> String {
        match self {
            HistoryError::Prometheus(PromError::Unreachable { .. }) => {
                "Prometheus is unreachable".to_owned()
            }
            HistoryError::Prometheus(PromError::Timeout { timeout, .. }) => {
                format!("a Prometheus query timed out after {timeout:?}")
            }
            HistoryError::Prometheus(PromError::Query {
                status, error_type, ..
            }) => format!("Prometheus rejected a query (HTTP {status}, {error_type})"),
            HistoryError::Prometheus(PromError::BadResponse { .. }) => {
                "Prometheus gave an answer that is not its HTTP API's JSON".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// Maps a container instance to the VPA whose `targetRef` is its workload
/// (first VPA in key order when several name it) and its last requests.
#[derive(Debug, Default)]
pub struct WorkloadResolver {
    owners: Owners,
    requests: BTreeMap<ContainerKey, ContainerRequests>,
    by_target: BTreeMap<(String, String, String), VpaKey>,
}

impl WorkloadResolver {
    /// A resolver over the inventory and the VPAs this recommender handles.
    #[must_use]
    pub fn new(inventory: Inventory, vpas: &BTreeMap<VpaKey, Arc<VpaInfo>>) -> Self {
        let mut by_target = BTreeMap::new();
        for (key, vpa) in vpas {
            let t = &vpa.spec.target_ref;
            by_target
                .entry((vpa.namespace.clone(), t.kind.clone(), t.name.clone()))
                .or_insert_with(|| key.clone());
        }
        WorkloadResolver {
            owners: inventory.owners,
            requests: inventory.last_requests,
            by_target,
        }
    }

    /// The container's VPA and requests, when its workload has a VPA.
    #[must_use]
    pub fn resolve(&self, key: &ContainerKey) -> Option<(VpaKey, Resources)> {
        let w = self.owners.resolve(&key.namespace, &key.pod);
        let vpa = self.by_target.get(&(w.namespace, w.kind, w.name))?;
        let r = self.requests.get(key).copied().unwrap_or_default();
        Some((
            vpa.clone(),
            Resources::new(r.cpu_millis.unwrap_or(0), r.memory_bytes.unwrap_or(0)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::Owner;

    fn vpa(name: &str, kind: &str, target: &str) -> Arc<VpaInfo> {
        Arc::new(VpaInfo::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target}}
            }))
            .unwrap(),
        ))
    }

    fn owner(kind: &str, name: &str) -> Vec<Owner> {
        vec![Owner {
            kind: kind.into(),
            name: name.into(),
            is_controller: true,
        }]
    }

    #[test]
    fn dead_pods_resolve_through_their_owners() {
        let mut inv = Inventory::default();
        inv.owners.pods.insert(
            ("shop".into(), "web-1-abc".into()),
            owner("ReplicaSet", "web-1"),
        );
        inv.owners
            .replica_sets
            .insert(("shop".into(), "web-1".into()), owner("Deployment", "web"));
        inv.owners
            .pods
            .insert(("shop".into(), "db-0".into()), owner("StatefulSet", "db"));
        let key = |pod: &str| ContainerKey {
            namespace: "shop".into(),
            pod: pod.into(),
            container: "app".into(),
        };
        inv.last_requests.insert(
            key("web-1-abc"),
            ContainerRequests {
                cpu_millis: Some(250),
                memory_bytes: None,
            },
        );
        let vpas: BTreeMap<VpaKey, _> = [
            (VpaKey::new("shop", "web"), vpa("web", "Deployment", "web")),
            (
                VpaKey::new("shop", "web2"),
                vpa("web2", "Deployment", "web"),
            ),
        ]
        .into();
        let r = WorkloadResolver::new(inv, &vpas);
        assert_eq!(
            r.resolve(&key("web-1-abc")),
            Some((VpaKey::new("shop", "web"), Resources::new(250, 0)))
        );
        assert_eq!(r.resolve(&key("db-0")), None);
        assert_eq!(r.resolve(&key("stray")), None);
    }

    #[test]
    fn the_condition_message_names_the_cause_without_url_or_query() {
        let url = "http://admin:s3cret@prometheus:9090".to_owned();
        let query = "sum(rate(container_cpu_usage_seconds_total[5m]))".to_owned();
        for (e, want) in [
            (
                PromError::Timeout {
                    url: url.clone(),
                    timeout: std::time::Duration::from_secs(60),
                    query: query.clone(),
                },
                "a Prometheus query timed out after 60s",
            ),
            (
                PromError::Query {
                    url: url.clone(),
                    status: 503,
                    error_type: "unavailable".into(),
                    error: "too many queries".into(),
                    query: query.clone(),
                },
                "Prometheus rejected a query (HTTP 503, unavailable)",
            ),
            (
                PromError::BadResponse {
                    url,
                    query,
                    reason: "EOF".into(),
                },
                "Prometheus gave an answer that is not its HTTP API's JSON",
            ),
        ] {
            assert_eq!(HistoryError::from(e).brief(), want);
        }
    }
}
