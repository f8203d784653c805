//! A log-linear latency histogram: constant memory however long the run, and
//! every recorded value lands in a bucket no wider than 1/128 (0.8 %) of it.

/// Sub-buckets per power of two.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for every `u64`: values below `SUB` are exact, then 57
/// octaves of `SUB` buckets.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Counts of nanosecond latencies.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            sum: 0,
            max: 0,
        }
    }
}

fn index(value: u64) -> usize {
    if value < SUB {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BITS;
    let mantissa = value >> shift;
    ((u64::from(shift) + 1) * SUB + (mantissa - SUB)) as usize
}

/// The largest value that falls into bucket `i`.
fn upper_bound(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let shift = i / SUB - 1;
    let mantissa = SUB + i % SUB;
    // The top bucket's bound is u64::MAX exactly; saturate rather than overflow.
    ((u128::from(mantissa + 1) << shift) - 1).min(u128::from(u64::MAX)) as u64
}

impl Histogram {
    /// Records one value.
    pub fn record(&mut self, value: u64) {
        if let Some(count) = self.counts.get_mut(index(value)) {
            *count += 1;
        }
        self.total += 1;
        self.sum += u128::from(value);
        self.max = self.max.max(value);
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The largest value recorded (exact); 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The mean (exact); 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The `q`-quantile (0 < q ≤ 1): the upper bound of the bucket holding the
    /// value of rank ⌈q·n⌉, never above the exact maximum; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return upper_bound(i).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(0, 0)]
    #[case(127, 127)]
    #[case(128, 128)]
    #[case(255, 255)]
    #[case(256, 256)]
    #[case(257, 256)]
    #[case(258, 257)]
    #[case(u64::MAX, BUCKETS - 1)]
    fn bucket_index(#[case] value: u64, #[case] expected: usize) {
        assert_eq!(index(value), expected);
    }

    #[test]
    fn every_bucket_holds_its_bounds_and_is_narrow() {
        let mut previous = None;
        for i in 0..BUCKETS {
            let upper = upper_bound(i);
            assert_eq!(index(upper), i, "upper bound of bucket {i}");
            if let Some(prev) = previous {
                let lower: u64 = prev + 1;
                assert_eq!(index(lower), i, "lower bound of bucket {i}");
                // Width relative to the lower bound stays within 1/128.
                assert!((upper - lower) as f64 <= lower as f64 / 128.0, "bucket {i}");
            }
            previous = Some(upper);
        }
        assert_eq!(previous, Some(u64::MAX));
    }

    #[test]
    fn quantiles_of_one_to_a_thousand() {
        let mut h = Histogram::default();
        for v in 1..=1000 {
            h.record(v * 1000);
        }
        assert_eq!(h.len(), 1000);
        for (q, exact) in [(0.5, 500_000u64), (0.9, 900_000), (0.99, 990_000)] {
            let got = h.quantile(q);
            assert!(got >= exact, "q{q}: {got} < {exact}");
            assert!(
                got as f64 <= exact as f64 * (1.0 + 1.0 / 128.0),
                "q{q}: {got}"
            );
        }
        assert_eq!(h.quantile(1.0), 1_000_000);
        assert_eq!(h.max(), 1_000_000);
        assert!((h.mean() - 500_500.0).abs() < 1e-9);
    }

    #[test]
    fn merge_adds_counts() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        a.record(10);
        b.record(20);
        b.record(3_000_000);
        a.merge(&b);
        assert_eq!(a.len(), 3);
        assert_eq!(a.quantile(0.34), 20);
        assert_eq!(a.max(), 3_000_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }
}
