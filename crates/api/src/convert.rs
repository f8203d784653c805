//! Conversions between the Kubernetes VPA types and `tailor_core::policy`.
//!
//! Reading (k8s → core) validates: a quantity that does not parse, or an enum
//! value core has no meaning for, is a [`ConversionError`] naming the VPA and
//! the field's path. Resources other than `cpu` and `memory` are ignored, as
//! upstream's recommender only ever recommends those two.
//!
//! Writing (core → k8s) uses upstream's formats: CPU as DecimalSI millicores
//! (`25m`, `2`), memory as DecimalSI bytes (`262144k`).

use crate::vpa::{
    ContainerControlledValues, ContainerResourcePolicy, ContainerScalingMode, PodResourcePolicy,
    RecommendedContainerResources, RecommendedPodResources, ResourceList, UpdateMode,
    VerticalPodAutoscaler,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use kube::ResourceExt;
use tailor_core::policy::{self, PartialResources};
use tailor_core::quantity::{self, Format, Quantity, QuantityError};
use tailor_core::resources::ResourceName;

/// A VPA field that does not convert to core terms.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("VerticalPodAutoscaler {vpa}: {field}: {problem}")]
pub struct ConversionError {
    /// The VPA, as `namespace/name`.
    pub vpa: String,
    /// The field's path (`spec.resourcePolicy.containerPolicies[1].minAllowed.cpu`).
    pub field: String,
    /// What is wrong with it (boxed to keep `Result`s small).
    pub problem: Box<ConversionProblem>,
}

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConversionProblem {
    /// The quantity does not parse or does not fit.
    #[error("invalid quantity {value:?}: {}", quantity_reason(.source))]
    InvalidQuantity {
        /// The quantity as written.
        value: String,
        /// Why it was rejected.
        source: QuantityError,
    },
    /// An enum value outside upstream's set.
    #[error("unknown value {value:?} (expected one of {expected})")]
    UnknownValue {
        /// The value as written.
        value: String,
        /// The values upstream allows, comma-separated.
        expected: String,
    },
    /// A value upstream allows but Tailor does not implement.
    #[error("value {value:?} is not supported by Tailor")]
    Unsupported {
        /// The value as written.
        value: String,
    },
}

/// The short reason inside a quantity error (its message repeats the input).
fn quantity_reason(e: &QuantityError) -> String {
    match e {
        QuantityError::Malformed { reason, .. } => format!("malformed: {reason}"),
        QuantityError::OutOfRange { reason, .. } => format!("out of range: {reason}"),
        other => other.to_string(),
    }
}

/// `namespace/name` of a VPA, as errors name it.
#[must_use]
pub fn vpa_key(vpa: &VerticalPodAutoscaler) -> String {
    format!("{}/{}", vpa.namespace().unwrap_or_default(), vpa.name_any())
}

/// Builds errors for one VPA. The VPA's key and the field's path are only
/// formatted when a field is wrong: the updater converts every VPA each loop,
/// and nearly all of them convert cleanly.
struct Ctx<'a> {
    vpa: &'a VerticalPodAutoscaler,
}

impl Ctx<'_> {
    fn err(&self, field: String, problem: ConversionProblem) -> ConversionError {
        ConversionError {
            vpa: vpa_key(self.vpa),
            field,
            problem: Box::new(problem),
        }
    }

    fn unknown(&self, field: String, value: &str, known: &[&str]) -> ConversionError {
        self.err(
            field,
            ConversionProblem::UnknownValue {
                value: value.to_owned(),
                expected: known.join(", "),
            },
        )
    }

    /// CPU and memory from a `ResourceList` at the path `field()` returns.
    fn partial(
        &self,
        field: impl FnOnce() -> String,
        list: Option<&ResourceList>,
    ) -> Result<PartialResources, ConversionError> {
        partial_resources(list).map_err(|bad| {
            self.err(
                format!("{}.{}", field(), bad.resource),
                ConversionProblem::InvalidQuantity {
                    value: bad.value,
                    source: bad.source,
                },
            )
        })
    }
}

/// A quantity in a `ResourceList` that does not parse.
#[derive(Debug)]
pub struct BadQuantity {
    /// The resource it was given for (`cpu`, `memory`).
    pub resource: String,
    /// The text as written.
    pub value: String,
    /// Why it does not parse.
    pub source: QuantityError,
}

/// CPU (millicores) and memory (bytes) from a Kubernetes `ResourceList`
/// (container requests or limits, VPA min/maxAllowed); other resources are
/// ignored.
///
/// # Errors
/// The first CPU or memory quantity that does not parse, with its resource.
pub fn partial_resources(list: Option<&ResourceList>) -> Result<PartialResources, BadQuantity> {
    let mut out = PartialResources::NONE;
    for (name, q) in list.into_iter().flatten() {
        let Some(resource) = ResourceName::parse(name) else {
            continue;
        };
        let parsed = match resource {
            ResourceName::Cpu => quantity::cpu_millis(&q.0),
            ResourceName::Memory => quantity::memory_bytes(&q.0),
        };
        let amount = parsed.map_err(|source| BadQuantity {
            resource: name.clone(),
            value: q.0.clone(),
            source,
        })?;
        out = out.with(resource, Some(amount));
    }
    Ok(out)
}

/// The VPA's update mode in core terms (absent: `Recreate`, upstream's
/// documented default).
///
/// # Errors
/// An unknown mode, or `InPlace`, which core does not implement.
pub fn update_mode(vpa: &VerticalPodAutoscaler) -> Result<policy::UpdateMode, ConversionError> {
    let ctx = Ctx { vpa };
    let field = || "spec.updatePolicy.updateMode".to_owned();
    match vpa.spec.effective_update_mode() {
        UpdateMode::Off => Ok(policy::UpdateMode::Off),
        UpdateMode::Initial => Ok(policy::UpdateMode::Initial),
        UpdateMode::Recreate => Ok(policy::UpdateMode::Recreate),
        UpdateMode::InPlaceOrRecreate => Ok(policy::UpdateMode::InPlaceOrRecreate),
        UpdateMode::Auto => Ok(policy::UpdateMode::Auto),
        UpdateMode::InPlace => Err(ctx.err(
            field(),
            ConversionProblem::Unsupported {
                value: "InPlace".to_owned(),
            },
        )),
        UpdateMode::Unknown(v) => Err(ctx.unknown(field(), &v, UpdateMode::KNOWN)),
    }
}

/// The VPA's resource policy in core terms (absent: no container policies).
///
/// # Errors
/// An invalid `minAllowed`/`maxAllowed` quantity or an unknown `mode` or
/// `controlledValues`, naming the field.
pub fn resource_policy(
    vpa: &VerticalPodAutoscaler,
) -> Result<policy::ResourcePolicy, ConversionError> {
    let ctx = Ctx { vpa };
    let policies = vpa
        .spec
        .resource_policy
        .as_ref()
        .and_then(|p| p.container_policies.as_deref())
        .unwrap_or_default();
    let container_policies = policies
        .iter()
        .enumerate()
        .map(|(i, p)| container_policy(&ctx, i, p))
        .collect::<Result<_, _>>()?;
    Ok(policy::ResourcePolicy { container_policies })
}

fn container_policy(
    ctx: &Ctx<'_>,
    index: usize,
    p: &ContainerResourcePolicy,
) -> Result<policy::ContainerPolicy, ConversionError> {
    let base = || format!("spec.resourcePolicy.containerPolicies[{index}]");
    let mode = match p.mode.as_ref() {
        None | Some(ContainerScalingMode::Auto) => policy::ContainerScalingMode::Auto,
        Some(ContainerScalingMode::Off) => policy::ContainerScalingMode::Off,
        Some(ContainerScalingMode::Unknown(v)) => {
            return Err(ctx.unknown(format!("{}.mode", base()), v, ContainerScalingMode::KNOWN));
        }
    };
    let controlled_values = match p.controlled_values.as_ref() {
        None | Some(ContainerControlledValues::RequestsAndLimits) => {
            policy::ControlledValues::RequestsAndLimits
        }
        Some(ContainerControlledValues::RequestsOnly) => policy::ControlledValues::RequestsOnly,
        Some(ContainerControlledValues::Unknown(v)) => {
            return Err(ctx.unknown(
                format!("{}.controlledValues", base()),
                v,
                ContainerControlledValues::KNOWN,
            ));
        }
    };
    let controlled_resources = match p.controlled_resources.as_ref() {
        None => ResourceName::ALL.to_vec(),
        Some(names) => {
            let mut out: Vec<ResourceName> = Vec::new();
            for r in names.iter().filter_map(|n| ResourceName::parse(n)) {
                if !out.contains(&r) {
                    out.push(r);
                }
            }
            out
        }
    };
    Ok(policy::ContainerPolicy {
        container_name: p.container_name.clone().unwrap_or_default(),
        mode,
        min_allowed: ctx.partial(|| format!("{}.minAllowed", base()), p.min_allowed.as_ref())?,
        max_allowed: ctx.partial(|| format!("{}.maxAllowed", base()), p.max_allowed.as_ref())?,
        controlled_resources,
        controlled_values,
    })
}

/// The VPA's current recommendation (`status.recommendation`) in core terms;
/// `None` when it has none.
///
/// # Errors
/// An invalid quantity, naming the field.
pub fn recommendation(
    vpa: &VerticalPodAutoscaler,
) -> Result<Option<policy::PodRecommendation>, ConversionError> {
    let ctx = Ctx { vpa };
    let Some(rec) = vpa.status.as_ref().and_then(|s| s.recommendation.as_ref()) else {
        return Ok(None);
    };
    let container_recommendations = rec
        .container_recommendations
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| {
            let field =
                |name: &str| format!("status.recommendation.containerRecommendations[{i}].{name}");
            Ok(policy::ContainerRecommendation {
                container_name: r.container_name.clone().unwrap_or_default(),
                target: ctx.partial(|| field("target"), Some(&r.target))?,
                lower_bound: ctx.partial(|| field("lowerBound"), r.lower_bound.as_ref())?,
                upper_bound: ctx.partial(|| field("upperBound"), r.upper_bound.as_ref())?,
                uncapped_target: ctx
                    .partial(|| field("uncappedTarget"), r.uncapped_target.as_ref())?,
            })
        })
        .collect::<Result<_, ConversionError>>()?;
    Ok(Some(policy::PodRecommendation {
        container_recommendations,
    }))
}

/// A CPU amount as upstream writes it: DecimalSI millicores (`25m`, `2`).
#[must_use]
pub fn cpu_quantity(millis: i64) -> K8sQuantity {
    K8sQuantity(Quantity::from_milli(millis, Format::DecimalSI).to_string())
}

/// A memory amount as upstream writes it: DecimalSI bytes (`262144k`).
#[must_use]
pub fn memory_quantity(bytes: i64) -> K8sQuantity {
    K8sQuantity(Quantity::from_int(bytes, Format::DecimalSI).to_string())
}

/// The resources given, as a `ResourceList` in upstream's formats.
#[must_use]
pub fn resource_list(r: &PartialResources) -> ResourceList {
    let mut list = ResourceList::new();
    if let Some(m) = r.cpu_millis {
        list.insert(ResourceName::Cpu.as_str().to_owned(), cpu_quantity(m));
    }
    if let Some(b) = r.memory_bytes {
        list.insert(ResourceName::Memory.as_str().to_owned(), memory_quantity(b));
    }
    list
}

/// Some list, or `None` for nothing, as upstream omits empty bounds.
fn non_empty(r: &PartialResources) -> Option<ResourceList> {
    (!r.is_empty()).then(|| resource_list(r))
}

/// One container's core recommendation as a status entry.
#[must_use]
pub fn container_recommendation_status(
    r: &policy::ContainerRecommendation,
) -> RecommendedContainerResources {
    RecommendedContainerResources {
        container_name: Some(r.container_name.clone()),
        target: resource_list(&r.target),
        lower_bound: non_empty(&r.lower_bound),
        upper_bound: non_empty(&r.upper_bound),
        uncapped_target: non_empty(&r.uncapped_target),
    }
}

/// A core pod recommendation as `status.recommendation`.
#[must_use]
pub fn recommendation_status(r: &policy::PodRecommendation) -> RecommendedPodResources {
    RecommendedPodResources {
        container_recommendations: Some(
            r.container_recommendations
                .iter()
                .map(container_recommendation_status)
                .collect(),
        ),
    }
}

/// A core resource policy as `spec.resourcePolicy` (for tools that write
/// VPAs, such as the simulator's exports).
#[must_use]
pub fn resource_policy_spec(p: &policy::ResourcePolicy) -> PodResourcePolicy {
    let container_policies = p
        .container_policies
        .iter()
        .map(|c| ContainerResourcePolicy {
            container_name: Some(c.container_name.clone()),
            mode: Some(match c.mode {
                policy::ContainerScalingMode::Auto => ContainerScalingMode::Auto,
                policy::ContainerScalingMode::Off => ContainerScalingMode::Off,
            }),
            min_allowed: non_empty(&c.min_allowed),
            max_allowed: non_empty(&c.max_allowed),
            controlled_resources: Some(
                c.controlled_resources
                    .iter()
                    .map(|r| r.as_str().to_owned())
                    .collect(),
            ),
            controlled_values: Some(match c.controlled_values {
                policy::ControlledValues::RequestsAndLimits => {
                    ContainerControlledValues::RequestsAndLimits
                }
                policy::ControlledValues::RequestsOnly => ContainerControlledValues::RequestsOnly,
            }),
            ..ContainerResourcePolicy::default()
        })
        .collect();
    PodResourcePolicy {
        container_policies: Some(container_policies),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vpa::{PodUpdatePolicy, VerticalPodAutoscalerSpec, VerticalPodAutoscalerStatus};
    use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
    use proptest::prelude::*;
    use rstest::rstest;

    fn q(s: &str) -> K8sQuantity {
        K8sQuantity(s.to_owned())
    }

    fn list(pairs: &[(&str, &str)]) -> ResourceList {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), q(v))).collect()
    }

    fn vpa(policies: Vec<ContainerResourcePolicy>) -> VerticalPodAutoscaler {
        let mut v = VerticalPodAutoscaler::new(
            "checkout",
            VerticalPodAutoscalerSpec {
                target_ref: CrossVersionObjectReference {
                    api_version: Some("apps/v1".into()),
                    kind: "Deployment".into(),
                    name: "checkout".into(),
                },
                update_policy: None,
                resource_policy: Some(PodResourcePolicy {
                    container_policies: Some(policies),
                }),
                recommenders: None,
                startup_boost: None,
            },
        );
        v.metadata.namespace = Some("shop".into());
        v
    }

    #[test]
    fn container_policies_convert() {
        let v = vpa(vec![
            ContainerResourcePolicy {
                container_name: Some("*".into()),
                min_allowed: Some(list(&[("cpu", "25m"), ("memory", "64Mi")])),
                max_allowed: Some(list(&[("cpu", "4"), ("nvidia.com/gpu", "1")])),
                ..Default::default()
            },
            ContainerResourcePolicy {
                container_name: Some("app".into()),
                mode: Some(ContainerScalingMode::Off),
                controlled_resources: Some(vec!["memory".into(), "ephemeral-storage".into()]),
                controlled_values: Some(ContainerControlledValues::RequestsOnly),
                ..Default::default()
            },
        ]);
        let rp = resource_policy(&v).unwrap();
        let star = &rp.container_policies[0];
        assert_eq!(star.container_name, "*");
        assert_eq!(star.mode, policy::ContainerScalingMode::Auto);
        assert_eq!(
            star.min_allowed,
            PartialResources {
                cpu_millis: Some(25),
                memory_bytes: Some(64 << 20)
            }
        );
        assert_eq!(
            star.max_allowed,
            PartialResources {
                cpu_millis: Some(4000),
                memory_bytes: None
            }
        );
        assert_eq!(star.controlled_resources, ResourceName::ALL.to_vec());
        assert_eq!(
            star.controlled_values,
            policy::ControlledValues::RequestsAndLimits
        );
        let app = &rp.container_policies[1];
        assert_eq!(app.mode, policy::ContainerScalingMode::Off);
        assert_eq!(app.controlled_resources, vec![ResourceName::Memory]);
        assert_eq!(
            app.controlled_values,
            policy::ControlledValues::RequestsOnly
        );
    }

    #[test]
    fn invalid_quantity_names_vpa_and_field() {
        let v = vpa(vec![
            ContainerResourcePolicy::default(),
            ContainerResourcePolicy {
                container_name: Some("app".into()),
                min_allowed: Some(list(&[("cpu", "5Zi")])),
                ..Default::default()
            },
        ]);
        let err = resource_policy(&v).unwrap_err();
        assert_eq!(err.vpa, "shop/checkout");
        assert_eq!(
            err.field,
            "spec.resourcePolicy.containerPolicies[1].minAllowed.cpu"
        );
        let text = err.to_string();
        assert!(
            text.starts_with(
                "VerticalPodAutoscaler shop/checkout: spec.resourcePolicy.containerPolicies[1].minAllowed.cpu: invalid quantity \"5Zi\""
            ),
            "{text}"
        );
    }

    #[rstest]
    #[case(Some(UpdateMode::Off), Ok(policy::UpdateMode::Off))]
    #[case(Some(UpdateMode::Initial), Ok(policy::UpdateMode::Initial))]
    #[case(Some(UpdateMode::Recreate), Ok(policy::UpdateMode::Recreate))]
    #[case(
        Some(UpdateMode::InPlaceOrRecreate),
        Ok(policy::UpdateMode::InPlaceOrRecreate)
    )]
    #[case(Some(UpdateMode::Auto), Ok(policy::UpdateMode::Auto))]
    #[case(None, Ok(policy::UpdateMode::Recreate))]
    #[case(
        Some(UpdateMode::InPlace),
        Err("value \"InPlace\" is not supported by Tailor")
    )]
    #[case(
        Some(UpdateMode::Unknown("Sometimes".into())),
        Err("unknown value \"Sometimes\" (expected one of Off, Initial, Recreate, InPlaceOrRecreate, InPlace, Auto)")
    )]
    fn update_modes(
        #[case] mode: Option<UpdateMode>,
        #[case] expected: Result<policy::UpdateMode, &str>,
    ) {
        let mut v = vpa(vec![]);
        v.spec.update_policy = Some(PodUpdatePolicy {
            update_mode: mode,
            ..Default::default()
        });
        match (update_mode(&v), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want),
            (Err(e), Err(want)) => {
                assert_eq!(e.field, "spec.updatePolicy.updateMode");
                assert_eq!(e.problem.to_string(), want);
            }
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn unknown_container_enums_are_errors_with_paths() {
        let v = vpa(vec![ContainerResourcePolicy {
            mode: Some(ContainerScalingMode::Unknown("Manual".into())),
            ..Default::default()
        }]);
        let err = resource_policy(&v).unwrap_err();
        assert_eq!(err.field, "spec.resourcePolicy.containerPolicies[0].mode");
        let v = vpa(vec![ContainerResourcePolicy {
            controlled_values: Some(ContainerControlledValues::Unknown("LimitsOnly".into())),
            ..Default::default()
        }]);
        let err = resource_policy(&v).unwrap_err();
        assert_eq!(
            err.field,
            "spec.resourcePolicy.containerPolicies[0].controlledValues"
        );
    }

    #[rstest]
    #[case(25, "25m")]
    #[case(1000, "1")]
    #[case(1500, "1500m")]
    #[case(0, "0")]
    fn cpu_is_decimal_millis(#[case] millis: i64, #[case] text: &str) {
        assert_eq!(cpu_quantity(millis).0, text);
    }

    #[rstest]
    #[case(262_144_000, "262144k")]
    #[case(131_072_000, "131072k")]
    #[case(1_000_000_000, "1G")]
    #[case(1_048_576, "1048576")]
    fn memory_is_decimal_bytes(#[case] bytes: i64, #[case] text: &str) {
        assert_eq!(memory_quantity(bytes).0, text);
    }

    #[test]
    fn recommendation_round_trips_through_status() {
        let core = policy::PodRecommendation {
            container_recommendations: vec![
                policy::ContainerRecommendation {
                    container_name: "app".into(),
                    target: PartialResources {
                        cpu_millis: Some(587),
                        memory_bytes: Some(262_144_000),
                    },
                    lower_bound: PartialResources {
                        cpu_millis: Some(412),
                        memory_bytes: Some(235_929_600),
                    },
                    upper_bound: PartialResources {
                        cpu_millis: Some(1184),
                        memory_bytes: Some(1_102_929_920),
                    },
                    uncapped_target: PartialResources {
                        cpu_millis: Some(587),
                        memory_bytes: None,
                    },
                },
                policy::ContainerRecommendation {
                    container_name: "sidecar".into(),
                    target: PartialResources {
                        cpu_millis: Some(25),
                        memory_bytes: None,
                    },
                    lower_bound: PartialResources::NONE,
                    upper_bound: PartialResources::NONE,
                    uncapped_target: PartialResources::NONE,
                },
            ],
        };
        let status = recommendation_status(&core);
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json["containerRecommendations"][0]["target"],
            serde_json::json!({"cpu": "587m", "memory": "262144k"})
        );
        assert!(
            json["containerRecommendations"][1]
                .get("lowerBound")
                .is_none()
        );
        let mut v = vpa(vec![]);
        v.status = Some(VerticalPodAutoscalerStatus {
            recommendation: Some(status),
            ..Default::default()
        });
        assert_eq!(recommendation(&v).unwrap(), Some(core));
    }

    #[test]
    fn bad_status_quantity_names_field() {
        let mut v = vpa(vec![]);
        v.status = Some(VerticalPodAutoscalerStatus {
            recommendation: Some(RecommendedPodResources {
                container_recommendations: Some(vec![RecommendedContainerResources {
                    container_name: Some("app".into()),
                    target: list(&[("memory", "lots")]),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        });
        let err = recommendation(&v).unwrap_err();
        assert_eq!(
            err.field,
            "status.recommendation.containerRecommendations[0].target.memory"
        );
        assert_eq!(recommendation(&vpa(vec![])).unwrap(), None);
    }

    fn arb_partial() -> impl Strategy<Value = PartialResources> {
        (
            proptest::option::of(0_i64..10_000_000),
            proptest::option::of(0_i64..1_i64 << 45),
        )
            .prop_map(|(cpu_millis, memory_bytes)| PartialResources {
                cpu_millis,
                memory_bytes,
            })
    }

    fn arb_policy() -> impl Strategy<Value = policy::ContainerPolicy> {
        (
            "[a-z*]{1,6}",
            any::<bool>(),
            arb_partial(),
            arb_partial(),
            proptest::sample::subsequence(ResourceName::ALL.to_vec(), 0..=2),
            any::<bool>(),
        )
            .prop_map(
                |(name, off, min, max, resources, only)| policy::ContainerPolicy {
                    container_name: name,
                    mode: if off {
                        policy::ContainerScalingMode::Off
                    } else {
                        policy::ContainerScalingMode::Auto
                    },
                    min_allowed: min,
                    max_allowed: max,
                    controlled_resources: resources,
                    controlled_values: if only {
                        policy::ControlledValues::RequestsOnly
                    } else {
                        policy::ControlledValues::RequestsAndLimits
                    },
                },
            )
    }

    proptest! {
        #[test]
        fn policy_round_trips_core_k8s_core(policies in proptest::collection::vec(arb_policy(), 0..4)) {
            let core = policy::ResourcePolicy { container_policies: policies };
            let mut v = vpa(vec![]);
            v.spec.resource_policy = Some(resource_policy_spec(&core));
            // Through JSON too, as the API server would store it.
            let v: VerticalPodAutoscaler =
                serde_json::from_value(serde_json::to_value(&v).unwrap()).unwrap();
            prop_assert_eq!(resource_policy(&v).unwrap(), core);
        }

        #[test]
        fn amounts_round_trip(cpu in 0_i64..i64::MAX / 2, mem in 0_i64..i64::MAX) {
            prop_assert_eq!(quantity::cpu_millis(&cpu_quantity(cpu).0).unwrap(), cpu);
            prop_assert_eq!(quantity::memory_bytes(&memory_quantity(mem).0).unwrap(), mem);
        }
    }
}
