//! `tailor-recommender`: VPA-compatible, cost-aware recommendations.
//!
//! - [`prom`]: usage history and kube-state-metrics inventory from Prometheus
//!   (shared with the controller, which loads history at startup).
//! - [`report`]: the one-shot report — aggregation with the core engine,
//!   pricing, and the table/JSON/YAML/CSV renderings.
//! - [`controller`]: the controller (`run`): VPAs in, status and checkpoints out.
//! - [`cli`]: the command line.

pub mod cli;
pub mod controller;
pub mod prom;
pub mod report;
