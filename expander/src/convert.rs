//! Kubernetes `Pod` and `Node` objects → the scheduling view the expanders use.
//!
//! Two sources carry the same objects: the JSON types of `k8s-openapi` (the
//! `decide` request file) and protobuf (Cluster Autoscaler's gRPC request:
//! pods decoded with the lean messages of [`crate::lean`], template nodes
//! with `k8s-pb`). Each is first borrowed into a source-neutral
//! view of the fields that matter, so the rules (requests, init containers,
//! overhead, tolerations, affinity, capacity type) live in one place.

use crate::lean;
use k8s_openapi::api::core::v1 as json;
use k8s_pb::api::core::v1 as pb;
use std::collections::BTreeMap;
use tailor_core::catalog::CapacityType;
use tailor_core::expander::{NodeTemplate, PriceInputs};
use tailor_core::quantity::{Quantity, cpu_millis, memory_bytes};
use tailor_core::resources::Resources;
use tailor_core::scheduling::{
    NodeSelectorRequirement, NodeSelectorTerm, PodRequest, SelectorOperator, Taint, TaintEffect,
    Toleration, TolerationOperator,
};

/// Label naming a node's instance type.
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";
/// The pre-1.17 instance type label, still set by some providers.
pub const BETA_INSTANCE_TYPE_LABEL: &str = "beta.kubernetes.io/instance-type";
/// Karpenter's capacity type label (`spot`, `on-demand`, `reserved`).
pub const KARPENTER_CAPACITY_TYPE_LABEL: &str = "karpenter.sh/capacity-type";
/// EKS managed node groups' capacity type label (`SPOT`, `ON_DEMAND`).
pub const EKS_CAPACITY_TYPE_LABEL: &str = "eks.amazonaws.com/capacityType";
/// Extended resource name of NVIDIA GPUs.
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// Pods per node when a template does not say (the kubelet's default).
pub const DEFAULT_MAX_PODS: u32 = 110;

/// A Kubernetes object could not be converted; names the object and the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?}, field {field}: {reason}")]
pub struct ConvertError {
    /// `Pod` or `Node`.
    pub kind: &'static str,
    /// `namespace/name` of a pod, name of a node.
    pub name: String,
    /// JSON path of the field, e.g. `spec.containers[0].resources.requests.cpu`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

/// CPU and memory quantities as strings, `[cpu, memory]`.
type Pair<'a> = [Option<&'a str>; 2];

struct ContainerParts<'a> {
    requests: Pair<'a>,
    limits: Pair<'a>,
    /// An init container with `restartPolicy: Always` runs beside the app.
    sidecar: bool,
}

struct TolerationParts<'a> {
    key: &'a str,
    operator: &'a str,
    value: &'a str,
    effect: &'a str,
}

struct RequirementParts<'a> {
    key: &'a str,
    operator: &'a str,
    values: &'a [String],
}

struct PodParts<'a> {
    name: String,
    containers: Vec<ContainerParts<'a>>,
    init_containers: Vec<ContainerParts<'a>>,
    overhead: Pair<'a>,
    /// Pod-level `spec.resources.requests`, which win where set.
    pod_level: Pair<'a>,
    priority: i32,
    node_selector: Option<&'a BTreeMap<String, String>>,
    tolerations: Vec<TolerationParts<'a>>,
    /// Required node affinity: terms (OR) of requirements (AND).
    terms: Vec<Vec<RequirementParts<'a>>>,
}

/// `[cpu, memory, pods, nvidia.com/gpu]`.
type NodeList<'a> = [Option<&'a str>; 4];

struct NodeParts<'a> {
    name: &'a str,
    capacity: Option<NodeList<'a>>,
    allocatable: Option<NodeList<'a>>,
    labels: Option<&'a BTreeMap<String, String>>,
    taints: Vec<[&'a str; 3]>,
}

/// A pending pod from its JSON (`k8s-openapi`) form.
pub fn pod_from_json(pod: &json::Pod) -> Result<PodRequest, ConvertError> {
    pod_request(json_pod_parts(pod))
}

/// A pending pod from its protobuf form ([`lean::Pod`]).
pub fn pod_from_pb(pod: &lean::Pod) -> Result<PodRequest, ConvertError> {
    pod_request(pb_pod_parts(pod))
}

/// A node group's template node from its JSON (`k8s-openapi`) form.
pub fn node_from_json(id: &str, node: &json::Node) -> Result<NodeTemplate, ConvertError> {
    node_template(id, json_node_parts(node))
}

/// A node group's template node from its protobuf (`k8s-pb`) form.
pub fn node_from_pb(id: &str, node: &pb::Node) -> Result<NodeTemplate, ConvertError> {
    node_template(id, pb_node_parts(node))
}

fn qualified_name(namespace: Option<&str>, name: Option<&str>, generate: Option<&str>) -> String {
    let name = name
        .filter(|n| !n.is_empty())
        .or(generate)
        .unwrap_or("<unnamed>");
    match namespace.filter(|n| !n.is_empty()) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

fn json_pair(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Pair<'_> {
    let get = |k: &str| map.and_then(|m| m.get(k)).map(|q| q.0.as_str());
    [get("cpu"), get("memory")]
}

fn pb_pair(map: &BTreeMap<String, lean::Quantity>) -> Pair<'_> {
    let get = |k: &str| map.get(k).map(|q| q.string.as_deref().unwrap_or(""));
    [get("cpu"), get("memory")]
}

fn json_container(c: &json::Container) -> ContainerParts<'_> {
    let r = c.resources.as_ref();
    ContainerParts {
        requests: json_pair(r.and_then(|r| r.requests.as_ref())),
        limits: json_pair(r.and_then(|r| r.limits.as_ref())),
        sidecar: c.restart_policy.as_deref() == Some("Always"),
    }
}

fn pb_container(c: &lean::Container) -> ContainerParts<'_> {
    let r = c.resources.as_ref();
    ContainerParts {
        requests: r.map_or([None, None], |r| pb_pair(&r.requests)),
        limits: r.map_or([None, None], |r| pb_pair(&r.limits)),
        sidecar: c.restart_policy.as_deref() == Some("Always"),
    }
}

fn json_pod_parts(pod: &json::Pod) -> PodParts<'_> {
    let meta = &pod.metadata;
    let name = qualified_name(
        meta.namespace.as_deref(),
        meta.name.as_deref(),
        meta.generate_name.as_deref(),
    );
    let Some(spec) = &pod.spec else {
        return PodParts {
            name,
            containers: Vec::new(),
            init_containers: Vec::new(),
            overhead: [None, None],
            pod_level: [None, None],
            priority: 0,
            node_selector: None,
            tolerations: Vec::new(),
            terms: Vec::new(),
        };
    };
    let container = json_container;
    let empty: &[String] = &[];
    PodParts {
        name,
        containers: spec.containers.iter().map(container).collect(),
        init_containers: spec
            .init_containers
            .iter()
            .flatten()
            .map(container)
            .collect(),
        overhead: json_pair(spec.overhead.as_ref()),
        pod_level: json_pair(spec.resources.as_ref().and_then(|r| r.requests.as_ref())),
        priority: spec.priority.unwrap_or(0),
        node_selector: spec.node_selector.as_ref(),
        tolerations: spec
            .tolerations
            .iter()
            .flatten()
            .map(|t| TolerationParts {
                key: t.key.as_deref().unwrap_or(""),
                operator: t.operator.as_deref().unwrap_or(""),
                value: t.value.as_deref().unwrap_or(""),
                effect: t.effect.as_deref().unwrap_or(""),
            })
            .collect(),
        terms: spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| {
                s.node_selector_terms
                    .iter()
                    .map(|term| {
                        term.match_expressions
                            .iter()
                            .flatten()
                            .map(|r| RequirementParts {
                                key: &r.key,
                                operator: &r.operator,
                                values: r.values.as_deref().unwrap_or(empty),
                            })
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn pb_pod_parts(pod: &lean::Pod) -> PodParts<'_> {
    let meta = pod.metadata.as_ref();
    let name = qualified_name(
        meta.and_then(|m| m.namespace.as_deref()),
        meta.and_then(|m| m.name.as_deref()),
        meta.and_then(|m| m.generate_name.as_deref()),
    );
    let Some(spec) = &pod.spec else {
        return PodParts {
            name,
            containers: Vec::new(),
            init_containers: Vec::new(),
            overhead: [None, None],
            pod_level: [None, None],
            priority: 0,
            node_selector: None,
            tolerations: Vec::new(),
            terms: Vec::new(),
        };
    };
    let container = pb_container;
    let pod_level = spec
        .resources
        .as_ref()
        .map_or([None, None], |r| pb_pair(&r.requests));
    PodParts {
        name,
        containers: spec.containers.iter().map(container).collect(),
        init_containers: spec.init_containers.iter().map(container).collect(),
        overhead: pb_pair(&spec.overhead),
        pod_level,
        priority: spec.priority.unwrap_or(0),
        node_selector: Some(&spec.node_selector),
        tolerations: spec
            .tolerations
            .iter()
            .map(|t| TolerationParts {
                key: t.key.as_deref().unwrap_or(""),
                operator: t.operator.as_deref().unwrap_or(""),
                value: t.value.as_deref().unwrap_or(""),
                effect: t.effect.as_deref().unwrap_or(""),
            })
            .collect(),
        terms: spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|s| {
                s.node_selector_terms
                    .iter()
                    .map(|term| {
                        term.match_expressions
                            .iter()
                            .map(|r| RequirementParts {
                                key: r.key.as_deref().unwrap_or(""),
                                operator: r.operator.as_deref().unwrap_or(""),
                                values: &r.values,
                            })
                            .collect()
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn json_node_list(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Option<NodeList<'_>> {
    let map = map?;
    let get = |k: &str| map.get(k).map(|q| q.0.as_str());
    Some([get("cpu"), get("memory"), get("pods"), get(GPU_RESOURCE)])
}

fn pb_node_list(
    map: &BTreeMap<String, k8s_pb::apimachinery::pkg::api::resource::Quantity>,
) -> Option<NodeList<'_>> {
    if map.is_empty() {
        return None;
    }
    let get = |k: &str| map.get(k).map(|q| q.string.as_deref().unwrap_or(""));
    Some([get("cpu"), get("memory"), get("pods"), get(GPU_RESOURCE)])
}

fn json_node_parts(node: &json::Node) -> NodeParts<'_> {
    let status = node.status.as_ref();
    NodeParts {
        name: node.metadata.name.as_deref().unwrap_or("<unnamed>"),
        capacity: json_node_list(status.and_then(|s| s.capacity.as_ref())),
        allocatable: json_node_list(status.and_then(|s| s.allocatable.as_ref())),
        labels: node.metadata.labels.as_ref(),
        taints: node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .iter()
            .copied()
            .flatten()
            .map(|t| {
                [
                    t.key.as_str(),
                    t.value.as_deref().unwrap_or(""),
                    t.effect.as_str(),
                ]
            })
            .collect(),
    }
}

fn pb_node_parts(node: &pb::Node) -> NodeParts<'_> {
    let meta = node.metadata.as_ref();
    let status = node.status.as_ref();
    NodeParts {
        name: meta.and_then(|m| m.name.as_deref()).unwrap_or("<unnamed>"),
        capacity: status.and_then(|s| pb_node_list(&s.capacity)),
        allocatable: status.and_then(|s| pb_node_list(&s.allocatable)),
        labels: meta.map(|m| &m.labels),
        taints: node
            .spec
            .iter()
            .flat_map(|s| &s.taints)
            .map(|t| {
                [
                    t.key.as_deref().unwrap_or(""),
                    t.value.as_deref().unwrap_or(""),
                    t.effect.as_deref().unwrap_or(""),
                ]
            })
            .collect(),
    }
}

/// Builds errors about one object.
struct Subject<'a> {
    kind: &'static str,
    name: &'a str,
}

impl Subject<'_> {
    fn error(&self, field: impl Into<String>, reason: impl Into<String>) -> ConvertError {
        ConvertError {
            kind: self.kind,
            name: self.name.to_owned(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Parses `[cpu, memory]` at `prefix`; absent entries are `None`.
    fn pair(&self, prefix: &str, pair: Pair<'_>) -> Result<[Option<i64>; 2], ConvertError> {
        let cpu = pair[0]
            .map(|s| self.non_negative(prefix, "cpu", s, cpu_millis(s)))
            .transpose()?;
        let memory = pair[1]
            .map(|s| self.non_negative(prefix, "memory", s, memory_bytes(s)))
            .transpose()?;
        Ok([cpu, memory])
    }

    fn non_negative<E: std::fmt::Display>(
        &self,
        prefix: &str,
        name: &str,
        input: &str,
        value: Result<i64, E>,
    ) -> Result<i64, ConvertError> {
        match value {
            Ok(v) if v >= 0 => Ok(v),
            Ok(_) => Err(self.error(format!("{prefix}.{name}"), format!("{input:?} is negative"))),
            Err(e) => Err(self.error(format!("{prefix}.{name}"), e.to_string())),
        }
    }
}

fn resources(pair: [Option<i64>; 2]) -> Resources {
    Resources::new(pair[0].unwrap_or(0), pair[1].unwrap_or(0))
}

/// A container's effective requests: requests, or limits where no request is
/// set (what API-server defaulting does for objects that skipped it).
fn container_requests(
    subject: &Subject<'_>,
    field: &str,
    index: usize,
    c: &ContainerParts<'_>,
) -> Result<Resources, ConvertError> {
    let requests = subject.pair(&format!("{field}[{index}].resources.requests"), c.requests)?;
    let limits = subject.pair(&format!("{field}[{index}].resources.limits"), c.limits)?;
    Ok(resources([
        requests[0].or(limits[0]),
        requests[1].or(limits[1]),
    ]))
}

fn pod_request(parts: PodParts<'_>) -> Result<PodRequest, ConvertError> {
    let subject = Subject {
        kind: "Pod",
        name: &parts.name,
    };
    let overflow = |field: &str| subject.error(field, "sum of requests overflows");

    // Kubernetes' effective request: max(app containers + sidecars, the
    // largest init container plus the sidecars started before it) + overhead.
    let mut app = Resources::ZERO;
    for (i, c) in parts.containers.iter().enumerate() {
        app = app
            .checked_add(container_requests(&subject, "spec.containers", i, c)?)
            .map_err(|_| overflow("spec.containers"))?;
    }
    let mut sidecars = Resources::ZERO;
    let mut init_peak = Resources::ZERO;
    for (i, c) in parts.init_containers.iter().enumerate() {
        let r = container_requests(&subject, "spec.initContainers", i, c)?;
        let with_sidecars = sidecars
            .checked_add(r)
            .map_err(|_| overflow("spec.initContainers"))?;
        if c.sidecar {
            sidecars = with_sidecars;
        }
        init_peak = init_peak.max(with_sidecars);
    }
    let running = app
        .checked_add(sidecars)
        .map_err(|_| overflow("spec.initContainers"))?;
    let mut total = running.max(init_peak);
    // Pod-level requests replace the container sum for the resources they set.
    let pod_level = subject.pair("spec.resources.requests", parts.pod_level)?;
    total = Resources::new(
        pod_level[0].unwrap_or(total.cpu_millis),
        pod_level[1].unwrap_or(total.memory_bytes),
    );
    let overhead = resources(subject.pair("spec.overhead", parts.overhead)?);
    let requests = total
        .checked_add(overhead)
        .map_err(|_| overflow("spec.overhead"))?;

    let tolerations = parts
        .tolerations
        .iter()
        .enumerate()
        .map(|(i, t)| toleration(&subject, i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let required_node_affinity = parts
        .terms
        .iter()
        .enumerate()
        .map(|(i, term)| {
            term.iter()
                .enumerate()
                .map(|(j, r)| requirement(&subject, i, j, r))
                .collect::<Result<Vec<_>, _>>()
                .map(|match_expressions| NodeSelectorTerm { match_expressions })
        })
        .collect::<Result<Vec<_>, _>>()?;

    Ok(PodRequest {
        name: parts.name.clone(),
        requests,
        priority: parts.priority,
        node_selector: parts.node_selector.cloned().unwrap_or_default(),
        tolerations,
        required_node_affinity,
    })
}

fn taint_effect(s: &str) -> Option<TaintEffect> {
    match s {
        "NoSchedule" => Some(TaintEffect::NoSchedule),
        "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
        "NoExecute" => Some(TaintEffect::NoExecute),
        _ => None,
    }
}

fn toleration(
    subject: &Subject<'_>,
    i: usize,
    t: &TolerationParts<'_>,
) -> Result<Toleration, ConvertError> {
    let operator = match t.operator {
        "" | "Equal" => TolerationOperator::Equal,
        "Exists" => TolerationOperator::Exists,
        other => {
            return Err(subject.error(
                format!("spec.tolerations[{i}].operator"),
                format!("{other:?} is not Equal or Exists"),
            ));
        }
    };
    let effect = match t.effect {
        "" => None,
        e => Some(taint_effect(e).ok_or_else(|| {
            subject.error(
                format!("spec.tolerations[{i}].effect"),
                format!("{e:?} is not NoSchedule, PreferNoSchedule or NoExecute"),
            )
        })?),
    };
    Ok(Toleration {
        key: t.key.to_owned(),
        operator,
        value: t.value.to_owned(),
        effect,
    })
}

fn requirement(
    subject: &Subject<'_>,
    term: usize,
    index: usize,
    r: &RequirementParts<'_>,
) -> Result<NodeSelectorRequirement, ConvertError> {
    let operator = match r.operator {
        "In" => SelectorOperator::In,
        "NotIn" => SelectorOperator::NotIn,
        "Exists" => SelectorOperator::Exists,
        "DoesNotExist" => SelectorOperator::DoesNotExist,
        "Gt" => SelectorOperator::Gt,
        "Lt" => SelectorOperator::Lt,
        other => {
            return Err(subject.error(
                format!(
                    "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[{term}].matchExpressions[{index}].operator"
                ),
                format!("{other:?} is not In, NotIn, Exists, DoesNotExist, Gt or Lt"),
            ));
        }
    };
    Ok(NodeSelectorRequirement {
        key: r.key.to_owned(),
        operator,
        values: r.values.to_vec(),
    })
}

fn capacity_type(
    subject: &Subject<'_>,
    labels: &BTreeMap<String, String>,
) -> Result<CapacityType, ConvertError> {
    for label in [KARPENTER_CAPACITY_TYPE_LABEL, EKS_CAPACITY_TYPE_LABEL] {
        let Some(value) = labels.get(label) else {
            continue;
        };
        return match value.to_ascii_lowercase().replace('_', "-").as_str() {
            "spot" => Ok(CapacityType::Spot),
            // Reserved capacity is paid for like on-demand.
            "on-demand" | "reserved" => Ok(CapacityType::OnDemand),
            _ => Err(subject.error(
                format!("metadata.labels[{label:?}]"),
                format!("{value:?} is not spot or on-demand"),
            )),
        };
    }
    Ok(CapacityType::OnDemand)
}

fn node_template(id: &str, parts: NodeParts<'_>) -> Result<NodeTemplate, ConvertError> {
    let name = if parts.name == "<unnamed>" {
        format!("<template of {id}>")
    } else {
        parts.name.to_owned()
    };
    let subject = Subject {
        kind: "Node",
        name: &name,
    };
    let Some(capacity_list) = parts.capacity else {
        return Err(subject.error("status.capacity", "is missing"));
    };
    let capacity = subject.pair("status.capacity", [capacity_list[0], capacity_list[1]])?;
    let [Some(cpu), Some(memory)] = capacity else {
        let missing = if capacity[0].is_none() {
            "cpu"
        } else {
            "memory"
        };
        return Err(subject.error(format!("status.capacity.{missing}"), "is missing"));
    };
    let capacity = Resources::new(cpu, memory);
    // A template without allocatable is all allocatable (nothing reserved).
    let allocatable = match parts.allocatable {
        Some(list) => {
            let a = subject.pair("status.allocatable", [list[0], list[1]])?;
            Resources::new(a[0].unwrap_or(cpu), a[1].unwrap_or(memory))
        }
        None => capacity,
    };
    let count = |field: &str, value: Option<&str>| -> Result<Option<u32>, ConvertError> {
        let Some(s) = value else { return Ok(None) };
        let v = Quantity::parse(s)
            .and_then(|q| q.value())
            .map_err(|e| subject.error(field, e.to_string()))?;
        u32::try_from(v).map(Some).map_err(|_| {
            subject.error(
                field,
                format!("{s:?} is not a count from 0 to {}", u32::MAX),
            )
        })
    };
    // Allocatable first, then capacity, for the pod limit and the GPUs.
    let allocatable_list = parts.allocatable.unwrap_or([None; 4]);
    let max_pods = match count("status.allocatable.pods", allocatable_list[2])? {
        Some(p) => p,
        None => count("status.capacity.pods", capacity_list[2])?.unwrap_or(DEFAULT_MAX_PODS),
    };
    let gpus = match count(
        "status.allocatable[\"nvidia.com/gpu\"]",
        allocatable_list[3],
    )? {
        Some(g) => g,
        None => count("status.capacity[\"nvidia.com/gpu\"]", capacity_list[3])?.unwrap_or(0),
    };
    let labels = parts.labels.cloned().unwrap_or_default();
    let taints = parts
        .taints
        .iter()
        .enumerate()
        .map(|(i, [key, value, effect])| {
            let effect = taint_effect(effect).ok_or_else(|| {
                subject.error(
                    format!("spec.taints[{i}].effect"),
                    format!("{effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"),
                )
            })?;
            Ok(Taint {
                key: (*key).to_owned(),
                value: (*value).to_owned(),
                effect,
            })
        })
        .collect::<Result<Vec<_>, ConvertError>>()?;
    let instance_types = labels
        .get(INSTANCE_TYPE_LABEL)
        .or_else(|| labels.get(BETA_INSTANCE_TYPE_LABEL))
        .map(|t| vec![t.clone()])
        .unwrap_or_default();
    let capacity_type = capacity_type(&subject, &labels)?;
    Ok(NodeTemplate {
        capacity,
        allocatable,
        max_pods,
        gpus,
        labels,
        taints,
        price: PriceInputs {
            instance_types,
            capacity_type,
            usd_per_hour: None,
        },
        // Cluster Autoscaler's request does not say; assume the group exists.
        exists: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{node_to_pb, pod_to_pb};
    use rstest::rstest;
    use serde_json::{Value, json};

    const MIB: i64 = 1 << 20;
    const GIB: i64 = 1 << 30;

    fn pod(spec: Value) -> json::Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn c(requests: Value) -> Value {
        json!({"name": "c", "resources": {"requests": requests}})
    }

    /// A JSON pod through the wire: k8s-pb encodes, the lean messages decode.
    fn lean_pod(p: &json::Pod) -> lean::Pod {
        use prost::Message as _;
        lean::Pod::decode(pod_to_pb(p).encode_to_vec().as_slice()).unwrap()
    }

    /// Converts through both sources and checks they agree.
    fn both(p: &json::Pod) -> Result<PodRequest, ConvertError> {
        let from_json = pod_from_json(p);
        let from_pb = pod_from_pb(&lean_pod(p));
        assert_eq!(from_json, from_pb, "JSON and protobuf conversions differ");
        from_json
    }

    #[rstest]
    #[case::one_container(json!({"containers": [c(json!({"cpu": "250m", "memory": "64Mi"}))]}), 250, 64 * MIB)]
    #[case::containers_add(
        json!({"containers": [c(json!({"cpu": "250m", "memory": "64Mi"})), c(json!({"cpu": "1", "memory": "1Gi"}))]}),
        1250, GIB + 64 * MIB)]
    #[case::no_requests(json!({"containers": [{"name": "c"}]}), 0, 0)]
    #[case::limits_default_requests(
        json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]}),
        2000, GIB)]
    #[case::request_wins_over_limit(
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "2", "memory": "1Gi"}}}]}),
        500, GIB)]
    #[case::init_max_when_larger(
        json!({"containers": [c(json!({"cpu": "100m", "memory": "100Mi"}))],
               "initContainers": [c(json!({"cpu": "2", "memory": "10Mi"})), c(json!({"cpu": "1", "memory": "50Mi"}))]}),
        2000, 100 * MIB)]
    #[case::sidecar_adds(
        json!({"containers": [c(json!({"cpu": "1", "memory": "1Gi"}))],
               "initContainers": [{"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}),
        1100, GIB + 128 * MIB)]
    #[case::init_after_sidecar_counts_it(
        json!({"containers": [c(json!({"cpu": "100m", "memory": "10Mi"}))],
               "initContainers": [
                   {"name": "proxy", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                   c(json!({"cpu": "1"}))]}),
        1500, 10 * MIB)]
    #[case::overhead_adds(
        json!({"containers": [c(json!({"cpu": "1", "memory": "1Gi"}))], "overhead": {"cpu": "250m", "memory": "120Mi"}}),
        1250, GIB + 120 * MIB)]
    #[case::pod_level_wins(
        json!({"containers": [c(json!({"cpu": "1", "memory": "1Gi"}))], "resources": {"requests": {"cpu": "3"}}}),
        3000, GIB)]
    fn pod_requests(#[case] spec: Value, #[case] cpu: i64, #[case] memory: i64) {
        let p = both(&pod(spec)).unwrap();
        assert_eq!(p.requests, Resources::new(cpu, memory));
        assert_eq!(p.name, "shop/web-0");
    }

    #[test]
    fn placement_constraints() {
        let p = both(&pod(json!({
            "containers": [c(json!({"cpu": "1"}))],
            "priority": -20,
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [
                {"key": "spot", "operator": "Exists", "effect": "NoSchedule"},
                {"key": "team", "value": "a"},
                {"operator": "Exists"}
            ],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
                    {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["5"]},
                                          {"key": "arm", "operator": "DoesNotExist"}]}
                ]}}}
        })))
        .unwrap();
        assert_eq!(p.priority, -20);
        assert_eq!(p.node_selector["disk"], "ssd");
        assert_eq!(
            p.tolerations,
            vec![
                Toleration {
                    key: "spot".into(),
                    operator: TolerationOperator::Exists,
                    value: String::new(),
                    effect: Some(TaintEffect::NoSchedule),
                },
                Toleration {
                    key: "team".into(),
                    operator: TolerationOperator::Equal,
                    value: "a".into(),
                    effect: None,
                },
                Toleration {
                    key: String::new(),
                    operator: TolerationOperator::Exists,
                    value: String::new(),
                    effect: None,
                },
            ]
        );
        assert_eq!(p.required_node_affinity.len(), 2);
        assert_eq!(
            p.required_node_affinity[1].match_expressions[0],
            NodeSelectorRequirement {
                key: "gen".into(),
                operator: SelectorOperator::Gt,
                values: vec!["5".into()],
            }
        );
        assert_eq!(
            p.required_node_affinity[1].match_expressions[1].operator,
            SelectorOperator::DoesNotExist
        );
    }

    #[test]
    fn pod_without_spec_or_name() {
        let p: json::Pod =
            serde_json::from_value(json!({"metadata": {"generateName": "job-"}})).unwrap();
        let r = both(&p).unwrap();
        assert_eq!((r.name.as_str(), r.requests), ("job-", Resources::ZERO));
    }

    #[rstest]
    #[case::bad_cpu(
        json!({"containers": [c(json!({"cpu": "lots"}))]}),
        "spec.containers[0].resources.requests.cpu")]
    #[case::negative_memory(
        json!({"containers": [c(json!({"cpu": "1"})), c(json!({"memory": "-1Gi"}))]}),
        "spec.containers[1].resources.requests.memory")]
    #[case::bad_limit(
        json!({"containers": [{"name": "c", "resources": {"limits": {"cpu": "1x"}}}]}),
        "spec.containers[0].resources.limits.cpu")]
    #[case::bad_init(
        json!({"containers": [], "initContainers": [c(json!({"memory": "12Qi"}))]}),
        "spec.initContainers[0].resources.requests.memory")]
    #[case::bad_overhead(
        json!({"containers": [], "overhead": {"cpu": "x"}}),
        "spec.overhead.cpu")]
    #[case::bad_toleration_operator(
        json!({"containers": [], "tolerations": [{"key": "a", "operator": "Matches"}]}),
        "spec.tolerations[0].operator")]
    #[case::bad_toleration_effect(
        json!({"containers": [], "tolerations": [{"key": "a", "effect": "NoWay"}]}),
        "spec.tolerations[0].effect")]
    #[case::bad_affinity_operator(
        json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "a", "operator": "Near"}]}]}}}}),
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator")]
    fn bad_pods_name_the_field(#[case] spec: Value, #[case] field: &str) {
        let err = both(&pod(spec)).unwrap_err();
        assert_eq!(
            (err.kind, err.name.as_str(), err.field.as_str()),
            ("Pod", "shop/web-0", field)
        );
        assert!(
            err.to_string()
                .starts_with(&format!("Pod \"shop/web-0\", field {field}: ")),
            "{err}"
        );
    }

    fn node(value: Value) -> json::Node {
        serde_json::from_value(value).unwrap()
    }

    fn both_nodes(n: &json::Node) -> Result<NodeTemplate, ConvertError> {
        let from_json = node_from_json("group", n);
        assert_eq!(
            from_json,
            node_from_pb("group", &node_to_pb(n)),
            "JSON and protobuf differ"
        );
        from_json
    }

    #[test]
    fn node_template_fields() {
        let t = both_nodes(&node(json!({
            "metadata": {"name": "tmpl", "labels": {
                "node.kubernetes.io/instance-type": "g5.xlarge",
                "karpenter.sh/capacity-type": "spot"}},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]},
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "58", "nvidia.com/gpu": "1"},
                "allocatable": {"cpu": "3920m", "memory": "15Gi", "pods": "58", "nvidia.com/gpu": "1"}}
        })))
        .unwrap();
        assert_eq!(t.capacity, Resources::new(4000, 16 * GIB));
        assert_eq!(t.allocatable, Resources::new(3920, 15 * GIB));
        assert_eq!((t.max_pods, t.gpus, t.exists), (58, 1, true));
        assert_eq!(t.price.instance_types, vec!["g5.xlarge".to_owned()]);
        assert_eq!(t.price.capacity_type, CapacityType::Spot);
        assert_eq!(
            t.taints,
            vec![Taint {
                key: "nvidia.com/gpu".into(),
                value: "true".into(),
                effect: TaintEffect::NoSchedule
            }]
        );
        assert_eq!(t.labels.len(), 2);
    }

    #[rstest]
    #[case::karpenter_on_demand("karpenter.sh/capacity-type", "on-demand", CapacityType::OnDemand)]
    #[case::karpenter_reserved("karpenter.sh/capacity-type", "reserved", CapacityType::OnDemand)]
    #[case::eks_spot("eks.amazonaws.com/capacityType", "SPOT", CapacityType::Spot)]
    #[case::eks_on_demand("eks.amazonaws.com/capacityType", "ON_DEMAND", CapacityType::OnDemand)]
    #[case::unrelated("example.com/kind", "spot", CapacityType::OnDemand)]
    fn capacity_type_labels(
        #[case] label: &str,
        #[case] value: &str,
        #[case] expected: CapacityType,
    ) {
        let t = both_nodes(&node(json!({
            "metadata": {"labels": {label: value, "beta.kubernetes.io/instance-type": "m4.large"}},
            "status": {"capacity": {"cpu": "2", "memory": "8Gi"}}
        })))
        .unwrap();
        assert_eq!(t.price.capacity_type, expected);
        assert_eq!(t.price.instance_types, vec!["m4.large".to_owned()]);
    }

    #[test]
    fn node_defaults() {
        // No allocatable: all of capacity; no pods entry: the kubelet default.
        let t = both_nodes(&node(json!({
            "metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "2", "memory": "8Gi"}}
        })))
        .unwrap();
        assert_eq!(t.allocatable, t.capacity);
        assert_eq!((t.max_pods, t.gpus), (DEFAULT_MAX_PODS, 0));
        assert!(t.price.instance_types.is_empty());
        assert_eq!(t.price.capacity_type, CapacityType::OnDemand);
    }

    #[rstest]
    #[case::no_status(json!({"metadata": {"name": "n"}}), "status.capacity", "is missing")]
    #[case::no_cpu(json!({"metadata": {"name": "n"}, "status": {"capacity": {"memory": "1Gi"}}}), "status.capacity.cpu", "is missing")]
    #[case::no_memory(json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "1"}}}), "status.capacity.memory", "is missing")]
    #[case::bad_cpu(json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "one", "memory": "1Gi"}}}), "status.capacity.cpu", "malformed")]
    #[case::bad_allocatable(json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "1", "memory": "1Gi"}, "allocatable": {"memory": "-5"}}}), "status.allocatable.memory", "negative")]
    #[case::bad_pods(json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "1", "memory": "1Gi", "pods": "-3"}}}), "status.capacity.pods", "not a count")]
    #[case::bad_gpus(json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1.5x"}}}), "status.capacity[\"nvidia.com/gpu\"]", "malformed")]
    #[case::bad_taint(json!({"metadata": {"name": "n"}, "spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}, "status": {"capacity": {"cpu": "1", "memory": "1Gi"}}}), "spec.taints[0].effect", "Sometimes")]
    #[case::bad_capacity_type(json!({"metadata": {"name": "n", "labels": {"karpenter.sh/capacity-type": "cheap"}}, "status": {"capacity": {"cpu": "1", "memory": "1Gi"}}}), "metadata.labels[\"karpenter.sh/capacity-type\"]", "cheap")]
    fn bad_nodes_name_the_field(#[case] value: Value, #[case] field: &str, #[case] reason: &str) {
        let err = both_nodes(&node(value)).unwrap_err();
        assert_eq!(
            (err.kind, err.name.as_str(), err.field.as_str()),
            ("Node", "n", field)
        );
        assert!(err.reason.contains(reason), "{err}");
    }

    #[test]
    fn unnamed_template_is_named_after_its_group() {
        let err = both_nodes(&node(json!({}))).unwrap_err();
        assert_eq!(err.name, "<template of group>");
    }

    proptest::proptest! {
        /// Requests add up over any containers, whichever source they come from.
        #[test]
        fn container_requests_sum(reqs in proptest::collection::vec((0i64..64_000, 0i64..1 << 36), 0..12)) {
            let containers: Vec<Value> = reqs
                .iter()
                .map(|(cpu, mem)| c(json!({"cpu": format!("{cpu}m"), "memory": mem.to_string()})))
                .collect();
            let p = both(&pod(json!({"containers": containers}))).unwrap();
            let cpu: i64 = reqs.iter().map(|r| r.0).sum();
            let mem: i64 = reqs.iter().map(|r| r.1).sum();
            proptest::prop_assert_eq!(p.requests, Resources::new(cpu, mem));
        }
    }
}
