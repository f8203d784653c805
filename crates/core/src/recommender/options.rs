//! Every recommender default as a named constant, gathered into option structs
//! with `Default` so a binary can expose each one as a flag.
//!
//! Values are upstream's (VPA recommender `aggregations_config.go`,
//! `logic/recommender.go`, `model/container.go`).

use super::cost::CostAwareQuantile;
use super::error::RecommenderError;
use super::histogram::HistogramOptions;
use crate::policy::PartialResources;

/// Seconds in an hour.
pub const HOUR_SECS: i64 = 3600;
/// Seconds in a day.
pub const DAY_SECS: i64 = 24 * HOUR_SECS;

/// Growth of each histogram bucket over the previous one (5%).
pub const DEFAULT_HISTOGRAM_BUCKET_SIZE_GROWTH: f64 = 0.05;
/// Size of the first CPU bucket, in cores.
pub const DEFAULT_CPU_FIRST_BUCKET_CORES: f64 = 0.01;
/// Largest CPU value the histogram resolves, in cores.
pub const DEFAULT_CPU_MAX_CORES: f64 = 1000.0;
/// Size of the first memory bucket, in bytes.
pub const DEFAULT_MEMORY_FIRST_BUCKET_BYTES: f64 = 1e7;
/// Largest memory value the histogram resolves, in bytes.
pub const DEFAULT_MEMORY_MAX_BYTES: f64 = 1e12;
/// Smallest weight of a CPU sample before decay (cores of request).
pub const DEFAULT_MIN_SAMPLE_WEIGHT: f64 = 0.1;
/// Minimum bucket weight counted as non-empty: small enough that the oldest
/// kept samples added with the minimum weight still count.
pub const DEFAULT_EPSILON: f64 = 0.001 * DEFAULT_MIN_SAMPLE_WEIGHT;
/// Half-life of CPU sample weights, in seconds (24h).
pub const DEFAULT_CPU_HISTOGRAM_DECAY_HALF_LIFE_SECS: i64 = DAY_SECS;
/// Half-life of memory peak weights, in seconds (24h).
pub const DEFAULT_MEMORY_HISTOGRAM_DECAY_HALF_LIFE_SECS: i64 = DAY_SECS;
/// Length of one memory aggregation interval (one peak per interval), seconds.
pub const DEFAULT_MEMORY_AGGREGATION_INTERVAL_SECS: i64 = DAY_SECS;
/// Number of memory aggregation intervals kept (8 days of history).
pub const DEFAULT_MEMORY_AGGREGATION_INTERVAL_COUNT: i64 = 8;

/// Memory multiplier applied after an OOM kill.
pub const DEFAULT_OOM_BUMP_UP_RATIO: f64 = 1.2;
/// Minimum memory added after an OOM kill, in bytes (100 MiB).
pub const DEFAULT_OOM_MIN_BUMP_UP_BYTES: f64 = 100.0 * 1024.0 * 1024.0;

/// CPU usage percentile used for the target.
pub const DEFAULT_TARGET_CPU_PERCENTILE: f64 = 0.9;
/// CPU usage percentile used for the lower bound.
pub const DEFAULT_LOWER_BOUND_CPU_PERCENTILE: f64 = 0.5;
/// CPU usage percentile used for the upper bound.
pub const DEFAULT_UPPER_BOUND_CPU_PERCENTILE: f64 = 0.95;
/// Memory peak percentile used for the target.
pub const DEFAULT_TARGET_MEMORY_PERCENTILE: f64 = 0.9;
/// Memory peak percentile used for the lower bound.
pub const DEFAULT_LOWER_BOUND_MEMORY_PERCENTILE: f64 = 0.5;
/// Memory peak percentile used for the upper bound.
pub const DEFAULT_UPPER_BOUND_MEMORY_PERCENTILE: f64 = 0.95;
/// Fraction of the estimate added as a safety margin.
pub const DEFAULT_SAFETY_MARGIN_FRACTION: f64 = 0.15;
/// Upper-bound confidence multiplier: upper × (1 + 1/c)^1.
pub const DEFAULT_UPPER_BOUND_CONFIDENCE_MULTIPLIER: f64 = 1.0;
/// Upper-bound confidence exponent.
pub const DEFAULT_UPPER_BOUND_CONFIDENCE_EXPONENT: f64 = 1.0;
/// Lower-bound confidence multiplier: lower × (1 + 0.001/c)^−2.
pub const DEFAULT_LOWER_BOUND_CONFIDENCE_MULTIPLIER: f64 = 0.001;
/// Lower-bound confidence exponent.
pub const DEFAULT_LOWER_BOUND_CONFIDENCE_EXPONENT: f64 = -2.0;
/// Samples per day that count as one day of confidence (one per minute).
pub const CONFIDENCE_SAMPLES_PER_DAY: f64 = 60.0 * 24.0;
/// Minimum CPU recommendation for a whole pod, millicores.
pub const DEFAULT_POD_MIN_CPU_MILLICORES: f64 = 25.0;
/// Minimum memory recommendation for a whole pod, MiB.
pub const DEFAULT_POD_MIN_MEMORY_MB: f64 = 250.0;
/// CPU recommendations are rounded up to a multiple of this many millicores.
pub const DEFAULT_ROUND_CPU_MILLICORES: i64 = 1;
/// Largest resource amount a recommendation may hold (upstream's `MaxResourceAmount`).
pub const MAX_RESOURCE_AMOUNT: i64 = 100_000_000_000_000;
/// Largest weight stored per bucket in a checkpoint.
pub const MAX_CHECKPOINT_WEIGHT: u32 = 10_000;
/// Checkpoint format version this code reads and writes.
pub const SUPPORTED_CHECKPOINT_VERSION: &str = "v3";
/// Renormalise a decaying histogram before its decay factor exceeds 2^this.
pub const MAX_DECAY_EXPONENT: i64 = 100;

/// How samples are aggregated: histogram layout, decay and memory windows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AggregationOptions {
    /// Bucket growth ratio minus one.
    pub histogram_bucket_size_growth: f64,
    /// First CPU bucket size, cores.
    pub cpu_first_bucket_cores: f64,
    /// Largest CPU value resolved, cores.
    pub cpu_max_cores: f64,
    /// First memory bucket size, bytes.
    pub memory_first_bucket_bytes: f64,
    /// Largest memory value resolved, bytes.
    pub memory_max_bytes: f64,
    /// Minimum bucket weight counted as non-empty.
    pub epsilon: f64,
    /// Smallest CPU sample weight before decay.
    pub min_sample_weight: f64,
    /// CPU half-life, seconds.
    pub cpu_half_life_secs: i64,
    /// Memory half-life, seconds.
    pub memory_half_life_secs: i64,
    /// One memory peak per this many seconds.
    pub memory_aggregation_interval_secs: i64,
    /// How many memory intervals make up the history window.
    pub memory_aggregation_interval_count: i64,
    /// OOM bump ratio.
    pub oom_bump_up_ratio: f64,
    /// OOM minimum bump, bytes.
    pub oom_min_bump_up_bytes: f64,
}

impl Default for AggregationOptions {
    fn default() -> Self {
        AggregationOptions {
            histogram_bucket_size_growth: DEFAULT_HISTOGRAM_BUCKET_SIZE_GROWTH,
            cpu_first_bucket_cores: DEFAULT_CPU_FIRST_BUCKET_CORES,
            cpu_max_cores: DEFAULT_CPU_MAX_CORES,
            memory_first_bucket_bytes: DEFAULT_MEMORY_FIRST_BUCKET_BYTES,
            memory_max_bytes: DEFAULT_MEMORY_MAX_BYTES,
            epsilon: DEFAULT_EPSILON,
            min_sample_weight: DEFAULT_MIN_SAMPLE_WEIGHT,
            cpu_half_life_secs: DEFAULT_CPU_HISTOGRAM_DECAY_HALF_LIFE_SECS,
            memory_half_life_secs: DEFAULT_MEMORY_HISTOGRAM_DECAY_HALF_LIFE_SECS,
            memory_aggregation_interval_secs: DEFAULT_MEMORY_AGGREGATION_INTERVAL_SECS,
            memory_aggregation_interval_count: DEFAULT_MEMORY_AGGREGATION_INTERVAL_COUNT,
            oom_bump_up_ratio: DEFAULT_OOM_BUMP_UP_RATIO,
            oom_min_bump_up_bytes: DEFAULT_OOM_MIN_BUMP_UP_BYTES,
        }
    }
}

impl AggregationOptions {
    /// The CPU histogram layout (values in cores).
    pub fn cpu_histogram(&self) -> Result<HistogramOptions, RecommenderError> {
        HistogramOptions::exponential(
            self.cpu_max_cores,
            self.cpu_first_bucket_cores,
            1.0 + self.histogram_bucket_size_growth,
            self.epsilon,
        )
    }

    /// The memory histogram layout (values in bytes).
    pub fn memory_histogram(&self) -> Result<HistogramOptions, RecommenderError> {
        HistogramOptions::exponential(
            self.memory_max_bytes,
            self.memory_first_bucket_bytes,
            1.0 + self.histogram_bucket_size_growth,
            self.epsilon,
        )
    }

    /// The whole memory history window, seconds (8 × 24h by default).
    #[must_use]
    pub fn memory_aggregation_window_secs(&self) -> i64 {
        self.memory_aggregation_interval_secs
            .saturating_mul(self.memory_aggregation_interval_count)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), RecommenderError> {
        self.cpu_histogram()?;
        self.memory_histogram()?;
        positive_f64("min_sample_weight", self.min_sample_weight)?;
        positive_i64("cpu_half_life_secs", self.cpu_half_life_secs)?;
        positive_i64("memory_half_life_secs", self.memory_half_life_secs)?;
        positive_i64(
            "memory_aggregation_interval_secs",
            self.memory_aggregation_interval_secs,
        )?;
        positive_i64(
            "memory_aggregation_interval_count",
            self.memory_aggregation_interval_count,
        )?;
        if !(self.oom_bump_up_ratio.is_finite() && self.oom_bump_up_ratio >= 1.0) {
            return Err(RecommenderError::InvalidOption {
                field: "oom_bump_up_ratio",
                value: self.oom_bump_up_ratio,
                reason: "must be finite and at least 1",
            });
        }
        non_negative_f64("oom_min_bump_up_bytes", self.oom_min_bump_up_bytes)
    }
}

/// How estimates become recommendations: percentiles, margin, confidence,
/// per-pod minimum, rounding, global caps and the opt-in cost-aware target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EstimationOptions {
    /// CPU target percentile (overridden by `cost_aware` when set).
    pub target_cpu_percentile: f64,
    /// CPU lower-bound percentile.
    pub lower_bound_cpu_percentile: f64,
    /// CPU upper-bound percentile.
    pub upper_bound_cpu_percentile: f64,
    /// Memory target percentile.
    pub target_memory_percentile: f64,
    /// Memory lower-bound percentile.
    pub lower_bound_memory_percentile: f64,
    /// Memory upper-bound percentile.
    pub upper_bound_memory_percentile: f64,
    /// Safety margin fraction.
    pub safety_margin_fraction: f64,
    /// Upper-bound confidence multiplier.
    pub upper_bound_confidence_multiplier: f64,
    /// Upper-bound confidence exponent.
    pub upper_bound_confidence_exponent: f64,
    /// Lower-bound confidence multiplier.
    pub lower_bound_confidence_multiplier: f64,
    /// Lower-bound confidence exponent.
    pub lower_bound_confidence_exponent: f64,
    /// Per-pod minimum CPU, millicores (split across containers).
    pub pod_min_cpu_millicores: f64,
    /// Per-pod minimum memory, MiB (split across containers).
    pub pod_min_memory_mb: f64,
    /// CPU rounded up to a multiple of this many millicores.
    pub round_cpu_millicores: i64,
    /// Upper cap applied to every container for resources its policy leaves
    /// uncapped (upstream's `--container-recommendation-max-allowed-*`).
    pub global_max_allowed: PartialResources,
    /// Opt-in: choose the CPU target percentile from prices. `None` keeps
    /// upstream's behaviour.
    pub cost_aware: Option<CostAwareQuantile>,
}

impl Default for EstimationOptions {
    fn default() -> Self {
        EstimationOptions {
            target_cpu_percentile: DEFAULT_TARGET_CPU_PERCENTILE,
            lower_bound_cpu_percentile: DEFAULT_LOWER_BOUND_CPU_PERCENTILE,
            upper_bound_cpu_percentile: DEFAULT_UPPER_BOUND_CPU_PERCENTILE,
            target_memory_percentile: DEFAULT_TARGET_MEMORY_PERCENTILE,
            lower_bound_memory_percentile: DEFAULT_LOWER_BOUND_MEMORY_PERCENTILE,
            upper_bound_memory_percentile: DEFAULT_UPPER_BOUND_MEMORY_PERCENTILE,
            safety_margin_fraction: DEFAULT_SAFETY_MARGIN_FRACTION,
            upper_bound_confidence_multiplier: DEFAULT_UPPER_BOUND_CONFIDENCE_MULTIPLIER,
            upper_bound_confidence_exponent: DEFAULT_UPPER_BOUND_CONFIDENCE_EXPONENT,
            lower_bound_confidence_multiplier: DEFAULT_LOWER_BOUND_CONFIDENCE_MULTIPLIER,
            lower_bound_confidence_exponent: DEFAULT_LOWER_BOUND_CONFIDENCE_EXPONENT,
            pod_min_cpu_millicores: DEFAULT_POD_MIN_CPU_MILLICORES,
            pod_min_memory_mb: DEFAULT_POD_MIN_MEMORY_MB,
            round_cpu_millicores: DEFAULT_ROUND_CPU_MILLICORES,
            global_max_allowed: PartialResources::NONE,
            cost_aware: None,
        }
    }
}

impl EstimationOptions {
    /// The CPU target percentile actually used: the cost-aware critical
    /// fractile when configured, else `target_cpu_percentile`.
    #[must_use]
    pub fn effective_target_cpu_percentile(&self) -> f64 {
        self.cost_aware
            .map_or(self.target_cpu_percentile, |c| c.target_quantile())
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), RecommenderError> {
        for (field, p) in [
            ("target_cpu_percentile", self.target_cpu_percentile),
            (
                "lower_bound_cpu_percentile",
                self.lower_bound_cpu_percentile,
            ),
            (
                "upper_bound_cpu_percentile",
                self.upper_bound_cpu_percentile,
            ),
            ("target_memory_percentile", self.target_memory_percentile),
            (
                "lower_bound_memory_percentile",
                self.lower_bound_memory_percentile,
            ),
            (
                "upper_bound_memory_percentile",
                self.upper_bound_memory_percentile,
            ),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(RecommenderError::InvalidOption {
                    field,
                    value: p,
                    reason: "must be within [0, 1]",
                });
            }
        }
        non_negative_f64("safety_margin_fraction", self.safety_margin_fraction)?;
        non_negative_f64("pod_min_cpu_millicores", self.pod_min_cpu_millicores)?;
        non_negative_f64("pod_min_memory_mb", self.pod_min_memory_mb)?;
        for (field, v) in [
            (
                "upper_bound_confidence_multiplier",
                self.upper_bound_confidence_multiplier,
            ),
            (
                "upper_bound_confidence_exponent",
                self.upper_bound_confidence_exponent,
            ),
            (
                "lower_bound_confidence_multiplier",
                self.lower_bound_confidence_multiplier,
            ),
            (
                "lower_bound_confidence_exponent",
                self.lower_bound_confidence_exponent,
            ),
        ] {
            if !v.is_finite() {
                return Err(RecommenderError::InvalidOption {
                    field,
                    value: v,
                    reason: "must be finite",
                });
            }
        }
        positive_i64("round_cpu_millicores", self.round_cpu_millicores)?;
        if let Some(c) = self.cost_aware {
            c.validate()?;
        }
        Ok(())
    }
}

/// All recommender options.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RecommenderOptions {
    /// Sample aggregation.
    pub aggregation: AggregationOptions,
    /// Estimation and post-processing.
    pub estimation: EstimationOptions,
}

impl RecommenderOptions {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), RecommenderError> {
        self.aggregation.validate()?;
        self.estimation.validate()
    }
}

fn positive_f64(field: &'static str, value: f64) -> Result<(), RecommenderError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(RecommenderError::InvalidOption {
            field,
            value,
            reason: "must be finite and positive",
        })
    }
}

fn non_negative_f64(field: &'static str, value: f64) -> Result<(), RecommenderError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(RecommenderError::InvalidOption {
            field,
            value,
            reason: "must be finite and non-negative",
        })
    }
}

#[allow(clippy::cast_precision_loss)] // only for the error message
fn positive_i64(field: &'static str, value: i64) -> Result<(), RecommenderError> {
    if value > 0 {
        Ok(())
    } else {
        Err(RecommenderError::InvalidOption {
            field,
            value: value as f64,
            reason: "must be positive",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_match_upstream() {
        let o = RecommenderOptions::default();
        o.validate().unwrap();
        assert!((o.aggregation.epsilon - 1e-4).abs() < 1e-18);
        assert_eq!(o.aggregation.memory_aggregation_window_secs(), 8 * DAY_SECS);
        assert_eq!(o.aggregation.cpu_histogram().unwrap().num_buckets(), 176);
        assert_eq!(o.aggregation.memory_histogram().unwrap().num_buckets(), 176);
        assert!((o.estimation.effective_target_cpu_percentile() - 0.9).abs() < 1e-15);
    }

    #[test]
    fn invalid_options_name_the_field() {
        let mut o = RecommenderOptions::default();
        o.estimation.target_memory_percentile = 1.5;
        let err = o.validate().unwrap_err();
        assert!(
            err.to_string().contains("target_memory_percentile"),
            "{err}"
        );
        let mut o = RecommenderOptions::default();
        o.aggregation.cpu_half_life_secs = 0;
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("cpu_half_life_secs")
        );
        let mut o = RecommenderOptions::default();
        o.estimation.round_cpu_millicores = 0;
        assert!(
            o.validate()
                .unwrap_err()
                .to_string()
                .contains("round_cpu_millicores")
        );
    }
}
