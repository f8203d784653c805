//! Watches that keep the [`Index`] current: VPAs, the well-known
//! controllers and LimitRanges, cluster-wide. A relist replaces a kind's
//! entries atomically; a malformed object is skipped by the watcher's
//! decoder error path (logged) and the watch goes on with backoff.

use crate::index::Index;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{LimitRange, ReplicationController};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource, ResourceExt as _};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use tailor_api::VerticalPodAutoscaler;
use tailor_api::target::TargetObject;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// An object kind the index caches.
pub trait Cached:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    /// The kind's name, for logs and for clearing.
    const KIND: &'static str;
    /// True when a change must wake the `/scale` refresher ([`crate::scale`]).
    const WAKES_SCALE_REFRESH: bool = false;
    /// Adds or replaces the object.
    fn apply(&self, index: &mut Index);
    /// Removes the object.
    fn delete(&self, index: &mut Index);
    /// Forgets every object of this kind.
    fn clear(index: &mut Index);
}

impl Cached for VerticalPodAutoscaler {
    const KIND: &'static str = "VerticalPodAutoscaler";
    const WAKES_SCALE_REFRESH: bool = true;
    fn apply(&self, index: &mut Index) {
        index.apply_vpa(self.clone());
    }
    fn delete(&self, index: &mut Index) {
        index.delete_vpa(&self.namespace().unwrap_or_default(), &self.name_any());
    }
    fn clear(index: &mut Index) {
        index.clear_vpas();
    }
}

impl Cached for LimitRange {
    const KIND: &'static str = "LimitRange";
    fn apply(&self, index: &mut Index) {
        index.apply_limit_range(self);
    }
    fn delete(&self, index: &mut Index) {
        index.delete_limit_range(&self.namespace().unwrap_or_default(), &self.name_any());
    }
    fn clear(index: &mut Index) {
        index.clear_limit_ranges();
    }
}

macro_rules! cached_controller {
    ($($ty:ident),+) => {$(
        impl Cached for $ty {
            const KIND: &'static str = stringify!($ty);
            fn apply(&self, index: &mut Index) {
                index.apply_controller(TargetObject::$ty(self));
            }
            fn delete(&self, index: &mut Index) {
                index.delete_controller(&self.namespace().unwrap_or_default(), Self::KIND, &self.name_any());
            }
            fn clear(index: &mut Index) {
                index.clear_controllers(Self::KIND);
            }
        }
    )+};
}

cached_controller!(
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    ReplicationController
);

/// How many kinds [`spawn_all`] watches.
pub const WATCHED_KINDS: usize = 9;

/// Applies one watch event to the index; `buffer` holds a relist in progress.
/// Returns true when a relist completed.
pub fn apply_event<K: Cached>(index: &RwLock<Index>, buffer: &mut Vec<K>, event: Event<K>) -> bool {
    let write = |f: &mut dyn FnMut(&mut Index)| match index.write() {
        Ok(mut guard) => f(&mut guard),
        // A writer panicked mid-update; keep serving what is there.
        Err(poisoned) => f(&mut poisoned.into_inner()),
    };
    match event {
        Event::Init => {
            buffer.clear();
            false
        }
        Event::InitApply(obj) => {
            buffer.push(obj);
            false
        }
        Event::InitDone => {
            let objects = std::mem::take(buffer);
            write(&mut |ix| {
                K::clear(ix);
                for obj in &objects {
                    obj.apply(ix);
                }
            });
            tracing::debug!(kind = K::KIND, count = objects.len(), "cache relisted");
            true
        }
        Event::Apply(obj) => {
            write(&mut |ix| obj.apply(ix));
            false
        }
        Event::Delete(obj) => {
            write(&mut |ix| obj.delete(ix));
            false
        }
    }
}

/// Watches one kind until `shutdown`; `synced` is called after the first
/// complete list, `changed` notified after each event of a kind that
/// [wakes the `/scale` refresher](Cached::WAKES_SCALE_REFRESH).
async fn run_watch<K: Cached>(
    client: kube::Client,
    index: Arc<RwLock<Index>>,
    synced: Arc<dyn Fn() + Send + Sync>,
    changed: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let api: Api<K> = Api::all(client);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut buffer = Vec::new();
    let mut first = true;
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(event)) => {
                let relisted = apply_event(&index, &mut buffer, event);
                if relisted && first {
                    first = false;
                    synced();
                }
                if K::WAKES_SCALE_REFRESH {
                    changed.notify_one();
                }
            }
            Some(Err(e)) => tracing::warn!(kind = K::KIND, error = %e, "watch failed; retrying"),
            None => return,
        }
    }
}

/// Starts every watch; `ready` runs once all kinds have been listed;
/// `vpa_changed` is notified on every VPA event.
pub fn spawn_all(
    client: &kube::Client,
    index: &Arc<RwLock<Index>>,
    ready: impl Fn() + Send + Sync + 'static,
    vpa_changed: &Arc<Notify>,
    shutdown: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let count = Arc::new(AtomicUsize::new(0));
    let synced: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        if count.fetch_add(1, Ordering::SeqCst) + 1 == WATCHED_KINDS {
            ready();
        }
    });
    macro_rules! spawn {
        ($($ty:ty),+) => {
            vec![$(tokio::spawn(run_watch::<$ty>(
                client.clone(),
                Arc::clone(index),
                Arc::clone(&synced),
                Arc::clone(vpa_changed),
                shutdown.clone(),
            ))),+]
        };
    }
    spawn!(
        VerticalPodAutoscaler,
        LimitRange,
        Deployment,
        StatefulSet,
        DaemonSet,
        ReplicaSet,
        Job,
        CronJob,
        ReplicationController
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::RecommenderFilter;
    use crate::index::tests::{deployment, from_json, replica_set, vpa};
    use k8s_openapi::api::core::v1::Pod;

    fn web_pod() -> Pod {
        from_json(serde_json::json!({
            "metadata": {"namespace": "shop", "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "r", "controller": true}]},
            "spec": {"containers": [{"name": "app"}]}
        }))
    }

    fn matched(index: &RwLock<Index>) -> Option<String> {
        let guard = index.read().unwrap();
        guard
            .match_vpa(&web_pod())
            .ok()
            .flatten()
            .map(|v| v.name().to_owned())
    }

    #[test]
    fn relist_replaces_a_kind_and_events_update_it() {
        let index = RwLock::new(Index::new(RecommenderFilter::Any));
        let mut deployments = Vec::new();
        let mut sets = Vec::new();
        let mut vpas = Vec::new();
        let d = deployment("web", "web", serde_json::json!({}));
        assert!(!apply_event(&index, &mut deployments, Event::Init));
        assert!(!apply_event(
            &index,
            &mut deployments,
            Event::InitApply(d.clone())
        ));
        assert!(apply_event::<Deployment>(
            &index,
            &mut deployments,
            Event::InitDone
        ));
        apply_event(
            &index,
            &mut sets,
            Event::Apply(replica_set("web-1", "web", "web")),
        );
        let v = vpa("web-vpa", "Deployment", "web", serde_json::json!({}));
        apply_event(&index, &mut vpas, Event::Apply(v.clone()));
        assert_eq!(matched(&index).as_deref(), Some("web-vpa"));

        // Buffered objects are invisible until the relist completes, and a
        // relist drops what it no longer lists.
        apply_event::<VerticalPodAutoscaler>(&index, &mut vpas, Event::Init);
        assert_eq!(matched(&index).as_deref(), Some("web-vpa"));
        apply_event::<VerticalPodAutoscaler>(&index, &mut vpas, Event::InitDone);
        assert_eq!(matched(&index), None);

        apply_event(&index, &mut vpas, Event::Apply(v.clone()));
        assert_eq!(matched(&index).as_deref(), Some("web-vpa"));
        apply_event(&index, &mut vpas, Event::Delete(v));
        assert_eq!(matched(&index), None);
    }
}
