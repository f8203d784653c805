//! Custom `targetRef` kinds (any resource with a `/scale` subresource, such
//! as an Argo Rollout): a background task reads their selectors through API
//! discovery and `/scale` ([`tailor_runtime::scale::ScaleTargets`], the
//! recommender's cache) and puts them in the [`Index`], so a pod whose
//! owner chain ends at such an object matches the VPA naming it. It runs
//! when a VPA changes and every [`DEFAULT_MAX_AGE_SECS`] — never on the
//! request path: a request reads only the index.

use crate::index::Index;
use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tailor_runtime::scale::{DEFAULT_MAX_AGE_SECS, ScaleTargets, Timestamp};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What one refresh found: targets whose selector is known, and the others
/// with why (`namespace/kind/name` → error).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Custom targets now in the index.
    pub known: usize,
    /// Custom targets that could not be read, and why.
    pub failed: BTreeMap<String, String>,
}

/// Reads the `/scale` of the custom targets the index's VPAs name (those
/// missing from `scales` or older than its maximum age) and replaces the
/// index's custom controllers with what is known.
pub async fn refresh(
    client: &kube::Client,
    index: &RwLock<Index>,
    scales: &ScaleTargets,
    now: Timestamp,
) -> Refreshed {
    let targets = read(index).custom_targets();
    scales
        .refresh(client, &targets, now, DEFAULT_MAX_AGE_SECS)
        .await;
    let mut out = Refreshed::default();
    let mut known = Vec::new();
    for (namespace, key) in &targets {
        let target = CrossVersionObjectReference {
            api_version: key.api_version.clone(),
            kind: key.kind.clone(),
            name: key.name.clone(),
        };
        match scales.selector(namespace, &target) {
            Ok(selector) => known.push((
                namespace.clone(),
                key.kind.clone(),
                key.name.clone(),
                selector,
            )),
            Err(e) => {
                out.failed.insert(
                    format!("{namespace}/{}/{}", key.kind, key.name),
                    e.to_string(),
                );
            }
        }
    }
    out.known = known.len();
    match index.write() {
        Ok(mut guard) => guard.set_scale_targets(known),
        Err(poisoned) => poisoned.into_inner().set_scale_targets(known),
    }
    out
}

fn read(index: &RwLock<Index>) -> std::sync::RwLockReadGuard<'_, Index> {
    index
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_secs() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Refreshes at start, whenever `vpa_changed` is notified (the VPA watch
/// does it on every event) and every [`DEFAULT_MAX_AGE_SECS`], until
/// `shutdown`. A target's failure is logged when it starts or changes, not
/// on every refresh.
pub async fn keep_refreshed(
    client: kube::Client,
    index: Arc<RwLock<Index>>,
    vpa_changed: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let scales = ScaleTargets::default();
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    let period = Duration::from_secs(DEFAULT_MAX_AGE_SECS.unsigned_abs());
    loop {
        let refreshed = refresh(&client, &index, &scales, now_secs()).await;
        for (target, error) in &refreshed.failed {
            if failing.get(target) != Some(error) {
                tracing::warn!(%target, %error, "custom targetRef kind: /scale not read; its pods are admitted unchanged");
            }
        }
        failing = refreshed.failed;
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = vpa_changed.notified() => {}
            () = tokio::time::sleep(period) => {}
        }
    }
}
