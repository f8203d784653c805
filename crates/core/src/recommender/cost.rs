//! Opt-in cost-aware CPU target: pick the usage quantile from prices instead
//! of the fixed p90.
//!
//! # How
//!
//! Treat each hour as a newsvendor problem. Usage `U` (cores) is random with
//! the distribution the CPU histogram estimates; we choose a request `R`.
//! Every core requested above usage costs `c` $ per hour (the price of an idle
//! vCPU-hour); every core of usage above the request costs a penalty `p` $ per
//! hour (throttling: latency, SLO breaches, lost work — priced by the user).
//! The expected hourly cost
//!
//! ```text
//! C(R) = c·E[(R − U)⁺] + p·E[(U − R)⁺]
//! ```
//!
//! has derivative `c·F(R) − p·(1 − F(R))`, zero where `F(R) = p / (p + c)`.
//! So the cost-minimising request is the usage quantile
//! `q = p / (p + c)` (the critical fractile). With p = 9c that is the p90
//! upstream uses by default; a cheap penalty moves the target down, an
//! expensive one up.
//!
//! `q` is then clamped to `[min_quantile, max_quantile]` (default
//! `[0.5, 0.99]`): below the median the target would sit under the lower
//! bound's percentile, and above p99 a decaying histogram's tail is a handful
//! of samples, too noisy to price. The chosen quantile only replaces the CPU
//! target percentile; the margin, confidence and minimum decorators still
//! apply, memory is untouched (an OOM is not a price), and with the option
//! unset the recommender is exactly upstream's.

use super::error::RecommenderError;
use super::options::DEFAULT_TARGET_CPU_PERCENTILE;

/// Lowest quantile the cost-aware target may choose.
pub const DEFAULT_COST_AWARE_MIN_QUANTILE: f64 = 0.5;
/// Highest quantile the cost-aware target may choose.
pub const DEFAULT_COST_AWARE_MAX_QUANTILE: f64 = 0.99;

/// Prices that set the CPU target quantile (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CostAwareQuantile {
    /// $ per vCPU-hour requested but not used.
    pub over_provision_cost_per_core_hour: f64,
    /// $ per core-hour of usage above the request.
    pub under_provision_penalty_per_core_hour: f64,
    /// Lower clamp on the chosen quantile.
    pub min_quantile: f64,
    /// Upper clamp on the chosen quantile.
    pub max_quantile: f64,
}

impl CostAwareQuantile {
    /// Prices with the default clamp range; both must be finite, non-negative
    /// and not both zero.
    pub fn new(
        over_provision_cost_per_core_hour: f64,
        under_provision_penalty_per_core_hour: f64,
    ) -> Result<Self, RecommenderError> {
        let q = CostAwareQuantile {
            over_provision_cost_per_core_hour,
            under_provision_penalty_per_core_hour,
            min_quantile: DEFAULT_COST_AWARE_MIN_QUANTILE,
            max_quantile: DEFAULT_COST_AWARE_MAX_QUANTILE,
        };
        q.validate()?;
        Ok(q)
    }

    /// The unclamped critical fractile `p / (p + c)`.
    #[must_use]
    pub fn critical_fractile(&self) -> f64 {
        let p = self.under_provision_penalty_per_core_hour;
        p / (p + self.over_provision_cost_per_core_hour)
    }

    /// The quantile used as the CPU target: the critical fractile clamped to
    /// `[min_quantile, max_quantile]` (upstream's p90, clamped, if the prices
    /// are degenerate).
    #[must_use]
    pub fn target_quantile(&self) -> f64 {
        let q = self.critical_fractile();
        let q = if q.is_nan() {
            DEFAULT_TARGET_CPU_PERCENTILE
        } else {
            q
        };
        q.max(self.min_quantile).min(self.max_quantile)
    }

    /// Checks prices and clamp range.
    pub fn validate(&self) -> Result<(), RecommenderError> {
        for (field, v) in [
            (
                "over_provision_cost_per_core_hour",
                self.over_provision_cost_per_core_hour,
            ),
            (
                "under_provision_penalty_per_core_hour",
                self.under_provision_penalty_per_core_hour,
            ),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(RecommenderError::InvalidOption {
                    field,
                    value: v,
                    reason: "must be finite and non-negative",
                });
            }
        }
        if self.over_provision_cost_per_core_hour + self.under_provision_penalty_per_core_hour
            <= 0.0
        {
            return Err(RecommenderError::InvalidOption {
                field: "under_provision_penalty_per_core_hour",
                value: self.under_provision_penalty_per_core_hour,
                reason: "cost and penalty cannot both be zero",
            });
        }
        if !(0.0..=1.0).contains(&self.min_quantile) {
            return Err(RecommenderError::InvalidOption {
                field: "min_quantile",
                value: self.min_quantile,
                reason: "must be within [0, 1]",
            });
        }
        if !(self.min_quantile..=1.0).contains(&self.max_quantile) {
            return Err(RecommenderError::InvalidOption {
                field: "max_quantile",
                value: self.max_quantile,
                reason: "must be within [min_quantile, 1]",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    // p = 9c → the upstream p90.
    #[case(0.04, 0.36, 0.9, 0.9)]
    // Equal prices → the median.
    #[case(0.04, 0.04, 0.5, 0.5)]
    // Cheap penalty → below the median, clamped up to 0.5.
    #[case(0.04, 0.01, 0.2, 0.5)]
    // Expensive penalty → p99.9, clamped down to 0.99.
    #[case(0.04, 39.96, 0.999, 0.99)]
    // Free capacity → always request the peak, clamped.
    #[case(0.0, 1.0, 1.0, 0.99)]
    #[case(0.04, 0.12, 0.75, 0.75)]
    fn critical_fractile(
        #[case] cost: f64,
        #[case] penalty: f64,
        #[case] raw: f64,
        #[case] used: f64,
    ) {
        let q = CostAwareQuantile::new(cost, penalty).unwrap();
        assert!(
            (q.critical_fractile() - raw).abs() < 1e-12,
            "{}",
            q.critical_fractile()
        );
        assert!(
            (q.target_quantile() - used).abs() < 1e-12,
            "{}",
            q.target_quantile()
        );
    }

    #[rstest]
    #[case(-1.0, 1.0, "over_provision_cost_per_core_hour")]
    #[case(1.0, f64::NAN, "under_provision_penalty_per_core_hour")]
    #[case(0.0, 0.0, "under_provision_penalty_per_core_hour")]
    fn bad_prices_are_rejected(#[case] cost: f64, #[case] penalty: f64, #[case] field: &str) {
        let err = CostAwareQuantile::new(cost, penalty).unwrap_err();
        assert!(
            matches!(err, RecommenderError::InvalidOption { field: f, .. } if f == field),
            "{err}"
        );
    }

    #[test]
    fn bad_clamp_range_is_rejected() {
        let mut q = CostAwareQuantile::new(1.0, 1.0).unwrap();
        q.min_quantile = 0.9;
        q.max_quantile = 0.8;
        assert!(q.validate().is_err());
    }
}
