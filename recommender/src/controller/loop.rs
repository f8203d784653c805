//! One controller step: gather (the caller's snapshot of VPAs, pods, HPAs and
//! target selectors) → update (pods → containers, fresh samples) → recommend
//! → the statuses to write. [`Recommender::step`] is pure; [`write`] does the
//! API calls the step asks for and counts what failed.

use super::conditions::{self, Outcome};
use super::oom::{self, ContainerStatusInfo};
pub use super::state::OomEvent;
use super::state::{AggregateKey, ClusterState, ObservedContainer, OomStats, SampleStats, VpaKey};
use super::writer;
use crate::prom::{ContainerKey, History};
use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt as _;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tailor_api::VerticalPodAutoscaler;
use tailor_api::VerticalPodAutoscalerStatus;
use tailor_api::convert;
use tailor_api::selector::{Operator, Selector};
use tailor_api::vpa::RecommendedPodResources;
use tailor_api::vpa::{VerticalPodAutoscalerCondition, VerticalPodAutoscalerSpec};
use tailor_core::catalog::Rates;
use tailor_core::policy::PodRecommendation;
use tailor_core::recommender::{
    CostAwareQuantile, PodResourceRecommender, RecommenderError, Timestamp, estimator,
};
use tailor_core::resources::Resources;
pub use tailor_runtime::scale::LookupError;

/// Per-VPA cost policy annotation: `off`, `newsvendor` (the global
/// `--under-provisioning-penalty`) or `newsvendor:<$ per core-hour>`.
pub const COST_POLICY_ANNOTATION: &str = "tailor.dev/cost-policy";
/// Hours in a month, for monthly costs (as the report).
pub const HOURS_PER_MONTH: f64 = crate::report::HOURS_PER_MONTH;

/// Resolves a VPA's `targetRef` to the selector of its pods.
pub trait TargetLookup {
    /// The selector of the pods `target` (in `namespace`) manages.
    ///
    /// # Errors
    /// Unknown kind, missing object, or an invalid selector.
    fn selector(
        &self,
        namespace: &str,
        target: &CrossVersionObjectReference,
    ) -> Result<Selector, LookupError>;
}

/// What the controller keeps of a VPA: only what a step reads, because the
/// cache holds every VPA in the cluster and, during a step, the VPAs the
/// watch delivers back after the status writes too. The status
/// recommendation (four quantity maps per container, about 2.5 KiB) becomes
/// a digest: the step only needs to know whether the one it computes
/// differs. The resource policy is parsed once as the VPA arrives, so a bad
/// one is reported each step without the object being kept.
#[derive(Clone, Debug)]
pub struct VpaInfo {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    uid: Option<String>,
    /// `spec.targetRef` and `spec.recommenders`; the update and resource
    /// policies and the startup boost are dropped (the policy is kept parsed).
    pub spec: VerticalPodAutoscalerSpec,
    policy: Result<tailor_core::policy::ResourcePolicy, String>,
    cost_policy: Option<String>,
    conditions: Vec<VerticalPodAutoscalerCondition>,
    observed_generation: Option<i64>,
    recommendation_digest: Option<u64>,
}

impl VpaInfo {
    /// The parts of `vpa` the controller reads, and its recommendation's digest.
    #[must_use]
    pub fn new(vpa: VerticalPodAutoscaler) -> Self {
        // Parsed from the whole object, so errors name the VPA as before.
        let policy = convert::resource_policy(&vpa).map_err(|e| e.to_string());
        let VerticalPodAutoscaler {
            metadata,
            mut spec,
            status,
        } = vpa;
        spec.update_policy = None;
        spec.resource_policy = None;
        spec.startup_boost = None;
        let cost_policy = metadata
            .annotations
            .and_then(|mut a| a.remove(COST_POLICY_ANNOTATION));
        let (conditions, observed_generation, recommendation_digest) = match status {
            Some(s) => (
                s.conditions.unwrap_or_default(),
                s.observed_generation,
                s.recommendation.as_ref().map(recommendation_digest),
            ),
            None => (Vec::new(), None, None),
        };
        VpaInfo {
            namespace: metadata.namespace.unwrap_or_default(),
            name: metadata.name.unwrap_or_default(),
            uid: metadata.uid,
            spec,
            policy,
            cost_policy,
            conditions,
            observed_generation,
            recommendation_digest,
        }
    }

    /// The VPA's key.
    #[must_use]
    pub fn key(&self) -> VpaKey {
        VpaKey::new(self.namespace.clone(), self.name.clone())
    }

    /// A reference to the VPA, for the Events about it (as
    /// `kube::Resource::object_ref` builds from the whole object).
    #[must_use]
    pub fn object_ref(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        use kube::Resource as _;
        k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some(VerticalPodAutoscaler::api_version(&()).into_owned()),
            kind: Some(VerticalPodAutoscaler::kind(&()).into_owned()),
            name: Some(self.name.clone()),
            namespace: Some(self.namespace.clone()),
            uid: self.uid.clone(),
            ..Default::default()
        }
    }

    /// `spec.resourcePolicy`, parsed, or why it does not parse.
    pub fn policy(&self) -> Result<&tailor_core::policy::ResourcePolicy, &str> {
        self.policy.as_ref().map_err(String::as_str)
    }

    /// The `tailor.dev/cost-policy` annotation, when present.
    #[must_use]
    pub fn cost_policy(&self) -> Option<&str> {
        self.cost_policy.as_deref()
    }

    /// `status.conditions` (empty when absent).
    #[must_use]
    pub fn conditions(&self) -> &[VerticalPodAutoscalerCondition] {
        &self.conditions
    }

    /// `status.observedGeneration`.
    #[must_use]
    pub fn observed_generation(&self) -> Option<i64> {
        self.observed_generation
    }

    /// The digest of the status recommendation the VPA carries.
    #[must_use]
    pub fn recommendation_digest(&self) -> Option<u64> {
        self.recommendation_digest
    }
}

impl From<VerticalPodAutoscaler> for VpaInfo {
    fn from(vpa: VerticalPodAutoscaler) -> Self {
        VpaInfo::new(vpa)
    }
}

/// A digest of a status recommendation: equal digests mean equal JSON (the
/// API server stores a CRD's status as written, so what was applied comes
/// back byte for byte). `DefaultHasher::new()` has fixed keys, so digests are
/// stable within the process, which is all the cache needs.
#[must_use]
pub fn recommendation_digest(r: &RecommendedPodResources) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(r).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// What a step reads: the watch caches' contents.
#[derive(Clone, Copy)]
pub struct Snapshot<'a> {
    /// Every VPA in the cluster (filtered by recommender name in the step).
    pub vpas: &'a [Arc<VpaInfo>],
    /// Every pod, as much of it as the controller keeps.
    pub pods: &'a [Arc<PodInfo>],
    /// Every `autoscaling/v2` HPA.
    pub hpas: &'a [Arc<HorizontalPodAutoscaler>],
    /// The targets' selectors.
    pub targets: &'a dyn TargetLookup,
    /// OOM kills seen since the last step.
    pub ooms: &'a [OomEvent],
}

/// What the controller keeps of a pod: a full `Pod` is several KiB, this is
/// about 200 bytes (10,000 pods: 2 MiB instead of 80).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels (matched against target selectors).
    pub labels: BTreeMap<String, String>,
    /// `Succeeded` or `Failed`: no longer runs.
    pub terminal: bool,
    /// Containers (not init containers) and their requests.
    pub containers: Vec<(String, Resources)>,
    /// Their statuses, for OOM detection.
    pub statuses: Vec<ContainerStatusInfo>,
}

impl PodInfo {
    /// The parts of `pod` the controller uses.
    #[must_use]
    pub fn from_pod(pod: &Pod) -> Self {
        PodInfo {
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
            labels: pod.labels().clone(),
            terminal: is_terminal(pod),
            containers: pod
                .spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .map(|c| (c.name.clone(), container_requests(c)))
                .collect(),
            statuses: oom::container_statuses(pod),
        }
    }
}

/// How cost-aware CPU targets are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostConfig {
    /// Prices.
    pub rates: Rates,
    /// The policy for VPAs without the annotation (`None`: upstream's percentile).
    pub default_policy: Option<CostAwareQuantile>,
    /// The global under-provisioning penalty, for `newsvendor` annotations.
    pub penalty: Option<f64>,
    /// Quantile clamp of the newsvendor policy.
    pub min_quantile: f64,
    /// Quantile clamp of the newsvendor policy.
    pub max_quantile: f64,
}

impl CostConfig {
    /// The CPU target policy of one VPA: its annotation, else the default.
    ///
    /// # Errors
    /// An annotation that does not parse or gives an invalid policy, named.
    pub fn policy_for(&self, vpa: &VpaInfo) -> Result<Option<CostAwareQuantile>, String> {
        let Some(value) = vpa.cost_policy() else {
            return Ok(self.default_policy);
        };
        let bad = |why: &str| {
            format!("metadata.annotations[{COST_POLICY_ANNOTATION}] = {value:?}: {why}")
        };
        let value_trimmed = value.trim();
        let penalty = match value_trimmed.split_once(':') {
            None if value_trimmed == "off" => return Ok(None),
            None if value_trimmed == "newsvendor" => self.penalty.ok_or_else(|| {
                bad("needs --under-provisioning-penalty, or write newsvendor:<$ per core-hour>")
            })?,
            Some((policy, p)) if policy.trim() == "newsvendor" => p
                .trim()
                .parse::<f64>()
                .map_err(|_| bad("the penalty is not a number"))?,
            _ => {
                return Err(bad(
                    "expected off, newsvendor or newsvendor:<$ per core-hour>",
                ));
            }
        };
        let q = CostAwareQuantile {
            over_provision_cost_per_core_hour: self.rates.usd_per_vcpu_hour,
            under_provision_penalty_per_core_hour: penalty,
            min_quantile: self.min_quantile,
            max_quantile: self.max_quantile,
        };
        q.validate().map_err(|e| bad(&e.to_string()))?;
        Ok(Some(q))
    }
}

/// Monthly cost of a VPA's running pods: as requested now and as recommended.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MonthlyCost {
    /// Current requests, USD per month.
    pub current: f64,
    /// Recommended targets (current requests where none), USD per month.
    pub recommended: f64,
}

/// The step's conclusion for one VPA.
#[derive(Clone, Debug)]
pub struct VpaResult {
    /// The VPA.
    pub key: VpaKey,
    /// What was concluded.
    pub outcome: Outcome,
    /// The status to apply, only when it differs from the VPA's current one
    /// (unchanged statuses are dropped at once: 10,000 of them are 25 MiB).
    pub status: Option<VerticalPodAutoscalerStatus>,
    /// True when the HPA-conflict warning is new (emit the Event).
    pub conflict_started: bool,
    /// The recommendation, when one was computed.
    pub recommendation: Option<PodRecommendation>,
    /// Costs, when pods matched.
    pub cost: Option<MonthlyCost>,
}

/// What one step did.
#[derive(Clone, Debug, Default)]
pub struct StepOutput {
    /// One entry per VPA this recommender handles, in key order.
    pub results: Vec<VpaResult>,
    /// Samples taken in.
    pub samples: SampleStats,
    /// Every VPA in the cluster.
    pub existing_vpas: BTreeSet<VpaKey>,
    /// The VPAs this recommender handles.
    pub ours: BTreeSet<VpaKey>,
    /// Aggregates dropped by GC this step.
    pub collected: Vec<AggregateKey>,
    /// Pods matched by more than one VPA (fed to the first only).
    pub contested_pods: usize,
    /// What became of the OOM kills given to the step.
    pub ooms: OomStats,
}

/// A step between its two halves: the samples are in, the VPAs matched; the
/// recommendations and statuses are not built yet.
pub struct Pending {
    /// The step's output so far (`results` empty).
    pub out: StepOutput,
    matched: Vec<Matched>,
    time: Time,
}

impl Pending {
    /// Each VPA's result, built when the iterator is advanced: a caller
    /// that writes each status before taking the next holds one status at a
    /// time instead of all of them (10,000 decoded statuses are ~30 MiB).
    pub fn results<'a>(
        self,
        recommender: &'a Recommender,
        hpas: &'a [Arc<HorizontalPodAutoscaler>],
    ) -> (StepOutput, impl Iterator<Item = VpaResult> + Send + 'a) {
        let time = self.time;
        let results = self
            .matched
            .into_iter()
            .map(move |m| recommender.evaluate(m, hpas, &time));
        (self.out, results)
    }
}

/// The recommender's state between steps.
#[derive(Debug)]
pub struct Recommender {
    /// Which VPAs are ours (`spec.recommenders[0].name`, `default` semantics).
    pub name: String,
    /// Cost policy configuration.
    pub cost: CostConfig,
    /// The aggregates.
    pub state: ClusterState,
    /// Set while the initial history load from Prometheus has not
    /// completed: why (the `FetchingHistory` condition's message).
    pub fetching_history: Option<String>,
}

fn now_time(now: Timestamp) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(now).unwrap_or_default())
}

/// Requests of a pod's container (absent or unparseable: zero, as upstream).
fn container_requests(c: &k8s_openapi::api::core::v1::Container) -> Resources {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    match convert::partial_resources(requests) {
        Ok(p) => Resources::new(p.cpu_millis.unwrap_or(0), p.memory_bytes.unwrap_or(0)),
        Err(_) => Resources::ZERO,
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The message of the HPA-conflict warning when an HPA in the VPA's namespace
/// scales the same target on CPU or memory (an HPA with no metrics defaults to
/// CPU utilization).
#[must_use]
pub fn hpa_conflict(vpa: &VpaInfo, hpas: &[Arc<HorizontalPodAutoscaler>]) -> Option<String> {
    let ns = vpa.namespace.as_str();
    let target = &vpa.spec.target_ref;
    hpas.iter().find_map(|hpa| {
        let spec = hpa.spec.as_ref()?;
        if hpa.namespace().unwrap_or_default() != ns
            || spec.scale_target_ref.kind != target.kind
            || spec.scale_target_ref.name != target.name
        {
            return None;
        }
        let mut resources: BTreeSet<&str> = BTreeSet::new();
        match spec.metrics.as_deref() {
            None | Some([]) => {
                resources.insert("cpu");
            }
            Some(metrics) => {
                for m in metrics {
                    if let Some(r) = &m.resource {
                        resources.insert(r.name.as_str());
                    }
                    if let Some(r) = &m.container_resource {
                        resources.insert(r.name.as_str());
                    }
                }
            }
        }
        resources.retain(|r| *r == "cpu" || *r == "memory");
        (!resources.is_empty()).then(|| {
            format!(
                "HorizontalPodAutoscaler {ns}/{} also scales {} {:?} on {}: the two fight (VPA changes the requests the HPA's utilization is measured against)",
                hpa.name_any(),
                target.kind,
                target.name,
                resources.into_iter().collect::<Vec<_>>().join(" and ")
            )
        })
    })
}

/// The running pods of one namespace, indexed by label so that a selector
/// with an equality (or `in`) requirement visits only the pods carrying one
/// of its values: matching 10,000 VPAs to 10,000 pods is then near-linear
/// instead of 10⁸ selector checks.
#[derive(Default)]
struct PodIndex<'a> {
    pods: Vec<&'a PodInfo>,
    /// Positions in `pods` (ascending) of the pods with each label.
    by_label: HashMap<(&'a str, &'a str), Vec<usize>>,
}

impl<'a> PodIndex<'a> {
    fn push(&mut self, pod: &'a PodInfo) {
        let at = self.pods.len();
        for (k, v) in &pod.labels {
            self.by_label
                .entry((k.as_str(), v.as_str()))
                .or_default()
                .push(at);
        }
        self.pods.push(pod);
    }

    /// The pods `selector` selects, in the order they were pushed (so the
    /// first VPA to claim a pod is the same as with a full scan).
    fn selected<'s>(&'s self, selector: &'s Selector) -> impl Iterator<Item = &'a PodInfo> + 's {
        let candidates: Vec<usize> = match selector {
            Selector::Nothing => Vec::new(),
            Selector::All(requirements) => requirements
                .iter()
                .filter(|r| r.operator == Operator::In)
                .map(|r| {
                    let mut at: Vec<usize> = r
                        .values
                        .iter()
                        .filter_map(|v| self.by_label.get(&(r.key.as_str(), v.as_str())))
                        .flatten()
                        .copied()
                        .collect();
                    if r.values.len() > 1 {
                        at.sort_unstable();
                        at.dedup();
                    }
                    at
                })
                .min_by_key(Vec::len)
                // No equality requirement: every pod is a candidate.
                .unwrap_or_else(|| (0..self.pods.len()).collect()),
        };
        candidates
            .into_iter()
            .map(|i| self.pods[i])
            .filter(|pod| selector.matches(&pod.labels))
    }
}

struct Matched {
    key: VpaKey,
    vpa: Arc<VpaInfo>,
    prepared: Result<Prepared, String>,
    containers: Vec<ObservedContainer>,
}

struct Prepared {
    policy: tailor_core::policy::ResourcePolicy,
    cost_aware: Option<CostAwareQuantile>,
    selector: Selector,
}

impl Recommender {
    /// A recommender named `name`.
    #[must_use]
    pub fn new(name: impl Into<String>, cost: CostConfig, state: ClusterState) -> Self {
        Recommender {
            name: name.into(),
            cost,
            state,
            fetching_history: None,
        }
    }

    fn prepare(&self, vpa: &VpaInfo, targets: &dyn TargetLookup) -> Result<Prepared, String> {
        let policy = vpa.policy()?.clone();
        let cost_aware = self.cost.policy_for(vpa)?;
        let selector = targets
            .selector(&vpa.namespace, &vpa.spec.target_ref)
            .map_err(|e| format!("Cannot read targetRef: {e}"))?;
        Ok(Prepared {
            policy,
            cost_aware,
            selector,
        })
    }

    /// Which of `vpas` are handled by this recommender, by key.
    #[must_use]
    pub fn ours(&self, vpas: &[Arc<VpaInfo>]) -> BTreeMap<VpaKey, Arc<VpaInfo>> {
        vpas.iter()
            .filter(|v| v.spec.handled_by(&self.name))
            .map(|v| (v.key(), Arc::clone(v)))
            .collect()
    }

    /// One step. `history` holds the samples since the last step; `now` is
    /// the step's time. Never fails for one VPA's sake: a VPA that cannot be
    /// handled gets `ConfigUnsupported` and the others go on.
    ///
    /// # Errors
    /// Only when the (validated) options cannot build a histogram.
    pub fn step(
        &mut self,
        snap: Snapshot<'_>,
        history: &History,
        now: Timestamp,
    ) -> Result<StepOutput, RecommenderError> {
        self.step_with(snap, history, &mut |_| None, now)
    }

    /// [`Recommender::step`], with the samples of containers that are not
    /// running sent to `resolve`'s VPA (the initial history load).
    ///
    /// # Errors
    /// Only when the (validated) options cannot build a histogram.
    pub fn step_with(
        &mut self,
        snap: Snapshot<'_>,
        history: &History,
        resolve: &mut dyn FnMut(&ContainerKey) -> Option<(VpaKey, Resources)>,
        now: Timestamp,
    ) -> Result<StepOutput, RecommenderError> {
        let pending = self.update(snap, history, resolve, now)?;
        let (mut out, matched) = (pending.out, pending.matched);
        out.results = matched
            .into_iter()
            .map(|m| self.evaluate(m, snap.hpas, &pending.time))
            .collect();
        Ok(out)
    }

    /// The first half of a step: matches pods to VPAs, takes in the samples
    /// and OOMs, collects garbage. The second half, [`Recommender::evaluate`]
    /// per VPA, can then run one VPA at a time, each status written before
    /// the next is built ([`Pending::results`]).
    ///
    /// # Errors
    /// Only when the (validated) options cannot build a histogram.
    pub fn update(
        &mut self,
        snap: Snapshot<'_>,
        history: &History,
        resolve: &mut dyn FnMut(&ContainerKey) -> Option<(VpaKey, Resources)>,
        now: Timestamp,
    ) -> Result<Pending, RecommenderError> {
        let mut out = StepOutput {
            existing_vpas: snap.vpas.iter().map(|v| v.key()).collect(),
            ..StepOutput::default()
        };
        let ours = self.ours(snap.vpas);
        out.ours = ours.keys().cloned().collect();

        // Pods by namespace, claimed by the first VPA (key order) matching them.
        let mut pods_by_ns: BTreeMap<&str, PodIndex<'_>> = BTreeMap::new();
        for pod in snap.pods.iter().filter(|p| !p.terminal) {
            pods_by_ns
                .entry(pod.namespace.as_str())
                .or_default()
                .push(pod);
        }
        // Borrowed from the snapshot: an owned copy of every pod's name each
        // loop was a large part of a step's transient memory.
        let mut claimed: HashSet<(&str, &str)> = HashSet::new();
        let mut matched: Vec<Matched> = Vec::with_capacity(ours.len());
        for (key, vpa) in ours {
            let prepared = self.prepare(&vpa, snap.targets);
            let mut containers = Vec::new();
            if let (Ok(p), Some(pods)) = (&prepared, pods_by_ns.get(key.namespace.as_str())) {
                for pod in pods.selected(&p.selector) {
                    if !claimed.insert((pod.namespace.as_str(), pod.name.as_str())) {
                        out.contested_pods += 1;
                        continue;
                    }
                    for (name, request) in &pod.containers {
                        containers.push(ObservedContainer {
                            key: ContainerKey {
                                namespace: key.namespace.clone(),
                                pod: pod.name.clone(),
                                container: name.clone(),
                            },
                            vpa: key.clone(),
                            request: *request,
                        });
                    }
                }
            }
            // A first push reserves room for four; most VPAs here have one
            // pod of one container, and 10,000 of them hold these until
            // their status is written.
            containers.shrink_to_fit();
            matched.push(Matched {
                key,
                vpa,
                prepared,
                containers,
            });
        }

        self.state
            .sync_containers(matched.iter().flat_map(|m| &m.containers), now)?;
        out.samples = self.state.add_history(history, resolve, now)?;
        out.ooms = self.state.record_ooms(snap.ooms);
        out.collected = self.state.garbage_collect(&out.ours, now);
        Ok(Pending {
            out,
            matched,
            time: now_time(now),
        })
    }

    /// The second half of a step for one VPA: recommend, and the status to
    /// write when it changed.
    fn evaluate(&self, m: Matched, hpas: &[Arc<HorizontalPodAutoscaler>], now: &Time) -> VpaResult {
        let current_conditions = m.vpa.conditions();
        let (outcome, recommendation, cost) = match &m.prepared {
            Err(message) => (
                Outcome::Unsupported {
                    message: message.clone(),
                },
                None,
                None,
            ),
            Ok(p) => {
                let mut options = self.state.options().estimation;
                options.cost_aware = p.cost_aware;
                let recommender = PodResourceRecommender::new(&options);
                let aggregates = self.state.aggregates_of(&m.key);
                let rec = recommender.recommend(&p.policy, &aggregates);
                let has = !rec.container_recommendations.is_empty();
                let low_confidence = rec
                    .container_recommendations
                    .iter()
                    .filter(|c| {
                        aggregates.get(&c.container_name).is_some_and(|a| {
                            estimator::confidence(a) < conditions::LOW_CONFIDENCE_BELOW
                        })
                    })
                    .map(|c| c.container_name.clone())
                    .collect();
                let cost =
                    (!m.containers.is_empty()).then(|| self.monthly_cost(&m.containers, &rec));
                (
                    Outcome::Evaluated {
                        pods_matched: !m.containers.is_empty(),
                        has_recommendation: has,
                        hpa_conflict: hpa_conflict(&m.vpa, hpas),
                        low_confidence,
                        fetching_history: self.fetching_history.clone(),
                    },
                    has.then_some(rec),
                    cost,
                )
            }
        };
        let conditions = conditions::desired_conditions(&outcome, current_conditions, now);
        let desired = recommendation.as_ref().map(convert::recommendation_status);
        let changed = desired.as_ref().map(recommendation_digest) != m.vpa.recommendation_digest()
            || conditions::conditions_changed(current_conditions, &conditions);
        VpaResult {
            conflict_started: conditions::hpa_conflict_started(current_conditions, &conditions),
            key: m.key,
            outcome,
            status: changed.then(|| VerticalPodAutoscalerStatus {
                recommendation: desired,
                conditions: Some(conditions),
                observed_generation: m.vpa.observed_generation(),
            }),
            recommendation,
            cost,
        }
    }

    fn monthly_cost(
        &self,
        containers: &[ObservedContainer],
        rec: &PodRecommendation,
    ) -> MonthlyCost {
        let rates = self.cost.rates;
        let mut cost = MonthlyCost::default();
        for c in containers {
            cost.current += rates.price(c.request) * HOURS_PER_MONTH;
            let target = rec.for_container(&c.key.container).map_or(c.request, |r| {
                Resources::new(
                    r.target.cpu_millis.unwrap_or(c.request.cpu_millis),
                    r.target.memory_bytes.unwrap_or(c.request.memory_bytes),
                )
            });
            cost.recommended += rates.price(target) * HOURS_PER_MONTH;
        }
        cost
    }
}

/// What [`write`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Statuses applied.
    pub statuses_written: usize,
    /// Status writes that failed.
    pub status_failures: usize,
    /// Conflict Events published.
    pub events: usize,
    /// Event publications that failed.
    pub event_failures: usize,
}

/// Applies the changed statuses of a step; one failure does not stop the
/// others. `recorder` publishes the HPA-conflict warning Events when given.
pub async fn write(
    client: &kube::Client,
    out: &StepOutput,
    recorder: Option<&kube::runtime::events::Recorder>,
    vpas: &BTreeMap<VpaKey, Arc<VpaInfo>>,
) -> WriteReport {
    let mut report = WriteReport::default();
    for r in &out.results {
        write_one(client, r, recorder, vpas, &mut report).await;
    }
    report
}

/// [`write`] for results built one at a time ([`Pending::results`]): each
/// status is applied, then dropped before the next result is built. Returns
/// the results without their statuses (for metrics).
pub async fn write_each(
    client: &kube::Client,
    results: impl Iterator<Item = VpaResult>,
    recorder: Option<&kube::runtime::events::Recorder>,
    vpas: &BTreeMap<VpaKey, Arc<VpaInfo>>,
) -> (WriteReport, Vec<VpaResult>) {
    let mut report = WriteReport::default();
    let mut kept = Vec::new();
    for mut r in results {
        write_one(client, &r, recorder, vpas, &mut report).await;
        r.status = None;
        kept.push(r);
    }
    (report, kept)
}

async fn write_one(
    client: &kube::Client,
    r: &VpaResult,
    recorder: Option<&kube::runtime::events::Recorder>,
    vpas: &BTreeMap<VpaKey, Arc<VpaInfo>>,
    report: &mut WriteReport,
) {
    let Some(status) = &r.status else { return };
    match writer::apply_status(client, &r.key, status).await {
        Ok(()) => report.statuses_written += 1,
        Err(e) => {
            report.status_failures += 1;
            tracing::warn!(vpa = %r.key, error = %e, "status write failed");
            return;
        }
    }
    let (Some(recorder), true) = (recorder, r.conflict_started) else {
        return;
    };
    let Some(vpa) = vpas.get(&r.key) else {
        return;
    };
    let Outcome::Evaluated {
        hpa_conflict: Some(note),
        ..
    } = &r.outcome
    else {
        return;
    };
    let event = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: conditions::HPA_CONFLICT_REASON.to_owned(),
        note: Some(note.clone()),
        action: "Recommend".to_owned(),
        secondary: None,
    };
    match recorder.publish(&event, &vpa.object_ref()).await {
        Ok(()) => report.events += 1,
        Err(e) => {
            report.event_failures += 1;
            tracing::warn!(vpa = %r.key, error = %e, "event publication failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::HPA_CONFLICT;
    use serde_json::json;
    use tailor_core::recommender::RecommenderOptions;

    const T0: Timestamp = 1_700_000_000;

    /// Deployments by name, all selecting `app=<name>`.
    struct Deployments(Vec<&'static str>);

    impl TargetLookup for Deployments {
        fn selector(
            &self,
            _namespace: &str,
            target: &CrossVersionObjectReference,
        ) -> Result<Selector, LookupError> {
            if target.kind == "Deployment" && self.0.contains(&target.name.as_str()) {
                Ok(Selector::parse(&format!("app={}", target.name)).unwrap())
            } else {
                Ok(tailor_api::target::target_selector(target, None)?)
            }
        }
    }

    fn vpa(name: &str, extra: serde_json::Value) -> Arc<VpaInfo> {
        let mut v = json!({
            "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}}
        });
        merge(&mut v, extra);
        Arc::new(VpaInfo::new(serde_json::from_value(v).unwrap()))
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn pod(name: &str, app: &str) -> Arc<PodInfo> {
        let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
                "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]},
                "status": {"phase": "Running"}
            }))
            .unwrap();
        Arc::new(PodInfo::from_pod(&pod))
    }

    fn hpa(target: &str, metrics: serde_json::Value) -> Arc<HorizontalPodAutoscaler> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": format!("{target}-hpa"), "namespace": "shop"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                         "maxReplicas": 5, "metrics": metrics}
            }))
            .unwrap(),
        )
    }

    fn cost(default_policy: Option<CostAwareQuantile>, penalty: Option<f64>) -> CostConfig {
        CostConfig {
            rates: Rates {
                usd_per_vcpu_hour: 0.04,
                usd_per_gib_hour: 0.005,
            },
            default_policy,
            penalty,
            min_quantile: 0.5,
            max_quantile: 0.99,
        }
    }

    fn recommender(name: &str, penalty: Option<f64>) -> Recommender {
        Recommender::new(
            name,
            cost(None, penalty),
            ClusterState::new(RecommenderOptions::default()).unwrap(),
        )
    }

    /// A day of CPU between 0.1 and 1.0 cores and 500 MiB for each pod's `app`.
    fn usage(pods: &[&str]) -> History {
        let mut h = History::default();
        for p in pods {
            let key = ContainerKey {
                namespace: "shop".into(),
                pod: (*p).into(),
                container: "app".into(),
            };
            let cpu = (0..1440)
                .map(|i| (T0 + i * 60, 0.1 + f64::from((i % 10) as u8) * 0.1))
                .collect();
            h.cpu.insert(key.clone(), cpu);
            h.memory.insert(key, vec![(T0, 500.0 * 1024.0 * 1024.0)]);
        }
        h
    }

    fn run(
        r: &mut Recommender,
        vpas: &[Arc<VpaInfo>],
        pods: &[Arc<PodInfo>],
        hpas: &[Arc<HorizontalPodAutoscaler>],
        history: &History,
    ) -> StepOutput {
        let targets = Deployments(vec!["web", "api", "db", "other"]);
        let snap = Snapshot {
            vpas,
            pods,
            hpas,
            targets: &targets,
            ooms: &[],
        };
        r.step(snap, history, T0 + 86_400).unwrap()
    }

    fn result<'a>(out: &'a StepOutput, name: &str) -> &'a VpaResult {
        out.results.iter().find(|r| r.key.name == name).unwrap()
    }

    fn conditions(r: &VpaResult) -> &[tailor_api::vpa::VerticalPodAutoscalerCondition] {
        r.status
            .as_ref()
            .unwrap()
            .conditions
            .as_deref()
            .unwrap_or_default()
    }

    fn condition_types(r: &VpaResult) -> Vec<(String, String)> {
        conditions(r)
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect()
    }

    fn condition<'a>(
        r: &'a VpaResult,
        type_: &str,
    ) -> Option<&'a tailor_api::vpa::VerticalPodAutoscalerCondition> {
        conditions(r).iter().find(|c| c.type_ == type_)
    }

    #[test]
    fn recommends_then_writes_nothing_when_unchanged() {
        let mut r = recommender("default", None);
        let pods = [pod("web-0", "web"), pod("web-1", "web")];
        let history = usage(&["web-0", "web-1"]);
        let out = run(&mut r, &[vpa("web", json!({}))], &pods, &[], &history);
        let web = result(&out, "web");
        assert!(web.status.is_some());
        // A day less a minute of samples: not yet a day of confidence.
        assert_eq!(
            condition_types(web),
            [
                ("LowConfidence".into(), "True".into()),
                ("RecommendationProvided".into(), "True".into())
            ]
        );
        let rec = web.recommendation.as_ref().unwrap();
        let target = rec.container_recommendations[0].target;
        // p90 of 0.1..1.0 cores is about 0.9-1.0; + 15% margin.
        let cpu = target.cpu_millis.unwrap();
        assert!((1000..=1300).contains(&cpu), "{cpu}");
        let cost = web.cost.unwrap();
        // Two pods of 1 core + 1 GiB: 2 × (0.04 + 0.005) × 730.
        assert!((cost.current - 65.7).abs() < 1e-9, "{cost:?}");
        assert!(cost.recommended > 0.0 && cost.recommended != cost.current);

        // The VPA now carries that status: the next step changes nothing.
        let written = vpa(
            "web",
            json!({"status": serde_json::to_value(web.status.as_ref().unwrap()).unwrap()}),
        );
        let again = run(&mut r, &[written], &pods, &[], &History::default());
        assert!(result(&again, "web").status.is_none());
    }

    #[test]
    fn low_confidence_goes_once_a_day_of_history_is_in() {
        let mut r = recommender("default", None);
        let pods = [pod("web-0", "web")];
        let out = run(
            &mut r,
            &[vpa("web", json!({}))],
            &pods,
            &[],
            &usage(&["web-0"]),
        );
        let web = result(&out, "web");
        let low = condition(web, "LowConfidence").unwrap();
        assert_eq!(low.reason.as_deref(), Some("InsufficientHistory"));
        assert!(
            low.message
                .as_deref()
                .unwrap()
                .contains("container(s) app:"),
            "{low:?}"
        );
        let written = vpa(
            "web",
            json!({"status": serde_json::to_value(web.status.as_ref().unwrap()).unwrap()}),
        );
        // Two more minutes: the span passes a day; the condition goes.
        let mut more = History::default();
        let key = ContainerKey {
            namespace: "shop".into(),
            pod: "web-0".into(),
            container: "app".into(),
        };
        more.cpu
            .insert(key, vec![(T0 + 1440 * 60, 0.5), (T0 + 1441 * 60, 0.5)]);
        let out = run(&mut r, &[written], &pods, &[], &more);
        assert_eq!(
            condition_types(result(&out, "web")),
            [("RecommendationProvided".into(), "True".into())]
        );
    }

    #[test]
    fn only_vpas_of_this_recommender_are_handled() {
        let mut r = recommender("default", None);
        let vpas = [
            vpa("web", json!({})),
            vpa(
                "api",
                json!({"spec": {"recommenders": [{"name": "default"}]}}),
            ),
            vpa("db", json!({"spec": {"recommenders": [{"name": "other"}]}})),
        ];
        let out = run(&mut r, &vpas, &[], &[], &History::default());
        let names: Vec<&str> = out.results.iter().map(|r| r.key.name.as_str()).collect();
        assert_eq!(names, ["api", "web"]);
        assert_eq!(out.existing_vpas.len(), 3);
        let mut named = recommender("other", None);
        let out = run(&mut named, &vpas, &[], &[], &History::default());
        assert_eq!(out.results.len(), 1);
        assert_eq!(out.results[0].key.name, "db");
    }

    #[test]
    fn bad_vpas_get_config_unsupported_and_the_others_go_on() {
        let mut r = recommender("default", None);
        let vpas = [
            vpa("web", json!({})),
            vpa(
                "api",
                json!({"spec": {"targetRef": {"apiVersion": "example.com/v1", "kind": "Widget", "name": "api"}}}),
            ),
            vpa(
                "db",
                json!({"spec": {"resourcePolicy": {"containerPolicies": [{"containerName": "app", "minAllowed": {"cpu": "lots"}}]}}}),
            ),
        ];
        let pods = [pod("web-0", "web"), pod("api-0", "api"), pod("db-0", "db")];
        let out = run(
            &mut r,
            &vpas,
            &pods,
            &[],
            &usage(&["web-0", "api-0", "db-0"]),
        );
        for (name, needle) in [("api", "Widget"), ("db", "minAllowed.cpu")] {
            let bad = result(&out, name);
            let status = bad.status.as_ref().unwrap();
            assert!(status.recommendation.is_none(), "{name}");
            assert_eq!(
                condition_types(bad),
                [
                    ("ConfigUnsupported".into(), "True".into()),
                    ("RecommendationProvided".into(), "False".into())
                ]
            );
            let msg = status.conditions.as_ref().unwrap()[0]
                .message
                .clone()
                .unwrap();
            assert!(msg.contains(needle), "{msg}");
        }
        assert!(
            result(&out, "web")
                .status
                .as_ref()
                .unwrap()
                .recommendation
                .is_some()
        );
        assert_eq!(
            out.samples.untracked,
            2 * 1441,
            "unmatched pods' samples are not aggregated"
        );
    }

    #[test]
    fn pod_info_keeps_what_the_step_needs() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "w", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"initContainers": [{"name": "init"}],
                     "containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Mi"}}}, {"name": "b"}]},
            "status": {"phase": "Succeeded"}
        }))
        .unwrap();
        let info = PodInfo::from_pod(&pod);
        assert_eq!(
            info.containers,
            [
                ("a".to_owned(), Resources::new(250, 1 << 20)),
                ("b".to_owned(), Resources::ZERO)
            ]
        );
        assert!(info.terminal);
        assert_eq!(info.labels["app"], "web");
        // A finished pod is not matched.
        let mut r = recommender("default", None);
        let out = run(
            &mut r,
            &[vpa("web", json!({}))],
            &[Arc::new(info)],
            &[],
            &History::default(),
        );
        assert!(matches!(
            result(&out, "web").outcome,
            Outcome::Evaluated {
                pods_matched: false,
                ..
            }
        ));
    }

    #[test]
    fn no_pods_matched() {
        let mut r = recommender("default", None);
        let out = run(
            &mut r,
            &[vpa("web", json!({}))],
            &[pod("x-0", "x")],
            &[],
            &History::default(),
        );
        let web = result(&out, "web");
        assert_eq!(
            condition_types(web),
            [
                ("NoPodsMatched".into(), "True".into()),
                ("RecommendationProvided".into(), "False".into())
            ]
        );
        assert_eq!(web.cost, None);
    }

    #[rstest::rstest]
    #[case(json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]), Some("cpu"))]
    #[case(json!([{"type": "ContainerResource", "containerResource": {"name": "memory", "container": "app", "target": {"type": "Utilization", "averageUtilization": 60}}}]), Some("memory"))]
    #[case(json!([]), Some("cpu"))]
    #[case(json!([{"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}}]), None)]
    fn hpa_on_cpu_or_memory_is_a_conflict(
        #[case] metrics: serde_json::Value,
        #[case] resource: Option<&str>,
    ) {
        let mut r = recommender("default", None);
        let hpas = [hpa("web", metrics), hpa("other", json!([]))];
        let out = run(
            &mut r,
            &[vpa("web", json!({}))],
            &[pod("web-0", "web")],
            &hpas,
            &usage(&["web-0"]),
        );
        let web = result(&out, "web");
        let conflict = condition(web, HPA_CONFLICT);
        match resource {
            Some(res) => {
                let msg = conflict.unwrap().message.clone().unwrap();
                assert!(
                    msg.contains("shop/web-hpa") && msg.contains(&format!("on {res}:")),
                    "{msg}"
                );
                assert!(web.conflict_started);
            }
            None => {
                assert!(conflict.is_none());
                assert!(!web.conflict_started);
            }
        }
    }

    fn cpu_target(out: &StepOutput, name: &str) -> i64 {
        result(out, name)
            .recommendation
            .as_ref()
            .unwrap()
            .container_recommendations[0]
            .target
            .cpu_millis
            .unwrap()
    }

    #[test]
    fn cost_policy_annotation_moves_the_cpu_target() {
        let pods = [pod("web-0", "web"), pod("api-0", "api"), pod("db-0", "db")];
        let history = usage(&["web-0", "api-0", "db-0"]);
        let vpas = [
            vpa("web", json!({})),
            // Penalty equal to the price: the median.
            vpa(
                "api",
                json!({"metadata": {"annotations": {COST_POLICY_ANNOTATION: "newsvendor:0.04"}}}),
            ),
            vpa(
                "db",
                json!({"metadata": {"annotations": {COST_POLICY_ANNOTATION: "newsvendor"}}}),
            ),
        ];
        let mut r = recommender("default", None);
        let out = run(&mut r, &vpas, &pods, &[], &history);
        assert!(cpu_target(&out, "api") < cpu_target(&out, "web"));
        // "newsvendor" without the global penalty is a configuration error.
        let db = result(&out, "db");
        assert!(
            matches!(&db.outcome, Outcome::Unsupported { message } if message.contains("under-provisioning-penalty"))
        );
        // With the global penalty it uses it.
        let mut r = recommender("default", Some(0.04));
        let out = run(&mut r, &vpas, &pods, &[], &history);
        assert_eq!(cpu_target(&out, "db"), cpu_target(&out, "api"));
    }

    #[rstest::rstest]
    #[case("off", Ok(None))]
    #[case("newsvendor:0.36", Ok(Some(0.9)))]
    #[case(" newsvendor : 0.04 ", Ok(Some(0.5)))]
    #[case("newsvendor:abc", Err("not a number"))]
    #[case("newsvendor:-1", Err("newsvendor:-1"))]
    #[case("cheap", Err("expected off"))]
    fn cost_policy_annotation_values(#[case] value: &str, #[case] want: Result<Option<f64>, &str>) {
        let v = vpa(
            "web",
            json!({"metadata": {"annotations": {COST_POLICY_ANNOTATION: value}}}),
        );
        let got = cost(None, None)
            .policy_for(&v)
            .map(|q| q.map(|q| q.target_quantile()));
        match (got, want) {
            (Ok(g), Ok(w)) => {
                assert_eq!(g.map(|x| (x * 1e9).round()), w.map(|x| (x * 1e9).round()))
            }
            (Err(e), Err(needle)) => assert!(
                e.contains(needle) && e.contains("tailor.dev/cost-policy"),
                "{e}"
            ),
            (g, w) => panic!("{g:?} vs {w:?}"),
        }
    }
}
