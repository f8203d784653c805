#![allow(clippy::unwrap_used, clippy::expect_used)]
//! What the updater reads beyond its watches, against the scripted
//! Kubernetes API (`tailor_testkit::kube_mock`): a namespace's LimitRange
//! caps the in-place resize patch exactly as the admission webhook caps a
//! new pod, and a custom controller (a kind the updater does not watch) is
//! read through API discovery and its `/scale` subresource, whose
//! `spec.replicas` sizes the disruption budget.

use k8s_openapi::api::core::v1::LimitRange;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use tailor_api::VerticalPodAutoscaler;
use tailor_runtime::scale::{CrossVersionObjectReferenceKey, DEFAULT_MAX_AGE_SECS, ScaleTargets};
use tailor_testkit::kube_mock::{Exchange, KubeMock};
use tailor_updater::model::{ControllerIndex, PodEntry};
use tailor_updater::step::{
    self, ActionKind, LimitRangeIndex, ResizeTracker, SKIP_CUSTOM_OWNER_UNREADABLE,
    SKIP_LIMIT_RANGE_INVALID, StepConfig,
};

mod common;

use common::{actor, apply, event, run_step};

fn vpa(name: &str, api_version: &str, kind: &str, mode: &str) -> Arc<VerticalPodAutoscaler> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"targetRef": {"apiVersion": api_version, "kind": kind, "name": name},
                     "updatePolicy": {"updateMode": mode}},
            "status": {"recommendation": {"containerRecommendations": [{"containerName": "app",
                "target": {"cpu": "1", "memory": "100Mi"},
                "lowerBound": {"cpu": "500m", "memory": "50Mi"},
                "upperBound": {"cpu": "2", "memory": "200Mi"}}]}}
        }))
        .unwrap(),
    )
}

/// A running pod of `app`, owned by `owner` (apiVersion, kind, name),
/// requesting 100m CPU (limit 200m) and 100Mi.
fn pod(name: &str, app: &str, owner: (&str, &str, &str)) -> Arc<PodEntry> {
    let p = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "labels": {"app": app},
            "ownerReferences": [{"apiVersion": owner.0, "kind": owner.1, "name": owner.2,
                "uid": "o", "controller": true}]},
        "spec": {"containers": [{"name": "app", "resources": {
            "requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"cpu": "200m"}}}]},
        "status": {"phase": "Running", "startTime": "2027-01-14T08:00:00Z"}
    }))
    .unwrap();
    Arc::new(PodEntry::from_pod(&p))
}

/// Deployment `web` (2 replicas) → ReplicaSet `web-1` → pods `web-0`, `web-1`.
fn web() -> (ControllerIndex, Vec<Arc<PodEntry>>) {
    let index = common::deployment("web", 2);
    let owner = ("apps/v1", "ReplicaSet", "web-1");
    (
        index,
        vec![pod("web-0", "web", owner), pod("web-1", "web", owner)],
    )
}

fn limit_range(limits: Value) -> LimitRangeIndex {
    let lr: LimitRange = serde_json::from_value(json!({
        "metadata": {"name": "limits", "namespace": "shop"},
        "spec": {"limits": limits}
    }))
    .unwrap();
    let mut index = LimitRangeIndex::default();
    index.apply(&lr);
    index
}

#[tokio::test]
async fn a_resize_under_a_limit_range_is_capped_exactly() {
    // The VPA wants 1 CPU; the namespace allows containers a limit of at
    // most 800m. The pod's limit is twice its request, so (as upstream) the
    // request may grow to 400m only, and the limit follows to 800m. Memory
    // has no limit and is not capped.
    let (index, pods) = web();
    let vpas = [vpa("web", "apps/v1", "Deployment", "InPlaceOrRecreate")];
    let limits = limit_range(json!([{"type": "Container", "max": {"cpu": "800m"}}]));
    let mut tracker = ResizeTracker::default();
    let out = run_step(
        &vpas,
        &pods,
        &index,
        &limits,
        &ScaleTargets::default(),
        &mut tracker,
    );
    assert_eq!(out.actions.len(), 1, "{out:?}");
    assert!(matches!(out.actions[0].kind, ActionKind::Resize { .. }));

    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::patch("/api/v1/namespaces/shop/pods/web-0/resize")
            .content_type("application/json-patch+json")
            .body(json!([
                {"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "400m"},
                {"op": "add", "path": "/spec/containers/0/resources/requests/memory", "value": "104857600"},
                {"op": "add", "path": "/spec/containers/0/resources/limits/cpu", "value": "800m"},
            ]))
            .respond(200, json!({"metadata": {"name": "web-0", "namespace": "shop"}})),
        event(),
        event(),
    ]);
    let report = apply(&mut actor(&client, false, -1.0), &out.actions, &mut tracker).await;
    api.verify().await;
    assert_eq!(report.resized, 1);
}

#[test]
fn a_limit_range_that_cannot_be_read_leaves_the_namespace_alone() {
    let (index, pods) = web();
    let vpas = [vpa("web", "apps/v1", "Deployment", "Recreate")];
    let limits = limit_range(json!([{"type": "Container", "max": {"cpu": "lots"}}]));
    let out = run_step(
        &vpas,
        &pods,
        &index,
        &limits,
        &ScaleTargets::default(),
        &mut ResizeTracker::default(),
    );
    assert!(out.actions.is_empty());
    assert_eq!(out.skipped.len(), 2);
    let s = &out.skipped[0];
    assert_eq!(s.reason, SKIP_LIMIT_RANGE_INVALID);
    assert!(
        s.message
            .contains("LimitRange shop/limits: spec.limits[0].max.cpu"),
        "{}",
        s.message
    );
}

/// `example.com/v1` serves Widgets, with a `/scale` subresource.
fn discovery() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "example.com/v1",
        "resources": [
            {"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget",
             "verbs": ["get", "list", "watch"]},
            {"name": "widgets/scale", "singularName": "", "namespaced": true, "group": "autoscaling",
             "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}
        ]
    })
}

fn scale_path(name: &str) -> String {
    format!("/apis/example.com/v1/namespaces/shop/widgets/{name}/scale")
}

#[tokio::test]
async fn a_custom_controller_is_read_through_scale_and_its_replicas_size_the_budget() {
    // Widget `w` owns four running pods directly and wants six replicas
    // (spec.replicas of its /scale): int(6 × 0.5) = 3 may be down, so with
    // two already missing only one pod may go now. Widget `denied` cannot
    // be read: its pods are skipped, with the API's reason.
    const WIDGET: &str = "example.com/v1";
    let pods: Vec<_> = (0..4)
        .map(|i| pod(&format!("w-{i}"), "w", (WIDGET, "Widget", "w")))
        .chain((0..2).map(|i| {
            pod(
                &format!("denied-{i}"),
                "denied",
                (WIDGET, "Widget", "denied"),
            )
        }))
        .collect();
    let vpas = [
        vpa("w", WIDGET, "Widget", "Recreate"),
        vpa("denied", WIDGET, "Widget", "Recreate"),
    ];
    let index = ControllerIndex::new();
    let config = StepConfig::default();

    let custom = step::custom_owners(&vpas, &pods, &index, &config);
    let key = |name: &str| {
        (
            "shop".to_owned(),
            CrossVersionObjectReferenceKey {
                api_version: Some(WIDGET.into()),
                kind: "Widget".into(),
                name: name.into(),
            },
        )
    };
    assert_eq!(custom, BTreeSet::from([key("denied"), key("w")]));

    let scale = ScaleTargets::default();
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::get("/apis/example.com/v1").respond(200, discovery()),
        Exchange::get(&scale_path("denied")).respond_status(
            403,
            "Forbidden",
            "widgets.example.com \"denied\" is forbidden: cannot get resource \"widgets/scale\"",
        ),
        Exchange::get(&scale_path("w")).respond(
            200,
            json!({"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": "w", "namespace": "shop"},
                "spec": {"replicas": 6}, "status": {"replicas": 4, "selector": "app=w"}}),
        ),
    ]);
    scale
        .refresh(&client, &custom, common::NOW, DEFAULT_MAX_AGE_SECS)
        .await;
    api.verify().await;

    let mut tracker = ResizeTracker::default();
    let out = run_step(
        &vpas,
        &pods,
        &index,
        &LimitRangeIndex::default(),
        &scale,
        &mut tracker,
    );
    assert_eq!(out.considered, 4);
    assert_eq!(out.actions.len(), 1, "{out:?}");
    assert_eq!(
        (out.actions[0].pod.as_str(), out.actions[0].vpa.as_str()),
        ("w-0", "w")
    );
    let mut skipped: Vec<_> = out
        .skipped
        .iter()
        .map(|s| (s.pod.as_str(), s.reason))
        .collect();
    skipped.sort_unstable();
    assert_eq!(
        skipped,
        [
            ("shop/denied-0", SKIP_CUSTOM_OWNER_UNREADABLE),
            ("shop/denied-1", SKIP_CUSTOM_OWNER_UNREADABLE),
            ("shop/w-1", "disruption_budget"),
            ("shop/w-2", "disruption_budget"),
            ("shop/w-3", "disruption_budget"),
        ]
    );
    let budget = out.skipped.iter().find(|s| s.pod == "shop/w-1").unwrap();
    assert!(
        budget
            .message
            .contains("Widget w used up (1 of 6 replicas, 4 running)"),
        "{}",
        budget.message
    );
    let denied = out
        .skipped
        .iter()
        .find(|s| s.pod == "shop/denied-0")
        .unwrap();
    assert!(
        denied.message.contains("Widget shop/denied")
            && denied
                .message
                .contains("cannot get resource \"widgets/scale\""),
        "{}",
        denied.message
    );

    // The one eviction goes out as for any controller.
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::post("/api/v1/namespaces/shop/pods/w-0/eviction")
            .content_type("application/json")
            .body(json!({"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "w-0", "namespace": "shop"}}))
            .respond(
                201,
                json!({"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": "w-0", "namespace": "shop"}}),
            ),
        event(),
        event(),
    ]);
    let report = apply(&mut actor(&client, false, -1.0), &out.actions, &mut tracker).await;
    api.verify().await;
    assert_eq!(report.evicted, 1);
}
