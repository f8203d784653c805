//! Helpers shared by the integration tests: fixtures and the cluster index.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::LimitRange;
use serde::Deserialize;
use std::path::PathBuf;
use tailor_admission_webhook::index::{Index, RecommenderFilter};
use tailor_api::VerticalPodAutoscaler;
use tailor_api::target::TargetObject;

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
        let kind = value["kind"].as_str().unwrap().to_owned();
        match kind.as_str() {
            "Deployment" => {
                let o: Deployment = serde_json::from_value(value).unwrap();
                index.apply_controller(TargetObject::Deployment(&o));
            }
            "ReplicaSet" => {
                let o: ReplicaSet = serde_json::from_value(value).unwrap();
                index.apply_controller(TargetObject::ReplicaSet(&o));
            }
            "CronJob" => {
                let o: CronJob = serde_json::from_value(value).unwrap();
                index.apply_controller(TargetObject::CronJob(&o));
            }
            "Job" => {
                let o: Job = serde_json::from_value(value).unwrap();
                index.apply_controller(TargetObject::Job(&o));
            }
            "VerticalPodAutoscaler" => {
                index.apply_vpa(serde_json::from_value::<VerticalPodAutoscaler>(value).unwrap());
            }
            "LimitRange" => {
                index.apply_limit_range(&serde_json::from_value::<LimitRange>(value).unwrap());
            }
            other => panic!("cluster.yaml: unexpected kind {other}"),
        }
    }
    index
}
