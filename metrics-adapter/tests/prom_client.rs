#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Prometheus client's transport behaviour against a small HTTP server
//! standing in for a proxy in front of Prometheus: POST first, GET for good
//! after a 405, headers and bearer token sent, the per-query deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use tailor_metrics_adapter::prom::{Client, ClientOptions, PromError, Verb};

const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"pod":"a"},"value":[1700000000,"3"]}]}}"#;

#[derive(Default)]
struct Seen {
    posts: AtomicUsize,
    gets: AtomicUsize,
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test]
async fn post_refused_with_405_falls_back_to_get_for_good() {
    let seen = Arc::new(Seen::default());
    let (p, g) = (seen.clone(), seen.clone());
    let router = Router::new().route(
        "/prefix/api/v1/query",
        get(move |headers: HeaderMap| {
            let g = g.clone();
            async move {
                g.gets.fetch_add(1, Ordering::SeqCst);
                assert_eq!(headers["x-scope-orgid"], "team-a");
                assert_eq!(headers["authorization"], "Bearer s3cret");
                (StatusCode::OK, VECTOR)
            }
        })
        .post(move || {
            let p = p.clone();
            async move {
                p.posts.fetch_add(1, Ordering::SeqCst);
                (StatusCode::METHOD_NOT_ALLOWED, "")
            }
        }),
    );
    let url = serve(router).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let client = Client::new(&ClientOptions {
        url: format!("{url}/prefix/"),
        headers: vec!["X-Scope-OrgID=team-a".into()],
        token_file: Some(token),
        verb: Some(Verb::Post),
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    })
    .unwrap();
    for _ in 0..3 {
        let samples = client.query("up").await.unwrap();
        assert_eq!(samples[0].value, 3.0);
    }
    assert_eq!(seen.posts.load(Ordering::SeqCst), 1);
    assert_eq!(seen.gets.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_slow_prometheus_is_a_timeout_error_not_a_hang() {
    let router = Router::new().route(
        "/api/v1/query",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            VECTOR
        })
        .post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            VECTOR
        }),
    );
    let url = serve(router).await;
    let client = Client::new(&ClientOptions {
        url,
        timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    })
    .unwrap();
    let err = client.query("up").await.unwrap_err();
    assert!(matches!(err, PromError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn prometheus_errors_are_reported_with_their_type() {
    let router = Router::new().route(
        "/api/v1/query",
        get(|| async {
            (
                StatusCode::BAD_REQUEST,
                r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            )
        })
        .post(|| async {
            (
                StatusCode::BAD_REQUEST,
                r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
            )
        }),
    );
    let url = serve(router).await;
    let client = Client::new(&ClientOptions {
        url,
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    })
    .unwrap();
    let err = client.query("up{").await.unwrap_err().to_string();
    assert!(err.contains("HTTP 400 (bad_data): parse error"), "{err}");
}
