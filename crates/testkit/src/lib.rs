//! Dev-only harness: real Prometheus, moto and certificates for integration tests.
//!
//! Everything here starts real components on loopback and stops them on `Drop`:
//! [`Prometheus`] (optionally with data backfilled by `promtool` from an
//! [`OpenMetrics`] document), a live [`ScrapeTarget`], [`Moto`] (the AWS mock
//! server) and a test [`Pki`] made with rcgen. A missing binary is an error that
//! says how to install it; tests never skip.

mod certs;
mod error;
mod moto;
mod openmetrics;
mod process;
mod prometheus;
mod target;

pub use certs::{PemFiles, Pki, ring_provider};
pub use error::Error;
pub use moto::{Moto, REGION};
pub use openmetrics::{MetricKind, OpenMetrics};
pub use prometheus::{Prometheus, PrometheusBuilder};
pub use target::ScrapeTarget;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
