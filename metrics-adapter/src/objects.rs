//! The objects a wildcard request's `labelSelector` picks, from a metadata
//! watch cache. Used only when the adapter has Kubernetes API access.
//!
//! One reflector per resource, cluster-wide, started by the first request
//! that needs that resource and kept for the life of the process (the HPA
//! asks again every 15 s). It lists and watches metadata only
//! (`PartialObjectMetadata`, as kube-runtime's watcher sends it: paged
//! list, then `watch` from the list's `resourceVersion` with bookmarks) and
//! keeps each object's namespace, name and labels — nothing else — so
//! memory follows the number of objects, not the size of their metadata.
//!
//! A request waits for the first list to complete at most
//! [`CacheOptions::sync_wait`], then gets a 503 `Status` saying the cache is
//! still syncing: never a hang, and never a LIST per request. A failed first
//! list answers at once with its reason (403 naming the permission to grant
//! when RBAC forbids it). Once synced, a broken watch keeps serving the last
//! known objects while kube-runtime re-watches (or re-lists after `410 Gone`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tailor_api::selector::Selector;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::naming::{GroupResource, KnownResources, ResourceInfo};

/// Why the objects a selector picks are not known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// Neither the built-in resources nor API discovery know the resource.
    #[error(
        "cannot find the objects for labelSelector: {0} is not a resource the Kubernetes API serves (API discovery does not list it)"
    )]
    Unknown(GroupResource),
    /// RBAC does not let the adapter list and watch the resource.
    #[error(
        "cannot find the objects for labelSelector: the adapter's service account may not list and watch {resource}; \
         grant it a ClusterRole with apiGroups: [{group:?}], resources: [{plural}], verbs: [list, watch] \
         (see docs/metrics-adapter.md, \"labelSelector on other resources\"). The API server said: {message}"
    )]
    Forbidden {
        /// The resource.
        resource: GroupResource,
        /// Its API group (quoted in the message; `""` is the core group).
        group: String,
        /// Its plural name.
        plural: String,
        /// The API server's message.
        message: String,
    },
    /// The first list has not completed yet.
    #[error(
        "the object cache for {resource} is still syncing (waited {waited_ms} ms for the first list); try again shortly"
    )]
    Syncing {
        /// The resource.
        resource: GroupResource,
        /// How long the request waited.
        waited_ms: u128,
    },
    /// The first list failed for another reason.
    #[error("cannot list {resource} from the Kubernetes API: {message}")]
    Api {
        /// The resource.
        resource: GroupResource,
        /// The error.
        message: String,
    },
}

impl ObjectError {
    /// The HTTP status for this error.
    #[must_use]
    pub fn status_code(&self) -> u16 {
        match self {
            ObjectError::Unknown(_) => 404,
            ObjectError::Forbidden { .. } => 403,
            ObjectError::Syncing { .. } | ObjectError::Api { .. } => 503,
        }
    }
}

/// One cached object: what selection needs, nothing more.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactObject {
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

impl CompactObject {
    /// Keeps namespace, name and labels of a metadata-only object; drops the
    /// rest (annotations, managed fields, owner references, …).
    #[must_use]
    pub fn from_meta(meta: PartialObjectMeta<DynamicObject>) -> Self {
        let m = meta.metadata;
        CompactObject {
            namespace: m.namespace.unwrap_or_default(),
            name: m.name.unwrap_or_default(),
            labels: m.labels.unwrap_or_default(),
        }
    }
}

type Namespaces = HashMap<String, HashMap<String, BTreeMap<String, String>>>;

/// The objects of one resource, by namespace then name, fed by watcher
/// events. Pure: no I/O.
#[derive(Debug, Default)]
pub struct ObjectStore {
    objects: Namespaces,
    /// Objects of a list in progress; swapped in whole at its end, so a
    /// re-list never shows a half-empty store.
    pending: Option<Namespaces>,
    synced: bool,
    len: usize,
}

fn insert(map: &mut Namespaces, o: CompactObject) {
    map.entry(o.namespace).or_default().insert(o.name, o.labels);
}

impl ObjectStore {
    /// Applies one watcher event.
    pub fn apply(&mut self, event: watcher::Event<CompactObject>) {
        match event {
            watcher::Event::Init => self.pending = Some(Namespaces::new()),
            watcher::Event::InitApply(o) => insert(self.pending.get_or_insert_default(), o),
            watcher::Event::InitDone => {
                self.objects = self.pending.take().unwrap_or_default();
                self.synced = true;
                self.recount();
            }
            watcher::Event::Apply(o) => {
                insert(&mut self.objects, o);
                self.recount();
            }
            watcher::Event::Delete(o) => {
                if let Some(names) = self.objects.get_mut(&o.namespace) {
                    names.remove(&o.name);
                    if names.is_empty() {
                        self.objects.remove(&o.namespace);
                    }
                }
                self.recount();
            }
        }
    }

    fn recount(&mut self) {
        self.len = self.objects.values().map(HashMap::len).sum();
    }

    /// True once a complete list has been applied.
    #[must_use]
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Objects held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no object is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Names of the objects `selector` picks, sorted: in `namespace`, or in
    /// every namespace when `None` (cluster-scoped objects live under `""`).
    #[must_use]
    pub fn select(&self, namespace: Option<&str>, selector: &Selector) -> Vec<String> {
        let mut names: Vec<String> = match namespace {
            Some(ns) => self
                .objects
                .get(ns)
                .into_iter()
                .flat_map(|names| names.iter())
                .filter(|(_, labels)| selector.matches(labels))
                .map(|(name, _)| name.clone())
                .collect(),
            None => self
                .objects
                .values()
                .flat_map(|names| names.iter())
                .filter(|(_, labels)| selector.matches(labels))
                .map(|(name, _)| name.clone())
                .collect(),
        };
        names.sort();
        names
    }
}

/// A resource label set.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// `pods`, `deployments.apps`.
    pub resource: String,
}

/// The object cache's self-metrics.
#[derive(Clone, Debug, Default)]
pub struct ObjectMetrics {
    /// Objects cached per resource.
    pub objects: Family<ResourceLabels, Gauge>,
    /// Watch (or list) failures per resource; each restarts the watch.
    pub restarts: Family<ResourceLabels, Counter>,
}

impl ObjectMetrics {
    /// Creates the metrics and registers them (prefixed by the registry).
    pub fn register(registry: &mut prometheus_client::registry::Registry) -> Self {
        let m = ObjectMetrics::default();
        registry.register(
            "objects_cached",
            "Objects held by the labelSelector metadata cache, per resource",
            m.objects.clone(),
        );
        registry.register(
            "object_watch_restarts",
            "Failed lists or watches of the labelSelector metadata cache, per resource (each is retried with backoff)",
            m.restarts.clone(),
        );
        m
    }
}

/// Object cache knobs.
#[derive(Clone, Copy, Debug)]
pub struct CacheOptions {
    /// How long a request waits for a resource's first list before a 503
    /// (zero: not at all).
    pub sync_wait: Duration,
    /// First delay after a failed list or watch; doubled up to `max_backoff`.
    pub backoff: Duration,
    /// Longest delay between retries.
    pub max_backoff: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            sync_wait: Duration::from_secs(5),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Where a reflector is before it first syncs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Syncing,
    Synced,
    Failed(ObjectError),
}

#[derive(Debug)]
struct Reflector {
    store: RwLock<ObjectStore>,
    phase: watch::Sender<Phase>,
}

/// The metadata watch cache: one reflector per resource. Cheap to clone.
#[derive(Clone)]
pub struct ObjectCache {
    client: kube::Client,
    resources: KnownResources,
    options: CacheOptions,
    metrics: ObjectMetrics,
    shutdown: CancellationToken,
    reflectors: Arc<Mutex<HashMap<GroupResource, Arc<Reflector>>>>,
}

impl std::fmt::Debug for ObjectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectCache").finish_non_exhaustive()
    }
}

impl ObjectCache {
    /// A cache listing with `client`; `resources` resolves resource names
    /// (built-in, or from API discovery); reflectors stop on `shutdown`.
    #[must_use]
    pub fn new(
        client: kube::Client,
        resources: KnownResources,
        options: CacheOptions,
        metrics: ObjectMetrics,
        shutdown: CancellationToken,
    ) -> Self {
        ObjectCache {
            client,
            resources,
            options,
            metrics,
            shutdown,
            reflectors: Arc::default(),
        }
    }

    /// Names of the `resource` objects in `namespace` (every namespace when
    /// `None`; ignored for cluster-scoped resources) that `selector` picks,
    /// sorted.
    ///
    /// # Errors
    /// An unknown resource, a cache still syncing after
    /// [`CacheOptions::sync_wait`], or a first list that failed.
    pub async fn names(
        &self,
        resource: &GroupResource,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<String>, ObjectError> {
        let info = self
            .resources
            .current()
            .find(&resource.group, &resource.resource)
            .cloned()
            .ok_or_else(|| ObjectError::Unknown(resource.clone()))?;
        let reflector = self.reflector(&info);
        let mut phase = reflector.phase.subscribe();
        let state = if self.options.sync_wait.is_zero() {
            phase.borrow().clone()
        } else {
            let waited = tokio::time::timeout(
                self.options.sync_wait,
                phase.wait_for(|p| *p != Phase::Syncing),
            )
            .await;
            match waited {
                Ok(Ok(p)) => p.clone(),
                // The reflector stopped (shutdown) or the wait ran out.
                Ok(Err(_)) | Err(_) => Phase::Syncing,
            }
        };
        match state {
            Phase::Synced => {}
            Phase::Failed(e) => return Err(e),
            Phase::Syncing => {
                return Err(ObjectError::Syncing {
                    resource: info.group_resource(),
                    waited_ms: self.options.sync_wait.as_millis(),
                });
            }
        }
        // Cluster-scoped objects are stored under "" whatever the request says.
        let scope = if info.namespaced { namespace } else { Some("") };
        let store = reflector
            .store
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(store.select(scope, selector))
    }

    /// The reflector of a resource, started on first use.
    fn reflector(&self, info: &ResourceInfo) -> Arc<Reflector> {
        let gr = info.group_resource();
        let mut reflectors = self
            .reflectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = reflectors.get(&gr) {
            return r.clone();
        }
        let reflector = Arc::new(Reflector {
            store: RwLock::new(ObjectStore::default()),
            phase: watch::Sender::new(Phase::Syncing),
        });
        reflectors.insert(gr, reflector.clone());
        tokio::spawn(run_reflector(
            self.client.clone(),
            info.clone(),
            reflector.clone(),
            self.options,
            self.metrics.clone(),
            self.shutdown.clone(),
        ));
        reflector
    }
}

fn compact(
    event: watcher::Event<PartialObjectMeta<DynamicObject>>,
) -> watcher::Event<CompactObject> {
    use watcher::Event;
    match event {
        Event::Init => Event::Init,
        Event::InitDone => Event::InitDone,
        Event::InitApply(o) => Event::InitApply(CompactObject::from_meta(o)),
        Event::Apply(o) => Event::Apply(CompactObject::from_meta(o)),
        Event::Delete(o) => Event::Delete(CompactObject::from_meta(o)),
    }
}

fn classify(info: &ResourceInfo, e: &watcher::Error) -> ObjectError {
    let api = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some((s.code, s.message.clone())),
        watcher::Error::WatchError(s) => Some((s.code, s.message.clone())),
        _ => None,
    };
    match api {
        Some((403, message)) => ObjectError::Forbidden {
            resource: info.group_resource(),
            group: info.group.clone(),
            plural: info.plural.clone(),
            message,
        },
        _ => ObjectError::Api {
            resource: info.group_resource(),
            message: e.to_string(),
        },
    }
}

async fn run_reflector(
    client: kube::Client,
    info: ResourceInfo,
    reflector: Arc<Reflector>,
    options: CacheOptions,
    metrics: ObjectMetrics,
    shutdown: CancellationToken,
) {
    let ar = ApiResource {
        group: info.group.clone(),
        version: info.version.clone(),
        api_version: info.api_version(),
        kind: info.kind.clone(),
        plural: info.plural.clone(),
    };
    // Cluster-wide: one watch serves every namespace's requests.
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, &ar);
    // kube-runtime's defaults: pages of 500 (bounded memory while listing),
    // bookmarks on, a 290 s watch timeout.
    let mut events = watcher::watcher(api, watcher::Config::default()).boxed();
    let labels = ResourceLabels {
        resource: info.group_resource().to_string(),
    };
    let mut delay = options.backoff;
    loop {
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = events.next() => next,
        };
        match next {
            Some(Ok(event)) => {
                delay = options.backoff;
                let done = matches!(event, watcher::Event::InitDone);
                let len = {
                    let mut store = reflector
                        .store
                        .write()
                        .unwrap_or_else(PoisonError::into_inner);
                    store.apply(compact(event));
                    store.len()
                };
                metrics
                    .objects
                    .get_or_create(&labels)
                    .set(i64::try_from(len).unwrap_or(i64::MAX));
                if done {
                    reflector.phase.send_replace(Phase::Synced);
                }
            }
            Some(Err(e)) => {
                metrics.restarts.get_or_create(&labels).inc();
                tracing::warn!(resource = %labels.resource, error = %e, retry_in = ?delay, "object metadata watch failed");
                // Before the first sync, requests learn why; after it, they
                // keep the last known objects.
                reflector.phase.send_if_modified(|p| {
                    if *p == Phase::Synced {
                        return false;
                    }
                    *p = Phase::Failed(classify(&info, &e));
                    true
                });
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(options.max_backoff);
            }
            // The watcher stream never ends on its own.
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use watcher::Event;

    fn obj(ns: &str, name: &str, labels: &[(&str, &str)]) -> CompactObject {
        CompactObject {
            namespace: ns.into(),
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    #[test]
    fn events_change_the_next_answer() {
        let mut s = ObjectStore::default();
        assert!(!s.is_synced());
        s.apply(Event::Init);
        s.apply(Event::InitApply(obj("shop", "web-0", &[("app", "web")])));
        s.apply(Event::InitApply(obj("shop", "db-0", &[("app", "db")])));
        s.apply(Event::InitApply(obj("other", "web-9", &[("app", "web")])));
        assert!(!s.is_synced(), "not synced before InitDone");
        assert!(s.select(Some("shop"), &sel("app=web")).is_empty());
        s.apply(Event::InitDone);
        assert!(s.is_synced());
        assert_eq!(s.len(), 3);
        assert_eq!(s.select(Some("shop"), &sel("app=web")), ["web-0"]);
        assert_eq!(s.select(None, &sel("app=web")), ["web-0", "web-9"]);
        s.apply(Event::Apply(obj("shop", "web-1", &[("app", "web")])));
        assert_eq!(s.select(Some("shop"), &sel("app=web")), ["web-0", "web-1"]);
        s.apply(Event::Apply(obj("shop", "db-0", &[("app", "web")])));
        assert_eq!(
            s.select(Some("shop"), &sel("app=web")),
            ["db-0", "web-0", "web-1"]
        );
        s.apply(Event::Delete(obj("shop", "web-0", &[])));
        assert_eq!(s.select(Some("shop"), &sel("app=web")), ["db-0", "web-1"]);
        assert_eq!(
            s.select(Some("shop"), &sel("app in (web,db),!tier")).len(),
            2
        );
        assert_eq!(s.select(Some("nowhere"), &sel("")), Vec::<String>::new());
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_relist_replaces_the_objects_whole_and_serves_the_old_ones_meanwhile() {
        let mut s = ObjectStore::default();
        s.apply(Event::Init);
        s.apply(Event::InitApply(obj("shop", "web-0", &[("app", "web")])));
        s.apply(Event::InitDone);
        // After a 410 Gone, kube-runtime lists again.
        s.apply(Event::Init);
        s.apply(Event::InitApply(obj("shop", "web-5", &[("app", "web")])));
        assert_eq!(s.select(Some("shop"), &sel("app=web")), ["web-0"]);
        s.apply(Event::InitDone);
        assert_eq!(s.select(Some("shop"), &sel("app=web")), ["web-5"]);
        assert_eq!(s.len(), 1);
        s.apply(Event::Delete(obj("shop", "web-5", &[])));
        assert!(s.is_empty());
    }

    #[test]
    fn cluster_scoped_objects_live_under_the_empty_namespace() {
        let mut s = ObjectStore::default();
        s.apply(Event::Init);
        s.apply(Event::InitApply(obj("", "node-a", &[("pool", "spot")])));
        s.apply(Event::InitApply(obj(
            "",
            "node-b",
            &[("pool", "on-demand")],
        )));
        s.apply(Event::InitDone);
        assert_eq!(s.select(Some(""), &sel("pool=spot")), ["node-a"]);
    }

    #[test]
    fn errors_have_their_status_codes() {
        let gr = GroupResource::pods();
        assert_eq!(ObjectError::Unknown(gr.clone()).status_code(), 404);
        let forbidden = ObjectError::Forbidden {
            resource: GroupResource::new("example.com", "widgets"),
            group: "example.com".into(),
            plural: "widgets".into(),
            message: "forbidden".into(),
        };
        assert_eq!(forbidden.status_code(), 403);
        let text = forbidden.to_string();
        assert!(
            text.contains(
                r#"apiGroups: ["example.com"], resources: [widgets], verbs: [list, watch]"#
            ),
            "{text}"
        );
        assert_eq!(
            ObjectError::Syncing {
                resource: gr,
                waited_ms: 5
            }
            .status_code(),
            503
        );
    }
}
