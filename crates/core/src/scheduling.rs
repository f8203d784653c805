//! Will a pending pod fit on a node, and how many new nodes of a template does
//! a set of pending pods need?
//!
//! This is the subset of the kube-scheduler's filters that decides scale-up:
//! resource requests, the pods-per-node limit, taints and tolerations,
//! `nodeSelector` and required node affinity. Scoring, inter-pod affinity and
//! topology spread are out of scope: a scale-up only needs feasibility.

use crate::resources::{ResourceName, Resources};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What a taint does to pods that do not tolerate it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    /// New pods are not scheduled onto the node.
    NoSchedule,
    /// The scheduler avoids the node but may still use it.
    PreferNoSchedule,
    /// New pods are not scheduled and running ones are evicted.
    NoExecute,
}

impl TaintEffect {
    /// True when an untolerated taint with this effect keeps a pod off the node.
    #[must_use]
    pub const fn blocks_scheduling(self) -> bool {
        matches!(self, TaintEffect::NoSchedule | TaintEffect::NoExecute)
    }
}

/// A node taint (`key=value:effect`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value (may be empty).
    pub value: String,
    /// Taint effect.
    pub effect: TaintEffect,
}

/// How a toleration compares its value with a taint's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TolerationOperator {
    /// Key and value must both match (the Kubernetes default).
    #[default]
    Equal,
    /// Any value matches; with an empty key, every taint matches.
    Exists,
}

/// A pod toleration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toleration {
    /// Taint key to tolerate; empty means every key (only with `Exists`).
    pub key: String,
    /// Comparison operator.
    pub operator: TolerationOperator,
    /// Value compared under `Equal`.
    pub value: String,
    /// Effect to tolerate; `None` tolerates every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// True when this toleration covers `taint`, by the Kubernetes rules.
    #[must_use]
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => self.key.is_empty() || self.key == taint.key,
            TolerationOperator::Equal => self.key == taint.key && self.value == taint.value,
        }
    }
}

/// Operator of a node selector requirement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
    /// The label's value, as an integer, is greater than the single value.
    Gt,
    /// The label's value, as an integer, is less than the single value.
    Lt,
}

/// One requirement of a node selector term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSelectorRequirement {
    /// Label key.
    pub key: String,
    /// Operator.
    pub operator: SelectorOperator,
    /// Values (one integer for `Gt`/`Lt`, none for `Exists`/`DoesNotExist`).
    pub values: Vec<String>,
}

impl NodeSelectorRequirement {
    /// True when the node labels satisfy this requirement.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let label = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => label.is_some_and(|v| self.values.contains(v)),
            SelectorOperator::NotIn => label.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => label.is_some(),
            SelectorOperator::DoesNotExist => label.is_none(),
            SelectorOperator::Gt | SelectorOperator::Lt => {
                // Kubernetes requires exactly one integer value; anything else
                // (or a non-integer label) simply does not match.
                let [bound] = self.values.as_slice() else {
                    return false;
                };
                let (Some(label), Ok(bound)) = (label, bound.parse::<i64>()) else {
                    return false;
                };
                let Ok(value) = label.parse::<i64>() else {
                    return false;
                };
                if self.operator == SelectorOperator::Gt {
                    value > bound
                } else {
                    value < bound
                }
            }
        }
    }
}

/// A node selector term: all requirements must hold (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSelectorTerm {
    /// Requirements on node labels.
    pub match_expressions: Vec<NodeSelectorRequirement>,
}

impl NodeSelectorTerm {
    /// True when every requirement holds. An empty term matches nothing, as in
    /// Kubernetes.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        !self.match_expressions.is_empty()
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

/// A pending pod as the scale-up logic sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PodRequest {
    /// `namespace/name`, for explanations.
    pub name: String,
    /// Summed container requests (CPU, memory).
    pub requests: Resources,
    /// Pod priority (`spec.priority`); below −10 is expendable.
    pub priority: i32,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// Required node affinity terms (OR of terms); empty means no constraint.
    pub required_node_affinity: Vec<NodeSelectorTerm>,
}

impl PodRequest {
    /// A pod with only requests and no placement constraints.
    #[must_use]
    pub fn new(name: impl Into<String>, requests: Resources) -> Self {
        PodRequest {
            name: name.into(),
            requests,
            ..PodRequest::default()
        }
    }
}

/// The scheduling-relevant part of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeShape {
    /// Allocatable CPU and memory.
    pub allocatable: Resources,
    /// Maximum pods on the node (`status.allocatable.pods`); 0 admits none.
    pub max_pods: u32,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    pub taints: Vec<Taint>,
}

/// Why a pod does not fit a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unfit {
    /// Not enough of a resource left (or at all).
    Insufficient(ResourceName),
    /// The node is at its pods-per-node limit.
    TooManyPods,
    /// A taint the pod does not tolerate.
    UntoleratedTaint {
        /// Taint key.
        key: String,
        /// Taint effect.
        effect: TaintEffect,
    },
    /// A `nodeSelector` entry the node's labels do not satisfy.
    NodeSelector {
        /// Label key.
        key: String,
    },
    /// No required node affinity term matches.
    NodeAffinity,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unfit::Insufficient(r) => write!(f, "insufficient {r}"),
            Unfit::TooManyPods => f.write_str("too many pods"),
            Unfit::UntoleratedTaint { key, effect } => {
                write!(f, "untolerated taint {key}:{effect:?}")
            }
            Unfit::NodeSelector { key } => write!(f, "node selector {key} does not match"),
            Unfit::NodeAffinity => f.write_str("required node affinity does not match"),
        }
    }
}

/// Placement constraints only (taints, selector, affinity), ignoring resources.
pub fn check_constraints(pod: &PodRequest, node: &NodeShape) -> Result<(), Unfit> {
    for taint in node.taints.iter().filter(|t| t.effect.blocks_scheduling()) {
        if !pod.tolerations.iter().any(|t| t.tolerates(taint)) {
            return Err(Unfit::UntoleratedTaint {
                key: taint.key.clone(),
                effect: taint.effect,
            });
        }
    }
    for (key, value) in &pod.node_selector {
        if node.labels.get(key) != Some(value) {
            return Err(Unfit::NodeSelector { key: key.clone() });
        }
    }
    if !pod.required_node_affinity.is_empty()
        && !pod
            .required_node_affinity
            .iter()
            .any(|term| term.matches(&node.labels))
    {
        return Err(Unfit::NodeAffinity);
    }
    Ok(())
}

/// Does `pod` fit on `node` that already holds `used` requests and `pods` pods?
pub fn fits(pod: &PodRequest, node: &NodeShape, used: Resources, pods: u32) -> Result<(), Unfit> {
    check_constraints(pod, node)?;
    fits_resources(pod.requests, node, used, pods)
}

fn fits_resources(
    requests: Resources,
    node: &NodeShape,
    used: Resources,
    pods: u32,
) -> Result<(), Unfit> {
    if pods >= node.max_pods {
        return Err(Unfit::TooManyPods);
    }
    let after = used.saturating_add(requests);
    for r in ResourceName::ALL {
        if after.get(r) > node.allocatable.get(r) {
            return Err(Unfit::Insufficient(r));
        }
    }
    Ok(())
}

/// One new node in a packing, with the pods placed on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackedNode {
    /// Indices (into the input slice) of the pods placed here.
    pub pods: Vec<usize>,
    /// Summed requests of those pods.
    pub used: Resources,
}

/// The result of packing pending pods onto new nodes of one template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packing {
    /// The new nodes, in opening order.
    pub nodes: Vec<PackedNode>,
    /// Pods that cannot run on this template at all, with the reason.
    pub unschedulable: Vec<(usize, Unfit)>,
    /// Pods that would fit an empty node but were left over by the node limit.
    pub left_over: Vec<usize>,
}

impl Packing {
    /// How many new nodes the packing uses.
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Indices of every placed pod, in node order.
    pub fn placed(&self) -> impl Iterator<Item = usize> + '_ {
        self.nodes.iter().flat_map(|n| n.pods.iter().copied())
    }
}

/// First-fit-decreasing packing of `pods` onto at most `max_nodes` new nodes
/// shaped like `node` (`None`: no limit).
///
/// Pods are taken largest first by their dominant share of the node (the larger
/// of CPU and memory fractions), ties kept in input order so the result is
/// deterministic; each goes to the first open node it fits, or opens a new one.
#[must_use]
pub fn pack_first_fit_decreasing(
    pods: &[PodRequest],
    node: &NodeShape,
    max_nodes: Option<usize>,
) -> Packing {
    let mut packing = Packing::default();
    let mut order: Vec<(usize, f64)> = Vec::with_capacity(pods.len());
    for (i, pod) in pods.iter().enumerate() {
        let placeable = check_constraints(pod, node)
            .and_then(|()| fits_resources(pod.requests, node, Resources::ZERO, 0));
        match placeable {
            Ok(()) => order.push((i, dominant_share(pod.requests, node.allocatable))),
            Err(reason) => packing.unschedulable.push((i, reason)),
        }
    }
    // Stable sort keeps input order among equal shares.
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut counts: Vec<u32> = Vec::new();
    for (i, _) in order {
        let requests = pods[i].requests;
        let slot = packing
            .nodes
            .iter()
            .zip(&counts)
            .position(|(n, &c)| fits_resources(requests, node, n.used, c).is_ok());
        let slot = match slot {
            Some(slot) => slot,
            None if max_nodes.is_none_or(|m| packing.nodes.len() < m) => {
                packing.nodes.push(PackedNode::default());
                counts.push(0);
                packing.nodes.len() - 1
            }
            None => {
                packing.left_over.push(i);
                continue;
            }
        };
        let target = &mut packing.nodes[slot];
        target.pods.push(i);
        target.used = target.used.saturating_add(requests);
        counts[slot] += 1;
    }
    packing
}

#[allow(clippy::cast_precision_loss)] // ordering heuristic only
fn dominant_share(requests: Resources, allocatable: Resources) -> f64 {
    let share = |r: ResourceName| {
        let cap = allocatable.get(r);
        if cap <= 0 {
            0.0
        } else {
            requests.get(r) as f64 / cap as f64
        }
    };
    share(ResourceName::Cpu).max(share(ResourceName::Memory))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    const GIB: i64 = 1024 * 1024 * 1024;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn node(cpu: i64, mem_gib: i64, max_pods: u32) -> NodeShape {
        NodeShape {
            allocatable: Resources::new(cpu, mem_gib * GIB),
            max_pods,
            ..NodeShape::default()
        }
    }

    fn taint(key: &str, value: &str, effect: TaintEffect) -> Taint {
        Taint {
            key: key.into(),
            value: value.into(),
            effect,
        }
    }

    fn tol(
        key: &str,
        op: TolerationOperator,
        value: &str,
        effect: Option<TaintEffect>,
    ) -> Toleration {
        Toleration {
            key: key.into(),
            operator: op,
            value: value.into(),
            effect,
        }
    }

    use TaintEffect::{NoExecute, NoSchedule, PreferNoSchedule};
    use TolerationOperator::{Equal, Exists};

    #[rstest]
    #[case(
        tol("gpu", Equal, "true", Some(NoSchedule)),
        taint("gpu", "true", NoSchedule),
        true
    )]
    #[case(
        tol("gpu", Equal, "false", Some(NoSchedule)),
        taint("gpu", "true", NoSchedule),
        false
    )]
    #[case(
        tol("gpu", Equal, "true", Some(NoExecute)),
        taint("gpu", "true", NoSchedule),
        false
    )]
    #[case(tol("gpu", Equal, "true", None), taint("gpu", "true", NoExecute), true)]
    #[case(
        tol("gpu", Exists, "", None),
        taint("gpu", "anything", NoSchedule),
        true
    )]
    #[case(tol("other", Exists, "", None), taint("gpu", "x", NoSchedule), false)]
    #[case(tol("", Exists, "", None), taint("gpu", "x", NoExecute), true)]
    #[case(
        tol("", Exists, "", Some(NoSchedule)),
        taint("gpu", "x", NoExecute),
        false
    )]
    #[case(tol("", Equal, "", None), taint("gpu", "", NoSchedule), false)]
    fn toleration_rules(#[case] t: Toleration, #[case] taint: Taint, #[case] expected: bool) {
        assert_eq!(t.tolerates(&taint), expected);
    }

    fn req(key: &str, operator: SelectorOperator, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[rstest]
    #[case(req("zone", SelectorOperator::In, &["a", "b"]), true)]
    #[case(req("zone", SelectorOperator::In, &["c"]), false)]
    #[case(req("missing", SelectorOperator::In, &["a"]), false)]
    #[case(req("zone", SelectorOperator::NotIn, &["c"]), true)]
    #[case(req("zone", SelectorOperator::NotIn, &["a"]), false)]
    #[case(req("missing", SelectorOperator::NotIn, &["a"]), true)]
    #[case(req("zone", SelectorOperator::Exists, &[]), true)]
    #[case(req("missing", SelectorOperator::Exists, &[]), false)]
    #[case(req("missing", SelectorOperator::DoesNotExist, &[]), true)]
    #[case(req("zone", SelectorOperator::DoesNotExist, &[]), false)]
    #[case(req("cores", SelectorOperator::Gt, &["4"]), true)]
    #[case(req("cores", SelectorOperator::Gt, &["8"]), false)]
    #[case(req("cores", SelectorOperator::Lt, &["9"]), true)]
    #[case(req("cores", SelectorOperator::Lt, &["8"]), false)]
    #[case(req("zone", SelectorOperator::Gt, &["1"]), false)]
    #[case(req("cores", SelectorOperator::Gt, &["x"]), false)]
    #[case(req("cores", SelectorOperator::Gt, &["1", "2"]), false)]
    #[case(req("missing", SelectorOperator::Lt, &["100"]), false)]
    fn selector_operators(#[case] r: NodeSelectorRequirement, #[case] expected: bool) {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        assert_eq!(r.matches(&l), expected);
    }

    #[test]
    fn fit_checks_each_constraint() {
        let mut n = node(2000, 4, 2);
        n.labels = labels(&[("pool", "spot"), ("zone", "a")]);
        n.taints = vec![
            taint("spot", "true", NoSchedule),
            taint("soft", "x", PreferNoSchedule),
        ];
        let mut pod = PodRequest::new("p", Resources::new(500, GIB));
        assert_eq!(
            fits(&pod, &n, Resources::ZERO, 0),
            Err(Unfit::UntoleratedTaint {
                key: "spot".into(),
                effect: NoSchedule
            })
        );
        pod.tolerations = vec![tol("spot", Exists, "", None)];
        assert_eq!(fits(&pod, &n, Resources::ZERO, 0), Ok(()));
        pod.node_selector = labels(&[("pool", "on-demand")]);
        assert_eq!(
            fits(&pod, &n, Resources::ZERO, 0),
            Err(Unfit::NodeSelector { key: "pool".into() })
        );
        pod.node_selector = labels(&[("pool", "spot")]);
        pod.required_node_affinity = vec![
            NodeSelectorTerm {
                match_expressions: vec![req("zone", SelectorOperator::In, &["b"])],
            },
            NodeSelectorTerm::default(),
        ];
        assert_eq!(fits(&pod, &n, Resources::ZERO, 0), Err(Unfit::NodeAffinity));
        pod.required_node_affinity.push(NodeSelectorTerm {
            match_expressions: vec![req("zone", SelectorOperator::In, &["a"])],
        });
        assert_eq!(fits(&pod, &n, Resources::ZERO, 0), Ok(()));
        assert_eq!(
            fits(&pod, &n, Resources::new(1600, 0), 1),
            Err(Unfit::Insufficient(ResourceName::Cpu))
        );
        assert_eq!(
            fits(&pod, &n, Resources::new(0, 3 * GIB + 1), 1),
            Err(Unfit::Insufficient(ResourceName::Memory))
        );
        assert_eq!(fits(&pod, &n, Resources::ZERO, 2), Err(Unfit::TooManyPods));
        assert_eq!(fits(&pod, &n, Resources::new(1500, 3 * GIB), 1), Ok(()));
    }

    #[test]
    fn ffd_packs_largest_first() {
        // 4 cores per node: 3+1, 2+2, 2 — FFD needs 3 nodes (first fit in input
        // order would need 4 for [1,2,2,2,3]).
        let pods: Vec<_> = [1000, 2000, 2000, 2000, 3000]
            .iter()
            .enumerate()
            .map(|(i, &c)| PodRequest::new(format!("p{i}"), Resources::new(c, GIB)))
            .collect();
        let p = pack_first_fit_decreasing(&pods, &node(4000, 16, 110), None);
        assert_eq!(p.node_count(), 3);
        assert_eq!(p.nodes[0].pods, vec![4, 0]);
        assert_eq!(p.nodes[1].pods, vec![1, 2]);
        assert_eq!(p.nodes[2].pods, vec![3]);
        assert_eq!(p.nodes[0].used, Resources::new(4000, 2 * GIB));
        assert!(p.unschedulable.is_empty() && p.left_over.is_empty());
    }

    #[test]
    fn ffd_reports_unschedulable_and_left_over() {
        let mut tainted = node(4000, 16, 110);
        tainted.taints = vec![taint("gpu", "", NoSchedule)];
        let mut tolerant = PodRequest::new("ok", Resources::new(3000, GIB));
        tolerant.tolerations = vec![tol("gpu", Exists, "", None)];
        let mut big = PodRequest::new("big", Resources::new(5000, GIB));
        big.tolerations = tolerant.tolerations.clone();
        let pods = vec![
            PodRequest::new("intolerant", Resources::new(100, 1)),
            tolerant.clone(),
            big,
            tolerant,
        ];
        let p = pack_first_fit_decreasing(&pods, &tainted, Some(1));
        assert_eq!(p.node_count(), 1);
        assert_eq!(p.nodes[0].pods, vec![1]);
        assert_eq!(p.left_over, vec![3]);
        assert_eq!(
            p.unschedulable,
            vec![
                (
                    0,
                    Unfit::UntoleratedTaint {
                        key: "gpu".into(),
                        effect: NoSchedule
                    }
                ),
                (2, Unfit::Insufficient(ResourceName::Cpu)),
            ]
        );
    }

    #[test]
    fn ffd_respects_pods_per_node() {
        let pods: Vec<_> = (0..5)
            .map(|i| PodRequest::new(format!("p{i}"), Resources::new(10, 1)))
            .collect();
        let p = pack_first_fit_decreasing(&pods, &node(4000, 16, 2), None);
        assert_eq!(p.node_count(), 3);
        assert_eq!(p.placed().count(), 5);
    }

    proptest! {
        #[test]
        fn ffd_never_overfills_and_places_every_fitting_pod(
            reqs in prop::collection::vec((1i64..4000, 1i64..16 * GIB), 0..60)
        ) {
            let n = node(4000, 16, 30);
            let pods: Vec<_> = reqs
                .iter()
                .map(|&(c, m)| PodRequest::new("p", Resources::new(c, m)))
                .collect();
            let p = pack_first_fit_decreasing(&pods, &n, None);
            let mut seen: Vec<usize> = p.placed().collect();
            seen.sort_unstable();
            prop_assert_eq!(seen, (0..pods.len()).collect::<Vec<_>>());
            for packed in &p.nodes {
                prop_assert!(!packed.pods.is_empty());
                prop_assert!(packed.pods.len() <= 30);
                prop_assert!(packed.used.fits_within(&n.allocatable));
                let sum: Resources = packed.pods.iter().map(|&i| pods[i].requests).sum();
                prop_assert_eq!(sum, packed.used);
            }
            // FFD is never worse than one node per pod, and never better than the volume bound.
            let total: Resources = pods.iter().map(|p| p.requests).sum();
            let lower = (total.cpu_millis + 3999) / 4000;
            prop_assert!(p.node_count() as i64 >= lower);
        }
    }
}
