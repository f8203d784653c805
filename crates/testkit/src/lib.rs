//! Dev-only harness: real Prometheus, moto and certificates for integration tests.
//!
//! Everything here starts real components on loopback and stops them on `Drop`:
//! [`Prometheus`] (optionally with data backfilled by `promtool` from an
//! [`OpenMetrics`] document), a live [`ScrapeTarget`], [`Moto`] (the AWS mock
//! server), a [`ThrottlingProxy`] that makes moto answer as a rate-limited AWS,
//! and a test [`Pki`] made with rcgen. A missing binary is an error that
//! says how to install it; tests never skip.
//!
//! ```no_run
//! # async fn example() -> tailor_testkit::Result<()> {
//! use std::time::Duration;
//! use tailor_testkit::{OpenMetrics, Prometheus, ScrapeTarget};
//!
//! let mut history = OpenMetrics::new();
//! history.gauge("cpu_cores", &[("pod", "web-0")], [(1_700_000_000_000, 0.5)])?;
//! let live = ScrapeTarget::start().await?;
//! live.set_gauge("queue_depth", &[], 3.0)?;
//! let prometheus = Prometheus::builder()
//!     .backfill(history)
//!     .scrape_target("live", live.address())
//!     .start()
//!     .await?;
//! prometheus.wait_for_value("queue_depth", 3.0, Duration::from_secs(30)).await?;
//! let client = prometheus.client()?; // prometheus-http-query
//! # drop(client);
//! # Ok(())
//! # }
//! ```

mod aws_throttle;
mod certs;
mod error;
pub mod kube_mock;
mod moto;
mod openmetrics;
mod process;
mod prometheus;
mod target;

pub use aws_throttle::{Call, ThrottlingProxy};
pub use certs::{PemFiles, Pki, ring_provider};
pub use error::Error;
pub use moto::{Moto, REGION};
pub use openmetrics::{MetricKind, OpenMetrics};
pub use prometheus::{Prometheus, PrometheusBuilder};
pub use target::ScrapeTarget;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
