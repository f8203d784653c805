//! Process plumbing shared by every Tailor binary.
//!
//! A binary's `main` installs the crypto provider, parses its clap struct
//! (which flattens the groups in [`args`]), initialises logging, and runs its
//! work in a [`process::Process`]: one shutdown, the probes and the admin
//! server. A leader-elected loop also joins the Lease and waits for its caches
//! and for leadership while staying live:
//!
//! ```no_run
//! use clap::Parser;
//! use tailor_runtime::{admin, args, client, process::Process, telemetry, tls};
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
//!     let kube = client::kube_client(&cli.kube).await?;
//!     let registry = admin::component_registry("updater"); // register metrics first
//!     let process = Process::start(&cli.admin, registry).await?;
//!     let interval = Duration::from_secs(60);
//!     let heartbeat = process.heartbeat("loop", interval * 3);
//!     let mut leader = process.lease(&kube, &cli.lease, "tailor-updater")?;
//!     let caches_synced = async { Ok::<_, std::io::Error>(()) };
//!     if let Some(beating) = process.wait_to_lead(caches_synced, &mut leader, &heartbeat, interval).await? {
//!         drop(beating); // from here the loop beats itself
//!         while leader.is_leader() && !process.token().is_cancelled() {
//!             // ... one iteration ...
//!             heartbeat.beat();
//!             tokio::time::sleep(interval).await;
//!         }
//!     }
//!     process.stop().await?;
//!     Ok(())
//! }
//! ```

#![warn(missing_docs)]

pub mod admin;
pub mod args;
pub mod client;
pub mod lease;
pub mod process;
pub mod redact;
pub mod scale;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod url;

pub use shutdown::Shutdown;
