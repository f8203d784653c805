//! Builders the updater's API tests share. Each test file uses a part of
//! them, hence the `dead_code` allowance.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::runtime::events::{Recorder, Reporter};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tailor_api::VerticalPodAutoscaler;
use tailor_runtime::scale::ScaleTargets;
use tailor_testkit::kube_mock::Exchange;
use tailor_updater::act::{ActReport, Actor, ActorConfig};
use tailor_updater::model::{Controlled, ControllerIndex, PodEntry};
use tailor_updater::step::{
    self, LimitRangeIndex, PlannedAction, ResizeTracker, Snapshot, StepConfig, StepOutput,
};

/// The clock of every test (Unix seconds).
pub const NOW: i64 = 1_800_000_000;
/// Where Events of namespace `shop` are created.
pub const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

/// An actor against `client`, one call at a time, 10 s per call.
pub fn actor(client: &kube::Client, dry_run: bool, rate_limit: f64) -> Actor {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "tailor-updater".into(),
            instance: Some("tailor-updater-0".into()),
        },
    );
    Actor::new(
        client.clone(),
        recorder,
        ActorConfig {
            dry_run,
            rate_limit,
            rate_burst: 1,
            call_timeout: Duration::from_secs(10),
        },
    )
}

/// An Event created in `shop`, whatever it says.
pub fn event() -> Exchange {
    Exchange::post(EVENTS).any_body().respond(
        201,
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "shop"}}),
    )
}

/// A loop deadline that is never reached.
pub fn far() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

/// Applies `actions` as the leader, with no deadline pressure.
pub async fn apply(
    actor: &mut Actor,
    actions: &[PlannedAction],
    tracker: &mut ResizeTracker,
) -> ActReport {
    actor.apply(actions, tracker, NOW, far(), &|| true).await
}

/// Deployment `name` (`replicas`) → ReplicaSet `<name>-1`, in `shop`,
/// selecting `app: <name>`.
pub fn deployment(name: &str, replicas: i32) -> ControllerIndex {
    let mut index = ControllerIndex::new();
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {}}
    }))
    .unwrap();
    index.insert(("shop".into(), "Deployment".into(), name.into()), d.entry());
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-1"), "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "uid": "d", "controller": true}]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": {}}
    }))
    .unwrap();
    index.insert(
        ("shop".into(), "ReplicaSet".into(), format!("{name}-1")),
        rs.entry(),
    );
    index
}

/// One step at [`NOW`] with the default configuration.
pub fn run_step(
    vpas: &[Arc<VerticalPodAutoscaler>],
    pods: &[Arc<PodEntry>],
    controllers: &ControllerIndex,
    limit_ranges: &LimitRangeIndex,
    scale: &ScaleTargets,
    tracker: &mut ResizeTracker,
) -> StepOutput {
    step::step(
        Snapshot {
            vpas,
            pods,
            controllers,
            limit_ranges,
            scale,
        },
        &StepConfig::default(),
        tracker,
        NOW,
    )
}
