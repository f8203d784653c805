//! The Kubernetes side of the AWS mode: unschedulable pending pods and the
//! registered nodes (their capacity, and which EC2 instance each one is).
//!
//! Two list calls per loop, nothing else; the conversions are pure and
//! tested directly.

use crate::convert::{ConvertError, pod_from_json};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use std::collections::HashMap;
use tailor_core::quantity::{cpu_millis, memory_bytes};
use tailor_core::resources::Resources;
use tailor_core::scheduling::PodRequest;

/// Pods the scheduler has not bound yet and that are still to run; the
/// Unschedulable condition is checked on each.
pub const PENDING_POD_FIELDS: &str = "spec.nodeName=,status.phase!=Succeeded,status.phase!=Failed";

/// One registered node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// EC2 instance id from `spec.providerID` (`aws:///us-east-1a/i-0abc…`).
    pub instance_id: Option<String>,
    /// `status.capacity` CPU and memory (zero when absent or malformed).
    pub capacity: Resources,
}

/// What the cluster looks like to one loop.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Unschedulable pending pods.
    pub pending: Vec<PodRequest>,
    /// Pending pods that could not be read (named, with the field).
    pub unreadable: Vec<ConvertError>,
    /// Registered nodes.
    pub nodes: Vec<NodeInfo>,
}

impl Snapshot {
    /// Summed capacity of every registered node.
    #[must_use]
    pub fn capacity(&self) -> Resources {
        self.nodes
            .iter()
            .fold(Resources::ZERO, |a, n| a.saturating_add(n.capacity))
    }

    /// Registered nodes per instance id.
    #[must_use]
    pub fn by_instance(&self) -> HashMap<&str, &NodeInfo> {
        self.nodes
            .iter()
            .filter_map(|n| n.instance_id.as_deref().map(|id| (id, n)))
            .collect()
    }
}

/// True when the scheduler marked the pod unschedulable
/// (`PodScheduled=False`, reason `Unschedulable`), as Cluster Autoscaler checks.
#[must_use]
pub fn is_unschedulable(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .is_none_or(|s| s.node_name.as_deref().unwrap_or("").is_empty())
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
        && pod.metadata.deletion_timestamp.is_none()
}

/// The EC2 instance id in an AWS provider id (`aws:///zone/i-…`).
#[must_use]
pub fn instance_id(provider_id: &str) -> Option<String> {
    let rest = provider_id.strip_prefix("aws://")?;
    let id = rest.rsplit('/').next()?;
    id.starts_with("i-").then(|| id.to_owned())
}

/// A node's name, instance id and capacity.
#[must_use]
pub fn node_info(node: &Node) -> NodeInfo {
    let capacity = node
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .map(|c| {
            let get = |k: &str, parse: fn(&str) -> Result<i64, _>| {
                c.get(k).and_then(|q| parse(&q.0).ok()).unwrap_or(0)
            };
            Resources::new(get("cpu", cpu_millis), get("memory", memory_bytes))
        })
        .unwrap_or_default();
    NodeInfo {
        name: node.metadata.name.clone().unwrap_or_default(),
        instance_id: node
            .spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .and_then(instance_id),
        capacity,
    }
}

/// Builds a snapshot from listed objects: unschedulable pods converted (a
/// malformed one is reported, not fatal), nodes summarised.
#[must_use]
pub fn snapshot(pods: &[Pod], nodes: &[Node]) -> Snapshot {
    let mut out = Snapshot {
        nodes: nodes.iter().map(node_info).collect(),
        ..Snapshot::default()
    };
    for pod in pods.iter().filter(|p| is_unschedulable(p)) {
        match pod_from_json(pod) {
            Ok(p) => out.pending.push(p),
            Err(e) => out.unreadable.push(e),
        }
    }
    out
}

/// Lists pending pods and nodes (two calls: `GET /api/v1/pods?fieldSelector=…`
/// and `GET /api/v1/nodes`).
pub async fn list(client: &kube::Client) -> Result<Snapshot, kube::Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let pods = pods
        .list(&ListParams::default().fields(PENDING_POD_FIELDS))
        .await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let nodes = nodes.list(&ListParams::default()).await?;
    Ok(snapshot(&pods.items, &nodes.items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    fn pending(name: &str, condition: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]},
            "status": {"phase": "Pending", "conditions": [condition]}
        }))
    }

    #[rstest]
    #[case(json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}), true)]
    #[case(json!({"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}), false)]
    #[case(json!({"type": "PodScheduled", "status": "True"}), false)]
    #[case(json!({"type": "Ready", "status": "False", "reason": "Unschedulable"}), false)]
    fn unschedulable_condition(#[case] condition: serde_json::Value, #[case] expected: bool) {
        assert_eq!(is_unschedulable(&pending("p", condition)), expected);
    }

    #[rstest]
    #[case("aws:///us-east-1a/i-0123456789abcdef0", Some("i-0123456789abcdef0"))]
    #[case("aws:///i-abc", Some("i-abc"))]
    #[case("gce://project/zone/name", None)]
    #[case("aws:///us-east-1a/fargate-ip-10-0-0-1", None)]
    #[case("", None)]
    fn provider_ids(#[case] provider: &str, #[case] expected: Option<&str>) {
        assert_eq!(instance_id(provider).as_deref(), expected);
    }

    #[test]
    fn snapshot_keeps_unschedulable_pods_and_reports_bad_ones() {
        let unschedulable =
            json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"});
        let mut bad = pending("bad", unschedulable.clone());
        bad.spec.as_mut().unwrap().containers[0].resources =
            Some(serde_json::from_value(json!({"requests": {"cpu": "fast"}})).unwrap());
        let pods = vec![
            pending("a", unschedulable.clone()),
            pending(
                "gated",
                json!({"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}),
            ),
            bad,
        ];
        let nodes: Vec<Node> = vec![
            serde_json::from_value(json!({
                "metadata": {"name": "n1"},
                "spec": {"providerID": "aws:///us-east-1a/i-1"},
                "status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"}}
            }))
            .unwrap(),
            serde_json::from_value(json!({"metadata": {"name": "n2"}})).unwrap(),
        ];
        let s = snapshot(&pods, &nodes);
        assert_eq!(s.pending.len(), 1);
        assert_eq!(s.pending[0].name, "shop/a");
        assert_eq!(s.unreadable.len(), 1);
        assert!(
            s.unreadable[0].to_string().contains("shop/bad"),
            "{}",
            s.unreadable[0]
        );
        assert_eq!(s.capacity(), Resources::new(4000, 16 << 30));
        assert_eq!(s.by_instance()["i-1"].name, "n1");
        assert_eq!(s.nodes[1].instance_id, None);
    }
}
