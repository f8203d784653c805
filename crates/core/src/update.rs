//! The updater's decisions: which running pods of a VPA get new resources, in
//! which order, and how many at once.
//!
//! Follows the upstream VPA updater (priority calculator, priority processor,
//! eviction restriction, scaling-direction admission). Time comes in as `now`
//! (Unix seconds); nothing here reads a clock.

use crate::admission::{AdmissionContainer, NamespaceLimits, cap_recommendation};
use crate::policy::{
    ContainerScalingMode, PartialResources, PodRecommendation, ResourcePolicy, UpdateMode,
};
use crate::resources::ResourceName;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
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

/// One VPA and the live pods it controls.
#[derive(Clone, Debug)]
pub struct VpaUpdateInput<'a> {
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
    pub pods: &'a [UpdaterPod],
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
fn observed_containers(pod: &UpdaterPod) -> Option<BTreeSet<&str>> {
    let value = pod.annotations.get(OBSERVED_CONTAINERS_ANNOTATION)?;
    if value.is_empty() {
        return Some(BTreeSet::new());
    }
    let names: BTreeSet<&str> = value.split(", ").collect();
    names.iter().all(|n| is_dns1123_label(n)).then_some(names)
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
    let observed = observed_containers(pod);
    let mut outside = false;
    let mut scale_up = false;
    let mut total_request = [0f64; 2];
    let mut total_target: [Option<f64>; 2] = [None; 2];
    for c in &pod.containers {
        if observed
            .as_ref()
            .is_some_and(|o| !o.contains(c.name.as_str()))
        {
            continue;
        }
        let Some(rec) = recommendation.for_container(&c.name) else {
            continue;
        };
        for (i, resource) in ResourceName::ALL.into_iter().enumerate() {
            let Some(target) = rec.target.get(resource) else {
                continue;
            };
            total_target[i] = Some(total_target[i].unwrap_or(0.0) + milli(resource, target));
            match c.requests.get(resource) {
                Some(request) => {
                    total_request[i] += milli(resource, request);
                    if target > request {
                        scale_up = true;
                    }
                    let below = rec.lower_bound.get(resource).is_some_and(|lo| request < lo);
                    let above = rec.upper_bound.get(resource).is_some_and(|hi| request > hi);
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
    policy: &ResourcePolicy,
    threshold_secs: i64,
) -> Option<&'a str> {
    let observed = observed_containers(pod);
    pod.containers.iter().find_map(|c| {
        if observed
            .as_ref()
            .is_some_and(|o| !o.contains(c.name.as_str()))
        {
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
    recommendation: &PodRecommendation,
    requirements: &[EvictionRequirement],
) -> bool {
    if requirements.is_empty() {
        return true;
    }
    pod.containers.iter().any(|c| {
        let Some(rec) = recommendation.for_container(&c.name) else {
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
                let target = rec.target.get(resource).unwrap_or(0);
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

fn pod_id(pod: &UpdaterPod) -> String {
    format!("{}/{}", pod.namespace, pod.name)
}

fn to_admission_containers(pod: &UpdaterPod) -> Vec<AdmissionContainer> {
    pod.containers
        .iter()
        .map(|c| AdmissionContainer::new(c.name.clone(), c.requests, c.limits))
        .collect()
}

/// A pod that wants an update, before the budget is applied.
struct Candidate {
    index: usize,
    reason: UpdateReason,
    priority: PodPriority,
    message: String,
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
pub fn decide_updates(input: &VpaUpdateInput<'_>, config: &UpdaterConfig, now: i64) -> UpdatePlan {
    let mut plan = UpdatePlan::default();
    let skip = |plan: &mut UpdatePlan, index: usize, reason: SkipReason, message: String| {
        plan.skipped.push(PodDecision {
            pod_index: index,
            pod: pod_id(&input.pods[index]),
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
    for (i, pod) in input.pods.iter().enumerate() {
        if pod.is_mirror {
            skip(
                &mut plan,
                i,
                SkipReason::MirrorPod,
                "mirror (static) pods cannot be evicted".into(),
            );
            continue;
        }
        if pod.controller.is_none() {
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

        let capped = cap_recommendation(
            &to_admission_containers(pod),
            input.recommendation,
            input.resource_policy,
            input.limits,
        )
        .recommendation;
        if !pod
            .containers
            .iter()
            .any(|c| capped.for_container(&c.name).is_some())
        {
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
        let priority = pod_priority(pod, &capped);
        let oom = quick_oom(
            pod,
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
        if !meets_eviction_requirements(pod, &capped, input.eviction_requirements) {
            skip(
                &mut plan,
                i,
                SkipReason::EvictionRequirementsUnmet,
                "the change does not go the direction evictionRequirements demand".into(),
            );
            continue;
        }
        let message = match reason {
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
        };
        candidates.push(Candidate {
            index: i,
            reason,
            priority,
            message,
        });
    }

    // Stable: equal priorities keep input order, so decisions are reproducible.
    candidates.sort_by(|a, b| a.priority.cmp_urgency(&b.priority));

    let budgets = controller_budgets(input, config);
    let mut budgets: BTreeMap<&ControllerRef, Result<DisruptionBudget, SkipReason>> = budgets;
    for cand in candidates {
        let pod = &input.pods[cand.index];
        let Some(controller) = pod.controller.as_ref() else {
            continue; // filtered above
        };
        let Some(budget) = budgets.get_mut(controller) else {
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
                    pod: pod_id(pod),
                    action: Action::Update {
                        reason: cand.reason,
                        priority: cand.priority,
                    },
                    message: cand.message,
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

/// Per controller: its budget, or why none of its pods may be disrupted.
fn controller_budgets<'a>(
    input: &VpaUpdateInput<'a>,
    config: &UpdaterConfig,
) -> BTreeMap<&'a ControllerRef, Result<DisruptionBudget, SkipReason>> {
    let required = input.min_replicas.unwrap_or(config.min_replicas);
    let mut live: BTreeMap<&ControllerRef, (u32, u32)> = BTreeMap::new();
    for pod in input.pods {
        let Some(controller) = pod.controller.as_ref() else {
            continue;
        };
        if matches!(pod.phase, PodPhase::Succeeded | PodPhase::Failed) {
            continue;
        }
        let entry = live.entry(controller).or_insert((0, 0));
        entry.0 = entry.0.saturating_add(1);
        if pod.phase == PodPhase::Running {
            entry.1 = entry.1.saturating_add(1);
        }
    }
    live.into_iter()
        .map(|(controller, (live_count, running))| {
            if live_count < required {
                return (controller, Err(SkipReason::TooFewReplicas));
            }
            let configured = match controller.configured_replicas {
                Some(n) if n > 0 => n,
                // A Job has no replica count: its live pods are its size.
                _ if controller.kind == "Job" => live_count,
                _ => return (controller, Err(SkipReason::ReplicasUnknown)),
            };
            (
                controller,
                Ok(DisruptionBudget::new(
                    configured,
                    running,
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
