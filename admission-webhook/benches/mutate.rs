//! The request path without the network: parse a real AdmissionReview,
//! match, compute the patch and encode the response; and the same through
//! the axum router.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{cluster_index, fixture};
use criterion::{Criterion, criterion_group, criterion_main};
use prometheus_client::registry::Registry;
use std::hint::black_box;
use std::sync::{Arc, RwLock};
use tailor_admission_webhook::mutate::mutate;
use tailor_admission_webhook::placement::PlacementConfig;
use tailor_admission_webhook::review::{self, ResponseReview, Review};
use tailor_admission_webhook::server::{AppState, DEFAULT_DEADLINE, Metrics, router};
use tower::ServiceExt as _;

fn bench(c: &mut Criterion) {
    let body = fixture("pod-create-deployment.json");
    let index = cluster_index();
    let placement = PlacementConfig::default();
    c.bench_function("parse_mutate_respond", |b| {
        b.iter(|| {
            let Review::PodCreate(p) = review::parse(black_box(body.as_bytes())).unwrap() else {
                panic!("not a pod create");
            };
            let m = mutate(&index, &placement, &p.pod).unwrap();
            let r = ResponseReview::allow_with_patch(&p.uid, &m.operations).unwrap();
            serde_json::to_vec(&r).unwrap()
        });
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut registry = Registry::default();
    let app = router(Arc::new(AppState {
        index: Arc::new(RwLock::new(cluster_index())),
        placement: PlacementConfig::default(),
        metrics: Metrics::register(&mut registry),
        deadline: DEFAULT_DEADLINE,
    }));
    c.bench_function("router_oneshot", |b| {
        b.to_async(&runtime).iter(|| {
            let app = app.clone();
            let body = body.clone();
            async move {
                let request = http::Request::post("/mutate")
                    .body(axum::body::Body::from(body))
                    .unwrap();
                let response = app.oneshot(request).await.unwrap();
                assert_eq!(response.status(), http::StatusCode::OK);
            }
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
