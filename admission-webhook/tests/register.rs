//! `--register-webhook` against a scripted API server: the exact server-side
//! apply (path, fieldManager, force, content type, body), retries after
//! failures, a new caBundle re-applied on rotation, and the metrics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::Engine as _;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tailor_admission_webhook::register::{
    Backoff, Registration, RegistrationMetrics, configuration, keep_registered,
};
use tailor_testkit::kube_mock::{Exchange, KubeMock};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const APPLY: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/tailor-admission-webhook?fieldManager=tailor-admission-webhook&force=true";

fn registration() -> Registration {
    Registration {
        service_name: "tailor-admission-webhook".into(),
        namespace: "autoscaling".into(),
        service_port: 443,
    }
}

/// The body expected on the wire, written out in full so a change to the
/// generated object shows here.
fn expected_body(ca_bundle: Option<&str>) -> Value {
    let mut client_config = json!({
        "service": {
            "name": "tailor-admission-webhook",
            "namespace": "autoscaling",
            "path": "/mutate",
            "port": 443,
        }
    });
    if let Some(pem) = ca_bundle {
        client_config["caBundle"] = json!(base64::engine::general_purpose::STANDARD.encode(pem));
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": "tailor-admission-webhook",
            "labels": {
                "app.kubernetes.io/name": "tailor-admission-webhook",
                "app.kubernetes.io/component": "admission-webhook",
                "app.kubernetes.io/part-of": "tailor",
            },
        },
        "webhooks": [{
            "name": "tailor-admission-webhook.tailor.autoscaling",
            "admissionReviewVersions": ["v1"],
            "clientConfig": client_config,
            "rules": [{
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }],
            "failurePolicy": "Ignore",
            "matchPolicy": "Equivalent",
            "sideEffects": "None",
            "timeoutSeconds": 3,
            "reinvocationPolicy": "Never",
            "namespaceSelector": {
                "matchExpressions": [{
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": ["kube-system", "autoscaling"],
                }],
            },
        }],
    })
}

fn apply(ca_bundle: Option<&str>) -> Exchange {
    Exchange::patch(APPLY)
        .content_type("application/apply-patch+yaml")
        .body(expected_body(ca_bundle))
}

/// What the API server answers a successful apply with: the object, stored.
fn stored(ca_bundle: Option<&str>) -> Value {
    let mut object = expected_body(ca_bundle);
    object["metadata"]["uid"] = json!("6f1c2a7e-0000-4000-8000-000000000001");
    object["metadata"]["resourceVersion"] = json!("4711");
    object
}

fn metrics() -> (Registry, RegistrationMetrics) {
    let mut registry = Registry::with_prefix("tailor_webhook");
    let metrics = RegistrationMetrics::register(&mut registry);
    (registry, metrics)
}

fn encoded(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

const FAST: Backoff = Backoff {
    initial: Duration::from_millis(1),
    max: Duration::from_millis(4),
};

#[test]
fn generated_body_is_the_expected_one() {
    assert_eq!(
        configuration(&registration(), Some("PEM")),
        expected_body(Some("PEM"))
    );
}

#[tokio::test]
async fn without_a_bundle_applies_once_and_leaves_ca_bundle_alone() {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![apply(None).respond(200, stored(None))]);
    let (registry, metrics) = metrics();
    let (bundles, bundle_updates) = watch::channel(None);
    drop(bundles);
    let (applied, mut applied_updates) = watch::channel(Some("unset".to_owned()));
    // Returns by itself: no rotation can publish another bundle.
    keep_registered(
        client,
        registration(),
        bundle_updates,
        applied,
        metrics,
        FAST,
        CancellationToken::new(),
    )
    .await;
    api.verify().await;
    assert_eq!(*applied_updates.borrow_and_update(), None);
    let text = encoded(&registry);
    assert!(
        text.contains("tailor_webhook_registrations_total{result=\"Applied\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn failures_are_retried_counted_and_a_new_bundle_is_applied() {
    let (client, mock) = KubeMock::pair();
    let mut api = mock.run(vec![
        apply(Some("CA-1")).respond_status(
            403,
            "Forbidden",
            "mutatingwebhookconfigurations.admissionregistration.k8s.io \"tailor-admission-webhook\" is forbidden",
        ),
        apply(Some("CA-1")).respond_status(500, "InternalError", "etcdserver: request timed out"),
        apply(Some("CA-1")).respond(200, stored(Some("CA-1"))),
        apply(Some("CA-2")).respond(200, stored(Some("CA-2"))),
    ]);
    let (registry, metrics) = metrics();
    let (bundles, bundle_updates) = watch::channel(Some("CA-1".to_owned()));
    let (applied, mut applied_updates) = watch::channel(None);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(keep_registered(
        client,
        registration(),
        bundle_updates,
        applied,
        metrics,
        FAST,
        shutdown.clone(),
    ));
    applied_updates
        .wait_for(|a| a.as_deref() == Some("CA-1"))
        .await
        .unwrap();
    bundles.send_replace(Some("CA-2".to_owned()));
    applied_updates
        .wait_for(|a| a.as_deref() == Some("CA-2"))
        .await
        .unwrap();
    api.wait_consumed().await;
    shutdown.cancel();
    task.await.unwrap();
    api.verify().await;
    let text = encoded(&registry);
    assert!(
        text.contains("tailor_webhook_registrations_total{result=\"Failed\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("tailor_webhook_registrations_total{result=\"Applied\"} 2"),
        "{text}"
    );
}
