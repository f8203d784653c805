//! `tailor-sim`: offline cost simulation.
//!
//! Scenario files ([`scenario`]), demand from traces ([`trace`]) or seeded
//! synthetic workloads ([`synthetic`], [`demand`]), the virtual-clock engine
//! that drives Tailor's core decisions ([`engine`]), reports ([`report`]) and
//! strategy comparisons with sharding ([`compare`]). The `tailor-sim` binary
//! wraps them; `docs/simulator.md` documents the model.

pub mod compare;
pub mod demand;
pub mod duration;
pub mod engine;
pub mod report;
pub mod scenario;
pub mod synthetic;
pub mod trace;

use std::path::PathBuf;

/// Where the shared real data (traces, price catalog) lives: `TAILOR_SHARED_DATA`
/// when set, else `../shared/data` beside the workspace this crate was built in.
#[must_use]
pub fn shared_data_dir() -> PathBuf {
    std::env::var_os("TAILOR_SHARED_DATA").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data")),
        PathBuf::from,
    )
}
