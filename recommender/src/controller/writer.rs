//! Writes: the VPA `/status` and the checkpoints by server-side apply with
//! the field manager [`FIELD_MANAGER`], and checkpoint garbage collection.
//! The bodies and the choice of what to write or delete are pure functions
//! (tested); the calls themselves are one line each.

use super::state::{AggregateKey, ClusterState, VpaKey};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use tailor_api::{
    VerticalPodAutoscaler, VerticalPodAutoscalerCheckpoint, VerticalPodAutoscalerStatus,
};
use tailor_core::recommender::{ContainerCheckpoint, Timestamp};

/// The server-side-apply field manager of every write.
pub const FIELD_MANAGER: &str = "tailor-recommender";

/// The apply body of a VPA's status: only the fields this controller owns.
#[must_use]
pub fn status_patch(vpa: &VpaKey, status: &VerticalPodAutoscalerStatus) -> Value {
    json!({
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": {"name": vpa.name, "namespace": vpa.namespace},
        "status": status,
    })
}

/// Upstream's checkpoint name: `<vpa>-<container>`.
#[must_use]
pub fn checkpoint_name(key: &AggregateKey) -> String {
    format!("{}-{}", key.vpa.name, key.container)
}

/// The apply body of a checkpoint (the CRD has no status subresource, so the
/// whole object is applied at once, as upstream writes it whole).
#[must_use]
pub fn checkpoint_object(key: &AggregateKey, checkpoint: &ContainerCheckpoint) -> Value {
    json!({
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscalerCheckpoint",
        "metadata": {"name": checkpoint_name(key), "namespace": key.vpa.namespace},
        "spec": {"vpaObjectName": key.vpa.name, "containerName": key.container},
        "status": checkpoint,
    })
}

/// A stored checkpoint read back: its key, and its state when it parses.
#[derive(Debug)]
pub struct StoredCheckpoint {
    /// Namespace and object name.
    pub object: (String, String),
    /// The (VPA, container) it belongs to; `None` when the spec lacks either.
    pub key: Option<AggregateKey>,
    /// The saved state, or why it does not parse.
    pub state: Result<ContainerCheckpoint, String>,
}

/// Reads a checkpoint object into core terms.
#[must_use]
pub fn read_checkpoint(cp: &VerticalPodAutoscalerCheckpoint) -> StoredCheckpoint {
    let namespace = cp.metadata.namespace.clone().unwrap_or_default();
    let name = cp.metadata.name.clone().unwrap_or_default();
    let key = match (&cp.spec.vpa_object_name, &cp.spec.container_name) {
        (Some(vpa), Some(container)) if !vpa.is_empty() && !container.is_empty() => {
            Some(AggregateKey {
                vpa: VpaKey::new(namespace.clone(), vpa.clone()),
                container: container.clone(),
            })
        }
        _ => None,
    };
    // Both types follow upstream's JSON, so JSON is the conversion.
    let state = serde_json::to_value(&cp.status)
        .and_then(serde_json::from_value::<ContainerCheckpoint>)
        .map_err(|e| format!("checkpoint {namespace}/{name}: status: {e}"));
    StoredCheckpoint {
        object: (namespace, name),
        key,
        state,
    }
}

/// Checkpoints to delete: those whose VPA no longer exists, those of a VPA
/// this recommender handles (`ours`) with no aggregate for the container, and
/// those naming no VPA or container. Checkpoints of other recommenders' VPAs
/// are left alone.
#[must_use]
pub fn checkpoints_to_delete(
    stored: &[StoredCheckpoint],
    existing_vpas: &BTreeSet<VpaKey>,
    ours: &BTreeSet<VpaKey>,
    aggregates: &BTreeSet<AggregateKey>,
) -> Vec<(String, String)> {
    stored
        .iter()
        .filter(|cp| match &cp.key {
            None => true,
            Some(key) => {
                !existing_vpas.contains(&key.vpa)
                    || (ours.contains(&key.vpa) && !aggregates.contains(key))
            }
        })
        .map(|cp| cp.object.clone())
        .collect()
}

/// Which checkpoints changed since they were last written. Keeps a hash of
/// each written checkpoint (not the checkpoint: 10,000 of them would double
/// the memory), and the time of the write so the stalest go first.
#[derive(Debug, Default)]
pub struct CheckpointMemo {
    written: HashMap<AggregateKey, (u64, Timestamp)>,
}

fn digest(checkpoint: &ContainerCheckpoint) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let unstamped = ContainerCheckpoint {
        last_update_time: None,
        ..checkpoint.clone()
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(&unstamped)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

impl CheckpointMemo {
    /// The aggregates whose checkpoint is due: every aggregate with samples
    /// whose checkpoint differs from the one last written, least recently
    /// written first. Only the keys: the caller builds each checkpoint just
    /// before writing it, so one is held at a time (10,000 built at once
    /// are ~15 MiB).
    #[must_use]
    pub fn due(&self, state: &ClusterState, now: Timestamp) -> Vec<AggregateKey> {
        let mut due: Vec<(Timestamp, &AggregateKey)> = state
            .aggregate_keys()
            .filter_map(|key| {
                let cp = state.checkpoint(key, now)?;
                if cp.total_samples_count == 0 && cp.memory_histogram.bucket_weights.is_empty() {
                    return None;
                }
                match self.written.get(key) {
                    Some(&(d, _)) if d == digest(&cp) => None,
                    Some(&(_, at)) => Some((at, key)),
                    None => Some((Timestamp::MIN, key)),
                }
            })
            .collect();
        due.sort_unstable();
        due.into_iter().map(|(_, k)| k.clone()).collect()
    }

    /// Records a successful write (or a checkpoint loaded at start).
    pub fn mark_written(&mut self, key: &AggregateKey, checkpoint: &ContainerCheckpoint) {
        let at = checkpoint.last_update_time.unwrap_or(0);
        self.written.insert(key.clone(), (digest(checkpoint), at));
    }

    /// Forgets a collected aggregate.
    pub fn forget(&mut self, key: &AggregateKey) {
        self.written.remove(key);
    }
}

/// Applies a VPA's status (PATCH …/status, apply, forced: the recommender owns
/// these fields even if another manager wrote them).
///
/// # Errors
/// The API call failed.
pub async fn apply_status(
    client: &kube::Client,
    vpa: &VpaKey,
    status: &VerticalPodAutoscalerStatus,
) -> Result<(), kube::Error> {
    let api: Api<VerticalPodAutoscaler> = Api::namespaced(client.clone(), &vpa.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&vpa.name, &params, &Patch::Apply(status_patch(vpa, status)))
        .await?;
    Ok(())
}

/// Applies one checkpoint (creates or replaces it).
///
/// # Errors
/// The API call failed.
pub async fn apply_checkpoint(
    client: &kube::Client,
    key: &AggregateKey,
    checkpoint: &ContainerCheckpoint,
) -> Result<(), kube::Error> {
    let api: Api<VerticalPodAutoscalerCheckpoint> =
        Api::namespaced(client.clone(), &key.vpa.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(
        &checkpoint_name(key),
        &params,
        &Patch::Apply(checkpoint_object(key, checkpoint)),
    )
    .await?;
    Ok(())
}

/// Every checkpoint in the cluster.
///
/// # Errors
/// The API call failed.
pub async fn list_checkpoints(client: &kube::Client) -> Result<Vec<StoredCheckpoint>, kube::Error> {
    let api: Api<VerticalPodAutoscalerCheckpoint> = Api::all(client.clone());
    let list = api.list(&ListParams::default()).await?;
    Ok(list.items.iter().map(read_checkpoint).collect())
}

/// Deletes one checkpoint; one already gone counts as deleted.
///
/// # Errors
/// The API call failed for another reason.
pub async fn delete_checkpoint(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    let api: Api<VerticalPodAutoscalerCheckpoint> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(vpa: &str, c: &str) -> AggregateKey {
        AggregateKey {
            vpa: VpaKey::new("shop", vpa),
            container: c.into(),
        }
    }

    fn stored(name: &str, vpa: Option<&str>, c: Option<&str>) -> StoredCheckpoint {
        StoredCheckpoint {
            object: ("shop".into(), name.into()),
            key: match (vpa, c) {
                (Some(v), Some(c)) => Some(key(v, c)),
                _ => None,
            },
            state: Ok(ContainerCheckpoint::default()),
        }
    }

    #[test]
    fn gc_picks_orphans_and_leaves_other_recommenders_alone() {
        let cps = [
            stored("web-app", Some("web"), Some("app")),
            stored("web-gone", Some("web"), Some("gone")),
            stored("deleted-app", Some("deleted"), Some("app")),
            stored("theirs-x", Some("theirs"), Some("x")),
            stored("broken", None, None),
        ];
        let existing: BTreeSet<VpaKey> =
            [VpaKey::new("shop", "web"), VpaKey::new("shop", "theirs")].into();
        let ours: BTreeSet<VpaKey> = [VpaKey::new("shop", "web")].into();
        let aggs: BTreeSet<AggregateKey> = [key("web", "app")].into();
        let names: Vec<String> = checkpoints_to_delete(&cps, &existing, &ours, &aggs)
            .into_iter()
            .map(|(_, n)| n)
            .collect();
        assert_eq!(names, ["web-gone", "deleted-app", "broken"]);
    }

    #[test]
    fn checkpoint_object_reads_back() {
        let cp = ContainerCheckpoint {
            last_update_time: Some(1_700_000_000),
            version: "v3".into(),
            total_samples_count: 7,
            first_sample_start: Some(1_699_990_000),
            last_sample_start: Some(1_699_999_000),
            ..ContainerCheckpoint::default()
        };
        let obj = checkpoint_object(&key("web", "app"), &cp);
        assert_eq!(obj["metadata"]["name"], "web-app");
        let parsed: VerticalPodAutoscalerCheckpoint = serde_json::from_value(obj).unwrap();
        let back = read_checkpoint(&parsed);
        assert_eq!(back.key, Some(key("web", "app")));
        assert_eq!(back.state.unwrap(), cp);
    }
}
