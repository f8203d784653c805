//! `tailor-load` (the binary) against a small HTTPS server in the test: the
//! production TLS serving path of `tailor-runtime` with testkit's
//! certificates, requiring a client certificate like the metrics adapter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Version};
use axum::routing::{get, post};
use serde_json::Value;
use tailor_runtime::args::TlsArgs;
use tailor_runtime::tls::{ClientAuth, PeerCertificate};
use tailor_runtime::{serve, tls};
use tailor_testkit::Pki;
use tokio_util::sync::CancellationToken;

const BODY: &str = r#"{"kind":"AdmissionReview"}"#;

#[derive(Default)]
struct Seen {
    echo: AtomicU64,
    http2: AtomicU64,
}

/// 200 only for the expected body, content type and client certificate, so
/// every 200 in the report proves the tool sent all three.
async fn echo(
    State(seen): State<Arc<Seen>>,
    peer: Option<axum::Extension<PeerCertificate>>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    seen.echo.fetch_add(1, Ordering::Relaxed);
    if version == Version::HTTP_2 {
        seen.http2.fetch_add(1, Ordering::Relaxed);
    }
    let cn = peer.and_then(|p| p.0.common_name);
    let json = headers
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    if body == BODY.as_bytes() && json && cn.as_deref() == Some("load-test") {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::BAD_REQUEST, "unexpected request")
    }
}

struct Server {
    pki: Pki,
    port: u16,
    seen: Arc<Seen>,
    stop: CancellationToken,
    body_file: tempfile::NamedTempFile,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn start() -> Server {
    tls::install_crypto_provider();
    let pki = Pki::generate("load-test", None).unwrap();
    let args = TlsArgs {
        tls_cert_file: pki.server().cert_path.clone(),
        tls_private_key_file: pki.server().key_path.clone(),
    };
    let auth = ClientAuth {
        ca_file: pki.ca().cert_path.clone(),
        required: true,
    };
    let config = tls::server_config(&args, Some(&auth)).unwrap();
    let seen = Arc::new(Seen::default());
    let router = Router::new()
        .route("/echo", post(echo))
        .route("/teapot", get(|| async { StatusCode::IM_A_TEAPOT }))
        .with_state(seen.clone());
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = CancellationToken::new();
    tokio::spawn(serve::serve_tls(
        listener,
        config,
        router,
        stop.clone(),
        Duration::from_secs(1),
    ));
    let body_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body_file.path(), BODY).unwrap();
    Server {
        pki,
        port,
        seen,
        stop,
        body_file,
    }
}

impl Server {
    /// Flags for the CA, the client certificate and the body.
    fn auth_args(&self) -> Vec<String> {
        let p = |path: &std::path::Path| path.display().to_string();
        vec![
            "--cacert".into(),
            p(&self.pki.ca().cert_path),
            "--cert".into(),
            p(&self.pki.client().cert_path),
            "--key".into(),
            p(&self.pki.client().key_path),
            "--body".into(),
            p(self.body_file.path()),
            "-H".into(),
            "Content-Type: application/json".into(),
        ]
    }
}

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{e}: stdout {} stderr {}", self.stdout, self.stderr))
    }
}

async fn load<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Outcome {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tailor-load"))
        .args(args)
        .output()
        .await
        .unwrap();
    Outcome {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counted_requests_over_http1_with_client_certificate() {
    let server = start().await;
    let mut args = server.auth_args();
    args.extend(
        [
            "-n",
            "200",
            "-c",
            "4",
            "--warmup",
            "0s",
            "--threads",
            "1",
            "--json",
            "--expect-status",
            "200",
        ]
        .map(String::from),
    );
    args.push(format!("https://127.0.0.1:{}/echo", server.port));
    let out = load(&args).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.json();
    assert_eq!(report["requests"], 200);
    assert_eq!(report["responses"], 200);
    assert_eq!(report["status"], serde_json::json!({"200": 200}));
    assert_eq!(report["errors"], serde_json::json!({}));
    assert_eq!(report["http"], "1.1");
    assert_eq!(report["connections_opened"], 4);
    assert_eq!(report["bytes_received"], 200 * 2);
    let l = &report["latency_ms"];
    let (p50, p99, max) = (
        l["p50"].as_f64().unwrap(),
        l["p99"].as_f64().unwrap(),
        l["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{l}");
    assert!(report["requests_per_second"].as_f64().unwrap() > 0.0);
    // No warm-up: the server saw exactly the measured requests.
    assert_eq!(server.seen.echo.load(Ordering::Relaxed), 200);
    assert_eq!(server.seen.http2.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_duration_over_http2_with_warmup_and_table() {
    let server = start().await;
    let mut args = server.auth_args();
    args.extend(
        [
            "--http",
            "2",
            "-d",
            "300ms",
            "--warmup",
            "100ms",
            "-c",
            "2",
            "--expect-status",
            "200",
            "--server-pid",
        ]
        .map(String::from),
    );
    args.push(std::process::id().to_string());
    args.push(format!("https://localhost:{}/echo", server.port));
    let out = load(&args).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    for label in [
        "target",
        "throughput",
        "latency",
        "status",
        "errors",
        "server CPU",
    ] {
        assert!(
            out.stdout.contains(label),
            "{label} missing from\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("(HTTP/2, 2 connections)"),
        "{}",
        out.stdout
    );
    let seen = server.seen.echo.load(Ordering::Relaxed);
    assert!(seen > 0);
    assert_eq!(server.seen.http2.load(Ordering::Relaxed), seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_and_refused_client_are_reported() {
    let server = start().await;
    let ca = server.pki.ca().cert_path.display().to_string();
    let client = server.auth_args()[..6].to_vec();

    let mut args = client.clone();
    args.extend(
        [
            "-n",
            "5",
            "-c",
            "1",
            "--warmup",
            "0s",
            "--json",
            "--expect-status",
            "200",
        ]
        .map(String::from),
    );
    args.push(format!("https://127.0.0.1:{}/teapot", server.port));
    let out = load(&args).await;
    assert_eq!(out.code, 1, "a 418 is not the expected 200: {}", out.stdout);
    assert_eq!(out.json()["status"], serde_json::json!({"418": 5}));

    // No client certificate: the server refuses the connection.
    let out = load(&[
        "--cacert",
        &ca,
        "-n",
        "3",
        "-c",
        "1",
        "--warmup",
        "0s",
        "--json",
        "--expect-status",
        "200",
        &format!("https://127.0.0.1:{}/teapot", server.port),
    ])
    .await;
    assert_eq!(out.code, 1);
    let report = out.json();
    assert_eq!(report["responses"], 0);
    assert_eq!(report["requests"], 3);
    assert!(
        !report["error_examples"].as_object().unwrap().is_empty(),
        "{report}"
    );
}

#[tokio::test]
async fn refuses_bad_targets_and_flags_before_sending() {
    let server = start().await;
    let ca = server.pki.ca().cert_path.display().to_string();
    for (args, says) in [
        (
            vec!["--cacert", &ca, "https://10.1.2.3:8443/"],
            "--allow-non-loopback",
        ),
        (
            vec!["--cacert", &ca, "https://example.com/"],
            "refusing to load example.com",
        ),
        (vec!["https://127.0.0.1:1/"], "needs --cacert"),
        (
            vec!["--cacert", "/nonexistent/ca.crt", "https://127.0.0.1:1/"],
            "/nonexistent/ca.crt",
        ),
        (
            vec!["--cacert", &ca, "-H", "no colon", "https://127.0.0.1:1/"],
            "no colon",
        ),
    ] {
        let out = load(&args).await;
        assert_eq!(out.code, 2, "{args:?}");
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    assert_eq!(server.seen.echo.load(Ordering::Relaxed), 0);
}
