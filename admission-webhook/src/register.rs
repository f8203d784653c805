//! `--register-webhook`: keeps the MutatingWebhookConfiguration that sends
//! pod CREATEs here applied (server-side apply, forced, one field manager),
//! with the `caBundle` of `--self-signed` or `--ca-bundle-file` when given.
//!
//! Registration runs beside serving and never delays it: a failed apply is
//! logged, counted and retried with exponential backoff, and a new CA bundle
//! (a rotation) is applied as soon as it is published.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Api;
use kube::api::{Patch, PatchParams};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The configuration's name: the same object `deploy/base/admission-webhook`
/// creates for cert-manager installs, so either can own it.
pub const CONFIG_NAME: &str = "tailor-admission-webhook";
/// The webhook's name inside the configuration.
pub const WEBHOOK_NAME: &str = "tailor-admission-webhook.tailor.autoscaling";
/// The server-side apply field manager.
pub const FIELD_MANAGER: &str = "tailor-admission-webhook";
/// The path kube-apiserver posts AdmissionReviews to.
pub const PATH: &str = "/mutate";
/// Above the webhook's own 2 s deadline so it answers first, and within
/// the 5 s that keeps a slow webhook from stalling pod creation.
pub const TIMEOUT_SECONDS: i32 = 3;
/// How long one apply may take before it counts as failed.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where kube-apiserver reaches the webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The Service in front of the webhook pods.
    pub service_name: String,
    /// The Service's (and the webhook's own) namespace; never mutated.
    pub namespace: String,
    /// The Service port.
    pub service_port: u16,
}

/// The MutatingWebhookConfiguration to apply, as JSON: upstream VPA's
/// `vpa-webhook-config` settings for Tailor — pod CREATE only,
/// failurePolicy Ignore, sideEffects None, never `kube-system` or the
/// webhook's own namespace. Without `ca_bundle` (PEM) the field is left out,
/// so whoever injects it (cert-manager's cainjector) keeps owning it.
pub fn configuration(registration: &Registration, ca_bundle: Option<&str>) -> Value {
    let mut excluded = vec!["kube-system".to_owned()];
    if registration.namespace != "kube-system" {
        excluded.push(registration.namespace.clone());
    }
    let mut client_config = json!({
        "service": {
            "name": registration.service_name,
            "namespace": registration.namespace,
            "path": PATH,
            "port": registration.service_port,
        }
    });
    if let Some(pem) = ca_bundle {
        client_config["caBundle"] =
            Value::String(base64::engine::general_purpose::STANDARD.encode(pem));
    }
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": CONFIG_NAME,
            "labels": {
                "app.kubernetes.io/name": "tailor-admission-webhook",
                "app.kubernetes.io/component": "admission-webhook",
                "app.kubernetes.io/part-of": "tailor",
            },
        },
        "webhooks": [{
            "name": WEBHOOK_NAME,
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
            "timeoutSeconds": TIMEOUT_SECONDS,
            "reinvocationPolicy": "Never",
            "namespaceSelector": {
                "matchExpressions": [{
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": excluded,
                }],
            },
        }],
    })
}

/// Applies `body` once (PATCH, `application/apply-patch+yaml`,
/// `fieldManager=tailor-admission-webhook`, `force=true`).
///
/// # Errors
/// The API server's answer, or a timeout after 10 s.
pub async fn apply(client: &kube::Client, body: &Value) -> Result<(), ApplyError> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match tokio::time::timeout(
        APPLY_TIMEOUT,
        api.patch(CONFIG_NAME, &params, &Patch::Apply(body)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(source)) => Err(ApplyError::Api(source)),
        Err(_) => Err(ApplyError::Timeout(APPLY_TIMEOUT)),
    }
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The API server refused or could not be reached.
    #[error("applying MutatingWebhookConfiguration tailor-admission-webhook: {0}")]
    Api(kube::Error),
    /// No answer in time.
    #[error(
        "applying MutatingWebhookConfiguration tailor-admission-webhook: no answer within {0:?}"
    )]
    Timeout(Duration),
}

/// Result label of `registrations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum RegistrationResult {
    /// The configuration was applied.
    Applied,
    /// The apply failed and will be retried.
    Failed,
}

/// Labels of `registrations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Applied or failed.
    pub result: RegistrationResult,
}

/// Registration and certificate metrics.
#[derive(Clone, Debug, Default)]
pub struct RegistrationMetrics {
    /// Applies of the configuration, by result.
    pub registrations: Family<ResultLabels, Counter>,
    /// Self-signed certificates issued (serving certificates and CAs).
    pub certificates_issued: Family<CertificateLabels, Counter>,
}

/// Labels of `certificates_issued_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    /// `ca` or `serving`.
    pub kind: CertificateKind,
}

/// Which self-signed certificate was issued.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum CertificateKind {
    /// A CA (its certificate goes into `caBundle`).
    Ca,
    /// A serving certificate.
    Serving,
}

impl RegistrationMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "registrations",
            "Applies of the MutatingWebhookConfiguration (--register-webhook), by result",
            metrics.registrations.clone(),
        );
        registry.register(
            "certificates_issued",
            "Self-signed certificates issued (--self-signed), by kind",
            metrics.certificates_issued.clone(),
        );
        metrics
    }

    fn count(&self, result: RegistrationResult) {
        self.registrations
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts an issued certificate.
    pub fn issued(&self, kind: CertificateKind) {
        self.certificates_issued
            .get_or_create(&CertificateLabels { kind })
            .inc();
    }
}

/// Retry delays after a failed apply: doubling from `initial` up to `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

/// Applies the configuration now and again whenever `bundles` publishes a
/// new CA bundle, retrying failures with `backoff`, until `shutdown`.
/// Each bundle that was applied is published on `applied`, so a rotation can
/// wait until kube-apiserver trusts a new CA before serving from it.
pub async fn keep_registered(
    client: kube::Client,
    registration: Registration,
    mut bundles: watch::Receiver<Option<String>>,
    applied: watch::Sender<Option<String>>,
    metrics: RegistrationMetrics,
    backoff: Backoff,
    shutdown: CancellationToken,
) {
    // Whether a new bundle can still come (the sender is kept by
    // `--self-signed`'s rotation task only).
    let mut open = true;
    'bundle: loop {
        let bundle = bundles.borrow_and_update().clone();
        let body = configuration(&registration, bundle.as_deref());
        let mut delay = backoff.initial;
        loop {
            match apply(&client, &body).await {
                Ok(()) => {
                    metrics.count(RegistrationResult::Applied);
                    tracing::info!(
                        name = CONFIG_NAME,
                        ca_bundle = bundle.is_some(),
                        "webhook configuration applied"
                    );
                    applied.send_replace(bundle);
                    break;
                }
                Err(err) => {
                    metrics.count(RegistrationResult::Failed);
                    tracing::warn!(error = %err, retry_in = ?delay, "webhook registration failed; serving goes on");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                        changed = bundles.changed(), if open => {
                            if changed.is_ok() {
                                continue 'bundle;
                            }
                            open = false;
                            tokio::select! {
                                () = shutdown.cancelled() => return,
                                () = tokio::time::sleep(delay) => {}
                            }
                        }
                    }
                    delay = (delay * 2).min(backoff.max);
                }
            }
        }
        if !open {
            return;
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = bundles.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn registration(namespace: &str) -> Registration {
        Registration {
            service_name: "tailor-admission-webhook".into(),
            namespace: namespace.into(),
            service_port: 443,
        }
    }

    /// The generated object is the one `deploy/base` ships for cert-manager
    /// (which adds only its injection annotation), so the two are the same
    /// object whichever way it was installed.
    #[test]
    fn matches_the_deployed_manifest() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/base/admission-webhook/mutatingwebhookconfiguration.yaml"
        );
        let mut deployed: Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        deployed["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        assert_eq!(
            configuration(&registration("tailor-system"), None),
            deployed
        );
    }

    #[test]
    fn ca_bundle_is_base64_pem_and_namespaces_excluded() {
        let config = configuration(&registration("autoscaling"), Some("PEM"));
        let webhook = &config["webhooks"][0];
        assert_eq!(webhook["clientConfig"]["caBundle"], "UEVN");
        assert_eq!(
            webhook["clientConfig"]["service"]["namespace"],
            "autoscaling"
        );
        assert_eq!(
            webhook["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["kube-system", "autoscaling"])
        );
        assert_eq!(webhook["failurePolicy"], "Ignore");
        assert_eq!(webhook["sideEffects"], "None");
        assert!(webhook["timeoutSeconds"].as_i64().unwrap() <= 5);
        let in_kube_system = configuration(&registration("kube-system"), None);
        assert_eq!(
            in_kube_system["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
            json!(["kube-system"])
        );
    }

    #[test]
    fn parses_as_the_typed_object() {
        let config = configuration(&registration("tailor-system"), Some("PEM"));
        let typed: MutatingWebhookConfiguration = serde_json::from_value(config).unwrap();
        let webhook = &typed.webhooks.unwrap()[0];
        assert_eq!(webhook.client_config.ca_bundle.as_ref().unwrap().0, b"PEM");
        assert_eq!(webhook.timeout_seconds, Some(TIMEOUT_SECONDS));
    }
}
