//! The binary: flags, then the caches, the admin server and the HTTPS
//! webhook under one shutdown.

use crate::index::{Index, RecommenderFilter};
use crate::placement::PlacementConfig;
use crate::register::{self, Backoff, Registration, RegistrationMetrics};
use crate::self_signed::{self, SelfSigned};
use crate::server::{AppState, DEFAULT_DEADLINE, Metrics, router};
use crate::{scale, watch};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tailor_runtime::args::{AdminArgs, KubeClientArgs, LogArgs, TlsArgs, parse_duration};
use tailor_runtime::process::{self, Process};
use tailor_runtime::{admin, client, serve, telemetry, tls};

/// `tailor-admission-webhook` flags (each with an environment fallback).
#[derive(Clone, Debug, Parser)]
#[command(name = "tailor-admission-webhook", version, about)]
pub struct Cli {
    /// Admin server (probes and metrics).
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Kubernetes client.
    #[command(flatten)]
    pub kube: KubeClientArgs,
    /// Serving certificate (reloaded when the files change).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Address the HTTPS webhook (`POST /mutate`) listens on.
    #[arg(long, env = "TAILOR_WEBHOOK_ADDR", default_value = "0.0.0.0:8443")]
    pub webhook_addr: SocketAddr,
    /// Apply only VPAs handled by this recommender (`spec.recommenders[0]`;
    /// `default` also takes VPAs naming none). Unset: every VPA, as upstream.
    #[arg(long, env = "TAILOR_WEBHOOK_RECOMMENDER_NAME")]
    pub recommender_name: Option<String>,
    /// YAML file with the cost placement configuration (off when unset).
    #[arg(long, env = "TAILOR_WEBHOOK_PLACEMENT_CONFIG")]
    pub placement_config: Option<PathBuf>,
    /// Per-request deadline; past it the pod is admitted unchanged.
    #[arg(long, env = "TAILOR_WEBHOOK_DEADLINE", default_value = "2s", value_parser = parse_duration)]
    pub deadline: Duration,
    /// Create or update the MutatingWebhookConfiguration
    /// `tailor-admission-webhook` (server-side apply) at start and whenever
    /// the CA changes. Needs `patch` on it (deploy/base grants it).
    #[arg(long, env = "TAILOR_WEBHOOK_REGISTER")]
    pub register_webhook: bool,
    /// Issue a CA and serving certificate for the Service's DNS names, write
    /// them to --tls-cert-file/--tls-private-key-file (a writable emptyDir),
    /// renew them before expiry and keep caBundle current. Each replica
    /// issues its own CA: run one replica, or use cert-manager.
    #[arg(
        long,
        env = "TAILOR_WEBHOOK_SELF_SIGNED",
        requires = "register_webhook"
    )]
    pub self_signed: bool,
    /// PEM file whose CA certificates are registered as caBundle (without
    /// it, and without --self-signed, caBundle is left to cert-manager's
    /// cainjector).
    #[arg(
        long,
        env = "TAILOR_WEBHOOK_CA_BUNDLE_FILE",
        requires = "register_webhook",
        conflicts_with = "self_signed"
    )]
    pub ca_bundle_file: Option<PathBuf>,
    /// The Service kube-apiserver calls (registration and certificate names).
    #[arg(
        long,
        env = "TAILOR_WEBHOOK_SERVICE_NAME",
        default_value = "tailor-admission-webhook"
    )]
    pub service_name: String,
    /// The Service's port.
    #[arg(long, env = "TAILOR_WEBHOOK_SERVICE_PORT", default_value_t = 443)]
    pub service_port: u16,
    /// The webhook's own namespace (the Service's; never mutated).
    #[arg(long, env = "POD_NAMESPACE", default_value = "tailor-system")]
    pub namespace: String,
}

impl Cli {
    /// The VPAs this webhook applies.
    #[must_use]
    pub fn recommender_filter(&self) -> RecommenderFilter {
        match &self.recommender_name {
            Some(name) => RecommenderFilter::Named(name.clone()),
            None => RecommenderFilter::Any,
        }
    }

    /// Where kube-apiserver reaches this webhook.
    #[must_use]
    pub fn registration(&self) -> Registration {
        Registration {
            service_name: self.service_name.clone(),
            namespace: self.namespace.clone(),
            service_port: self.service_port,
        }
    }

    /// The caBundle to register at start, read and checked now.
    fn initial_ca_bundle(&self, certs: Option<&SelfSigned>) -> anyhow::Result<Option<String>> {
        if let Some(certs) = certs {
            return Ok(Some(certs.ca_bundle()));
        }
        let Some(path) = &self.ca_bundle_file else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read --ca-bundle-file {}: {e}", path.display()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            anyhow::bail!(
                "--ca-bundle-file {}: no PEM certificate in the file",
                path.display()
            );
        }
        Ok(Some(pem))
    }
}

/// Runs until SIGTERM/SIGINT. Configuration, certificate and listen
/// address are checked before anything starts.
///
/// # Errors
/// Invalid configuration, unreadable certificate, an address that cannot
/// be bound, no Kubernetes client, or a drain that timed out.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(&cli.log)?;
    let placement = match &cli.placement_config {
        Some(path) => PlacementConfig::from_file(path)?,
        None => PlacementConfig::default(),
    };
    // With --self-signed the files are ours to write, before the TLS layer
    // reads them; it reloads them on each renewal.
    let certs = if cli.self_signed {
        let names = self_signed::service_names(&cli.service_name, &cli.namespace);
        let certs = SelfSigned::new(names, SystemTime::now())?;
        certs.write(&cli.tls)?;
        Some(certs)
    } else {
        None
    };
    let ca_bundle = cli.initial_ca_bundle(certs.as_ref())?;
    let tls_config = tls::server_config(&cli.tls, None)?;
    let kube = client::kube_client(&cli.kube).await?;
    let listener = serve::bind(cli.webhook_addr).await?;

    let mut registry = admin::component_registry("webhook");
    let metrics = Metrics::register(&mut registry);
    let registration_metrics = RegistrationMetrics::register(&mut registry);
    let process = Process::start(&cli.admin, registry).await?;
    let shutdown = process.shutdown().clone();
    let readiness = process.readiness().clone();

    let index = Arc::new(RwLock::new(Index::new(cli.recommender_filter())));
    let ready = readiness.clone();
    let vpa_changed = Arc::new(tokio::sync::Notify::new());
    for handle in watch::spawn_all(
        &kube,
        &index,
        move || ready.set_ready(true),
        &vpa_changed,
        &shutdown.token(),
    ) {
        shutdown.spawn(handle);
    }
    // Custom targetRef kinds: their /scale is read here, off the request path.
    shutdown.spawn(scale::keep_refreshed(
        kube.clone(),
        Arc::clone(&index),
        vpa_changed,
        shutdown.token(),
    ));

    if cli.register_webhook {
        let (bundles, bundle_updates) = tokio::sync::watch::channel(ca_bundle);
        let (applied, applied_updates) = tokio::sync::watch::channel(None);
        shutdown.spawn(register::keep_registered(
            kube.clone(),
            cli.registration(),
            bundle_updates,
            applied,
            registration_metrics.clone(),
            Backoff::default(),
            shutdown.token(),
        ));
        if let Some(certs) = certs {
            shutdown.spawn(self_signed::keep_rotating(
                certs,
                cli.tls.clone(),
                bundles,
                applied_updates,
                registration_metrics,
                shutdown.token(),
            ));
        }
    }

    let state = Arc::new(AppState {
        index,
        placement,
        metrics,
        deadline: if cli.deadline.is_zero() {
            DEFAULT_DEADLINE
        } else {
            cli.deadline
        },
    });
    tracing::info!(addr = %cli.webhook_addr, "webhook listening");
    let webhook_task = shutdown.spawn(serve::serve_tls(
        listener,
        tls_config,
        router(state),
        shutdown.token(),
        process::DRAIN,
    ));
    process.finish().await?;
    webhook_task.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_recommender_filter() {
        let cli = Cli::try_parse_from(["tailor-admission-webhook"]).unwrap();
        assert_eq!(cli.webhook_addr.port(), 8443);
        assert_eq!(cli.deadline, Duration::from_secs(2));
        assert_eq!(cli.recommender_filter(), RecommenderFilter::Any);
        assert!(cli.placement_config.is_none());
        let cli = Cli::try_parse_from([
            "tailor-admission-webhook",
            "--recommender-name",
            "tailor",
            "--deadline",
            "500ms",
        ])
        .unwrap();
        assert_eq!(
            cli.recommender_filter(),
            RecommenderFilter::Named("tailor".to_owned())
        );
        assert_eq!(cli.deadline, Duration::from_millis(500));
        assert!(!cli.register_webhook && !cli.self_signed);
    }

    #[test]
    fn registration_flags() {
        let cli = Cli::try_parse_from([
            "tailor-admission-webhook",
            "--register-webhook",
            "--self-signed",
            "--namespace",
            "autoscaling",
            "--service-name",
            "webhook",
        ])
        .unwrap();
        assert_eq!(
            cli.registration(),
            Registration {
                service_name: "webhook".into(),
                namespace: "autoscaling".into(),
                service_port: 443,
            }
        );
        for args in [
            &["tailor-admission-webhook", "--self-signed"][..],
            &["tailor-admission-webhook", "--ca-bundle-file", "ca.crt"],
            &[
                "tailor-admission-webhook",
                "--register-webhook",
                "--self-signed",
                "--ca-bundle-file",
                "ca.crt",
            ],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }

    #[test]
    fn ca_bundle_file_is_checked_before_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, "not a certificate").unwrap();
        let cli = Cli::try_parse_from([
            "tailor-admission-webhook",
            "--register-webhook",
            "--ca-bundle-file",
            path.to_str().unwrap(),
        ])
        .unwrap();
        let err = cli.initial_ca_bundle(None).unwrap_err().to_string();
        assert!(
            err.contains("ca.crt") && err.contains("no PEM certificate"),
            "{err}"
        );
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(cli.initial_ca_bundle(None).unwrap().is_some());
        let missing = Cli::try_parse_from([
            "tailor-admission-webhook",
            "--register-webhook",
            "--ca-bundle-file",
            "/nonexistent/ca.crt",
        ])
        .unwrap();
        let err = missing.initial_ca_bundle(None).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.crt"), "{err}");
    }
}
