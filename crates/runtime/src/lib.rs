//! Process plumbing shared by every Tailor binary.
//!
//! A binary's `main` installs the crypto provider, parses its clap struct
//! (which flattens the groups in [`args`]), initialises logging, and runs its
//! work under one [`Shutdown`], with the admin server beside it:
//!
//! ```no_run
//! use clap::Parser;
//! use tailor_runtime::{Shutdown, admin, args, client, lease, telemetry, tls};
//! use std::time::Duration;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)] admin: args::AdminArgs,
//!     #[command(flatten)] log: args::LogArgs,
//!     #[command(flatten)] kube: args::KubeClientArgs,
//!     #[command(flatten)] lease: args::LeaderElectionArgs,
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     tls::install_crypto_provider();
//!     let cli = Cli::parse();
//!     telemetry::init(&cli.log)?;
//!     let shutdown = Shutdown::new();
//!     shutdown.listen_for_signals()?;
//!     let kube = client::kube_client(&cli.kube).await?;
//!     let (readiness, liveness) = (admin::Readiness::new(), admin::Liveness::new());
//!     let state = admin::AdminState::new(admin::component_registry("updater"), readiness, liveness);
//!     shutdown.spawn(admin::serve(cli.admin.admin_addr, state, shutdown.token(), Duration::from_secs(10)));
//!     let config = lease::LeaseConfig::from_args(&cli.lease, "tailor-updater", kube.default_namespace())?;
//!     let elector = lease::LeaderElector::new(kube.clone(), config);
//!     let leader = elector.state(); // hand to the writer; it acts only while leader
//!     let elected = shutdown.spawn(elector.run(shutdown.token()));
//!     shutdown.drain(Duration::from_secs(30)).await?;
//!     Ok(elected.await??)
//! }
//! ```

#![warn(missing_docs)]

pub mod admin;
pub mod args;
pub mod client;
pub mod lease;
pub mod redact;
pub mod scale;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use shutdown::Shutdown;
