//! `autoscaling.k8s.io/v1` `VerticalPodAutoscalerCheckpoint`: the recommender's
//! histograms for one (VPA, container), saved so a restart keeps its history.
//!
//! Upstream's Go types write zero timestamps as `null` and integral floats
//! without a decimal point; the fields here keep both as written (see
//! [`HistogramCheckpoint::reference_timestamp`] and
//! [`HistogramCheckpoint::total_weight`]).

use crate::wire::{
    bucket_weights, go_float, nullable, nullable_time_schema, preserved_object_schema,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The checkpoint format version upstream's recommender writes and reads.
pub const CHECKPOINT_VERSION: &str = "v3";

/// `spec` of a `VerticalPodAutoscalerCheckpoint`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "autoscaling.k8s.io",
    version = "v1",
    kind = "VerticalPodAutoscalerCheckpoint",
    singular = "verticalpodautoscalercheckpoint",
    plural = "verticalpodautoscalercheckpoints",
    shortname = "vpacheckpoint",
    namespaced,
    status = "VerticalPodAutoscalerCheckpointStatus",
    derive = "PartialEq",
    doc = "VerticalPodAutoscalerCheckpoint is the checkpoint of the internal state of VPA that is used for recovery after recommender's restart.",
    annotation(
        "api-approved.kubernetes.io",
        "https://github.com/kubernetes/kubernetes/pull/63797"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct VerticalPodAutoscalerCheckpointSpec {
    /// Name of the VPA this checkpoint belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpa_object_name: Option<String>,
    /// Name of the checkpointed container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
}

/// `status` of a `VerticalPodAutoscalerCheckpoint`: the saved state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerticalPodAutoscalerCheckpointStatus {
    /// When the checkpoint was last written (`Some(None)`: written as `null`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "nullable_time_schema")]
    pub last_update_time: Option<Option<Time>>,
    /// Format version of the stored data (upstream: [`CHECKPOINT_VERSION`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The CPU usage histogram.
    #[serde(
        default,
        rename = "cpuHistogram",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_histogram: Option<HistogramCheckpoint>,
    /// The memory peak histogram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_histogram: Option<HistogramCheckpoint>,
    /// Start of the first sample in the histograms.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "nullable_time_schema")]
    pub first_sample_start: Option<Option<Time>>,
    /// Start of the last sample in the histograms.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "nullable_time_schema")]
    pub last_sample_start: Option<Option<Time>>,
    /// Number of samples in the histograms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_samples_count: Option<i64>,
}

/// A saved decaying histogram.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistogramCheckpoint {
    /// Reference time of the decay (`Some(None)`: written as `null`, which
    /// upstream does for an empty histogram).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "nullable_time_schema")]
    pub reference_timestamp: Option<Option<Time>>,
    /// Bucket index → weight, scaled so the largest is 10000 (upstream writes
    /// `map[int]uint32`; JSON keys are the decimal index).
    #[serde(
        default,
        deserialize_with = "bucket_weights",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "preserved_object_schema")]
    pub bucket_weights: Option<BTreeMap<u32, u32>>,
    /// The histogram's total weight, the denominator of the bucket weights.
    #[serde(
        default,
        serialize_with = "go_float",
        skip_serializing_if = "Option::is_none"
    )]
    pub total_weight: Option<f64>,
}
