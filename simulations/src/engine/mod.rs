//! The virtual-clock engine: replays demand through the same decisions the
//! live binaries make (`tailor_core::{hpa, recommender, update, admission,
//! expander, scheduling, cost}`) and books what it costs and what it breaks.
//!
//! The engine decides nothing itself; it models the environment around those
//! decisions: nodes that take time to boot, spot reclaims and capacity
//! outages, a first-fit scheduler, CPU contention, OOM kills and Cluster
//! Autoscaler's scale-up/scale-down loop. Every modelling assumption is listed
//! in `docs/simulator.md`. One step runs, in order: spot events → node
//! provisioning → HPA → recommender → updater → scheduling → scale-up →
//! usage → scale-down → ledger.

pub mod setup;

use crate::demand::{self, Demand, DemandError};
use crate::report::{Report, StepRecord, Summary, WasteBreakdown};
use crate::scenario::{CapacityType, Scenario, WorkloadSpec};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use setup::{CONTAINER, ResolvedGroup, VpaModel};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tailor_core::admission::{
    AdmissionContainer, AdmissionPod, NamespaceLimits, compute_pod_patch,
};
use tailor_core::cost::{CostError, FluidLowerBound, NodeType};
use tailor_core::expander::{
    Chain, ChainConfig, ExpanderError, ExpansionContext, ExpansionOption, NodeTemplate,
    PriceInputs, PriorityFilter, RatePricing,
};
use tailor_core::hpa::{
    ControllerConfig, HpaSpec, HpaState, MetricObservation, MetricSource, Pod as HpaPod, PodPhase,
    PodSample, ReadyCondition, reconcile,
};
use tailor_core::policy::{PartialResources, PodRecommendation, UpdateMode};
use tailor_core::recommender::{AggregateContainerState, ContainerState, PodResourceRecommender};
use tailor_core::resources::{ResourceName, Resources};
use tailor_core::scheduling::{
    NodeShape, PodRequest, Taint, TaintEffect, Toleration, TolerationOperator, fits,
    pack_first_fit_decreasing,
};
use tailor_core::update::{
    Action, ControllerRef, OomKill, UpdaterConfig, UpdaterContainer, UpdaterPod, VpaUpdateInput,
    decide_updates,
};

/// The taint every spot node carries; only `interruptionTolerant` workloads tolerate it.
pub const SPOT_TAINT_KEY: &str = "tailor.dev/spot";
/// Pods below this priority are expendable: they never trigger a scale-up (CA's cutoff).
pub const EXPENDABLE_PRIORITY_CUTOFF: i32 = -10;
/// A node that is not ready this many provisioning delays after it was asked
/// for is given up on (CA's `--max-node-provision-time`: 15 min for a 3 min delay).
pub const MAX_PROVISION_FACTOR: i64 = 5;
/// First back-off of a node group whose scale-up failed (CA's initial back-off).
pub const INITIAL_BACKOFF_SECS: i64 = 5 * 60;
/// Longest back-off (CA's maximum).
pub const MAX_BACKOFF_SECS: i64 = 30 * 60;
/// The recommender and the updater run once per this much simulated time.
pub const VPA_INTERVAL_SECS: i64 = 60;

/// Seed salts, so each random stream is independent of the others.
const SPOT_SALT: u64 = 0x5350_4f54_0000_0001;
const OUTAGE_SALT: u64 = 0x4f55_5441_4745_0002;

const NO_NODE: u32 = u32::MAX;

/// A simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A scenario field the engine cannot use.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as a path (`workloads[web].hpa.metrics[0]`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A workload's demand could not be built.
    #[error(transparent)]
    Demand(#[from] DemandError),
    /// The expander chain could not be built.
    #[error("expander: {0}")]
    Expander(#[from] ExpanderError),
    /// The lower bound could not be computed.
    #[error("lower bound: {0}")]
    Cost(#[from] CostError),
    /// An invariant broke (a bug in the engine; only checked when asked).
    #[error("invariant broken at t={t}s: {message}")]
    Invariant {
        /// Simulated seconds.
        t: i64,
        /// Which invariant.
        message: String,
    },
}

/// How to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Check the engine's invariants after every step (for tests; slower).
    pub check_invariants: bool,
}

/// One node's life, for the ledger and for tests.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRecord {
    /// Index into the scenario's node groups.
    pub group: usize,
    /// When it was asked for (billing starts), seconds.
    pub requested_at: i64,
    /// When it became ready, if it did.
    pub ready_at: Option<i64>,
    /// When billing stopped (removed, interrupted), if it did.
    pub removed_at: Option<i64>,
    /// Whether it is billed at all (a spot request that never arrived is not).
    pub billed: bool,
}

/// What a run produced: the report plus the node ledger.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The report (time series and summary).
    pub report: Report,
    /// Every node that ever existed, in creation order.
    pub nodes: Vec<NodeRecord>,
    /// Per group: USD per node-hour.
    pub group_prices: Vec<f64>,
    /// Unserved CPU per step, cores (throttling + OOM + pending + no pods).
    pub unserved_cpu_cores: Vec<f64>,
}

#[derive(Clone, Debug)]
struct Node {
    group: usize,
    requested_at: i64,
    /// `i64::MAX` when it will never arrive (spot outage).
    ready_at: i64,
    ready: bool,
    alive: bool,
    billed: bool,
    removed_at: Option<i64>,
    used: Resources,
    pods: u32,
    unneeded_since: Option<i64>,
}

#[derive(Clone, Debug)]
struct Pod {
    node: u32,
    requests: Resources,
    /// Per resource, `i64::MAX` = no limit.
    limits: Resources,
    created_at: i64,
    started_at: i64,
    container: Option<ContainerState>,
    last_cpu_millis: i64,
    sampled: bool,
    last_oom: Option<OomKill>,
}

struct Vpa {
    model: VpaModel,
    containers: BTreeMap<String, AggregateContainerState>,
    recommender: PodResourceRecommender,
    recommendation: Option<PodRecommendation>,
    /// What admission gives new pods under the current recommendation.
    admitted: Option<(Resources, Resources)>,
}

struct Workload {
    name: String,
    priority: i32,
    base_requests: Resources,
    base_limits: Resources,
    request_template: PodRequest,
    replicas: u32,
    hpa: Option<(HpaSpec, HpaState)>,
    vpa: Option<Vpa>,
    pods: Vec<Pod>,
    hpa_pods: Vec<HpaPod>,
}

struct Group {
    spec: ResolvedGroup,
    shape: NodeShape,
    backoff_until: i64,
    backoff_secs: i64,
}

/// Counters over the run.
#[derive(Default)]
struct Totals {
    cost: f64,
    lb_usage: f64,
    lb_requests: f64,
    lag: f64,
    demand_cpu_core_secs: f64,
    unserved_cpu_core_secs: f64,
    oom_kills: u64,
    pod_secs: f64,
    pending_pod_secs: f64,
    evictions: u64,
    resizes: u64,
    scale_ups: u64,
    scale_downs: u64,
}

/// Runs the scenario; `base_dir` is where relative paths (traces, catalog) start.
pub fn run(scenario: &Scenario, strategy: &str, base_dir: &Path) -> Result<Report, EngineError> {
    Ok(run_with(scenario, strategy, base_dir, RunOptions::default())?.report)
}

/// Runs with options, returning the node ledger too.
pub fn run_with(
    scenario: &Scenario,
    strategy: &str,
    base_dir: &Path,
    options: RunOptions,
) -> Result<Outcome, EngineError> {
    let demand = demand::build(scenario, base_dir)?;
    let mut sim = Sim::new(scenario, strategy, base_dir, &demand)?;
    sim.run(options)?;
    Ok(sim.finish())
}

/// Runs on demand built beforehand (benchmarks read traces outside the timed part).
pub fn run_on(
    scenario: &Scenario,
    strategy: &str,
    base_dir: &Path,
    demand: &[Demand],
) -> Result<Outcome, EngineError> {
    let mut sim = Sim::new(scenario, strategy, base_dir, demand)?;
    sim.run(RunOptions::default())?;
    Ok(sim.finish())
}

fn limits_of(w: &WorkloadSpec) -> Result<Resources, EngineError> {
    match &w.limits {
        None => Ok(Resources::new(i64::MAX, i64::MAX)),
        Some(l) => setup::resources(&format!("workloads[{}].limits", w.name), l),
    }
}

fn partial_limits(l: Resources) -> PartialResources {
    PartialResources {
        cpu_millis: (l.cpu_millis != i64::MAX).then_some(l.cpu_millis),
        memory_bytes: (l.memory_bytes != i64::MAX).then_some(l.memory_bytes),
    }
}

#[allow(clippy::cast_precision_loss)]
fn cores(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

#[allow(clippy::cast_precision_loss)]
fn gib(bytes: i64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0 * 1024.0)
}

struct Sim<'a> {
    scenario: &'a Scenario,
    strategy: String,
    steps: usize,
    step: i64,
    workloads: Vec<Workload>,
    groups: Vec<Group>,
    nodes: Vec<Node>,
    chain: Chain,
    templates: HashMap<String, NodeTemplate>,
    bound: FluidLowerBound,
    hpa_config: ControllerConfig,
    updater_config: UpdaterConfig,
    outages: Vec<(i64, i64)>,
    rng: ChaCha8Rng,
    last_scale_up: Option<i64>,
    records: Vec<StepRecord>,
    unserved: Vec<f64>,
    totals: Totals,
    // Scratch, reused every step so the per-pod work does not allocate.
    node_want: Vec<i64>,
    node_guaranteed: Vec<i64>,
    node_excess_weight: Vec<i64>,
    pod_want: Vec<i64>,
    /// Demand (millicores, bytes), step-major: one step's workloads are
    /// contiguous, so a step reads one cache-friendly run.
    demand_by_step: Vec<(i64, i64)>,
    /// Per step and workload (step-major): mean per-pod memory limit (or
    /// request) and per-pod memory usage; NaN when no pod ran.
    slack: Vec<(f64, f64)>,
    running: Vec<i64>,
    order: Vec<usize>,
    step_demand: Resources,
}

impl<'a> Sim<'a> {
    #[allow(clippy::too_many_lines)] // one flat setup
    fn new(
        scenario: &'a Scenario,
        strategy: &str,
        base_dir: &Path,
        demand: &'a [Demand],
    ) -> Result<Self, EngineError> {
        let resolved = setup::resolve_groups(scenario, base_dir)?;
        let spot_taint = Taint {
            key: SPOT_TAINT_KEY.to_owned(),
            value: "true".to_owned(),
            effect: TaintEffect::NoSchedule,
        };
        let mut templates = HashMap::new();
        let mut groups = Vec::with_capacity(resolved.len());
        for g in resolved {
            let taints = if g.capacity_type == CapacityType::Spot {
                vec![spot_taint.clone()]
            } else {
                Vec::new()
            };
            let mut labels = BTreeMap::new();
            labels.insert(
                "node.kubernetes.io/instance-type".to_owned(),
                g.instance_type.clone(),
            );
            let template = NodeTemplate {
                capacity: g.capacity,
                allocatable: g.allocatable,
                max_pods: g.max_pods,
                gpus: 0,
                labels,
                taints,
                price: PriceInputs {
                    instance_types: vec![g.instance_type.clone()],
                    capacity_type: match g.capacity_type {
                        CapacityType::OnDemand => tailor_core::catalog::CapacityType::OnDemand,
                        CapacityType::Spot => tailor_core::catalog::CapacityType::Spot,
                    },
                    // The group's billed price: the expander compares what is paid.
                    usd_per_hour: Some(g.price_per_hour),
                },
                exists: true,
            };
            let shape = template.shape();
            templates.insert(g.name.clone(), template);
            groups.push(Group {
                spec: g,
                shape,
                backoff_until: i64::MIN,
                backoff_secs: INITIAL_BACKOFF_SECS,
            });
        }
        let types: Vec<NodeType> = groups
            .iter()
            .map(|g| NodeType {
                name: g.spec.name.clone(),
                cpu_millis: g.spec.allocatable.cpu_millis,
                memory_bytes: g.spec.allocatable.memory_bytes,
                price_per_hour: g.spec.price_per_hour,
            })
            .collect();
        let bound = FluidLowerBound::new(&types)?;
        // Prices are explicit on every template; the rates only value pods.
        let rates = tailor_core::cost::Rates::from_catalog(&types)?;
        let pricing = RatePricing {
            rates: tailor_core::catalog::Rates {
                usd_per_vcpu_hour: rates.per_vcpu_hour,
                usd_per_gib_hour: rates.per_gib_hour,
            },
            spot_discount: None,
        };
        let priorities = match &scenario.priorities {
            None => None,
            Some(p) => {
                let yaml = serde_yaml::to_string(p).map_err(|e| EngineError::Invalid {
                    field: "priorities".into(),
                    message: e.to_string(),
                })?;
                Some(PriorityFilter::from_yaml(&yaml)?)
            }
        };
        let chain = Chain::build(
            &scenario.expander,
            &ChainConfig {
                pricing: Some(std::sync::Arc::new(pricing)),
                priorities,
                cost: tailor_core::expander::CostConfig::default(),
            },
        )?;

        let steps = demand::step_count(scenario);
        let step = scenario.step.seconds();
        let mut workloads = Vec::with_capacity(scenario.workloads.len());
        for w in &scenario.workloads {
            let requests =
                setup::resources(&format!("workloads[{}].requests", w.name), &w.requests)?;
            let limits = limits_of(w)?;
            let mut request_template = PodRequest::new(w.name.clone(), requests);
            request_template.priority = w.priority;
            if w.interruption_tolerant {
                request_template.tolerations.push(Toleration {
                    key: SPOT_TAINT_KEY.to_owned(),
                    operator: TolerationOperator::Exists,
                    value: String::new(),
                    effect: None,
                });
            }
            let hpa = match &w.hpa {
                None => None,
                Some(h) => Some((setup::hpa_spec(&w.name, h)?, HpaState::default())),
            };
            let vpa = match &w.vpa {
                None => None,
                Some(v) => {
                    let model = setup::vpa_model(&w.name, v)?;
                    let agg = AggregateContainerState::new(&model.aggregation, 0).map_err(|e| {
                        EngineError::Invalid {
                            field: format!("workloads[{}].vpa.recommender", w.name),
                            message: e.to_string(),
                        }
                    })?;
                    let mut containers = BTreeMap::new();
                    containers.insert(CONTAINER.to_owned(), agg);
                    Some(Vpa {
                        recommender: PodResourceRecommender::new(&model.estimation),
                        model,
                        containers,
                        recommendation: None,
                        admitted: None,
                    })
                }
            };
            let replicas = match &w.hpa {
                Some(h) => w.replicas.clamp(h.min_replicas, h.max_replicas),
                None => w.replicas,
            };
            workloads.push(Workload {
                name: w.name.clone(),
                priority: w.priority,
                base_requests: requests,
                base_limits: limits,
                request_template,
                replicas,
                hpa,
                vpa,
                pods: Vec::new(),
                hpa_pods: Vec::new(),
            });
        }
        if demand.len() != workloads.len() {
            return Err(EngineError::Invalid {
                field: "workloads".into(),
                message: format!(
                    "{} demand series for {} workloads",
                    demand.len(),
                    workloads.len()
                ),
            });
        }

        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed ^ OUTAGE_SALT);
        let horizon = scenario.duration.seconds();
        let mut outages: Vec<(i64, i64)> = scenario
            .spot
            .outages
            .iter()
            .map(|o| (o.start.seconds(), o.start.seconds() + o.duration.seconds()))
            .collect();
        if scenario.spot.outages_per_day > 0.0 {
            let mean_gap = 86_400.0 / scenario.spot.outages_per_day;
            let length = scenario.spot.outage_duration.map_or(3600, |d| d.seconds());
            let mut at = 0.0_f64;
            loop {
                let u: f64 = rng.random();
                at += -mean_gap * (1.0 - u).ln();
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let start = at as i64;
                #[allow(clippy::cast_precision_loss)]
                if at >= horizon as f64 {
                    break;
                }
                outages.push((start, start + length));
            }
        }
        outages.sort_unstable();

        let mut sim = Sim {
            scenario,
            strategy: strategy.to_owned(),
            steps,
            step,
            workloads,
            groups,
            nodes: Vec::new(),
            chain,
            templates,
            bound,
            hpa_config: ControllerConfig::default(),
            updater_config: UpdaterConfig::default(),
            outages,
            rng: ChaCha8Rng::seed_from_u64(scenario.seed ^ SPOT_SALT),
            last_scale_up: None,
            records: Vec::with_capacity(steps),
            unserved: Vec::with_capacity(steps),
            totals: Totals::default(),
            node_want: Vec::new(),
            node_guaranteed: Vec::new(),
            node_excess_weight: Vec::new(),
            pod_want: Vec::new(),
            demand_by_step: (0..steps)
                .flat_map(|k| {
                    demand.iter().map(move |d| {
                        (
                            d.cpu_millis.get(k).copied().unwrap_or(0),
                            d.memory_bytes.get(k).copied().unwrap_or(0),
                        )
                    })
                })
                .collect(),
            slack: vec![(f64::NAN, f64::NAN); steps * demand.len()],
            running: Vec::new(),
            order: Vec::new(),
            step_demand: Resources::ZERO,
        };
        // Initial nodes are ready at t=0; initial pods start pending and are
        // placed by the first step's scheduling.
        for gi in 0..sim.groups.len() {
            for _ in 0..sim.groups[gi].spec.initial_size {
                sim.nodes.push(Node {
                    group: gi,
                    requested_at: 0,
                    ready_at: 0,
                    ready: true,
                    alive: true,
                    billed: true,
                    removed_at: None,
                    used: Resources::ZERO,
                    pods: 0,
                    unneeded_since: None,
                });
            }
        }
        for wi in 0..sim.workloads.len() {
            for _ in 0..sim.workloads[wi].replicas {
                sim.add_pod(wi, 0);
            }
        }
        Ok(sim)
    }

    fn in_outage(&self, t: i64) -> bool {
        self.outages.iter().any(|&(s, e)| s <= t && t < e)
    }

    fn add_pod(&mut self, wi: usize, t: i64) {
        let w = &mut self.workloads[wi];
        let (requests, limits) = w
            .vpa
            .as_ref()
            .and_then(|v| v.admitted)
            .unwrap_or((w.base_requests, w.base_limits));
        let container = w
            .vpa
            .as_ref()
            .map(|v| ContainerState::new(requests, &v.model.aggregation));
        w.pods.push(Pod {
            node: NO_NODE,
            requests,
            limits,
            created_at: t,
            started_at: t,
            container,
            last_cpu_millis: 0,
            sampled: false,
            last_oom: None,
        });
    }

    fn unbind(nodes: &mut [Node], pod: &mut Pod) {
        if pod.node != NO_NODE {
            let n = &mut nodes[pod.node as usize];
            n.used = n.used.saturating_sub(pod.requests);
            n.pods = n.pods.saturating_sub(1);
            pod.node = NO_NODE;
        }
    }

    fn run(&mut self, options: RunOptions) -> Result<(), EngineError> {
        for k in 0..self.steps {
            #[allow(clippy::cast_possible_wrap)]
            let t = k as i64 * self.step;
            self.spot_events(t);
            self.provisioning(t);
            self.hpa(t);
            if t % VPA_INTERVAL_SECS < self.step.min(VPA_INTERVAL_SECS)
                || self.step >= VPA_INTERVAL_SECS
            {
                self.recommend(t);
                self.update(t);
            }
            self.schedule(t);
            self.scale_up(t, k);
            self.usage(t, k);
            self.scale_down(t);
            self.ledger(t, k)?;
            if options.check_invariants {
                self.check(t, k)?;
            }
        }
        Ok(())
    }

    fn spot_events(&mut self, t: i64) {
        let rate = self.scenario.spot.interruptions_per_node_day;
        if rate <= 0.0 {
            return;
        }
        #[allow(clippy::cast_precision_loss)]
        let p = (rate * self.step as f64 / 86_400.0).min(1.0);
        for ni in 0..self.nodes.len() {
            let n = &self.nodes[ni];
            if !n.alive || !n.ready || self.groups[n.group].spec.capacity_type != CapacityType::Spot
            {
                continue;
            }
            let u: f64 = self.rng.random();
            if u < p {
                let n = &mut self.nodes[ni];
                n.alive = false;
                n.removed_at = Some(t);
                self.evict_node_pods(ni, t);
            }
        }
    }

    /// Every pod on node `ni` goes back to pending (its node is gone).
    fn evict_node_pods(&mut self, ni: usize, t: i64) {
        #[allow(clippy::cast_possible_truncation)]
        let id = ni as u32;
        for w in &mut self.workloads {
            for p in &mut w.pods {
                if p.node == id {
                    Self::unbind(&mut self.nodes, p);
                    p.started_at = t;
                    p.sampled = false;
                }
            }
        }
    }

    fn provisioning(&mut self, t: i64) {
        let max_wait = MAX_PROVISION_FACTOR * self.scenario.provisioning_delay.seconds().max(60);
        for ni in 0..self.nodes.len() {
            let n = &mut self.nodes[ni];
            if !n.alive || n.ready {
                continue;
            }
            if n.ready_at <= t {
                n.ready = true;
                self.groups[n.group].backoff_secs = INITIAL_BACKOFF_SECS;
            } else if t - n.requested_at >= max_wait {
                // The instance never came: CA gives up and backs the group off,
                // so the next expander option gets its chance.
                n.alive = false;
                n.billed = false;
                n.removed_at = Some(t);
                let g = &mut self.groups[n.group];
                g.backoff_until = t + g.backoff_secs;
                g.backoff_secs = (g.backoff_secs * 2).min(MAX_BACKOFF_SECS);
            }
        }
    }

    fn hpa(&mut self, t: i64) {
        #[allow(clippy::cast_precision_loss)]
        let now = t as f64;
        #[allow(clippy::cast_precision_loss)]
        let window = self.step as f64;
        let mut observations = Vec::new();
        for wi in 0..self.workloads.len() {
            let w = &mut self.workloads[wi];
            let Some((spec, state)) = &mut w.hpa else {
                continue;
            };
            w.hpa_pods.clear();
            for p in &w.pods {
                let running = p.node != NO_NODE;
                #[allow(clippy::cast_precision_loss)]
                let start = p.started_at as f64;
                w.hpa_pods.push(HpaPod {
                    name: String::new(),
                    phase: if running {
                        PodPhase::Running
                    } else {
                        PodPhase::Pending
                    },
                    deleting: false,
                    start_time: running.then_some(start),
                    ready: running.then_some(ReadyCondition {
                        ready: true,
                        last_transition: start,
                    }),
                });
            }
            observations.clear();
            for m in spec.effective_metrics().iter() {
                let obs = match &m.source {
                    MetricSource::Resource { resource }
                    | MetricSource::ContainerResource { resource, .. } => {
                        let usage = w
                            .pods
                            .iter()
                            .map(|p| {
                                (p.node != NO_NODE && p.sampled).then(|| PodSample {
                                    value: match resource {
                                        ResourceName::Cpu => p.last_cpu_millis,
                                        // Memory usage is not tracked per pod; use requests share.
                                        ResourceName::Memory => {
                                            p.requests.memory_bytes.saturating_mul(1000)
                                        }
                                    },
                                    timestamp: now - window,
                                    window,
                                })
                            })
                            .collect();
                        let requests = w
                            .pods
                            .iter()
                            .map(|p| {
                                Some(match resource {
                                    ResourceName::Cpu => p.requests.cpu_millis,
                                    ResourceName::Memory => {
                                        p.requests.memory_bytes.saturating_mul(1000)
                                    }
                                })
                            })
                            .collect();
                        MetricObservation::Resource { usage, requests }
                    }
                    _ => MetricObservation::Unavailable("not simulated".to_owned()),
                };
                observations.push(obs);
            }
            let current = i32::try_from(w.replicas).unwrap_or(i32::MAX);
            let input = tailor_core::hpa::HpaInput {
                now,
                spec_replicas: current,
                status_replicas: i32::try_from(w.pods.len()).unwrap_or(i32::MAX),
                pods: &w.hpa_pods,
                observations: &observations,
            };
            // A failed sync keeps the current count, as the controller does.
            if let Ok(d) = reconcile(spec, &self.hpa_config, &input, state) {
                w.replicas = u32::try_from(d.desired_replicas.max(0)).unwrap_or(0);
            }
            self.reconcile_replicas(wi, t);
        }
    }

    /// Creates or deletes pods to match the workload's replica count. Deletes
    /// pending pods first, then the newest (the ReplicaSet's order, roughly).
    fn reconcile_replicas(&mut self, wi: usize, t: i64) {
        let target = self.workloads[wi].replicas as usize;
        while self.workloads[wi].pods.len() < target {
            self.add_pod(wi, t);
        }
        let w = &mut self.workloads[wi];
        while w.pods.len() > target {
            let idx = w
                .pods
                .iter()
                .rposition(|p| p.node == NO_NODE)
                .unwrap_or(w.pods.len() - 1);
            let mut p = w.pods.remove(idx);
            Self::unbind(&mut self.nodes, &mut p);
        }
    }

    fn recommend(&mut self, _t: i64) {
        for w in &mut self.workloads {
            let Some(v) = &mut w.vpa else {
                continue;
            };
            let rec = v.recommender.recommend(&v.model.policy, &v.containers);
            if rec.container_recommendations.is_empty() {
                continue;
            }
            // What the admission webhook would set on a new pod of this workload.
            let pod = AdmissionPod {
                containers: vec![AdmissionContainer::new(
                    CONTAINER,
                    w.base_requests.into(),
                    partial_limits(w.base_limits),
                )],
                has_annotations: false,
            };
            let patch = compute_pod_patch(
                &w.name,
                v.model.mode,
                &pod,
                &rec,
                &v.model.policy,
                &NamespaceLimits::default(),
            );
            v.admitted = if v.model.mode.applies_at_admission() {
                let mut requests = w.base_requests;
                let mut limits = w.base_limits;
                if let Some(Some(c)) = patch.containers.first() {
                    for r in ResourceName::ALL {
                        if let Some(x) = c.requests.get(r) {
                            requests = requests.with(r, x);
                        }
                        if let Some(x) = c.limits.get(r) {
                            limits = limits.with(r, x);
                        }
                    }
                }
                Some((requests, limits))
            } else {
                None
            };
            v.recommendation = Some(rec);
        }
    }

    fn update(&mut self, t: i64) {
        for wi in 0..self.workloads.len() {
            let w = &self.workloads[wi];
            let Some(v) = &w.vpa else {
                continue;
            };
            if !v.model.mode.updates_running_pods() {
                continue;
            }
            let (Some(rec), Some((new_req, new_lim))) = (&v.recommendation, v.admitted) else {
                continue;
            };
            let running: Vec<usize> = (0..w.pods.len())
                .filter(|&i| w.pods[i].node != NO_NODE)
                .collect();
            let pods: Vec<UpdaterPod> = running
                .iter()
                .map(|&i| {
                    let p = &w.pods[i];
                    UpdaterPod {
                        name: format!("{}-{i}", w.name),
                        namespace: "sim".to_owned(),
                        controller: Some(ControllerRef {
                            kind: "ReplicaSet".to_owned(),
                            name: w.name.clone(),
                            configured_replicas: Some(w.replicas),
                        }),
                        phase: tailor_core::update::PodPhase::Running,
                        is_mirror: false,
                        annotations: BTreeMap::new(),
                        started_at_secs: Some(p.started_at),
                        containers: vec![UpdaterContainer {
                            name: CONTAINER.to_owned(),
                            requests: p.requests.into(),
                            limits: partial_limits(p.limits),
                            last_oom_kill: p.last_oom,
                        }],
                    }
                })
                .collect();
            let mode = v.model.mode;
            let input = VpaUpdateInput {
                vpa_name: &w.name,
                mode,
                min_replicas: v.model.min_replicas,
                eviction_requirements: &[],
                resource_policy: &v.model.policy,
                recommendation: rec,
                limits: &NamespaceLimits::default(),
                pods: &pods,
            };
            let plan = decide_updates(&input, &self.updater_config, t);
            let chosen: Vec<usize> = plan
                .updates
                .iter()
                .filter(|d| matches!(d.action, Action::Update { .. }))
                .filter_map(|d| running.get(d.pod_index).copied())
                .collect();
            let aggregation = v.model.aggregation;
            for pi in chosen {
                let w = &mut self.workloads[wi];
                let p = &mut w.pods[pi];
                let ni = p.node as usize;
                let in_place = mode == UpdateMode::InPlaceOrRecreate && {
                    let n = &self.nodes[ni];
                    let after = n.used.saturating_sub(p.requests).saturating_add(new_req);
                    after.fits_within(&self.groups[n.group].spec.allocatable)
                };
                if in_place {
                    let n = &mut self.nodes[ni];
                    n.used = n.used.saturating_sub(p.requests).saturating_add(new_req);
                    p.requests = new_req;
                    p.limits = new_lim;
                    if let Some(c) = &mut p.container {
                        c.request = new_req;
                    }
                    self.totals.resizes += 1;
                } else {
                    // Evicted: the controller's replacement is a new pod, admitted
                    // with the new requests, pending until scheduled.
                    Self::unbind(&mut self.nodes, p);
                    p.requests = new_req;
                    p.limits = new_lim;
                    p.created_at = t;
                    p.started_at = t;
                    p.sampled = false;
                    p.last_oom = None;
                    p.container = Some(ContainerState::new(new_req, &aggregation));
                    self.totals.evictions += 1;
                }
            }
        }
    }

    /// Places pending pods on ready nodes: higher priority first, then
    /// workload order; each on the first node (creation order) it fits.
    fn schedule(&mut self, t: i64) {
        let mut order = std::mem::take(&mut self.order);
        if order.len() != self.workloads.len() {
            order = (0..self.workloads.len()).collect();
            order.sort_by_key(|&wi| std::cmp::Reverse(self.workloads[wi].priority));
        }
        for &wi in &order {
            let w = &mut self.workloads[wi];
            for p in &mut w.pods {
                if p.node != NO_NODE {
                    continue;
                }
                w.request_template.requests = p.requests;
                for ni in 0..self.nodes.len() {
                    let n = &self.nodes[ni];
                    if !n.alive || !n.ready {
                        continue;
                    }
                    let shape = &self.groups[n.group].shape;
                    if fits(&w.request_template, shape, n.used, n.pods).is_ok() {
                        let n = &mut self.nodes[ni];
                        n.used = n.used.saturating_add(p.requests);
                        n.pods += 1;
                        #[allow(clippy::cast_possible_truncation)]
                        {
                            p.node = ni as u32;
                        }
                        p.started_at = t;
                        p.sampled = false;
                        if let Some(c) = &mut p.container {
                            c.request = p.requests;
                        }
                        break;
                    }
                }
            }
        }
        self.order = order;
    }

    fn scale_up(&mut self, t: i64, k: usize) {
        // Pending pods that can trigger a scale-up.
        let mut pending: Vec<PodRequest> = Vec::new();
        for w in &self.workloads {
            if w.priority < EXPENDABLE_PRIORITY_CUTOFF {
                continue;
            }
            for p in w.pods.iter().filter(|p| p.node == NO_NODE) {
                let mut r = w.request_template.clone();
                r.requests = p.requests;
                pending.push(r);
            }
        }
        if pending.is_empty() {
            return;
        }
        // Pods that fit on nodes still booting wait for them (CA counts upcoming nodes).
        let mut upcoming: Vec<(usize, Resources, u32)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.alive && !n.ready)
            .map(|(i, n)| (i, n.used, n.pods))
            .collect();
        pending.retain(|pod| {
            for (ni, used, count) in &mut upcoming {
                let shape = &self.groups[self.nodes[*ni].group].shape;
                if fits(pod, shape, *used, *count).is_ok() {
                    *used = used.saturating_add(pod.requests);
                    *count += 1;
                    return false;
                }
            }
            true
        });
        if pending.is_empty() {
            return;
        }
        let mut options = Vec::new();
        for (gi, g) in self.groups.iter().enumerate() {
            if g.backoff_until > t {
                continue;
            }
            let count = self
                .nodes
                .iter()
                .filter(|n| n.alive && n.group == gi)
                .count();
            let room = (g.spec.max_size as usize).saturating_sub(count);
            if room == 0 {
                continue;
            }
            let packing = pack_first_fit_decreasing(&pending, &g.shape, Some(room));
            if packing.node_count() == 0 {
                continue;
            }
            options.push(ExpansionOption {
                node_group_id: g.spec.name.clone(),
                node_count: u32::try_from(packing.node_count()).unwrap_or(u32::MAX),
                pods: packing.placed().map(|i| pending[i].clone()).collect(),
                debug: String::new(),
            });
        }
        if options.is_empty() {
            return;
        }
        let ctx = ExpansionContext {
            templates: &self.templates,
            cluster_node_count: self.nodes.iter().filter(|n| n.alive).count(),
            seed: self.scenario.seed ^ (k as u64),
        };
        let decision = self.chain.decide(&options, &ctx);
        let Some(chosen) = decision.chosen else {
            return;
        };
        let Some(gi) = self
            .groups
            .iter()
            .position(|g| g.spec.name == chosen.node_group_id)
        else {
            return;
        };
        let count = chosen.node_count;
        let spot = self.groups[gi].spec.capacity_type == CapacityType::Spot;
        let ready_at = if spot && self.in_outage(t) {
            i64::MAX
        } else {
            t + self.scenario.provisioning_delay.seconds()
        };
        for _ in 0..count {
            self.nodes.push(Node {
                group: gi,
                requested_at: t,
                ready_at,
                ready: false,
                alive: true,
                billed: true,
                removed_at: None,
                used: Resources::ZERO,
                pods: 0,
                unneeded_since: None,
            });
        }
        self.totals.scale_ups += u64::from(count);
        self.last_scale_up = Some(t);
    }

    /// Serves demand: each workload's demand split evenly over its running
    /// pods, capped by limits, then by node contention (requests guaranteed,
    /// spare CPU shared by request weight). Memory above the limit is an OOM kill.
    #[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
    fn usage(&mut self, t: i64, k: usize) {
        let n_nodes = self.nodes.len();
        self.node_want.clear();
        self.node_want.resize(n_nodes, 0);
        self.node_guaranteed.clear();
        self.node_guaranteed.resize(n_nodes, 0);
        self.node_excess_weight.clear();
        self.node_excess_weight.resize(n_nodes, 0);
        let step_secs = self.step as f64;
        let mut demand_cpu = 0i64;
        let mut demand_mem = 0i64;
        let mut unserved = 0i64;
        // Pass 1: what each pod wants after limits and OOMs.
        self.pod_want.clear();
        self.running.clear();
        let nw = self.workloads.len();
        for (wi, w) in self.workloads.iter_mut().enumerate() {
            let (cpu, mem) = self.demand_by_step[k * nw + wi];
            demand_cpu += cpu;
            demand_mem += mem;
            let running = w.pods.iter().filter(|p| p.node != NO_NODE).count() as i64;
            self.running.push(running);
            self.totals.pod_secs += running as f64 * step_secs;
            if running == 0 {
                unserved += cpu;
                continue;
            }
            let cpu_share = cpu / running;
            let cpu_rem = cpu % running;
            let mem_share = mem / running;
            let mut i = 0i64;
            let mut limit_sum = 0.0;
            for p in &mut w.pods {
                if p.node == NO_NODE {
                    continue;
                }
                // Spread the remainder so the shares sum exactly to the demand.
                let share = cpu_share + i64::from(i < cpu_rem);
                i += 1;
                limit_sum += if p.limits.memory_bytes == i64::MAX {
                    p.requests.memory_bytes
                } else {
                    p.limits.memory_bytes
                } as f64;
                let want = if mem_share > p.limits.memory_bytes {
                    // OOM kill: the container restarts and serves nothing this step.
                    self.totals.oom_kills += 1;
                    if let (Some(v), Some(c)) = (&mut w.vpa, &mut p.container)
                        && let Some(agg) = v.containers.values_mut().next()
                    {
                        let _ = c.record_oom(agg, t, p.requests.memory_bytes);
                    }
                    p.last_oom = Some(OomKill {
                        started_at_secs: p.started_at,
                        finished_at_secs: t,
                    });
                    p.started_at = t;
                    unserved += share;
                    -1
                } else {
                    let want = share.min(p.limits.cpu_millis);
                    unserved += share - want;
                    want
                };
                self.pod_want.push(want);
                if want > 0 {
                    let ni = p.node as usize;
                    let g = want.min(p.requests.cpu_millis);
                    self.node_want[ni] += want;
                    self.node_guaranteed[ni] += g;
                    if want > g {
                        self.node_excess_weight[ni] += p.requests.cpu_millis.max(1);
                    }
                }
            }
            let first_limit = w
                .pods
                .iter()
                .find(|p| p.node != NO_NODE)
                .map_or(i64::MAX, |p| p.limits.memory_bytes);
            self.slack[k * nw + wi] = (
                limit_sum / running as f64,
                mem_share.min(first_limit) as f64,
            );
        }
        // Pass 2: node contention.
        let mut served = 0i64;
        let mut used_mem = 0i64;
        let mut wi_idx = 0usize;
        for (wi, w) in self.workloads.iter_mut().enumerate() {
            let mem = self.demand_by_step[k * nw + wi].1;
            let running = self.running[wi];
            let mem_share = if running > 0 { mem / running } else { 0 };
            for p in &mut w.pods {
                if p.node == NO_NODE {
                    continue;
                }
                let want = self.pod_want[wi_idx];
                wi_idx += 1;
                if want < 0 {
                    p.last_cpu_millis = 0;
                    p.sampled = true;
                    continue;
                }
                let ni = p.node as usize;
                let alloc = self.groups[self.nodes[ni].group]
                    .spec
                    .allocatable
                    .cpu_millis;
                let got = if self.node_want[ni] <= alloc {
                    want
                } else {
                    let g = want.min(p.requests.cpu_millis);
                    let spare = (alloc - self.node_guaranteed[ni]).max(0);
                    let weight = self.node_excess_weight[ni].max(1);
                    let extra = if want > g {
                        ((i128::from(spare) * i128::from(p.requests.cpu_millis.max(1)))
                            / i128::from(weight)) as i64
                    } else {
                        0
                    };
                    // Guaranteed parts can exceed a node only if requests do, which fits() forbids.
                    (g + extra).min(want)
                };
                unserved += want - got;
                served += got;
                used_mem += mem_share.min(p.limits.memory_bytes);
                p.last_cpu_millis = got;
                p.sampled = true;
                if let (Some(v), Some(c)) = (&mut w.vpa, &mut p.container)
                    && let Some(agg) = v.containers.values_mut().next()
                {
                    let _ = c.add_cpu_sample(agg, t, cores(got));
                    #[allow(clippy::cast_precision_loss)]
                    let _ = c.add_memory_sample(agg, t, mem_share as f64);
                }
            }
        }
        self.totals.demand_cpu_core_secs += cores(demand_cpu) * step_secs;
        self.totals.unserved_cpu_core_secs += cores(unserved) * step_secs;
        self.unserved.push(cores(unserved));
        let pending: u32 = self
            .workloads
            .iter()
            .map(|w| w.pods.iter().filter(|p| p.node == NO_NODE).count() as u32)
            .sum();
        self.totals.pending_pod_secs += f64::from(pending) * step_secs;
        self.records.push(StepRecord {
            t,
            demanded_cpu_cores: cores(demand_cpu),
            used_cpu_cores: cores(served),
            used_memory_gib: gib(used_mem),
            pending_pods: pending,
            ..StepRecord::default()
        });
        self.step_demand = Resources::new(demand_cpu, demand_mem);
    }

    fn scale_down(&mut self, t: i64) {
        let sd = &self.scenario.scale_down;
        if !sd.enabled {
            for n in &mut self.nodes {
                n.unneeded_since = None;
            }
            return;
        }
        let cooling = self
            .last_scale_up
            .is_some_and(|u| t - u < sd.delay_after_add.seconds());
        let mut alive_per_group = vec![0u32; self.groups.len()];
        for n in self.nodes.iter().filter(|n| n.alive) {
            alive_per_group[n.group] += 1;
        }
        for ni in 0..self.nodes.len() {
            let n = &self.nodes[ni];
            if !n.alive || !n.ready {
                continue;
            }
            let g = &self.groups[n.group].spec;
            #[allow(clippy::cast_precision_loss)]
            let util = (n.used.cpu_millis as f64 / g.allocatable.cpu_millis as f64)
                .max(n.used.memory_bytes as f64 / g.allocatable.memory_bytes as f64);
            let candidate =
                util < sd.utilization_threshold && alive_per_group[n.group] > g.min_size;
            let n = &mut self.nodes[ni];
            if !candidate {
                n.unneeded_since = None;
                continue;
            }
            let since = *n.unneeded_since.get_or_insert(t);
            if cooling || t - since < sd.unneeded_time.seconds() {
                continue;
            }
            if self.try_drain(ni, t) {
                let n = &mut self.nodes[ni];
                n.alive = false;
                n.unneeded_since = None;
                // Removed at the end of this step: billed through it.
                n.removed_at = Some(t + self.step);
                alive_per_group[n.group] -= 1;
                self.totals.scale_downs += 1;
            }
        }
    }

    /// Moves every pod of node `ni` to other ready nodes if all fit; false
    /// (and nothing moved) otherwise.
    fn try_drain(&mut self, ni: usize, t: i64) -> bool {
        #[allow(clippy::cast_possible_truncation)]
        let id = ni as u32;
        let mut used: Vec<(Resources, u32)> = self.nodes.iter().map(|n| (n.used, n.pods)).collect();
        let mut moves: Vec<(usize, usize, usize)> = Vec::new();
        for (wi, w) in self.workloads.iter_mut().enumerate() {
            for (pi, p) in w.pods.iter().enumerate() {
                if p.node != id {
                    continue;
                }
                w.request_template.requests = p.requests;
                let target = (0..self.nodes.len()).find(|&oi| {
                    let o = &self.nodes[oi];
                    oi != ni
                        && o.alive
                        && o.ready
                        && fits(
                            &w.request_template,
                            &self.groups[o.group].shape,
                            used[oi].0,
                            used[oi].1,
                        )
                        .is_ok()
                });
                let Some(oi) = target else {
                    return false;
                };
                used[oi].0 = used[oi].0.saturating_add(p.requests);
                used[oi].1 += 1;
                moves.push((wi, pi, oi));
            }
        }
        for (wi, pi, oi) in moves {
            let p = &mut self.workloads[wi].pods[pi];
            Self::unbind(&mut self.nodes, p);
            let o = &mut self.nodes[oi];
            o.used = o.used.saturating_add(p.requests);
            o.pods += 1;
            #[allow(clippy::cast_possible_truncation)]
            {
                p.node = oi as u32;
            }
            // Drained pods restart elsewhere.
            p.started_at = t;
            p.sampled = false;
        }
        true
    }

    fn ledger(&mut self, t: i64, k: usize) -> Result<(), EngineError> {
        #[allow(clippy::cast_precision_loss)]
        let hours = self.step as f64 / 3600.0;
        let mut cost = 0.0;
        let mut lag = 0.0;
        let mut nodes = vec![0u32; self.groups.len()];
        let mut alloc = Resources::ZERO;
        let mut requested = Resources::ZERO;
        for n in &self.nodes {
            let billed = n.billed
                && n.ready_at != i64::MAX
                && n.requested_at <= t
                && n.removed_at.is_none_or(|r| r > t);
            if !billed {
                continue;
            }
            let price = self.groups[n.group].spec.price_per_hour * hours;
            cost += price;
            nodes[n.group] += 1;
            if n.unneeded_since.is_some() {
                lag += price;
            }
            if n.alive && n.ready {
                alloc = alloc.saturating_add(self.groups[n.group].spec.allocatable);
                requested = requested.saturating_add(n.used);
            }
        }
        let mut all_requests = Resources::ZERO;
        let mut replicas = 0u32;
        for w in &self.workloads {
            for p in &w.pods {
                all_requests = all_requests.saturating_add(p.requests);
                if p.node != NO_NODE {
                    replicas += 1;
                }
            }
        }
        let _ = k;
        let demand = self.step_demand;
        let lb_u = self.bound.cost_per_hour(demand)? * hours;
        let lb_r = self.bound.cost_per_hour(all_requests)? * hours;
        self.totals.cost += cost;
        self.totals.lag += lag;
        self.totals.lb_usage += lb_u;
        self.totals.lb_requests += lb_r;
        if let Some(r) = self.records.last_mut() {
            r.cost_usd = cost;
            r.nodes = nodes;
            r.allocatable_cpu_cores = cores(alloc.cpu_millis);
            r.allocatable_memory_gib = gib(alloc.memory_bytes);
            r.requested_cpu_cores = cores(requested.cpu_millis);
            r.requested_memory_gib = gib(requested.memory_bytes);
            r.replicas = replicas;
            r.lower_bound_usage_usd = lb_u;
            r.lower_bound_requests_usd = lb_r;
        }
        Ok(())
    }

    fn check(&self, t: i64, k: usize) -> Result<(), EngineError> {
        let fail = |message: String| Err(EngineError::Invariant { t, message });
        let mut used = vec![(Resources::ZERO, 0u32); self.nodes.len()];
        for w in &self.workloads {
            for p in &w.pods {
                if p.node == NO_NODE {
                    continue;
                }
                let n = &self.nodes[p.node as usize];
                if !n.alive || !n.ready {
                    return fail(format!(
                        "a pod of {} is on a removed or unready node",
                        w.name
                    ));
                }
                let u = &mut used[p.node as usize];
                u.0 = u.0.saturating_add(p.requests);
                u.1 += 1;
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !n.alive {
                continue;
            }
            if used[i].0 != n.used || used[i].1 != n.pods {
                return fail(format!(
                    "node {i} books {:?} but holds {:?}",
                    n.used, used[i].0
                ));
            }
            let g = &self.groups[n.group];
            if !n.used.fits_within(&g.spec.allocatable) || n.pods > g.spec.max_pods {
                return fail(format!("node {i} is over allocatable"));
            }
        }
        let r = self.records.get(k);
        let unserved = self.unserved.get(k).copied().unwrap_or(0.0);
        if let Some(r) = r {
            if (r.demanded_cpu_cores - r.used_cpu_cores - unserved).abs() > 1e-6 {
                return fail(format!(
                    "demand {} != served {} + unserved {unserved}",
                    r.demanded_cpu_cores, r.used_cpu_cores
                ));
            }
            if r.used_cpu_cores > r.allocatable_cpu_cores + 1e-9 {
                return fail("served CPU above allocatable".into());
            }
        }
        Ok(())
    }

    #[allow(clippy::cast_precision_loss)]
    fn finish(self) -> Outcome {
        let t = &self.totals;
        let hours = (self.steps as f64 * self.step as f64) / 3600.0;
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let steps_per_day = (86_400 / self.step.max(1)).max(1) as usize;
        let mut slacks = Vec::new();
        let mut usage: Vec<f64> = Vec::with_capacity(steps_per_day);
        let nw = self.workloads.len();
        for wi in 0..nw {
            for day in 0..self.steps.div_ceil(steps_per_day) {
                let range = day * steps_per_day..((day + 1) * steps_per_day).min(self.steps);
                usage.clear();
                usage.extend(
                    range
                        .clone()
                        .map(|k| self.slack[k * nw + wi].1)
                        .filter(|u| !u.is_nan()),
                );
                let (sum, n) = range
                    .map(|k| self.slack[k * nw + wi].0)
                    .filter(|u| !u.is_nan())
                    .fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
                if usage.is_empty() || n == 0 {
                    continue;
                }
                // p95, nearest rank.
                let idx = ((usage.len() as f64 * 0.95).ceil() as usize).clamp(1, usage.len()) - 1;
                let (_, p95, _) = usage.select_nth_unstable_by(idx, f64::total_cmp);
                let p95 = *p95;
                let limit = sum / n as f64;
                if limit > 0.0 {
                    slacks.push((limit - p95) / limit);
                }
            }
        }
        let relative_slack_mean = if slacks.is_empty() {
            0.0
        } else {
            slacks.iter().sum::<f64>() / slacks.len() as f64
        };
        let pod_days = t.pod_secs / 86_400.0;
        let summary = Summary {
            scenario: self.scenario.name.clone(),
            strategy: self.strategy.clone(),
            seed: self.scenario.seed,
            hours,
            total_cost_usd: t.cost,
            cost_per_hour_usd: ratio(t.cost, hours),
            lower_bound_usage_usd: t.lb_usage,
            lower_bound_requests_usd: t.lb_requests,
            cost_over_lower_bound_usage: ratio(t.cost, t.lb_usage),
            cost_over_lower_bound_requests: ratio(t.cost, t.lb_requests),
            waste: WasteBreakdown {
                sizing_slack_usd: t.lb_requests - t.lb_usage,
                packing_loss_usd: t.cost - t.lb_requests - t.lag,
                scale_down_lag_usd: t.lag,
            },
            unserved_cpu_core_hours: t.unserved_cpu_core_secs / 3600.0,
            unserved_cpu_fraction: ratio(t.unserved_cpu_core_secs, t.demand_cpu_core_secs),
            oom_kills: t.oom_kills,
            relative_oom_rate: ratio(t.oom_kills as f64, pod_days),
            pending_pod_minutes: t.pending_pod_secs / 60.0,
            relative_slack_mean,
            evictions: t.evictions,
            resizes: t.resizes,
            node_scale_ups: t.scale_ups,
            node_scale_downs: t.scale_downs,
        };
        let nodes = self
            .nodes
            .iter()
            .map(|n| NodeRecord {
                group: n.group,
                requested_at: n.requested_at,
                ready_at: n.ready.then_some(n.ready_at).filter(|&r| r != i64::MAX),
                removed_at: n.removed_at,
                // A spot request still waiting out an outage when the run
                // ends never arrived: the steps did not bill it, nor does the
                // record.
                billed: n.billed && n.ready_at != i64::MAX,
            })
            .collect();
        Outcome {
            report: Report {
                node_groups: self.groups.iter().map(|g| g.spec.name.clone()).collect(),
                step_seconds: self.step,
                steps: self.records,
                summary,
            },
            nodes,
            group_prices: self.groups.iter().map(|g| g.spec.price_per_hour).collect(),
            unserved_cpu_cores: self.unserved,
        }
    }
}

#[cfg(test)]
mod tests;
