//! `tailor-updater`: applies VPA recommendations to running pods — in-place
//! resize through `pods/resize` or eviction through the Eviction API — within
//! per-controller disruption budgets, in place of the upstream VPA updater.
//!
//! The data flows one way:
//! - [`model`]: what is kept of pods and controllers, owner resolution (pure);
//! - [`step`]: one loop's decisions, calling `tailor_core::update` (pure);
//! - [`act`]: the writer — resizes, evictions, Events, dry run;
//! - [`ratelimit`]: the token bucket of `--eviction-rate-limit`;
//! - [`metrics`]: what the admin server exports;
//! - [`run`]: the process — flags ([`run::Cli`]), watches, leader election, the loop.

pub mod act;
pub mod metrics;
pub mod model;
pub mod ratelimit;
pub mod run;
pub mod step;
