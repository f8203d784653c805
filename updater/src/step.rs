//! One updater loop, pure: the caches' contents in, the actions to take out.
//!
//! VPAs in an updating mode (`Recreate`, `Auto`, `InPlaceOrRecreate`) are
//! selected as upstream's updater does; each live pod goes to the oldest VPA
//! whose `targetRef` names its top-most controller and whose target selects
//! it; `tailor_core::update::decide_updates` chooses, per VPA, which pods to
//! update within each controller's disruption budget; then per pod the action:
//! an in-place resize (`InPlaceOrRecreate`, with the patch the admission
//! webhook would compute), an eviction, or — for a pod whose resize the
//! kubelet has not finished — waiting or falling back to eviction
//! (`tailor_core::update::resize_fallback`).

use crate::model::{self, ControllerIndex, PodEntry};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tailor_api::convert;
use tailor_api::vpa::VerticalPodAutoscaler;
use tailor_core::admission::{AdmissionPod, NamespaceLimits, PatchOperation, compute_pod_patch};
use tailor_core::policy::UpdateMode;
use tailor_core::update::{
    Action, ResizeFallback, ResizeState, UpdateReason, UpdaterConfig, VpaUpdateInput,
    decide_updates, resize_fallback,
};

/// Which VPAs this updater handles, and its tunables.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepConfig {
    /// Core's tunables (thresholds, tolerance, `--min-replicas`).
    pub updater: UpdaterConfig,
    /// Only VPAs whose `spec.recommenders[0].name` is this (`default` also
    /// takes VPAs naming none); `None`: every VPA, as upstream.
    pub recommender_name: Option<String>,
    /// Only VPAs in this namespace (`None`: all).
    pub namespace: Option<String>,
    /// VPAs in these namespaces are ignored.
    pub ignored_namespaces: Vec<String>,
}

/// What the cluster looks like, from the watch caches.
#[derive(Clone, Copy)]
pub struct Snapshot<'a> {
    /// Every VPA.
    pub vpas: &'a [Arc<VerticalPodAutoscaler>],
    /// Every pod.
    pub pods: &'a [Arc<PodEntry>],
    /// Every watched controller.
    pub controllers: &'a ControllerIndex,
}

/// How a pod is updated.
#[derive(Clone, Debug, PartialEq)]
pub enum ActionKind {
    /// Evict through the Eviction API.
    Evict {
        /// Set when this replaces an in-place resize that did not complete.
        fallback_from: Option<ResizeState>,
    },
    /// Patch the `resize` subresource with this JSON Patch.
    Resize {
        /// The operations (`spec.containers[i].resources` only).
        patch: Vec<PatchOperation>,
    },
}

/// One pod to update.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedAction {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's uid.
    pub pod_uid: String,
    /// The controlling VPA's name (same namespace).
    pub vpa: String,
    /// The VPA's uid (for its Events).
    pub vpa_uid: String,
    /// Evict or resize.
    pub kind: ActionKind,
    /// Why (core's reason).
    pub reason: UpdateReason,
    /// A sentence for logs and Events.
    pub message: String,
}

/// A pod left alone this loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    /// `namespace/name`.
    pub pod: String,
    /// Stable label (core's reasons plus the updater's own).
    pub reason: &'static str,
    /// A sentence for logs.
    pub message: String,
}

/// A VPA that could not be handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpaProblem {
    /// `namespace/name`.
    pub vpa: String,
    /// Stable label: `invalid_spec`, `no_recommendation`.
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
}

/// What a step concluded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepOutput {
    /// Pods to update, in order (per VPA, most urgent first).
    pub actions: Vec<PlannedAction>,
    /// Pods under a handled VPA.
    pub considered: usize,
    /// Pods left alone, with why.
    pub skipped: Vec<Skip>,
    /// VPAs that could not be handled.
    pub vpa_problems: Vec<VpaProblem>,
    /// Controllers whose disruption budget ran out with pods still waiting.
    pub budgets_exhausted: usize,
}

/// Skip label: the pod's owner chain could not be followed.
pub const SKIP_OWNER_UNRESOLVED: &str = "owner_unresolved";
/// Skip label: an in-place resize is pending or in progress, within its time.
pub const SKIP_RESIZE_WAITING: &str = "resize_waiting";
/// Skip label: the resize patch would change nothing.
pub const SKIP_NO_RESIZE_PATCH: &str = "no_resize_patch";

/// How long after a resize request the kubelet may take to report it.
pub const RESIZE_REPORT_GRACE_SECS: i64 = 10 * 60;

/// When each pod's in-place resize was last asked for (Unix seconds), by
/// pod uid: the fallback timeouts count from it. Lost on restart; then the
/// first loop that sees a pending resize starts the clock, as upstream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResizeTracker {
    last_attempt: HashMap<String, i64>,
}

impl ResizeTracker {
    /// Records a resize request.
    pub fn record(&mut self, uid: &str, now: i64) {
        self.last_attempt.insert(uid.to_owned(), now);
    }

    /// When the pod's resize was last asked for, starting the clock now if unknown.
    fn started(&mut self, uid: &str, now: i64) -> i64 {
        *self.last_attempt.entry(uid.to_owned()).or_insert(now)
    }

    /// Forgets pods that are gone, and pods with no resize under way whose
    /// last request is older than [`RESIZE_REPORT_GRACE_SECS`] (the kubelet
    /// has had time to report; a later resize starts a fresh clock).
    fn retain(&mut self, resizing: &HashMap<&str, bool>, now: i64) {
        self.last_attempt.retain(|uid, at| match resizing.get(uid.as_str()) {
            None => false,
            Some(true) => true,
            Some(false) => now.saturating_sub(*at) <= RESIZE_REPORT_GRACE_SECS,
        });
    }

    /// Pods tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.last_attempt.len()
    }

    /// True when no pod is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.last_attempt.is_empty()
    }
}

/// A handled VPA, converted.
struct Handled<'a> {
    vpa: &'a VerticalPodAutoscaler,
    key: (String, String),
    mode: UpdateMode,
}

fn ns_name(vpa: &VerticalPodAutoscaler) -> (String, String) {
    (
        vpa.metadata.namespace.clone().unwrap_or_default(),
        vpa.metadata.name.clone().unwrap_or_default(),
    )
}

fn handled_vpas<'a>(
    vpas: &'a [Arc<VerticalPodAutoscaler>],
    config: &StepConfig,
    problems: &mut Vec<VpaProblem>,
) -> Vec<Handled<'a>> {
    let mut out = Vec::new();
    for vpa in vpas {
        let key = ns_name(vpa);
        if config.namespace.as_ref().is_some_and(|ns| *ns != key.0)
            || config.ignored_namespaces.contains(&key.0)
        {
            continue;
        }
        if let Some(name) = &config.recommender_name
            && !vpa.spec.handled_by(name)
        {
            continue;
        }
        let mode = match convert::update_mode(vpa) {
            Ok(m) => m,
            Err(e) => {
                problems.push(VpaProblem {
                    vpa: format!("{}/{}", key.0, key.1),
                    reason: "invalid_spec",
                    message: e.to_string(),
                });
                continue;
            }
        };
        if mode.updates_running_pods() {
            out.push(Handled { vpa, key, mode });
        }
    }
    out
}

/// The controlling VPA of each pod: per VPA (index into `handled`), its pods.
fn assign_pods<'a>(
    snap: Snapshot<'a>,
    handled: &[Handled<'_>],
    skipped: &mut Vec<Skip>,
) -> BTreeMap<usize, Vec<&'a PodEntry>> {
    let mut by_ns: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, h) in handled.iter().enumerate() {
        by_ns.entry(h.key.0.as_str()).or_default().push(i);
    }
    let mut out: BTreeMap<usize, Vec<&PodEntry>> = BTreeMap::new();
    for pod in snap.pods {
        // Upstream drops pods being deleted before anything else.
        if pod.deleting {
            continue;
        }
        let Some(candidates) = by_ns.get(pod.pod.namespace.as_str()) else {
            continue;
        };
        let top = match model::top_controller(snap.controllers, pod) {
            Ok(Some(top)) => top,
            Ok(None) => continue,
            Err(e) => {
                skipped.push(Skip {
                    pod: pod.id(),
                    reason: SKIP_OWNER_UNRESOLVED,
                    message: e.to_string(),
                });
                continue;
            }
        };
        let key = (pod.pod.namespace.clone(), top.kind.clone(), top.name.clone());
        // A target whose selector cannot be read selects nothing (upstream skips the VPA).
        let Some(Ok(selector)) = snap.controllers.get(&key).map(|c| &c.selector) else {
            continue;
        };
        if !selector.matches(&pod.labels) {
            continue;
        }
        let chosen = candidates
            .iter()
            .copied()
            .filter(|&i| top.is_target_of(&handled[i].vpa.spec.target_ref))
            .min_by(|&a, &b| {
                let age = |i: usize| handled[i].vpa.metadata.creation_timestamp.clone();
                age(a)
                    .cmp(&age(b))
                    .then_with(|| handled[a].key.1.cmp(&handled[b].key.1))
            });
        if let Some(i) = chosen {
            out.entry(i).or_default().push(pod);
        }
    }
    out
}

/// One loop's decisions.
///
/// Never chooses more pods of a controller than its disruption budget
/// allows: every action comes from core's plan, which admits pods per
/// controller within the budget, and each chosen pod gets at most one action.
pub fn step(
    snap: Snapshot<'_>,
    config: &StepConfig,
    tracker: &mut ResizeTracker,
    now: i64,
) -> StepOutput {
    let mut out = StepOutput::default();
    let handled = handled_vpas(snap.vpas, config, &mut out.vpa_problems);
    let assigned = assign_pods(snap, &handled, &mut out.skipped);
    let no_limits = NamespaceLimits::default();

    for (i, pods) in assigned {
        let h = &handled[i];
        let vpa_id = format!("{}/{}", h.key.0, h.key.1);
        out.considered += pods.len();
        let converted = (|| {
            let policy = convert::resource_policy(h.vpa).map_err(|e| e.to_string())?;
            let recommendation = convert::recommendation(h.vpa).map_err(|e| e.to_string())?;
            let requirements = model::eviction_requirements(h.vpa)
                .map_err(|e| format!("VerticalPodAutoscaler {vpa_id}: {e}"))?;
            Ok::<_, String>((policy, recommendation, requirements))
        })();
        let (policy, recommendation, requirements) = match converted {
            Ok(c) => c,
            Err(message) => {
                out.vpa_problems.push(VpaProblem {
                    vpa: vpa_id,
                    reason: "invalid_spec",
                    message,
                });
                continue;
            }
        };
        let Some(recommendation) = recommendation else {
            out.vpa_problems.push(VpaProblem {
                vpa: vpa_id.clone(),
                reason: "no_recommendation",
                message: format!("VerticalPodAutoscaler {vpa_id} has no recommendation yet"),
            });
            for p in &pods {
                out.skipped.push(Skip {
                    pod: p.id(),
                    reason: "no_recommendation",
                    message: format!("VPA {vpa_id} has no recommendation yet"),
                });
            }
            continue;
        };
        let update_policy = h.vpa.spec.update_policy.as_ref();
        let min_replicas = update_policy
            .and_then(|p| p.min_replicas)
            .map(|n| u32::try_from(n).unwrap_or(0));
        let mut vpa_config = config.updater;
        if let Some(s) = update_policy.and_then(|p| p.evict_after_oom_seconds) {
            vpa_config.evict_after_oom_threshold_secs = i64::from(s);
        }
        let core_pods: Vec<_> = pods
            .iter()
            .map(|p| {
                let mut cp = p.pod.clone();
                cp.controller = model::direct_controller(snap.controllers, p);
                cp
            })
            .collect();
        let plan = decide_updates(
            &VpaUpdateInput {
                vpa_name: &h.key.1,
                mode: h.mode,
                min_replicas,
                eviction_requirements: &requirements,
                resource_policy: &policy,
                recommendation: &recommendation,
                limits: &no_limits,
                pods: &core_pods,
            },
            &vpa_config,
            now,
        );
        let mut exhausted: HashSet<(String, String)> = HashSet::new();
        for d in plan.skipped {
            if let Action::Skip(reason) = d.action {
                if reason == tailor_core::update::SkipReason::DisruptionBudget
                    && let Some(c) = &core_pods[d.pod_index].controller
                {
                    exhausted.insert((c.kind.clone(), c.name.clone()));
                }
                out.skipped.push(Skip {
                    pod: d.pod,
                    reason: reason.as_str(),
                    message: d.message,
                });
            }
        }
        out.budgets_exhausted += exhausted.len();
        for d in plan.updates {
            let Action::Update { reason, .. } = d.action else {
                continue;
            };
            let entry = pods[d.pod_index];
            let kind = if h.mode == UpdateMode::InPlaceOrRecreate {
                if entry.resize == ResizeState::None {
                    let admission = AdmissionPod {
                        containers: entry.spec_containers.clone(),
                        has_annotations: entry.has_annotations,
                    };
                    let patch = compute_pod_patch(
                        &h.key.1,
                        h.mode,
                        &admission,
                        &recommendation,
                        &policy,
                        &no_limits,
                    );
                    // The resize subresource takes container resources only.
                    let ops: Vec<PatchOperation> = patch
                        .operations
                        .into_iter()
                        .filter(|op| op.path.starts_with("/spec/containers/"))
                        .collect();
                    if ops.is_empty() {
                        out.skipped.push(Skip {
                            pod: d.pod,
                            reason: SKIP_NO_RESIZE_PATCH,
                            message: "the pod's spec already has the recommended resources; waiting for the kubelet".into(),
                        });
                        continue;
                    }
                    ActionKind::Resize { patch: ops }
                } else {
                    let started = tracker.started(&entry.uid, now);
                    match resize_fallback(entry.resize, started, now) {
                        ResizeFallback::Wait => {
                            out.skipped.push(Skip {
                                pod: d.pod,
                                reason: SKIP_RESIZE_WAITING,
                                message: format!(
                                    "in-place resize {:?} for {}s; waiting",
                                    entry.resize,
                                    now.saturating_sub(started)
                                ),
                            });
                            continue;
                        }
                        ResizeFallback::Evict => ActionKind::Evict {
                            fallback_from: Some(entry.resize),
                        },
                    }
                }
            } else {
                ActionKind::Evict {
                    fallback_from: None,
                }
            };
            out.actions.push(PlannedAction {
                namespace: entry.pod.namespace.clone(),
                pod: entry.pod.name.clone(),
                pod_uid: entry.uid.clone(),
                vpa: h.key.1.clone(),
                vpa_uid: h.vpa.metadata.uid.clone().unwrap_or_default(),
                kind,
                reason,
                message: d.message,
            });
        }
    }
    let resizing: HashMap<&str, bool> = snap
        .pods
        .iter()
        .map(|p| (p.uid.as_str(), p.resize != ResizeState::None))
        .collect();
    tracker.retain(&resizing, now);
    out
}
