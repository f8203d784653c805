//! Checks for `deploy/`: a renderer for the kustomize subset the manifests use
//! ([`kustomize`]) and RBAC as comparable permission sets ([`rbac`]). The
//! checks themselves are the tests in `tests/manifests.rs`.

pub mod kustomize;
pub mod rbac;

use std::path::PathBuf;

/// The repository root (this crate lives in `deploy/tests`).
#[must_use]
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .components()
        .collect()
}
