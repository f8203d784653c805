//! `tailor-sim`: offline cost simulation.
//!
//! This crate is being built up in pieces. What is here now: usage traces
//! (the native CSV and readers for public trace formats) and the built-in
//! synthetic workloads. The engine, scenario files and reports are not built
//! yet; there is no `tailor-sim` binary until they are.

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
