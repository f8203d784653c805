//! The binary: flags, then the caches, the admin server and the HTTPS
//! webhook under one shutdown.

use crate::index::{Index, RecommenderFilter};
use crate::placement::PlacementConfig;
use crate::server::{AppState, DEFAULT_DEADLINE, Metrics, router};
use crate::watch;
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tailor_runtime::args::{AdminArgs, KubeClientArgs, LogArgs, TlsArgs, parse_duration};
use tailor_runtime::{Shutdown, admin, client, serve, telemetry, tls};

/// How long open requests may finish after a shutdown signal.
const DRAIN: Duration = Duration::from_secs(10);

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
    let tls_config = tls::server_config(&cli.tls, None)?;
    let kube = client::kube_client(&cli.kube).await?;
    let listener = serve::bind(cli.webhook_addr).await?;

    let shutdown = Shutdown::new();
    shutdown.listen_for_signals()?;
    let mut registry = admin::component_registry("webhook");
    let metrics = Metrics::register(&mut registry);
    let readiness = admin::Readiness::new();
    let admin_state = admin::AdminState::new(registry, readiness.clone(), admin::Liveness::new());
    let admin_task = shutdown.spawn(admin::serve(
        cli.admin.admin_addr,
        admin_state,
        shutdown.token(),
        DRAIN,
    ));

    let index = Arc::new(RwLock::new(Index::new(cli.recommender_filter())));
    // Ready once every cache has been listed; until then pods are admitted
    // without a VPA match, which is still safe.
    let ready = readiness.clone();
    for handle in watch::spawn_all(
        &kube,
        &index,
        move || ready.set_ready(true),
        &shutdown.token(),
    ) {
        shutdown.spawn(handle);
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
        DRAIN,
    ));
    shutdown.drain(DRAIN + Duration::from_secs(5)).await?;
    webhook_task.await??;
    admin_task.await??;
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
    }
}
