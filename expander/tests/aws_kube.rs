//! The AWS mode's Kubernetes calls, against the scripted API server: exactly
//! one pod list (unbound, not finished) and one node list per loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use tailor_core::resources::Resources;
use tailor_expander::cluster;
use tailor_testkit::kube_mock::{Exchange, KubeMock};

const PODS: &str = "/api/v1/pods?fieldSelector=spec.nodeName%3D%2Cstatus.phase%21%3DSucceeded%2Cstatus.phase%21%3DFailed";

fn pod(name: &str, reason: &str, priority: i32) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "priority": priority,
            "nodeSelector": {"pool": "general"},
            "containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "1500m", "memory": "2Gi"}}}]
        },
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": reason}
        ]}
    })
}

#[tokio::test]
async fn lists_unschedulable_pods_and_nodes() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::get(PODS).respond(
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": [
                pod("web-0", "Unschedulable", 0),
                pod("gated", "SchedulingGated", 0),
                pod("filler", "Unschedulable", -20),
            ]}),
        ),
        Exchange::get("/api/v1/nodes").respond(
            200,
            json!({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "7"}, "items": [
                {"metadata": {"name": "ip-10-0-0-1"}, "spec": {"providerID": "aws:///us-east-1a/i-0abc"},
                 "status": {"capacity": {"cpu": "4", "memory": "16Gi", "pods": "58"}}},
                {"metadata": {"name": "ip-10-0-0-2"}, "spec": {"providerID": "aws:///us-east-1b/i-0def"},
                 "status": {"capacity": {"cpu": "2", "memory": "8Gi"}}}
            ]}),
        ),
    ]);
    let snapshot = cluster::list(&client).await.unwrap();
    api.verify().await;
    let names: Vec<&str> = snapshot.pending.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["shop/web-0", "shop/filler"]);
    assert_eq!(snapshot.pending[1].priority, -20);
    assert_eq!(snapshot.pending[0].node_selector["pool"], "general");
    assert_eq!(snapshot.capacity(), Resources::new(6000, 24 << 30));
    assert_eq!(
        snapshot
            .by_instance()
            .keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        ["i-0abc", "i-0def"].into_iter().collect()
    );
}

#[tokio::test]
async fn a_refused_list_is_an_error_and_nothing_else_is_called() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![Exchange::get(PODS).respond_status(
        403,
        "Forbidden",
        "pods is forbidden: User \"system:serviceaccount:tailor-system:tailor-expander\" cannot list resource \"pods\"",
    )]);
    let err = cluster::list(&client).await.unwrap_err();
    api.verify().await;
    assert!(err.to_string().contains("forbidden"), "{err}");
}
