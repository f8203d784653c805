//! `tailor-recommender run`: flags, watch caches, leader election, the admin
//! server and the loop. Only the leader loads history and writes; a replica
//! waiting for the lease stays live (its heartbeat beats) but idle.

use super::history::{HistoryLoad, HistoryWindow};
use super::r#loop::{
    self, CostConfig, LookupError, OomEvent, PodInfo, Recommender, Snapshot, TargetLookup, VpaInfo,
};
use super::metrics::Metrics;
use super::oom;
use super::state::{AggregateKey, ClusterState, VpaKey};
use super::writer::{self, CheckpointMemo};
use crate::cli::{CostArgs, CostPolicy, OptionArgs, SeriesArgs, parse_duration_secs};
use crate::prom::{History, PromClient, SeriesConfig};
use anyhow::Context as _;
use clap::Args;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tailor_api::VerticalPodAutoscaler;
use tailor_api::selector::Selector;
use tailor_api::target::{TargetObject, WellKnownKind, target_selector};
use tailor_api::vpa::DEFAULT_RECOMMENDER;
use tailor_core::recommender::Timestamp;
use tailor_runtime::args::{AdminArgs, KubeClientArgs, LeaderElectionArgs, LogArgs};
use tailor_runtime::process::{self, Process};
use tailor_runtime::scale::{self, ScaleTargets};
use tailor_runtime::{Shutdown, admin, client, telemetry};
use tokio_util::sync::CancellationToken;

/// The component name: Lease name, Event reporter, metric prefix.
pub const COMPONENT: &str = "tailor-recommender";
/// The initial history load reads this much at a time (bounds its memory).
const HISTORY_CHUNK_SECS: i64 = 86_400;

/// `run` flags (upstream's names where upstream has the flag).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Admin server (probes and metrics).
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Kubernetes client.
    #[command(flatten)]
    pub kube: KubeClientArgs,
    /// Leader election.
    #[command(flatten)]
    pub leader: LeaderElectionArgs,
    /// Prometheus base URL (usage history and fresh samples).
    #[arg(long, env = "TAILOR_PROMETHEUS_URL")]
    pub prometheus_url: String,
    /// Per-query timeout.
    #[arg(long, default_value = "60s", value_parser = parse_duration_secs, env = "TAILOR_QUERY_TIMEOUT")]
    pub query_timeout: i64,
    /// Handle VPAs whose `spec.recommenders[0].name` is this (`default` also
    /// takes VPAs naming none, as upstream).
    #[arg(long, default_value = DEFAULT_RECOMMENDER, env = "TAILOR_RECOMMENDER_NAME")]
    pub recommender_name: String,
    /// Time between loops.
    #[arg(long, default_value = "1m", value_parser = parse_duration_secs, env = "TAILOR_RECOMMENDER_INTERVAL")]
    pub recommender_interval: i64,
    /// History loaded from Prometheus at start.
    #[arg(long, default_value = "8d", value_parser = parse_duration_secs, env = "TAILOR_HISTORY_LENGTH")]
    pub history_length: i64,
    /// Resolution of the history loaded at start.
    #[arg(long, default_value = "1h", value_parser = parse_duration_secs, env = "TAILOR_HISTORY_RESOLUTION")]
    pub history_resolution: i64,
    /// Time budget per loop for writing checkpoints.
    #[arg(long, default_value = "1m", value_parser = parse_duration_secs, env = "TAILOR_CHECKPOINTS_TIMEOUT")]
    pub checkpoints_timeout: i64,
    /// Checkpoints written per loop even past the budget.
    #[arg(long, default_value_t = 10, env = "TAILOR_MIN_CHECKPOINTS")]
    pub min_checkpoints: usize,
    /// Time between checkpoint garbage collections.
    #[arg(long, default_value = "10m", value_parser = parse_duration_secs, env = "TAILOR_CHECKPOINTS_GC_INTERVAL")]
    pub checkpoints_gc_interval: i64,
    /// Series names and labels.
    #[command(flatten)]
    pub series: SeriesArgs,
    /// Prices and the global cost policy (the `tailor.dev/cost-policy` annotation overrides it per VPA).
    #[command(flatten)]
    pub cost: CostArgs,
    /// Recommender options (defaults as upstream).
    #[command(flatten)]
    pub options: OptionArgs,
}

impl RunArgs {
    /// The cost configuration. Unlike `recommend`, a penalty without the
    /// global policy is allowed: annotated VPAs use it.
    ///
    /// # Errors
    /// Invalid prices, or the newsvendor policy without a valid penalty.
    pub fn cost_config(&self) -> anyhow::Result<CostConfig> {
        let rates = self.cost.rates()?;
        let default_policy = match self.cost.cost_policy {
            CostPolicy::Off => None,
            CostPolicy::Newsvendor => self.cost.cost_aware(rates)?,
        };
        Ok(CostConfig {
            rates,
            default_policy,
            penalty: self.cost.under_provisioning_penalty,
            min_quantile: self.cost.cost_min_quantile,
            max_quantile: self.cost.cost_max_quantile,
        })
    }

    /// Where usage lives in Prometheus.
    #[must_use]
    pub fn series_config(&self) -> SeriesConfig {
        let s = &self.series;
        SeriesConfig {
            cadvisor_job: s.cadvisor_job.clone(),
            job_label: s.job_label.clone(),
            namespace_label: s.namespace_label.clone(),
            pod_label: s.pod_label.clone(),
            container_label: s.container_label.clone(),
            cpu_metric: s.cpu_metric.clone(),
            memory_metric: s.memory_metric.clone(),
            rate_window_secs: s.rate_window,
        }
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

fn now_secs() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A watched kind (what a reflector or [`CompactCache`] needs of it).
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static>
    Watched for K
{
}

/// Drops what the controller never reads before an object enters a
/// reflector's store (managed fields: server-side apply makes them large).
pub trait Slim {
    /// Removes the unread parts in place.
    fn slim(&mut self);
}

macro_rules! slim_meta_only {
    ($($ty:ty),+) => {$(
        impl Slim for $ty {
            fn slim(&mut self) {
                self.metadata.managed_fields = None;
            }
        }
    )+};
}
slim_meta_only!(HorizontalPodAutoscaler);

/// Starts a cluster-wide reflector for `K` (slimmed); the store fills as it lists.
fn watch<K: Watched + Slim>(
    client: &kube::Client,
    shutdown: &CancellationToken,
) -> (Store<K>, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(K::slim),
    );
    let shutdown = shutdown.clone();
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying")
                }
                None => return,
            }
        }
    });
    (reader, task)
}

/// Objects by (namespace, name).
type ObjectMap<T> = HashMap<(String, String), Arc<T>>;

/// What a [`CompactCache`] keeps of a watched kind.
pub trait Compact: Send + Sync + Sized + 'static {
    /// The watched kind.
    type Source: Watched;
    /// The kept form of `source`.
    fn compact(source: Self::Source) -> Self;
    /// OOM kills an update from `old` to `new` shows (none by default).
    fn ooms(_old: &Self, _new: &Self) -> Vec<OomEvent> {
        Vec::new()
    }
}

impl Compact for PodInfo {
    type Source = Pod;
    fn compact(pod: Pod) -> Self {
        PodInfo::from_pod(&pod)
    }
    fn ooms(old: &Self, new: &Self) -> Vec<OomEvent> {
        oom::observe(old, new)
    }
}

impl Compact for VpaInfo {
    type Source = VerticalPodAutoscaler;
    fn compact(vpa: VerticalPodAutoscaler) -> Self {
        VpaInfo::new(vpa)
    }
}

/// What the controller keeps of a well-known controller (`K`): the selector
/// of its pods, read once as the object arrives, or why it has none. The
/// loop reads nothing else of them (pods are matched to VPAs by selector,
/// not through owner references), so the decoded object is dropped at once:
/// even slimmed, a Deployment or ReplicaSet held about 4 KiB in a store.
pub struct ControllerSelector<K> {
    /// Boxed: the error is large and rare.
    selector: Result<Selector, Box<tailor_api::target::TargetError>>,
    kind: std::marker::PhantomData<fn() -> K>,
}

impl<K> ControllerSelector<K> {
    /// The selector for `target`, which names this object. Identical to
    /// [`target_selector`] on the full object: the kind of a well-known
    /// `targetRef` is matched exactly, and its name is the object's, so the
    /// errors computed at compaction name what the `targetRef` names.
    ///
    /// # Errors
    /// The object has no spec, or its selector is invalid.
    pub fn selector(&self) -> Result<Selector, LookupError> {
        self.selector.clone().map_err(|e| LookupError::Target(*e))
    }
}

macro_rules! controller_selector {
    ($($variant:ident),+) => {$(
        impl Compact for ControllerSelector<$variant> {
            type Source = $variant;
            fn compact(object: $variant) -> Self {
                let kind = WellKnownKind::$variant;
                // The `targetRef` that names this object.
                let named = CrossVersionObjectReference {
                    api_version: Some(kind.api_version().to_owned()),
                    kind: kind.as_str().to_owned(),
                    name: object.metadata.name.clone().unwrap_or_default(),
                };
                ControllerSelector {
                    selector: target_selector(&named, Some(TargetObject::$variant(&object)))
                        .map_err(Box::new),
                    kind: std::marker::PhantomData,
                }
            }
        }
    )+};
}
controller_selector!(
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
    ReplicationController
);

/// OOM kills held for the next loop at most (upstream's channel size); more
/// between two loops are dropped and logged.
const MAX_PENDING_OOMS: usize = 5000;

/// A watch cache of compact objects ([`PodInfo`]: a `Store<Pod>` would hold
/// 10,000 full pods in about 80 MiB; [`VpaInfo`]: a digest instead of the
/// status recommendation). A relist replaces the contents at once. Updates
/// are compared with what was held to see OOM kills, which wait in the cache
/// until the loop takes them.
#[derive(Debug)]
pub struct CompactCache<T> {
    items: Arc<RwLock<ObjectMap<T>>>,
    ooms: Arc<std::sync::Mutex<Vec<OomEvent>>>,
    synced: Arc<tokio::sync::Notify>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl<T> Clone for CompactCache<T> {
    fn clone(&self) -> Self {
        CompactCache {
            items: Arc::clone(&self.items),
            ooms: Arc::clone(&self.ooms),
            synced: Arc::clone(&self.synced),
            ready: Arc::clone(&self.ready),
        }
    }
}

impl<T> Default for CompactCache<T> {
    fn default() -> Self {
        CompactCache {
            items: Arc::default(),
            ooms: Arc::default(),
            synced: Arc::default(),
            ready: Arc::default(),
        }
    }
}

/// The pod cache.
pub type PodCache = CompactCache<PodInfo>;
/// The VPA cache.
pub type VpaCache = CompactCache<VpaInfo>;

fn object_key<K: Resource>(o: &K) -> (String, String) {
    let meta = o.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl<T: Compact> CompactCache<T> {
    /// The object `namespace/name`, if held.
    #[must_use]
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        let guard = self
            .items
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Every object, in no particular order.
    #[must_use]
    pub fn state(&self) -> Vec<Arc<T>> {
        let guard = self
            .items
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.values().cloned().collect()
    }

    /// The OOM kills seen since the last call.
    pub fn take_ooms(&self) -> Vec<OomEvent> {
        std::mem::take(
            &mut *self
                .ooms
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn push_ooms(&self, found: Vec<OomEvent>) {
        if found.is_empty() {
            return;
        }
        let mut pending = self
            .ooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for oom in found {
            if pending.len() >= MAX_PENDING_OOMS {
                tracing::warn!(container = ?oom.container, "too many OOM kills since the last loop; dropped");
                continue;
            }
            pending.push(oom);
        }
    }

    /// Applies one watch event; `buffer` holds a relist in progress.
    pub fn apply(
        &self,
        buffer: &mut Vec<((String, String), Arc<T>)>,
        event: watcher::Event<T::Source>,
    ) {
        let write = || {
            self.items
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        match event {
            watcher::Event::Init => buffer.clear(),
            watcher::Event::InitApply(o) => {
                buffer.push((object_key(&o), Arc::new(T::compact(o))));
            }
            watcher::Event::InitDone => {
                let fresh: ObjectMap<T> = buffer.drain(..).collect();
                let mut found = Vec::new();
                let mut items = write();
                // A relist after a broken watch is an update of what was held.
                for (key, new) in &fresh {
                    if let Some(old) = items.get(key) {
                        found.extend(T::ooms(old, new));
                    }
                }
                *items = fresh;
                drop(items);
                self.push_ooms(found);
                self.ready.store(true, std::sync::atomic::Ordering::SeqCst);
                self.synced.notify_waiters();
            }
            watcher::Event::Apply(o) => {
                let key = object_key(&o);
                let new = Arc::new(T::compact(o));
                let old = write().insert(key, Arc::clone(&new));
                if let Some(old) = old {
                    self.push_ooms(T::ooms(&old, &new));
                }
            }
            watcher::Event::Delete(o) => {
                write().remove(&object_key(&o));
            }
        }
    }

    /// Waits for the first complete list.
    pub async fn wait_until_ready(&self) {
        loop {
            let notified = self.synced.notified();
            if self.ready.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    fn start(
        client: &kube::Client,
        shutdown: &CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let cache = Self::default();
        let api: Api<T::Source> = Api::all(client.clone());
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let shutdown = shutdown.clone();
        let writer = cache.clone();
        let task = tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut buffer = Vec::new();
            loop {
                let next = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = stream.next() => next,
                };
                match next {
                    Some(Ok(event)) => writer.apply(&mut buffer, event),
                    Some(Err(e)) => {
                        tracing::warn!(kind = %T::Source::kind(&()), error = %e, "watch failed; retrying")
                    }
                    None => return,
                }
            }
        });
        (cache, task)
    }
}

/// The cache of one well-known controller kind.
pub type ControllerCache<K> = CompactCache<ControllerSelector<K>>;

/// Target selectors from the well-known controllers' caches.
#[derive(Clone)]
pub struct StoreTargets {
    deployments: ControllerCache<Deployment>,
    stateful_sets: ControllerCache<StatefulSet>,
    daemon_sets: ControllerCache<DaemonSet>,
    replica_sets: ControllerCache<ReplicaSet>,
    jobs: ControllerCache<Job>,
    cron_jobs: ControllerCache<CronJob>,
    replication_controllers: ControllerCache<ReplicationController>,
    scales: ScaleTargets,
}

/// The selector of `target` from the cache of its kind.
fn cached_selector<K>(
    cache: &ControllerCache<K>,
    namespace: &str,
    target: &CrossVersionObjectReference,
) -> Result<Selector, LookupError>
where
    ControllerSelector<K>: Compact,
{
    match cache.get(namespace, &target.name) {
        Some(held) => held.selector(),
        None => Ok(target_selector(target, None)?),
    }
}

impl TargetLookup for StoreTargets {
    fn selector(
        &self,
        namespace: &str,
        target: &CrossVersionObjectReference,
    ) -> Result<Selector, LookupError> {
        let (ns, t) = (namespace, target);
        match WellKnownKind::from_kind(&target.kind) {
            Some(WellKnownKind::Deployment) => cached_selector(&self.deployments, ns, t),
            Some(WellKnownKind::StatefulSet) => cached_selector(&self.stateful_sets, ns, t),
            Some(WellKnownKind::DaemonSet) => cached_selector(&self.daemon_sets, ns, t),
            Some(WellKnownKind::ReplicaSet) => cached_selector(&self.replica_sets, ns, t),
            Some(WellKnownKind::Job) => cached_selector(&self.jobs, ns, t),
            Some(WellKnownKind::CronJob) => cached_selector(&self.cron_jobs, ns, t),
            Some(WellKnownKind::ReplicationController) => {
                cached_selector(&self.replication_controllers, ns, t)
            }
            // Any other kind: its /scale subresource, read before the step.
            None => self.scales.selector(namespace, target),
        }
    }
}

/// Every cache the loop reads.
#[derive(Clone)]
pub struct Caches {
    vpas: VpaCache,
    pods: PodCache,
    hpas: Store<HorizontalPodAutoscaler>,
    targets: StoreTargets,
}

impl Caches {
    fn start(client: &kube::Client, shutdown: &Shutdown) -> Self {
        let token = shutdown.token();
        macro_rules! start {
            ($cache:ty) => {{
                let (cache, task) = <$cache>::start(client, &token);
                shutdown.spawn(task);
                cache
            }};
        }
        Caches {
            vpas: start!(VpaCache),
            pods: start!(PodCache),
            hpas: {
                let (store, task) = watch(client, &token);
                shutdown.spawn(task);
                store
            },
            targets: StoreTargets {
                deployments: start!(ControllerCache<Deployment>),
                stateful_sets: start!(ControllerCache<StatefulSet>),
                daemon_sets: start!(ControllerCache<DaemonSet>),
                replica_sets: start!(ControllerCache<ReplicaSet>),
                jobs: start!(ControllerCache<Job>),
                cron_jobs: start!(ControllerCache<CronJob>),
                replication_controllers: start!(ControllerCache<ReplicationController>),
                scales: ScaleTargets::default(),
            },
        }
    }

    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        let t = &self.targets;
        // The compact caches wait for their first list; only the HPA
        // reflector can end before it.
        futures::join!(
            self.vpas.wait_until_ready(),
            self.pods.wait_until_ready(),
            t.deployments.wait_until_ready(),
            t.stateful_sets.wait_until_ready(),
            t.daemon_sets.wait_until_ready(),
            t.replica_sets.wait_until_ready(),
            t.jobs.wait_until_ready(),
            t.cron_jobs.wait_until_ready(),
            t.replication_controllers.wait_until_ready(),
        );
        self.hpas
            .wait_until_ready()
            .await
            .context("a watch ended before its first list")
    }
}

/// Runs until SIGTERM/SIGINT or the lease is lost.
///
/// # Errors
/// Invalid flags, no Kubernetes client, an admin address that cannot be bound.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    telemetry::init(&args.log)?;
    let cost = args.cost_config()?;
    let options = args.options.to_options(None);
    let state = ClusterState::new(options).context("invalid recommender options")?;
    let series = args.series_config();
    series.validate()?;
    anyhow::ensure!(
        args.recommender_interval > 0,
        "--recommender-interval must be positive"
    );
    let prom = PromClient::new(&args.prometheus_url, secs(args.query_timeout))?;
    let kube = client::kube_client(&args.kube).await?;

    let mut registry = admin::component_registry("recommender");
    let metrics = Metrics::register(&mut registry);
    let process = Process::start(&args.admin, registry).await?;
    let interval = secs(args.recommender_interval);
    let heartbeat = process.heartbeat("recommender-loop", interval * 3);
    let mut leader = process.lease(&kube, &args.leader, COMPONENT)?;

    let caches = Caches::start(&kube, process.shutdown());
    let token = process.token();
    let beating = process
        .wait_to_lead(caches.wait_until_ready(), &mut leader, &heartbeat, interval)
        .await?;
    if let Some(beating) = beating {
        let recorder = process::event_recorder(&kube, COMPONENT);
        let mut controller = Controller {
            kube: kube.clone(),
            prom,
            series,
            caches,
            recommender: Recommender::new(args.recommender_name.clone(), cost, state),
            metrics,
            recorder,
            memo: CheckpointMemo::default(),
            history: None,
            checkpoints_timeout: secs(args.checkpoints_timeout),
            min_checkpoints: args.min_checkpoints,
        };
        let window = HistoryWindow {
            length_secs: args.history_length,
            resolution_secs: args.history_resolution,
        };
        // The history load can outlast 3 intervals: keep beating through it.
        let mut last_end = controller.start(window).await;
        drop(beating);
        heartbeat.beat();
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        let gc_every = secs(args.checkpoints_gc_interval);
        let mut last_gc = Instant::now();
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            if !leader.is_leader() {
                break;
            }
            last_end = controller
                .iteration(last_end, args.recommender_interval)
                .await;
            if last_gc.elapsed() >= gc_every {
                controller.collect_checkpoints().await;
                last_gc = Instant::now();
            }
            heartbeat.beat();
        }
    }
    process.stop().await?;
    Ok(())
}

/// The leader's loop state.
struct Controller {
    kube: kube::Client,
    prom: PromClient,
    series: SeriesConfig,
    caches: Caches,
    recommender: Recommender,
    metrics: Metrics,
    recorder: kube::runtime::events::Recorder,
    memo: CheckpointMemo,
    /// The initial history load while it is incomplete.
    history: Option<HistoryLoad>,
    checkpoints_timeout: Duration,
    min_checkpoints: usize,
}

impl Controller {
    /// Checkpoints, then the Prometheus history, then the first step. Returns
    /// the end of the loaded history.
    async fn start(&mut self, window: HistoryWindow) -> Timestamp {
        let now = now_secs();
        let vpas = self.caches.vpas.state();
        let ours = self.recommender.ours(&vpas);
        match writer::list_checkpoints(&self.kube).await {
            Ok(stored) => {
                let mut loaded = 0;
                for cp in &stored {
                    let (Some(key), Ok(state)) = (&cp.key, &cp.state) else {
                        continue;
                    };
                    if !ours.contains_key(&key.vpa) {
                        continue;
                    }
                    match self.recommender.state.load_checkpoint(key, state, now) {
                        Ok(()) => {
                            self.memo.mark_written(key, state);
                            loaded += 1;
                        }
                        Err(e) => {
                            tracing::warn!(checkpoint = %cp.object.1, error = %e, "checkpoint not loaded")
                        }
                    }
                }
                tracing::info!(loaded, stored = stored.len(), "checkpoints loaded");
            }
            Err(e) => {
                self.metrics.fail("checkpoint_list", 1);
                tracing::warn!(error = %e, "cannot list checkpoints; starting without them");
            }
        }
        self.history = Some(HistoryLoad::new(window, now));
        self.load_history(&ours).await;
        self.run_step(&History::default(), &mut |_| None, now).await;
        now
    }

    /// Loads what is left of the initial history. While it is incomplete,
    /// every VPA carries `FetchingHistory` (with the error), no checkpoint
    /// is written (as upstream skips VPAs fetching history: a checkpoint
    /// without the history would hide it at the next start), and fresh
    /// samples wait, so the history is never older than what is aggregated.
    async fn load_history(&mut self, ours: &BTreeMap<VpaKey, Arc<VpaInfo>>) {
        let Some(load) = self.history.as_mut() else {
            return;
        };
        let started = Instant::now();
        let before = load.loaded;
        let result = load
            .resume(
                &self.prom,
                &self.series,
                HISTORY_CHUNK_SECS,
                ours,
                &mut self.recommender.state,
            )
            .await;
        let added = load.loaded.cpu + load.loaded.memory - before.cpu - before.memory;
        self.metrics
            .samples
            .get_or_create(&vec![("result".to_owned(), "history".to_owned())])
            .inc_by(added);
        match result {
            Ok(()) => {
                tracing::info!(
                    samples = load.loaded.cpu + load.loaded.memory,
                    invalid = load.loaded.invalid,
                    untracked = load.loaded.untracked,
                    "history loaded from Prometheus"
                );
                self.history = None;
                self.recommender.fetching_history = None;
            }
            Err(e) => {
                self.metrics.fail("prometheus", 1);
                tracing::warn!(error = %e, loaded_until = load.next, "cannot load (all) history; recommending from checkpoints, retrying next loop");
                self.recommender.fetching_history = Some(format!(
                    "Loading --history-length of usage from Prometheus failed: {}. Retrying every loop; until then recommendations come from checkpoints only",
                    e.brief()
                ));
            }
        }
        self.metrics
            .observe_step("history", started.elapsed().as_secs_f64());
    }

    /// One loop: fresh samples since `last_end`, step, writes. Returns the new end.
    async fn iteration(&mut self, last_end: Timestamp, step_secs: i64) -> Timestamp {
        if self.history.is_some() {
            let vpas = self.caches.vpas.state();
            let ours = self.recommender.ours(&vpas);
            drop(vpas);
            self.load_history(&ours).await;
            if self.history.is_some() {
                // Fresh samples wait for the history (Prometheus keeps them).
                self.run_step(&History::default(), &mut |_| None, now_secs())
                    .await;
                return last_end;
            }
        }
        let now = now_secs();
        let start = last_end + step_secs;
        let started = Instant::now();
        let history = if start <= now {
            match self
                .prom
                .load_history(&self.series, None, start, now, step_secs)
                .await
            {
                Ok(h) => h,
                Err(e) => {
                    self.metrics.fail("prometheus", 1);
                    tracing::warn!(error = %e, "cannot read fresh samples; recommending from what is held");
                    History::default()
                }
            }
        } else {
            History::default()
        };
        self.metrics
            .observe_step("history", started.elapsed().as_secs_f64());
        self.run_step(&history, &mut |_| None, now).await;
        // Samples are aligned to `start`; the next query starts after the last one.
        if start <= now {
            start + (now - start) / step_secs * step_secs
        } else {
            last_end
        }
    }

    async fn run_step(
        &mut self,
        history: &History,
        resolve: &mut dyn FnMut(
            &crate::prom::ContainerKey,
        ) -> Option<(VpaKey, tailor_core::resources::Resources)>,
        now: Timestamp,
    ) {
        let started = Instant::now();
        let vpas = self.caches.vpas.state();
        let ours = self.recommender.ours(&vpas);
        let custom = ScaleTargets::custom_targets(
            ours.values()
                .map(|v| (v.namespace.as_str(), &v.spec.target_ref)),
        );
        self.caches
            .targets
            .scales
            .refresh(&self.kube, &custom, now, scale::DEFAULT_MAX_AGE_SECS)
            .await;
        let pods = self.caches.pods.state();
        let hpas = self.caches.hpas.state();
        let ooms = self.caches.pods.take_ooms();
        self.metrics
            .observe_step("gather", started.elapsed().as_secs_f64());
        let snap = Snapshot {
            vpas: &vpas,
            pods: &pods,
            hpas: &hpas,
            targets: &self.caches.targets,
            ooms: &ooms,
        };
        let started = Instant::now();
        let pending = match self.recommender.update(snap, history, resolve, now) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "step failed");
                return;
            }
        };
        drop(pods);
        self.metrics
            .observe_step("recommend", started.elapsed().as_secs_f64());
        let started = Instant::now();
        // Each VPA is recommended for just before its status is written, so
        // only one status is held at a time.
        let (mut out, results) = pending.results(&self.recommender, &hpas);
        let (report, results) =
            r#loop::write_each(&self.kube, results, Some(&self.recorder), &ours).await;
        out.results = results;
        self.metrics
            .observe_step("status", started.elapsed().as_secs_f64());
        let s = &self.recommender.state;
        self.metrics
            .record_step(&out, s.aggregate_count(), s.container_count());
        self.metrics.record_writes(&report);
        for key in &out.collected {
            self.memo.forget(key);
        }
        tracing::info!(
            vpas = out.results.len(),
            written = report.statuses_written,
            failed = report.status_failures,
            samples = out.samples.cpu + out.samples.memory,
            invalid = out.samples.invalid,
            ooms = out.ooms.recorded,
            "loop done"
        );
        // The metrics hold their own rows; the results go before the
        // checkpoints are built.
        drop(out);
        if self.history.is_none() {
            self.write_checkpoints(now).await;
        }
    }

    async fn write_checkpoints(&mut self, now: Timestamp) {
        let started = Instant::now();
        let due = self.memo.due(&self.recommender.state, now);
        let (mut written, mut failed) = (0u64, 0u64);
        for key in due {
            if written + failed >= self.min_checkpoints as u64
                && started.elapsed() >= self.checkpoints_timeout
            {
                break;
            }
            let Some(checkpoint) = self.recommender.state.checkpoint(&key, now) else {
                continue;
            };
            match writer::apply_checkpoint(&self.kube, &key, &checkpoint).await {
                Ok(()) => {
                    self.memo.mark_written(&key, &checkpoint);
                    written += 1;
                }
                Err(e) => {
                    failed += 1;
                    tracing::warn!(vpa = %key.vpa, container = %key.container, error = %e, "checkpoint write failed");
                }
            }
        }
        self.metrics.checkpoints_written.inc_by(written);
        self.metrics.fail("checkpoint", failed);
        self.metrics
            .observe_step("checkpoints", started.elapsed().as_secs_f64());
    }

    async fn collect_checkpoints(&mut self) {
        let started = Instant::now();
        let stored = match writer::list_checkpoints(&self.kube).await {
            Ok(s) => s,
            Err(e) => {
                self.metrics.fail("checkpoint_list", 1);
                tracing::warn!(error = %e, "cannot list checkpoints for GC");
                return;
            }
        };
        let vpas = self.caches.vpas.state();
        let existing: BTreeSet<VpaKey> = vpas.iter().map(|v| v.key()).collect();
        let ours: BTreeSet<VpaKey> = self.recommender.ours(&vpas).into_keys().collect();
        let aggregates: BTreeSet<AggregateKey> =
            self.recommender.state.aggregate_keys().cloned().collect();
        let mut failed = 0;
        for (ns, name) in writer::checkpoints_to_delete(&stored, &existing, &ours, &aggregates) {
            if let Err(e) = writer::delete_checkpoint(&self.kube, &ns, &name).await {
                failed += 1;
                tracing::warn!(checkpoint = %format!("{ns}/{name}"), error = %e, "checkpoint delete failed");
            }
        }
        self.metrics.fail("checkpoint_delete", failed);
        self.metrics
            .observe_step("gc", started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn pod(name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "shop"}}))
            .unwrap()
    }

    fn names(c: &PodCache) -> Vec<String> {
        let mut v: Vec<String> = c.state().iter().map(|p| p.name.clone()).collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn pod_cache_relists_atomically_and_follows_events() {
        let c = PodCache::default();
        let mut buf = Vec::new();
        c.apply(&mut buf, watcher::Event::Init);
        c.apply(&mut buf, watcher::Event::InitApply(pod("a")));
        assert!(names(&c).is_empty(), "invisible until the list completes");
        c.apply(&mut buf, watcher::Event::InitDone);
        c.wait_until_ready().await;
        assert_eq!(names(&c), ["a"]);
        c.apply(&mut buf, watcher::Event::Apply(pod("b")));
        c.apply(&mut buf, watcher::Event::Delete(pod("a")));
        assert_eq!(names(&c), ["b"]);
        c.apply(&mut buf, watcher::Event::Init);
        c.apply(&mut buf, watcher::Event::InitApply(pod("c")));
        c.apply(&mut buf, watcher::Event::InitDone);
        assert_eq!(names(&c), ["c"]);
    }

    fn pod_with_app(restarts: i32, state: serde_json::Value, last: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"containers": [{"name": "app", "resources": {"requests": {"memory": "1Gi"}}}]},
            "status": {"containerStatuses": [{"name": "app", "restartCount": restarts, "image": "x",
                "imageID": "", "ready": true, "state": state, "lastState": last}]}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn pod_cache_reports_oom_kills_from_updates_and_relists_only() {
        let running = serde_json::json!({"running": {"startedAt": "2026-12-01T10:00:05Z"}});
        let oom = serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
            "finishedAt": "2026-12-01T10:00:00Z"}});
        let c = PodCache::default();
        let mut buf = Vec::new();
        // First seen already restarted after an OOM: not reported (as upstream).
        c.apply(&mut buf, watcher::Event::Init);
        c.apply(
            &mut buf,
            watcher::Event::InitApply(pod_with_app(1, running.clone(), oom.clone())),
        );
        c.apply(&mut buf, watcher::Event::InitDone);
        assert!(c.take_ooms().is_empty());
        // Killed and restarted again: reported once, then taken.
        c.apply(
            &mut buf,
            watcher::Event::Apply(pod_with_app(2, running.clone(), oom.clone())),
        );
        let ooms = c.take_ooms();
        assert_eq!(ooms.len(), 1);
        assert_eq!(ooms[0].container.pod, "web-0");
        assert_eq!(ooms[0].timestamp, 1_796_119_200);
        assert_eq!(ooms[0].memory_request_bytes, 1 << 30);
        assert!(c.take_ooms().is_empty());
        // The same status again (a resync) and a relist showing it: nothing new.
        c.apply(
            &mut buf,
            watcher::Event::Apply(pod_with_app(2, running.clone(), oom.clone())),
        );
        c.apply(&mut buf, watcher::Event::Init);
        c.apply(
            &mut buf,
            watcher::Event::InitApply(pod_with_app(2, running.clone(), oom.clone())),
        );
        c.apply(&mut buf, watcher::Event::InitDone);
        assert!(c.take_ooms().is_empty());
        // A relist after a broken watch that shows a kill missed meanwhile.
        c.apply(&mut buf, watcher::Event::Init);
        c.apply(
            &mut buf,
            watcher::Event::InitApply(pod_with_app(3, running, oom)),
        );
        c.apply(&mut buf, watcher::Event::InitDone);
        assert_eq!(c.take_ooms().len(), 1);
    }

    #[tokio::test]
    async fn vpa_cache_keeps_a_digest_instead_of_the_recommendation() {
        let vpa = |target: &str| -> VerticalPodAutoscaler {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "namespace": "shop",
                    "labels": {"team": "a"},
                    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}",
                                    "tailor.dev/cost-policy": "off"},
                    "managedFields": [{"manager": "kubectl"}]},
                "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}},
                "status": {"recommendation": {"containerRecommendations": [
                    {"containerName": "app", "target": {"cpu": target}}]},
                    "conditions": [{"type": "RecommendationProvided", "status": "True"}]}
            }))
            .unwrap()
        };
        let c = VpaCache::default();
        let mut buf = Vec::new();
        c.apply(&mut buf, watcher::Event::Init);
        c.apply(&mut buf, watcher::Event::InitApply(vpa("100m")));
        c.apply(&mut buf, watcher::Event::InitDone);
        let cached = c.state().pop().unwrap();
        assert_eq!(
            (cached.namespace.as_str(), cached.name.as_str()),
            ("shop", "web")
        );
        assert_eq!(cached.spec.target_ref.name, "web");
        assert_eq!(cached.conditions().len(), 1);
        assert_eq!(cached.cost_policy(), Some("off"));
        let digest = |v: VerticalPodAutoscaler| {
            r#loop::recommendation_digest(v.status.unwrap().recommendation.as_ref().unwrap())
        };
        assert_eq!(cached.recommendation_digest(), Some(digest(vpa("100m"))));
        assert_ne!(cached.recommendation_digest(), Some(digest(vpa("101m"))));
        c.apply(&mut buf, watcher::Event::Apply(vpa("101m")));
        assert_eq!(
            c.state()[0].recommendation_digest(),
            Some(digest(vpa("101m")))
        );
        c.apply(&mut buf, watcher::Event::Delete(vpa("101m")));
        assert!(c.state().is_empty());
    }

    /// Each kind's cache, fed `objects` (JSON), asked for `target`, against
    /// `target_selector` on the full object.
    fn assert_cached_as_full<K>(
        as_target: fn(&K) -> TargetObject<'_>,
        objects: &[serde_json::Value],
    ) where
        ControllerSelector<K>: Compact<Source = K>,
        K: Watched,
    {
        let cache = ControllerCache::<K>::default();
        let mut buf = Vec::new();
        cache.apply(&mut buf, watcher::Event::Init);
        let full: Vec<K> = objects
            .iter()
            .map(|o| serde_json::from_value(o.clone()).unwrap())
            .collect();
        for o in &full {
            cache.apply(&mut buf, watcher::Event::InitApply(o.clone()));
        }
        cache.apply(&mut buf, watcher::Event::InitDone);
        let kind = K::kind(&()).into_owned();
        let target = |name: &str| CrossVersionObjectReference {
            api_version: Some("any/v1".into()),
            kind: kind.clone(),
            name: name.into(),
        };
        for o in &full {
            let name = o.meta().name.clone().unwrap();
            let expected =
                target_selector(&target(&name), Some(as_target(o))).map_err(LookupError::from);
            assert_eq!(
                cached_selector(&cache, "shop", &target(&name)),
                expected,
                "{kind} {name}"
            );
        }
        assert_eq!(
            cached_selector(&cache, "shop", &target("gone")),
            Err(LookupError::Target(
                tailor_api::target::TargetError::NotFound {
                    kind: kind.clone(),
                    name: "gone".into()
                }
            ))
        );
        assert!(
            cached_selector(&cache, "other", &target("web")).is_err(),
            "namespaced"
        );
    }

    #[test]
    fn controller_caches_give_the_selectors_of_the_full_objects() {
        let template = serde_json::json!({"metadata": {"labels": {"app": "web", "tier": "fe"}},
            "spec": {"containers": [{"name": "app", "image": "x"}]}});
        let meta = |name: &str| {
            serde_json::json!({"name": name, "namespace": "shop",
            "managedFields": [{"manager": "kubectl"}]})
        };
        let with_selector = |selector: serde_json::Value| {
            vec![
                serde_json::json!({"metadata": meta("web"),
                    "spec": {"selector": selector, "template": template}}),
                serde_json::json!({"metadata": meta("bad"), "spec": {"selector":
                    {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}, "template": template}}),
                serde_json::json!({"metadata": meta("nospec")}),
            ]
        };
        let labels = serde_json::json!({"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]});
        let selected = with_selector(labels);
        assert_cached_as_full(|o| TargetObject::Deployment(o), &selected);
        assert_cached_as_full(|o| TargetObject::StatefulSet(o), &selected);
        assert_cached_as_full(|o| TargetObject::DaemonSet(o), &selected);
        assert_cached_as_full(|o| TargetObject::ReplicaSet(o), &selected);
        assert_cached_as_full(|o| TargetObject::Job(o), &selected);
        assert_cached_as_full(
            |o| TargetObject::Job(o),
            &[serde_json::json!({"metadata": meta("web"),
            "spec": {"template": template}})],
        );
        assert_cached_as_full(
            |o| TargetObject::CronJob(o),
            &[
                serde_json::json!({"metadata": meta("web"), "spec": {"schedule": "* * * * *",
                "jobTemplate": {"spec": {"template": template}}}}),
                serde_json::json!({"metadata": meta("nolabels"), "spec": {"schedule": "* * * * *",
                "jobTemplate": {}}}),
                serde_json::json!({"metadata": meta("nospec")}),
            ],
        );
        assert_cached_as_full(
            |o| TargetObject::ReplicationController(o),
            &[
                serde_json::json!({"metadata": meta("web"), "spec": {"selector": {"app": "web"}}}),
                serde_json::json!({"metadata": meta("bad"), "spec": {"selector": {"a b": "c"}}}),
                serde_json::json!({"metadata": meta("nospec")}),
            ],
        );
    }

    #[derive(Debug, clap::Parser)]
    struct Wrapper {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn run_flags_default_as_upstream() {
        let w = Wrapper::try_parse_from(["x", "--prometheus-url", "http://p:9090"]).unwrap();
        let a = w.run;
        assert_eq!(a.recommender_name, "default");
        assert_eq!(a.recommender_interval, 60);
        assert_eq!(a.history_length, 8 * 86_400);
        assert_eq!(a.history_resolution, 3600);
        assert_eq!(a.checkpoints_timeout, 60);
        assert_eq!(a.min_checkpoints, 10);
        assert_eq!(a.checkpoints_gc_interval, 600);
        assert_eq!(
            a.options.to_options(None),
            tailor_core::recommender::RecommenderOptions::default()
        );
        assert!(a.leader.leader_elect);
        assert_eq!(a.cost_config().unwrap().default_policy, None);
    }

    #[test]
    fn a_penalty_alone_is_kept_for_annotated_vpas() {
        let w = Wrapper::try_parse_from([
            "x",
            "--prometheus-url",
            "http://p",
            "--under-provisioning-penalty",
            "0.36",
        ])
        .unwrap();
        let c = w.run.cost_config().unwrap();
        assert_eq!((c.default_policy, c.penalty), (None, Some(0.36)));
        let w = Wrapper::try_parse_from([
            "x",
            "--prometheus-url",
            "http://p",
            "--cost-policy",
            "newsvendor",
        ])
        .unwrap();
        assert!(
            w.run.cost_config().is_err(),
            "the global policy needs the penalty"
        );
    }
}
