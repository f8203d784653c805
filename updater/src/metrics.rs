//! What the admin server exports (prefix `tailor_updater_`).

use crate::act::ActReport;
use crate::step::StepOutput;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

fn label(key: &str, value: &str) -> Labels {
    vec![(key.to_owned(), value.to_owned())]
}

/// Every metric the updater exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Pods under a handled VPA, summed over loops.
    pub pods_considered: Counter,
    /// Pods resized in place (`dry_run` true: would have been).
    pub pods_resized: Family<Labels, Counter>,
    /// Pods evicted (`dry_run` true: would have been).
    pub pods_evicted: Family<Labels, Counter>,
    /// Pods left alone, by `reason`.
    pub pods_skipped: Family<Labels, Counter>,
    /// Controllers whose disruption budget ran out with pods still waiting.
    pub budget_exhausted: Counter,
    /// Evictions refused with 429 (a PodDisruptionBudget said "not now").
    pub evictions_refused: Counter,
    /// Resizes given up for eviction, by the `state` that caused it.
    pub resize_fallbacks: Family<Labels, Counter>,
    /// Failed API calls by `call` (eviction, resize, event).
    pub api_failures: Family<Labels, Counter>,
    /// VPAs that could not be handled, by `reason`.
    pub vpas_skipped: Family<Labels, Counter>,
    /// Loop duration.
    pub loop_seconds: Histogram,
    /// Pods whose in-place resize is being tracked.
    pub resizes_tracked: Gauge,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            pods_considered: Counter::default(),
            pods_resized: Family::default(),
            pods_evicted: Family::default(),
            pods_skipped: Family::default(),
            budget_exhausted: Counter::default(),
            evictions_refused: Counter::default(),
            resize_fallbacks: Family::default(),
            api_failures: Family::default(),
            vpas_skipped: Family::default(),
            loop_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 18)),
            resizes_tracked: Gauge::default(),
        };
        registry.register(
            "pods_considered",
            "Pods under a VPA this updater handles, counted once per loop",
            m.pods_considered.clone(),
        );
        registry.register(
            "pods_resized",
            "Pods resized in place (dry_run=true: would have been)",
            m.pods_resized.clone(),
        );
        registry.register(
            "pods_evicted",
            "Pods evicted (dry_run=true: would have been)",
            m.pods_evicted.clone(),
        );
        registry.register(
            "pods_skipped",
            "Pods left alone, by reason",
            m.pods_skipped.clone(),
        );
        registry.register(
            "budget_exhausted",
            "Controllers whose disruption budget ran out with pods still waiting, counted per loop",
            m.budget_exhausted.clone(),
        );
        registry.register(
            "evictions_refused",
            "Evictions refused with 429 (a PodDisruptionBudget)",
            m.evictions_refused.clone(),
        );
        registry.register(
            "resize_fallbacks",
            "In-place resizes given up for eviction, by resize state",
            m.resize_fallbacks.clone(),
        );
        registry.register(
            "api_failures",
            "Failed API calls, by call",
            m.api_failures.clone(),
        );
        registry.register(
            "vpas_skipped",
            "VPAs that could not be handled, by reason, counted per loop",
            m.vpas_skipped.clone(),
        );
        registry.register(
            "loop_duration_seconds",
            "Duration of one updater loop",
            m.loop_seconds.clone(),
        );
        registry.register(
            "resizes_tracked",
            "Pods whose in-place resize is being timed for the eviction fallback",
            m.resizes_tracked.clone(),
        );
        m
    }

    /// Records a step's conclusions.
    pub fn record_step(&self, out: &StepOutput) {
        self.pods_considered.inc_by(out.considered as u64);
        for s in &out.skipped {
            self.pods_skipped
                .get_or_create(&label("reason", s.reason))
                .inc();
        }
        for p in &out.vpa_problems {
            self.vpas_skipped
                .get_or_create(&label("reason", p.reason))
                .inc();
        }
        self.budget_exhausted.inc_by(out.budgets_exhausted as u64);
    }

    /// Records what the actions did.
    pub fn record_actions(&self, r: &ActReport, dry_run: bool) {
        let dry = label("dry_run", if dry_run { "true" } else { "false" });
        self.pods_resized.get_or_create(&dry).inc_by(r.resized);
        self.pods_evicted.get_or_create(&dry).inc_by(r.evicted);
        self.evictions_refused.inc_by(r.refused);
        for (state, n) in &r.fallbacks {
            self.resize_fallbacks
                .get_or_create(&label("state", state))
                .inc_by(*n);
        }
        for (call, n) in &r.failures {
            self.api_failures
                .get_or_create(&label("call", call))
                .inc_by(*n);
        }
        for (reason, n) in &r.skipped {
            self.pods_skipped
                .get_or_create(&label("reason", reason))
                .inc_by(*n);
        }
    }
}
