//! The HTTP application: `POST /mutate` (AdmissionReview v1) and
//! `GET /healthz`. A body that is not an AdmissionReview gets a 400 with a
//! Kubernetes `Status`; every other failure — an error, a panic, the
//! deadline — admits the pod unchanged and is counted.

use crate::index::Index;
use crate::mutate::{self, Mutation};
use crate::placement::PlacementConfig;
use crate::review::{self, ResponseReview, Review};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How long one request may take before the pod is admitted unchanged;
/// well under the `timeoutSeconds` the webhook is registered with.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);

/// The largest request body read (kube-apiserver's own limit is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 << 20;

/// What a request ended as.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Outcome {
    /// A patch was returned.
    Patched,
    /// A VPA or placement applied but nothing changed.
    Unchanged,
    /// No VPA matched and no placement applied.
    NoMatch,
    /// Not a pod CREATE.
    Ignored,
    /// 400: not an AdmissionReview.
    Malformed,
    /// Something failed; the pod was admitted unchanged.
    FailedAllowed,
}

/// Labels of `requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The outcome.
    pub outcome: Outcome,
}

/// Labels of `failures_allowed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// A stable error label (`timeout`, `panic`, `owner_chain`, ...).
    pub reason: String,
}

/// The webhook's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    requests: Family<OutcomeLabels, Counter>,
    failures_allowed: Family<ReasonLabels, Counter>,
    placements: Counter,
    duration: Histogram,
}

impl Metrics {
    /// Creates the metrics and registers them (names get the registry's
    /// prefix, e.g. `tailor_webhook_`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Metrics {
            requests: Family::default(),
            failures_allowed: Family::default(),
            placements: Counter::default(),
            duration: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
        };
        registry.register(
            "admission_requests",
            "AdmissionReview requests by outcome",
            metrics.requests.clone(),
        );
        registry.register(
            "admission_failures_allowed",
            "Requests that failed and admitted the pod unchanged, by reason",
            metrics.failures_allowed.clone(),
        );
        registry.register(
            "placements",
            "Pods given spot tolerations or node affinity",
            metrics.placements.clone(),
        );
        registry.register(
            "admission_duration_seconds",
            "Time to answer an AdmissionReview",
            metrics.duration.clone(),
        );
        metrics
    }

    fn outcome(&self, outcome: Outcome) {
        self.requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    fn failed(&self, reason: &str) {
        self.outcome(Outcome::FailedAllowed);
        self.failures_allowed
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The caches, written by the watches.
    pub index: Arc<RwLock<Index>>,
    /// Cost placement settings.
    pub placement: PlacementConfig,
    /// Where outcomes are counted.
    pub metrics: Metrics,
    /// Per-request deadline.
    pub deadline: Duration,
}

/// The webhook's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/mutate", post(mutate_handler))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A Kubernetes `Status` for a rejected body.
fn bad_request(message: &str) -> Response {
    let status = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "message": message,
        "reason": "BadRequest",
        "code": 400,
    });
    (StatusCode::BAD_REQUEST, Json(status)).into_response()
}

fn allow(uid: &str) -> Response {
    Json(ResponseReview::allow(uid)).into_response()
}

async fn mutate_handler(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let started = Instant::now();
    let response = handle(&state, body).await;
    state
        .metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn handle(state: &Arc<AppState>, body: Bytes) -> Response {
    let review = match review::parse(&body) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(reason = e.label(), error = %e, "malformed AdmissionReview");
            state.metrics.outcome(Outcome::Malformed);
            return bad_request(&e.to_string());
        }
    };
    let create = match review {
        Review::PodCreate(p) => p,
        Review::Ignored { uid, reason } => {
            tracing::debug!(%uid, %reason, "not a pod CREATE");
            state.metrics.outcome(Outcome::Ignored);
            return allow(&uid);
        }
    };
    let uid = create.uid.clone();
    // Off the async workers, so the deadline holds even if the work stalls,
    // and a panic becomes a JoinError instead of a dropped connection.
    let worker = Arc::clone(state);
    let work = tokio::task::spawn_blocking(move || {
        let index = worker.index.read().map_err(|_| "index_poisoned")?;
        mutate::mutate(&index, &worker.placement, &create.pod).map_err(|e| {
            tracing::warn!(uid = %create.uid, pod = ?create.pod.metadata.generate_name, error = %e, "pod admitted unchanged");
            e.label()
        })
    });
    let mutation: Mutation = match tokio::time::timeout(state.deadline, work).await {
        Ok(Ok(Ok(m))) => m,
        Ok(Ok(Err(reason))) => {
            state.metrics.failed(reason);
            return allow(&uid);
        }
        Ok(Err(join)) => {
            tracing::error!(%uid, error = %join, "mutation panicked; pod admitted unchanged");
            state.metrics.failed("panic");
            return allow(&uid);
        }
        Err(_) => {
            tracing::warn!(%uid, deadline = ?state.deadline, "deadline passed; pod admitted unchanged");
            state.metrics.failed("timeout");
            return allow(&uid);
        }
    };
    let response = match ResponseReview::allow_with_patch(&uid, &mutation.operations) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%uid, error = %e, "cannot encode patch; pod admitted unchanged");
            state.metrics.failed("encode");
            return allow(&uid);
        }
    };
    if mutation.placed {
        state.metrics.placements.inc();
    }
    let outcome = if !mutation.operations.is_empty() {
        Outcome::Patched
    } else if mutation.vpa.is_some() {
        Outcome::Unchanged
    } else {
        Outcome::NoMatch
    };
    state.metrics.outcome(outcome);
    Json(response).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::RecommenderFilter;
    use http_body_util::BodyExt as _;
    use proptest::strategy::Strategy as _;
    use tower::ServiceExt as _;

    fn state(deadline: Duration) -> (Arc<AppState>, Registry) {
        let mut registry = Registry::with_prefix("tailor_webhook");
        let metrics = Metrics::register(&mut registry);
        let state = AppState {
            index: Arc::new(RwLock::new(Index::new(RecommenderFilter::Any))),
            placement: PlacementConfig::default(),
            metrics,
            deadline,
        };
        (Arc::new(state), registry)
    }

    async fn post(app: Router, body: &str) -> (StatusCode, serde_json::Value) {
        let request = http::Request::post("/mutate")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn metrics_text(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    const POD_CREATE: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{
        "uid":"u-1","kind":{"group":"","version":"v1","kind":"Pod"},"namespace":"shop","operation":"CREATE",
        "object":{"metadata":{"name":"p","labels":{"app":"web"},
          "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"gone","uid":"x","controller":true}]},
          "spec":{"containers":[{"name":"app"}]}}}}"#;

    #[tokio::test]
    async fn malformed_body_is_a_400_status() {
        let (state, registry) = state(DEFAULT_DEADLINE);
        let (code, body) = post(router(state), "{").await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert_eq!(body["kind"], "Status");
        assert_eq!(body["code"], 400);
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("not a valid AdmissionReview")
        );
        assert!(
            metrics_text(&registry)
                .contains("tailor_webhook_admission_requests_total{outcome=\"Malformed\"} 1")
        );
    }

    #[tokio::test]
    async fn internal_error_admits_unchanged_and_is_counted() {
        let (state, registry) = state(DEFAULT_DEADLINE);
        state
            .index
            .write()
            .unwrap()
            .apply_vpa(crate::index::tests::vpa(
                "v",
                "Deployment",
                "web",
                serde_json::json!({}),
            ));
        let (code, body) = post(router(state), POD_CREATE).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            body["response"],
            serde_json::json!({"uid": "u-1", "allowed": true})
        );
        let text = metrics_text(&registry);
        assert!(
            text.contains(
                "tailor_webhook_admission_failures_allowed_total{reason=\"owner_chain\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("outcome=\"FailedAllowed\"} 1"), "{text}");
    }

    #[tokio::test]
    async fn poisoned_index_admits_unchanged() {
        let (state, registry) = state(DEFAULT_DEADLINE);
        let index = Arc::clone(&state.index);
        let _ = std::thread::spawn(move || {
            let _guard = index.write().unwrap();
            panic!("poison the lock");
        })
        .join();
        let (code, body) = post(router(state), POD_CREATE).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body["response"]["allowed"], true);
        assert!(body["response"].get("patch").is_none());
        assert!(metrics_text(&registry).contains("reason=\"index_poisoned\"} 1"));
    }

    #[tokio::test]
    #[allow(
        clippy::await_holding_lock,
        reason = "the held lock is what makes the work miss the deadline"
    )]
    async fn deadline_admits_unchanged() {
        let (state, registry) = state(Duration::from_millis(20));
        // Hold the write lock so the work cannot start before the deadline.
        let index = Arc::clone(&state.index);
        let guard = index.write().unwrap();
        let (code, body) = post(router(state), POD_CREATE).await;
        drop(guard);
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            body["response"],
            serde_json::json!({"uid": "u-1", "allowed": true})
        );
        assert!(metrics_text(&registry).contains("reason=\"timeout\"} 1"));
    }

    fn mutate_body(body: Vec<u8>) -> (StatusCode, serde_json::Value) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (state, _) = state(DEFAULT_DEADLINE);
            let request = http::Request::post("/mutate")
                .body(axum::body::Body::from(body))
                .unwrap();
            let response = router(state).oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, serde_json::from_slice(&bytes).unwrap())
        })
    }

    fn assert_well_formed(status: StatusCode, body: &serde_json::Value) {
        match status {
            StatusCode::OK => {
                assert_eq!(body["apiVersion"], "admission.k8s.io/v1", "{body}");
                assert_eq!(body["kind"], "AdmissionReview", "{body}");
                assert_eq!(body["response"]["allowed"], true, "{body}");
                assert!(
                    !body["response"]["uid"].as_str().unwrap().is_empty(),
                    "{body}"
                );
            }
            StatusCode::BAD_REQUEST => {
                assert_eq!(body["kind"], "Status", "{body}");
                assert!(!body["message"].as_str().unwrap().is_empty(), "{body}");
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        #[test]
        fn any_bytes_get_a_review_or_a_400(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let (status, json) = mutate_body(body);
            assert_well_formed(status, &json);
        }

        #[test]
        fn any_pod_object_gets_a_review_or_a_400(
            object in proptest::prelude::prop_oneof![
                proptest::prelude::Just(serde_json::json!(null)),
                proptest::prelude::Just(serde_json::json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "x"}}}]}})),
                proptest::prelude::Just(serde_json::json!({"metadata": {"labels": {"app": 1}}})),
                proptest::prelude::Just(serde_json::json!({"spec": {"containers": [{}]}})),
                "[a-z]{0,6}".prop_map(|s| serde_json::json!({"metadata": {"name": s}, "spec": {"containers": [{"name": "a"}]}})),
            ],
            operation in proptest::prelude::prop_oneof![proptest::prelude::Just("CREATE"), proptest::prelude::Just("UPDATE")],
        ) {
            let body = serde_json::to_vec(&serde_json::json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                            "operation": operation, "namespace": "shop", "object": object}
            })).unwrap();
            let (status, json) = mutate_body(body);
            assert_well_formed(status, &json);
        }
    }

    #[tokio::test]
    async fn healthz_answers() {
        let (state, _) = state(DEFAULT_DEADLINE);
        let request = http::Request::get("/healthz")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router(state).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
