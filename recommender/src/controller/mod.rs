//! The recommender controller (`tailor-recommender run`): every
//! `--recommender-interval` it reads the VPAs, pods and HPAs from watch
//! caches, adds fresh usage from Prometheus, recommends, and writes each VPA's
//! status when it changed; checkpoints keep the history across restarts.
//!
//! - [`state`]: the aggregates and which container feeds which (pure);
//! - [`conditions`]: the status conditions (pure);
//! - [`r#loop`]: one step (pure) and the status writes;
//! - [`oom`]: OOM kills seen in pod status (pure);
//! - [`writer`]: apply bodies, checkpoints and their garbage collection;
//! - [`history`]: the initial load from Prometheus;
//! - [`metrics`]: what the admin server exports;
//! - [`run`]: the process: flags, watches, leader election, the loop.

pub mod conditions;
pub mod history;
pub mod r#loop;
pub mod metrics;
pub mod oom;
pub mod run;
pub mod state;
pub mod writer;
