//! The controller's metrics (prefix `tailor_recommender_` from the admin
//! registry): loop step durations, VPAs handled, writes and their failures,
//! samples, and per VPA container the recommendation and monthly cost.

use super::conditions::Outcome;
use super::r#loop::{MonthlyCost, StepOutput, VpaResult, WriteReport};
use super::state::VpaKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::{Arc, RwLock};
use tailor_core::policy::PodRecommendation;
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
    /// The per-VPA series: `recommendation` (by namespace, vpa, container,
    /// resource — cpu in cores, memory in bytes — and bound: target, lower,
    /// upper) and `vpa_monthly_cost_usd` (by namespace, vpa and requests:
    /// current or recommended), encoded from the last loop's results.
    pub per_vpa: Arc<PerVpa>,
}

/// What the last loop concluded per VPA, encoded as gauges at scrape time. A
/// `Family` would keep a label set of five owned strings per series: 60,000
/// series for 10,000 containers, about 40 MiB; this keeps the results
/// (about 1.5 MiB) and writes the labels out only when scraped.
#[derive(Debug, Default)]
pub struct PerVpa {
    rows: RwLock<Vec<PerVpaRow>>,
}

#[derive(Debug)]
struct PerVpaRow {
    key: VpaKey,
    cost: Option<MonthlyCost>,
    recommendation: Option<PodRecommendation>,
}

impl PerVpa {
    fn replace(&self, results: &[VpaResult]) {
        let mut rows = self
            .rows
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The last loop's rows go before the new ones are built (the
        // allocator reuses their memory), so the two are never held at once.
        rows.clear();
        rows.extend(results.iter().map(|r| PerVpaRow {
            key: r.key.clone(),
            cost: r.cost,
            recommendation: r.recommendation.clone(),
        }));
        rows.shrink_to(results.len());
    }
}

impl Collector for PerVpa {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = self
            .rows
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        {
            let mut family = encoder.encode_descriptor(
                "recommendation",
                "Recommended requests (cpu in cores, memory in bytes)",
                None,
                MetricType::Gauge,
            )?;
            for row in rows.iter() {
                let (ns, vpa) = (row.key.namespace.as_str(), row.key.name.as_str());
                for c in row
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
                            let labels = [
                                ("namespace", ns),
                                ("vpa", vpa),
                                ("container", c.container_name.as_str()),
                                ("resource", resource.as_str()),
                                ("bound", bound),
                            ];
                            family.encode_family(&labels)?.encode_gauge(&value)?;
                        }
                    }
                }
            }
        }
        let mut family = encoder.encode_descriptor(
            "vpa_monthly_cost_usd",
            "Monthly cost of a VPA's running pods at current and recommended requests",
            None,
            MetricType::Gauge,
        )?;
        for row in rows.iter() {
            let Some(c) = row.cost else { continue };
            for (which, v) in [("current", c.current), ("recommended", c.recommended)] {
                let labels = [
                    ("namespace", row.key.namespace.as_str()),
                    ("vpa", row.key.name.as_str()),
                    ("requests", which),
                ];
                family.encode_family(&labels)?.encode_gauge(&v)?;
            }
        }
        Ok(())
    }
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
            per_vpa: Arc::default(),
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
        registry.register_collector(Box::new(Arc::clone(&m.per_vpa)));
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
        }
        self.per_vpa.replace(&out.results);
    }

    /// Records what the writes did.
    pub fn record_writes(&self, w: &WriteReport) {
        self.status_writes.inc_by(w.statuses_written as u64);
        self.fail("status", w.status_failures as u64);
        self.fail("event", w.event_failures as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::r#loop::StepOutput;
    use tailor_core::policy::{ContainerRecommendation, PartialResources};

    fn partial(cpu: i64, memory: i64) -> PartialResources {
        PartialResources {
            cpu_millis: Some(cpu),
            memory_bytes: Some(memory),
        }
    }

    fn result(name: &str, recommended: bool) -> VpaResult {
        VpaResult {
            key: VpaKey::new("shop", name),
            outcome: Outcome::Evaluated {
                pods_matched: true,
                has_recommendation: recommended,
                hpa_conflict: None,
                low_confidence: Vec::new(),
                fetching_history: None,
            },
            status: None,
            conflict_started: false,
            recommendation: recommended.then(|| PodRecommendation {
                container_recommendations: vec![ContainerRecommendation {
                    container_name: "app".into(),
                    target: partial(587, 1 << 29),
                    lower_bound: partial(500, 1 << 28),
                    upper_bound: PartialResources {
                        cpu_millis: Some(1174),
                        memory_bytes: None,
                    },
                    uncapped_target: partial(587, 1 << 29),
                }],
            }),
            cost: Some(MonthlyCost {
                current: 32.85,
                recommended: 19.5,
            }),
        }
    }

    fn scrape(registry: &Registry) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn per_vpa_series_are_encoded_from_the_last_loop_only() {
        let mut registry = tailor_runtime::admin::component_registry("recommender");
        let m = Metrics::register(&mut registry);
        let out = StepOutput {
            results: vec![result("web", true), result("idle", false)],
            ..StepOutput::default()
        };
        m.record_step(&out, 2, 1);
        let text = scrape(&registry);
        for line in [
            "# TYPE tailor_recommender_recommendation gauge",
            r#"tailor_recommender_recommendation{namespace="shop",vpa="web",container="app",resource="cpu",bound="target"} 0.587"#,
            r#"tailor_recommender_recommendation{namespace="shop",vpa="web",container="app",resource="memory",bound="target"} 536870912.0"#,
            r#"tailor_recommender_recommendation{namespace="shop",vpa="web",container="app",resource="memory",bound="lower"} 268435456.0"#,
            r#"tailor_recommender_recommendation{namespace="shop",vpa="web",container="app",resource="cpu",bound="upper"} 1.174"#,
            r#"tailor_recommender_vpa_monthly_cost_usd{namespace="shop",vpa="web",requests="current"} 32.85"#,
            r#"tailor_recommender_vpa_monthly_cost_usd{namespace="shop",vpa="idle",requests="recommended"} 19.5"#,
            r#"tailor_recommender_vpas{outcome="recommended"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
        assert_eq!(
            text.matches("tailor_recommender_recommendation{").count(),
            5
        );
        assert!(!text.contains(r#"resource="memory",bound="upper""#));

        // The next loop replaces them.
        m.record_step(
            &StepOutput {
                results: vec![result("api", true)],
                ..StepOutput::default()
            },
            1,
            1,
        );
        let text = scrape(&registry);
        assert!(!text.contains(r#"vpa="web""#), "{text}");
        assert!(text.contains(r#"vpa="api""#));
    }
}
