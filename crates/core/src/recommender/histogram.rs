//! Bucketed histograms of usage, plain and exponentially decaying, with the
//! bucket layout, percentile rule and checkpoint scaling of the upstream VPA
//! recommender (`pkg/recommender/util`).

use super::Timestamp;
use super::checkpoint::HistogramCheckpoint;
use super::error::RecommenderError;
use super::options::{MAX_CHECKPOINT_WEIGHT, MAX_DECAY_EXPONENT};
use std::collections::BTreeMap;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in Unix seconds. Upstream
/// starts every decaying histogram's reference here and rounds reference
/// timestamps to multiples of the half-life counted from it.
pub const ZERO_TIME: Timestamp = -62_135_596_800;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Layout {
    Linear {
        bucket_size: f64,
    },
    Exponential {
        first_bucket_size: f64,
        ratio: f64,
        ln_ratio: f64,
    },
}

/// The bucket layout of a histogram: how many buckets, where each starts, and
/// the minimum weight for a bucket to count as non-empty.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HistogramOptions {
    layout: Layout,
    num_buckets: usize,
    epsilon: f64,
}

fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

impl HistogramOptions {
    /// Fixed-size buckets from 0; the last bucket starts at or above `max_value`.
    pub fn linear(
        max_value: f64,
        bucket_size: f64,
        epsilon: f64,
    ) -> Result<Self, RecommenderError> {
        if !(positive(max_value) && positive(bucket_size) && positive(epsilon)) {
            return Err(RecommenderError::InvalidHistogramOptions {
                reason: "max value, bucket size and epsilon must be finite and positive",
            });
        }
        let num_buckets = to_bucket_count((max_value / bucket_size).ceil())? + 1;
        Ok(HistogramOptions {
            layout: Layout::Linear { bucket_size },
            num_buckets,
            epsilon,
        })
    }

    /// Exponentially growing buckets: bucket 0 is `[0, first)`, bucket n ≥ 1
    /// starts at `first·(ratio^n − 1)/(ratio − 1)`; the last bucket starts at
    /// or above `max_value` (upstream's bucket count rule).
    pub fn exponential(
        max_value: f64,
        first_bucket_size: f64,
        ratio: f64,
        epsilon: f64,
    ) -> Result<Self, RecommenderError> {
        if !(positive(max_value) && positive(first_bucket_size) && positive(epsilon)) {
            return Err(RecommenderError::InvalidHistogramOptions {
                reason: "max value, first bucket size and epsilon must be finite and positive",
            });
        }
        if !(ratio.is_finite() && ratio > 1.0) {
            return Err(RecommenderError::InvalidHistogramOptions {
                reason: "ratio must be finite and greater than 1",
            });
        }
        let ln_ratio = ratio.ln();
        let n = ((max_value * (ratio - 1.0) / first_bucket_size + 1.0).ln() / ln_ratio).ceil();
        Ok(HistogramOptions {
            layout: Layout::Exponential {
                first_bucket_size,
                ratio,
                ln_ratio,
            },
            num_buckets: to_bucket_count(n)? + 1,
            epsilon,
        })
    }

    /// Number of buckets.
    #[must_use]
    pub fn num_buckets(&self) -> usize {
        self.num_buckets
    }

    /// Minimum weight for a bucket to count as non-empty.
    #[must_use]
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The bucket a value falls in; values outside the range go to the first
    /// or the last bucket.
    #[must_use]
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // truncation is the bucket rule; negatives handled
    pub fn find_bucket(&self, value: f64) -> usize {
        let raw = match self.layout {
            Layout::Linear { bucket_size } => value / bucket_size,
            Layout::Exponential {
                first_bucket_size,
                ratio,
                ln_ratio,
            } => {
                if value < first_bucket_size {
                    return 0;
                }
                (value * (ratio - 1.0) / first_bucket_size + 1.0).ln() / ln_ratio
            }
        };
        // `as` truncates toward zero and maps NaN to 0, like Go's int().
        let bucket = raw as i64;
        if bucket < 0 {
            0
        } else {
            (bucket as usize).min(self.num_buckets - 1)
        }
    }

    /// Where a bucket starts; indices past the end are clamped to the last bucket.
    #[must_use]
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_possible_wrap
    )] // bucket counts are small
    pub fn bucket_start(&self, bucket: usize) -> f64 {
        let bucket = bucket.min(self.num_buckets - 1);
        if bucket == 0 {
            return 0.0;
        }
        match self.layout {
            Layout::Linear { bucket_size } => bucket as f64 * bucket_size,
            Layout::Exponential {
                first_bucket_size,
                ratio,
                ..
            } => first_bucket_size * (ratio.powf(bucket as f64) - 1.0) / (ratio - 1.0),
        }
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // range checked
fn to_bucket_count(n: f64) -> Result<usize, RecommenderError> {
    // A million buckets is far beyond any sane layout; refuse rather than allocate.
    if n.is_finite() && (0.0..=1e6).contains(&n) {
        Ok(n as usize)
    } else {
        Err(RecommenderError::InvalidHistogramOptions {
            reason: "layout needs more than a million buckets",
        })
    }
}

fn check_value(value: f64) -> Result<(), RecommenderError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(RecommenderError::InvalidHistogramInput {
            what: "value",
            value,
        })
    }
}

fn check_weight(weight: f64) -> Result<(), RecommenderError> {
    if weight.is_finite() && weight >= 0.0 {
        Ok(())
    } else {
        Err(RecommenderError::InvalidHistogramInput {
            what: "weight",
            value: weight,
        })
    }
}

/// The buckets a histogram stores: a dense run from the lowest to the highest
/// bucket ever written, zeros outside it. A container's usage stays within a
/// few dozen of the several hundred buckets of the layout, so storing the
/// whole array (as upstream does) would spend most of the recommender's
/// memory on zeros; the stored run is a tenth of it in practice.
#[derive(Clone, Debug, Default)]
struct Window {
    first: usize,
    weights: Vec<f64>,
}

impl Window {
    fn get(&self, bucket: usize) -> f64 {
        bucket
            .checked_sub(self.first)
            .and_then(|i| self.weights.get(i))
            .copied()
            .unwrap_or(0.0)
    }

    fn get_mut(&mut self, bucket: usize) -> Option<&mut f64> {
        bucket
            .checked_sub(self.first)
            .and_then(|i| self.weights.get_mut(i))
    }

    /// The bucket's weight, for writing; widens the run to include it.
    fn slot(&mut self, bucket: usize) -> &mut f64 {
        if self.weights.is_empty() {
            self.first = bucket;
            self.weights.push(0.0);
        } else if bucket < self.first {
            let grow = self.first - bucket;
            let mut wider = Vec::with_capacity(self.weights.len() + grow);
            wider.resize(grow, 0.0);
            wider.extend_from_slice(&self.weights);
            self.weights = wider;
            self.first = bucket;
        } else if bucket >= self.first + self.weights.len() {
            let len = bucket - self.first + 1;
            // Exactly as wide as needed: the run is long-lived, spare
            // capacity would be kept for every container.
            self.weights.reserve_exact(len - self.weights.len());
            self.weights.resize(len, 0.0);
        }
        &mut self.weights[bucket - self.first]
    }

    fn heap_bytes(&self) -> usize {
        self.weights.capacity() * std::mem::size_of::<f64>()
    }
}

/// A bucketed distribution: each bucket holds the total weight of the samples
/// that fell in it. No interpolation within buckets.
#[derive(Clone, Debug)]
pub struct Histogram {
    options: HistogramOptions,
    weights: Window,
    total_weight: f64,
    // First non-empty bucket, or the last bucket when empty.
    min_bucket: usize,
    // Last non-empty bucket, or 0 when empty.
    max_bucket: usize,
}

impl Histogram {
    /// An empty histogram with the given layout.
    #[must_use]
    pub fn new(options: HistogramOptions) -> Self {
        Histogram {
            options,
            weights: Window::default(),
            total_weight: 0.0,
            min_bucket: options.num_buckets - 1,
            max_bucket: 0,
        }
    }

    /// The layout.
    #[must_use]
    pub fn options(&self) -> &HistogramOptions {
        &self.options
    }

    /// Sum of all weights.
    #[must_use]
    pub fn total_weight(&self) -> f64 {
        self.total_weight
    }

    /// The weight held by one bucket (0 outside the range).
    #[must_use]
    pub fn bucket_weight(&self, bucket: usize) -> f64 {
        self.weights.get(bucket)
    }

    /// Bytes held on the heap (the stored window of buckets).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.weights.heap_bytes()
    }

    /// Adds a sample of `value` with `weight`.
    pub fn add_sample(&mut self, value: f64, weight: f64) -> Result<(), RecommenderError> {
        check_value(value)?;
        check_weight(weight)?;
        self.add_unchecked(value, weight);
        Ok(())
    }

    fn add_unchecked(&mut self, value: f64, weight: f64) {
        let bucket = self.options.find_bucket(value);
        let held = self.weights.slot(bucket);
        *held += weight;
        let held = *held;
        self.total_weight += weight;
        // A bucket below epsilon does not move the bounds (upstream: a tiny
        // sample must not make a non-empty histogram look empty).
        let eps = self.options.epsilon;
        if bucket < self.min_bucket && held >= eps {
            self.min_bucket = bucket;
        }
        if bucket > self.max_bucket && held >= eps {
            self.max_bucket = bucket;
        }
    }

    /// Removes a sample added before; a bucket's weight never goes negative.
    pub fn subtract_sample(&mut self, value: f64, weight: f64) -> Result<(), RecommenderError> {
        check_value(value)?;
        check_weight(weight)?;
        let bucket = self.options.find_bucket(value);
        let held = self.weights.get(bucket);
        let weight = if weight > held - self.options.epsilon {
            held
        } else {
            weight
        };
        self.total_weight -= weight;
        if weight != 0.0 {
            *self.weights.slot(bucket) -= weight;
        }
        self.update_min_max();
        Ok(())
    }

    /// Adds every sample of `other`, which must have the same layout.
    pub fn merge(&mut self, other: &Histogram) -> Result<(), RecommenderError> {
        if self.options != other.options {
            return Err(RecommenderError::IncompatibleHistograms {
                reason: "different bucket layouts",
            });
        }
        for bucket in other.min_bucket..=other.max_bucket {
            let weight = other.weights.get(bucket);
            // Adding nothing must not widen the stored window.
            if weight != 0.0 {
                *self.weights.slot(bucket) += weight;
            }
        }
        self.total_weight += other.total_weight;
        self.min_bucket = self.min_bucket.min(other.min_bucket);
        self.max_bucket = self.max_bucket.max(other.max_bucket);
        Ok(())
    }

    /// True when the first non-empty bucket holds less than epsilon.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.weights.get(self.min_bucket) < self.options.epsilon
    }

    /// The end of the bucket where the cumulative weight first reaches
    /// `p · total` (the last bucket returns its start); 0 when empty.
    #[must_use]
    pub fn percentile(&self, p: f64) -> f64 {
        if self.is_empty() {
            return 0.0;
        }
        let threshold = p * self.total_weight;
        let mut partial = 0.0;
        let mut bucket = self.min_bucket;
        while bucket < self.max_bucket {
            partial += self.weights.get(bucket);
            if partial >= threshold {
                break;
            }
            bucket += 1;
        }
        if bucket < self.options.num_buckets - 1 {
            self.options.bucket_start(bucket + 1)
        } else {
            self.options.bucket_start(bucket)
        }
    }

    /// Upstream's equality: same layout, same bounds, weights within 1e-15.
    #[must_use]
    pub fn equals(&self, other: &Histogram) -> bool {
        self.options == other.options
            && self.min_bucket == other.min_bucket
            && self.max_bucket == other.max_bucket
            && (self.min_bucket..=self.max_bucket)
                .all(|b| (self.weights.get(b) - other.weights.get(b)).abs() <= 1e-15)
    }

    fn update_min_max(&mut self) {
        let eps = self.options.epsilon;
        let last = self.options.num_buckets - 1;
        while self.weights.get(self.min_bucket) < eps && self.min_bucket < last {
            self.min_bucket += 1;
        }
        while self.weights.get(self.max_bucket) < eps && self.max_bucket > 0 {
            self.max_bucket -= 1;
        }
    }

    // Multiplies every weight by a non-negative factor; percentiles do not change.
    fn scale(&mut self, factor: f64) {
        for bucket in self.min_bucket..=self.max_bucket {
            if let Some(weight) = self.weights.get_mut(bucket) {
                *weight *= factor;
            }
        }
        self.total_weight *= factor;
        self.update_min_max();
    }

    /// Upstream's v3 checkpoint form: weights scaled so the largest is
    /// 10000, rounded, zeros dropped; the total weight kept exactly.
    #[must_use]
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_possible_wrap
    )] // rounded, clamped to u32
    pub fn save_checkpoint(&self) -> HistogramCheckpoint {
        let mut bucket_weights = BTreeMap::new();
        let max = (self.min_bucket..=self.max_bucket)
            .map(|b| self.weights.get(b))
            .fold(0.0_f64, f64::max);
        if max > 0.0 {
            let ratio = f64::from(MAX_CHECKPOINT_WEIGHT) / max;
            for bucket in self.min_bucket..=self.max_bucket {
                let w = (self.weights.get(bucket) * ratio + 0.5).floor();
                if w >= 1.0 {
                    bucket_weights.insert(bucket as i64, w.min(f64::from(u32::MAX)) as u32);
                }
            }
        }
        HistogramCheckpoint {
            reference_timestamp: None,
            bucket_weights,
            // Upstream's arithmetic can leave the total slightly below zero:
            // a sub-epsilon bucket outside [min, max] is not scaled by decay
            // but is still subtracted in full. Upstream then saves a
            // checkpoint its own loader rejects; an empty total loads.
            total_weight: self.total_weight.max(0.0),
        }
    }

    /// Adds a checkpoint's samples: each bucket gets
    /// `stored · totalWeight / sum(stored)`. Validates before changing anything.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // bucket range checked
    pub fn load_checkpoint(
        &mut self,
        checkpoint: &HistogramCheckpoint,
    ) -> Result<(), RecommenderError> {
        if !(checkpoint.total_weight.is_finite() && checkpoint.total_weight >= 0.0) {
            return Err(RecommenderError::InvalidCheckpointWeight(
                checkpoint.total_weight,
            ));
        }
        let mut sum: u64 = 0;
        for (&bucket, &weight) in &checkpoint.bucket_weights {
            if bucket < 0 || bucket as u64 >= self.options.num_buckets as u64 {
                return Err(RecommenderError::CheckpointBucketOutOfRange {
                    bucket,
                    num_buckets: self.options.num_buckets,
                });
            }
            sum += u64::from(weight);
        }
        if sum == 0 {
            return Ok(());
        }
        #[allow(clippy::cast_precision_loss)] // sums of u32 stay far below 2^53
        let ratio = checkpoint.total_weight / sum as f64;
        for (&bucket, &weight) in &checkpoint.bucket_weights {
            let bucket = bucket as usize;
            self.min_bucket = self.min_bucket.min(bucket);
            self.max_bucket = self.max_bucket.max(bucket);
            *self.weights.slot(bucket) += f64::from(weight) * ratio;
        }
        self.total_weight += checkpoint.total_weight;
        Ok(())
    }
}

/// A histogram that forgets: a sample at time t weighs
/// `weight · 2^((t − reference)/halfLife)`, so each half-life halves the
/// importance of what came before.
#[derive(Clone, Debug)]
pub struct DecayingHistogram {
    histogram: Histogram,
    half_life_secs: i64,
    // Always a multiple of the half-life counted from ZERO_TIME (unless loaded
    // from a checkpoint), moved forward before the exponent passes 100.
    reference: Timestamp,
}

impl DecayingHistogram {
    /// An empty decaying histogram; the half-life must be positive.
    pub fn new(options: HistogramOptions, half_life_secs: i64) -> Result<Self, RecommenderError> {
        if half_life_secs <= 0 {
            #[allow(clippy::cast_precision_loss)] // error message only
            return Err(RecommenderError::InvalidOption {
                field: "half_life_secs",
                value: half_life_secs as f64,
                reason: "must be positive",
            });
        }
        Ok(DecayingHistogram {
            histogram: Histogram::new(options),
            half_life_secs,
            reference: ZERO_TIME,
        })
    }

    /// The undecayed view (bucket weights relative to the reference).
    #[must_use]
    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }

    /// The half-life, seconds.
    #[must_use]
    pub fn half_life_secs(&self) -> i64 {
        self.half_life_secs
    }

    /// The reference timestamp, or `None` before the first sample.
    #[must_use]
    pub fn reference_timestamp(&self) -> Option<Timestamp> {
        (self.reference != ZERO_TIME).then_some(self.reference)
    }

    /// Adds a sample taken at `time` (Unix seconds).
    pub fn add_sample(
        &mut self,
        value: f64,
        weight: f64,
        time: Timestamp,
    ) -> Result<(), RecommenderError> {
        check_value(value)?;
        check_weight(weight)?;
        let factor = self.decay_factor(time);
        self.histogram.add_unchecked(value, weight * factor);
        Ok(())
    }

    // For callers that have already validated value and weight (the CPU
    // sample hot path: integer millicores, weight ≥ the minimum weight).
    pub(crate) fn add_valid_sample(&mut self, value: f64, weight: f64, time: Timestamp) {
        let factor = self.decay_factor(time);
        self.histogram.add_unchecked(value, weight * factor);
    }

    /// Removes a sample added before with the same value, weight and time.
    pub fn subtract_sample(
        &mut self,
        value: f64,
        weight: f64,
        time: Timestamp,
    ) -> Result<(), RecommenderError> {
        check_value(value)?;
        check_weight(weight)?;
        let factor = self.decay_factor(time);
        self.histogram.subtract_sample(value, weight * factor)
    }

    /// Adds every sample of `other`, aligning the older reference to the newer.
    pub fn merge(&mut self, other: &DecayingHistogram) -> Result<(), RecommenderError> {
        if self.half_life_secs != other.half_life_secs {
            return Err(RecommenderError::IncompatibleHistograms {
                reason: "different half-lives",
            });
        }
        if self.histogram.options != other.histogram.options {
            return Err(RecommenderError::IncompatibleHistograms {
                reason: "different bucket layouts",
            });
        }
        if self.reference < other.reference {
            self.shift_reference(other.reference);
            self.histogram.merge(&other.histogram)
        } else if other.reference < self.reference {
            let mut aligned = other.clone();
            aligned.shift_reference(self.reference);
            self.histogram.merge(&aligned.histogram)
        } else {
            self.histogram.merge(&other.histogram)
        }
    }

    /// See [`Histogram::percentile`].
    #[must_use]
    pub fn percentile(&self, p: f64) -> f64 {
        self.histogram.percentile(p)
    }

    /// See [`Histogram::is_empty`].
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.histogram.is_empty()
    }

    /// Upstream's equality: same half-life, reference and weights.
    #[must_use]
    pub fn equals(&self, other: &DecayingHistogram) -> bool {
        self.half_life_secs == other.half_life_secs
            && self.reference == other.reference
            && self.histogram.equals(&other.histogram)
    }

    /// Bytes held on the heap.
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.histogram.heap_bytes()
    }

    /// The checkpoint form, with the reference timestamp.
    #[must_use]
    pub fn save_checkpoint(&self) -> HistogramCheckpoint {
        let mut checkpoint = self.histogram.save_checkpoint();
        checkpoint.reference_timestamp = self.reference_timestamp();
        checkpoint
    }

    /// Adds a checkpoint's samples and takes its reference timestamp.
    pub fn load_checkpoint(
        &mut self,
        checkpoint: &HistogramCheckpoint,
    ) -> Result<(), RecommenderError> {
        self.histogram.load_checkpoint(checkpoint)?;
        self.reference = checkpoint.reference_timestamp.unwrap_or(ZERO_TIME);
        Ok(())
    }

    fn decay_factor(&mut self, time: Timestamp) -> f64 {
        let max_allowed = self
            .reference
            .saturating_add(self.half_life_secs.saturating_mul(MAX_DECAY_EXPONENT));
        if time > max_allowed {
            self.shift_reference(time);
        }
        #[allow(clippy::cast_precision_loss)] // second-resolution ages fit f64
        let exponent = time.saturating_sub(self.reference) as f64 / self.half_life_secs as f64;
        exponent.exp2()
    }

    // Moves the reference to `new_reference` rounded to a multiple of the
    // half-life (half-way rounds up, like Go's Time.Round) and rescales.
    #[allow(clippy::cast_precision_loss)]
    fn shift_reference(&mut self, new_reference: Timestamp) {
        let hl = self.half_life_secs;
        let rel = new_reference.saturating_sub(ZERO_TIME);
        let r = rel.rem_euclid(hl);
        let rounded = if r.saturating_add(r) < hl {
            new_reference.saturating_sub(r)
        } else {
            new_reference.saturating_add(hl - r)
        };
        let exponent = (self.reference.saturating_sub(rounded) as f64 / hl as f64 + 0.5).floor();
        self.histogram.scale(exponent.exp2());
        self.reference = rounded;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    const VALUE_EPS: f64 = 1e-15;
    const HOUR: i64 = 3600;
    const START: Timestamp = 1_234_567_890;

    fn linear() -> HistogramOptions {
        HistogramOptions::linear(10.0, 1.0, 1e-15).unwrap()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= VALUE_EPS * b.abs().max(1.0)
    }

    #[test]
    fn exponential_layout_matches_upstream_vector() {
        let o = HistogramOptions::exponential(500.0, 40.0, 1.5, 0.001).unwrap();
        assert_eq!(o.num_buckets(), 6);
        assert!((o.epsilon() - 0.001).abs() < 1e-18);
        let starts: Vec<f64> = (0..6).map(|b| o.bucket_start(b)).collect();
        assert_eq!(starts, vec![0.0, 40.0, 100.0, 190.0, 325.0, 527.5]);
    }

    #[rstest]
    #[case(-1.0, 0)]
    #[case(0.0, 0)]
    #[case(39.99, 0)]
    #[case(40.0, 1)]
    #[case(100.0, 2)]
    #[case(900.0, 5)]
    #[case(f64::NAN, 0)]
    fn exponential_find_bucket(#[case] value: f64, #[case] bucket: usize) {
        let o = HistogramOptions::exponential(500.0, 40.0, 1.5, 0.001).unwrap();
        assert_eq!(o.find_bucket(value), bucket);
    }

    #[rstest]
    #[case(-1.0, 0)]
    #[case(0.0, 0)]
    #[case(1.3, 4)]
    #[case(100.0, 17)]
    fn linear_find_bucket(#[case] value: f64, #[case] bucket: usize) {
        let o = HistogramOptions::linear(5.0, 0.3, 0.001).unwrap();
        assert_eq!(o.num_buckets(), 18);
        assert_eq!(o.find_bucket(value), bucket);
        assert!((o.bucket_start(17) - 5.1).abs() < 1e-12);
    }

    #[rstest]
    #[case(0.0, 0.01, 1.05)]
    #[case(1000.0, 0.01, 1.05)]
    #[case(1e12, 1e7, 1.05)]
    #[case(1.0, 1.0, 0.0)]
    fn invalid_layouts_are_rejected(#[case] max: f64, #[case] first: f64, #[case] ratio: f64) {
        let r = HistogramOptions::exponential(max, first, ratio, 1e-4);
        if max > 0.0 && ratio > 1.0 {
            assert!(r.is_ok());
        } else {
            assert!(matches!(
                r,
                Err(RecommenderError::InvalidHistogramOptions { .. })
            ));
        }
        assert!(HistogramOptions::linear(1.0, 0.0, 1e-4).is_err());
        assert!(HistogramOptions::exponential(1.0, 1.0, 2.0, f64::NAN).is_err());
    }

    #[rstest]
    #[case(1000.0, 0.01)]
    #[case(1e12, 1e7)]
    fn default_layouts_have_176_buckets_covering_max(#[case] max: f64, #[case] first: f64) {
        let o = HistogramOptions::exponential(max, first, 1.05, 1e-4).unwrap();
        assert_eq!(o.num_buckets(), 176);
        assert!(o.bucket_start(175) >= max);
        assert!(o.bucket_start(174) < max);
        // Every bucket start maps back to its own bucket (or the one before,
        // within one ulp of the boundary).
        for b in 1..176 {
            let found = o.find_bucket(o.bucket_start(b) * (1.0 + 1e-12));
            assert_eq!(found, b, "bucket {b}");
        }
    }

    #[test]
    fn empty_histogram_percentiles_are_zero() {
        let h = Histogram::new(linear());
        for p in [-0.5, 0.0, 0.5, 1.0, 1.5] {
            assert_eq!(h.percentile(p), 0.0);
        }
        assert!(h.is_empty());
    }

    #[rstest]
    #[case(0.0, 2.0)]
    #[case(0.1, 2.0)]
    #[case(0.2, 3.0)]
    #[case(0.3, 3.0)]
    #[case(0.4, 4.0)]
    #[case(0.5, 4.0)]
    #[case(0.6, 4.0)]
    #[case(0.7, 5.0)]
    #[case(0.8, 5.0)]
    #[case(0.9, 5.0)]
    #[case(1.0, 5.0)]
    fn percentiles_return_bucket_end(#[case] p: f64, #[case] expected: f64) {
        let mut h = Histogram::new(linear());
        for i in 1..=4 {
            h.add_sample(f64::from(i), f64::from(i)).unwrap();
        }
        assert!(
            close(h.percentile(p), expected),
            "p{p} = {}",
            h.percentile(p)
        );
    }

    #[test]
    fn percentile_out_of_bounds() {
        let o = HistogramOptions::linear(1.0, 0.1, 1e-15).unwrap();
        let mut h = Histogram::new(o);
        h.add_sample(0.1, 0.1).unwrap();
        h.add_sample(0.2, 0.2).unwrap();
        assert!((h.percentile(-0.1) - 0.2).abs() < 1e-12);
        assert!((h.percentile(1.1) - 0.3).abs() < 1e-12);
        h.add_sample(0.0, 0.1).unwrap();
        h.add_sample(1.0, 0.2).unwrap();
        assert!((h.percentile(-0.1) - 0.1).abs() < 1e-12);
        // The last bucket returns its start.
        assert!((h.percentile(1.1) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn emptiness_follows_epsilon() {
        let eps = 1e-15;
        let o = HistogramOptions::linear(1.0, 0.1, eps).unwrap();
        let mut h = Histogram::new(o);
        assert!(h.is_empty());
        h.add_sample(0.1, eps * 2.5).unwrap();
        assert!(!h.is_empty());
        h.subtract_sample(0.1, eps).unwrap();
        assert!(!h.is_empty());
        h.subtract_sample(0.1, eps).unwrap();
        assert!(h.is_empty());
    }

    #[test]
    fn tiny_addition_keeps_histogram_non_empty() {
        let eps = 1e-15;
        let o = HistogramOptions::linear(1.0, 0.1, eps).unwrap();
        let mut h = Histogram::new(o);
        h.add_sample(9.9, eps * 3.0).unwrap();
        assert!(!h.is_empty());
        h.add_sample(0.1, eps * 0.3).unwrap();
        assert!(!h.is_empty());
        h.add_sample(999.9, eps * 0.3).unwrap();
        assert!(!h.is_empty());
    }

    #[test]
    fn merge_adds_samples() {
        let mut h1 = Histogram::new(linear());
        h1.add_sample(1.0, 1.0).unwrap();
        h1.add_sample(2.0, 1.0).unwrap();
        let mut h2 = Histogram::new(linear());
        h2.add_sample(2.0, 1.0).unwrap();
        h2.add_sample(3.0, 1.0).unwrap();
        let mut expected = Histogram::new(linear());
        for v in [1.0, 2.0, 2.0, 3.0] {
            expected.add_sample(v, 1.0).unwrap();
        }
        h1.merge(&h2).unwrap();
        assert!(h1.equals(&expected));
        let other = Histogram::new(HistogramOptions::linear(5.0, 1.0, 1e-15).unwrap());
        assert!(matches!(
            h1.merge(&other),
            Err(RecommenderError::IncompatibleHistograms { .. })
        ));
    }

    #[rstest]
    #[case(f64::NAN, 1.0, "value")]
    #[case(f64::INFINITY, 1.0, "value")]
    #[case(1.0, -1.0, "weight")]
    #[case(1.0, f64::NAN, "weight")]
    fn bad_inputs_are_rejected(#[case] value: f64, #[case] weight: f64, #[case] what: &str) {
        let mut h = Histogram::new(linear());
        let err = h.add_sample(value, weight).unwrap_err();
        assert!(
            matches!(err, RecommenderError::InvalidHistogramInput { what: w, .. } if w == what)
        );
        assert!(h.is_empty());
        assert_eq!(h.total_weight(), 0.0);
    }

    #[test]
    fn checkpoint_save_empty() {
        let cp = Histogram::new(linear()).save_checkpoint();
        assert_eq!(cp.total_weight, 0.0);
        assert!(cp.bucket_weights.is_empty());
    }

    #[test]
    fn checkpoint_save_scales_to_max_weight() {
        let mut h = Histogram::new(linear());
        h.add_sample(1.0, 1.0).unwrap();
        let cp = h.save_checkpoint();
        assert_eq!(cp.total_weight, 1.0);
        assert_eq!(cp.bucket_weights.len(), 1);
        assert_eq!(cp.bucket_weights.get(&1), Some(&MAX_CHECKPOINT_WEIGHT));
    }

    #[test]
    fn checkpoint_save_drops_relatively_small_weights() {
        let mut h = Histogram::new(linear());
        h.add_sample(1.0, 1.0).unwrap();
        h.add_sample(2.0, 100_000.0).unwrap();
        let cp = h.save_checkpoint();
        assert_eq!(cp.total_weight, 100_001.0);
        assert_eq!(cp.bucket_weights.len(), 1);
        assert_eq!(cp.bucket_weights.get(&2), Some(&10_000));
    }

    #[test]
    fn checkpoint_of_a_total_left_below_zero_still_loads() {
        // Found by `stored_window_behaves_as_the_whole_array`: the 1e-6 sample
        // is below epsilon, so its bucket is outside [min, max] and decay
        // (here by 0) leaves it while the total drops to 0; subtracting it
        // again takes the total to -1e-6, as upstream's arithmetic does.
        let o = HistogramOptions::exponential(1000.0, 0.01, 1.05, 1e-4).unwrap();
        let mut h = Histogram::new(o);
        h.add_sample(0.027_746_776_365_234_756, 1e-6).unwrap();
        h.scale(0.0);
        h.subtract_sample(0.031_478_045_203_320_83, 1e-6).unwrap();
        assert!(h.total_weight() < 0.0, "upstream's arithmetic kept");
        let cp = h.save_checkpoint();
        assert_eq!(cp.total_weight, 0.0);
        let mut loaded = Histogram::new(o);
        loaded.load_checkpoint(&cp).unwrap();
        assert_eq!(loaded.total_weight(), 0.0);
    }

    #[test]
    fn checkpoint_save_multiple_values() {
        let mut h = Histogram::new(linear());
        h.add_sample(1.0, 1.0).unwrap();
        h.add_sample(2.0, 10_000.0).unwrap();
        h.add_sample(3.0, 50.0).unwrap();
        let cp = h.save_checkpoint();
        assert_eq!(cp.total_weight, 10_051.0);
        let expected: BTreeMap<i64, u32> = [(1, 1), (2, 10_000), (3, 50)].into_iter().collect();
        assert_eq!(cp.bucket_weights, expected);
    }

    #[test]
    fn checkpoint_load_rescales_to_total_weight() {
        let cp = HistogramCheckpoint {
            reference_timestamp: None,
            bucket_weights: [(0, 1), (1, 2)].into_iter().collect(),
            total_weight: 6.0,
        };
        let mut h = Histogram::new(linear());
        h.load_checkpoint(&cp).unwrap();
        assert_eq!(h.total_weight(), 6.0);
        assert_eq!(h.bucket_weight(0), 2.0);
        assert_eq!(h.bucket_weight(1), 4.0);
    }

    #[rstest]
    #[case(vec![(-1, 1)], 1.0)]
    #[case(vec![(99, 1)], 1.0)]
    #[case(vec![], -1.0)]
    #[case(vec![(1, 1)], f64::NAN)]
    fn checkpoint_load_rejects_bad_input(#[case] buckets: Vec<(i64, u32)>, #[case] total: f64) {
        let cp = HistogramCheckpoint {
            reference_timestamp: None,
            bucket_weights: buckets.into_iter().collect(),
            total_weight: total,
        };
        let mut h = Histogram::new(linear());
        assert!(h.load_checkpoint(&cp).is_err());
        assert!(h.is_empty());
    }

    fn decaying() -> DecayingHistogram {
        DecayingHistogram::new(linear(), HOUR).unwrap()
    }

    #[test]
    fn decaying_empty_is_zero() {
        let h = decaying();
        for p in [-0.5, 0.0, 0.5, 1.0, 1.5] {
            assert_eq!(h.percentile(p), 0.0);
        }
        assert_eq!(h.reference_timestamp(), None);
        assert!(DecayingHistogram::new(linear(), 0).is_err());
    }

    #[test]
    fn simple_decay() {
        let mut h = decaying();
        h.add_sample(2.0, 1000.0, START).unwrap();
        h.add_sample(1.0, 1.0, START + 20 * HOUR).unwrap();
        assert!(close(h.percentile(0.999), 2.0));
        assert!(close(h.percentile(1.0), 3.0));
    }

    #[test]
    fn long_term_decay() {
        let mut h = decaying();
        h.add_sample(2.0, 1.0, START).unwrap();
        h.add_sample(1.0, 1.0, START + 101 * HOUR).unwrap();
        assert!(close(h.percentile(1.0), 2.0));
    }

    #[rstest]
    #[case(0.00, 2.0)]
    #[case(0.02, 2.0)]
    #[case(0.03, 3.0)]
    #[case(0.10, 3.0)]
    #[case(0.11, 4.0)]
    #[case(0.34, 4.0)]
    #[case(0.35, 5.0)]
    #[case(1.00, 5.0)]
    fn decaying_percentiles(#[case] p: f64, #[case] expected: f64) {
        let mut h = decaying();
        for i in 1..=4_i32 {
            h.add_sample(f64::from(i), f64::from(i), START + i64::from(i - 1) * HOUR)
                .unwrap();
        }
        assert!(
            close(h.percentile(p), expected),
            "p{p} = {}",
            h.percentile(p)
        );
    }

    #[rstest]
    #[case(0.0, 2.0)]
    #[case(0.1, 2.0)]
    #[case(0.3, 3.0)]
    #[case(0.5, 4.0)]
    #[case(0.9, 5.0)]
    #[case(1.0, 5.0)]
    fn no_decay_at_fixed_time(#[case] p: f64, #[case] expected: f64) {
        let mut h = decaying();
        for i in 1..=4 {
            h.add_sample(f64::from(i), f64::from(i), START).unwrap();
        }
        assert!(close(h.percentile(p), expected));
    }

    #[test]
    fn decaying_merge_aligns_references() {
        let mut h1 = decaying();
        h1.add_sample(1.0, 1.0, START).unwrap();
        h1.add_sample(2.0, 1.0, START + HOUR).unwrap();
        let mut h2 = decaying();
        h2.add_sample(2.0, 1.0, START + 2 * HOUR).unwrap();
        h2.add_sample(3.0, 1.0, START + HOUR).unwrap();
        let mut expected = decaying();
        expected.add_sample(2.0, 1.0, START + 2 * HOUR).unwrap();
        expected.add_sample(2.0, 1.0, START + HOUR).unwrap();
        expected.add_sample(3.0, 1.0, START + HOUR).unwrap();
        expected.add_sample(1.0, 1.0, START).unwrap();
        h1.merge(&h2).unwrap();
        assert!(h1.equals(&expected));
        let other = DecayingHistogram::new(linear(), 2 * HOUR).unwrap();
        assert!(h1.merge(&other).is_err());
    }

    #[test]
    fn decaying_merge_shifts_older_reference() {
        // h1 has a reference far ahead of h2's: h2's weights are scaled down.
        let mut old = decaying();
        old.add_sample(1.0, 1.0, START).unwrap();
        let mut new = decaying();
        new.add_sample(5.0, 1.0, START + 200 * HOUR).unwrap();
        let mut merged = new.clone();
        merged.merge(&old).unwrap();
        assert_eq!(merged.reference_timestamp(), new.reference_timestamp());
        assert!(close(merged.percentile(0.0), 6.0));
        let mut merged2 = old.clone();
        merged2.merge(&new).unwrap();
        assert_eq!(merged2.reference_timestamp(), new.reference_timestamp());
        assert!(close(merged2.percentile(0.0), 6.0));
    }

    #[test]
    fn reference_is_rounded_half_life_multiple() {
        let mut h = decaying();
        h.add_sample(2.0, 1.0, START + 100 * HOUR).unwrap();
        let r = h.reference_timestamp().unwrap();
        assert_eq!((r - ZERO_TIME) % HOUR, 0);
        assert!((r - (START + 100 * HOUR)).abs() <= HOUR / 2);
        let cp = h.save_checkpoint();
        assert_eq!(cp.reference_timestamp, Some(r));
        assert!(!cp.bucket_weights.is_empty());
        assert!(cp.total_weight > 0.0);
    }

    #[test]
    fn decaying_load_takes_reference() {
        let ts = 1_514_862_245; // 2018-01-02T03:04:05Z
        let cp = HistogramCheckpoint {
            reference_timestamp: Some(ts),
            bucket_weights: [(0, 1)].into_iter().collect(),
            total_weight: 6.0,
        };
        let mut h = decaying();
        h.load_checkpoint(&cp).unwrap();
        assert!(!h.is_empty());
        assert_eq!(h.reference_timestamp(), Some(ts));
    }

    /// Upstream's representation, the whole bucket array, as the model the
    /// stored window must agree with.
    struct Dense {
        o: HistogramOptions,
        w: Vec<f64>,
        total: f64,
        min: usize,
        max: usize,
    }

    impl Dense {
        fn new(o: HistogramOptions) -> Self {
            Dense {
                o,
                w: vec![0.0; o.num_buckets()],
                total: 0.0,
                min: o.num_buckets() - 1,
                max: 0,
            }
        }
        fn fix(&mut self) {
            let eps = self.o.epsilon();
            while self.w[self.min] < eps && self.min < self.w.len() - 1 {
                self.min += 1;
            }
            while self.w[self.max] < eps && self.max > 0 {
                self.max -= 1;
            }
        }
        fn add(&mut self, v: f64, weight: f64) {
            let b = self.o.find_bucket(v);
            self.w[b] += weight;
            self.total += weight;
            if b < self.min && self.w[b] >= self.o.epsilon() {
                self.min = b;
            }
            if b > self.max && self.w[b] >= self.o.epsilon() {
                self.max = b;
            }
        }
        fn subtract(&mut self, v: f64, weight: f64) {
            let b = self.o.find_bucket(v);
            let weight = if weight > self.w[b] - self.o.epsilon() {
                self.w[b]
            } else {
                weight
            };
            self.total -= weight;
            self.w[b] -= weight;
            self.fix();
        }
        fn merge(&mut self, other: &Dense) {
            for b in other.min..=other.max {
                self.w[b] += other.w[b];
            }
            self.total += other.total;
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        fn scale(&mut self, f: f64) {
            for b in self.min..=self.max {
                self.w[b] *= f;
            }
            self.total *= f;
            self.fix();
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add(f64, f64),
        Subtract(f64, f64),
        Merge(Vec<(f64, f64)>),
        Scale(f64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Values span the layout's whole range and past it; tiny weights
        // exercise sub-epsilon buckets outside [min, max].
        let value = prop_oneof![0.0_f64..0.5, 0.0_f64..2000.0];
        let weight = prop_oneof![1e-6_f64..1e-4, 0.001_f64..10.0];
        prop_oneof![
            4 => (value.clone(), weight.clone()).prop_map(|(v, w)| Op::Add(v, w)),
            2 => (value.clone(), weight.clone()).prop_map(|(v, w)| Op::Subtract(v, w)),
            1 => proptest::collection::vec((value, weight), 0..5).prop_map(Op::Merge),
            1 => prop_oneof![Just(0.0), 0.0_f64..1.0].prop_map(Op::Scale),
        ]
    }

    proptest! {
        #[test]
        fn stored_window_behaves_as_the_whole_array(
            ops in proptest::collection::vec(op(), 1..60),
            p in 0.0_f64..=1.0,
        ) {
            let o = HistogramOptions::exponential(1000.0, 0.01, 1.05, 1e-4).unwrap();
            let (mut h, mut d) = (Histogram::new(o), Dense::new(o));
            for op in &ops {
                match op {
                    Op::Add(v, w) => {
                        h.add_sample(*v, *w).unwrap();
                        d.add(*v, *w);
                    }
                    Op::Subtract(v, w) => {
                        h.subtract_sample(*v, *w).unwrap();
                        d.subtract(*v, *w);
                    }
                    Op::Merge(samples) => {
                        let (mut oh, mut od) = (Histogram::new(o), Dense::new(o));
                        for (v, w) in samples {
                            oh.add_sample(*v, *w).unwrap();
                            od.add(*v, *w);
                        }
                        h.merge(&oh).unwrap();
                        d.merge(&od);
                    }
                    Op::Scale(f) => {
                        h.scale(*f);
                        d.scale(*f);
                    }
                }
                // Bit-for-bit: the same additions in the same order.
                prop_assert_eq!((h.min_bucket, h.max_bucket), (d.min, d.max));
                prop_assert_eq!(h.total_weight().to_bits(), d.total.to_bits());
                for b in 0..o.num_buckets() {
                    prop_assert_eq!(h.bucket_weight(b).to_bits(), d.w[b].to_bits(), "bucket {}", b);
                }
            }
            prop_assert!(h.heap_bytes() <= o.num_buckets() * 8);
            let mut loaded = Histogram::new(o);
            loaded.load_checkpoint(&h.save_checkpoint()).unwrap();
            prop_assert!(loaded.percentile(p).is_finite());
        }

        #[test]
        fn checkpoint_round_trip_within_one_bucket(
            samples in proptest::collection::vec((0.0_f64..50.0, 0.01_f64..10.0), 1..200),
            p in 0.0_f64..=1.0,
        ) {
            let o = HistogramOptions::exponential(1000.0, 0.01, 1.05, 1e-4).unwrap();
            let mut h = Histogram::new(o);
            for (v, w) in &samples {
                h.add_sample(*v, *w).unwrap();
            }
            let mut loaded = Histogram::new(o);
            loaded.load_checkpoint(&h.save_checkpoint()).unwrap();
            prop_assert!((loaded.total_weight() - h.total_weight()).abs() <= 1e-9 * h.total_weight());
            // Rounding to 1/10000 of the largest bucket can move a percentile
            // across a boundary, but only to a neighbouring non-empty bucket.
            let (a, b) = (h.percentile(p), loaded.percentile(p));
            let (ba, bb) = (o.find_bucket(a * 0.999_999), o.find_bucket(b * 0.999_999));
            let between = (ba.min(bb) + 1..ba.max(bb))
                .filter(|&k| h.bucket_weight(k) >= 1e-4)
                .count();
            prop_assert!(between == 0, "p{p}: {a} vs {b}");
        }

        #[test]
        fn percentile_is_monotonic_and_within_range(
            samples in proptest::collection::vec((0.0_f64..2000.0, 0.0_f64..10.0), 1..50),
            p1 in 0.0_f64..1.0,
            p2 in 0.0_f64..1.0,
        ) {
            let o = HistogramOptions::exponential(1000.0, 0.01, 1.05, 1e-4).unwrap();
            let mut h = Histogram::new(o);
            for (v, w) in &samples {
                h.add_sample(*v, *w).unwrap();
            }
            let (lo, hi) = if p1 <= p2 { (p1, p2) } else { (p2, p1) };
            prop_assert!(h.percentile(lo) <= h.percentile(hi));
            prop_assert!(h.percentile(hi) <= o.bucket_start(o.num_buckets() - 1));
        }

        #[test]
        fn add_then_subtract_restores_emptiness(v in 0.0_f64..2000.0, w in 0.001_f64..10.0) {
            let o = HistogramOptions::exponential(1000.0, 0.01, 1.05, 1e-4).unwrap();
            let mut h = Histogram::new(o);
            h.add_sample(v, w).unwrap();
            prop_assert!(!h.is_empty());
            h.subtract_sample(v, w).unwrap();
            prop_assert!(h.is_empty());
        }
    }
}
