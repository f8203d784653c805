//! A VPA's `targetRef` → the label selector of the pods it manages.
//!
//! As upstream: for the well-known controllers the selector is read from the
//! object itself (CronJob: its job template's pod labels; ReplicationController:
//! its label map); for any other kind it is read from the object's `/scale`
//! subresource (`autoscaling/v1` `Scale`, `status.selector`). The caller
//! fetches the object; this module only reads it.

use crate::selector::{Selector, SelectorError};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v1::{CrossVersionObjectReference, Scale};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ReplicationController;

/// The controllers whose selector is read from the object itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WellKnownKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// `apps/v1` ReplicaSet.
    ReplicaSet,
    /// `batch/v1` Job.
    Job,
    /// `batch/v1` CronJob.
    CronJob,
    /// `v1` ReplicationController.
    ReplicationController,
}

impl WellKnownKind {
    /// Every well-known kind.
    pub const ALL: [WellKnownKind; 7] = [
        WellKnownKind::Deployment,
        WellKnownKind::StatefulSet,
        WellKnownKind::DaemonSet,
        WellKnownKind::ReplicaSet,
        WellKnownKind::Job,
        WellKnownKind::CronJob,
        WellKnownKind::ReplicationController,
    ];

    /// The kind's name as written in `targetRef.kind`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            WellKnownKind::Deployment => "Deployment",
            WellKnownKind::StatefulSet => "StatefulSet",
            WellKnownKind::DaemonSet => "DaemonSet",
            WellKnownKind::ReplicaSet => "ReplicaSet",
            WellKnownKind::Job => "Job",
            WellKnownKind::CronJob => "CronJob",
            WellKnownKind::ReplicationController => "ReplicationController",
        }
    }

    /// The kind's API version (`apps/v1`, `batch/v1`, `v1`).
    #[must_use]
    pub fn api_version(self) -> &'static str {
        match self {
            WellKnownKind::Deployment
            | WellKnownKind::StatefulSet
            | WellKnownKind::DaemonSet
            | WellKnownKind::ReplicaSet => "apps/v1",
            WellKnownKind::Job | WellKnownKind::CronJob => "batch/v1",
            WellKnownKind::ReplicationController => "v1",
        }
    }

    /// The well-known kind named `kind`, if it is one. Like upstream, only
    /// the kind is compared, not the API group.
    #[must_use]
    pub fn from_kind(kind: &str) -> Option<Self> {
        WellKnownKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

/// The object a `targetRef` names, as fetched by the caller.
#[derive(Clone, Copy, Debug)]
pub enum TargetObject<'a> {
    /// A Deployment.
    Deployment(&'a Deployment),
    /// A StatefulSet.
    StatefulSet(&'a StatefulSet),
    /// A DaemonSet.
    DaemonSet(&'a DaemonSet),
    /// A ReplicaSet.
    ReplicaSet(&'a ReplicaSet),
    /// A Job.
    Job(&'a Job),
    /// A CronJob.
    CronJob(&'a CronJob),
    /// A ReplicationController.
    ReplicationController(&'a ReplicationController),
    /// The `/scale` subresource of an object of any other kind.
    Scale(&'a Scale),
}

impl TargetObject<'_> {
    /// The well-known kind of this object; `None` for a `Scale`.
    #[must_use]
    pub fn kind(&self) -> Option<WellKnownKind> {
        Some(match self {
            TargetObject::Deployment(_) => WellKnownKind::Deployment,
            TargetObject::StatefulSet(_) => WellKnownKind::StatefulSet,
            TargetObject::DaemonSet(_) => WellKnownKind::DaemonSet,
            TargetObject::ReplicaSet(_) => WellKnownKind::ReplicaSet,
            TargetObject::Job(_) => WellKnownKind::Job,
            TargetObject::CronJob(_) => WellKnownKind::CronJob,
            TargetObject::ReplicationController(_) => WellKnownKind::ReplicationController,
            TargetObject::Scale(_) => return None,
        })
    }
}

/// A `targetRef` whose pods cannot be selected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The kind is not well known and no `/scale` subresource was found.
    #[error(
        "targetRef {kind} {name:?} (apiVersion {api_version:?}): kind {kind:?} is not a well-known controller and has no /scale subresource"
    )]
    UnsupportedKind {
        /// `targetRef.apiVersion` (empty when absent).
        api_version: String,
        /// `targetRef.kind`.
        kind: String,
        /// `targetRef.name`.
        name: String,
    },
    /// A well-known controller that the caller did not find.
    #[error("targetRef {kind} {name:?} does not exist")]
    NotFound {
        /// `targetRef.kind`.
        kind: String,
        /// `targetRef.name`.
        name: String,
    },
    /// The object given is not of the kind the `targetRef` names.
    #[error("targetRef names a {expected} but a {found} was given")]
    KindMismatch {
        /// `targetRef.kind`.
        expected: String,
        /// The kind of the object given.
        found: String,
    },
    /// The object has no spec to read a selector from.
    #[error("{kind} {name:?} has no {field}")]
    MissingField {
        /// The object's kind.
        kind: String,
        /// `targetRef.name`.
        name: String,
        /// The missing field's path.
        field: &'static str,
    },
    /// The `/scale` subresource reports an empty selector.
    #[error("{kind} {name:?} has an empty selector in its /scale subresource")]
    EmptyScaleSelector {
        /// `targetRef.kind`.
        kind: String,
        /// `targetRef.name`.
        name: String,
    },
    /// The selector read is invalid.
    #[error("{kind} {name:?}: {source}")]
    Selector {
        /// `targetRef.kind`.
        kind: String,
        /// `targetRef.name`.
        name: String,
        /// Why the selector is invalid.
        source: SelectorError,
    },
}

/// The selector of the pods that `target_ref` manages, read from `object`
/// (the named object for a well-known kind, else its `/scale` subresource).
/// `None` means the caller found nothing to read.
///
/// # Errors
/// See [`TargetError`]; an unknown kind without `/scale` names the kind.
pub fn target_selector(
    target_ref: &CrossVersionObjectReference,
    object: Option<TargetObject<'_>>,
) -> Result<Selector, TargetError> {
    let kind = target_ref.kind.clone();
    let name = target_ref.name.clone();
    let well_known = WellKnownKind::from_kind(&kind);
    let Some(object) = object else {
        return Err(match well_known {
            Some(_) => TargetError::NotFound { kind, name },
            None => TargetError::UnsupportedKind {
                api_version: target_ref.api_version.clone().unwrap_or_default(),
                kind,
                name,
            },
        });
    };
    if object.kind() != well_known {
        let found = object.kind().map_or("Scale", WellKnownKind::as_str);
        return Err(TargetError::KindMismatch {
            expected: kind,
            found: found.to_owned(),
        });
    }
    let missing = |field| TargetError::MissingField {
        kind: target_ref.kind.clone(),
        name: target_ref.name.clone(),
        field,
    };
    let selector = match object {
        TargetObject::Deployment(o) => {
            let spec = o.spec.as_ref().ok_or_else(|| missing("spec"))?;
            Selector::from_label_selector(Some(&spec.selector))
        }
        TargetObject::StatefulSet(o) => {
            let spec = o.spec.as_ref().ok_or_else(|| missing("spec"))?;
            Selector::from_label_selector(Some(&spec.selector))
        }
        TargetObject::DaemonSet(o) => {
            let spec = o.spec.as_ref().ok_or_else(|| missing("spec"))?;
            Selector::from_label_selector(Some(&spec.selector))
        }
        TargetObject::ReplicaSet(o) => {
            let spec = o.spec.as_ref().ok_or_else(|| missing("spec"))?;
            Selector::from_label_selector(Some(&spec.selector))
        }
        TargetObject::Job(o) => {
            let spec = o.spec.as_ref().ok_or_else(|| missing("spec"))?;
            Selector::from_label_selector(spec.selector.as_ref())
        }
        TargetObject::CronJob(o) => {
            let spec = o.spec.as_ref().ok_or_else(|| missing("spec"))?;
            // As upstream: the labels of the pods the job template creates.
            let labels = spec
                .job_template
                .spec
                .as_ref()
                .and_then(|s| s.template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref());
            Selector::from_set(labels)
        }
        TargetObject::ReplicationController(o) => {
            let spec = o.spec.as_ref().ok_or_else(|| missing("spec"))?;
            Selector::from_set(spec.selector.as_ref())
        }
        TargetObject::Scale(scale) => {
            let text = scale
                .status
                .as_ref()
                .and_then(|s| s.selector.as_deref())
                .unwrap_or_default();
            if text.trim().is_empty() {
                return Err(TargetError::EmptyScaleSelector { kind, name });
            }
            Selector::parse(text)
        }
    };
    selector.map_err(|source| TargetError::Selector { kind, name, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DaemonSetSpec, DeploymentSpec};
    use k8s_openapi::api::autoscaling::v1::ScaleStatus;
    use k8s_openapi::api::batch::v1::{CronJobSpec, JobSpec, JobTemplateSpec};
    use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationControllerSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn target(api_version: &str, kind: &str) -> CrossVersionObjectReference {
        CrossVersionObjectReference {
            api_version: Some(api_version.to_owned()),
            kind: kind.to_owned(),
            name: "web".to_owned(),
        }
    }

    fn app_selector() -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: None,
        }
    }

    #[test]
    fn deployment_and_daemonset_selectors() {
        let dep = Deployment {
            spec: Some(DeploymentSpec {
                selector: app_selector(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sel = target_selector(
            &target("apps/v1", "Deployment"),
            Some(TargetObject::Deployment(&dep)),
        )
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "web"), ("x", "y")])));
        assert!(!sel.matches(&labels(&[("app", "api")])));

        let ds = DaemonSet {
            spec: Some(DaemonSetSpec {
                selector: app_selector(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sel = target_selector(
            &target("apps/v1", "DaemonSet"),
            Some(TargetObject::DaemonSet(&ds)),
        )
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "web")])));
    }

    #[test]
    fn statefulset_replicaset_and_job_selectors() {
        use k8s_openapi::api::apps::v1::{ReplicaSetSpec, StatefulSetSpec};
        let sts = StatefulSet {
            spec: Some(StatefulSetSpec {
                selector: app_selector(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let rs = ReplicaSet {
            spec: Some(ReplicaSetSpec {
                selector: app_selector(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let job = Job {
            spec: Some(JobSpec {
                selector: Some(app_selector()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cases = [
            ("apps/v1", "StatefulSet", TargetObject::StatefulSet(&sts)),
            ("apps/v1", "ReplicaSet", TargetObject::ReplicaSet(&rs)),
            ("batch/v1", "Job", TargetObject::Job(&job)),
        ];
        for (api_version, kind, object) in cases {
            let sel = target_selector(&target(api_version, kind), Some(object)).unwrap();
            assert!(sel.matches(&labels(&[("app", "web")])), "{kind}");
            assert!(!sel.matches(&labels(&[("app", "db")])), "{kind}");
        }
    }

    #[test]
    fn cronjob_uses_job_template_pod_labels() {
        let cj = CronJob {
            spec: Some(CronJobSpec {
                job_template: JobTemplateSpec {
                    spec: Some(JobSpec {
                        template: PodTemplateSpec {
                            metadata: Some(ObjectMeta {
                                labels: Some(labels(&[("job", "report")])),
                                ..Default::default()
                            }),
                            spec: None,
                        },
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                schedule: "0 * * * *".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sel = target_selector(
            &target("batch/v1", "CronJob"),
            Some(TargetObject::CronJob(&cj)),
        )
        .unwrap();
        assert!(sel.matches(&labels(&[
            ("job", "report"),
            ("batch.kubernetes.io/job-name", "r-1")
        ])));
        assert!(!sel.matches(&labels(&[("job", "other")])));
    }

    #[test]
    fn replication_controller_and_job_without_selector() {
        let rc = ReplicationController {
            spec: Some(ReplicationControllerSpec {
                selector: Some(labels(&[("app", "legacy")])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sel = target_selector(
            &target("v1", "ReplicationController"),
            Some(TargetObject::ReplicationController(&rc)),
        )
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "legacy")])));

        // A Job with no selector selects nothing, as upstream's nil selector.
        let job = Job {
            spec: Some(JobSpec::default()),
            ..Default::default()
        };
        let sel =
            target_selector(&target("batch/v1", "Job"), Some(TargetObject::Job(&job))).unwrap();
        assert_eq!(sel, Selector::Nothing);
    }

    fn scale(selector: Option<&str>) -> Scale {
        Scale {
            status: Some(ScaleStatus {
                replicas: 3,
                selector: selector.map(str::to_owned),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn other_kinds_use_the_scale_subresource() {
        let s = scale(Some("app=web,tier in (fe,be),!canary"));
        let sel = target_selector(
            &target("argoproj.io/v1alpha1", "Rollout"),
            Some(TargetObject::Scale(&s)),
        )
        .unwrap();
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "fe"), ("canary", "1")])));
    }

    #[test]
    fn unknown_kind_without_scale_names_the_kind() {
        let err = target_selector(&target("example.com/v1", "Widget"), None).unwrap_err();
        assert_eq!(
            err,
            TargetError::UnsupportedKind {
                api_version: "example.com/v1".into(),
                kind: "Widget".into(),
                name: "web".into()
            }
        );
        assert!(err.to_string().contains("\"Widget\""), "{err}");
    }

    #[rstest::rstest]
    #[case(None)]
    #[case(Some(""))]
    fn empty_scale_selector_is_an_error(#[case] selector: Option<&str>) {
        let s = scale(selector);
        let err =
            target_selector(&target("x/v1", "Widget"), Some(TargetObject::Scale(&s))).unwrap_err();
        assert!(
            matches!(err, TargetError::EmptyScaleSelector { .. }),
            "{err}"
        );
    }

    #[test]
    fn other_errors() {
        assert!(matches!(
            target_selector(&target("apps/v1", "Deployment"), None),
            Err(TargetError::NotFound { .. })
        ));
        let s = scale(Some("a=b"));
        assert!(matches!(
            target_selector(
                &target("apps/v1", "Deployment"),
                Some(TargetObject::Scale(&s))
            ),
            Err(TargetError::KindMismatch { .. })
        ));
        let bad = scale(Some("a in (x"));
        let err = target_selector(&target("x/v1", "Widget"), Some(TargetObject::Scale(&bad)))
            .unwrap_err();
        assert!(matches!(err, TargetError::Selector { .. }), "{err}");
        let dep = Deployment::default();
        assert!(matches!(
            target_selector(
                &target("apps/v1", "Deployment"),
                Some(TargetObject::Deployment(&dep))
            ),
            Err(TargetError::MissingField { field: "spec", .. })
        ));
    }

    #[test]
    fn well_known_kinds_by_name() {
        for k in WellKnownKind::ALL {
            assert_eq!(WellKnownKind::from_kind(k.as_str()), Some(k));
        }
        assert_eq!(WellKnownKind::from_kind("deployment"), None);
        assert_eq!(WellKnownKind::CronJob.api_version(), "batch/v1");
    }
}
