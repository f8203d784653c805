//! A pod's owner references → the controller a VPA can target: the top-most
//! owner in its controller chain that is a well-known controller or has a
//! `/scale` subresource (Pod → ReplicaSet → Deployment, Pod → Job → CronJob;
//! an operator's custom resource above a Deployment counts only if it has
//! `/scale`), as upstream's `FindTopMostWellKnownOrScalable`. Lookups are
//! supplied by the caller.

use crate::target::WellKnownKind;
use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::BTreeMap;

/// How many controller links are followed before giving up (guards cycles).
pub const MAX_OWNER_DEPTH: usize = 8;

/// A controller, identified as an owner reference identifies it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ControllerRef {
    /// `apiVersion` of the controller (`apps/v1`).
    pub api_version: String,
    /// Its kind (`Deployment`).
    pub kind: String,
    /// Its name (in the pod's namespace).
    pub name: String,
}

impl ControllerRef {
    /// The reference as written in an owner reference.
    #[must_use]
    pub fn from_owner(owner: &OwnerReference) -> Self {
        ControllerRef {
            api_version: owner.api_version.clone(),
            kind: owner.kind.clone(),
            name: owner.name.clone(),
        }
    }

    /// True when a VPA `targetRef` names this controller. Like upstream, only
    /// kind and name are compared, so legacy `apiVersion`s
    /// (`extensions/v1beta1` Deployments) still match.
    #[must_use]
    pub fn is_target_of(&self, target_ref: &CrossVersionObjectReference) -> bool {
        self.kind == target_ref.kind && self.name == target_ref.name
    }
}

/// The owner reference marked `controller: true`, if any.
#[must_use]
pub fn controller_of(owners: Option<&[OwnerReference]>) -> Option<&OwnerReference> {
    owners?.iter().find(|o| o.controller == Some(true))
}

/// What a lookup knows about one controller.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ControllerInfo {
    /// The controller's own owner references.
    pub owner_references: Vec<OwnerReference>,
    /// True when the object has a `/scale` subresource. Well-known kinds
    /// count as targetable whatever this says.
    pub has_scale: bool,
}

/// A controller chain that could not be followed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    /// A controller in the chain is not known to the lookup.
    #[error("{kind} {namespace}/{name} (owner of {child}) was not found")]
    NotFound {
        /// The pod's namespace.
        namespace: String,
        /// The missing controller's kind.
        kind: String,
        /// The missing controller's name.
        name: String,
        /// What it owns, as `Kind/name`.
        child: String,
    },
    /// The chain is longer than [`MAX_OWNER_DEPTH`] (likely a cycle).
    #[error("owner chain of pod {namespace}/{pod} is longer than {MAX_OWNER_DEPTH} links")]
    TooDeep {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
    },
}

/// The controller a VPA can target for this pod: follows `controller: true`
/// owner references upward, asking `lookup` about each controller, and
/// returns the top-most one that is well-known or has `/scale`.
/// `Ok(None)` when there is none (no controller, or only untargetable ones).
///
/// `lookup` returns `None` when it does not know the object; that is an
/// error, because stopping early could attribute the pod to the wrong
/// controller. It lends each controller's owner references from the
/// caller's cache ([`top_owner`] is the walk).
///
/// # Errors
/// An unknown controller in the chain, or a chain deeper than
/// [`MAX_OWNER_DEPTH`].
pub fn top_controller<'a, F>(
    pod: &'a ObjectMeta,
    lookup: F,
) -> Result<Option<ControllerRef>, OwnerError>
where
    F: FnMut(&'a OwnerReference) -> Option<ControllerLinks<'a>>,
{
    let top = top_owner(
        pod.namespace.as_deref().unwrap_or_default(),
        pod.name.as_deref().unwrap_or_default(),
        pod.owner_references.as_deref().unwrap_or_default(),
        lookup,
    )?;
    Ok(top.map(ControllerRef::from_owner))
}

/// What a lookup knows about one controller: [`ControllerInfo`] with its
/// owner references borrowed from the caller's cache.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ControllerLinks<'a> {
    /// The controller's own owner references.
    pub owner_references: &'a [OwnerReference],
    /// True when the object has a `/scale` subresource.
    pub has_scale: bool,
}

/// [`top_controller`] without copies, for callers that walk many chains per
/// loop: the pod is given by its namespace, name and owner references, and
/// the answer is the top-most targetable owner reference itself. The rules
/// and the errors are those of [`top_controller`]; the errors' strings are
/// only built when there is an error.
///
/// # Errors
/// As [`top_controller`].
pub fn top_owner<'a, F>(
    namespace: &str,
    pod: &str,
    owners: &'a [OwnerReference],
    mut lookup: F,
) -> Result<Option<&'a OwnerReference>, OwnerError>
where
    F: FnMut(&'a OwnerReference) -> Option<ControllerLinks<'a>>,
{
    let Some(mut current) = controller_of(Some(owners)) else {
        return Ok(None);
    };
    let mut child: Option<&OwnerReference> = None;
    let mut top = None;
    for _ in 0..MAX_OWNER_DEPTH {
        let Some(info) = lookup(current) else {
            return Err(OwnerError::NotFound {
                namespace: namespace.to_owned(),
                kind: current.kind.clone(),
                name: current.name.clone(),
                child: match child {
                    Some(c) => format!("{}/{}", c.kind, c.name),
                    None => format!("Pod/{pod}"),
                },
            });
        };
        if info.has_scale || WellKnownKind::from_kind(&current.kind).is_some() {
            top = Some(current);
        }
        let Some(parent) = controller_of(Some(info.owner_references)) else {
            return Ok(top);
        };
        child = Some(current);
        current = parent;
    }
    Err(OwnerError::TooDeep {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
    })
}

/// The controllers of one namespace, keyed by (kind, name): the map form of
/// the lookup [`top_controller`] takes.
///
/// Objects of well-known kinds must be inserted (a missing one is an
/// error); an object of any other kind that was not inserted is taken to
/// exist, without owners and without `/scale` — insert scalable custom
/// resources with [`OwnerIndex::insert_scalable`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OwnerIndex {
    objects: BTreeMap<(String, String), ControllerInfo>,
}

impl OwnerIndex {
    /// An empty index.
    #[must_use]
    pub fn new() -> Self {
        OwnerIndex::default()
    }

    /// Records an object of `kind` (its name and owner references).
    pub fn insert(&mut self, kind: &str, meta: &ObjectMeta) {
        self.insert_info(kind, meta, false);
    }

    /// Records an object of a kind that has a `/scale` subresource.
    pub fn insert_scalable(&mut self, kind: &str, meta: &ObjectMeta) {
        self.insert_info(kind, meta, true);
    }

    fn insert_info(&mut self, kind: &str, meta: &ObjectMeta, has_scale: bool) {
        self.objects.insert(
            (kind.to_owned(), meta.name.clone().unwrap_or_default()),
            ControllerInfo {
                owner_references: meta.owner_references.clone().unwrap_or_default(),
                has_scale,
            },
        );
    }

    /// What the index knows about a controller (see the type's rules).
    #[must_use]
    pub fn lookup(&self, controller: &OwnerReference) -> Option<ControllerLinks<'_>> {
        let key = (controller.kind.clone(), controller.name.clone());
        match self.objects.get(&key) {
            Some(info) => Some(ControllerLinks {
                owner_references: &info.owner_references,
                has_scale: info.has_scale,
            }),
            None if WellKnownKind::from_kind(&controller.kind).is_some() => None,
            None => Some(ControllerLinks::default()),
        }
    }

    /// [`top_controller`] over this index.
    ///
    /// # Errors
    /// As [`top_controller`].
    pub fn top_controller(&self, pod: &ObjectMeta) -> Result<Option<ControllerRef>, OwnerError> {
        top_controller(pod, |c| self.lookup(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(
        api_version: &str,
        kind: &str,
        name: &str,
        controller: Option<bool>,
    ) -> OwnerReference {
        OwnerReference {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            uid: format!("uid-{name}"),
            controller,
            block_owner_deletion: Some(true),
        }
    }

    fn meta(name: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("shop".to_owned()),
            owner_references: Some(owners),
            ..Default::default()
        }
    }

    fn target(api_version: Option<&str>, kind: &str, name: &str) -> CrossVersionObjectReference {
        CrossVersionObjectReference {
            api_version: api_version.map(str::to_owned),
            kind: kind.to_owned(),
            name: name.to_owned(),
        }
    }

    #[test]
    fn pod_of_replicaset_resolves_to_deployment() {
        let mut index = OwnerIndex::new();
        index.insert(
            "ReplicaSet",
            &meta(
                "web-7d9f",
                vec![owner("apps/v1", "Deployment", "web", Some(true))],
            ),
        );
        index.insert("Deployment", &meta("web", vec![]));
        let pod = meta(
            "web-7d9f-abcde",
            vec![owner("apps/v1", "ReplicaSet", "web-7d9f", Some(true))],
        );
        let top = index.top_controller(&pod).unwrap().unwrap();
        assert_eq!(top.kind, "Deployment");
        assert_eq!(top.name, "web");
        assert!(top.is_target_of(&target(Some("apps/v1"), "Deployment", "web")));
        assert!(top.is_target_of(&target(Some("extensions/v1beta1"), "Deployment", "web")));
        assert!(top.is_target_of(&target(None, "Deployment", "web")));
        assert!(!top.is_target_of(&target(Some("apps/v1"), "StatefulSet", "web")));
        assert!(!top.is_target_of(&target(Some("apps/v1"), "Deployment", "api")));
    }

    #[test]
    fn pod_of_job_resolves_to_cronjob() {
        let mut index = OwnerIndex::new();
        index.insert(
            "Job",
            &meta(
                "report-2890",
                vec![owner("batch/v1", "CronJob", "report", Some(true))],
            ),
        );
        index.insert("CronJob", &meta("report", vec![]));
        let pod = meta(
            "report-2890-x",
            vec![owner("batch/v1", "Job", "report-2890", Some(true))],
        );
        let top = index.top_controller(&pod).unwrap().unwrap();
        assert_eq!(
            top,
            ControllerRef {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: "report".into()
            }
        );
    }

    #[test]
    fn standalone_replicaset_and_statefulset_are_their_own_top() {
        let mut index = OwnerIndex::new();
        index.insert("ReplicaSet", &meta("lone", vec![]));
        index.insert("StatefulSet", &meta("db", vec![]));
        let pod = meta(
            "lone-1",
            vec![owner("apps/v1", "ReplicaSet", "lone", Some(true))],
        );
        assert_eq!(index.top_controller(&pod).unwrap().unwrap().name, "lone");
        let pod = meta(
            "db-0",
            vec![owner("apps/v1", "StatefulSet", "db", Some(true))],
        );
        assert_eq!(
            index.top_controller(&pod).unwrap().unwrap().kind,
            "StatefulSet"
        );
    }

    #[test]
    fn non_controller_owners_are_ignored() {
        let index = OwnerIndex::new();
        let pod = meta(
            "p",
            vec![
                owner("v1", "ConfigMap", "c", None),
                owner("v1", "X", "y", Some(false)),
            ],
        );
        assert_eq!(index.top_controller(&pod).unwrap(), None);
        let bare = ObjectMeta::default();
        assert_eq!(index.top_controller(&bare).unwrap(), None);
    }

    #[test]
    fn missing_intermediate_is_an_error_naming_it() {
        let index = OwnerIndex::new();
        let pod = meta(
            "web-1",
            vec![owner("apps/v1", "ReplicaSet", "web-7d9f", Some(true))],
        );
        let err = index.top_controller(&pod).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ReplicaSet shop/web-7d9f (owner of Pod/web-1) was not found"
        );

        let mut index = OwnerIndex::new();
        index.insert(
            "ReplicaSet",
            &meta(
                "web-7d9f",
                vec![owner("apps/v1", "Deployment", "web", Some(true))],
            ),
        );
        let err = index.top_controller(&pod).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Deployment shop/web (owner of ReplicaSet/web-7d9f) was not found"
        );
    }

    #[test]
    fn operator_resource_above_deployment_counts_only_with_scale() {
        let rs = meta(
            "web-7d9f",
            vec![owner("apps/v1", "Deployment", "web", Some(true))],
        );
        let dep = meta(
            "web",
            vec![owner("example.com/v1", "App", "web-app", Some(true))],
        );
        let pod = meta(
            "web-7d9f-x",
            vec![owner("apps/v1", "ReplicaSet", "web-7d9f", Some(true))],
        );

        let mut index = OwnerIndex::new();
        index.insert("ReplicaSet", &rs);
        index.insert("Deployment", &dep);
        // App is neither well known nor scalable (not even indexed): skipped.
        assert_eq!(
            index.top_controller(&pod).unwrap().unwrap().kind,
            "Deployment"
        );

        index.insert_scalable("App", &meta("web-app", vec![]));
        assert_eq!(index.top_controller(&pod).unwrap().unwrap().kind, "App");

        // A non-scalable layer between scalable ones is walked through.
        let mut index = OwnerIndex::new();
        index.insert("ReplicaSet", &rs);
        index.insert("Deployment", &dep);
        index.insert(
            "App",
            &meta(
                "web-app",
                vec![owner("example.com/v1", "Fleet", "f", Some(true))],
            ),
        );
        index.insert_scalable("Fleet", &meta("f", vec![]));
        assert_eq!(index.top_controller(&pod).unwrap().unwrap().kind, "Fleet");
    }

    #[test]
    fn static_pod_owned_by_node_has_no_target() {
        let index = OwnerIndex::new();
        let pod = meta("kube-proxy-n1", vec![owner("v1", "Node", "n1", Some(true))]);
        assert_eq!(index.top_controller(&pod).unwrap(), None);
    }

    #[test]
    fn cycles_stop() {
        let mut index = OwnerIndex::new();
        index.insert("A", &meta("a", vec![owner("x/v1", "B", "b", Some(true))]));
        index.insert("B", &meta("b", vec![owner("x/v1", "A", "a", Some(true))]));
        let pod = meta("p", vec![owner("x/v1", "A", "a", Some(true))]);
        assert!(matches!(
            index.top_controller(&pod),
            Err(OwnerError::TooDeep { .. })
        ));
    }

    #[test]
    fn closures_work_as_lookups() {
        let pod = meta(
            "web-1",
            vec![owner("apps/v1", "ReplicaSet", "rs", Some(true))],
        );
        let rs_owners = vec![owner("apps/v1", "Deployment", "web", Some(true))];
        let top = top_controller(&pod, |c| match c.kind.as_str() {
            "ReplicaSet" => Some(ControllerLinks {
                owner_references: &rs_owners,
                has_scale: true,
            }),
            "Deployment" => Some(ControllerLinks::default()),
            _ => None,
        })
        .unwrap()
        .unwrap();
        assert_eq!(top.name, "web");
    }

    /// [`top_owner`] over the same index as [`OwnerIndex::top_controller`].
    fn top_owner_of(
        index: &OwnerIndex,
        pod: &ObjectMeta,
    ) -> Result<Option<ControllerRef>, OwnerError> {
        let owners = pod.owner_references.as_deref().unwrap_or_default();
        top_owner(
            pod.namespace.as_deref().unwrap_or_default(),
            pod.name.as_deref().unwrap_or_default(),
            owners,
            |c| match index.objects.get(&(c.kind.clone(), c.name.clone())) {
                Some(info) => Some(ControllerLinks {
                    owner_references: &info.owner_references,
                    has_scale: info.has_scale,
                }),
                None if WellKnownKind::from_kind(&c.kind).is_some() => None,
                None => Some(ControllerLinks::default()),
            },
        )
        .map(|top| top.map(ControllerRef::from_owner))
    }

    #[test]
    fn the_lending_walk_agrees_with_the_copying_one() {
        let rs = |owners| meta("web-7d9f", owners);
        let to_dep = vec![owner("apps/v1", "Deployment", "web", Some(true))];
        let pod = meta(
            "web-7d9f-x",
            vec![owner("apps/v1", "ReplicaSet", "web-7d9f", Some(true))],
        );
        let mut cases: Vec<(OwnerIndex, ObjectMeta)> = Vec::new();
        // Missing ReplicaSet, then missing Deployment: errors naming the child.
        cases.push((OwnerIndex::new(), pod.clone()));
        let mut index = OwnerIndex::new();
        index.insert("ReplicaSet", &rs(to_dep.clone()));
        cases.push((index.clone(), pod.clone()));
        // Found: Deployment; with a scalable App above it: App; an unknown
        // unscalable layer is walked through.
        index.insert(
            "Deployment",
            &meta(
                "web",
                vec![owner("example.com/v1", "App", "web-app", Some(true))],
            ),
        );
        cases.push((index.clone(), pod.clone()));
        index.insert_scalable("App", &meta("web-app", vec![]));
        cases.push((index.clone(), pod.clone()));
        // No controller at all; a Node-owned static pod.
        cases.push((
            OwnerIndex::new(),
            meta("p", vec![owner("v1", "ConfigMap", "c", None)]),
        ));
        cases.push((
            OwnerIndex::new(),
            meta("kube-proxy-n1", vec![owner("v1", "Node", "n1", Some(true))]),
        ));
        // A cycle.
        let mut cycle = OwnerIndex::new();
        cycle.insert("A", &meta("a", vec![owner("x/v1", "B", "b", Some(true))]));
        cycle.insert("B", &meta("b", vec![owner("x/v1", "A", "a", Some(true))]));
        cases.push((cycle, meta("p", vec![owner("x/v1", "A", "a", Some(true))])));

        for (i, (index, pod)) in cases.iter().enumerate() {
            assert_eq!(
                top_owner_of(index, pod),
                index.top_controller(pod),
                "case {i}"
            );
        }
        // The cases cover every outcome.
        let outcomes: Vec<_> = cases
            .iter()
            .map(|(index, pod)| top_owner_of(index, pod).map(|t| t.map(|t| t.kind)))
            .collect();
        assert!(outcomes.contains(&Ok(Some("Deployment".into()))));
        assert!(outcomes.contains(&Ok(Some("App".into()))));
        assert!(outcomes.contains(&Ok(None)));
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, Err(OwnerError::NotFound { .. })))
        );
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, Err(OwnerError::TooDeep { .. })))
        );
    }
}
