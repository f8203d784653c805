//! `POST /mutate` end to end through the router, with AdmissionReviews as
//! kube-apiserver sends them (`tests/fixtures/*.json`) and the cluster state
//! of `tests/fixtures/cluster.yaml` in the index. Patches are applied to the
//! original pod (RFC 6902 `add`) and the result read back as a Pod.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::Router;
use common::{app_with, apply_patch, cluster_index, decode_patch, fixture, post};
use k8s_openapi::api::core::v1::Pod;
use prometheus_client::registry::Registry;
use tailor_admission_webhook::placement::PlacementConfig;

fn app(placement: PlacementConfig) -> (Router, Registry) {
    app_with(cluster_index(), placement)
}

fn patched_pod(fixture_name: &str, response: &serde_json::Value) -> Pod {
    let review: serde_json::Value = serde_json::from_str(&fixture(fixture_name)).unwrap();
    let object = review["request"]["object"].clone();
    serde_json::from_value(apply_patch(object, &decode_patch(response))).unwrap()
}

fn quantity(pod: &Pod, container: usize, field: &str, resource: &str) -> Option<String> {
    let c = &pod.spec.as_ref().unwrap().containers[container];
    let r = c.resources.as_ref()?;
    let list = if field == "requests" {
        &r.requests
    } else {
        &r.limits
    };
    list.as_ref()?.get(resource).map(|q| q.0.clone())
}

#[tokio::test]
async fn deployment_pod_gets_the_oldest_vpa_recommendation_capped_by_policy() {
    let (app, registry) = app(PlacementConfig::default());
    let (status, response) = post(&app, fixture("pod-create-deployment.json")).await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(response["kind"], "AdmissionReview");
    assert_eq!(
        response["response"]["uid"],
        "3f8c2a71-5d0e-4b8e-9a51-8d7e6c1f2b90"
    );
    assert_eq!(response["response"]["allowed"], true);

    let pod = patched_pod("pod-create-deployment.json", &response);
    // app: cpu 250m (limit keeps 2× ratio → 500m); memory 300Mi raised to
    // the policy's minAllowed 320Mi (limit keeps 2× → 640Mi).
    assert_eq!(
        quantity(&pod, 0, "requests", "cpu").as_deref(),
        Some("250m")
    );
    assert_eq!(
        quantity(&pod, 0, "requests", "memory").as_deref(),
        Some("335544320")
    );
    assert_eq!(quantity(&pod, 0, "limits", "cpu").as_deref(), Some("500m"));
    assert_eq!(
        quantity(&pod, 0, "limits", "memory").as_deref(),
        Some("671088640")
    );
    // log-shipper had `resources: {}`: requests only, no limits invented.
    assert_eq!(quantity(&pod, 1, "requests", "cpu").as_deref(), Some("50m"));
    assert_eq!(
        quantity(&pod, 1, "requests", "memory").as_deref(),
        Some("67108864")
    );
    assert_eq!(quantity(&pod, 1, "limits", "cpu"), None);
    // Everything else is untouched.
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.tolerations.as_ref().unwrap().len(), 2);
    assert!(spec.affinity.is_none());
    let annotations = pod.metadata.annotations.unwrap();
    assert_eq!(annotations["vpaObservedContainers"], "app, log-shipper");
    let updates = &annotations["vpaUpdates"];
    assert!(
        updates.starts_with("Pod resources updated by web: container 0: "),
        "{updates}"
    );
    assert!(updates.contains("memory capped to minAllowed"), "{updates}");
    assert!(
        updates.contains("; container 1: cpu request, memory request"),
        "{updates}"
    );

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("tailor_webhook_admission_requests_total{outcome=\"Patched\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn cronjob_pod_gets_requests_only_and_spot_placement_when_enabled() {
    let placement = PlacementConfig {
        enabled: true,
        ..PlacementConfig::default()
    };
    let (app, registry) = app(placement);
    let (status, response) = post(&app, fixture("pod-create-job.json")).await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(
        response["response"]["uid"],
        "e4d3c2b1-a0f9-4e8d-b7c6-a5f4e3d2c1b0"
    );
    let pod = patched_pod("pod-create-job.json", &response);
    assert_eq!(
        quantity(&pod, 0, "requests", "cpu").as_deref(),
        Some("500m")
    );
    assert_eq!(
        quantity(&pod, 0, "requests", "memory").as_deref(),
        Some("2147483648")
    );
    assert_eq!(quantity(&pod, 0, "limits", "cpu"), None);
    let spec = pod.spec.unwrap();
    let tolerations = spec.tolerations.unwrap();
    let keys: Vec<_> = tolerations.iter().map(|t| t.key.clone().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
            "karpenter.sh/capacity-type",
            "eks.amazonaws.com/capacityType"
        ]
    );
    let preferred = spec
        .affinity
        .unwrap()
        .node_affinity
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .unwrap();
    assert_eq!(preferred.len(), 2);
    assert_eq!(
        preferred[0].preference.match_expressions.as_ref().unwrap()[0].values,
        Some(vec!["spot".to_owned()])
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("tailor_webhook_placements_total 1"), "{text}");
}

#[tokio::test]
async fn cronjob_pod_gets_no_placement_by_default() {
    let (app, _) = app(PlacementConfig::default());
    let (_, response) = post(&app, fixture("pod-create-job.json")).await;
    let patch = decode_patch(&response);
    assert!(
        patch.iter().all(|op| op["path"]
            .as_str()
            .unwrap()
            .starts_with("/spec/containers/")
            || op["path"]
                .as_str()
                .unwrap()
                .starts_with("/metadata/annotations")),
        "{patch:?}"
    );
}

#[tokio::test]
async fn pods_without_vpa_and_other_requests_are_allowed_unchanged() {
    let (app, registry) = app(PlacementConfig::default());
    for (name, uid) in [
        (
            "pod-create-bare.json",
            "0a9b8c7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d",
        ),
        ("pod-update.json", "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e"),
        ("pod-binding.json", "a9b8c7d6-e5f4-4a3b-9c2d-1e0f9a8b7c6d"),
    ] {
        let (status, response) = post(&app, fixture(name)).await;
        assert_eq!(status, http::StatusCode::OK, "{name}");
        assert_eq!(
            response,
            serde_json::json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {"uid": uid, "allowed": true}
            }),
            "{name}"
        );
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("outcome=\"NoMatch\"} 1"), "{text}");
    assert!(text.contains("outcome=\"Ignored\"} 2"), "{text}");
}

#[tokio::test]
async fn truncated_reviews_are_400_with_a_status() {
    let (app, _) = app(PlacementConfig::default());
    let body = fixture("pod-create-deployment.json");
    for cut in [0, 1, 40, body.len() / 3, body.len() / 2, body.len() - 2] {
        let (status, response) = post(&app, body[..cut].to_owned()).await;
        assert_eq!(status, http::StatusCode::BAD_REQUEST, "cut at {cut}");
        assert_eq!(response["kind"], "Status");
        assert_eq!(response["reason"], "BadRequest");
        assert!(!response["message"].as_str().unwrap().is_empty());
    }
}
