//! JSON request → Cluster Autoscaler's protobuf request, for the fields the
//! expander reads. Lets tests, benchmarks and tools replay a `decide` file
//! over gRPC exactly as CA would send it.

use crate::grpc::proto;
use crate::request::DecideRequest;
use k8s_openapi::api::core::v1 as json;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as JsonQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta as JsonMeta;
use k8s_pb::api::core::v1 as pb;
use k8s_pb::apimachinery::pkg::api::resource::Quantity as PbQuantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta as PbMeta;
use prost::Message;
use std::collections::BTreeMap;

fn quantities(map: Option<&BTreeMap<String, JsonQuantity>>) -> BTreeMap<String, PbQuantity> {
    map.iter()
        .flat_map(|m| m.iter())
        .map(|(k, v)| {
            (
                k.clone(),
                PbQuantity {
                    string: Some(v.0.clone()),
                },
            )
        })
        .collect()
}

fn meta(m: &JsonMeta) -> PbMeta {
    PbMeta {
        name: m.name.clone(),
        generate_name: m.generate_name.clone(),
        namespace: m.namespace.clone(),
        labels: m.labels.clone().unwrap_or_default(),
        ..PbMeta::default()
    }
}

fn container(c: &json::Container) -> pb::Container {
    pb::Container {
        name: Some(c.name.clone()),
        image: c.image.clone(),
        restart_policy: c.restart_policy.clone(),
        resources: c.resources.as_ref().map(|r| pb::ResourceRequirements {
            requests: quantities(r.requests.as_ref()),
            limits: quantities(r.limits.as_ref()),
            ..pb::ResourceRequirements::default()
        }),
        ..pb::Container::default()
    }
}

fn requirement(r: &json::NodeSelectorRequirement) -> pb::NodeSelectorRequirement {
    pb::NodeSelectorRequirement {
        key: Some(r.key.clone()),
        operator: Some(r.operator.clone()),
        values: r.values.clone().unwrap_or_default(),
    }
}

/// A pod's protobuf form (metadata names and labels, containers' requests and
/// limits, overhead, priority, node selector, tolerations, node affinity).
#[must_use]
pub fn pod_to_pb(pod: &json::Pod) -> pb::Pod {
    let spec = pod.spec.as_ref().map(|s| pb::PodSpec {
        containers: s.containers.iter().map(container).collect(),
        init_containers: s.init_containers.iter().flatten().map(container).collect(),
        overhead: quantities(s.overhead.as_ref()),
        resources: s.resources.as_ref().map(|r| pb::ResourceRequirements {
            requests: quantities(r.requests.as_ref()),
            limits: quantities(r.limits.as_ref()),
            ..pb::ResourceRequirements::default()
        }),
        priority: s.priority,
        node_selector: s.node_selector.clone().unwrap_or_default(),
        tolerations: s
            .tolerations
            .iter()
            .flatten()
            .map(|t| pb::Toleration {
                key: t.key.clone(),
                operator: t.operator.clone(),
                value: t.value.clone(),
                effect: t.effect.clone(),
                toleration_seconds: t.toleration_seconds,
            })
            .collect(),
        affinity: s.affinity.as_ref().map(|a| pb::Affinity {
            node_affinity: a.node_affinity.as_ref().map(|na| pb::NodeAffinity {
                required_during_scheduling_ignored_during_execution: na
                    .required_during_scheduling_ignored_during_execution
                    .as_ref()
                    .map(|sel| pb::NodeSelector {
                        node_selector_terms: sel
                            .node_selector_terms
                            .iter()
                            .map(|t| pb::NodeSelectorTerm {
                                match_expressions: t
                                    .match_expressions
                                    .iter()
                                    .flatten()
                                    .map(requirement)
                                    .collect(),
                                match_fields: t
                                    .match_fields
                                    .iter()
                                    .flatten()
                                    .map(requirement)
                                    .collect(),
                            })
                            .collect(),
                    }),
                ..pb::NodeAffinity::default()
            }),
            ..pb::Affinity::default()
        }),
        ..pb::PodSpec::default()
    });
    pb::Pod {
        metadata: Some(meta(&pod.metadata)),
        spec,
        status: None,
    }
}

/// A node's protobuf form (metadata names and labels, taints, capacity, allocatable).
#[must_use]
pub fn node_to_pb(node: &json::Node) -> pb::Node {
    pb::Node {
        metadata: Some(meta(&node.metadata)),
        spec: node.spec.as_ref().map(|s| pb::NodeSpec {
            taints: s
                .taints
                .iter()
                .flatten()
                .map(|t| pb::Taint {
                    key: Some(t.key.clone()),
                    value: t.value.clone(),
                    effect: Some(t.effect.clone()),
                    time_added: None,
                })
                .collect(),
            ..pb::NodeSpec::default()
        }),
        status: node.status.as_ref().map(|s| pb::NodeStatus {
            capacity: quantities(s.capacity.as_ref()),
            allocatable: quantities(s.allocatable.as_ref()),
            ..pb::NodeStatus::default()
        }),
    }
}

/// The `BestOptionsRequest` CA would send for this `decide` file.
#[must_use]
pub fn request_to_proto(request: &DecideRequest) -> proto::BestOptionsRequest {
    proto::BestOptionsRequest {
        options: request
            .options
            .iter()
            .map(|o| proto::Option {
                node_group_id: o.node_group_id.clone(),
                node_count: i32::try_from(o.node_count).unwrap_or(i32::MAX),
                debug: o.debug.clone(),
                pod: o
                    .pods
                    .iter()
                    .map(|p| pod_to_pb(p).encode_to_vec().into())
                    .collect(),
                similar_node_group_ids: o.similar_node_group_ids.clone(),
            })
            .collect(),
        node_map: request
            .node_map
            .iter()
            .map(|(id, n)| (id.clone(), node_to_pb(n).encode_to_vec().into()))
            .collect(),
    }
}
