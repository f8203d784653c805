//! Tailor's decision engine.
//!
//! Every decision Tailor makes — a quantity parsed, a recommendation computed, a
//! pod chosen for update, a node group picked, a replica count — is a pure
//! function here. No I/O, no clocks, no async: the live binaries and the
//! simulator call the same code, so what the simulator predicts is what
//! production does.

pub mod admission;
pub mod catalog;
pub mod cost;
pub mod expander;
pub mod hpa;
pub mod policy;
pub mod quantity;
pub mod recommender;
pub mod resources;
pub mod scheduling;
pub mod update;
