//! Custom `targetRef` kinds: a VPA naming an Argo Rollout (a custom kind
//! with a `/scale` subresource) applies to the Rollout's pods once the
//! background refresh has read its selector. The refresh's requests are
//! asserted exactly against the scripted Kubernetes API (discovery, then
//! `/scale`; nothing while fresh), and the pod's AdmissionReview, as
//! kube-apiserver sends it, gets its patch through the router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{app_with, apply_patch, decode_patch, fixture, post};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::RwLock;
use tailor_admission_webhook::index::{Index, RecommenderFilter};
use tailor_admission_webhook::placement::PlacementConfig;
use tailor_admission_webhook::scale::{Refreshed, refresh};
use tailor_runtime::scale::{DEFAULT_MAX_AGE_SECS, ScaleTargets};
use tailor_testkit::kube_mock::{Exchange, KubeMock};

const NOW: i64 = 1_764_000_000;
const DISCOVERY: &str = "/apis/argoproj.io/v1alpha1";
const SCALE: &str = "/apis/argoproj.io/v1alpha1/namespaces/payments/rollouts/checkout/scale";

/// What `GET /apis/argoproj.io/v1alpha1` answers with Argo Rollouts installed.
fn argo_resources() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "argoproj.io/v1alpha1",
        "resources": [
            {"name": "rollouts", "singularName": "rollout", "namespaced": true, "kind": "Rollout",
             "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
             "shortNames": ["ro"], "storageVersionHash": "dNcBCK9jDZg="},
            {"name": "rollouts/status", "singularName": "", "namespaced": true, "kind": "Rollout",
             "verbs": ["get", "patch", "update"]},
            {"name": "rollouts/scale", "singularName": "", "namespaced": true, "group": "autoscaling",
             "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]},
            {"name": "analysisruns", "singularName": "analysisrun", "namespaced": true, "kind": "AnalysisRun",
             "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]}
        ]
    })
}

fn rollout_scale() -> Value {
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": "checkout", "namespace": "payments", "uid": "8c7b6a59-4e3d-4c2b-9a1f-0e9d8c7b6a5f",
                     "resourceVersion": "48121", "creationTimestamp": "2026-11-02T09:00:00Z"},
        "spec": {"replicas": 4},
        "status": {"replicas": 4, "selector": "app=checkout"}
    })
}

/// The Rollout's ReplicaSet (owned by the Rollout) and the VPA naming the
/// Rollout, as the watches deliver them.
fn index() -> Index {
    let mut index = Index::new(RecommenderFilter::Any);
    index
        .apply_object(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "checkout-5b7c9d6f8", "namespace": "payments",
                "uid": "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9",
                "labels": {"app": "checkout", "rollouts-pod-template-hash": "5b7c9d6f8"},
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "checkout",
                    "uid": "8c7b6a59-4e3d-4c2b-9a1f-0e9d8c7b6a5f", "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": 4,
                "selector": {"matchLabels": {"app": "checkout", "rollouts-pod-template-hash": "5b7c9d6f8"}},
                "template": {"metadata": {"labels": {"app": "checkout", "rollouts-pod-template-hash": "5b7c9d6f8"}},
                    "spec": {"containers": [{"name": "checkout", "image": "registry.example.com/payments/checkout:3.8.1"}]}}}
        }))
        .unwrap();
    index
        .apply_object(json!({
            "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": "checkout", "namespace": "payments", "creationTimestamp": "2026-11-02T09:05:00Z"},
            "spec": {"targetRef": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "checkout"},
                     "updatePolicy": {"updateMode": "Initial"}},
            "status": {"recommendation": {"containerRecommendations": [{
                "containerName": "checkout",
                "lowerBound": {"cpu": "150m", "memory": "300Mi"},
                "target": {"cpu": "300m", "memory": "384Mi"},
                "uncappedTarget": {"cpu": "300m", "memory": "384Mi"},
                "upperBound": {"cpu": "900m", "memory": "1Gi"}}]}}
        }))
        .unwrap();
    index
}

fn requests(pod: &Pod) -> (String, String, String) {
    let r = pod.spec.as_ref().unwrap().containers[0]
        .resources
        .as_ref()
        .unwrap();
    let requests = r.requests.as_ref().unwrap();
    (
        requests["cpu"].0.clone(),
        requests["memory"].0.clone(),
        r.limits.as_ref().unwrap()["memory"].0.clone(),
    )
}

#[tokio::test]
async fn a_rollout_pod_gets_its_vpa_patch_once_the_scale_selector_is_read() {
    let index = RwLock::new(index());
    let (app, _) = app_with(index.read().unwrap().clone(), PlacementConfig::default());
    // Not read yet: the Rollout is an unknown custom kind, the pod's top
    // controller is its ReplicaSet, no VPA names that: admitted unchanged.
    let (status, response) = post(&app, fixture("pod-create-rollout.json")).await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(response["response"]["allowed"], true);
    assert!(response["response"].get("patch").is_none(), "{response}");

    let scales = ScaleTargets::default();
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::get(DISCOVERY).respond(200, argo_resources()),
        Exchange::get(SCALE).respond(200, rollout_scale()),
    ]);
    let refreshed = refresh(&client, &index, &scales, NOW).await;
    api.verify().await;
    assert_eq!(
        refreshed,
        Refreshed {
            known: 1,
            failed: BTreeMap::new()
        }
    );

    let (app, _) = app_with(index.read().unwrap().clone(), PlacementConfig::default());
    let (status, response) = post(&app, fixture("pod-create-rollout.json")).await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(
        response["response"]["uid"],
        "7a1d5c2e-93b4-4f0a-8c6e-2d9b1e4f7a30"
    );
    let review: Value = serde_json::from_str(&fixture("pod-create-rollout.json")).unwrap();
    let pod: Pod = serde_json::from_value(apply_patch(
        review["request"]["object"].clone(),
        &decode_patch(&response),
    ))
    .unwrap();
    // The target; the memory limit keeps its 2× ratio to the request.
    assert_eq!(
        requests(&pod),
        ("300m".into(), "402653184".into(), "805306368".into())
    );
    let annotations = pod.metadata.annotations.unwrap();
    assert_eq!(annotations["vpaObservedContainers"], "checkout");
    assert!(
        annotations["vpaUpdates"].starts_with("Pod resources updated by checkout: container 0: "),
        "{annotations:?}"
    );

    // Within the maximum age (a VPA change wakes the refresh): no request.
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![]);
    let again = refresh(&client, &index, &scales, NOW + DEFAULT_MAX_AGE_SECS - 1).await;
    api.verify().await;
    assert_eq!(again.known, 1);
}

#[tokio::test]
async fn an_unreadable_scale_is_reported_and_its_pods_stay_unmatched() {
    let index = RwLock::new(index());
    let scales = ScaleTargets::default();
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::get(DISCOVERY).respond(200, argo_resources()),
        Exchange::get(SCALE).respond_status(
            403,
            "Forbidden",
            "rollouts.argoproj.io \"checkout\" is forbidden: User \"system:serviceaccount:tailor-system:tailor-admission-webhook\" cannot get resource \"rollouts/scale\" in API group \"argoproj.io\" in the namespace \"payments\"",
        ),
    ]);
    let refreshed = refresh(&client, &index, &scales, NOW).await;
    api.verify().await;
    assert_eq!(refreshed.known, 0);
    let why = &refreshed.failed["payments/Rollout/checkout"];
    assert!(
        why.contains("rollouts") && why.contains("checkout") && why.contains("forbidden"),
        "{why}"
    );
    let (app, _) = app_with(index.read().unwrap().clone(), PlacementConfig::default());
    let (_, response) = post(&app, fixture("pod-create-rollout.json")).await;
    assert_eq!(response["response"]["allowed"], true);
    assert!(response["response"].get("patch").is_none(), "{response}");
}
