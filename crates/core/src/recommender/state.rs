//! Usage history: per-container-instance windows ([`ContainerState`]) feeding
//! per-(VPA, container name) aggregates ([`AggregateContainerState`]), as in
//! upstream's `model/container.go` and `model/aggregate_container_state.go`.

use super::Timestamp;
use super::checkpoint::ContainerCheckpoint;
use super::error::RecommenderError;
use super::histogram::DecayingHistogram;
use super::options::{AggregationOptions, SUPPORTED_CHECKPOINT_VERSION};
use super::units::{
    cores_from_cpu_amount, cpu_amount_from_cores, memory_amount_from_bytes, scale_amount,
};
use crate::resources::{ResourceName, Resources};
use std::collections::BTreeMap;

/// Aggregated usage of every container with one name under one VPA: a
/// decaying histogram of CPU usage and one of daily memory peaks.
#[derive(Clone, Debug)]
pub struct AggregateContainerState {
    /// CPU usage in cores, each sample weighted by its request.
    pub cpu_usage: DecayingHistogram,
    /// Memory peaks in bytes, one per container per aggregation interval.
    pub memory_peaks: DecayingHistogram,
    /// Start of the earliest CPU sample (CPU samples only, like upstream).
    pub first_sample_start: Option<Timestamp>,
    /// Start of the latest CPU sample.
    pub last_sample_start: Option<Timestamp>,
    /// Number of CPU samples aggregated.
    pub total_samples_count: u64,
    /// When this state was created (for expiring states that never got samples).
    pub creation_time: Timestamp,
    min_sample_weight: f64,
}

impl AggregateContainerState {
    /// An empty state with the configured histograms.
    pub fn new(
        options: &AggregationOptions,
        creation_time: Timestamp,
    ) -> Result<Self, RecommenderError> {
        // The CPU hot path relies on a positive minimum weight.
        if !(options.min_sample_weight.is_finite() && options.min_sample_weight > 0.0) {
            return Err(RecommenderError::InvalidOption {
                field: "min_sample_weight",
                value: options.min_sample_weight,
                reason: "must be finite and positive",
            });
        }
        Ok(AggregateContainerState {
            cpu_usage: DecayingHistogram::new(
                options.cpu_histogram()?,
                options.cpu_half_life_secs,
            )?,
            memory_peaks: DecayingHistogram::new(
                options.memory_histogram()?,
                options.memory_half_life_secs,
            )?,
            first_sample_start: None,
            last_sample_start: None,
            total_samples_count: 0,
            creation_time,
            min_sample_weight: options.min_sample_weight,
        })
    }

    /// Adds a CPU sample (millicores) weighted by max(request cores, minimum
    /// weight): raising the request makes older history count for less.
    pub fn add_cpu_sample(
        &mut self,
        start: Timestamp,
        usage_millis: i64,
        request_millis: i64,
    ) -> Result<(), RecommenderError> {
        #[allow(clippy::cast_precision_loss)] // error message only
        if usage_millis < 0 {
            return Err(RecommenderError::InvalidSample {
                resource: ResourceName::Cpu,
                value: usage_millis as f64,
            });
        }
        // Integer millicores are finite and the weight is at least the
        // (validated, positive) minimum, so the histogram need not re-check.
        let weight = cores_from_cpu_amount(request_millis).max(self.min_sample_weight);
        self.cpu_usage
            .add_valid_sample(cores_from_cpu_amount(usage_millis), weight, start);
        self.last_sample_start = Some(self.last_sample_start.map_or(start, |t| t.max(start)));
        self.first_sample_start = Some(self.first_sample_start.map_or(start, |t| t.min(start)));
        self.total_samples_count += 1;
        Ok(())
    }

    /// Adds a memory peak (bytes) with weight 1.
    #[allow(clippy::cast_precision_loss)] // bytes up to 1e14 are exact in f64
    pub fn add_memory_sample(
        &mut self,
        start: Timestamp,
        usage_bytes: i64,
    ) -> Result<(), RecommenderError> {
        if usage_bytes < 0 {
            return Err(RecommenderError::InvalidSample {
                resource: ResourceName::Memory,
                value: usage_bytes as f64,
            });
        }
        self.memory_peaks.add_sample(usage_bytes as f64, 1.0, start)
    }

    /// Removes a memory peak added before with the same start and value.
    #[allow(clippy::cast_precision_loss)] // bytes up to 1e14 are exact in f64
    pub fn subtract_memory_sample(
        &mut self,
        start: Timestamp,
        usage_bytes: i64,
    ) -> Result<(), RecommenderError> {
        if usage_bytes < 0 {
            return Err(RecommenderError::InvalidSample {
                resource: ResourceName::Memory,
                value: usage_bytes as f64,
            });
        }
        self.memory_peaks
            .subtract_sample(usage_bytes as f64, 1.0, start)
    }

    /// Adds another state's history (another pod's containers of the same name).
    pub fn merge(&mut self, other: &AggregateContainerState) -> Result<(), RecommenderError> {
        // Check both before changing either, so a failure leaves self intact.
        if self.cpu_usage.half_life_secs() != other.cpu_usage.half_life_secs()
            || self.memory_peaks.half_life_secs() != other.memory_peaks.half_life_secs()
            || self.cpu_usage.histogram().options() != other.cpu_usage.histogram().options()
            || self.memory_peaks.histogram().options() != other.memory_peaks.histogram().options()
        {
            return Err(RecommenderError::IncompatibleHistograms {
                reason: "aggregate states built with different options",
            });
        }
        self.cpu_usage.merge(&other.cpu_usage)?;
        self.memory_peaks.merge(&other.memory_peaks)?;
        self.first_sample_start = match (self.first_sample_start, other.first_sample_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_sample_start = self.last_sample_start.max(other.last_sample_start);
        self.total_samples_count += other.total_samples_count;
        Ok(())
    }

    /// True when the state has seen no sample for a whole memory window
    /// (or, never having had one, was created that long ago): ready for GC.
    #[must_use]
    pub fn is_expired(&self, now: Timestamp, window_secs: i64) -> bool {
        let since = if self.total_samples_count == 0 {
            self.creation_time
        } else {
            self.last_sample_start.unwrap_or(self.creation_time)
        };
        now.saturating_sub(since) >= window_secs
    }

    /// Bytes on the heap (both bucket arrays).
    #[must_use]
    pub fn heap_bytes(&self) -> usize {
        self.cpu_usage.heap_bytes() + self.memory_peaks.heap_bytes()
    }

    /// The v3 checkpoint status; `now` becomes `lastUpdateTime`.
    #[must_use]
    pub fn save_checkpoint(&self, now: Option<Timestamp>) -> ContainerCheckpoint {
        ContainerCheckpoint {
            last_update_time: now,
            version: SUPPORTED_CHECKPOINT_VERSION.to_owned(),
            cpu_histogram: self.cpu_usage.save_checkpoint(),
            memory_histogram: self.memory_peaks.save_checkpoint(),
            first_sample_start: self.first_sample_start,
            last_sample_start: self.last_sample_start,
            total_samples_count: self.total_samples_count,
        }
    }

    /// Loads a v3 checkpoint into this (normally empty) state. Nothing changes
    /// when the checkpoint is rejected.
    pub fn load_checkpoint(
        &mut self,
        checkpoint: &ContainerCheckpoint,
    ) -> Result<(), RecommenderError> {
        if checkpoint.version != SUPPORTED_CHECKPOINT_VERSION {
            return Err(RecommenderError::UnsupportedCheckpointVersion(
                checkpoint.version.clone(),
            ));
        }
        let mut memory = self.memory_peaks.clone();
        memory.load_checkpoint(&checkpoint.memory_histogram)?;
        let mut cpu = self.cpu_usage.clone();
        cpu.load_checkpoint(&checkpoint.cpu_histogram)?;
        self.memory_peaks = memory;
        self.cpu_usage = cpu;
        self.total_samples_count = checkpoint.total_samples_count;
        self.first_sample_start = checkpoint.first_sample_start;
        self.last_sample_start = checkpoint.last_sample_start;
        Ok(())
    }
}

/// Merges the states of one VPA's containers by container name (upstream's
/// `AggregateStateByContainerName`).
pub fn aggregate_by_container_name<'a>(
    states: impl IntoIterator<Item = (&'a str, &'a AggregateContainerState)>,
) -> Result<BTreeMap<String, AggregateContainerState>, RecommenderError> {
    let mut out: BTreeMap<String, AggregateContainerState> = BTreeMap::new();
    for (name, state) in states {
        match out.get_mut(name) {
            Some(merged) => merged.merge(state)?,
            None => {
                out.insert(name.to_owned(), state.clone());
            }
        }
    }
    Ok(out)
}

/// One running container's recent history: the de-duplication cursor for CPU
/// samples and the current memory aggregation window with its peak.
#[derive(Clone, Debug)]
pub struct ContainerState {
    /// The container's current requests (CPU samples are weighted by them).
    pub request: Resources,
    last_cpu_sample_start: Option<Timestamp>,
    last_memory_sample_start: Option<Timestamp>,
    // End (exclusive) of the current memory aggregation interval.
    window_end: Option<Timestamp>,
    memory_peak: i64,
    oom_peak: i64,
    interval_secs: i64,
    oom_bump_up_ratio: f64,
    oom_min_bump_up_bytes: f64,
}

fn check_sample(resource: ResourceName, value: f64) -> Result<(), RecommenderError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(RecommenderError::InvalidSample { resource, value })
    }
}

impl ContainerState {
    /// A container with the given requests and no history.
    #[must_use]
    pub fn new(request: Resources, options: &AggregationOptions) -> Self {
        ContainerState {
            request,
            last_cpu_sample_start: None,
            last_memory_sample_start: None,
            window_end: None,
            memory_peak: 0,
            oom_peak: 0,
            interval_secs: options.memory_aggregation_interval_secs,
            oom_bump_up_ratio: options.oom_bump_up_ratio,
            oom_min_bump_up_bytes: options.oom_min_bump_up_bytes,
        }
    }

    /// End (exclusive) of the current memory aggregation interval.
    #[must_use]
    pub fn window_end(&self) -> Option<Timestamp> {
        self.window_end
    }

    /// The largest memory usage seen in the current interval, OOM-derived or not.
    #[must_use]
    pub fn max_memory_peak(&self) -> i64 {
        self.memory_peak.max(self.oom_peak)
    }

    /// Adds a CPU usage sample (cores, measured over an interval starting at
    /// `start`). `Ok(false)` when it is a duplicate or out of order and was
    /// dropped; an error when the value is NaN, infinite or negative.
    pub fn add_cpu_sample(
        &mut self,
        aggregate: &mut AggregateContainerState,
        start: Timestamp,
        usage_cores: f64,
    ) -> Result<bool, RecommenderError> {
        check_sample(ResourceName::Cpu, usage_cores)?;
        if self.last_cpu_sample_start.is_some_and(|last| start <= last) {
            return Ok(false);
        }
        // Upstream samples arrive as whole millicores; truncate the same way.
        aggregate.add_cpu_sample(
            start,
            cpu_amount_from_cores(usage_cores),
            self.request.cpu_millis,
        )?;
        self.last_cpu_sample_start = Some(start);
        Ok(true)
    }

    /// Adds a memory usage sample (bytes). Keeps one peak per aggregation
    /// interval in `aggregate`: a higher sample in the same interval replaces
    /// the peak. `Ok(false)` when older than the last sample and dropped.
    pub fn add_memory_sample(
        &mut self,
        aggregate: &mut AggregateContainerState,
        start: Timestamp,
        usage_bytes: f64,
    ) -> Result<bool, RecommenderError> {
        check_sample(ResourceName::Memory, usage_bytes)?;
        self.add_memory_amount(
            aggregate,
            start,
            memory_amount_from_bytes(usage_bytes),
            false,
        )
    }

    /// Records an OOM kill as a memory sample of what the container needed:
    /// used = max(request, current interval's usage peak),
    /// needed = max(used + min bump, used × bump ratio). OOMs older than the
    /// current interval are rejected.
    pub fn record_oom(
        &mut self,
        aggregate: &mut AggregateContainerState,
        timestamp: Timestamp,
        requested_memory_bytes: i64,
    ) -> Result<(), RecommenderError> {
        #[allow(clippy::cast_precision_loss)] // error message only
        if requested_memory_bytes < 0 {
            return Err(RecommenderError::InvalidRequest {
                resource: ResourceName::Memory,
                value: requested_memory_bytes as f64,
            });
        }
        if let Some(end) = self.window_end {
            let interval_start = end.saturating_sub(self.interval_secs);
            if timestamp < interval_start {
                return Err(RecommenderError::OomTooOld {
                    timestamp,
                    interval_start,
                });
            }
        }
        // The OOM peak is left out so repeated OOMs do not compound.
        let used = requested_memory_bytes.max(self.memory_peak);
        let needed = used
            .saturating_add(memory_amount_from_bytes(self.oom_min_bump_up_bytes))
            .max(scale_amount(used, self.oom_bump_up_ratio));
        self.add_memory_amount(aggregate, timestamp, needed, true)?;
        Ok(())
    }

    fn add_memory_amount(
        &mut self,
        aggregate: &mut AggregateContainerState,
        start: Timestamp,
        usage: i64,
        is_oom: bool,
    ) -> Result<bool, RecommenderError> {
        if !is_oom
            && self
                .last_memory_sample_start
                .is_some_and(|last| start < last)
        {
            return Ok(false);
        }
        let window_end = *self.window_end.get_or_insert(start);
        let mut new_window_end = window_end;
        let add_new_peak = if start < window_end {
            let old_max = self.max_memory_peak();
            // Upstream skips the replacement when the old peak is exactly 0.
            if old_max != 0 && usage > old_max {
                aggregate.subtract_memory_sample(window_end, old_max)?;
                true
            } else {
                false
            }
        } else {
            let elapsed = start.saturating_sub(window_end);
            let shift = elapsed - elapsed % self.interval_secs + self.interval_secs;
            new_window_end = window_end.saturating_add(shift);
            true
        };
        if add_new_peak {
            aggregate.add_memory_sample(new_window_end, usage)?;
            if new_window_end != window_end {
                self.memory_peak = 0;
                self.oom_peak = 0;
            }
            if is_oom {
                self.oom_peak = usage;
            } else {
                self.memory_peak = usage;
            }
        }
        self.window_end = Some(new_window_end);
        self.last_memory_sample_start = Some(start);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recommender::histogram::DecayingHistogram;
    use crate::recommender::options::DAY_SECS;
    use rstest::rstest;

    const T0: Timestamp = 1_700_000_000;
    const MIB: i64 = 1024 * 1024;

    fn opts() -> AggregationOptions {
        AggregationOptions::default()
    }

    // 2^((t − reference)/halfLife): what a weight-1 sample at t counts for.
    #[allow(clippy::cast_precision_loss)]
    fn decay(h: &DecayingHistogram, t: Timestamp) -> f64 {
        let r = h.reference_timestamp().unwrap();
        ((t - r) as f64 / h.half_life_secs() as f64).exp2()
    }

    fn fresh() -> (ContainerState, AggregateContainerState) {
        (
            ContainerState::new(Resources::new(1000, 1000 * MIB), &opts()),
            AggregateContainerState::new(&opts(), T0).unwrap(),
        )
    }

    #[test]
    fn cpu_samples_weighted_by_request_and_deduplicated() {
        let (mut c, mut a) = fresh();
        assert!(c.add_cpu_sample(&mut a, T0, 0.5).unwrap());
        assert!(!c.add_cpu_sample(&mut a, T0, 0.7).unwrap(), "duplicate");
        assert!(
            !c.add_cpu_sample(&mut a, T0 - 60, 0.7).unwrap(),
            "out of order"
        );
        assert!(c.add_cpu_sample(&mut a, T0 + 60, 2.0).unwrap());
        assert_eq!(a.total_samples_count, 2);
        assert_eq!(a.first_sample_start, Some(T0));
        assert_eq!(a.last_sample_start, Some(T0 + 60));
        // Request 1 core → weight 1 per sample, times its decay factor.
        let expected = decay(&a.cpu_usage, T0) + decay(&a.cpu_usage, T0 + 60);
        assert!((a.cpu_usage.histogram().total_weight() - expected).abs() < 1e-9 * expected);
    }

    #[rstest]
    #[case(0, 0.1)]
    #[case(50, 0.1)]
    #[case(100, 0.1)]
    #[case(250, 0.25)]
    #[case(4000, 4.0)]
    fn cpu_weight_is_request_with_floor(#[case] request_millis: i64, #[case] weight: f64) {
        let mut a = AggregateContainerState::new(&opts(), T0).unwrap();
        a.add_cpu_sample(T0, 100, request_millis).unwrap();
        let total = a.cpu_usage.histogram().total_weight();
        // The sample's decay factor relative to the reference is fixed; compare
        // against a 1-core sample at the same time.
        let mut unit = AggregateContainerState::new(&opts(), T0).unwrap();
        unit.add_cpu_sample(T0, 100, 1000).unwrap();
        let ratio = total / unit.cpu_usage.histogram().total_weight();
        assert!((ratio - weight).abs() < 1e-12, "ratio {ratio}");
    }

    #[rstest]
    #[case(f64::NAN)]
    #[case(-0.5)]
    #[case(f64::INFINITY)]
    #[case(f64::NEG_INFINITY)]
    fn invalid_samples_are_rejected_naming_the_value(#[case] value: f64) {
        let (mut c, mut a) = fresh();
        let err = c.add_cpu_sample(&mut a, T0, value).unwrap_err();
        assert!(
            matches!(err, RecommenderError::InvalidSample { resource: ResourceName::Cpu, value: v } if v.to_bits() == value.to_bits())
        );
        assert!(err.to_string().contains(&value.to_string()), "{err}");
        let err = c.add_memory_sample(&mut a, T0, value).unwrap_err();
        assert!(matches!(
            err,
            RecommenderError::InvalidSample {
                resource: ResourceName::Memory,
                ..
            }
        ));
        assert_eq!(a.total_samples_count, 0);
        assert!(a.memory_peaks.is_empty() && a.cpu_usage.is_empty());
    }

    #[test]
    fn memory_keeps_one_peak_per_interval() {
        let (mut c, mut a) = fresh();
        assert!(c.add_memory_sample(&mut a, T0, 100.0 * 1e6).unwrap());
        assert_eq!(c.window_end(), Some(T0 + DAY_SECS));
        // Higher sample in the same interval replaces the peak.
        assert!(c.add_memory_sample(&mut a, T0 + 3600, 300.0 * 1e6).unwrap());
        // Lower one leaves it.
        assert!(c.add_memory_sample(&mut a, T0 + 7200, 200.0 * 1e6).unwrap());
        assert_eq!(c.max_memory_peak(), 300_000_000);
        let h = a.memory_peaks.histogram();
        let one = decay(&a.memory_peaks, T0 + DAY_SECS);
        assert!(
            (h.total_weight() - one).abs() < 1e-9,
            "one peak: {}",
            h.total_weight()
        );
        let b = h.options().find_bucket(3e8);
        assert!((h.bucket_weight(b) - one).abs() < 1e-9);
        // Older than the last sample → dropped.
        assert!(!c.add_memory_sample(&mut a, T0 + 3600, 900.0 * 1e6).unwrap());
        // Next interval: a new peak, the window moves by whole intervals.
        assert!(
            c.add_memory_sample(&mut a, T0 + 3 * DAY_SECS + 5, 50.0 * 1e6)
                .unwrap()
        );
        assert_eq!(c.window_end(), Some(T0 + 4 * DAY_SECS));
        assert_eq!(c.max_memory_peak(), 50_000_000);
        let two = one + decay(&a.memory_peaks, T0 + 4 * DAY_SECS);
        assert!((a.memory_peaks.histogram().total_weight() - two).abs() < 1e-9);
    }

    #[rstest]
    #[case(1000 * MIB, 0, 1200 * MIB)]
    #[case(MIB, 0, 101 * MIB)]
    #[case(100 * MIB, 0, 200 * MIB)]
    #[case(0, 1000 * MIB, 1200 * MIB)]
    fn oom_bump(#[case] request: i64, #[case] peak: i64, #[case] needed: i64) {
        let (mut c, mut a) = fresh();
        if peak > 0 {
            #[allow(clippy::cast_precision_loss)]
            c.add_memory_sample(&mut a, T0, peak as f64).unwrap();
        }
        c.record_oom(&mut a, T0 + 60, request).unwrap();
        assert_eq!(c.max_memory_peak(), needed);
        #[allow(clippy::cast_precision_loss)]
        let b = a
            .memory_peaks
            .histogram()
            .options()
            .find_bucket(needed as f64);
        let h = a.memory_peaks.histogram();
        // The OOM sample is the interval's only peak.
        assert!((h.bucket_weight(b) - h.total_weight()).abs() < 1e-9);
        assert!(h.total_weight() > 0.0);
    }

    #[test]
    fn old_oom_is_rejected() {
        let (mut c, mut a) = fresh();
        c.add_memory_sample(&mut a, T0 + 2 * DAY_SECS, 1e8).unwrap();
        let window_end = c.window_end().unwrap();
        let err = c.record_oom(&mut a, T0, 100 * MIB).unwrap_err();
        assert_eq!(
            err,
            RecommenderError::OomTooOld {
                timestamp: T0,
                interval_start: window_end - DAY_SECS
            }
        );
        // Within the current interval it is accepted even if out of order.
        c.record_oom(&mut a, window_end - DAY_SECS, 100 * MIB)
            .unwrap();
        assert!(c.record_oom(&mut a, T0, -1).is_err());
    }

    #[test]
    fn merge_combines_histories() {
        let (mut c1, mut a1) = fresh();
        let (mut c2, mut a2) = fresh();
        c1.add_cpu_sample(&mut a1, T0 + 100, 1.0).unwrap();
        c2.add_cpu_sample(&mut a2, T0, 3.0).unwrap();
        c2.add_cpu_sample(&mut a2, T0 + 200, 3.0).unwrap();
        c2.add_memory_sample(&mut a2, T0, 5e8).unwrap();
        let merged =
            aggregate_by_container_name([("app", &a1), ("app", &a2), ("side", &a1)]).unwrap();
        let app = &merged["app"];
        assert_eq!(app.total_samples_count, 3);
        assert_eq!(app.first_sample_start, Some(T0));
        assert_eq!(app.last_sample_start, Some(T0 + 200));
        assert!(!app.memory_peaks.is_empty());
        assert_eq!(merged["side"].total_samples_count, 1);
        let mut bad = opts();
        bad.min_sample_weight = -1.0;
        assert!(AggregateContainerState::new(&bad, T0).is_err());
        let mut other_opts = opts();
        other_opts.cpu_half_life_secs = 3600;
        let foreign = AggregateContainerState::new(&other_opts, T0).unwrap();
        let mut a1c = a1.clone();
        assert!(a1c.merge(&foreign).is_err());
        assert_eq!(a1c.total_samples_count, 1);
    }

    #[test]
    fn expiry_uses_last_sample_or_creation() {
        let (mut c, mut a) = fresh();
        let window = opts().memory_aggregation_window_secs();
        assert!(!a.is_expired(T0 + window - 1, window));
        assert!(a.is_expired(T0 + window, window));
        c.add_cpu_sample(&mut a, T0 + DAY_SECS, 1.0).unwrap();
        assert!(!a.is_expired(T0 + window, window));
        assert!(a.is_expired(T0 + DAY_SECS + window, window));
    }

    #[test]
    fn checkpoint_round_trip_keeps_percentiles() {
        let (mut c, mut a) = fresh();
        for i in 0..(8 * 24 * 12) {
            let t = T0 + i * 300;
            let cores = 0.05 + f64::from(u32::try_from(i % 97).unwrap()) * 0.02;
            c.add_cpu_sample(&mut a, t, cores).unwrap();
            c.add_memory_sample(&mut a, t, 2e8 + cores * 1e8).unwrap();
        }
        let cp = a.save_checkpoint(Some(T0 + 9 * DAY_SECS));
        let json = serde_json::to_string(&cp).unwrap();
        let back: ContainerCheckpoint = serde_json::from_str(&json).unwrap();
        let mut loaded = AggregateContainerState::new(&opts(), T0).unwrap();
        loaded.load_checkpoint(&back).unwrap();
        assert_eq!(loaded.total_samples_count, a.total_samples_count);
        assert_eq!(loaded.first_sample_start, a.first_sample_start);
        assert_eq!(loaded.last_sample_start, a.last_sample_start);
        for p in [0.5, 0.9, 0.95, 0.99] {
            for (orig, got) in [
                (&a.cpu_usage, &loaded.cpu_usage),
                (&a.memory_peaks, &loaded.memory_peaks),
            ] {
                let (x, y) = (orig.percentile(p), got.percentile(p));
                // Equal within one bucket (5%).
                assert!((x - y).abs() <= 0.0501 * x.max(y), "p{p}: {x} vs {y}");
            }
        }
        let mut bad = back.clone();
        bad.version = "v2".into();
        let mut fresh_state = AggregateContainerState::new(&opts(), T0).unwrap();
        assert_eq!(
            fresh_state.load_checkpoint(&bad).unwrap_err(),
            RecommenderError::UnsupportedCheckpointVersion("v2".into())
        );
        let mut bad = back;
        bad.cpu_histogram.bucket_weights.insert(500, 1);
        assert!(fresh_state.load_checkpoint(&bad).is_err());
        assert!(
            fresh_state.memory_peaks.is_empty(),
            "nothing loaded on error"
        );
    }
}
