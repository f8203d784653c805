//! Helpers shared by the integration tests: fixtures and the cluster index.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use std::path::PathBuf;
use tailor_admission_webhook::index::{Index, RecommenderFilter};

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The index the watches would have built from `cluster.yaml`.
pub fn cluster_index() -> Index {
    let mut index = Index::new(RecommenderFilter::Any);
    for doc in serde_yaml::Deserializer::from_str(&fixture("cluster.yaml")) {
        let value = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        index
            .apply_object(value)
            .unwrap_or_else(|err| panic!("cluster.yaml: {err}"));
    }
    index
}
