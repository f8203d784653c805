//! Process plumbing shared by every Tailor binary.
//!
//! A binary's `main` installs the crypto provider ([`tls::install_crypto_provider`]),
//! parses its clap struct (which flattens the groups in [`args`]), initialises
//! logging ([`telemetry::init`]), builds a kube client ([`client::kube_client`]),
//! starts the admin server ([`admin`]) and its own work under one [`Shutdown`],
//! optionally gated by a [`lease::LeaderElector`].

pub mod admin;
pub mod args;
pub mod client;
pub mod lease;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

pub use shutdown::Shutdown;
