#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The updater's API calls against the scripted Kubernetes API
//! (`tailor_testkit::kube_mock`): the exact eviction and resize requests, the
//! Events on the pod and the VPA, a PodDisruptionBudget's 429, dry run making
//! no write, the resize-to-eviction fallback, an API error mid-loop, the rate
//! limit, a lost lease; and one loop from cache contents to requests.

use http::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;
use tailor_core::admission::PatchOperation;
use tailor_core::update::{ResizeState, UpdateReason};
use tailor_runtime::scale::ScaleTargets;
use tailor_testkit::kube_mock::{Exchange, KubeMock, Received};
use tailor_updater::act::{ActReport, reason};
use tailor_updater::model::PodEntry;
use tailor_updater::step::{ActionKind, LimitRangeIndex, PlannedAction, ResizeTracker};

mod common;

use common::{EVENTS, NOW, actor, apply, event, far};

fn evict_action(pod: &str, fallback_from: Option<ResizeState>) -> PlannedAction {
    PlannedAction {
        namespace: "shop".into(),
        pod: pod.into(),
        pod_uid: format!("uid-{pod}"),
        vpa: "web".into(),
        vpa_uid: "uid-web".into(),
        kind: ActionKind::Evict { fallback_from },
        reason: UpdateReason::OutsideRecommendedRange,
        message: "a request is outside the recommended range (relative change 9.000)".into(),
    }
}

fn resize_ops() -> Vec<PatchOperation> {
    serde_json::from_value(json!([
        {"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "1"},
        {"op": "add", "path": "/spec/containers/0/resources/limits/cpu", "value": "2"},
    ]))
    .unwrap()
}

fn resize_action(pod: &str) -> PlannedAction {
    PlannedAction {
        kind: ActionKind::Resize {
            patch: resize_ops(),
        },
        ..evict_action(pod, None)
    }
}

fn eviction(pod: &str) -> Exchange {
    Exchange::post(&format!("/api/v1/namespaces/shop/pods/{pod}/eviction"))
        .content_type("application/json")
        .body(json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": "shop"},
        }))
}

fn evicted(pod: &str) -> Exchange {
    eviction(pod).respond(
        201,
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": "shop"}}),
    )
}

fn resize(pod: &str) -> Exchange {
    Exchange::patch(&format!("/api/v1/namespaces/shop/pods/{pod}/resize"))
        .content_type("application/json-patch+json")
        .body(serde_json::to_value(resize_ops()).unwrap())
}

/// The Event body's reason, regarding (kind, name) and note.
fn event_of(r: &Received) -> (String, String, String, String) {
    let b = r.body.as_ref().unwrap();
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path, EVENTS);
    assert_eq!(b["type"], "Normal");
    assert_eq!(b["reportingController"], "tailor-updater");
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&b["reason"]),
        s(&b["regarding"]["kind"]),
        s(&b["regarding"]["name"]),
        s(&b["note"]),
    )
}

#[tokio::test]
async fn evicts_through_policy_v1_with_an_event_on_the_pod_and_the_vpa() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![evicted("web-0"), event(), event()]);
    let mut a = actor(&client, false, -1.0);
    let report = apply(
        &mut a,
        &[evict_action("web-0", None)],
        &mut ResizeTracker::default(),
    )
    .await;
    let received = api.verify().await;
    assert_eq!(report.evicted, 1);
    assert!(report.failures.is_empty());
    let (why, kind, name, note) = event_of(&received[1]);
    assert_eq!(
        (why.as_str(), kind.as_str(), name.as_str()),
        (reason::EVICTED, "Pod", "web-0")
    );
    assert!(
        note.contains("VPA web") && note.contains("outside the recommended range"),
        "{note}"
    );
    assert_eq!(
        received[1].body.as_ref().unwrap()["regarding"]["uid"],
        "uid-web-0"
    );
    let (why, kind, name, note) = event_of(&received[2]);
    assert_eq!(
        (why.as_str(), kind.as_str(), name.as_str()),
        (reason::EVICTED_POD, "VerticalPodAutoscaler", "web")
    );
    assert!(note.contains("web-0"), "{note}");
}

#[tokio::test]
async fn resizes_through_the_resize_subresource_and_times_the_resize() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        resize("web-0").respond(
            200,
            json!({"metadata": {"name": "web-0", "namespace": "shop"}}),
        ),
        event(),
        event(),
    ]);
    let mut a = actor(&client, false, -1.0);
    let mut tracker = ResizeTracker::default();
    let report = apply(&mut a, &[resize_action("web-0")], &mut tracker).await;
    let received = api.verify().await;
    assert_eq!((report.resized, report.evicted), (1, 0));
    assert_eq!(tracker.len(), 1);
    assert_eq!(event_of(&received[1]).0, reason::RESIZED);
    let (why, kind, ..) = event_of(&received[2]);
    assert_eq!(
        (why.as_str(), kind.as_str()),
        (reason::RESIZED_POD, "VerticalPodAutoscaler")
    );
}

#[tokio::test]
async fn a_disruption_budget_429_is_a_normal_not_now_and_the_loop_goes_on() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        eviction("web-0").respond_status(
            429,
            "TooManyRequests",
            "Cannot evict pod as it would violate the pod's disruption budget.",
        ),
        evicted("web-1"),
        event(),
        event(),
    ]);
    let mut a = actor(&client, false, -1.0);
    let actions = [evict_action("web-0", None), evict_action("web-1", None)];
    let report = apply(&mut a, &actions, &mut ResizeTracker::default()).await;
    api.verify().await;
    assert_eq!((report.refused, report.evicted), (1, 1));
    assert!(report.failures.is_empty(), "{report:?}");
}

#[tokio::test]
async fn dry_run_emits_events_and_writes_nothing_else() {
    let (client, mock) = KubeMock::pair();
    // Only Events: no eviction, no resize request.
    let api = mock.run(vec![event(), event(), event(), event()]);
    let mut a = actor(&client, true, -1.0);
    let mut tracker = ResizeTracker::default();
    let actions = [resize_action("web-0"), evict_action("web-1", None)];
    let report = apply(&mut a, &actions, &mut tracker).await;
    let received = api.verify().await;
    assert_eq!((report.resized, report.evicted), (1, 1));
    assert!(tracker.is_empty(), "a dry run starts no resize clock");
    let reasons: Vec<String> = received.iter().map(|r| event_of(r).0).collect();
    assert_eq!(
        reasons,
        [
            reason::WOULD_RESIZE,
            reason::WOULD_RESIZE,
            reason::WOULD_EVICT,
            reason::WOULD_EVICT
        ]
    );
    assert!(
        event_of(&received[0])
            .3
            .starts_with("Dry run: would resize")
    );
}

#[tokio::test]
async fn a_refused_resize_falls_back_to_eviction() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        resize("web-0").respond_status(422, "Invalid", "Pod \"web-0\" is invalid: spec: Forbidden"),
        evicted("web-0"),
        event(),
        event(),
    ]);
    let mut a = actor(&client, false, -1.0);
    let report = apply(
        &mut a,
        &[resize_action("web-0")],
        &mut ResizeTracker::default(),
    )
    .await;
    let received = api.verify().await;
    assert_eq!((report.resized, report.evicted), (0, 1));
    assert_eq!(report.failures.get("resize"), Some(&1));
    assert_eq!(report.fallbacks.get("api_error"), Some(&1));
    let note = event_of(&received[2]).3;
    assert!(note.contains("in-place resize failed"), "{note}");
}

#[tokio::test]
async fn an_overdue_resize_is_evicted_and_the_event_says_why() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![evicted("web-0"), event(), event()]);
    let mut a = actor(&client, false, -1.0);
    let actions = [evict_action("web-0", Some(ResizeState::Infeasible))];
    let report = apply(&mut a, &actions, &mut ResizeTracker::default()).await;
    let received = api.verify().await;
    assert_eq!(report.fallbacks.get("infeasible"), Some(&1));
    assert!(event_of(&received[1]).3.contains("Infeasible"));
}

#[tokio::test]
async fn an_api_error_mid_loop_is_counted_and_the_rest_goes_on() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        eviction("web-0").respond_status(500, "InternalError", "etcdserver: request timed out"),
        eviction("web-1").respond_status(404, "NotFound", "pods \"web-1\" not found"),
        evicted("web-2"),
        event(),
        event(),
    ]);
    let mut a = actor(&client, false, -1.0);
    let actions = [
        evict_action("web-0", None),
        evict_action("web-1", None),
        evict_action("web-2", None),
    ];
    let report = apply(&mut a, &actions, &mut ResizeTracker::default()).await;
    api.verify().await;
    assert_eq!(report.evicted, 1);
    assert_eq!(report.failures.get("eviction"), Some(&1));
    assert_eq!(report.skipped.get("pod_gone"), Some(&1));
}

#[tokio::test]
async fn the_rate_limit_defers_what_does_not_fit_in_the_loop() {
    let (client, mock) = KubeMock::pair();
    // One eviction per 1,000 s, burst 1: the second cannot happen within
    // the loop's minute, so it is not even attempted.
    let api = mock.run(vec![evicted("web-0"), event(), event()]);
    let mut a = actor(&client, false, 0.001);
    let actions = [evict_action("web-0", None), evict_action("web-1", None)];
    let report = apply(&mut a, &actions, &mut ResizeTracker::default()).await;
    api.verify().await;
    assert_eq!(report.evicted, 1);
    assert_eq!(report.skipped.get("rate_limited"), Some(&1));
}

#[tokio::test]
async fn nothing_is_done_without_the_lease_or_past_the_deadline() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![]);
    let mut a = actor(&client, false, -1.0);
    let mut tracker = ResizeTracker::default();
    let actions = [evict_action("web-0", None)];
    let report = a.apply(&actions, &mut tracker, NOW, far(), &|| false).await;
    assert_eq!(report, ActReport::default());
    let report = a
        .apply(&actions, &mut tracker, NOW, Instant::now(), &|| true)
        .await;
    assert_eq!(report.skipped.get("loop_deadline"), Some(&1));
    api.verify().await;
}

#[tokio::test]
async fn one_loop_from_cache_contents_to_requests() {
    // Deployment web (3 replicas) → ReplicaSet web-1 → 3 pods requesting
    // 100m; the VPA (Recreate) wants 1 CPU with lower bound 500m: every pod
    // is out of range, int(3 × 0.5) = 1 may go now.
    let index = common::deployment("web", 3);
    let pods: Vec<Arc<PodEntry>> = (0..3)
        .map(|i| {
            let p = serde_json::from_value(json!({
                "metadata": {"name": format!("web-{i}"), "namespace": "shop", "uid": format!("uid-web-{i}"),
                    "labels": {"app": "web"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "r", "controller": true}]},
                "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "100m"}}}]},
                "status": {"phase": "Running", "startTime": "2027-01-14T08:00:00Z"}
            }))
            .unwrap();
            Arc::new(PodEntry::from_pod(&p))
        })
        .collect();
    let vpas = [Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop", "uid": "uid-web"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "updatePolicy": {"updateMode": "Recreate"}},
            "status": {"recommendation": {"containerRecommendations": [{"containerName": "app",
                "target": {"cpu": "1"}, "lowerBound": {"cpu": "500m"}, "upperBound": {"cpu": "2"}}]}}
        }))
        .unwrap(),
    )];
    let mut tracker = ResizeTracker::default();
    let out = common::run_step(
        &vpas,
        &pods,
        &index,
        &LimitRangeIndex::default(),
        &ScaleTargets::default(),
        &mut tracker,
    );
    assert_eq!(out.actions.len(), 1);
    let pod = out.actions[0].pod.clone();
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![evicted(&pod), event(), event()]);
    let mut a = actor(&client, false, -1.0);
    let report = apply(&mut a, &out.actions, &mut tracker).await;
    api.verify().await;
    assert_eq!(report.evicted, 1);
}

#[test]
fn the_deployment_args_parse_with_the_cli() {
    use clap::Parser as _;
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/base/updater/deployment.yaml"
    ))
    .unwrap();
    let d: Value = serde_yaml::from_str(&text).unwrap();
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    let mut argv = vec!["tailor-updater".to_owned()];
    for a in container["args"].as_array().unwrap() {
        argv.push(a.as_str().unwrap().to_owned());
    }
    let cli = tailor_updater::run::Cli::try_parse_from(&argv).unwrap();
    let c = cli.step_config().unwrap();
    assert_eq!(c.updater, tailor_core::update::UpdaterConfig::default());
    assert!(!cli.dry_run);
}
