//! The updater's decisions: which running pods of a VPA get new resources, in
//! which order, and how many at once.
//!
//! Follows the upstream VPA updater (priority calculator, priority processor,
//! eviction restriction, scaling-direction admission). Time comes in as `now`
//! (Unix seconds); nothing here reads a clock.

use crate::admission::{
    AdmissionContainer, NamespaceLimits, cap_container_amounts, cap_recommendation,
};
use crate::policy::{
    ContainerScalingMode, PartialResources, PodRecommendation, ResourcePolicy, UpdateMode,
};
use crate::resources::ResourceName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Pods with this annotation set to `"false"` are never disrupted.
pub const SAFE_TO_EVICT_ANNOTATION: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// Set by the admission webhook: the containers it saw (`", "`-separated).
pub use crate::admission::OBSERVED_CONTAINERS_ANNOTATION;

/// Resize waiting in `Deferred` longer than this falls back to eviction (seconds).
pub const DEFERRED_RESIZE_TIMEOUT_SECS: i64 = 5 * 60;
/// Resize `InProgress` longer than this falls back to eviction (seconds).
pub const IN_PROGRESS_RESIZE_TIMEOUT_SECS: i64 = 60 * 60;

/// The updater's tunables, with upstream's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdaterConfig {
    /// Smallest summed relative request change that updates a long-lived pod (0.1).
    pub min_change_priority: f64,
    /// Pods younger than this are only updated when out of range or quick-OOMed (12h).
    pub pod_lifetime_update_threshold_secs: i64,
    /// An OOM kill sooner than this after the container started is "quick" (10 min).
    pub evict_after_oom_threshold_secs: i64,
    /// Fraction of a controller's replicas that may be disrupted at once (0.5).
    pub eviction_tolerance: f64,
    /// Fewer live pods than this under one controller: disrupt none (2).
    pub min_replicas: u32,
}

impl Default for UpdaterConfig {
    fn default() -> Self {
        UpdaterConfig {
            min_change_priority: 0.1,
            pod_lifetime_update_threshold_secs: 12 * 60 * 60,
            evict_after_oom_threshold_secs: 10 * 60,
            eviction_tolerance: 0.5,
            min_replicas: 2,
        }
    }
}

/// A pod's managing controller (its owner reference with `controller: true`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ControllerRef {
    /// `ReplicaSet`, `StatefulSet`, `ReplicationController`, `DaemonSet`, `Job`, …
    pub kind: String,
    /// The controller's name (same namespace as the pod).
    pub name: String,
    /// Replicas the controller wants (`spec.replicas`; number ready for a
    /// DaemonSet). `None` when unknown; a `Job` then counts its live pods.
    pub configured_replicas: Option<u32>,
}

/// `status.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodPhase {
    /// Accepted, not all containers running yet.
    Pending,
    /// Bound and running.
    Running,
    /// All containers terminated successfully.
    Succeeded,
    /// All containers terminated, some failed.
    Failed,
    /// State unknown.
    Unknown,
}

/// The previous run of a container ended in an OOM kill (`lastState.terminated`
/// with reason `OOMKilled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomKill {
    /// When that run started (Unix seconds).
    pub started_at_secs: i64,
    /// When it was killed (Unix seconds).
    pub finished_at_secs: i64,
}

/// A container as the updater sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdaterContainer {
    /// The container's name.
    pub name: String,
    /// Current requests (from the status' applied resources when present).
    pub requests: PartialResources,
    /// Current limits.
    pub limits: PartialResources,
    /// The last termination, when it was an OOM kill.
    pub last_oom_kill: Option<OomKill>,
}

/// A pod as the updater sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdaterPod {
    /// The pod's name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The managing controller, if any.
    pub controller: Option<ControllerRef>,
    /// `status.phase`.
    pub phase: PodPhase,
    /// Mirror (static) pod, managed by a kubelet: cannot be evicted.
    pub is_mirror: bool,
    /// Annotations (only the VPA and safe-to-evict ones are read).
    pub annotations: BTreeMap<String, String>,
    /// `status.startTime` (Unix seconds), when set.
    pub started_at_secs: Option<i64>,
    /// `spec.containers`.
    pub containers: Vec<UpdaterContainer>,
}

impl UpdaterPod {
    /// `namespace/name`, built directly: it is made for every pod of every
    /// loop.
    #[must_use]
    pub fn id(&self) -> String {
        let mut id = String::with_capacity(self.namespace.len() + 1 + self.name.len());
        id.push_str(&self.namespace);
        id.push('/');
        id.push_str(&self.name);
        id
    }
}

/// Which way a resource must move for an update to be allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeRequirement {
    /// Only when the target is above the current request.
    TargetHigherThanRequests,
    /// Only when the target is below the current request.
    TargetLowerThanRequests,
}

/// `spec.updatePolicy.evictionRequirements[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvictionRequirement {
    /// The resources the requirement is about (any one moving the right way suffices).
    pub resources: Vec<ResourceName>,
    /// The direction required.
    pub change_requirement: ChangeRequirement,
}

/// A pod as [`decide_updates`] reads it: the pod and its managing controller.
///
/// [`UpdaterPod`] is one, with its own `controller`. A caller that keeps
/// pods in a cache and resolves their controllers per loop passes
/// [`PodWithController`] instead, so that no pod is copied to set it.
pub trait PodForUpdate {
    /// The pod (its `controller` field is not read).
    fn pod(&self) -> &UpdaterPod;
    /// Its managing controller, if any.
    fn controller(&self) -> Option<&ControllerRef>;
}

impl PodForUpdate for UpdaterPod {
    fn pod(&self) -> &UpdaterPod {
        self
    }

    fn controller(&self) -> Option<&ControllerRef> {
        self.controller.as_ref()
    }
}

/// A borrowed pod with the controller resolved for it this loop.
#[derive(Clone, Copy, Debug)]
pub struct PodWithController<'a> {
    /// The pod; its own `controller` field is ignored.
    pub pod: &'a UpdaterPod,
    /// Its managing controller, if any.
    pub controller: Option<&'a ControllerRef>,
}

impl PodForUpdate for PodWithController<'_> {
    fn pod(&self) -> &UpdaterPod {
        self.pod
    }

    fn controller(&self) -> Option<&ControllerRef> {
        self.controller
    }
}

/// One VPA and the live pods it controls.
#[derive(Clone, Debug)]
pub struct VpaUpdateInput<'a, P = UpdaterPod> {
    /// The VPA's name.
    pub vpa_name: &'a str,
    /// `spec.updatePolicy.updateMode`.
    pub mode: UpdateMode,
    /// `spec.updatePolicy.minReplicas`, overriding the global default.
    pub min_replicas: Option<u32>,
    /// `spec.updatePolicy.evictionRequirements`.
    pub eviction_requirements: &'a [EvictionRequirement],
    /// `spec.resourcePolicy`.
    pub resource_policy: &'a ResourcePolicy,
    /// `status.recommendation`.
    pub recommendation: &'a PodRecommendation,
    /// LimitRange constraints of the VPA's namespace (caps the recommendation).
    pub limits: &'a NamespaceLimits,
    /// The pods the VPA controls.
    pub pods: &'a [P],
}

/// Why a pod is updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpdateReason {
    /// A container request lies outside [lowerBound, upperBound] (or is missing).
    OutsideRecommendedRange,
    /// A container was OOM-killed soon after it started.
    QuickOom,
    /// A long-lived pod whose requests drifted from the target.
    LongLivedDrift,
}

impl UpdateReason {
    /// A stable label for metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateReason::OutsideRecommendedRange => "outside_recommended_range",
            UpdateReason::QuickOom => "quick_oom",
            UpdateReason::LongLivedDrift => "long_lived_drift",
        }
    }
}

/// Why a pod is left alone; stable, for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SkipReason {
    /// The VPA's mode does not change running pods.
    UpdateModeOff,
    /// A mirror (static) pod.
    MirrorPod,
    /// No managing controller: nothing would recreate it.
    NoController,
    /// Annotated `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`.
    SafeToEvictFalse,
    /// Not in phase Running.
    NotRunning,
    /// No recommendation covers any of its containers.
    NoRecommendation,
    /// Requests within range, pod younger than the lifetime threshold.
    ShortLived,
    /// Requests within range and too close to the target.
    ChangeTooSmall,
    /// Quick OOM, but the new requests would equal the old ones.
    NoResourceChange,
    /// No `status.startTime` to age the pod by.
    NoStartTime,
    /// The change does not go the way `evictionRequirements` demand.
    EvictionRequirementsUnmet,
    /// Fewer live pods than `minReplicas` under its controller.
    TooFewReplicas,
    /// Its controller's replica count is unknown.
    ReplicasUnknown,
    /// Its controller's disruption budget is used up this round.
    DisruptionBudget,
}

impl SkipReason {
    /// A stable label for metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UpdateModeOff => "update_mode_off",
            SkipReason::MirrorPod => "mirror_pod",
            SkipReason::NoController => "no_controller",
            SkipReason::SafeToEvictFalse => "safe_to_evict_false",
            SkipReason::NotRunning => "not_running",
            SkipReason::NoRecommendation => "no_recommendation",
            SkipReason::ShortLived => "short_lived",
            SkipReason::ChangeTooSmall => "change_too_small",
            SkipReason::NoResourceChange => "no_resource_change",
            SkipReason::NoStartTime => "no_start_time",
            SkipReason::EvictionRequirementsUnmet => "eviction_requirements_unmet",
            SkipReason::TooFewReplicas => "too_few_replicas",
            SkipReason::ReplicasUnknown => "replicas_unknown",
            SkipReason::DisruptionBudget => "disruption_budget",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgently a pod wants its update (upstream `PodPriority`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodPriority {
    /// Some container request lies outside [lowerBound, upperBound] or is missing.
    pub outside_recommended_range: bool,
    /// Some container wants more than it requests.
    pub scale_up: bool,
    /// Σ over resources of |Σtarget − Σrequest| / Σrequest.
    pub resource_diff: f64,
}

impl PodPriority {
    /// Upstream order: scale-ups first, then the larger `resource_diff`.
    #[must_use]
    pub fn cmp_urgency(&self, other: &Self) -> std::cmp::Ordering {
        other
            .scale_up
            .cmp(&self.scale_up)
            .then(other.resource_diff.total_cmp(&self.resource_diff))
    }
}

/// What happens to one pod.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// Update it (evict, or resize in place).
    Update {
        /// The main reason.
        reason: UpdateReason,
        /// Its priority.
        priority: PodPriority,
    },
    /// Leave it.
    Skip(SkipReason),
}

/// The decision for one pod, with a sentence for logs and events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PodDecision {
    /// Index of the pod in [`VpaUpdateInput::pods`].
    pub pod_index: usize,
    /// `namespace/name`.
    pub pod: String,
    /// Update or skip.
    pub action: Action,
    /// Human-readable reason.
    pub message: String,
}

/// All decisions for one VPA: updates first, in the order to apply them, then skips.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdatePlan {
    /// Pods to update, most urgent first.
    pub updates: Vec<PodDecision>,
    /// Pods left alone.
    pub skipped: Vec<PodDecision>,
}

/// Parses `vpaObservedContainers`; `None` when absent or malformed (then every
/// container counts, as upstream does).
fn observed_containers(pod: &UpdaterPod) -> Option<Vec<&str>> {
    let value = pod.annotations.get(OBSERVED_CONTAINERS_ANNOTATION)?;
    if value.is_empty() {
        return Some(Vec::new());
    }
    let names: Vec<&str> = value.split(", ").collect();
    names.iter().all(|n| is_dns1123_label(n)).then_some(names)
}

/// Per pod container (same index): its (target, lower bound, upper bound), if
/// the recommendation covers it.
type Amounts = Option<[PartialResources; 3]>;

fn uncapped_amounts(pod: &UpdaterPod, recommendation: &PodRecommendation) -> Vec<Amounts> {
    pod.containers
        .iter()
        .map(|c| {
            recommendation
                .for_container(&c.name)
                .map(|r| [r.target, r.lower_bound, r.upper_bound])
        })
        .collect()
}

/// The recommendation capped for this pod, as the admission webhook would.
fn capped_amounts<P>(pod: &UpdaterPod, input: &VpaUpdateInput<'_, P>) -> Vec<Amounts> {
    if input.limits.pod.is_some() {
        // A pod LimitRange scales containers together: take the full path.
        let capped = cap_recommendation(
            &to_admission_containers(pod),
            input.recommendation,
            input.resource_policy,
            input.limits,
        )
        .recommendation;
        return uncapped_amounts(pod, &capped);
    }
    pod.containers
        .iter()
        .map(|c| {
            let r = input.recommendation.for_container(&c.name)?;
            let [mut target, mut lower, mut upper] = [r.target, r.lower_bound, r.upper_bound];
            cap_container_amounts(
                &c.name,
                &c.requests,
                &c.limits,
                [&mut target, &mut lower, &mut upper],
                input.resource_policy,
                input.limits.container.as_ref(),
                None,
            );
            Some([target, lower, upper])
        })
        .collect()
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// The amount in upstream's milli-units (CPU millicores; memory bytes × 1000),
/// so that the "at least 1" floor on the request total matches upstream.
#[allow(clippy::cast_precision_loss)] // a priority, not an amount
fn milli(resource: ResourceName, v: i64) -> f64 {
    match resource {
        ResourceName::Cpu => v as f64,
        ResourceName::Memory => v as f64 * 1000.0,
    }
}

/// Upstream's priority for a pod against a (capped) recommendation.
#[must_use]
pub fn pod_priority(pod: &UpdaterPod, recommendation: &PodRecommendation) -> PodPriority {
    priority_of(
        pod,
        observed_containers(pod).as_deref(),
        &uncapped_amounts(pod, recommendation),
    )
}

fn priority_of(pod: &UpdaterPod, observed: Option<&[&str]>, amounts: &[Amounts]) -> PodPriority {
    let mut outside = false;
    let mut scale_up = false;
    let mut total_request = [0f64; 2];
    let mut total_target: [Option<f64>; 2] = [None; 2];
    for (c, amounts) in pod.containers.iter().zip(amounts) {
        if observed.is_some_and(|o| !o.contains(&c.name.as_str())) {
            continue;
        }
        let Some([rec_target, rec_lower, rec_upper]) = amounts else {
            continue;
        };
        for (i, resource) in ResourceName::ALL.into_iter().enumerate() {
            let Some(target) = rec_target.get(resource) else {
                continue;
            };
            total_target[i] = Some(total_target[i].unwrap_or(0.0) + milli(resource, target));
            match c.requests.get(resource) {
                Some(request) => {
                    total_request[i] += milli(resource, request);
                    if target > request {
                        scale_up = true;
                    }
                    let below = rec_lower.get(resource).is_some_and(|lo| request < lo);
                    let above = rec_upper.get(resource).is_some_and(|hi| request > hi);
                    outside |= below || above;
                }
                // No request at all: the pod certainly wants more.
                None => {
                    scale_up = true;
                    outside = true;
                }
            }
        }
    }
    let mut resource_diff = 0.0;
    for i in 0..2 {
        if let Some(target) = total_target[i] {
            let request = total_request[i].max(1.0);
            resource_diff += (request - target).abs() / request;
        }
    }
    PodPriority {
        outside_recommended_range: outside,
        scale_up,
        resource_diff,
    }
}

/// True when some observed, autoscaled container was OOM-killed within the
/// threshold of its start (upstream's quick OOM).
fn quick_oom<'a>(
    pod: &'a UpdaterPod,
    observed: Option<&[&str]>,
    policy: &ResourcePolicy,
    threshold_secs: i64,
) -> Option<&'a str> {
    pod.containers.iter().find_map(|c| {
        if observed.is_some_and(|o| !o.contains(&c.name.as_str())) {
            return None;
        }
        if policy
            .for_container(&c.name)
            .is_some_and(|p| p.mode == ContainerScalingMode::Off)
        {
            return None;
        }
        let oom = c.last_oom_kill?;
        (oom.finished_at_secs.saturating_sub(oom.started_at_secs) < threshold_secs)
            .then_some(c.name.as_str())
    })
}

/// Upstream's scaling-direction admission: with requirements, some container
/// (with CPU and memory requests) must meet every requirement; a container
/// missing either request always passes.
fn meets_eviction_requirements(
    pod: &UpdaterPod,
    amounts: &[Amounts],
    requirements: &[EvictionRequirement],
) -> bool {
    if requirements.is_empty() {
        return true;
    }
    pod.containers.iter().zip(amounts).any(|(c, amounts)| {
        let Some([rec_target, _, _]) = amounts else {
            return false;
        };
        let (Some(_), Some(_)) = (
            c.requests.get(ResourceName::Cpu),
            c.requests.get(ResourceName::Memory),
        ) else {
            return true;
        };
        requirements.iter().all(|req| {
            req.resources.iter().any(|&resource| {
                let request = c.requests.get(resource).unwrap_or(0);
                let target = rec_target.get(resource).unwrap_or(0);
                match req.change_requirement {
                    ChangeRequirement::TargetHigherThanRequests => target > request,
                    ChangeRequirement::TargetLowerThanRequests => target < request,
                }
            })
        })
    })
}

/// Disruption budget of one controller's pods (upstream `singleGroupStats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisruptionBudget {
    /// Replicas the controller wants.
    pub configured: u32,
    /// Pods in phase Running.
    pub running: u32,
    /// int(configured × evictionTolerance).
    pub tolerance: u32,
    /// Pods chosen so far this round.
    pub disrupted: u32,
}

impl DisruptionBudget {
    /// A budget for a controller with `configured` replicas, `running` of them running.
    #[must_use]
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_lossless
    )] // truncation is upstream's rule; the fraction is clamped to [0, 1]
    pub fn new(configured: u32, running: u32, eviction_tolerance: f64) -> Self {
        let fraction = if eviction_tolerance.is_finite() {
            eviction_tolerance.clamp(0.0, 1.0)
        } else {
            0.0
        };
        DisruptionBudget {
            configured,
            running,
            tolerance: (f64::from(configured) * fraction) as u32,
            disrupted: 0,
        }
    }

    /// Most pods this budget ever allows at once: the tolerance, or one when
    /// the tolerance rounds to zero.
    #[must_use]
    pub fn cap(&self) -> u32 {
        self.tolerance.max(1)
    }

    /// Whether one more pod may be disrupted now.
    ///
    /// Upstream's rule (enough pods stay alive, or one pod when all are running
    /// and the tolerance is zero), additionally never more than [`Self::cap`]:
    /// surplus running pods do not enlarge the budget.
    #[must_use]
    pub fn allows_one_more(&self) -> bool {
        let should_be_alive = i64::from(self.configured) - i64::from(self.tolerance);
        let alive = i64::from(self.running) - i64::from(self.disrupted);
        let upstream = alive > should_be_alive
            || (self.configured == self.running && self.tolerance == 0 && self.disrupted == 0);
        upstream && self.disrupted < self.cap()
    }
}

fn to_admission_containers(pod: &UpdaterPod) -> Vec<AdmissionContainer> {
    pod.containers
        .iter()
        .map(|c| AdmissionContainer::new(c.name.clone(), c.requests, c.limits))
        .collect()
}

/// A pod that wants an update, before the budget is applied. Its message is
/// only written if the budget admits it.
struct Candidate<'a> {
    index: usize,
    reason: UpdateReason,
    priority: PodPriority,
    /// The quick-OOM-killed container, for the message.
    oom: Option<&'a str>,
}

/// The message of an update.
fn update_message(
    reason: UpdateReason,
    priority: &PodPriority,
    oom: Option<&str>,
    config: &UpdaterConfig,
) -> String {
    match reason {
        UpdateReason::OutsideRecommendedRange => format!(
            "a request is outside the recommended range (relative change {:.3})",
            priority.resource_diff
        ),
        UpdateReason::QuickOom => format!(
            "container {} was OOM-killed within {}s of starting",
            oom.unwrap_or_default(),
            config.evict_after_oom_threshold_secs
        ),
        UpdateReason::LongLivedDrift => format!(
            "pod older than {}s with relative change {:.3} >= {}",
            config.pod_lifetime_update_threshold_secs,
            priority.resource_diff,
            config.min_change_priority
        ),
    }
}

/// Decides, for one VPA, which pods to update and in which order.
///
/// Pods that are mirror pods, have no controller, are annotated
/// safe-to-evict "false" or are not running are never chosen. The rest need
/// an update when a request is outside the recommended range, a container was
/// quick-OOM-killed, or the pod is old enough and its requests drifted enough;
/// they are ordered scale-ups first, then by drift, filtered by
/// `evictionRequirements`, and admitted per controller within its disruption
/// budget.
#[must_use]
pub fn decide_updates<P: PodForUpdate>(
    input: &VpaUpdateInput<'_, P>,
    config: &UpdaterConfig,
    now: i64,
) -> UpdatePlan {
    let mut plan = UpdatePlan::default();
    let skip = |plan: &mut UpdatePlan, index: usize, reason: SkipReason, message: String| {
        plan.skipped.push(PodDecision {
            pod_index: index,
            pod: input.pods[index].pod().id(),
            action: Action::Skip(reason),
            message,
        });
    };

    if !input.mode.updates_running_pods() {
        for (i, _) in input.pods.iter().enumerate() {
            skip(
                &mut plan,
                i,
                SkipReason::UpdateModeOff,
                format!(
                    "VPA {} is in mode {:?}, which does not change running pods",
                    input.vpa_name, input.mode
                ),
            );
        }
        return plan;
    }

    let mut candidates = Vec::new();
    for (i, entry) in input.pods.iter().enumerate() {
        let pod = entry.pod();
        if pod.is_mirror {
            skip(
                &mut plan,
                i,
                SkipReason::MirrorPod,
                "mirror (static) pods cannot be evicted".into(),
            );
            continue;
        }
        if entry.controller().is_none() {
            skip(
                &mut plan,
                i,
                SkipReason::NoController,
                "no controller would recreate the pod".into(),
            );
            continue;
        }
        if pod
            .annotations
            .get(SAFE_TO_EVICT_ANNOTATION)
            .is_some_and(|v| v == "false")
        {
            skip(
                &mut plan,
                i,
                SkipReason::SafeToEvictFalse,
                format!("annotated {SAFE_TO_EVICT_ANNOTATION}: \"false\""),
            );
            continue;
        }
        if pod.phase != PodPhase::Running {
            skip(
                &mut plan,
                i,
                SkipReason::NotRunning,
                format!("pod is {:?}, not Running", pod.phase),
            );
            continue;
        }

        let amounts = capped_amounts(pod, input);
        if amounts.iter().all(Option::is_none) {
            skip(
                &mut plan,
                i,
                SkipReason::NoRecommendation,
                format!(
                    "VPA {} has no recommendation for its containers",
                    input.vpa_name
                ),
            );
            continue;
        }
        let observed = observed_containers(pod);
        let priority = priority_of(pod, observed.as_deref(), &amounts);
        let oom = quick_oom(
            pod,
            observed.as_deref(),
            input.resource_policy,
            config.evict_after_oom_threshold_secs,
        );

        let reason = if priority.outside_recommended_range {
            UpdateReason::OutsideRecommendedRange
        } else if oom.is_some() {
            UpdateReason::QuickOom
        } else {
            let Some(started) = pod.started_at_secs else {
                skip(
                    &mut plan,
                    i,
                    SkipReason::NoStartTime,
                    "pod has no start time".into(),
                );
                continue;
            };
            let age = now.saturating_sub(started);
            if age < config.pod_lifetime_update_threshold_secs {
                skip(
                    &mut plan,
                    i,
                    SkipReason::ShortLived,
                    format!(
                        "requests within the recommended range and pod only {age}s old (< {}s)",
                        config.pod_lifetime_update_threshold_secs
                    ),
                );
                continue;
            }
            if priority.resource_diff < config.min_change_priority {
                skip(
                    &mut plan,
                    i,
                    SkipReason::ChangeTooSmall,
                    format!(
                        "requests within the recommended range; relative change {:.3} < {}",
                        priority.resource_diff, config.min_change_priority
                    ),
                );
                continue;
            }
            UpdateReason::LongLivedDrift
        };
        if reason == UpdateReason::QuickOom && priority.resource_diff == 0.0 {
            skip(
                &mut plan,
                i,
                SkipReason::NoResourceChange,
                "quick OOM, but the recommendation equals the current requests".into(),
            );
            continue;
        }
        if !meets_eviction_requirements(pod, &amounts, input.eviction_requirements) {
            skip(
                &mut plan,
                i,
                SkipReason::EvictionRequirementsUnmet,
                "the change does not go the direction evictionRequirements demand".into(),
            );
            continue;
        }
        candidates.push(Candidate {
            index: i,
            reason,
            priority,
            oom,
        });
    }

    // Stable: equal priorities keep input order, so decisions are reproducible.
    candidates.sort_by(|a, b| a.priority.cmp_urgency(&b.priority));

    let mut budgets = controller_budgets(input, config);
    for cand in candidates {
        let entry = &input.pods[cand.index];
        let (Some(controller), Some(key)) = (entry.controller(), group_key(entry)) else {
            continue; // filtered above
        };
        let Some(budget) = budgets.get_mut(&key) else {
            continue; // every controller of a pod has an entry
        };
        match budget {
            Err(reason) => {
                let message = match reason {
                    SkipReason::TooFewReplicas => format!(
                        "{} {} has fewer live pods than minReplicas {}",
                        controller.kind,
                        controller.name,
                        input.min_replicas.unwrap_or(config.min_replicas)
                    ),
                    _ => format!(
                        "replica count of {} {} is unknown",
                        controller.kind, controller.name
                    ),
                };
                skip(&mut plan, cand.index, *reason, message);
            }
            Ok(b) if b.allows_one_more() => {
                b.disrupted += 1;
                plan.updates.push(PodDecision {
                    pod_index: cand.index,
                    pod: entry.pod().id(),
                    action: Action::Update {
                        reason: cand.reason,
                        priority: cand.priority,
                    },
                    message: update_message(cand.reason, &cand.priority, cand.oom, config),
                });
            }
            Ok(b) => {
                let message = format!(
                    "disruption budget of {} {} used up ({} of {} replicas, {} running)",
                    controller.kind, controller.name, b.disrupted, b.configured, b.running
                );
                skip(&mut plan, cand.index, SkipReason::DisruptionBudget, message);
            }
        }
    }
    plan
}

/// A controller's identity: namespace, kind, name (not its replica count, so
/// pods that disagree on it still share one budget).
type GroupKey<'a> = (&'a str, &'a str, &'a str);

fn group_key<P: PodForUpdate>(pod: &P) -> Option<GroupKey<'_>> {
    pod.controller().map(|c| {
        (
            pod.pod().namespace.as_str(),
            c.kind.as_str(),
            c.name.as_str(),
        )
    })
}

/// Per controller: its budget, or why none of its pods may be disrupted.
fn controller_budgets<'a, P: PodForUpdate>(
    input: &VpaUpdateInput<'a, P>,
    config: &UpdaterConfig,
) -> BTreeMap<GroupKey<'a>, Result<DisruptionBudget, SkipReason>> {
    struct Group {
        live: u32,
        running: u32,
        // The smallest replica count any of its pods reports: the safe side.
        configured: Option<u32>,
    }
    let required = input.min_replicas.unwrap_or(config.min_replicas);
    let mut groups: BTreeMap<GroupKey<'a>, Group> = BTreeMap::new();
    for entry in input.pods {
        let (Some(key), Some(controller)) = (group_key(entry), entry.controller()) else {
            continue;
        };
        let pod = entry.pod();
        if matches!(pod.phase, PodPhase::Succeeded | PodPhase::Failed) {
            continue;
        }
        let g = groups.entry(key).or_insert(Group {
            live: 0,
            running: 0,
            configured: controller.configured_replicas,
        });
        g.live = g.live.saturating_add(1);
        if pod.phase == PodPhase::Running {
            g.running = g.running.saturating_add(1);
        }
        g.configured = match (g.configured, controller.configured_replicas) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    groups
        .into_iter()
        .map(|(key, g)| {
            if g.live < required {
                return (key, Err(SkipReason::TooFewReplicas));
            }
            let configured = match g.configured {
                Some(n) if n > 0 => n,
                // A Job has no replica count: its live pods are its size.
                _ if key.1 == "Job" => g.live,
                _ => return (key, Err(SkipReason::ReplicasUnknown)),
            };
            (
                key,
                Ok(DisruptionBudget::new(
                    configured,
                    g.running,
                    config.eviction_tolerance,
                )),
            )
        })
        .collect()
}

/// The kubelet's state of an in-place resize (pod conditions `PodResizePending`
/// / `PodResizeInProgress`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResizeState {
    /// No resize pending or in progress.
    None,
    /// `PodResizePending` with reason `Deferred`: may fit later.
    Deferred,
    /// `PodResizePending` with reason `Infeasible`: never fits this node.
    Infeasible,
    /// `PodResizeInProgress` without error.
    InProgress,
    /// `PodResizeInProgress` with reason `Error`.
    Error,
    /// A condition with a reason Tailor does not know.
    Unknown,
}

/// What to do about a pod whose in-place resize was requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResizeFallback {
    /// Give the kubelet more time.
    Wait,
    /// Give up on the resize and evict the pod.
    Evict,
}

/// Upstream's fallback rule for `InPlaceOrRecreate`: evict when the resize is
/// Infeasible, failed, in an unknown state, Deferred for more than 5 minutes or
/// InProgress for more than 1 hour since `last_attempt_secs`.
#[must_use]
pub fn resize_fallback(state: ResizeState, last_attempt_secs: i64, now: i64) -> ResizeFallback {
    let elapsed = now.saturating_sub(last_attempt_secs);
    let evict = match state {
        ResizeState::None => false,
        ResizeState::Deferred => elapsed > DEFERRED_RESIZE_TIMEOUT_SECS,
        ResizeState::InProgress => elapsed > IN_PROGRESS_RESIZE_TIMEOUT_SECS,
        ResizeState::Infeasible | ResizeState::Error | ResizeState::Unknown => true,
    };
    if evict {
        ResizeFallback::Evict
    } else {
        ResizeFallback::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ContainerPolicy, ContainerRecommendation};
    use proptest::prelude::*;
    use rstest::rstest;

    const HOUR: i64 = 3600;
    const NOW: i64 = 1_000_000;
    const M: i64 = 1_000_000; // "1M" in upstream's tests

    fn pr(cpu: Option<i64>, mem: Option<i64>) -> PartialResources {
        PartialResources {
            cpu_millis: cpu,
            memory_bytes: mem,
        }
    }

    fn crec(
        name: &str,
        target: PartialResources,
        lower: PartialResources,
        upper: PartialResources,
    ) -> ContainerRecommendation {
        ContainerRecommendation {
            container_name: name.to_owned(),
            target,
            lower_bound: lower,
            upper_bound: upper,
            uncapped_target: target,
        }
    }

    fn target_only(name: &str, target: PartialResources) -> ContainerRecommendation {
        crec(name, target, PartialResources::NONE, PartialResources::NONE)
    }

    fn container(name: &str, requests: PartialResources) -> UpdaterContainer {
        UpdaterContainer {
            name: name.to_owned(),
            requests,
            limits: PartialResources::NONE,
            last_oom_kill: None,
        }
    }

    fn controller(name: &str, replicas: u32) -> ControllerRef {
        ControllerRef {
            kind: "ReplicaSet".to_owned(),
            name: name.to_owned(),
            configured_replicas: Some(replicas),
        }
    }

    fn pod(name: &str, containers: Vec<UpdaterContainer>) -> UpdaterPod {
        UpdaterPod {
            name: name.to_owned(),
            namespace: "ns".to_owned(),
            controller: Some(controller("rs", 100)),
            phase: PodPhase::Running,
            is_mirror: false,
            annotations: BTreeMap::new(),
            started_at_secs: Some(NOW - 24 * HOUR),
            containers,
        }
    }

    fn cpu_pod(name: &str, cpu: i64) -> UpdaterPod {
        pod(name, vec![container("c", pr(Some(cpu), None))])
    }

    fn rec_of(recs: Vec<ContainerRecommendation>) -> PodRecommendation {
        PodRecommendation {
            container_recommendations: recs,
        }
    }

    struct Vpa {
        mode: UpdateMode,
        min_replicas: Option<u32>,
        requirements: Vec<EvictionRequirement>,
        policy: ResourcePolicy,
        recommendation: PodRecommendation,
        limits: NamespaceLimits,
    }

    impl Vpa {
        fn new(recommendation: PodRecommendation) -> Self {
            Vpa {
                mode: UpdateMode::Recreate,
                min_replicas: None,
                requirements: Vec::new(),
                policy: ResourcePolicy::default(),
                recommendation,
                limits: NamespaceLimits::default(),
            }
        }

        fn decide(&self, pods: &[UpdaterPod], config: &UpdaterConfig, now: i64) -> UpdatePlan {
            decide_updates(
                &VpaUpdateInput {
                    vpa_name: "vpa",
                    mode: self.mode,
                    min_replicas: self.min_replicas,
                    eviction_requirements: &self.requirements,
                    resource_policy: &self.policy,
                    recommendation: &self.recommendation,
                    limits: &self.limits,
                    pods,
                },
                config,
                now,
            )
        }
    }

    fn updated(plan: &UpdatePlan) -> Vec<&str> {
        plan.updates.iter().map(|d| d.pod.as_str()).collect()
    }

    fn skip_of(plan: &UpdatePlan, pod: &str) -> Option<SkipReason> {
        plan.skipped
            .iter()
            .find(|d| d.pod == pod)
            .map(|d| match d.action {
                Action::Skip(r) => r,
                Action::Update { .. } => panic!("update in skipped list"),
            })
    }

    /// Every pod may be disrupted (tolerance 1): isolates priority from budget.
    fn lenient(min_change: f64) -> UpdaterConfig {
        UpdaterConfig {
            min_change_priority: min_change,
            eviction_tolerance: 1.0,
            ..UpdaterConfig::default()
        }
    }

    // Upstream priority_processor_test.go TestGetUpdatePriority, case by case.
    #[rstest]
    #[case::simple_scale_up(vec![("c", 2000, None)], vec![target_only("c", pr(Some(10_000), None))], false, true, 4.0)]
    #[case::simple_scale_down(vec![("c", 4000, None)], vec![target_only("c", pr(Some(2000), None))], false, false, 0.5)]
    #[case::no_resource_diff(vec![("c", 2000, None)], vec![target_only("c", pr(Some(2000), None))], false, false, 0.0)]
    #[case::milli_quantities(vec![("c", 10, None)], vec![target_only("c", pr(Some(900), None))], false, true, 89.0)]
    #[case::scale_up_outside_range(vec![("c", 4000, None)],
        vec![crec("c", pr(Some(10_000), None), pr(Some(6000), None), pr(Some(14_000), None))], true, true, 1.5)]
    #[case::scale_down_outside_range(vec![("c", 8000, None)],
        vec![crec("c", pr(Some(2000), None), pr(Some(1000), None), pr(Some(3000), None))], true, false, 0.75)]
    #[case::both_resources_up(vec![("c", 3000, Some(10 * M))], vec![target_only("c", pr(Some(6000), Some(20 * M)))], false, true, 2.0)]
    #[case::one_resource_up(vec![("c", 4000, Some(10 * M))], vec![target_only("c", pr(Some(2000), Some(20 * M)))], false, true, 1.5)]
    #[case::both_resources_down(vec![("c", 4000, Some(20 * M))], vec![target_only("c", pr(Some(2000), Some(10 * M)))], false, false, 1.0)]
    #[case::one_resource_outside(vec![("c", 4000, Some(20 * M))],
        vec![crec("c", pr(Some(2000), Some(10 * M)), pr(Some(1000), Some(5 * M)), pr(Some(3000), Some(30 * M)))], true, false, 1.0)]
    #[case::two_containers_up(vec![("c", 1000, None), ("d", 2000, None)],
        vec![target_only("c", pr(Some(4000), None)), target_only("d", pr(Some(8000), None))], false, true, 3.0)]
    #[case::two_containers_down(vec![("c", 3000, None), ("d", 7000, None)],
        vec![target_only("c", pr(Some(1000), None)), target_only("d", pr(Some(2000), None))], false, false, 0.7)]
    #[case::two_containers_one_outside(vec![("c", 1000, None), ("d", 2000, None)],
        vec![crec("c", pr(Some(4000), None), pr(Some(1000), None), PartialResources::NONE),
             crec("d", pr(Some(8000), None), pr(Some(3000), None), pr(Some(10_000), None))], true, true, 3.0)]
    #[case::two_containers_two_resources(vec![("c", 6000, Some(10 * M)), ("d", 4000, Some(30 * M))],
        vec![target_only("c", pr(Some(8000), Some(20 * M))), target_only("d", pr(Some(7000), Some(30 * M)))], false, true, 0.75)]
    fn upstream_priorities(
        #[case] containers: Vec<(&str, i64, Option<i64>)>,
        #[case] recs: Vec<ContainerRecommendation>,
        #[case] outside: bool,
        #[case] scale_up: bool,
        #[case] diff: f64,
    ) {
        let p = pod(
            "p",
            containers
                .into_iter()
                .map(|(n, cpu, mem)| container(n, pr(Some(cpu), mem)))
                .collect(),
        );
        let prio = pod_priority(&p, &rec_of(recs));
        assert_eq!(prio.outside_recommended_range, outside);
        assert_eq!(prio.scale_up, scale_up);
        assert!((prio.resource_diff - diff).abs() < 1e-9, "{prio:?}");
    }

    #[test]
    fn missing_request_means_scale_up_outside_range() {
        let p = pod("p", vec![container("c", pr(None, Some(M)))]);
        let prio = pod_priority(&p, &rec_of(vec![target_only("c", pr(Some(100), Some(M)))]));
        assert!(prio.outside_recommended_range && prio.scale_up);
        // The request total is floored at one milli-unit: |1 − 100| / 1.
        assert!((prio.resource_diff - 99.0).abs() < 1e-9, "{prio:?}");
    }

    // Upstream TestGetUpdatePriority_VpaObservedContainers.
    #[rstest]
    #[case::no_annotation(None, 9.0)]
    #[case::listed(Some("c"), 9.0)]
    #[case::not_listed(Some(""), 0.0)]
    #[case::malformed(Some("abcd;';"), 9.0)]
    fn observed_containers_limit_priority(#[case] annotation: Option<&str>, #[case] diff: f64) {
        let mut p = cpu_pod("p", 1000);
        if let Some(a) = annotation {
            p.annotations
                .insert(OBSERVED_CONTAINERS_ANNOTATION.to_owned(), a.to_owned());
        }
        let prio = pod_priority(&p, &rec_of(vec![target_only("c", pr(Some(10_000), None))]));
        assert!((prio.resource_diff - diff).abs() < 1e-9);
    }

    // Upstream TestSortPriority and TestSortPriorityResourcesDecrease.
    #[rstest]
    #[case(vec![(false, 4.0), (false, 1.5), (false, 9.0), (false, 2.33)], vec![2, 0, 3, 1])]
    #[case(vec![(true, 0.25), (false, 0.25), (false, 0.5)], vec![0, 2, 1])]
    fn priority_order(#[case] prios: Vec<(bool, f64)>, #[case] order: Vec<usize>) {
        let mut idx: Vec<usize> = (0..prios.len()).collect();
        let p = |i: usize| PodPriority {
            outside_recommended_range: false,
            scale_up: prios[i].0,
            resource_diff: prios[i].1,
        };
        idx.sort_by(|&a, &b| p(a).cmp_urgency(&p(b)));
        assert_eq!(idx, order);
    }

    // Upstream TestUpdateLonglivedPods / TestUpdateShortlivedPods with real priorities.
    #[rstest]
    #[case::long_lived(13, vec![4000, 1000, 8000], vec!["ns/p1", "ns/p2"])]
    #[case::short_lived(11, vec![4000, 1000, 10_000], vec!["ns/p2"])]
    fn lifetime_threshold(
        #[case] age_hours: i64,
        #[case] cpus: Vec<i64>,
        #[case] expected: Vec<&str>,
    ) {
        let pods: Vec<_> = cpus
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let mut p = cpu_pod(&format!("p{i}"), c);
                p.started_at_secs = Some(NOW - age_hours * HOUR);
                p
            })
            .collect();
        let vpa = Vpa::new(rec_of(vec![crec(
            "c",
            pr(Some(5000), None),
            pr(Some(1000), None),
            pr(Some(6000), None),
        )]));
        let plan = vpa.decide(&pods, &lenient(0.5), NOW);
        assert_eq!(updated(&plan), expected);
        let short = if age_hours < 12 {
            SkipReason::ShortLived
        } else {
            SkipReason::ChangeTooSmall
        };
        assert_eq!(skip_of(&plan, "ns/p0"), Some(short));
    }

    /// A pod 11h old, in range, whose container was OOM-killed.
    fn oom_pod(
        run_started_ago: i64,
        requests: PartialResources,
        annotation: Option<&str>,
    ) -> UpdaterPod {
        let mut c = container("c", requests);
        c.last_oom_kill = Some(OomKill {
            started_at_secs: NOW - run_started_ago,
            finished_at_secs: NOW - 180,
        });
        let mut p = pod("p", vec![c]);
        p.started_at_secs = Some(NOW - 11 * HOUR);
        if let Some(a) = annotation {
            p.annotations
                .insert(OBSERVED_CONTAINERS_ANNOTATION.to_owned(), a.to_owned());
        }
        p
    }

    // Upstream TestUpdatePodWithQuickOOM, TestDontUpdatePodWithOOMAfterLongRun,
    // TestQuickOOM_VpaOvservedContainers.
    #[rstest]
    #[case::quick(300, None, None)]
    #[case::after_long_run(3600, None, Some(SkipReason::ShortLived))]
    #[case::observed(300, Some("c"), None)]
    #[case::not_observed(300, Some(""), Some(SkipReason::ShortLived))]
    fn quick_oom_cases(
        #[case] run_started_ago: i64,
        #[case] annotation: Option<&str>,
        #[case] skip: Option<SkipReason>,
    ) {
        let p = oom_pod(run_started_ago, pr(Some(4000), None), annotation);
        let mut vpa = Vpa::new(rec_of(vec![crec(
            "c",
            pr(Some(5000), None),
            pr(Some(1000), None),
            pr(Some(6000), None),
        )]));
        vpa.min_replicas = Some(1);
        let plan = vpa.decide(std::slice::from_ref(&p), &lenient(0.5), NOW);
        match skip {
            None => {
                assert_eq!(updated(&plan), vec!["ns/p"]);
                assert!(matches!(
                    plan.updates[0].action,
                    Action::Update {
                        reason: UpdateReason::QuickOom,
                        ..
                    }
                ));
            }
            Some(r) => assert_eq!(skip_of(&plan, "ns/p"), Some(r)),
        }
    }

    #[test]
    fn quick_oom_needs_a_change_and_an_autoscaled_container() {
        // Upstream TestDontUpdatePodWithQuickOOMNoResourceChange.
        let p = oom_pod(300, pr(Some(4000), Some(8 << 30)), None);
        let mut vpa = Vpa::new(rec_of(vec![crec(
            "c",
            pr(Some(4000), Some(8 << 30)),
            pr(Some(2000), Some(5 << 30)),
            pr(Some(5000), Some(10 << 30)),
        )]));
        vpa.min_replicas = Some(1);
        let plan = vpa.decide(std::slice::from_ref(&p), &lenient(0.1), NOW);
        assert_eq!(skip_of(&plan, "ns/p"), Some(SkipReason::NoResourceChange));

        // Upstream TestQuickOOM_ContainerResourcePolicy: mode Off ignores the OOM.
        let p = oom_pod(300, pr(Some(4000), None), None);
        vpa.recommendation = rec_of(vec![crec(
            "c",
            pr(Some(5000), None),
            pr(Some(1000), None),
            pr(Some(6000), None),
        )]);
        vpa.policy = ResourcePolicy {
            container_policies: vec![ContainerPolicy {
                mode: ContainerScalingMode::Off,
                ..ContainerPolicy::default_for("c")
            }],
        };
        let plan = vpa.decide(std::slice::from_ref(&p), &lenient(0.5), NOW);
        assert_eq!(skip_of(&plan, "ns/p"), Some(SkipReason::ShortLived));
    }

    #[rstest]
    #[case::mirror(|p: &mut UpdaterPod| p.is_mirror = true, SkipReason::MirrorPod)]
    #[case::no_controller(|p: &mut UpdaterPod| p.controller = None, SkipReason::NoController)]
    #[case::safe_to_evict(|p: &mut UpdaterPod| {
        p.annotations.insert(SAFE_TO_EVICT_ANNOTATION.to_owned(), "false".to_owned());
    }, SkipReason::SafeToEvictFalse)]
    #[case::pending(|p: &mut UpdaterPod| p.phase = PodPhase::Pending, SkipReason::NotRunning)]
    #[case::no_start_time(|p: &mut UpdaterPod| {
        p.started_at_secs = None;
        p.containers[0].requests = pr(Some(5000), None);
    }, SkipReason::NoStartTime)]
    #[case::no_recommendation(|p: &mut UpdaterPod| p.containers[0].name = "other".into(), SkipReason::NoRecommendation)]
    fn never_touched(#[case] change: fn(&mut UpdaterPod), #[case] reason: SkipReason) {
        let mut p = cpu_pod("p", 1000);
        change(&mut p);
        // Other pods keep the controller above minReplicas.
        let pods = vec![p, cpu_pod("q", 1000), cpu_pod("r", 1000)];
        let vpa = Vpa::new(rec_of(vec![target_only("c", pr(Some(5000), None))]));
        let plan = vpa.decide(&pods, &lenient(0.1), NOW);
        assert_eq!(skip_of(&plan, "ns/p"), Some(reason));
        assert!(!updated(&plan).contains(&"ns/p"));
        assert!(updated(&plan).contains(&"ns/q"), "others still update");
        let message = &plan
            .skipped
            .iter()
            .find(|d| d.pod == "ns/p")
            .unwrap()
            .message;
        assert!(!message.is_empty());
    }

    #[test]
    fn safe_to_evict_true_is_fine_and_modes_that_do_not_update_skip_all() {
        let mut p = cpu_pod("p", 1000);
        p.annotations
            .insert(SAFE_TO_EVICT_ANNOTATION.to_owned(), "true".to_owned());
        let mut vpa = Vpa::new(rec_of(vec![target_only("c", pr(Some(5000), None))]));
        vpa.min_replicas = Some(1);
        assert_eq!(
            updated(&vpa.decide(std::slice::from_ref(&p), &lenient(0.1), NOW)),
            vec!["ns/p"]
        );
        for mode in [UpdateMode::Off, UpdateMode::Initial] {
            vpa.mode = mode;
            let plan = vpa.decide(std::slice::from_ref(&p), &lenient(0.1), NOW);
            assert!(plan.updates.is_empty());
            assert_eq!(skip_of(&plan, "ns/p"), Some(SkipReason::UpdateModeOff));
        }
    }

    /// `n` pods of one controller, each wanting more CPU, `running` of them Running.
    fn group(configured: Option<u32>, kind: &str, n: usize, running: usize) -> Vec<UpdaterPod> {
        (0..n)
            .map(|i| {
                let mut p = cpu_pod(&format!("p{i}"), 100 + i64::try_from(i).unwrap());
                p.controller = Some(ControllerRef {
                    kind: kind.to_owned(),
                    name: "owner".to_owned(),
                    configured_replicas: configured,
                });
                if i >= running {
                    p.phase = PodPhase::Pending;
                }
                p
            })
            .collect()
    }

    #[rstest]
    #[case::half_of_ten(Some(10), "ReplicaSet", 10, 10, None, 5, None)]
    #[case::int_of_one_and_a_half(Some(3), "ReplicaSet", 3, 3, None, 1, None)]
    #[case::one_when_all_running(Some(1), "ReplicaSet", 1, 1, Some(1), 1, None)]
    // Upstream counts "all running" as running == configured, surplus pending pods aside.
    #[case::one_when_running_matches_configured(Some(1), "ReplicaSet", 2, 1, Some(1), 1, None)]
    #[case::none_when_tolerance_zero_and_not_all_running(
        Some(2),
        "ReplicaSet",
        2,
        1,
        Some(1),
        0,
        Some(SkipReason::DisruptionBudget)
    )]
    #[case::none_when_enough_are_not_running(
        Some(2),
        "ReplicaSet",
        2,
        1,
        None,
        0,
        Some(SkipReason::DisruptionBudget)
    )]
    #[case::too_few_live(Some(5), "ReplicaSet", 1, 1, None, 0, Some(SkipReason::TooFewReplicas))]
    #[case::vpa_min_replicas(
        Some(5),
        "ReplicaSet",
        4,
        4,
        Some(5),
        0,
        Some(SkipReason::TooFewReplicas)
    )]
    #[case::surplus_does_not_enlarge(
        Some(2),
        "ReplicaSet",
        6,
        6,
        None,
        1,
        Some(SkipReason::DisruptionBudget)
    )]
    #[case::unknown_replicas(None, "ReplicaSet", 4, 4, None, 0, Some(SkipReason::ReplicasUnknown))]
    #[case::job_counts_live_pods(None, "Job", 4, 4, None, 2, Some(SkipReason::DisruptionBudget))]
    fn disruption_budget(
        #[case] configured: Option<u32>,
        #[case] kind: &str,
        #[case] n: usize,
        #[case] running: usize,
        #[case] min_replicas: Option<u32>,
        #[case] expected_updates: usize,
        #[case] skip_running: Option<SkipReason>,
    ) {
        let pods = group(configured, kind, n, running);
        let mut vpa = Vpa::new(rec_of(vec![target_only("c", pr(Some(5000), None))]));
        vpa.min_replicas = min_replicas;
        let plan = vpa.decide(&pods, &UpdaterConfig::default(), NOW);
        assert_eq!(plan.updates.len(), expected_updates, "{plan:#?}");
        // Most urgent first: the smallest request has the largest relative change.
        if expected_updates > 0 {
            assert_eq!(plan.updates[0].pod, "ns/p0");
        }
        if let Some(r) = skip_running {
            let last_running = format!("ns/p{}", running - 1);
            assert_eq!(skip_of(&plan, &last_running), Some(r));
        }
        assert_eq!(plan.updates.len() + plan.skipped.len(), n);
    }

    #[test]
    fn pods_disagreeing_on_replicas_share_one_budget_at_the_smaller_count() {
        let mut pods = group(Some(8), "ReplicaSet", 6, 6);
        for p in &mut pods[3..] {
            p.controller.as_mut().unwrap().configured_replicas = Some(2);
        }
        let vpa = Vpa::new(rec_of(vec![target_only("c", pr(Some(5000), None))]));
        let plan = vpa.decide(&pods, &UpdaterConfig::default(), NOW);
        // int(2 × 0.5) = 1, not 4 + 1.
        assert_eq!(updated(&plan), vec!["ns/p0"]);
    }

    #[rstest]
    #[case::up_wanted_and_up(ChangeRequirement::TargetHigherThanRequests, Some(M), 5000, true)]
    #[case::up_wanted_but_down(ChangeRequirement::TargetHigherThanRequests, Some(M), 10, false)]
    #[case::down_wanted_and_down(ChangeRequirement::TargetLowerThanRequests, Some(M), 10, true)]
    #[case::down_wanted_but_up(ChangeRequirement::TargetLowerThanRequests, Some(M), 5000, false)]
    #[case::no_memory_request_admits(ChangeRequirement::TargetLowerThanRequests, None, 5000, true)]
    fn eviction_requirements(
        #[case] change: ChangeRequirement,
        #[case] mem_request: Option<i64>,
        #[case] cpu_target: i64,
        #[case] updates: bool,
    ) {
        let p = pod("p", vec![container("c", pr(Some(1000), mem_request))]);
        let mut vpa = Vpa::new(rec_of(vec![target_only(
            "c",
            pr(Some(cpu_target), Some(M)),
        )]));
        vpa.min_replicas = Some(1);
        vpa.requirements = vec![EvictionRequirement {
            resources: vec![ResourceName::Cpu],
            change_requirement: change,
        }];
        let plan = vpa.decide(std::slice::from_ref(&p), &lenient(0.1), NOW);
        if updates {
            assert_eq!(updated(&plan), vec!["ns/p"]);
        } else {
            assert_eq!(
                skip_of(&plan, "ns/p"),
                Some(SkipReason::EvictionRequirementsUnmet)
            );
        }
    }

    #[test]
    fn recommendation_is_capped_by_policy_before_comparing() {
        // Target 5 cores, but maxAllowed 1 core equals the request: nothing to do.
        let mut vpa = Vpa::new(rec_of(vec![target_only("c", pr(Some(5000), None))]));
        vpa.min_replicas = Some(1);
        vpa.policy = ResourcePolicy {
            container_policies: vec![ContainerPolicy {
                max_allowed: pr(Some(1000), None),
                ..ContainerPolicy::default_for("c")
            }],
        };
        let plan = vpa.decide(&[cpu_pod("p", 1000)], &lenient(0.1), NOW);
        assert_eq!(skip_of(&plan, "ns/p"), Some(SkipReason::ChangeTooSmall));
    }

    #[rstest]
    #[case(ResizeState::None, 10_000, ResizeFallback::Wait)]
    #[case(ResizeState::Infeasible, 0, ResizeFallback::Evict)]
    #[case(ResizeState::Deferred, 300, ResizeFallback::Wait)]
    #[case(ResizeState::Deferred, 301, ResizeFallback::Evict)]
    #[case(ResizeState::InProgress, 3600, ResizeFallback::Wait)]
    #[case(ResizeState::InProgress, 3601, ResizeFallback::Evict)]
    #[case(ResizeState::Error, 0, ResizeFallback::Evict)]
    #[case(ResizeState::Unknown, 0, ResizeFallback::Evict)]
    fn resize_fallback_rule(
        #[case] state: ResizeState,
        #[case] elapsed: i64,
        #[case] expected: ResizeFallback,
    ) {
        assert_eq!(resize_fallback(state, NOW - elapsed, NOW), expected);
    }

    #[test]
    fn labels_are_stable() {
        assert_eq!(SkipReason::DisruptionBudget.as_str(), "disruption_budget");
        assert_eq!(
            SkipReason::SafeToEvictFalse.to_string(),
            "safe_to_evict_false"
        );
        assert_eq!(UpdateReason::QuickOom.as_str(), "quick_oom");
    }

    fn arb_pod(controllers: u32) -> impl Strategy<Value = UpdaterPod> {
        (
            0..controllers,
            prop::sample::select(vec![
                PodPhase::Running,
                PodPhase::Running,
                PodPhase::Running,
                PodPhase::Pending,
                PodPhase::Failed,
                PodPhase::Unknown,
            ]),
            prop::option::of(1i64..20_000),
            prop::option::of(1i64..(1 << 34)),
            0i64..(48 * HOUR),
            any::<bool>(),
        )
            .prop_map(|(ctrl, phase, cpu, mem, age, oom)| {
                let mut c = container("c", pr(cpu, mem));
                if oom {
                    c.last_oom_kill = Some(OomKill {
                        started_at_secs: NOW - 200,
                        finished_at_secs: NOW - 100,
                    });
                }
                let mut p = pod("p", vec![c]);
                p.controller = Some(ControllerRef {
                    kind: "ReplicaSet".to_owned(),
                    name: format!("rs{ctrl}"),
                    configured_replicas: None,
                });
                p.phase = phase;
                p.started_at_secs = Some(NOW - age);
                p
            })
    }

    proptest! {
        #[test]
        fn never_exceeds_the_budget(
            mut pods in prop::collection::vec(arb_pod(4), 0..40),
            replicas in prop::collection::vec(prop::option::of(0u32..30), 4),
            tolerance in 0.0f64..1.0,
            min_replicas in prop::option::of(0u32..6),
            target in (1i64..20_000, 1i64..(1 << 34)),
        ) {
            for (i, p) in pods.iter_mut().enumerate() {
                p.name = format!("p{i}");
                if let Some(c) = p.controller.as_mut() {
                    let k: usize = c.name[2..].parse().unwrap();
                    c.configured_replicas = replicas[k];
                }
            }
            let mut vpa = Vpa::new(rec_of(vec![crec(
                "c",
                pr(Some(target.0), Some(target.1)),
                pr(Some(target.0 / 2), Some(target.1 / 2)),
                pr(Some(target.0 * 2), Some(target.1 * 2)),
            )]));
            vpa.min_replicas = min_replicas;
            let config = UpdaterConfig { eviction_tolerance: tolerance, ..UpdaterConfig::default() };
            let plan = vpa.decide(&pods, &config, NOW);

            let mut chosen: BTreeMap<&str, u32> = BTreeMap::new();
            for d in &plan.updates {
                let p = &pods[d.pod_index];
                prop_assert_eq!(p.phase, PodPhase::Running);
                let c = p.controller.as_ref().unwrap();
                *chosen.entry(c.name.as_str()).or_default() += 1;
            }
            for (name, n) in chosen {
                let members: Vec<_> = pods.iter()
                    .filter(|p| p.controller.as_ref().is_some_and(|c| c.name == name))
                    .collect();
                let live = members.iter()
                    .filter(|p| !matches!(p.phase, PodPhase::Succeeded | PodPhase::Failed))
                    .count();
                let running = members.iter().filter(|p| p.phase == PodPhase::Running).count();
                let configured = members[0].controller.as_ref().unwrap().configured_replicas.unwrap();
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let budget = ((f64::from(configured) * tolerance) as u32).max(1);
                prop_assert!(n <= budget, "{} chose {} > budget {}", name, n, budget);
                prop_assert!(live >= min_replicas.unwrap_or(2) as usize);
                prop_assert!(n as usize <= running);
            }
            // Every pod gets exactly one decision.
            let mut seen: Vec<usize> = plan.updates.iter().chain(&plan.skipped).map(|d| d.pod_index).collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..pods.len()).collect::<Vec<_>>());
        }
    }
}
