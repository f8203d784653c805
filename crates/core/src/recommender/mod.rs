//! The VPA recommender's decision core, compatible with upstream's
//! (`kubernetes/autoscaler` `vertical-pod-autoscaler/pkg/recommender`).
//!
//! Data flows one way:
//! samples → [`ContainerState`] (per running container: dedup cursor, daily
//! memory window, OOM bump) → [`AggregateContainerState`] (decaying CPU and
//! memory-peak histograms) → merged per VPA container name
//! ([`aggregate_by_container_name`]) → [`PodResourceRecommender::recommend`]
//! (estimator decorators, per-pod minimum, controlled resources, rounding,
//! capping) → [`crate::policy::PodRecommendation`].
//! States round-trip through upstream's v3 checkpoint JSON
//! ([`ContainerCheckpoint`]).
//!
//! Timestamps are Unix seconds ([`Timestamp`]) passed in by the caller; nothing
//! here reads a clock. Every default is a named constant in [`options`].

pub mod checkpoint;
pub mod cost;
pub mod error;
pub mod estimator;
pub mod histogram;
pub mod options;
pub mod recommend;
pub mod state;
pub mod units;

/// Seconds since the Unix epoch (UTC).
pub type Timestamp = i64;

pub use checkpoint::{ContainerCheckpoint, HistogramCheckpoint, format_rfc3339, parse_rfc3339};
pub use cost::CostAwareQuantile;
pub use error::RecommenderError;
pub use estimator::{
    ConfidenceMultiplier, ConstEstimator, MarginEstimator, MinResourcesEstimator,
    PercentileEstimator, ResourceEstimator, confidence,
};
pub use histogram::{DecayingHistogram, Histogram, HistogramOptions};
pub use options::{AggregationOptions, EstimationOptions, RecommenderOptions};
pub use recommend::{
    CappingPostProcessor, PodResourceRecommender, RecommendationPostProcessor,
    RecommendedContainerResources,
};
pub use state::{AggregateContainerState, ContainerState, aggregate_by_container_name};
