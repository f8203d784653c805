//! The webhook over real TLS, as kube-apiserver reaches it: the router
//! served by `tailor_runtime::serve::serve_tls` with a certificate from
//! files, a client trusting the CA, and a certificate rotated on disk
//! picked up by the next handshake without a restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::{cluster_index, fixture};
use prometheus_client::registry::Registry;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tailor_admission_webhook::placement::PlacementConfig;
use tailor_admission_webhook::server::{AppState, DEFAULT_DEADLINE, Metrics, router};
use tailor_runtime::args::TlsArgs;
use tailor_runtime::{serve, tls};
use tailor_testkit::Pki;
use tokio_util::sync::CancellationToken;

/// Replaces `to` by a copy of `from` the way a Secret volume does: write
/// beside it, then rename over it.
fn swap_in(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

async fn start(dir: &Path, first: &Pki) -> (u16, CancellationToken) {
    tls::install_crypto_provider();
    let args = TlsArgs {
        tls_cert_file: dir.join("tls.crt"),
        tls_private_key_file: dir.join("tls.key"),
    };
    swap_in(&first.server().cert_path, &args.tls_cert_file);
    swap_in(&first.server().key_path, &args.tls_private_key_file);
    let config = tls::server_config(&args, None).unwrap();
    let mut registry = Registry::default();
    let state = AppState {
        index: Arc::new(RwLock::new(cluster_index())),
        placement: PlacementConfig::default(),
        metrics: Metrics::register(&mut registry),
        deadline: DEFAULT_DEADLINE,
    };
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let token = CancellationToken::new();
    tokio::spawn(serve::serve_tls(
        listener,
        config,
        router(Arc::new(state)),
        token.clone(),
        Duration::from_secs(1),
    ));
    (port, token)
}

fn client(pki: &Pki) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(pki.client_config().unwrap())
        .build()
        .unwrap()
}

async fn mutate(client: &reqwest::Client, port: u16) -> reqwest::Result<serde_json::Value> {
    client
        .post(format!("https://localhost:{port}/mutate"))
        .header("content-type", "application/json")
        .body(fixture("pod-create-deployment.json"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_review_over_https_and_certificate_rotation() {
    let first = Pki::generate("kube-apiserver", None).unwrap();
    let second = Pki::generate("kube-apiserver", None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (port, token) = start(dir.path(), &first).await;

    let response = mutate(&client(&first), port).await.unwrap();
    assert_eq!(
        response["response"]["uid"],
        "3f8c2a71-5d0e-4b8e-9a51-8d7e6c1f2b90"
    );
    assert_eq!(response["response"]["allowed"], true);
    assert_eq!(response["response"]["patchType"], "JSONPatch");
    let patch: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::STANDARD
            .decode(response["response"]["patch"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(
        patch.as_array().unwrap().iter().any(|op| op["path"]
            == "/spec/containers/0/resources/requests/cpu"
            && op["value"] == "250m"),
        "{patch}"
    );

    // A client trusting only the second CA is refused until the files rotate.
    assert!(mutate(&client(&second), port).await.is_err());
    swap_in(&second.server().cert_path, &dir.path().join("tls.crt"));
    swap_in(&second.server().key_path, &dir.path().join("tls.key"));
    let response = mutate(&client(&second), port).await.unwrap();
    assert_eq!(response["response"]["allowed"], true);
    // And the old CA no longer verifies the new certificate.
    assert!(mutate(&client(&first), port).await.is_err());

    // Malformed bodies over TLS are a 400 with a Status.
    let bad = client(&second)
        .post(format!("https://localhost:{port}/mutate"))
        .body("{\"apiVersion\":\"admission.k8s.io/v1beta1\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), reqwest::StatusCode::BAD_REQUEST);
    let status: serde_json::Value = bad.json().await.unwrap();
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("admission.k8s.io/v1beta1")
    );
    token.cancel();
}
