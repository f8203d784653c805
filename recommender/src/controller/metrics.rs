//! The controller's metrics (prefix `tailor_recommender_` from the admin
//! registry): loop step durations, VPAs handled, writes and their failures,
//! samples, and per VPA container the recommendation and monthly cost.

use super::conditions::Outcome;
use super::r#loop::{StepOutput, WriteReport};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tailor_core::resources::ResourceName;

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn step_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

/// Every metric the controller exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Loop step durations by `step` (gather, history, recommend, status, checkpoints, gc).
    pub step_seconds: HistogramFamily,
    /// VPAs handled by this recommender in the last loop, by `outcome`.
    pub vpas: Family<Labels, Gauge>,
    /// Status writes done.
    pub status_writes: Counter,
    /// Failed writes by `kind` (status, checkpoint, checkpoint_delete, event, prometheus).
    pub failures: Family<Labels, Counter>,
    /// Samples by `result` (aggregated, invalid, dropped, untracked).
    pub samples: Family<Labels, Counter>,
    /// OOM kills seen in pod status, by `result` (recorded, untracked, discarded).
    pub oom_kills: Family<Labels, Counter>,
    /// Checkpoints written.
    pub checkpoints_written: Counter,
    /// Aggregates tracked.
    pub aggregates: Gauge,
    /// Containers tracked.
    pub containers: Gauge,
    /// Recommended requests by namespace, vpa, container, resource (cpu: cores,
    /// memory: bytes) and bound (target, lower, upper).
    pub recommendation: Family<Labels, Gauge<f64, AtomicU64>>,
    /// Monthly cost in USD of a VPA's running pods, by `requests` (current or recommended).
    pub monthly_cost: Family<Labels, Gauge<f64, AtomicU64>>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics {
            step_seconds: Family::new_with_constructor(step_histogram as fn() -> Histogram),
            vpas: Family::default(),
            status_writes: Counter::default(),
            failures: Family::default(),
            samples: Family::default(),
            oom_kills: Family::default(),
            checkpoints_written: Counter::default(),
            aggregates: Gauge::default(),
            containers: Gauge::default(),
            recommendation: Family::default(),
            monthly_cost: Family::default(),
        };
        registry.register(
            "loop_step_duration_seconds",
            "Duration of each loop step",
            m.step_seconds.clone(),
        );
        registry.register(
            "vpas",
            "VPAs handled in the last loop, by outcome",
            m.vpas.clone(),
        );
        registry.register(
            "status_writes",
            "VPA status writes",
            m.status_writes.clone(),
        );
        registry.register(
            "write_failures",
            "Failed API writes and Prometheus reads, by kind",
            m.failures.clone(),
        );
        registry.register("samples", "Usage samples by result", m.samples.clone());
        registry.register(
            "oom_kills",
            "OOM kills seen in pod status, by result (recorded as a memory bump, untracked container, discarded as older than the current interval)",
            m.oom_kills.clone(),
        );
        registry.register(
            "checkpoints_written",
            "VerticalPodAutoscalerCheckpoints written",
            m.checkpoints_written.clone(),
        );
        registry.register(
            "aggregates",
            "Aggregated (VPA, container) histories held",
            m.aggregates.clone(),
        );
        registry.register(
            "containers",
            "Running containers tracked",
            m.containers.clone(),
        );
        registry.register(
            "recommendation",
            "Recommended requests (cpu in cores, memory in bytes)",
            m.recommendation.clone(),
        );
        registry.register(
            "vpa_monthly_cost_usd",
            "Monthly cost of a VPA's running pods at current and recommended requests",
            m.monthly_cost.clone(),
        );
        m
    }

    /// Records a step duration.
    pub fn observe_step(&self, step: &str, seconds: f64) {
        self.step_seconds
            .get_or_create(&labels(&[("step", step)]))
            .observe(seconds);
    }

    /// Counts a failure of `kind`.
    pub fn fail(&self, kind: &str, n: u64) {
        if n > 0 {
            self.failures
                .get_or_create(&labels(&[("kind", kind)]))
                .inc_by(n);
        }
    }

    /// Records what a step concluded (replacing the last loop's per-VPA series).
    pub fn record_step(&self, out: &StepOutput, aggregates: usize, containers: usize) {
        let s = out.samples;
        for (result, n) in [
            ("aggregated", s.cpu + s.memory),
            ("invalid", s.invalid),
            ("dropped", s.dropped),
            ("untracked", s.untracked),
        ] {
            self.samples
                .get_or_create(&labels(&[("result", result)]))
                .inc_by(n);
        }
        let o = out.ooms;
        for (result, n) in [
            ("recorded", o.recorded),
            ("untracked", o.untracked),
            ("discarded", o.discarded),
        ] {
            if n > 0 {
                self.oom_kills
                    .get_or_create(&labels(&[("result", result)]))
                    .inc_by(n);
            }
        }
        self.aggregates
            .set(i64::try_from(aggregates).unwrap_or(i64::MAX));
        self.containers
            .set(i64::try_from(containers).unwrap_or(i64::MAX));
        self.vpas.clear();
        self.recommendation.clear();
        self.monthly_cost.clear();
        for r in &out.results {
            let outcome = match &r.outcome {
                Outcome::Unsupported { .. } => "unsupported",
                Outcome::Evaluated {
                    has_recommendation: true,
                    ..
                } => "recommended",
                Outcome::Evaluated {
                    pods_matched: false,
                    ..
                } => "no_pods",
                Outcome::Evaluated { .. } => "no_samples",
            };
            self.vpas
                .get_or_create(&labels(&[("outcome", outcome)]))
                .inc();
            let (ns, vpa) = (r.key.namespace.as_str(), r.key.name.as_str());
            if let Some(c) = r.cost {
                for (which, v) in [("current", c.current), ("recommended", c.recommended)] {
                    self.monthly_cost
                        .get_or_create(&labels(&[
                            ("namespace", ns),
                            ("vpa", vpa),
                            ("requests", which),
                        ]))
                        .set(v);
                }
            }
            for c in r
                .recommendation
                .iter()
                .flat_map(|p| p.container_recommendations.iter())
            {
                for (bound, values) in [
                    ("target", c.target),
                    ("lower", c.lower_bound),
                    ("upper", c.upper_bound),
                ] {
                    for resource in ResourceName::ALL {
                        let Some(v) = values.get(resource) else {
                            continue;
                        };
                        #[allow(clippy::cast_precision_loss)] // metric values
                        let value = match resource {
                            ResourceName::Cpu => v as f64 / 1000.0,
                            ResourceName::Memory => v as f64,
                        };
                        self.recommendation
                            .get_or_create(&labels(&[
                                ("namespace", ns),
                                ("vpa", vpa),
                                ("container", &c.container_name),
                                ("resource", resource.as_str()),
                                ("bound", bound),
                            ]))
                            .set(value);
                    }
                }
            }
        }
    }

    /// Records what the writes did.
    pub fn record_writes(&self, w: &WriteReport) {
        self.status_writes.inc_by(w.statuses_written as u64);
        self.fail("status", w.status_failures as u64);
        self.fail("event", w.event_failures as u64);
    }
}
