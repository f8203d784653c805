//! Command line: `decide` (explain one decision) and `serve` (CA's gRPC expander).

use crate::engine::Expander;
use crate::grpc::{ExpanderService, Metrics, TlsPem};
use crate::output;
use crate::request::DecideRequest;
use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tailor_core::catalog::{Catalog, CatalogError};
use tailor_core::expander::{ChainConfig, CostConfig, ExpanderError, PriorityFilter};

/// `tailor-expander`: picks the node group to grow, by price or least waste.
#[derive(Debug, Parser)]
#[command(name = "tailor-expander", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain the decision for one BestOptionsRequest (JSON file).
    Decide(DecideArgs),
    /// Serve Cluster Autoscaler's gRPC expander (`--expander=grpc`).
    Serve(ServeArgs),
    /// Grow AWS Auto Scaling groups directly (discovered by Cluster Autoscaler's tags).
    Aws(Box<crate::aws::AwsArgs>),
}

/// How a decision is printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// `{"best": [...], "steps": [...]}`.
    #[default]
    Json,
    /// Step-by-step, for a person.
    Table,
}

/// The chain and what its expanders need.
#[derive(Clone, Debug, Args)]
pub struct ChainArgs {
    /// Expander chain, e.g. `priority,price,least-waste` (CA's `--expander` syntax).
    #[arg(long, env = "TAILOR_EXPANDER")]
    pub expander: String,
    /// Instance-type price catalog, CSV (columns of aws-ec2-us-east-1.csv).
    #[arg(long, env = "TAILOR_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// Catalog overrides, YAML (spot prices, discounts, rates, node groups).
    #[arg(long, env = "TAILOR_CATALOG_OVERRIDES")]
    pub overrides: Option<PathBuf>,
    /// Priority expander configuration: the `priorities` YAML, or the whole
    /// `cluster-autoscaler-priority-expander` ConfigMap.
    #[arg(long, env = "TAILOR_PRIORITIES")]
    pub priorities: Option<PathBuf>,
    /// Seed of the random pick among ties.
    #[arg(long, env = "TAILOR_SEED", default_value_t = 0)]
    pub seed: u64,
    /// Nodes in the cluster; sizes the `price` expander's preferred node.
    #[arg(long, env = "TAILOR_CLUSTER_NODE_COUNT", default_value_t = 0)]
    pub cluster_node_count: usize,
    /// `cost`: fraction off on-demand for spot nodes without a known spot price.
    #[arg(long, env = "TAILOR_SPOT_DISCOUNT")]
    pub spot_discount: Option<f64>,
    /// `cost`: interruption penalty per spot node-hour, as a fraction of on-demand.
    #[arg(long, env = "TAILOR_INTERRUPTION_PENALTY", default_value_t = 0.0)]
    pub interruption_penalty: f64,
}

/// `decide` arguments.
#[derive(Clone, Debug, Args)]
pub struct DecideArgs {
    /// The request: `{"options": [...], "nodeMap": {...}}` with Kubernetes JSON objects.
    #[arg(long)]
    pub options: PathBuf,
    /// The chain and its inputs.
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
}

/// `serve` arguments.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TAILOR_LISTEN", default_value = "0.0.0.0:7000")]
    pub listen: SocketAddr,
    /// Server certificate chain, PEM (CA's `--grpc-expander-cert` must trust it).
    #[arg(long, env = "TAILOR_TLS_CERT_FILE", requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// Server private key, PEM.
    #[arg(long, env = "TAILOR_TLS_PRIVATE_KEY_FILE", requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// Serve without TLS (Cluster Autoscaler itself requires TLS; for local tests).
    #[arg(long, conflicts_with = "tls_cert_file")]
    pub plaintext: bool,
    /// The chain and its inputs.
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "TAILOR_LOG", default_value = "info")]
    pub log_filter: String,
}

/// The configuration is unusable; names the file or flag.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The catalog or its overrides are malformed.
    #[error("{path}: {error}")]
    Catalog {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: CatalogError,
    },
    /// The priorities are malformed.
    #[error("{path}: {error}")]
    Priorities {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        error: ExpanderError,
    },
    /// The chain is malformed or lacks an input.
    #[error("--expander: {0}")]
    Chain(ExpanderError),
    /// A flag is out of range.
    #[error("{flag}: {reason}")]
    Flag {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// Neither TLS files nor `--plaintext` were given.
    #[error("serve needs --tls-cert-file and --tls-private-key-file (or --plaintext)")]
    NoTls,
}

pub(crate) fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })
}

/// The priorities text inside a ConfigMap, or the text itself.
fn priorities_text(text: &str) -> String {
    let Ok(serde_yaml::Value::Mapping(map)) = serde_yaml::from_str::<serde_yaml::Value>(text)
    else {
        return text.to_owned();
    };
    if map.get("kind").and_then(serde_yaml::Value::as_str) != Some("ConfigMap") {
        return text.to_owned();
    }
    map.get("data")
        .and_then(|d| d.get("priorities"))
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or("")
        .to_owned()
}

impl ChainArgs {
    /// Reads the catalog (with its overrides), if any.
    pub fn load_catalog(&self) -> Result<Option<Catalog>, ConfigError> {
        let catalog = match &self.catalog {
            Some(path) => {
                Some(
                    Catalog::from_csv(&read(path)?).map_err(|error| ConfigError::Catalog {
                        path: path.clone(),
                        error,
                    })?,
                )
            }
            None => None,
        };
        Ok(match &self.overrides {
            Some(path) => Some(
                catalog
                    .unwrap_or_default()
                    .with_overrides_yaml(&read(path)?)
                    .map_err(|error| ConfigError::Catalog {
                        path: path.clone(),
                        error,
                    })?,
            ),
            None => catalog,
        })
    }

    /// Checks the flags, reads the priorities, and configures the chain with
    /// `catalog` as its pricing.
    pub fn chain_config(&self, catalog: Option<Arc<Catalog>>) -> Result<ChainConfig, ConfigError> {
        if let Some(d) = self.spot_discount
            && !(0.0..1.0).contains(&d)
        {
            return Err(ConfigError::Flag {
                flag: "--spot-discount",
                reason: "must be a fraction in [0, 1)",
            });
        }
        if !(self.interruption_penalty.is_finite() && self.interruption_penalty >= 0.0) {
            return Err(ConfigError::Flag {
                flag: "--interruption-penalty",
                reason: "must be a number ≥ 0",
            });
        }
        let priorities = match &self.priorities {
            Some(path) => Some(
                PriorityFilter::from_yaml(&priorities_text(&read(path)?)).map_err(|error| {
                    ConfigError::Priorities {
                        path: path.clone(),
                        error,
                    }
                })?,
            ),
            None => None,
        };
        Ok(ChainConfig {
            pricing: catalog.map(|c| c as _),
            priorities,
            cost: CostConfig {
                spot_discount: self.spot_discount,
                interruption_penalty: self.interruption_penalty,
            },
        })
    }

    /// Reads the files and builds the expander.
    pub fn load(&self) -> Result<Expander, ConfigError> {
        let catalog = self.load_catalog()?.map(Arc::new);
        let config = self.chain_config(catalog)?;
        Expander::new(&self.expander, &config, self.seed, self.cluster_node_count)
            .map_err(ConfigError::Chain)
    }
}

/// Runs `decide`, returning what to print.
pub fn decide(args: &DecideArgs) -> anyhow::Result<String> {
    let expander = args.chain.load()?;
    let text = read(&args.options)?;
    let path = args.options.display();
    let request = DecideRequest::from_json(&text)
        .and_then(|r| r.to_request())
        .with_context(|| format!("{path}"))?;
    let explanation = expander
        .decide(&request)
        .with_context(|| format!("{path}"))?;
    Ok(match args.format {
        Format::Json => output::json(&explanation, &request)? + "\n",
        Format::Table => output::table(&explanation, &request, expander.spec()),
    })
}

/// Runs `serve` until SIGINT or SIGTERM.
pub async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let expander = Arc::new(args.chain.load()?);
    let tls = match (&args.tls_cert_file, &args.tls_private_key_file) {
        (Some(cert), Some(key)) => Some(TlsPem {
            cert: std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?,
            key: std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
        }),
        _ if args.plaintext => None,
        _ => return Err(ConfigError::NoTls.into()),
    };
    let metrics = Metrics::default();
    let mut registry = Registry::with_prefix("tailor_expander");
    metrics.register(&mut registry);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(
        listen = %args.listen,
        chain = expander.spec(),
        tls = tls.is_some(),
        "serving grpcplugin.Expander"
    );
    let service = ExpanderService::new(expander, metrics);
    crate::grpc::serve(listener, tls, service, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
