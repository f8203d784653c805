//! The process: flags, watch caches, leader election, the admin server and
//! the loop. Only the leader acts; a replica waiting for the lease keeps its
//! caches warm and stays live.

use crate::act::{Actor, ActorConfig};
use crate::metrics::Metrics;
use crate::model::{Controlled, ControllerIndex, ControllerKey, PodEntry};
use crate::step::{self, LimitRangeIndex, ResizeTracker, Snapshot, StepConfig};
use clap::Parser;
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{LimitRange, Pod, ReplicationController};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tailor_api::VerticalPodAutoscaler;
use tailor_core::update::UpdaterConfig;
use tailor_runtime::args::{
    AdminArgs, KubeClientArgs, LeaderElectionArgs, LogArgs, parse_duration,
};
use tailor_runtime::lease::LeaderState;
use tailor_runtime::process::{self, Process};
use tailor_runtime::scale::{DEFAULT_MAX_AGE_SECS, ScaleTargets};
use tailor_runtime::{Shutdown, admin, client, telemetry};
use tokio_util::sync::CancellationToken;

/// The component name: Lease name, Event reporter, metric prefix.
pub const COMPONENT: &str = "tailor-updater";

/// `tailor-updater`: applies VPA recommendations to running pods.
#[derive(Debug, Parser)]
#[command(
    name = "tailor-updater",
    version,
    about = "Applies VPA recommendations to running pods: in-place resize or eviction, within disruption budgets",
    long_about = "Applies VerticalPodAutoscaler recommendations to running pods, in place of the \
upstream VPA updater. VPAs in mode Recreate or Auto (deprecated) get their pods evicted through \
the policy/v1 Eviction API, so PodDisruptionBudgets hold; VPAs in mode InPlaceOrRecreate get \
their pods resized through the pods/resize subresource, and evicted only when the kubelet \
reports the resize Infeasible, keeps it Deferred for more than 5 minutes or InProgress for more \
than 1 hour. Per controller, at most int(replicas x --eviction-tolerance) pods (at least one) \
are disrupted at once, and none when fewer than --min-replicas pods are alive. Every action \
gets an Event on the pod and on its VPA. Only the leader acts."
)]
pub struct Cli {
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
    /// Time between loops (`30s`, `1m`, `1h`). Each loop acts for at most this long.
    #[arg(long, default_value = "1m", value_parser = parse_duration, env = "TAILOR_UPDATER_INTERVAL")]
    pub updater_interval: Duration,
    /// Fewest live pods a controller must have before any of them is
    /// disrupted; a VPA's spec.updatePolicy.minReplicas overrides it.
    #[arg(long, default_value_t = 2, env = "TAILOR_MIN_REPLICAS")]
    pub min_replicas: u32,
    /// Fraction of a controller's replicas that may be disrupted at once
    /// (rounded down; at least one pod when all are running).
    #[arg(long, default_value_t = 0.5, value_parser = parse_fraction, env = "TAILOR_EVICTION_TOLERANCE")]
    pub eviction_tolerance: f64,
    /// Evictions per second, across all VPAs (in-place resizes are limited
    /// separately at the same rate). 0 or less: no limit.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true, env = "TAILOR_EVICTION_RATE_LIMIT")]
    pub eviction_rate_limit: f64,
    /// Evictions allowed in a burst when a rate limit is set.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), env = "TAILOR_EVICTION_RATE_BURST")]
    pub eviction_rate_burst: u32,
    /// Smallest summed relative difference between requests and target that
    /// updates a long-lived pod whose requests are within the recommended range.
    #[arg(long, default_value_t = 0.1, value_parser = parse_non_negative, env = "TAILOR_POD_UPDATE_THRESHOLD")]
    pub pod_update_threshold: f64,
    /// Pods this old are updated even when their requests are within the
    /// recommended range (if they drifted by --pod-update-threshold).
    #[arg(long, default_value = "12h", value_parser = parse_duration, env = "TAILOR_IN_RECOMMENDATION_BOUNDS_EVICTION_LIFETIME_THRESHOLD")]
    pub in_recommendation_bounds_eviction_lifetime_threshold: Duration,
    /// A container OOM-killed sooner than this after it started makes its
    /// pod due for an update (a VPA's spec.updatePolicy.evictAfterOOMSeconds overrides it).
    #[arg(long, default_value = "10m", value_parser = parse_duration, env = "TAILOR_EVICT_AFTER_OOM_THRESHOLD")]
    pub evict_after_oom_threshold: Duration,
    /// Log and emit Events for what would be done; evict and resize nothing.
    #[arg(long, env = "TAILOR_DRY_RUN")]
    pub dry_run: bool,
    /// Only handle VPAs whose spec.recommenders[0].name is this ("default"
    /// also takes VPAs naming none). Unset: every VPA, as upstream's updater.
    #[arg(long, env = "TAILOR_RECOMMENDER_NAME")]
    pub recommender_name: Option<String>,
    /// Only handle VPAs in this namespace. Unset: all namespaces.
    #[arg(long, env = "TAILOR_VPA_OBJECT_NAMESPACE")]
    pub vpa_object_namespace: Option<String>,
    /// Comma-separated namespaces whose VPAs are ignored.
    #[arg(
        long,
        value_delimiter = ',',
        env = "TAILOR_IGNORED_VPA_OBJECT_NAMESPACES"
    )]
    pub ignored_vpa_object_namespaces: Vec<String>,
    /// Timeout of each eviction, resize and Event call.
    #[arg(long, default_value = "30s", value_parser = parse_duration, env = "TAILOR_API_CALL_TIMEOUT")]
    pub api_call_timeout: Duration,
}

fn parse_fraction(input: &str) -> Result<f64, String> {
    match input.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{input:?} is not a fraction between 0 and 1")),
    }
}

fn parse_non_negative(input: &str) -> Result<f64, String> {
    match input.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{input:?} is not a non-negative number")),
    }
}

fn whole_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Cli {
    /// What the loop decides with.
    ///
    /// # Errors
    /// A zero interval or call timeout.
    pub fn step_config(&self) -> anyhow::Result<StepConfig> {
        anyhow::ensure!(
            !self.updater_interval.is_zero(),
            "--updater-interval must be positive"
        );
        anyhow::ensure!(
            !self.api_call_timeout.is_zero(),
            "--api-call-timeout must be positive"
        );
        Ok(StepConfig {
            updater: UpdaterConfig {
                min_change_priority: self.pod_update_threshold,
                pod_lifetime_update_threshold_secs: whole_secs(
                    self.in_recommendation_bounds_eviction_lifetime_threshold,
                ),
                evict_after_oom_threshold_secs: whole_secs(self.evict_after_oom_threshold),
                eviction_tolerance: self.eviction_tolerance,
                min_replicas: self.min_replicas,
            },
            recommender_name: self.recommender_name.clone(),
            namespace: self.vpa_object_namespace.clone().filter(|n| !n.is_empty()),
            ignored_namespaces: self
                .ignored_vpa_object_namespaces
                .iter()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
        })
    }

    /// How actions are carried out.
    #[must_use]
    pub fn actor_config(&self) -> ActorConfig {
        ActorConfig {
            dry_run: self.dry_run,
            rate_limit: self.eviction_rate_limit,
            rate_burst: self.eviction_rate_burst,
            call_timeout: self.api_call_timeout,
        }
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A watched kind.
trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static>
    Watched for K
{
}

/// Set once the first complete list arrived.
#[derive(Clone, Debug, Default)]
struct Synced {
    ready: Arc<AtomicBool>,
    notify: Arc<tokio::sync::Notify>,
}

impl Synced {
    fn set(&self) {
        self.ready.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.ready.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// Drives a watch stream until shutdown, handing each event to `apply`.
fn drive<K: Watched>(
    client: &kube::Client,
    shutdown: &CancellationToken,
    mut apply: impl FnMut(watcher::Event<K>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let api: Api<K> = Api::all(client.clone());
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(event)) => apply(event),
                Some(Err(e)) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
                }
                None => return,
            }
        }
    })
}

/// Pods by (namespace, name).
type PodMap = HashMap<(String, String), Arc<PodEntry>>;

/// The pod cache: compact [`PodEntry`]s by (namespace, name). A relist
/// replaces the contents at once.
#[derive(Clone, Debug, Default)]
pub struct PodCache {
    pods: Arc<RwLock<PodMap>>,
    synced: Synced,
}

impl PodCache {
    /// Every pod, in no particular order.
    #[must_use]
    pub fn state(&self) -> Vec<Arc<PodEntry>> {
        let guard = self.pods.read().unwrap_or_else(PoisonError::into_inner);
        guard.values().cloned().collect()
    }

    /// Applies one watch event; `buffer` holds a relist in progress.
    pub fn apply(&self, buffer: &mut Vec<Arc<PodEntry>>, event: watcher::Event<Pod>) {
        let key = |p: &PodEntry| (p.pod.namespace.clone(), p.pod.name.clone());
        let write = || self.pods.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Init => buffer.clear(),
            watcher::Event::InitApply(pod) => buffer.push(Arc::new(PodEntry::from_pod(&pod))),
            watcher::Event::InitDone => {
                *write() = buffer.drain(..).map(|p| (key(&p), p)).collect();
                self.synced.set();
            }
            watcher::Event::Apply(pod) => {
                let e = PodEntry::from_pod(&pod);
                write().insert(key(&e), Arc::new(e));
            }
            watcher::Event::Delete(pod) => {
                let e = PodEntry::from_pod(&pod);
                write().remove(&key(&e));
            }
        }
    }
}

/// The controllers of every watched kind, compact, by (namespace, kind, name).
#[derive(Clone, Debug, Default)]
pub struct ControllerCache {
    index: Arc<RwLock<ControllerIndex>>,
    synced: Vec<Synced>,
}

fn controller_key<K: Controlled>(o: &K) -> ControllerKey {
    let m = o.meta();
    (
        m.namespace.clone().unwrap_or_default(),
        K::KIND.as_str().to_owned(),
        m.name.clone().unwrap_or_default(),
    )
}

impl ControllerCache {
    /// The index as it is now (the guard must not be held across an await).
    fn read(&self) -> std::sync::RwLockReadGuard<'_, ControllerIndex> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one watch event of kind `K`; `buffer` holds a relist in progress.
    pub fn apply<K: Controlled>(
        &self,
        buffer: &mut Vec<(ControllerKey, crate::model::ControllerEntry)>,
        event: watcher::Event<K>,
    ) -> bool {
        let write = || self.index.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Init => buffer.clear(),
            watcher::Event::InitApply(o) => buffer.push((controller_key(&o), o.entry())),
            watcher::Event::InitDone => {
                let mut index = write();
                index.retain(|(_, kind, _), _| kind != K::KIND.as_str());
                index.extend(buffer.drain(..));
                return true;
            }
            watcher::Event::Apply(o) => {
                write().insert(controller_key(&o), o.entry());
            }
            watcher::Event::Delete(o) => {
                write().remove(&controller_key(&o));
            }
        }
        false
    }

    fn start<K: Controlled + Watched>(&mut self, client: &kube::Client, shutdown: &Shutdown) {
        let synced = Synced::default();
        self.synced.push(synced.clone());
        let cache = self.clone();
        let mut buffer = Vec::new();
        shutdown.spawn(drive::<K>(client, &shutdown.token(), move |event| {
            if cache.apply(&mut buffer, event) {
                synced.set();
            }
        }));
    }
}

/// Drops what the updater never reads from a VPA before it is cached.
fn slim_vpa(vpa: &mut VerticalPodAutoscaler) {
    vpa.metadata.managed_fields = None;
    vpa.metadata.annotations = None;
}

/// Every cache the loop reads.
#[derive(Clone)]
pub struct Caches {
    vpas: Store<VerticalPodAutoscaler>,
    vpas_synced: Synced,
    pods: PodCache,
    controllers: ControllerCache,
    limit_ranges: Arc<RwLock<LimitRangeIndex>>,
    limit_ranges_synced: Synced,
    /// `/scale` of custom controllers, read before each loop (not watched).
    scale: ScaleTargets,
}

impl Caches {
    fn start(client: &kube::Client, shutdown: &Shutdown) -> Self {
        let token = shutdown.token();
        let (vpas, writer) = reflector::store();
        let vpas_synced = Synced::default();
        {
            let synced = vpas_synced.clone();
            let api: Api<VerticalPodAutoscaler> = Api::all(client.clone());
            let stream = reflector::reflector(
                writer,
                watcher::watcher(api, watcher::Config::default())
                    .default_backoff()
                    .modify(slim_vpa),
            );
            let token = token.clone();
            shutdown.spawn(async move {
                let mut stream = std::pin::pin!(stream);
                loop {
                    let next = tokio::select! {
                        () = token.cancelled() => return,
                        next = stream.next() => next,
                    };
                    match next {
                        Some(Ok(watcher::Event::InitDone)) => synced.set(),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            tracing::warn!(kind = "VerticalPodAutoscaler", error = %e, "watch failed; retrying");
                        }
                        None => return,
                    }
                }
            });
        }
        let pods = PodCache::default();
        {
            let cache = pods.clone();
            let mut buffer = Vec::new();
            shutdown.spawn(drive::<Pod>(client, &token, move |event| {
                cache.apply(&mut buffer, event);
            }));
        }
        let mut controllers = ControllerCache::default();
        controllers.start::<Deployment>(client, shutdown);
        controllers.start::<ReplicaSet>(client, shutdown);
        controllers.start::<StatefulSet>(client, shutdown);
        controllers.start::<DaemonSet>(client, shutdown);
        controllers.start::<Job>(client, shutdown);
        controllers.start::<CronJob>(client, shutdown);
        controllers.start::<ReplicationController>(client, shutdown);
        // LimitRanges, read once on arrival into core units (merged per
        // namespace as the admission webhook merges them).
        let limit_ranges = Arc::new(RwLock::new(LimitRangeIndex::default()));
        let limit_ranges_synced = Synced::default();
        {
            let index = Arc::clone(&limit_ranges);
            let synced = limit_ranges_synced.clone();
            let mut buffer = Vec::new();
            shutdown.spawn(drive::<LimitRange>(client, &token, move |event| {
                if apply_limit_range_event(&index, &mut buffer, event) {
                    synced.set();
                }
            }));
        }
        Caches {
            vpas,
            vpas_synced,
            pods,
            controllers,
            limit_ranges,
            limit_ranges_synced,
            scale: ScaleTargets::default(),
        }
    }

    async fn wait_until_ready(&self) {
        self.vpas_synced.wait().await;
        self.pods.synced.wait().await;
        self.limit_ranges_synced.wait().await;
        for s in &self.controllers.synced {
            s.wait().await;
        }
    }
}

/// Applies one LimitRange watch event; `buffer` holds a relist in progress,
/// which replaces the whole set when it completes (then true is returned).
fn apply_limit_range_event(
    index: &RwLock<LimitRangeIndex>,
    buffer: &mut Vec<LimitRange>,
    event: watcher::Event<LimitRange>,
) -> bool {
    let write = || index.write().unwrap_or_else(PoisonError::into_inner);
    match event {
        watcher::Event::Init => buffer.clear(),
        watcher::Event::InitApply(o) => buffer.push(o),
        watcher::Event::InitDone => {
            let mut index = write();
            index.clear();
            for o in buffer.drain(..) {
                index.apply(&o);
            }
            return true;
        }
        watcher::Event::Apply(o) => write().apply(&o),
        watcher::Event::Delete(o) => write().delete(
            o.metadata.namespace.as_deref().unwrap_or_default(),
            o.metadata.name.as_deref().unwrap_or_default(),
        ),
    }
    false
}

/// Runs until SIGTERM/SIGINT or the lease is lost.
///
/// # Errors
/// Invalid flags, no Kubernetes client, an admin address that cannot be bound.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(&cli.log)?;
    let config = cli.step_config()?;
    let kube = client::kube_client(&cli.kube).await?;

    let mut registry = admin::component_registry("updater");
    let metrics = Metrics::register(&mut registry);
    let process = Process::start(&cli.admin, registry).await?;
    let interval = cli.updater_interval;
    // A loop acts for at most one interval; three without a beat is a stall.
    let heartbeat = process.heartbeat("updater-loop", interval * 3);
    let mut leader = process.lease(&kube, &cli.leader, COMPONENT)?;

    let caches = Caches::start(&kube, process.shutdown());
    let token = process.token();
    let beating = process
        .wait_to_lead(
            async {
                caches.wait_until_ready().await;
                Ok::<_, std::convert::Infallible>(())
            },
            &mut leader,
            &heartbeat,
            interval,
        )
        .await?;
    if let Some(beating) = beating {
        drop(beating);
        if cli.dry_run {
            tracing::info!("dry run: nothing will be evicted or resized");
        }
        let recorder = process::event_recorder(&kube, COMPONENT);
        let mut actor = Actor::new(kube.clone(), recorder, cli.actor_config());
        let mut tracker = ResizeTracker::default();
        heartbeat.beat();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                _ = tick.tick() => {}
            }
            if !leader.is_leader() {
                tracing::warn!("lease lost; stopping");
                break;
            }
            let deadline = Instant::now() + interval;
            tokio::select! {
                () = token.cancelled() => break,
                () = iteration(&kube, &caches, &config, &mut actor, &mut tracker, &metrics, &leader, deadline, cli.dry_run) => {}
            }
            heartbeat.beat();
        }
    }
    process.stop().await?;
    Ok(())
}

/// One loop: snapshot the caches, decide, act.
#[allow(clippy::too_many_arguments)]
async fn iteration(
    kube: &kube::Client,
    caches: &Caches,
    config: &StepConfig,
    actor: &mut Actor,
    tracker: &mut ResizeTracker,
    metrics: &Metrics,
    leader: &LeaderState,
    deadline: Instant,
    dry_run: bool,
) {
    let started = Instant::now();
    let now = now_secs();
    let vpas = caches.vpas.state();
    let pods = caches.pods.state();
    // The custom controllers owning pods under a handled VPA: their /scale
    // gives the selector a VPA targeting them uses and their replica count.
    let custom = step::custom_owners(&vpas, &pods, &caches.controllers.read(), config);
    caches
        .scale
        .refresh(kube, &custom, now, DEFAULT_MAX_AGE_SECS)
        .await;
    let out = {
        let index = caches.controllers.read();
        let limit_ranges = caches
            .limit_ranges
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        step::step(
            Snapshot {
                vpas: &vpas,
                pods: &pods,
                controllers: &index,
                limit_ranges: &limit_ranges,
                scale: &caches.scale,
            },
            config,
            tracker,
            now,
        )
    };
    for p in &out.vpa_problems {
        tracing::warn!(vpa = %p.vpa, reason = p.reason, message = %p.message, "VPA skipped");
    }
    for s in &out.skipped {
        tracing::debug!(pod = %s.pod, reason = s.reason, message = %s.message, "pod skipped");
    }
    metrics.record_step(&out);
    let report = if leader.is_leader() {
        actor
            .apply(&out.actions, tracker, now, deadline, &|| leader.is_leader())
            .await
    } else {
        crate::act::ActReport::default()
    };
    metrics.record_actions(&report, dry_run);
    metrics
        .resizes_tracked
        .set(i64::try_from(tracker.len()).unwrap_or(i64::MAX));
    let seconds = started.elapsed().as_secs_f64();
    metrics.loop_seconds.observe(seconds);
    tracing::info!(
        vpas = vpas.len(),
        pods = out.considered,
        planned = out.actions.len(),
        resized = report.resized,
        evicted = report.evicted,
        refused = report.refused,
        skipped = out.skipped.len(),
        seconds,
        "loop done"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn limit_range(name: &str, max_cpu: &str) -> LimitRange {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": max_cpu}}]}
        }))
        .unwrap()
    }

    fn max_cpu(index: &RwLock<LimitRangeIndex>) -> Option<i64> {
        let limits = index.read().unwrap().limits("shop").unwrap();
        limits
            .container
            .and_then(|c| c.max.get(tailor_core::resources::ResourceName::Cpu))
    }

    #[test]
    fn limit_range_events_replace_on_relist_and_apply_in_between() {
        let index = RwLock::new(LimitRangeIndex::default());
        let mut buffer = Vec::new();
        let mut apply = |e| apply_limit_range_event(&index, &mut buffer, e);
        assert!(!apply(watcher::Event::Apply(limit_range("old", "1"))));
        // A relist in progress changes nothing until it completes, then
        // replaces the whole set: "old" is gone.
        assert!(!apply(watcher::Event::Init));
        assert!(!apply(watcher::Event::InitApply(limit_range("a", "2"))));
        assert!(apply(watcher::Event::InitDone));
        assert!(!apply(watcher::Event::Apply(limit_range("b", "500m"))));
        assert!(!apply(watcher::Event::Delete(limit_range("a", "2"))));
        assert_eq!(index.read().unwrap().len(), 1);
        assert_eq!(max_cpu(&index), Some(500));
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_default_as_upstream() {
        let cli = Cli::try_parse_from(["tailor-updater"]).unwrap();
        let c = cli.step_config().unwrap();
        assert_eq!(c.updater, UpdaterConfig::default());
        assert_eq!(cli.updater_interval, Duration::from_secs(60));
        assert!(cli.eviction_rate_limit < 0.0);
        assert_eq!(cli.eviction_rate_burst, 1);
        assert!(!cli.dry_run);
        assert_eq!(c.recommender_name, None);
        assert!(cli.leader.leader_elect);
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "tailor-updater",
            "--updater-interval=30s",
            "--eviction-rate-limit=0.5",
            "--eviction-rate-burst=3",
            "--min-replicas=3",
            "--eviction-tolerance=0.25",
            "--dry-run",
            "--recommender-name=tailor",
            "--ignored-vpa-object-namespaces=kube-system, tailor-system",
        ])
        .unwrap();
        let c = cli.step_config().unwrap();
        assert_eq!(cli.updater_interval, Duration::from_secs(30));
        assert_eq!(c.updater.min_replicas, 3);
        assert!((c.updater.eviction_tolerance - 0.25).abs() < f64::EPSILON);
        assert_eq!(c.ignored_namespaces, ["kube-system", "tailor-system"]);
        let a = cli.actor_config();
        assert!(a.dry_run);
        assert!((a.rate_limit - 0.5).abs() < f64::EPSILON);
        assert_eq!(a.rate_burst, 3);
    }

    #[rstest::rstest]
    #[case(&["--eviction-tolerance=1.5"])]
    #[case(&["--eviction-tolerance=-0.1"])]
    #[case(&["--eviction-rate-burst=0"])]
    #[case(&["--updater-interval=soon"])]
    #[case(&["--pod-update-threshold=-1"])]
    fn bad_flags_are_refused(#[case] args: &[&str]) {
        let mut argv = vec!["tailor-updater"];
        argv.extend_from_slice(args);
        let err = Cli::try_parse_from(argv).unwrap_err().to_string();
        assert!(err.contains(args[0].split('=').next().unwrap()), "{err}");
    }

    fn pod(name: &str) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "shop"}}))
            .unwrap()
    }

    fn rs(name: &str) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}}}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn caches_relist_atomically_and_follow_events() {
        let pods = PodCache::default();
        let mut buf = Vec::new();
        let names = |c: &PodCache| {
            let mut v: Vec<String> = c.state().iter().map(|p| p.pod.name.clone()).collect();
            v.sort();
            v
        };
        pods.apply(&mut buf, watcher::Event::Init);
        pods.apply(&mut buf, watcher::Event::InitApply(pod("a")));
        assert!(
            names(&pods).is_empty(),
            "invisible until the list completes"
        );
        pods.apply(&mut buf, watcher::Event::InitDone);
        pods.synced.wait().await;
        pods.apply(&mut buf, watcher::Event::Apply(pod("b")));
        pods.apply(&mut buf, watcher::Event::Delete(pod("a")));
        assert_eq!(names(&pods), ["b"]);

        // A ReplicaSet relist replaces ReplicaSets only.
        let controllers = ControllerCache::default();
        let mut buf = Vec::new();
        controllers.apply(&mut buf, watcher::Event::Apply(rs("old")));
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop"}, "spec": {"selector": {}, "template": {}}
        }))
        .unwrap();
        controllers.apply(&mut Vec::new(), watcher::Event::Apply(d));
        controllers.apply(&mut buf, watcher::Event::<ReplicaSet>::Init);
        controllers.apply(&mut buf, watcher::Event::InitApply(rs("new")));
        assert!(controllers.apply(&mut buf, watcher::Event::<ReplicaSet>::InitDone));
        let index = controllers.index.read().unwrap();
        let mut keys: Vec<_> = index.keys().map(|k| (k.1.as_str(), k.2.as_str())).collect();
        keys.sort_unstable();
        assert_eq!(keys, [("Deployment", "web"), ("ReplicaSet", "new")]);
        assert_eq!(
            index[&("shop".into(), "ReplicaSet".into(), "new".into())].replicas,
            Some(3)
        );
    }

    #[test]
    fn zero_interval_is_refused() {
        let cli = Cli::try_parse_from(["tailor-updater", "--updater-interval=0s"]).unwrap();
        let e = cli.step_config().unwrap_err().to_string();
        assert!(e.contains("--updater-interval"), "{e}");
    }
}
