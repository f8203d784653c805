//! Estimators: functions from an aggregate usage history to CPU and memory
//! amounts, composed as decorators (percentile → margin → confidence →
//! minimum), as in upstream's `logic/estimator.go`.

use super::options::CONFIDENCE_SAMPLES_PER_DAY;
use super::state::AggregateContainerState;
use super::units::{cpu_amount_from_cores, memory_amount_from_bytes, scale_amount};
use crate::resources::Resources;

/// Estimates resources (millicores, bytes) from a usage history.
pub trait ResourceEstimator {
    /// The estimate for one aggregated container.
    fn estimate(&self, state: &AggregateContainerState) -> Resources;
}

impl<E: ResourceEstimator + ?Sized> ResourceEstimator for &E {
    fn estimate(&self, state: &AggregateContainerState) -> Resources {
        (**self).estimate(state)
    }
}

impl<E: ResourceEstimator + ?Sized> ResourceEstimator for Box<E> {
    fn estimate(&self, state: &AggregateContainerState) -> Resources {
        (**self).estimate(state)
    }
}

/// Always the same amounts (for tests and fakes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConstEstimator(pub Resources);

impl ResourceEstimator for ConstEstimator {
    fn estimate(&self, _state: &AggregateContainerState) -> Resources {
        self.0
    }
}

/// A percentile of the CPU usage and of the memory peaks distributions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PercentileEstimator {
    /// CPU percentile in [0, 1].
    pub cpu_percentile: f64,
    /// Memory percentile in [0, 1].
    pub memory_percentile: f64,
}

impl ResourceEstimator for PercentileEstimator {
    fn estimate(&self, state: &AggregateContainerState) -> Resources {
        Resources::new(
            cpu_amount_from_cores(state.cpu_usage.percentile(self.cpu_percentile)),
            memory_amount_from_bytes(state.memory_peaks.percentile(self.memory_percentile)),
        )
    }
}

/// The base estimate plus `margin_fraction` of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarginEstimator<E> {
    /// Fraction added (0.15 = 15%).
    pub margin_fraction: f64,
    /// The estimator decorated.
    pub base: E,
}

impl<E: ResourceEstimator> ResourceEstimator for MarginEstimator<E> {
    fn estimate(&self, state: &AggregateContainerState) -> Resources {
        self.base
            .estimate(state)
            .map(|_, v| v.saturating_add(scale_amount(v, self.margin_fraction)))
    }
}

/// How much history backs an estimate, in days: the smaller of the span
/// between the first and last sample and the sample count at one per minute.
#[must_use]
#[allow(clippy::cast_precision_loss)] // spans and counts are far below 2^53
pub fn confidence(state: &AggregateContainerState) -> f64 {
    let span_days = match (state.first_sample_start, state.last_sample_start) {
        (Some(first), Some(last)) => last.saturating_sub(first) as f64 / 86_400.0,
        _ => 0.0,
    };
    let samples_days = state.total_samples_count as f64 / CONFIDENCE_SAMPLES_PER_DAY;
    span_days.min(samples_days)
}

/// The base estimate × (1 + multiplier/confidence)^exponent: widens the bounds
/// when history is short (no history → ×∞ or ×0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfidenceMultiplier<E> {
    /// Multiplier of 1/confidence.
    pub multiplier: f64,
    /// Exponent applied to the factor.
    pub exponent: f64,
    /// The estimator decorated.
    pub base: E,
}

impl<E: ResourceEstimator> ResourceEstimator for ConfidenceMultiplier<E> {
    fn estimate(&self, state: &AggregateContainerState) -> Resources {
        let factor = (1.0 + self.multiplier / confidence(state)).powf(self.exponent);
        self.base
            .estimate(state)
            .map(|_, v| scale_amount(v, factor))
    }
}

/// The base estimate raised to at least `min`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinResourcesEstimator<E> {
    /// The floor.
    pub min: Resources,
    /// The estimator decorated.
    pub base: E,
}

impl<E: ResourceEstimator> ResourceEstimator for MinResourcesEstimator<E> {
    fn estimate(&self, state: &AggregateContainerState) -> Resources {
        self.base.estimate(state).max(self.min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommender::options::AggregationOptions;
    use crate::recommender::units::cores_from_cpu_amount;

    const T0: i64 = 0;

    fn state() -> AggregateContainerState {
        AggregateContainerState::new(&AggregationOptions::default(), T0).unwrap()
    }

    fn base() -> ConstEstimator {
        ConstEstimator(Resources::new(
            cpu_amount_from_cores(3.25),
            memory_amount_from_bytes(3.25e9),
        ))
    }

    #[test]
    fn percentile_estimator_reads_histograms() {
        let mut s = state();
        for v in [1.0, 2.0, 3.0] {
            s.cpu_usage.add_sample(v, 1.0, T0).unwrap();
        }
        for v in [1e9, 2e9, 3e9] {
            s.memory_peaks.add_sample(v, 1.0, T0).unwrap();
        }
        let e = PercentileEstimator {
            cpu_percentile: 0.2,
            memory_percentile: 0.5,
        };
        let r = e.estimate(&s);
        let cpu = cores_from_cpu_amount(r.cpu_millis);
        #[allow(clippy::cast_precision_loss)]
        let mem = r.memory_bytes as f64;
        assert!((cpu - 1.0).abs() / 1.0 < 0.05, "{cpu}");
        assert!((mem - 2e9).abs() / 2e9 < 0.05, "{mem}");
    }

    #[test]
    fn confidence_multiplier_follows_formula() {
        let mut s = state();
        // 9 samples, one every 2 minutes → confidence 9/1440 = 0.00625.
        for i in 0..9 {
            s.add_cpu_sample(T0 + i * 120, 1000, 3250).unwrap();
        }
        assert!((confidence(&s) - 0.00625).abs() < 1e-15);
        let e = ConfidenceMultiplier {
            multiplier: 0.1,
            exponent: 2.0,
            base: ConstEstimator(Resources::new(3140, 3_140_000_000)),
        };
        // 3.14 × (1 + 0.1/0.00625)² = 907.46 cores.
        assert_eq!(e.estimate(&s).cpu_millis, 907_460);
    }

    #[test]
    fn confidence_without_history_is_infinite_or_zero() {
        let s = state();
        assert_eq!(confidence(&s), 0.0);
        let up = ConfidenceMultiplier {
            multiplier: 1.0,
            exponent: 1.0,
            base: base(),
        };
        let down = ConfidenceMultiplier {
            multiplier: 1.0,
            exponent: -1.0,
            base: base(),
        };
        assert_eq!(up.estimate(&s).cpu_millis, 100_000_000_000_000);
        assert_eq!(down.estimate(&s).cpu_millis, 0);
    }

    #[test]
    fn margin_adds_fraction() {
        let e = MarginEstimator {
            margin_fraction: 0.1,
            base: base(),
        };
        let r = e.estimate(&state());
        assert_eq!(r.cpu_millis, 3250 + 325);
        assert_eq!(r.memory_bytes, 3_250_000_000 + 325_000_000);
    }

    #[test]
    fn min_resources_floor() {
        let e = MinResourcesEstimator {
            min: Resources::new(200, 400_000_000),
            base: ConstEstimator(Resources::new(3250, 20_000_000)),
        };
        assert_eq!(e.estimate(&state()), Resources::new(3250, 400_000_000));
    }

    #[test]
    fn decorators_compose_through_references_and_boxes() {
        let boxed: Box<dyn ResourceEstimator> = Box::new(base());
        let e = MarginEstimator {
            margin_fraction: 1.0,
            base: &boxed,
        };
        assert_eq!(e.estimate(&state()).cpu_millis, 6500);
    }
}
