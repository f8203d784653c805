//! Lean protobuf messages for the parts of `k8s.io.api.core.v1.Pod` the
//! expander reads.
//!
//! Cluster Autoscaler lists every pending pod under every option it fits, as
//! a whole Kubernetes Pod: a 100-option request carries 100,000 pod entries.
//! Decoding them with `k8s-pb` builds every field (images, env, probes,
//! status, labels) only to throw it away. These messages use the same field
//! numbers and wire types as `k8s-pb` for the fields kept, so prost skips the
//! rest by length without building them and the kept fields decode exactly as
//! the full messages do (repeated fields append, maps keep the last entry,
//! scalars the last value). `lean_decode_equals_full_decode` in this module
//! checks that over generated pods.
//!
//! One difference is deliberate: a skipped field is not validated, so a pod
//! whose image name, say, is not UTF-8 decodes here but not with `k8s-pb`.

use std::collections::BTreeMap;

/// `k8s.io.apimachinery.pkg.api.resource.Quantity`: its string form.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Quantity {
    /// The quantity as written, e.g. `250m`.
    #[prost(string, optional, tag = "1")]
    pub string: Option<String>,
}

/// The names of `ObjectMeta`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// `metadata.generateName`.
    #[prost(string, optional, tag = "2")]
    pub generate_name: Option<String>,
    /// `metadata.namespace`.
    #[prost(string, optional, tag = "3")]
    pub namespace: Option<String>,
}

/// A pod: names and scheduling-relevant spec.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Pod {
    /// `metadata`.
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    /// `spec`.
    #[prost(message, optional, tag = "2")]
    pub spec: Option<PodSpec>,
}

/// What the expander reads of `PodSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSpec {
    /// `spec.initContainers`.
    #[prost(message, repeated, tag = "20")]
    pub init_containers: Vec<Container>,
    /// `spec.containers`.
    #[prost(message, repeated, tag = "2")]
    pub containers: Vec<Container>,
    /// `spec.nodeSelector`.
    #[prost(btree_map = "string, string", tag = "7")]
    pub node_selector: BTreeMap<String, String>,
    /// `spec.affinity`.
    #[prost(message, optional, tag = "18")]
    pub affinity: Option<Affinity>,
    /// `spec.tolerations`.
    #[prost(message, repeated, tag = "22")]
    pub tolerations: Vec<Toleration>,
    /// `spec.priority`.
    #[prost(int32, optional, tag = "25")]
    pub priority: Option<i32>,
    /// `spec.overhead`.
    #[prost(btree_map = "string, message", tag = "32")]
    pub overhead: BTreeMap<String, Quantity>,
    /// Pod-level `spec.resources`.
    #[prost(message, optional, tag = "40")]
    pub resources: Option<ResourceRequirements>,
}

/// What the expander reads of a container.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Container {
    /// `resources`.
    #[prost(message, optional, tag = "8")]
    pub resources: Option<ResourceRequirements>,
    /// `restartPolicy` (`Always` makes an init container a sidecar).
    #[prost(string, optional, tag = "24")]
    pub restart_policy: Option<String>,
}

/// Requests and limits.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceRequirements {
    /// `limits`.
    #[prost(btree_map = "string, message", tag = "1")]
    pub limits: BTreeMap<String, Quantity>,
    /// `requests`.
    #[prost(btree_map = "string, message", tag = "2")]
    pub requests: BTreeMap<String, Quantity>,
}

/// A toleration.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Toleration {
    /// `key`.
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    /// `operator`.
    #[prost(string, optional, tag = "2")]
    pub operator: Option<String>,
    /// `value`.
    #[prost(string, optional, tag = "3")]
    pub value: Option<String>,
    /// `effect`.
    #[prost(string, optional, tag = "4")]
    pub effect: Option<String>,
}

/// `affinity`: only node affinity matters to a node that does not exist yet.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Affinity {
    /// `nodeAffinity`.
    #[prost(message, optional, tag = "1")]
    pub node_affinity: Option<NodeAffinity>,
}

/// `nodeAffinity`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeAffinity {
    /// `requiredDuringSchedulingIgnoredDuringExecution`.
    #[prost(message, optional, tag = "1")]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
}

/// A node selector: terms, any of which may match.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeSelector {
    /// `nodeSelectorTerms`.
    #[prost(message, repeated, tag = "1")]
    pub node_selector_terms: Vec<NodeSelectorTerm>,
}

/// A term: requirements that must all match (`matchFields` cannot match a
/// node that does not exist yet, so it is not read).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodeSelectorTerm {
    /// `matchExpressions`.
    #[prost(message, repeated, tag = "1")]
    pub match_expressions: Vec<NodeSelectorRequirement>,
}

/// A label requirement.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct NodeSelectorRequirement {
    /// `key`.
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    /// `operator`.
    #[prost(string, optional, tag = "2")]
    pub operator: Option<String>,
    /// `values`.
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::api::core::v1 as full;
    use k8s_pb::apimachinery::pkg::api::resource::Quantity as FullQuantity;
    use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta as FullMeta;
    use proptest::collection::{btree_map, vec};
    use proptest::option;
    use proptest::prelude::*;
    use prost::Message as _;

    // ---- the full message, projected onto the lean one ----

    fn quantities(m: &BTreeMap<String, FullQuantity>) -> BTreeMap<String, Quantity> {
        m.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Quantity {
                        string: v.string.clone(),
                    },
                )
            })
            .collect()
    }

    fn requirements(r: &full::ResourceRequirements) -> ResourceRequirements {
        ResourceRequirements {
            limits: quantities(&r.limits),
            requests: quantities(&r.requests),
        }
    }

    fn container(c: &full::Container) -> Container {
        Container {
            resources: c.resources.as_ref().map(requirements),
            restart_policy: c.restart_policy.clone(),
        }
    }

    fn project(pod: &full::Pod) -> Pod {
        Pod {
            metadata: pod.metadata.as_ref().map(|m| ObjectMeta {
                name: m.name.clone(),
                generate_name: m.generate_name.clone(),
                namespace: m.namespace.clone(),
            }),
            spec: pod.spec.as_ref().map(|s| PodSpec {
                init_containers: s.init_containers.iter().map(container).collect(),
                containers: s.containers.iter().map(container).collect(),
                node_selector: s.node_selector.clone(),
                affinity: s.affinity.as_ref().map(|a| Affinity {
                    node_affinity: a.node_affinity.as_ref().map(|n| NodeAffinity {
                        required_during_scheduling_ignored_during_execution: n
                            .required_during_scheduling_ignored_during_execution
                            .as_ref()
                            .map(|sel| NodeSelector {
                                node_selector_terms: sel
                                    .node_selector_terms
                                    .iter()
                                    .map(|t| NodeSelectorTerm {
                                        match_expressions: t
                                            .match_expressions
                                            .iter()
                                            .map(|r| NodeSelectorRequirement {
                                                key: r.key.clone(),
                                                operator: r.operator.clone(),
                                                values: r.values.clone(),
                                            })
                                            .collect(),
                                    })
                                    .collect(),
                            }),
                    }),
                }),
                tolerations: s
                    .tolerations
                    .iter()
                    .map(|t| Toleration {
                        key: t.key.clone(),
                        operator: t.operator.clone(),
                        value: t.value.clone(),
                        effect: t.effect.clone(),
                    })
                    .collect(),
                priority: s.priority,
                overhead: quantities(&s.overhead),
                resources: s.resources.as_ref().map(requirements),
            }),
        }
    }

    // ---- generated pods: every field the expander reads, and others it skips ----

    fn word() -> impl Strategy<Value = String> {
        "[a-z0-9./-]{0,12}"
    }

    fn quantity_map() -> impl Strategy<Value = BTreeMap<String, FullQuantity>> {
        let name =
            prop::sample::select(vec!["cpu", "memory", "nvidia.com/gpu", "ephemeral-storage"]);
        let value = prop::sample::select(vec!["250m", "1", "1.5", "64Mi", "2Gi", "3e3", "bad", ""]);
        btree_map(name, option::of(value), 0..4).prop_map(|m| {
            m.into_iter()
                .map(|(k, v)| {
                    (
                        k.to_owned(),
                        FullQuantity {
                            string: v.map(str::to_owned),
                        },
                    )
                })
                .collect()
        })
    }

    fn resources() -> impl Strategy<Value = Option<full::ResourceRequirements>> {
        option::of(
            (quantity_map(), quantity_map(), vec(word(), 0..2)).prop_map(
                |(limits, requests, claims)| full::ResourceRequirements {
                    limits,
                    requests,
                    claims: claims
                        .into_iter()
                        .map(|name| full::ResourceClaim {
                            name: Some(name),
                            request: None,
                        })
                        .collect(),
                },
            ),
        )
    }

    fn container_strategy() -> impl Strategy<Value = full::Container> {
        (
            option::of(word()),
            option::of(word()),
            vec(word(), 0..3),
            resources(),
            option::of(prop::sample::select(vec!["Always", "Never", ""])),
            vec((word(), option::of(word())), 0..3),
        )
            .prop_map(
                |(name, image, args, resources, restart, env)| full::Container {
                    name,
                    image,
                    args,
                    resources,
                    restart_policy: restart.map(str::to_owned),
                    env: env
                        .into_iter()
                        .map(|(name, value)| full::EnvVar {
                            name: Some(name),
                            value,
                            value_from: None,
                        })
                        .collect(),
                    ..full::Container::default()
                },
            )
    }

    fn requirement() -> impl Strategy<Value = full::NodeSelectorRequirement> {
        (option::of(word()), option::of(word()), vec(word(), 0..3)).prop_map(
            |(key, operator, values)| full::NodeSelectorRequirement {
                key,
                operator,
                values,
            },
        )
    }

    fn term() -> impl Strategy<Value = full::NodeSelectorTerm> {
        (vec(requirement(), 0..3), vec(requirement(), 0..2)).prop_map(
            |(match_expressions, match_fields)| full::NodeSelectorTerm {
                match_expressions,
                match_fields,
            },
        )
    }

    fn affinity() -> impl Strategy<Value = Option<full::Affinity>> {
        let node = (
            option::of(vec(term(), 0..3)),
            vec((any::<i32>(), term()), 0..2),
        )
            .prop_map(|(required, preferred)| full::NodeAffinity {
                required_during_scheduling_ignored_during_execution: required.map(
                    |node_selector_terms| full::NodeSelector {
                        node_selector_terms,
                    },
                ),
                preferred_during_scheduling_ignored_during_execution: preferred
                    .into_iter()
                    .map(|(weight, preference)| full::PreferredSchedulingTerm {
                        weight: Some(weight),
                        preference: Some(preference),
                    })
                    .collect(),
            });
        option::of(
            (option::of(node), any::<bool>()).prop_map(|(node_affinity, pod)| full::Affinity {
                node_affinity,
                pod_affinity: pod.then(full::PodAffinity::default),
                pod_anti_affinity: None,
            }),
        )
    }

    fn toleration() -> impl Strategy<Value = full::Toleration> {
        (
            option::of(word()),
            option::of(prop::sample::select(vec!["Exists", "Equal", "Sometimes"])),
            option::of(word()),
            option::of(word()),
            option::of(any::<i64>()),
        )
            .prop_map(|(key, operator, value, effect, seconds)| full::Toleration {
                key,
                operator: operator.map(str::to_owned),
                value,
                effect,
                toleration_seconds: seconds,
            })
    }

    fn spec() -> impl Strategy<Value = full::PodSpec> {
        (
            vec(container_strategy(), 0..3),
            vec(container_strategy(), 0..2),
            btree_map(word(), word(), 0..3),
            affinity(),
            vec(toleration(), 0..3),
            option::of(any::<i32>()),
            quantity_map(),
            resources(),
            (
                option::of(word()),
                option::of(word()),
                option::of(any::<i64>()),
            ),
        )
            .prop_map(
                |(
                    containers,
                    init_containers,
                    node_selector,
                    affinity,
                    tolerations,
                    priority,
                    overhead,
                    resources,
                    (node_name, scheduler_name, grace),
                )| full::PodSpec {
                    containers,
                    init_containers,
                    node_selector,
                    affinity,
                    tolerations,
                    priority,
                    overhead,
                    resources,
                    node_name,
                    scheduler_name,
                    termination_grace_period_seconds: grace,
                    ..full::PodSpec::default()
                },
            )
    }

    fn pod() -> impl Strategy<Value = full::Pod> {
        let meta = (
            option::of(word()),
            option::of(word()),
            option::of(word()),
            option::of(word()),
            btree_map(word(), word(), 0..4),
        )
            .prop_map(|(name, generate_name, namespace, uid, labels)| FullMeta {
                name,
                generate_name,
                namespace,
                uid,
                labels,
                ..FullMeta::default()
            });
        let status = option::of((option::of(word()), vec(word(), 0..3)).prop_map(
            |(phase, reasons)| {
                full::PodStatus {
                    phase,
                    conditions: reasons
                        .into_iter()
                        .map(|reason| full::PodCondition {
                            r#type: Some("PodScheduled".into()),
                            status: Some("False".into()),
                            reason: Some(reason),
                            ..full::PodCondition::default()
                        })
                        .collect(),
                    ..full::PodStatus::default()
                }
            },
        ));
        (option::of(meta), option::of(spec()), status).prop_map(|(metadata, spec, status)| {
            full::Pod {
                metadata,
                spec,
                status,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The lean decode keeps exactly what the full decode gives for the
        /// fields the expander reads — also for two encodings concatenated,
        /// which protobuf decodes as one message merged field by field
        /// (repeated fields append, maps and scalars take the later value).
        #[test]
        fn lean_decode_equals_full_decode(a in pod(), b in option::of(pod())) {
            let mut bytes = a.encode_to_vec();
            if let Some(b) = &b {
                bytes.extend(b.encode_to_vec());
            }
            let full = full::Pod::decode(bytes.as_slice()).unwrap();
            let lean = Pod::decode(bytes.as_slice()).unwrap();
            prop_assert_eq!(&lean, &project(&full));
        }
    }

    #[test]
    fn malformed_bytes_are_errors() {
        for bytes in [&[0xff, 0xff][..], &[0x0a, 0xff], &[0x12, 0x05, 0x00]] {
            assert!(Pod::decode(bytes).is_err(), "{bytes:?}");
            assert!(full::Pod::decode(bytes).is_err(), "{bytes:?}");
        }
    }
}
