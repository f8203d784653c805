//! The binary: prometheus-adapter's flags (plus Tailor's, each with a
//! `TAILOR_` environment fallback), then the relist loop, the admin server
//! and the HTTPS API under one shutdown.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tailor_runtime::args::{AdminArgs, KubeClientArgs, LogArgs, TlsArgs, parse_duration};
use tailor_runtime::process::{self, Process};
use tailor_runtime::{admin, client, serve, telemetry, tls};

use crate::auth::{AccessReviewer, Auth, TokenReviewer};
use crate::cache::{CacheOptions, ValueCache};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::objects::{ObjectCache, ObjectMetrics};
use crate::prom::{Client, ClientOptions, Verb};
use crate::query::QueryOptions;
use crate::registry::Registry;
use crate::server::{AppState, router};

/// How long startup waits for the first API discovery.
const FIRST_DISCOVERY_WAIT: Duration = Duration::from_secs(10);

/// How to reach Prometheus (prometheus-adapter's flags).
#[derive(Clone, Debug, Args)]
pub struct PrometheusArgs {
    /// URL of the Prometheus HTTP API (a path prefix is kept, e.g.
    /// http://thanos-query:9090/prefix). A user:password in the URL is never logged.
    #[arg(
        long,
        env = "TAILOR_PROMETHEUS_URL",
        default_value = "https://localhost",
        global = true
    )]
    pub prometheus_url: String,

    /// PEM file with the CA certificates that sign Prometheus' serving certificate.
    #[arg(long, env = "TAILOR_PROMETHEUS_CA_FILE", global = true)]
    pub prometheus_ca_file: Option<PathBuf>,

    /// PEM client certificate presented to Prometheus (with --prometheus-client-tls-key-file).
    #[arg(long, env = "TAILOR_PROMETHEUS_CLIENT_TLS_CERT_FILE", global = true)]
    pub prometheus_client_tls_cert_file: Option<PathBuf>,

    /// PEM private key of --prometheus-client-tls-cert-file.
    #[arg(long, env = "TAILOR_PROMETHEUS_CLIENT_TLS_KEY_FILE", global = true)]
    pub prometheus_client_tls_key_file: Option<PathBuf>,

    /// File holding a bearer token sent to Prometheus; re-read on every
    /// request, so a rotated token is picked up at once.
    #[arg(long, env = "TAILOR_PROMETHEUS_TOKEN_FILE", global = true)]
    pub prometheus_token_file: Option<PathBuf>,

    /// Extra header on every request to Prometheus, as Name=value (or
    /// "Name: value"). Repeat for several, e.g. --prometheus-header=X-Scope-OrgID=team-a.
    #[arg(
        long,
        env = "TAILOR_PROMETHEUS_HEADER",
        value_delimiter = '\n',
        global = true
    )]
    pub prometheus_header: Vec<String>,

    /// HTTP method for queries: POST (default; falls back to GET if
    /// Prometheus answers 405) or GET (always).
    #[arg(
        long,
        env = "TAILOR_PROMETHEUS_VERB",
        value_enum,
        default_value = "POST",
        ignore_case = true,
        global = true
    )]
    pub prometheus_verb: Verb,

    /// A kubeconfig-format file with Prometheus' CA and the credentials to
    /// present (client certificate, token or token file), as upstream.
    #[arg(long, env = "TAILOR_PROMETHEUS_AUTH_CONFIG", global = true)]
    pub prometheus_auth_config: Option<PathBuf>,

    /// Deadline for each call to Prometheus; past it the call fails (and a
    /// request is answered from a stale value, or with a 503).
    #[arg(long, env = "TAILOR_PROMETHEUS_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub prometheus_timeout: Duration,
}

impl PrometheusArgs {
    /// The client options these flags describe.
    #[must_use]
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            url: self.prometheus_url.clone(),
            ca_file: self.prometheus_ca_file.clone(),
            client_cert_file: self.prometheus_client_tls_cert_file.clone(),
            client_key_file: self.prometheus_client_tls_key_file.clone(),
            token_file: self.prometheus_token_file.clone(),
            headers: self.prometheus_header.clone(),
            auth_config: self.prometheus_auth_config.clone(),
            verb: Some(self.prometheus_verb),
            timeout: self.prometheus_timeout,
        }
    }
}

/// `tailor-metrics-adapter` flags. The names and meanings of
/// prometheus-adapter's flags are kept, so a Deployment switches by image.
#[derive(Clone, Debug, Parser)]
#[command(name = "tailor-metrics-adapter", version, about, long_about = None)]
pub struct Cli {
    /// Subcommand; without one, the adapter serves.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// prometheus-adapter config file (rules, externalRules, resourceRules).
    #[arg(long, env = "TAILOR_ADAPTER_CONFIG", global = true)]
    pub config: Option<PathBuf>,

    /// Validate --config, list the series each rule finds in Prometheus, print
    /// the metrics that would be served, and exit (non-zero if the config is invalid).
    #[arg(long, env = "TAILOR_CHECK_CONFIG")]
    pub check_config: bool,

    /// Prometheus connection.
    #[command(flatten)]
    pub prometheus: PrometheusArgs,

    /// How often each rule's seriesQuery is re-run to discover metrics.
    #[arg(long, env = "TAILOR_METRICS_RELIST_INTERVAL", default_value = "10m", value_parser = parse_duration, global = true)]
    pub metrics_relist_interval: Duration,

    /// How far back series discovery looks; defaults to --metrics-relist-interval.
    #[arg(long, env = "TAILOR_METRICS_MAX_AGE", value_parser = parse_duration, global = true)]
    pub metrics_max_age: Option<Duration>,

    /// How long a metric value read from Prometheus is served from memory.
    #[arg(long, env = "TAILOR_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub cache_ttl: Duration,

    /// How old a cached value may be and still be served while Prometheus
    /// is failing (it is refreshed in the background); past it, requests get a 503.
    #[arg(long, env = "TAILOR_CACHE_MAX_STALENESS", default_value = "2m", value_parser = parse_duration)]
    pub cache_max_staleness: Duration,

    /// At most this many distinct queries are cached.
    #[arg(long, env = "TAILOR_CACHE_MAX_ENTRIES", default_value_t = 10_000)]
    pub cache_max_entries: u64,

    /// Address the HTTPS API binds to.
    #[arg(long, env = "TAILOR_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// Port of the HTTPS API (kube-apiserver's APIService points here).
    #[arg(long, env = "TAILOR_SECURE_PORT", default_value_t = 6443)]
    pub secure_port: u16,

    /// Serving certificate (reloaded when the files change).
    #[command(flatten)]
    pub tls: TlsArgs,

    /// PEM CA that signs kube-apiserver's front-proxy client certificate
    /// (--proxy-client-cert-file on kube-apiserver). Required to serve.
    #[arg(long, env = "TAILOR_REQUESTHEADER_CLIENT_CA_FILE")]
    pub requestheader_client_ca_file: Option<PathBuf>,

    /// Common names accepted on front-proxy certificates, comma-separated;
    /// empty accepts any certificate the CA signed.
    #[arg(
        long,
        env = "TAILOR_REQUESTHEADER_ALLOWED_NAMES",
        value_delimiter = ','
    )]
    pub requestheader_allowed_names: Vec<String>,

    /// Headers carrying the original user name, comma-separated.
    #[arg(
        long,
        env = "TAILOR_REQUESTHEADER_USERNAME_HEADERS",
        value_delimiter = ',',
        default_value = "X-Remote-User"
    )]
    pub requestheader_username_headers: Vec<String>,

    /// Headers carrying the original user's groups, comma-separated.
    #[arg(
        long,
        env = "TAILOR_REQUESTHEADER_GROUP_HEADERS",
        value_delimiter = ',',
        default_value = "X-Remote-Group"
    )]
    pub requestheader_group_headers: Vec<String>,

    /// Also accept callers without a front-proxy certificate that present a
    /// bearer token, verified with a TokenReview (needs Kubernetes API access).
    #[arg(long, env = "TAILOR_AUTHENTICATION_TOKEN_WEBHOOK", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub authentication_token_webhook: bool,

    /// How long a TokenReview answer is reused.
    #[arg(long, env = "TAILOR_AUTHENTICATION_TOKEN_WEBHOOK_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub authentication_token_webhook_cache_ttl: Duration,

    /// AlwaysAllow: every authenticated caller may read every metric
    /// (kube-apiserver has already authorized the user for the API).
    /// Webhook: each metric read is checked with a SubjectAccessReview for
    /// the original user (discovery stays open to authenticated callers).
    #[arg(
        long,
        env = "TAILOR_AUTHORIZATION_MODE",
        value_enum,
        default_value = "AlwaysAllow"
    )]
    pub authorization_mode: AuthorizationMode,

    /// How long a SubjectAccessReview decision is reused.
    #[arg(long, env = "TAILOR_AUTHORIZATION_WEBHOOK_CACHE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub authorization_webhook_cache_ttl: Duration,

    /// Use the Kubernetes API (in-cluster or kubeconfig): API discovery maps
    /// every resource it lists (not only the built-in ones), and a watch
    /// cache finds the objects a labelSelector picks. Off, or with no
    /// configuration found, the adapter runs from Prometheus alone.
    #[arg(long, env = "TAILOR_USE_KUBERNETES_API", default_value_t = true, action = clap::ArgAction::Set)]
    pub use_kubernetes_api: bool,

    /// Admin server (probes and metrics).
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Kubernetes client limits.
    #[command(flatten)]
    pub kube: KubeClientArgs,
}

/// `--authorization-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthorizationMode {
    /// Every authenticated caller may read every metric.
    #[value(name = "AlwaysAllow")]
    AlwaysAllow,
    /// SubjectAccessReview per metric read, with a decision cache.
    #[value(name = "Webhook")]
    Webhook,
}

/// Subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Print, for an HPA manifest, the metric values it would see now and the
    /// replica count it would choose (needs --config and --prometheus-url).
    Preview(crate::preview::PreviewArgs),
}

impl Cli {
    /// The series discovery window.
    #[must_use]
    pub fn max_age(&self) -> Duration {
        self.metrics_max_age.unwrap_or(self.metrics_relist_interval)
    }

    fn load_config(&self) -> anyhow::Result<Config> {
        let path = self.config.as_ref().context(
            "--config is required: the prometheus-adapter config file with the rules to serve",
        )?;
        Ok(Config::load(path)?)
    }
}

/// Runs the chosen mode.
///
/// # Errors
/// Bad flags or config, unusable certificates or ports, a failed drain.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    telemetry::init(&cli.log)?;
    if cli.check_config {
        return check_config(&cli).await;
    }
    if let Some(Command::Preview(args)) = &cli.command {
        let config = cli.load_config()?;
        let client = Client::new(&cli.prometheus.client_options())?;
        let out = crate::preview::preview(&config, &client, args, cli.max_age()).await?;
        print!("{out}");
        return Ok(());
    }
    serve_api(cli).await
}

async fn check_config(cli: &Cli) -> anyhow::Result<()> {
    let config = cli.load_config()?;
    println!(
        "{}: valid ({} rules, {} external rules{})",
        config.file,
        config.rules.len(),
        config.external_rules.len(),
        if config.resource_rules.is_some() {
            ", resource rules"
        } else {
            ""
        }
    );
    let client = Client::new(&cli.prometheus.client_options())?;
    let queries: BTreeSet<&str> = config
        .rules
        .iter()
        .chain(&config.external_rules)
        .map(|r| r.series_query.source())
        .collect();
    let mut series = Vec::new();
    for q in queries {
        let found = client
            .series_with_values(q, cli.max_age())
            .await
            .with_context(|| format!("cannot list the series of seriesQuery {q:?}"))?;
        series.extend(found);
    }
    print!(
        "{}",
        crate::discovery::served_metrics(&config, &series).report()
    );
    Ok(())
}

async fn serve_api(cli: Cli) -> anyhow::Result<()> {
    let config = Arc::new(cli.load_config()?);
    let ca = cli.requestheader_client_ca_file.clone().context(
        "--requestheader-client-ca-file is required to serve: the CA of kube-apiserver's front-proxy \
         client certificate (kube-system/extension-apiserver-authentication, requestheader-client-ca-file)",
    )?;
    let client = Client::new(&cli.prometheus.client_options())?;
    let tls_config = tls::server_config(
        &cli.tls,
        Some(&tls::ClientAuth {
            ca_file: ca,
            // Without a certificate the TLS handshake still succeeds, so
            // health checks work and API calls get a clear 401 Status.
            required: false,
        }),
    )?;
    let needs_kube =
        cli.authentication_token_webhook || cli.authorization_mode == AuthorizationMode::Webhook;
    let kube = if cli.use_kubernetes_api || needs_kube {
        match client::kube_client(&cli.kube).await {
            Ok(k) => Some(k),
            Err(e) if needs_kube => {
                return Err(e).context(
                    "--authentication-token-webhook and --authorization-mode=Webhook need Kubernetes API access",
                );
            }
            Err(e) => {
                tracing::info!(error = %e, "no Kubernetes API access: serving from Prometheus alone (labelSelector on wildcard requests is refused)");
                None
            }
        }
    } else {
        None
    };
    let addr = SocketAddr::new(cli.bind_address, cli.secure_port);
    let listener = serve::bind(addr).await?;

    let mut registry = admin::component_registry("metrics-adapter");
    let metrics = Metrics::register(&mut registry);
    let object_metrics = ObjectMetrics::register(&mut registry);
    let process = Process::start(&cli.admin, registry).await?;
    let shutdown = process.shutdown().clone();
    let readiness = process.readiness().clone();
    let heartbeat = process.heartbeat(
        "relist_loop",
        // A relist round may take a series listing's full deadline.
        crate::prom::SERIES_TIMEOUT.max(cli.prometheus.prometheus_timeout) * 2
            + Duration::from_secs(60),
    );

    let resources = crate::naming::KnownResources::default();
    let api_discovery = kube.clone().filter(|_| cli.use_kubernetes_api);
    let served = Arc::new(Registry::with_resources(config, resources.clone()));
    let objects = api_discovery.clone().map(|k| {
        ObjectCache::new(
            k,
            resources.clone(),
            crate::objects::CacheOptions::default(),
            object_metrics,
            shutdown.token(),
        )
    });
    let relist = crate::relist::run(
        served.clone(),
        client.clone(),
        cli.metrics_relist_interval,
        cli.max_age(),
        metrics.clone(),
        shutdown.token(),
        move || heartbeat.beat(),
    );
    let (known, interval, token) = (
        resources.clone(),
        cli.metrics_relist_interval,
        shutdown.token(),
    );
    shutdown.spawn(async move {
        // API discovery first, so the first relist maps series to every
        // resource; the API is served meanwhile.
        if let Some(k) = api_discovery {
            crate::apidiscovery::first(&k, &known, FIRST_DISCOVERY_WAIT).await;
            tokio::spawn(crate::apidiscovery::run(k, known, interval, token));
        }
        relist.await;
    });
    let cache = ValueCache::new(
        CacheOptions {
            ttl: cli.cache_ttl,
            max_staleness: cli.cache_max_staleness,
            max_entries: cli.cache_max_entries,
        },
        metrics.clone(),
    );
    let mut auth = Auth::new(cli.requestheader_allowed_names.clone());
    auth.username_headers = cli.requestheader_username_headers.clone();
    auth.group_headers = cli.requestheader_group_headers.clone();
    if let Some(k) = &kube {
        if cli.authentication_token_webhook {
            auth.tokens = Some(TokenReviewer::new(
                k.clone(),
                cli.authentication_token_webhook_cache_ttl,
            ));
        }
        if cli.authorization_mode == AuthorizationMode::Webhook {
            auth.access = Some(AccessReviewer::new(
                k.clone(),
                cli.authorization_webhook_cache_ttl,
            ));
        }
    }
    let state = AppState {
        registry: served,
        client,
        cache,
        metrics,
        auth: Arc::new(auth),
        objects,
        query_options: QueryOptions::default(),
    };
    tracing::info!(%addr, "metrics API listening");
    // Discovery is served from memory from the first request on.
    readiness.set_ready(true);
    let api_task = shutdown.spawn(serve::serve_tls(
        listener,
        tls_config,
        router(state),
        shutdown.token(),
        process::DRAIN,
    ));
    process.finish().await?;
    api_task.await??;
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
    fn upstream_flags_parse_with_upstream_defaults() {
        let cli = Cli::try_parse_from(["tailor-metrics-adapter", "--config=/c.yaml"]).unwrap();
        assert_eq!(cli.metrics_relist_interval, Duration::from_secs(600));
        assert_eq!(cli.max_age(), Duration::from_secs(600));
        assert_eq!(cli.secure_port, 6443);
        assert_eq!(cli.prometheus.prometheus_verb, Verb::Post);
        let cli = Cli::try_parse_from([
            "tailor-metrics-adapter",
            "--prometheus-url=http://prometheus-operated.monitoring.svc:9090",
            "--config=/etc/tailor/adapter/config.yaml",
            "--metrics-relist-interval=1m",
            "--metrics-max-age=5m",
            "--secure-port=6443",
            "--tls-cert-file=/etc/tailor/tls/tls.crt",
            "--tls-private-key-file=/etc/tailor/tls/tls.key",
            "--requestheader-client-ca-file=/ca.crt",
            "--requestheader-allowed-names=front-proxy-client,aggregator",
            "--prometheus-header=X-Scope-OrgID=a",
            "--prometheus-header=X-Other=b",
            "--prometheus-verb=GET",
            "--prometheus-ca-file=/p/ca.crt",
            "--prometheus-token-file=/p/token",
            "--prometheus-client-tls-cert-file=/p/c.crt",
            "--prometheus-client-tls-key-file=/p/c.key",
            "--prometheus-auth-config=/p/kubeconfig",
        ])
        .unwrap();
        assert_eq!(cli.max_age(), Duration::from_secs(300));
        assert_eq!(
            cli.requestheader_allowed_names,
            ["front-proxy-client", "aggregator"]
        );
        assert_eq!(
            cli.prometheus.prometheus_header,
            ["X-Scope-OrgID=a", "X-Other=b"]
        );
        assert_eq!(cli.prometheus.prometheus_verb, Verb::Get);
        let cli = Cli::try_parse_from([
            "tailor-metrics-adapter",
            "preview",
            "--hpa=h.yaml",
            "--config=/c.yaml",
            "--prometheus-url=http://p:9090",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Preview(_))));
        assert!(
            Cli::try_parse_from(["tailor-metrics-adapter", "--metrics-relist-interval=often"])
                .is_err()
        );
    }
}
