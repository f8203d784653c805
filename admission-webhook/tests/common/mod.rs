//! Helpers shared by the integration tests: fixtures and the cluster index.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt as _;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use tailor_admission_webhook::index::{Index, RecommenderFilter};
use tailor_admission_webhook::placement::PlacementConfig;
use tailor_admission_webhook::server::{AppState, DEFAULT_DEADLINE, Metrics, router};
use tower::ServiceExt as _;

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The index the watches would have built from `cluster.yaml`.
pub fn cluster_index() -> Index {
    let mut index = Index::new(RecommenderFilter::Any);
    for doc in serde_yaml::Deserializer::from_str(&fixture("cluster.yaml")) {
        let value = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        index
            .apply_object(value)
            .unwrap_or_else(|err| panic!("cluster.yaml: {err}"));
    }
    index
}

/// The router over `index`, and its metrics registry.
pub fn app_with(index: Index, placement: PlacementConfig) -> (Router, Registry) {
    let mut registry = Registry::with_prefix("tailor_webhook");
    let metrics = Metrics::register(&mut registry);
    let state = AppState {
        index: Arc::new(RwLock::new(index)),
        placement,
        metrics,
        deadline: DEFAULT_DEADLINE,
    };
    (router(Arc::new(state)), registry)
}

/// POSTs `body` to `/mutate`: the status and the JSON answer.
pub async fn post(app: &Router, body: String) -> (http::StatusCode, serde_json::Value) {
    let request = http::Request::post("/mutate")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

/// The JSON patch of an AdmissionReview response.
pub fn decode_patch(response: &serde_json::Value) -> Vec<serde_json::Value> {
    assert_eq!(response["response"]["patchType"], "JSONPatch", "{response}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(response["response"]["patch"].as_str().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// RFC 6902 `add`, which is all the webhook emits.
pub fn apply_patch(mut doc: serde_json::Value, patch: &[serde_json::Value]) -> serde_json::Value {
    for op in patch {
        assert_eq!(op["op"], "add", "{op}");
        let path = op["path"].as_str().unwrap();
        let (parent, last) = path.rsplit_once('/').unwrap();
        let last = last.replace("~1", "/").replace("~0", "~");
        let target = doc
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{path}: parent {parent} does not exist"));
        let value = op["value"].clone();
        match target {
            serde_json::Value::Array(items) if last == "-" => items.push(value),
            serde_json::Value::Array(items) => items.insert(last.parse().unwrap(), value),
            serde_json::Value::Object(map) => {
                map.insert(last, value);
            }
            other => panic!("{path}: parent is {other}"),
        }
    }
    doc
}
