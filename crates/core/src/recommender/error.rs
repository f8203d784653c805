//! The recommender's typed errors.

use super::Timestamp;
use crate::resources::ResourceName;

/// Something the recommender refused, naming the offending input.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RecommenderError {
    /// A usage sample was NaN, infinite or negative.
    #[error("invalid {resource} usage sample {value}: must be finite and non-negative")]
    InvalidSample {
        /// Which resource the sample measured.
        resource: ResourceName,
        /// The rejected value.
        value: f64,
    },
    /// A request attached to a sample was NaN, infinite or negative.
    #[error("invalid {resource} request {value}: must be finite and non-negative")]
    InvalidRequest {
        /// Which resource the request is for.
        resource: ResourceName,
        /// The rejected value.
        value: f64,
    },
    /// A histogram sample value or weight was NaN, infinite or negative.
    #[error("invalid histogram {what} {value}: must be finite and non-negative")]
    InvalidHistogramInput {
        /// `value` or `weight`.
        what: &'static str,
        /// The rejected number.
        value: f64,
    },
    /// Histogram layout parameters out of range.
    #[error("invalid histogram options: {reason}")]
    InvalidHistogramOptions {
        /// What was wrong.
        reason: &'static str,
    },
    /// Two histograms with different layouts or half-lives were combined.
    #[error("cannot merge histograms: {reason}")]
    IncompatibleHistograms {
        /// What differed.
        reason: &'static str,
    },
    /// An OOM event older than the current memory aggregation interval.
    #[error(
        "OOM at {timestamp} discarded: older than the current interval starting at {interval_start}"
    )]
    OomTooOld {
        /// When the OOM happened (Unix seconds).
        timestamp: Timestamp,
        /// Start of the current memory aggregation interval (Unix seconds).
        interval_start: Timestamp,
    },
    /// An option out of range.
    #[error("invalid option {field} = {value}: {reason}")]
    InvalidOption {
        /// The option's field name.
        field: &'static str,
        /// The rejected value.
        value: f64,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A checkpoint of an unsupported version.
    #[error("unsupported checkpoint version {0:?} (supported: \"v3\")")]
    UnsupportedCheckpointVersion(String),
    /// A checkpoint with a negative total weight.
    #[error("checkpoint has negative or non-finite total weight {0}")]
    InvalidCheckpointWeight(f64),
    /// A checkpoint bucket index outside the histogram.
    #[error("checkpoint bucket {bucket} outside the histogram's {num_buckets} buckets")]
    CheckpointBucketOutOfRange {
        /// The bucket index found.
        bucket: i64,
        /// How many buckets the histogram has.
        num_buckets: usize,
    },
    /// A timestamp string that is not RFC 3339.
    #[error("invalid RFC 3339 timestamp {0:?}")]
    InvalidTimestamp(String),
}

impl RecommenderError {
    /// A stable label for metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            RecommenderError::InvalidSample { .. } => "invalid_sample",
            RecommenderError::InvalidRequest { .. } => "invalid_request",
            RecommenderError::InvalidHistogramInput { .. } => "invalid_histogram_input",
            RecommenderError::InvalidHistogramOptions { .. } => "invalid_histogram_options",
            RecommenderError::IncompatibleHistograms { .. } => "incompatible_histograms",
            RecommenderError::OomTooOld { .. } => "oom_too_old",
            RecommenderError::InvalidOption { .. } => "invalid_option",
            RecommenderError::UnsupportedCheckpointVersion(_) => "unsupported_checkpoint_version",
            RecommenderError::InvalidCheckpointWeight(_) => "invalid_checkpoint_weight",
            RecommenderError::CheckpointBucketOutOfRange { .. } => "checkpoint_bucket_out_of_range",
            RecommenderError::InvalidTimestamp(_) => "invalid_timestamp",
        }
    }
}
