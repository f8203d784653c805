//! What the updater keeps of the cluster, in compact form, and how pods are
//! matched to their VPA. Everything here is pure: the watch tasks in
//! [`crate::run`] feed these types, [`crate::step`] reads them.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Container, Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use tailor_api::convert;
use tailor_api::owner::{self, ControllerLinks, OwnerError};
use tailor_api::selector::Selector;
use tailor_api::target::{TargetError, TargetObject, WellKnownKind, target_selector};
use tailor_api::vpa::{EvictionChangeRequirement, VerticalPodAutoscaler};
use tailor_core::admission::{AdmissionContainer, OBSERVED_CONTAINERS_ANNOTATION};
use tailor_core::policy::PartialResources;
use tailor_core::resources::ResourceName;
use tailor_core::update::{
    ChangeRequirement, EvictionRequirement, OomKill, PodPhase, ResizeState,
    SAFE_TO_EVICT_ANNOTATION, UpdaterContainer, UpdaterPod,
};
use tailor_runtime::scale::{CrossVersionObjectReferenceKey, LookupError, ScaleTargets};

/// Annotation the kubelet sets on mirror (static) pods.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Pod condition type: the kubelet has not started the resize yet.
pub const POD_RESIZE_PENDING: &str = "PodResizePending";
/// Pod condition type: the kubelet is applying the resize.
pub const POD_RESIZE_IN_PROGRESS: &str = "PodResizeInProgress";

/// What the updater keeps of a pod (a full `Pod` is several KiB).
#[derive(Clone, Debug, PartialEq)]
pub struct PodEntry {
    /// `metadata.uid` (keys the resize tracker).
    pub uid: String,
    /// Labels (matched against the target's selector).
    pub labels: BTreeMap<String, String>,
    /// `metadata.ownerReferences` (the owner chain starts here).
    pub owner_references: Vec<OwnerReference>,
    /// `metadata.deletionTimestamp` is set: already going away, not live.
    pub deleting: bool,
    /// State of an in-place resize, from the pod's conditions.
    pub resize: ResizeState,
    /// The pod in core terms; `controller` is filled per loop from the
    /// controller cache (its replica count changes without the pod changing).
    pub pod: UpdaterPod,
    /// `spec.containers` as written (the resize patch is computed from them).
    pub spec_containers: Vec<AdmissionContainer>,
    /// `metadata.annotations` is present.
    pub has_annotations: bool,
}

/// The resources of a container's `resources.requests`/`limits`, and
/// whether each map is present. A quantity that does not parse is dropped
/// (logged by the caller through the returned flag).
fn container_resources(c: &Container) -> (AdmissionContainer, bool) {
    let res = c.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let mut bad = false;
    let mut read = |list| {
        convert::partial_resources(list).unwrap_or_else(|_| {
            bad = true;
            PartialResources::NONE
        })
    };
    let container = AdmissionContainer {
        name: c.name.clone(),
        requests: read(requests),
        limits: read(limits),
        has_requests_field: requests.is_some(),
        has_limits_field: limits.is_some(),
    };
    (container, bad)
}

fn secs(t: &Time) -> i64 {
    t.0.as_second()
}

fn phase(pod: &Pod) -> PodPhase {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Pending") => PodPhase::Pending,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        _ => PodPhase::Unknown,
    }
}

/// The resize state the kubelet reports through pod conditions (Kubernetes
/// 1.33+): `PodResizePending` with reason `Deferred` or `Infeasible`, and
/// `PodResizeInProgress` (reason empty, or `Error`).
#[must_use]
pub fn resize_state(pod: &Pod) -> ResizeState {
    let conditions = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let find = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if let Some(c) = find(POD_RESIZE_PENDING) {
        return match c.reason.as_deref() {
            Some("Deferred") => ResizeState::Deferred,
            Some("Infeasible") => ResizeState::Infeasible,
            _ => ResizeState::Unknown,
        };
    }
    if let Some(c) = find(POD_RESIZE_IN_PROGRESS) {
        return match (c.reason.as_deref().unwrap_or(""), c.message.as_deref()) {
            ("", None | Some("")) => ResizeState::InProgress,
            ("Error", _) => ResizeState::Error,
            _ => ResizeState::Unknown,
        };
    }
    ResizeState::None
}

impl PodEntry {
    /// The parts of `pod` the updater reads. Requests come from the
    /// container statuses when the kubelet reports them (what the container
    /// actually has after an in-place resize), else from the spec.
    #[must_use]
    pub fn from_pod(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let all_annotations = meta.annotations.clone().unwrap_or_default();
        let is_mirror = all_annotations.contains_key(MIRROR_POD_ANNOTATION);
        // Only the annotations core reads: keeps 10,000 pods small.
        let annotations: BTreeMap<String, String> = all_annotations
            .into_iter()
            .filter(|(k, _)| k == SAFE_TO_EVICT_ANNOTATION || k == OBSERVED_CONTAINERS_ANNOTATION)
            .collect();
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default();
        let spec_containers: Vec<AdmissionContainer> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .map(|c| container_resources(c).0)
            .collect();
        let containers = spec_containers
            .iter()
            .map(|c| {
                let status = statuses.iter().find(|s| s.name == c.name);
                let applied = status
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| convert::partial_resources(Some(r)).ok())
                    .filter(|r| !r.is_empty());
                let last_oom_kill = status
                    .and_then(|s| s.last_state.as_ref())
                    .and_then(|s| s.terminated.as_ref())
                    .filter(|t| t.reason.as_deref() == Some("OOMKilled"))
                    .and_then(|t| {
                        Some(OomKill {
                            started_at_secs: secs(t.started_at.as_ref()?),
                            finished_at_secs: secs(t.finished_at.as_ref()?),
                        })
                    });
                UpdaterContainer {
                    name: c.name.clone(),
                    requests: applied.unwrap_or(c.requests),
                    limits: c.limits,
                    last_oom_kill,
                }
            })
            .collect();
        PodEntry {
            uid: meta.uid.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            owner_references: meta.owner_references.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            resize: resize_state(pod),
            pod: UpdaterPod {
                name: meta.name.clone().unwrap_or_default(),
                namespace: meta.namespace.clone().unwrap_or_default(),
                controller: None,
                phase: phase(pod),
                is_mirror,
                annotations,
                started_at_secs: pod
                    .status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map(secs),
                containers,
            },
            spec_containers,
            has_annotations: meta.annotations.is_some(),
        }
    }

    /// `namespace/name`.
    #[must_use]
    pub fn id(&self) -> String {
        self.pod.id()
    }
}

/// What the updater keeps of a controller (Deployment, ReplicaSet, …).
#[derive(Clone, Debug, PartialEq)]
pub struct ControllerEntry {
    /// Its own owner references (the chain continues upward).
    pub owner_references: Vec<OwnerReference>,
    /// Replicas it wants: `spec.replicas` (default 1), a DaemonSet's
    /// `status.numberReady`; `None` for a Job.
    pub replicas: Option<u32>,
    /// The pods a VPA targeting it selects.
    pub selector: Result<Selector, TargetError>,
}

fn replicas(n: Option<i32>) -> Option<u32> {
    // The API server defaults spec.replicas to 1.
    u32::try_from(n.unwrap_or(1)).ok()
}

/// A controller kind the updater watches: its cache entry from the object.
pub trait Controlled {
    /// The well-known kind.
    const KIND: WellKnownKind;
    /// The entry for this object.
    fn entry(&self) -> ControllerEntry;
    /// Its metadata.
    fn meta(&self) -> &ObjectMeta;
}

fn entry_of(meta: &ObjectMeta, replicas: Option<u32>, object: TargetObject<'_>) -> ControllerEntry {
    let target = CrossVersionObjectReference {
        api_version: None,
        kind: object.kind().map_or("", WellKnownKind::as_str).to_owned(),
        name: meta.name.clone().unwrap_or_default(),
    };
    ControllerEntry {
        owner_references: meta.owner_references.clone().unwrap_or_default(),
        replicas,
        selector: target_selector(&target, Some(object)),
    }
}

macro_rules! controlled {
    ($ty:ty, $kind:ident, |$o:ident| $replicas:expr) => {
        impl Controlled for $ty {
            const KIND: WellKnownKind = WellKnownKind::$kind;
            fn entry(&self) -> ControllerEntry {
                let $o = self;
                entry_of(&self.metadata, $replicas, TargetObject::$kind(self))
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
        }
    };
}

controlled!(Deployment, Deployment, |o| replicas(
    o.spec.as_ref().and_then(|s| s.replicas)
));
controlled!(ReplicaSet, ReplicaSet, |o| replicas(
    o.spec.as_ref().and_then(|s| s.replicas)
));
controlled!(StatefulSet, StatefulSet, |o| replicas(
    o.spec.as_ref().and_then(|s| s.replicas)
));
controlled!(ReplicationController, ReplicationController, |o| replicas(
    o.spec.as_ref().and_then(|s| s.replicas)
));
// A DaemonSet has no replica count: as upstream, its ready pods are its size.
controlled!(DaemonSet, DaemonSet, |o| o
    .status
    .as_ref()
    .and_then(|s| u32::try_from(s.number_ready).ok()));
// A Job's size is its live pods (core counts them).
controlled!(Job, Job, |_o| None);
controlled!(CronJob, CronJob, |_o| None);

/// `(namespace, kind, name)`.
pub type ControllerKey = (String, String, String);

/// Every watched controller by `(namespace, kind, name)`.
pub type ControllerIndex = HashMap<ControllerKey, ControllerEntry>;

/// An owner reference as `(namespace, apiVersion, kind, name)`, borrowed.
pub type OwnerKey<'a> = (&'a str, &'a str, &'a str, &'a str);

/// The pod's direct controller (its `controller: true` owner reference) as a key.
#[must_use]
pub fn owner_key(pod: &PodEntry) -> Option<OwnerKey<'_>> {
    let owner = owner::controller_of(Some(&pod.owner_references))?;
    Some((
        pod.pod.namespace.as_str(),
        owner.api_version.as_str(),
        owner.kind.as_str(),
        owner.name.as_str(),
    ))
}

/// Why a pod's controllers could not be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// A watched controller in the owner chain is missing from the cache,
    /// or the chain is too deep.
    #[error(transparent)]
    Owner(#[from] OwnerError),
    /// A controller of a kind the updater does not watch could not be read
    /// through its `/scale` subresource.
    #[error(
        "{kind} {namespace}/{name} (a custom controller in the owner chain) cannot be read: {source}"
    )]
    CustomOwner {
        /// The pod's namespace.
        namespace: String,
        /// The controller's kind.
        kind: String,
        /// The controller's name.
        name: String,
        /// Why its `/scale` is not known (boxed: the error is large and rare).
        source: Box<LookupError>,
    },
}

/// The reference under which [`ScaleTargets`] keeps a custom controller.
fn scale_ref(api_version: &str, kind: &str, name: &str) -> CrossVersionObjectReference {
    CrossVersionObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

/// What the caches know of one controller in an owner chain, its owner
/// references lent from the cache: `Ok(None)` for a watched kind missing
/// from the cache.
fn lookup<'a>(
    index: &'a ControllerIndex,
    scale: &ScaleTargets,
    namespace: &str,
    c: &OwnerReference,
) -> Result<Option<ControllerLinks<'a>>, LookupError> {
    match index.get(&(namespace.to_owned(), c.kind.clone(), c.name.clone())) {
        Some(e) => Ok(Some(ControllerLinks {
            owner_references: &e.owner_references,
            has_scale: false,
        })),
        None if WellKnownKind::from_kind(&c.kind).is_some() => Ok(None),
        // A kind the updater does not watch: its /scale (read before the
        // loop) makes it a possible VPA target. Its own owners are not read,
        // so the walk ends there. A kind without /scale is passed over, as
        // upstream passes over owners that are neither well-known nor scalable.
        None => match scale.replicas(namespace, &scale_ref(&c.api_version, &c.kind, &c.name)) {
            Ok(_) => Ok(Some(ControllerLinks {
                owner_references: &[],
                has_scale: true,
            })),
            Err(LookupError::Target(TargetError::UnsupportedKind { .. })) => {
                Ok(Some(ControllerLinks::default()))
            }
            Err(e) => Err(e),
        },
    }
}

/// Resolves pods' controllers from the caches for one loop.
pub struct Owners<'a> {
    index: &'a ControllerIndex,
    scale: &'a ScaleTargets,
}

impl<'a> Owners<'a> {
    /// A resolver over these caches.
    #[must_use]
    pub fn new(index: &'a ControllerIndex, scale: &'a ScaleTargets) -> Self {
        Owners { index, scale }
    }

    /// The pod's top-most well-known or scalable controller (what a VPA
    /// `targetRef` names), as the owner reference that names it (the pod's
    /// own or a cached controller's); `None` when the pod has no controller.
    /// It depends only on the pod's [`owner_key`], so callers walk once per
    /// key.
    ///
    /// # Errors
    /// A watched controller in the chain is missing from the cache, the
    /// chain is too deep, or a custom controller's `/scale` cannot be read.
    pub fn top(&self, pod: &'a PodEntry) -> Result<Option<&'a OwnerReference>, Unresolved> {
        let ns = pod.pod.namespace.as_str();
        let mut failed = None;
        let walked = owner::top_owner(ns, &pod.pod.name, &pod.owner_references, |c| {
            lookup(self.index, self.scale, ns, c).unwrap_or_else(|e| {
                failed = Some((c, e));
                None
            })
        });
        match (walked, failed) {
            (Ok(top), _) => Ok(top),
            (Err(_), Some((c, source))) => Err(Unresolved::CustomOwner {
                namespace: ns.to_owned(),
                kind: c.kind.clone(),
                name: c.name.clone(),
                source: Box::new(source),
            }),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// The pod's direct controller (`controller: true` owner): its
    /// disruption budget group, with the replica count it wants when
    /// known. A custom controller's count is `spec.replicas` of its `/scale`.
    pub fn direct(&self, pod: &PodEntry) -> Option<tailor_core::update::ControllerRef> {
        let owner = owner::controller_of(Some(&pod.owner_references))?;
        let ns = pod.pod.namespace.as_str();
        let replicas =
            match self
                .index
                .get(&(ns.to_owned(), owner.kind.clone(), owner.name.clone()))
            {
                Some(e) => e.replicas,
                None if WellKnownKind::from_kind(&owner.kind).is_some() => None,
                None => self
                    .scale
                    .replicas(ns, &scale_ref(&owner.api_version, &owner.kind, &owner.name))
                    .ok()
                    .flatten()
                    .and_then(|n| u32::try_from(n).ok()),
            };
        Some(tailor_core::update::ControllerRef {
            kind: owner.kind.clone(),
            name: owner.name.clone(),
            configured_replicas: replicas,
        })
    }

    /// The pod selector of a VPA target named `top` (a controller
    /// [`Owners::top`] returned); `None` when it cannot be read.
    #[must_use]
    pub fn selector(&self, namespace: &str, top: &OwnerReference) -> Option<Cow<'a, Selector>> {
        let key = (namespace.to_owned(), top.kind.clone(), top.name.clone());
        match self.index.get(&key) {
            Some(c) => c.selector.as_ref().ok().map(Cow::Borrowed),
            None => self
                .scale
                .selector(
                    namespace,
                    &scale_ref(&top.api_version, &top.kind, &top.name),
                )
                .ok()
                .map(Cow::Owned),
        }
    }
}

/// The controllers of kinds the updater does not watch that own live pods
/// of `namespaces`, directly or up their owner chain: what
/// [`ScaleTargets::refresh`] reads before a loop. A chain is followed
/// through the cache until its first custom controller.
#[must_use]
pub fn custom_owners<'a>(
    index: &ControllerIndex,
    pods: impl IntoIterator<Item = &'a PodEntry>,
    namespaces: &HashSet<&str>,
) -> BTreeSet<(String, CrossVersionObjectReferenceKey)> {
    let mut seen: HashSet<OwnerKey<'a>> = HashSet::new();
    let mut out = BTreeSet::new();
    for pod in pods {
        let ns = pod.pod.namespace.as_str();
        if pod.deleting || !namespaces.contains(ns) {
            continue;
        }
        let (Some(first), Some(key)) = (
            owner::controller_of(Some(&pod.owner_references)),
            owner_key(pod),
        ) else {
            continue;
        };
        if !seen.insert(key) {
            continue;
        }
        let mut current = first.clone();
        for _ in 0..owner::MAX_OWNER_DEPTH {
            let found = index.get(&(ns.to_owned(), current.kind.clone(), current.name.clone()));
            let next = match found {
                Some(e) => owner::controller_of(Some(&e.owner_references)),
                None => {
                    if WellKnownKind::from_kind(&current.kind).is_none() {
                        out.insert((
                            ns.to_owned(),
                            CrossVersionObjectReferenceKey::from(&scale_ref(
                                &current.api_version,
                                &current.kind,
                                &current.name,
                            )),
                        ));
                    }
                    None
                }
            };
            let Some(next) = next else { break };
            current = next.clone();
        }
    }
    out
}

/// `spec.updatePolicy.evictionRequirements` in core terms.
///
/// # Errors
/// An unknown `changeRequirement` or resource, naming the field.
pub fn eviction_requirements(
    vpa: &VerticalPodAutoscaler,
) -> Result<Vec<EvictionRequirement>, String> {
    let reqs = vpa
        .spec
        .update_policy
        .as_ref()
        .and_then(|p| p.eviction_requirements.as_deref())
        .unwrap_or_default();
    reqs.iter()
        .enumerate()
        .map(|(i, r)| {
            let field = format!("spec.updatePolicy.evictionRequirements[{i}]");
            let change_requirement = match &r.change_requirement {
                EvictionChangeRequirement::TargetHigherThanRequests => {
                    ChangeRequirement::TargetHigherThanRequests
                }
                EvictionChangeRequirement::TargetLowerThanRequests => {
                    ChangeRequirement::TargetLowerThanRequests
                }
                EvictionChangeRequirement::Unknown(v) => {
                    return Err(format!(
                        "{field}.changeRequirement: unknown value {v:?} (expected one of {})",
                        EvictionChangeRequirement::KNOWN.join(", ")
                    ));
                }
            };
            let resources = r
                .resources
                .iter()
                .enumerate()
                .map(|(j, name)| {
                    ResourceName::parse(name).ok_or_else(|| {
                        format!("{field}.resources[{j}]: unknown resource {name:?} (expected cpu or memory)")
                    })
                })
                .collect::<Result<_, _>>()?;
            Ok(EvictionRequirement {
                resources,
                change_requirement,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pod_entry_reads_applied_requests_oom_and_keeps_only_read_annotations() {
        let p = pod(json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1",
                "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false", "big": "x"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "r", "controller": true}]},
            "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}}]},
            "status": {"phase": "Running", "startTime": "2026-01-01T00:00:00Z",
                "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 1,
                    "resources": {"requests": {"cpu": "500m"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                        "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:01:00Z"}}}]}
        }));
        let e = PodEntry::from_pod(&p);
        assert_eq!(e.pod.phase, PodPhase::Running);
        assert_eq!(e.pod.containers[0].requests.cpu_millis, Some(500));
        assert_eq!(e.spec_containers[0].requests.cpu_millis, Some(1000));
        assert_eq!(e.pod.containers[0].limits.cpu_millis, Some(2000));
        let oom = e.pod.containers[0].last_oom_kill.unwrap();
        assert_eq!(oom.finished_at_secs - oom.started_at_secs, 60);
        assert_eq!(e.pod.annotations.len(), 1);
        assert!(!e.pod.is_mirror && !e.deleting);
        assert_eq!(e.resize, ResizeState::None);
    }

    #[rstest::rstest]
    #[case::deferred("PodResizePending", Some("Deferred"), None, ResizeState::Deferred)]
    #[case::infeasible("PodResizePending", Some("Infeasible"), None, ResizeState::Infeasible)]
    #[case::pending_other("PodResizePending", Some("Whatever"), None, ResizeState::Unknown)]
    #[case::in_progress("PodResizeInProgress", None, None, ResizeState::InProgress)]
    #[case::error("PodResizeInProgress", Some("Error"), Some("boom"), ResizeState::Error)]
    #[case::other("Ready", None, None, ResizeState::None)]
    fn resize_conditions(
        #[case] type_: &str,
        #[case] reason: Option<&str>,
        #[case] message: Option<&str>,
        #[case] expected: ResizeState,
    ) {
        let p = pod(json!({"metadata": {"name": "p"}, "status": {"conditions": [
            {"type": type_, "status": "True", "reason": reason, "message": message}]}}));
        assert_eq!(resize_state(&p), expected);
    }

    #[test]
    fn custom_owners_follow_the_chain_to_the_first_custom_controller() {
        // pod → ReplicaSet (watched) → Rollout (custom): the Rollout's /scale
        // is read. Pods in namespaces without a handled VPA, pods being
        // deleted and pods of watched kinds only add nothing.
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                    "name": "web", "uid": "r", "controller": true}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}
        }))
        .unwrap();
        let mut index = ControllerIndex::new();
        index.insert(
            ("shop".into(), "ReplicaSet".into(), "web-1".into()),
            rs.entry(),
        );
        let owned = |name: &str, ns: &str, kind: &str, owner: &str| {
            PodEntry::from_pod(&pod(json!({
                "metadata": {"name": name, "namespace": ns,
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind, "name": owner,
                        "uid": "x", "controller": true}]}
            })))
        };
        let mut deleting = owned("gone", "shop", "CloneSet", "c");
        deleting.deleting = true;
        let pods = [
            owned("web-1-a", "shop", "ReplicaSet", "web-1"),
            owned("web-1-b", "shop", "ReplicaSet", "web-1"),
            owned("other", "elsewhere", "CloneSet", "c"),
            owned("db-0", "shop", "StatefulSet", "db"),
            deleting,
        ];
        let namespaces = HashSet::from(["shop"]);
        let found = custom_owners(&index, &pods, &namespaces);
        let names: Vec<_> = found
            .iter()
            .map(|(ns, k)| {
                (
                    ns.as_str(),
                    k.api_version.as_deref(),
                    k.kind.as_str(),
                    k.name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [("shop", Some("argoproj.io/v1alpha1"), "Rollout", "web")]
        );
    }

    #[test]
    fn unknown_change_requirement_is_named() {
        let vpa: VerticalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": "v", "namespace": "shop"},
            "spec": {"targetRef": {"kind": "Deployment", "name": "web"},
                "updatePolicy": {"evictionRequirements": [{"resources": ["cpu"], "changeRequirement": "Sideways"}]}}
        }))
        .unwrap();
        let e = eviction_requirements(&vpa).unwrap_err();
        assert!(
            e.contains("evictionRequirements[0].changeRequirement"),
            "{e}"
        );
        assert!(e.contains("Sideways"), "{e}");
    }
}
