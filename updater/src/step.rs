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

use crate::model::{self, ControllerIndex, OwnerKey, Owners, PodEntry, Unresolved};
use rustc_hash::FxBuildHasher;
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use tailor_api::convert;
use tailor_api::limit_range::LimitRangeError;
/// LimitRanges by namespace, read and merged as the admission webhook reads
/// them (both use `tailor_api::limit_range`), so a resize is capped as the
/// pod would be at creation.
pub use tailor_api::limit_range::LimitRanges as LimitRangeIndex;
use tailor_api::selector::Selector;
use tailor_api::vpa::VerticalPodAutoscaler;
use tailor_core::admission::{AdmissionPod, NamespaceLimits, PatchOperation, compute_pod_patch};
use tailor_core::policy::UpdateMode;
use tailor_core::update::{
    Action, ControllerRef, PodWithController, ResizeFallback, ResizeState, UpdateReason,
    UpdaterConfig, VpaUpdateInput, decide_updates, resize_fallback,
};
use tailor_runtime::scale::{CrossVersionObjectReferenceKey, ScaleTargets};

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
    /// LimitRanges, merged per namespace as the admission webhook merges
    /// them (the webhook's own index, LimitRanges only).
    pub limit_ranges: &'a LimitRangeIndex,
    /// `/scale` of the custom controllers that own pods (refreshed before
    /// the step for [`custom_owners`]).
    pub scale: &'a ScaleTargets,
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
/// Skip label: the pod's VPA has a field that cannot be read.
pub const SKIP_VPA_INVALID: &str = "vpa_invalid";
/// Skip label: an in-place resize is pending or in progress, within its time.
pub const SKIP_RESIZE_WAITING: &str = "resize_waiting";
/// Skip label: the resize patch would change nothing.
pub const SKIP_NO_RESIZE_PATCH: &str = "no_resize_patch";
/// Skip label: a custom controller in the pod's owner chain cannot be read
/// through its `/scale` subresource.
pub const SKIP_CUSTOM_OWNER_UNREADABLE: &str = "custom_owner_unreadable";
/// Skip label: a LimitRange of the pod's namespace has a value that cannot be
/// read (the admission webhook then leaves new pods unchanged too).
pub const SKIP_LIMIT_RANGE_INVALID: &str = "limit_range_invalid";

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
        self.last_attempt
            .retain(|uid, at| match resizing.get(uid.as_str()) {
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

/// The custom controllers whose `/scale` the next [`step`] reads: those
/// owning live pods in the namespaces of the VPAs it handles.
#[must_use]
pub fn custom_owners(
    vpas: &[Arc<VerticalPodAutoscaler>],
    pods: &[Arc<PodEntry>],
    controllers: &ControllerIndex,
    config: &StepConfig,
) -> BTreeSet<(String, CrossVersionObjectReferenceKey)> {
    let handled = handled_vpas(vpas, config, &mut Vec::new());
    let namespaces: HashSet<&str> = handled.iter().map(|h| h.key.0.as_str()).collect();
    model::custom_owners(controllers, pods.iter().map(|p| &**p), &namespaces)
}

/// The step's maps are keyed by borrowed names and live for one loop: a fast
/// hasher (rustc's FxHash) instead of SipHash, which showed in profiles.
type FastMap<K, V> = HashMap<K, V, FxBuildHasher>;
type FastSet<K> = HashSet<K, FxBuildHasher>;

/// The VPAs that may control pods of a target, by `(namespace, kind, name)`
/// of their `targetRef`.
type ByTarget<'a> = FastMap<(&'a str, &'a str, &'a str), Vec<usize>>;

/// What the pods of one direct controller get: their top controller's
/// selector, the VPA that controls them, and the direct controller (their
/// disruption budget group, an index into [`Assigned::controllers`]).
struct Matched<'a> {
    selector: Cow<'a, Selector>,
    vpa: usize,
    controller: Option<usize>,
}

/// Which pods each VPA controls.
struct Assigned<'a> {
    /// Per VPA (same index as the handled VPAs): its pods, each with its
    /// direct controller (an index into `controllers`).
    pods: Vec<Vec<(&'a PodEntry, Option<usize>)>>,
    /// The direct controllers, one per owner reference: the pods of one
    /// ReplicaSet share it instead of each carrying a copy.
    controllers: Vec<ControllerRef>,
}

/// The controlling VPA of each pod: per VPA (index into `handled`), its pods.
/// The owner walk, the selector lookup and the choice among VPAs are done
/// once per controller; only the label match is per pod.
fn assign_pods<'a>(
    snap: Snapshot<'a>,
    handled: &[Handled<'a>],
    owners: &Owners<'a>,
    skipped: &mut Vec<Skip>,
) -> Assigned<'a> {
    let mut namespaces: FastSet<&str> = FastSet::default();
    let mut by_target: ByTarget<'_> = FastMap::default();
    for (i, h) in handled.iter().enumerate() {
        namespaces.insert(h.key.0.as_str());
        let t = &h.vpa.spec.target_ref;
        by_target
            .entry((h.key.0.as_str(), t.kind.as_str(), t.name.as_str()))
            .or_default()
            .push(i);
    }
    // By the pod's direct controller: pods of one ReplicaSet share it all.
    let mut matches: FastMap<OwnerKey<'a>, Option<Matched<'a>>> = FastMap::default();
    let mut out = Assigned {
        pods: vec![Vec::new(); handled.len()],
        controllers: Vec::new(),
    };
    for pod in snap.pods {
        let pod: &'a PodEntry = pod;
        // Upstream drops pods being deleted before anything else.
        if pod.deleting || !namespaces.contains(pod.pod.namespace.as_str()) {
            continue;
        }
        let Some(key) = model::owner_key(pod) else {
            continue;
        };
        let found = match matches.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let top = match owners.top(pod) {
                    Ok(top) => top,
                    Err(e) => {
                        // Not remembered: each pod's message names that pod.
                        let reason = match e {
                            Unresolved::Owner(_) => SKIP_OWNER_UNRESOLVED,
                            Unresolved::CustomOwner { .. } => SKIP_CUSTOM_OWNER_UNREADABLE,
                        };
                        skipped.push(Skip {
                            pod: pod.id(),
                            reason,
                            message: e.to_string(),
                        });
                        continue;
                    }
                };
                let found = top.and_then(|top| {
                    let ns = key.0;
                    // A target whose selector cannot be read selects nothing (upstream skips the VPA).
                    let selector = owners.selector(ns, top)?;
                    let candidates = by_target.get(&(ns, top.kind.as_str(), top.name.as_str()))?;
                    let vpa = candidates.iter().copied().min_by(|&a, &b| {
                        let age = |i: usize| handled[i].vpa.metadata.creation_timestamp.as_ref();
                        age(a)
                            .cmp(&age(b))
                            .then_with(|| handled[a].key.1.cmp(&handled[b].key.1))
                    })?;
                    let controller = owners.direct(pod).map(|c| {
                        out.controllers.push(c);
                        out.controllers.len() - 1
                    });
                    Some(Matched {
                        selector,
                        vpa,
                        controller,
                    })
                });
                v.insert(found)
            }
        };
        if let Some(m) = found
            && m.selector.matches(&pod.labels)
        {
            out.pods[m.vpa].push((pod, m.controller));
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
    let owners = Owners::new(snap.controllers, snap.scale);
    let assigned = assign_pods(snap, &handled, &owners, &mut out.skipped);
    let assigned_controllers = &assigned.controllers;
    let mut namespace_limits: FastMap<&str, Result<NamespaceLimits, LimitRangeError>> =
        FastMap::default();

    let mut core_pods = Vec::new();
    for (h, assigned) in handled.iter().zip(&assigned.pods) {
        if assigned.is_empty() {
            continue;
        }
        let pods = assigned.iter().map(|&(p, _)| p);
        let vpa_id = || format!("{}/{}", h.key.0, h.key.1);
        out.considered += assigned.len();
        let converted = (|| {
            let policy = convert::resource_policy(h.vpa).map_err(|e| e.to_string())?;
            let recommendation = convert::recommendation(h.vpa).map_err(|e| e.to_string())?;
            let requirements = model::eviction_requirements(h.vpa)
                .map_err(|e| format!("VerticalPodAutoscaler {}: {e}", vpa_id()))?;
            Ok::<_, String>((policy, recommendation, requirements))
        })();
        let (policy, recommendation, requirements) = match converted {
            Ok(c) => c,
            Err(message) => {
                let vpa_id = vpa_id();
                // Its pods stay with it (the webhook picks the same VPA), untouched.
                for p in pods {
                    out.skipped.push(Skip {
                        pod: p.id(),
                        reason: SKIP_VPA_INVALID,
                        message: format!("VPA {vpa_id} cannot be read: {message}"),
                    });
                }
                out.vpa_problems.push(VpaProblem {
                    vpa: vpa_id,
                    reason: "invalid_spec",
                    message,
                });
                continue;
            }
        };
        let Some(recommendation) = recommendation else {
            let vpa_id = vpa_id();
            out.vpa_problems.push(VpaProblem {
                vpa: vpa_id.clone(),
                reason: "no_recommendation",
                message: format!("VerticalPodAutoscaler {vpa_id} has no recommendation yet"),
            });
            for p in pods {
                out.skipped.push(Skip {
                    pod: p.id(),
                    reason: "no_recommendation",
                    message: format!("VPA {vpa_id} has no recommendation yet"),
                });
            }
            continue;
        };
        // The webhook caps new pods by the namespace's LimitRanges: the
        // decisions and the resize patch use the same capping.
        let limits = match namespace_limits
            .entry(h.key.0.as_str())
            .or_insert_with(|| snap.limit_ranges.limits(&h.key.0))
        {
            Ok(limits) => *limits,
            Err(e) => {
                for p in pods {
                    out.skipped.push(Skip {
                        pod: p.id(),
                        reason: SKIP_LIMIT_RANGE_INVALID,
                        message: format!(
                            "{e}; the admission webhook leaves new pods of namespace {} unchanged until it is fixed",
                            h.key.0
                        ),
                    });
                }
                continue;
            }
        };
        let update_policy = h.vpa.spec.update_policy.as_ref();
        let min_replicas = update_policy
            .and_then(|p| p.min_replicas)
            .map(|n| u32::try_from(n).unwrap_or(0));
        let mut vpa_config = config.updater;
        if let Some(s) = update_policy.and_then(|p| p.evict_after_oom_seconds) {
            vpa_config.evict_after_oom_threshold_secs = i64::from(s);
        }
        // The cached pods as they are, each with this loop's controller.
        core_pods.clear();
        core_pods.extend(assigned.iter().map(|&(p, c)| PodWithController {
            pod: &p.pod,
            controller: c.map(|c| &assigned_controllers[c]),
        }));
        let plan = decide_updates(
            &VpaUpdateInput {
                vpa_name: &h.key.1,
                mode: h.mode,
                min_replicas,
                eviction_requirements: &requirements,
                resource_policy: &policy,
                recommendation: &recommendation,
                limits: &limits,
                pods: &core_pods,
            },
            &vpa_config,
            now,
        );
        let mut exhausted: FastSet<(&str, &str)> = FastSet::default();
        for d in plan.skipped {
            if let Action::Skip(reason) = d.action {
                if reason == tailor_core::update::SkipReason::DisruptionBudget
                    && let Some(c) = core_pods[d.pod_index].controller
                {
                    exhausted.insert((&c.kind, &c.name));
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
            let entry = assigned[d.pod_index].0;
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
                        &limits,
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
    if !tracker.is_empty() {
        let resizing: HashMap<&str, bool> = snap
            .pods
            .iter()
            .map(|p| (p.uid.as_str(), p.resize != ResizeState::None))
            .collect();
        tracker.retain(&resizing, now);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Controlled;
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use tailor_core::update::SkipReason;

    const NOW: i64 = 1_800_000_000;

    /// `NOW - 24h`.
    const STARTED: &str = "2027-01-14T08:00:00Z";

    fn index(deployments: &[(&str, i32)]) -> ControllerIndex {
        let mut index = ControllerIndex::new();
        for (name, replicas) in deployments {
            let d: Deployment = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {}}
            }))
            .unwrap();
            index.insert(
                ("shop".into(), "Deployment".into(), (*name).into()),
                d.entry(),
            );
            let rs: ReplicaSet = serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-1"), "namespace": "shop",
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": "d", "controller": true}]},
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {}}
            }))
            .unwrap();
            index.insert(
                ("shop".into(), "ReplicaSet".into(), format!("{name}-1")),
                rs.entry(),
            );
        }
        index
    }

    /// A running pod of Deployment `app` requesting `cpu` (limit twice that).
    fn pod_json(name: &str, app: &str, cpu: &str, limit: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                "labels": {"app": app},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-1"), "uid": "r", "controller": true}]},
            "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}, "limits": {"cpu": limit}}}]},
            "status": {"phase": "Running", "startTime": STARTED}
        })
    }

    fn pod(v: Value) -> Arc<PodEntry> {
        Arc::new(PodEntry::from_pod(&serde_json::from_value(v).unwrap()))
    }

    fn vpa(
        name: &str,
        target: &str,
        mode: &str,
        created: &str,
        rec: bool,
    ) -> Arc<VerticalPodAutoscaler> {
        let mut v = json!({
            "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "creationTimestamp": created},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "updatePolicy": {"updateMode": mode}}
        });
        if rec {
            v["status"] = json!({"recommendation": {"containerRecommendations": [{
                "containerName": "app",
                "target": {"cpu": "1", "memory": "100Mi"},
                "lowerBound": {"cpu": "500m", "memory": "50Mi"},
                "upperBound": {"cpu": "2", "memory": "200Mi"}}]}});
        }
        Arc::new(serde_json::from_value(v).unwrap())
    }

    fn run(
        vpas: &[Arc<VerticalPodAutoscaler>],
        pods: &[Arc<PodEntry>],
        controllers: &ControllerIndex,
        config: &StepConfig,
        tracker: &mut ResizeTracker,
        now: i64,
    ) -> StepOutput {
        step(
            Snapshot {
                vpas,
                pods,
                controllers,
                limit_ranges: &LimitRangeIndex::default(),
                scale: &ScaleTargets::default(),
            },
            config,
            tracker,
            now,
        )
    }

    /// One step with no resize in flight, at `NOW`.
    fn run_once(
        vpas: &[Arc<VerticalPodAutoscaler>],
        pods: &[Arc<PodEntry>],
        controllers: &ControllerIndex,
        config: &StepConfig,
    ) -> StepOutput {
        run(
            vpas,
            pods,
            controllers,
            config,
            &mut ResizeTracker::default(),
            NOW,
        )
    }

    fn skip_reasons(out: &StepOutput) -> Vec<(&str, &str)> {
        let mut v: Vec<_> = out
            .skipped
            .iter()
            .map(|s| (s.pod.as_str(), s.reason))
            .collect();
        v.sort_unstable();
        v
    }

    fn web_pods(n: usize) -> Vec<Arc<PodEntry>> {
        (0..n)
            .map(|i| pod(pod_json(&format!("web-{i}"), "web", "100m", "200m")))
            .collect()
    }

    #[test]
    fn recreate_evicts_half_of_the_controller_and_reports_the_exhausted_budget() {
        let vpas = [vpa("web", "web", "Recreate", "2026-01-01T00:00:00Z", true)];
        let out = run_once(
            &vpas,
            &web_pods(4),
            &index(&[("web", 4)]),
            &StepConfig::default(),
        );
        assert_eq!(out.considered, 4);
        assert_eq!(out.actions.len(), 2);
        for a in &out.actions {
            assert_eq!(
                a.kind,
                ActionKind::Evict {
                    fallback_from: None
                }
            );
            assert_eq!(a.reason, UpdateReason::OutsideRecommendedRange);
            assert_eq!((a.vpa.as_str(), a.vpa_uid.as_str()), ("web", "uid-web"));
        }
        assert_eq!(out.budgets_exhausted, 1);
        let reasons = skip_reasons(&out);
        assert_eq!(reasons.len(), 2);
        assert!(reasons.iter().all(|(_, r)| *r == "disruption_budget"));
    }

    #[test]
    fn in_place_resizes_with_the_webhook_patch_and_scaled_limits() {
        let vpas = [vpa(
            "web",
            "web",
            "InPlaceOrRecreate",
            "2026-01-01T00:00:00Z",
            true,
        )];
        let out = run_once(
            &vpas,
            &web_pods(2),
            &index(&[("web", 2)]),
            &StepConfig::default(),
        );
        assert_eq!(out.actions.len(), 1, "{out:?}");
        let ActionKind::Resize { patch } = &out.actions[0].kind else {
            panic!("{:?}", out.actions[0].kind)
        };
        let ops = serde_json::to_value(patch).unwrap();
        assert_eq!(
            ops,
            json!([
                {"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "1"},
                {"op": "add", "path": "/spec/containers/0/resources/requests/memory", "value": "104857600"},
                {"op": "add", "path": "/spec/containers/0/resources/limits/cpu", "value": "2"},
            ])
        );
    }

    #[rstest::rstest]
    #[case::deferred_fresh("Deferred", 60, None)]
    #[case::deferred_late("Deferred", 301, Some(ResizeState::Deferred))]
    #[case::infeasible("Infeasible", 0, Some(ResizeState::Infeasible))]
    #[case::in_progress_fresh("", 3599, None)]
    #[case::in_progress_late("", 3601, Some(ResizeState::InProgress))]
    fn pending_resizes_wait_or_fall_back_to_eviction(
        #[case] reason: &str,
        #[case] elapsed: i64,
        #[case] evict: Option<ResizeState>,
    ) {
        let type_ = if reason.is_empty() {
            "PodResizeInProgress"
        } else {
            "PodResizePending"
        };
        let mut p = pod_json("web-0", "web", "100m", "200m");
        p["status"]["conditions"] = json!([{"type": type_, "status": "True", "reason": reason}]);
        let pods = [pod(p), pod(pod_json("web-1", "web", "1", "2"))];
        let vpas = [vpa(
            "web",
            "web",
            "InPlaceOrRecreate",
            "2026-01-01T00:00:00Z",
            true,
        )];
        let mut tracker = ResizeTracker::default();
        tracker.record("uid-web-0", NOW - elapsed);
        let out = run(
            &vpas,
            &pods,
            &index(&[("web", 2)]),
            &StepConfig::default(),
            &mut tracker,
            NOW,
        );
        match evict {
            Some(state) => {
                assert_eq!(out.actions.len(), 1);
                assert_eq!(
                    out.actions[0].kind,
                    ActionKind::Evict {
                        fallback_from: Some(state)
                    }
                );
            }
            None => {
                assert!(out.actions.is_empty());
                assert_eq!(skip_reasons(&out)[0], ("shop/web-0", SKIP_RESIZE_WAITING));
            }
        }
        assert_eq!(tracker.len(), 1, "the pending resize stays timed");
    }

    #[test]
    fn a_pending_resize_seen_first_starts_its_clock_now() {
        let mut p = pod_json("web-0", "web", "100m", "200m");
        p["status"]["conditions"] =
            json!([{"type": "PodResizePending", "status": "True", "reason": "Deferred"}]);
        let pods = [pod(p), pod(pod_json("web-1", "web", "1", "2"))];
        let vpas = [vpa(
            "web",
            "web",
            "InPlaceOrRecreate",
            "2026-01-01T00:00:00Z",
            true,
        )];
        let mut tracker = ResizeTracker::default();
        let idx = index(&[("web", 2)]);
        let out = run(
            &vpas,
            &pods,
            &idx,
            &StepConfig::default(),
            &mut tracker,
            NOW,
        );
        assert!(out.actions.is_empty());
        let out = run(
            &vpas,
            &pods,
            &idx,
            &StepConfig::default(),
            &mut tracker,
            NOW + 301,
        );
        assert_eq!(out.actions.len(), 1);
    }

    #[test]
    fn bad_input_is_skipped_with_a_reason_and_the_rest_goes_on() {
        // A VPA without recommendation, an invalid VPA, and a pod whose
        // ReplicaSet is not in the cache; "api" still gets its update.
        let mut bad = (*vpa("bad", "db", "Recreate", "2025-01-01T00:00:00Z", true)).clone();
        bad.spec.resource_policy = serde_json::from_value(json!({"containerPolicies": [
            {"containerName": "app", "minAllowed": {"cpu": "lots"}}]}))
        .unwrap();
        let vpas = [
            vpa("web", "web", "Recreate", "2026-01-01T00:00:00Z", false),
            Arc::new(bad),
            vpa("api", "api", "Recreate", "2026-01-01T00:00:00Z", true),
        ];
        let mut orphan = pod_json("orphan-0", "orphan", "100m", "200m");
        orphan["metadata"]["ownerReferences"][0]["name"] = json!("gone-1");
        let mut pods = web_pods(2);
        pods.push(pod(orphan));
        pods.push(pod(pod_json("api-0", "api", "100m", "200m")));
        pods.push(pod(pod_json("api-1", "api", "100m", "200m")));
        pods.push(pod(pod_json("db-0", "db", "100m", "200m")));
        pods.push(pod(pod_json("db-1", "db", "100m", "200m")));
        let out = run_once(
            &vpas,
            &pods,
            &index(&[("web", 2), ("api", 2), ("db", 2)]),
            &StepConfig::default(),
        );
        let mut problems: Vec<_> = out
            .vpa_problems
            .iter()
            .map(|p| (p.vpa.as_str(), p.reason))
            .collect();
        problems.sort_unstable();
        assert_eq!(
            problems,
            [
                ("shop/bad", "invalid_spec"),
                ("shop/web", "no_recommendation")
            ]
        );
        let invalid = out
            .vpa_problems
            .iter()
            .find(|p| p.vpa == "shop/bad")
            .unwrap();
        assert!(
            invalid.message.contains("minAllowed.cpu"),
            "{}",
            invalid.message
        );
        let reasons = skip_reasons(&out);
        assert!(reasons.contains(&("shop/orphan-0", SKIP_OWNER_UNRESOLVED)));
        assert!(reasons.contains(&("shop/web-0", "no_recommendation")));
        assert!(reasons.contains(&("shop/db-0", SKIP_VPA_INVALID)));
        assert_eq!(out.actions.len(), 1);
        assert_eq!(out.actions[0].vpa, "api");
    }

    #[test]
    fn the_oldest_vpa_wins_and_filters_apply() {
        let vpas = [
            vpa("young", "web", "Recreate", "2026-02-01T00:00:00Z", true),
            vpa("old", "web", "Recreate", "2026-01-01T00:00:00Z", true),
        ];
        let idx = index(&[("web", 2)]);
        let out = run_once(&vpas, &web_pods(2), &idx, &StepConfig::default());
        assert_eq!(out.actions[0].vpa, "old");

        let ignored = StepConfig {
            ignored_namespaces: vec!["shop".into()],
            ..StepConfig::default()
        };
        let out = run_once(&vpas, &web_pods(2), &idx, &ignored);
        assert_eq!((out.considered, out.actions.len()), (0, 0));

        // Named recommender: VPAs naming none belong to "default" only.
        let named = StepConfig {
            recommender_name: Some("tailor".into()),
            ..StepConfig::default()
        };
        let out = run_once(&vpas, &web_pods(2), &idx, &named);
        assert_eq!(out.considered, 0);
        let named = StepConfig {
            recommender_name: Some("default".into()),
            ..StepConfig::default()
        };
        let out = run_once(&vpas, &web_pods(2), &idx, &named);
        assert_eq!(out.considered, 2);
    }

    #[test]
    fn modes_that_do_not_update_and_deleting_pods_are_left_out() {
        let idx = index(&[("web", 4)]);
        for mode in ["Off", "Initial"] {
            let vpas = [vpa("web", "web", mode, "2026-01-01T00:00:00Z", true)];
            let out = run_once(&vpas, &web_pods(4), &idx, &StepConfig::default());
            assert_eq!((out.considered, out.actions.len()), (0, 0), "{mode}");
        }
        // Two of four pods already being deleted (evicted last loop): they are
        // not alive, so with 4 wanted and 2 running nothing more goes now.
        let mut pods = web_pods(4);
        for p in pods.iter_mut().take(2) {
            Arc::make_mut(p).deleting = true;
        }
        let vpas = [vpa("web", "web", "Auto", "2026-01-01T00:00:00Z", true)];
        let out = run_once(&vpas, &pods, &idx, &StepConfig::default());
        assert_eq!(out.considered, 2);
        assert!(out.actions.is_empty(), "{out:?}");
        assert_eq!(out.budgets_exhausted, 1);
    }

    #[test]
    fn never_touched_pods_carry_their_reason() {
        let mut safe = pod_json("web-0", "web", "100m", "200m");
        safe["metadata"]["annotations"] =
            json!({"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"});
        let mut mirror = pod_json("web-1", "web", "100m", "200m");
        mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "abc"});
        let mut pending = pod_json("web-2", "web", "100m", "200m");
        pending["status"]["phase"] = json!("Pending");
        let pods = [
            pod(safe),
            pod(mirror),
            pod(pending),
            pod(pod_json("web-3", "web", "1", "2")),
        ];
        let vpas = [vpa("web", "web", "Recreate", "2026-01-01T00:00:00Z", true)];
        let out = run_once(&vpas, &pods, &index(&[("web", 4)]), &StepConfig::default());
        assert!(out.actions.is_empty());
        let reasons = skip_reasons(&out);
        assert_eq!(
            reasons[0],
            ("shop/web-0", SkipReason::SafeToEvictFalse.as_str())
        );
        assert_eq!(reasons[1], ("shop/web-1", SkipReason::MirrorPod.as_str()));
        assert_eq!(reasons[2], ("shop/web-2", SkipReason::NotRunning.as_str()));
    }

    fn arb_pod() -> impl Strategy<Value = (usize, u8, u8, u8)> {
        // (controller, cpu choice, phase choice, resize choice)
        (0usize..3, 0u8..4, 0u8..5, 0u8..4)
    }

    proptest! {
        #[test]
        fn disruptions_per_controller_never_exceed_the_budget(
            specs in prop::collection::vec(arb_pod(), 0..40),
            replicas in prop::collection::vec(0i32..12, 3),
            tolerance in 0.0f64..1.0,
            min_replicas in 0u32..4,
            in_place in any::<bool>(),
            elapsed in 0i64..10_000,
        ) {
            let apps = ["a", "b", "c"];
            let idx = index(&[("a", replicas[0]), ("b", replicas[1]), ("c", replicas[2])]);
            let mut tracker = ResizeTracker::default();
            let pods: Vec<Arc<PodEntry>> = specs.iter().enumerate().map(|(i, &(c, cpu, phase, resize))| {
                let cpu = ["10m", "900m", "1", "5"][cpu as usize];
                let mut p = pod_json(&format!("p{i}"), apps[c], cpu, "10");
                p["status"]["phase"] = json!(["Running", "Running", "Running", "Pending", "Failed"][phase as usize]);
                let cond = match resize {
                    1 => Some(("PodResizePending", "Deferred")),
                    2 => Some(("PodResizePending", "Infeasible")),
                    3 => Some(("PodResizeInProgress", "")),
                    _ => None,
                };
                if let Some((t, r)) = cond {
                    p["status"]["conditions"] = json!([{"type": t, "status": "True", "reason": r}]);
                    tracker.record(&format!("uid-p{i}"), NOW - elapsed);
                }
                pod(p)
            }).collect();
            let mode = if in_place { "InPlaceOrRecreate" } else { "Recreate" };
            let vpas: Vec<_> = apps.iter().map(|a| vpa(a, a, mode, "2026-01-01T00:00:00Z", true)).collect();
            let config = StepConfig {
                updater: UpdaterConfig { eviction_tolerance: tolerance, min_replicas, ..UpdaterConfig::default() },
                ..StepConfig::default()
            };
            let out = run(&vpas, &pods, &idx, &config, &mut tracker, NOW);
            let mut per: HashMap<&str, u32> = HashMap::new();
            let mut seen = HashSet::new();
            for a in &out.actions {
                prop_assert!(seen.insert(a.pod.clone()), "two actions for {}", a.pod);
                let i: usize = a.pod[1..].parse().unwrap();
                *per.entry(apps[specs[i].0]).or_default() += 1;
            }
            for (app, n) in per {
                let c = apps.iter().position(|a| *a == app).unwrap();
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let budget = ((f64::from(replicas[c]) * tolerance) as u32).max(1);
                prop_assert!(n <= budget, "{} disrupted {} > {}", app, n, budget);
                let live = specs.iter().filter(|s| s.0 == c && s.2 < 4).count();
                prop_assert!(live >= min_replicas as usize);
            }
        }
    }
}
