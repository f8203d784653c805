//! The replica calculator: one metric's proposal, as kube-controller-manager's
//! `replica_calculator.go` computes it (integer milli-values, integer-percent
//! utilisation, conservative handling of missing metrics and unready pods).

use serde::{Deserialize, Serialize};

use super::spec::{ControllerConfig, MetricSource, MetricSpec, MetricTarget, Tolerances};
use crate::resources::ResourceName;

/// A pod's lifecycle phase, as far as the HPA cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    /// Not yet running: counted as unready.
    Pending,
    /// Running.
    #[default]
    Running,
    /// Finished successfully.
    Succeeded,
    /// Failed: ignored.
    Failed,
    /// State unknown.
    Unknown,
}

/// The pod's `Ready` condition.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadyCondition {
    /// Condition status is `True`.
    pub ready: bool,
    /// When the condition last changed, seconds.
    pub last_transition: f64,
}

/// One pod selected by the HPA's target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Name, for error messages.
    pub name: String,
    /// Lifecycle phase.
    pub phase: PodPhase,
    /// Has a deletion timestamp: ignored.
    #[serde(default)]
    pub deleting: bool,
    /// `status.startTime`, seconds; `None` counts as unready for CPU.
    pub start_time: Option<f64>,
    /// The `Ready` condition; `None` counts as unready for CPU.
    pub ready: Option<ReadyCondition>,
}

/// One pod's metric sample (milli-units) with when and over what window it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSample {
    /// Value in the unit of the target and the requests: upstream compares
    /// `MilliValue()`s (millicores for CPU, milli-bytes for memory); any unit
    /// gives the same ratios as long as all three agree.
    pub value: i64,
    /// Sample time, seconds.
    pub timestamp: f64,
    /// Averaging window of the sample, seconds.
    pub window: f64,
}

/// What the metrics APIs returned for one metric of the spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MetricObservation {
    /// Resource / ContainerResource: per-pod usage and request, both aligned with
    /// the pod list (`None` = no sample / no request). Requests may be empty when
    /// the target is not Utilization.
    Resource {
        /// Per-pod usage.
        usage: Vec<Option<PodSample>>,
        /// Per-pod request of the resource (of the named container for ContainerResource).
        requests: Vec<Option<i64>>,
    },
    /// Pods metric: per-pod samples aligned with the pod list.
    Pods(Vec<Option<PodSample>>),
    /// Object metric: the object's value, milli-units.
    Object(i64),
    /// External metric: every series' value, milli-units (summed).
    External(Vec<i64>),
    /// Fetching the metric failed; the reason is reported.
    Unavailable(String),
}

impl MetricObservation {
    fn kind(&self) -> &'static str {
        match self {
            MetricObservation::Resource { .. } => "Resource",
            MetricObservation::Pods(_) => "Pods",
            MetricObservation::Object(_) => "Object",
            MetricObservation::External(_) => "External",
            MetricObservation::Unavailable(_) => "Unavailable",
        }
    }
}

/// One metric's recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricProposal {
    /// Proposed replica count.
    pub replicas: i32,
    /// Current value: average per pod (milli-units) or, for Value targets, the whole.
    pub usage: i64,
    /// Current utilisation percent, for Utilization targets.
    pub utilization: Option<i32>,
}

/// Why one metric gave no proposal (the HPA's "invalid metric").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// The metrics API failed.
    #[error("unable to get {metric}: {reason}")]
    Unavailable {
        /// The metric's label.
        metric: String,
        /// What the fetcher said.
        reason: String,
    },
    /// The target type does not fit the source (e.g. Value on a Pods metric).
    #[error("invalid {metric} source: a {target} target is not supported")]
    InvalidTarget {
        /// The metric's label.
        metric: String,
        /// Target type name.
        target: &'static str,
    },
    /// The observation does not fit the source.
    #[error("{metric}: expected a {expected} observation, got {got}")]
    ObservationKind {
        /// The metric's label.
        metric: String,
        /// Observation kind needed.
        expected: &'static str,
        /// Observation kind given.
        got: &'static str,
    },
    /// Per-pod values not aligned with the pod list.
    #[error("{metric}: {what} has {got} entries for {pods} pods")]
    Misaligned {
        /// The metric's label.
        metric: String,
        /// `usage`, `requests` or `samples`.
        what: &'static str,
        /// Entries given.
        got: usize,
        /// Pods.
        pods: usize,
    },
    /// The selector matched no pods.
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    /// Every pod was missing, unready or ignored.
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoReadyMetrics,
    /// A pod lacks a request for the resource, so utilisation is undefined.
    #[error("missing request for {resource} in pod {pod}")]
    MissingRequest {
        /// The resource.
        resource: ResourceName,
        /// The pod.
        pod: String,
    },
    /// The requests of the counted pods sum to zero.
    #[error("no metrics returned matched known pods")]
    ZeroRequests,
}

/// How one pod takes part in a per-pod calculation (upstream `groupPods`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Group {
    /// Deleted or failed: left out entirely.
    Ignored,
    /// Pending, or (CPU) not ready / still initialising: 0 on scale-up, else left out.
    Unready,
    /// No sample: 0 on scale-up, the target (or request) on scale-down.
    Missing,
    /// Counted as measured.
    Ready,
}

fn group_pod(
    pod: &Pod,
    sample: Option<&PodSample>,
    cpu: bool,
    config: &ControllerConfig,
    now: f64,
) -> Group {
    if pod.deleting || pod.phase == PodPhase::Failed {
        return Group::Ignored;
    }
    if pod.phase == PodPhase::Pending {
        return Group::Unready;
    }
    let Some(sample) = sample else {
        return Group::Missing;
    };
    if cpu {
        let unready = match (pod.ready, pod.start_time) {
            (Some(cond), Some(start)) => {
                if start + config.cpu_initialization_period_seconds > now {
                    // Young pod: trust the sample only if ready and taken a full
                    // window after the last readiness change.
                    !cond.ready || sample.timestamp < cond.last_transition + sample.window
                } else {
                    // Older pod: drop it only if it has never been ready.
                    !cond.ready
                        && start + config.initial_readiness_delay_seconds > cond.last_transition
                }
            }
            _ => true,
        };
        if unready {
            return Group::Unready;
        }
    }
    Group::Ready
}

/// A per-pod entry after grouping: its group, its value (possibly filled in) and
/// whether it is counted.
#[derive(Clone, Copy, Debug)]
struct Entry {
    group: Group,
    value: i64,
    request: i64,
    counted: bool,
}

/// Ratio and reported usage over the counted entries.
#[derive(Clone, Copy, Debug)]
struct Ratio {
    ratio: f64,
    usage: i64,
    utilization: Option<i32>,
}

#[derive(Clone, Copy, Debug)]
enum PerPodTarget {
    /// Percent of request.
    Utilization(i32),
    /// Average milli-value.
    Average(i64),
}

fn ratio_of(entries: &[Entry], target: PerPodTarget) -> Result<Ratio, MetricError> {
    let mut total: i128 = 0;
    let mut requests: i128 = 0;
    let mut n: i128 = 0;
    for e in entries.iter().filter(|e| e.counted) {
        total += i128::from(e.value);
        requests += i128::from(e.request);
        n += 1;
    }
    if n == 0 {
        return Err(MetricError::NoReadyMetrics);
    }
    match target {
        PerPodTarget::Utilization(t) => {
            if requests == 0 {
                return Err(MetricError::ZeroRequests);
            }
            // Upstream truncates utilisation to an integer percent before dividing.
            let utilization = saturate_i32(total * 100 / requests);
            Ok(Ratio {
                ratio: f64::from(utilization) / f64::from(t),
                usage: saturate_i64(total / n),
                utilization: Some(utilization),
            })
        }
        PerPodTarget::Average(t) => {
            let usage = saturate_i64(total / n);
            Ok(Ratio {
                ratio: usage as f64 / t as f64,
                usage,
                utilization: None,
            })
        }
    }
}

fn saturate_i32(v: i128) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

fn saturate_i64(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// `ceil(x)` as a replica count; saturates like a bounded cast (NaN → 0).
fn ceil_replicas(x: f64) -> i32 {
    x.ceil() as i32
}

/// The per-pod calculation shared by Resource (both target kinds) and Pods metrics.
#[allow(clippy::too_many_arguments)]
fn per_pod_replicas(
    current: i32,
    target: PerPodTarget,
    tolerances: Tolerances,
    pods: &[Pod],
    samples: &[Option<PodSample>],
    requests: &[i64],
    cpu: bool,
    config: &ControllerConfig,
    now: f64,
) -> Result<MetricProposal, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    let mut entries: Vec<Entry> = pods
        .iter()
        .zip(samples)
        .enumerate()
        .map(|(i, (pod, sample))| {
            let group = group_pod(pod, sample.as_ref(), cpu, config, now);
            Entry {
                group,
                value: sample.map_or(0, |s| s.value),
                request: requests.get(i).copied().unwrap_or(0),
                counted: group == Group::Ready,
            }
        })
        .collect();
    let ready = entries.iter().filter(|e| e.counted).count();
    if ready == 0 {
        return Err(MetricError::NoReadyMetrics);
    }
    let first = ratio_of(&entries, target)?;
    let missing = entries.iter().any(|e| e.group == Group::Missing);
    let unready = entries.iter().any(|e| e.group == Group::Unready);
    let no_change = MetricProposal {
        replicas: current,
        usage: first.usage,
        utilization: first.utilization,
    };
    let scale_up_with_unready = unready && first.ratio > 1.0;
    if !scale_up_with_unready && !missing {
        if tolerances.is_within(first.ratio) {
            return Ok(no_change);
        }
        return Ok(MetricProposal {
            replicas: ceil_replicas(first.ratio * ready as f64),
            ..no_change
        });
    }
    for e in &mut entries {
        match e.group {
            Group::Missing => match target {
                // Scale-down: a missing pod uses its full request (utilisation)
                // or exactly the target (plain), pulling the average towards "no change".
                PerPodTarget::Utilization(_) if first.ratio < 1.0 => {
                    e.value = e.request;
                    e.counted = true;
                }
                PerPodTarget::Utilization(_) if first.ratio > 1.0 => {
                    e.value = 0;
                    e.counted = true;
                }
                // At exactly 1.0 upstream leaves missing pods out for utilisation…
                PerPodTarget::Utilization(_) => {}
                PerPodTarget::Average(t) => {
                    // …but counts them as 0 for plain metrics.
                    e.value = if first.ratio < 1.0 { t } else { 0 };
                    e.counted = true;
                }
            },
            Group::Unready if scale_up_with_unready => {
                e.value = 0;
                e.counted = true;
            }
            _ => {}
        }
    }
    let second = ratio_of(&entries, target)?;
    let flipped =
        (first.ratio < 1.0 && second.ratio > 1.0) || (first.ratio > 1.0 && second.ratio < 1.0);
    if tolerances.is_within(second.ratio) || flipped {
        return Ok(no_change);
    }
    let counted = entries.iter().filter(|e| e.counted).count();
    let replicas = ceil_replicas(second.ratio * counted as f64);
    if (second.ratio < 1.0 && replicas > current) || (second.ratio > 1.0 && replicas < current) {
        // A different pod count would turn the change around: keep the count.
        return Ok(no_change);
    }
    Ok(MetricProposal {
        replicas,
        ..no_change
    })
}

/// Pods that are Running with `Ready=True` (upstream `getReadyPodsCount`).
fn ready_pod_count(pods: &[Pod]) -> Result<i64, MetricError> {
    if pods.is_empty() {
        return Err(MetricError::NoPods);
    }
    Ok(pods
        .iter()
        .filter(|p| p.phase == PodPhase::Running && p.ready.is_some_and(|c| c.ready))
        .count() as i64)
}

/// Value targets on Object/External metrics: scale the ready pods by the ratio;
/// from zero replicas, go straight to `ceil(ratio)` (scale from zero).
fn usage_ratio_replicas(
    current: i32,
    ratio: f64,
    tolerances: Tolerances,
    pods: &[Pod],
) -> Result<i32, MetricError> {
    if current == 0 {
        return Ok(ceil_replicas(ratio));
    }
    if tolerances.is_within(ratio) {
        return Ok(current);
    }
    Ok(ceil_replicas(ratio * ready_pod_count(pods)? as f64))
}

/// AverageValue targets on Object/External metrics: divide the total by the target.
fn per_replica_replicas(
    status_replicas: i32,
    total: i64,
    target: i64,
    tolerances: Tolerances,
) -> MetricProposal {
    let ratio = total as f64 / (target as f64 * f64::from(status_replicas));
    let replicas = if tolerances.is_within(ratio) {
        status_replicas
    } else {
        ceil_replicas(total as f64 / target as f64)
    };
    MetricProposal {
        replicas,
        usage: (total as f64 / f64::from(status_replicas)).ceil() as i64,
        utilization: None,
    }
}

/// Everything one metric's calculation reads besides its spec and observation.
#[derive(Clone, Copy, Debug)]
pub struct MetricContext<'a> {
    /// `scale.spec.replicas`.
    pub spec_replicas: i32,
    /// `scale.status.replicas` (per-replica Object/External averages divide by it).
    pub status_replicas: i32,
    /// The pods the target's selector matches.
    pub pods: &'a [Pod],
    /// Per-direction tolerances.
    pub tolerances: Tolerances,
    /// Controller settings.
    pub config: &'a ControllerConfig,
    /// Now, seconds.
    pub now: f64,
}

fn expect_aligned(
    metric: &MetricSource,
    what: &'static str,
    got: usize,
    pods: usize,
) -> Result<(), MetricError> {
    if got == pods {
        Ok(())
    } else {
        Err(MetricError::Misaligned {
            metric: metric.label(),
            what,
            got,
            pods,
        })
    }
}

/// One metric's replica proposal (upstream `computeReplicasForMetric`).
pub fn replicas_for_metric(
    spec: &MetricSpec,
    observation: &MetricObservation,
    ctx: &MetricContext<'_>,
) -> Result<MetricProposal, MetricError> {
    let source = &spec.source;
    let invalid_target = || MetricError::InvalidTarget {
        metric: source.label(),
        target: spec.target.type_name(),
    };
    let wrong_kind = |expected: &'static str| MetricError::ObservationKind {
        metric: source.label(),
        expected,
        got: observation.kind(),
    };
    if let MetricObservation::Unavailable(reason) = observation {
        return Err(MetricError::Unavailable {
            metric: source.label(),
            reason: reason.clone(),
        });
    }
    match source {
        MetricSource::Resource { resource } | MetricSource::ContainerResource { resource, .. } => {
            let MetricObservation::Resource { usage, requests } = observation else {
                return Err(wrong_kind("Resource"));
            };
            expect_aligned(source, "usage", usage.len(), ctx.pods.len())?;
            let cpu = *resource == ResourceName::Cpu;
            match spec.target {
                MetricTarget::Utilization(t) => {
                    if ctx.pods.is_empty() {
                        return Err(MetricError::NoPods);
                    }
                    expect_aligned(source, "requests", requests.len(), ctx.pods.len())?;
                    // Every pod needs a request, even ones the calculation then ignores.
                    let reqs = ctx
                        .pods
                        .iter()
                        .zip(requests)
                        .map(|(pod, r)| {
                            r.ok_or_else(|| MetricError::MissingRequest {
                                resource: *resource,
                                pod: pod.name.clone(),
                            })
                        })
                        .collect::<Result<Vec<i64>, _>>()?;
                    per_pod_replicas(
                        ctx.spec_replicas,
                        PerPodTarget::Utilization(t),
                        ctx.tolerances,
                        ctx.pods,
                        usage,
                        &reqs,
                        cpu,
                        ctx.config,
                        ctx.now,
                    )
                }
                MetricTarget::AverageValue(t) => per_pod_replicas(
                    ctx.spec_replicas,
                    PerPodTarget::Average(t),
                    ctx.tolerances,
                    ctx.pods,
                    usage,
                    &[],
                    cpu,
                    ctx.config,
                    ctx.now,
                ),
                MetricTarget::Value(_) => Err(invalid_target()),
            }
        }
        MetricSource::Pods { .. } => {
            let MetricObservation::Pods(samples) = observation else {
                return Err(wrong_kind("Pods"));
            };
            expect_aligned(source, "samples", samples.len(), ctx.pods.len())?;
            match spec.target {
                MetricTarget::AverageValue(t) => per_pod_replicas(
                    ctx.spec_replicas,
                    PerPodTarget::Average(t),
                    ctx.tolerances,
                    ctx.pods,
                    samples,
                    &[],
                    false,
                    ctx.config,
                    ctx.now,
                ),
                _ => Err(invalid_target()),
            }
        }
        MetricSource::Object { .. } | MetricSource::External { .. } => {
            let total = match (source, observation) {
                (MetricSource::Object { .. }, MetricObservation::Object(v)) => *v,
                (MetricSource::External { .. }, MetricObservation::External(vs)) => {
                    saturate_i64(vs.iter().map(|&v| i128::from(v)).sum())
                }
                (MetricSource::Object { .. }, _) => return Err(wrong_kind("Object")),
                _ => return Err(wrong_kind("External")),
            };
            match spec.target {
                MetricTarget::Value(t) => {
                    let ratio = total as f64 / t as f64;
                    Ok(MetricProposal {
                        replicas: usage_ratio_replicas(
                            ctx.spec_replicas,
                            ratio,
                            ctx.tolerances,
                            ctx.pods,
                        )?,
                        usage: total,
                        utilization: None,
                    })
                }
                MetricTarget::AverageValue(t) => Ok(per_replica_replicas(
                    ctx.status_replicas,
                    total,
                    t,
                    ctx.tolerances,
                )),
                MetricTarget::Utilization(_) => Err(invalid_target()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Cases follow upstream's `replica_calculator_test.go`: two containers per
    //! pod, per-container levels and requests (raw values are per pod), tolerance 0.1, CPU initialisation
    //! period 2 min, readiness delay 10 s; pod start, readiness transitions and
    //! sample times at the zero time unless the pod is "hot" (started 1 min ago).
    #![allow(clippy::too_many_arguments)] // rstest tables with one column per fixture field
    use super::*;
    use crate::hpa::spec::MetricSpec;
    use rstest::rstest;

    const NOW: f64 = 100_000.0;
    const CONTAINERS: i64 = 2;

    fn test_config() -> ControllerConfig {
        ControllerConfig {
            tolerance: 0.1,
            cpu_initialization_period_seconds: 120.0,
            initial_readiness_delay_seconds: 10.0,
            ..ControllerConfig::default()
        }
    }

    /// Pods as upstream's fixture builds them; `None` slices mean the default.
    fn pods(
        n: usize,
        ready: Option<&[bool]>,
        hot: Option<&[bool]>,
        phase: Option<&[PodPhase]>,
        deleting: Option<&[bool]>,
    ) -> Vec<Pod> {
        (0..n)
            .map(|i| Pod {
                name: format!("test-pod-{i}"),
                phase: phase.map_or(PodPhase::Running, |p| p[i]),
                deleting: deleting.is_some_and(|d| d[i]),
                start_time: Some(if hot.is_some_and(|h| h[i]) {
                    NOW - 60.0
                } else {
                    0.0
                }),
                ready: Some(ReadyCondition {
                    ready: ready.is_none_or(|r| r[i]),
                    last_transition: 0.0,
                }),
            })
            .collect()
    }

    fn samples(n: usize, levels: &[i64]) -> Vec<Option<PodSample>> {
        (0..n)
            .map(|i| {
                levels.get(i).map(|&l| PodSample {
                    value: l * CONTAINERS,
                    timestamp: 0.0,
                    window: 60.0,
                })
            })
            .collect()
    }

    fn ctx<'a>(current: i32, pods: &'a [Pod], config: &'a ControllerConfig) -> MetricContext<'a> {
        MetricContext {
            spec_replicas: current,
            status_replicas: current,
            pods,
            tolerances: Tolerances::symmetric(config.tolerance),
            config,
            now: NOW,
        }
    }

    fn cpu_utilization(target: i32) -> MetricSpec {
        MetricSpec {
            source: MetricSource::Resource {
                resource: ResourceName::Cpu,
            },
            target: MetricTarget::Utilization(target),
        }
    }

    const R: PodPhase = PodPhase::Running;
    const P: PodPhase = PodPhase::Pending;
    const F: PodPhase = PodPhase::Failed;

    #[rstest]
    #[case::scale_up(3, 3, &[1000; 3], &[300, 500, 700], None, None, None, None, 30, 5, 50, 1000)]
    #[case::scale_up_unready_less_scale(3, 3, &[1000; 3], &[300, 500, 700], Some(&[false, true, true][..]), None, None, None, 30, 4, 60, 1200)]
    #[case::scale_up_hot_cpu_less_scale(3, 3, &[1000; 3], &[300, 500, 700], None, Some(&[true, false, false][..]), None, None, 30, 4, 60, 1200)]
    #[case::scale_up_unready_no_scale(3, 3, &[1000; 3], &[400, 500, 700], Some(&[true, false, false][..]), None, None, None, 30, 3, 40, 800)]
    #[case::scale_hot_cpu_no_scale(3, 3, &[1000; 3], &[400, 500, 700], Some(&[true, false, false][..]), Some(&[false, true, true][..]), None, None, 30, 3, 40, 800)]
    #[case::scale_up_ignores_failed_pods(2, 4, &[1000; 4], &[500, 700], Some(&[true, true, false, false][..]), None, Some(&[R, R, F, F][..]), None, 30, 4, 60, 1200)]
    #[case::scale_up_ignores_deletion_pods(2, 4, &[1000; 4], &[500, 700], Some(&[true, true, false, false][..]), None, None, Some(&[false, false, true, true][..]), 30, 4, 60, 1200)]
    #[case::scale_down(5, 5, &[1000; 5], &[100, 300, 500, 250, 250], None, None, None, None, 50, 3, 28, 560)]
    #[case::scale_down_include_unready_pods(5, 5, &[1000; 5], &[100, 300, 500, 250, 250], Some(&[true, true, true, false, false][..]), None, None, None, 50, 2, 30, 600)]
    #[case::scale_down_exclude_unscheduled_pods(5, 5, &[1000; 5], &[100], Some(&[true, false, false, false, false][..]), None, Some(&[R, P, P, P, P][..]), None, 50, 1, 10, 200)]
    #[case::scale_down_ignore_hot_cpu_pods(5, 5, &[1000; 5], &[100, 300, 500, 250, 250], None, Some(&[false, false, false, true, true][..]), None, None, 50, 2, 30, 600)]
    #[case::scale_down_ignores_failed_pods(5, 7, &[1000; 7], &[100, 300, 500, 250, 250], Some(&[true, true, true, true, true, false, false][..]), None, Some(&[R, R, R, R, R, F, F][..]), None, 50, 3, 28, 560)]
    #[case::scale_down_ignores_deletion_pods(5, 7, &[1000; 7], &[100, 300, 500, 250, 250], Some(&[true, true, true, true, true, false, false][..]), None, None, Some(&[false, false, false, false, false, true, true][..]), 50, 3, 28, 560)]
    #[case::tolerance(3, 3, &[900, 1000, 1100], &[1010, 1030, 1020], None, None, None, None, 100, 3, 102, 2040)]
    #[case::missing_metrics(4, 4, &[1000; 4], &[400, 95], None, None, None, None, 100, 3, 24, 495)]
    #[case::missing_metrics_no_change_eq(2, 2, &[1000; 2], &[1000], None, None, None, None, 100, 2, 100, 2000)]
    #[case::missing_metrics_no_change_gt(2, 2, &[1000; 2], &[1900], None, None, None, None, 100, 2, 190, 3800)]
    #[case::missing_metrics_no_change_lt(2, 2, &[1000; 2], &[600], None, None, None, None, 100, 2, 60, 1200)]
    #[case::missing_metrics_unready_change(3, 3, &[1000; 3], &[100, 450], Some(&[false, true, true][..]), None, None, None, 50, 3, 45, 900)]
    #[case::missing_metrics_hot_cpu_no_change(3, 3, &[1000; 3], &[100, 450], None, Some(&[true, false, false][..]), None, None, 50, 3, 45, 900)]
    #[case::missing_metrics_unready_scale_up(3, 3, &[1000; 3], &[100, 2000], Some(&[false, true, true][..]), None, None, None, 50, 4, 200, 4000)]
    #[case::missing_metrics_hot_cpu_scale_up(3, 3, &[1000; 3], &[100, 2000], Some(&[false, true, true][..]), Some(&[true, false, false][..]), None, None, 50, 4, 200, 4000)]
    #[case::missing_metrics_unready_scale_down(4, 4, &[1000; 4], &[100, 100, 100], Some(&[false, true, true, true][..]), None, None, None, 50, 3, 10, 200)]
    #[case::during_rolling_update_with_max_surge(2, 3, &[1000; 3], &[100, 100], None, None, None, None, 50, 2, 10, 200)]
    // upstream's computed-tolerance regression: 10 pods at 50 % against 56 % scales to 9…
    #[case::computed_tolerance_scales(10, 10, &[400, 200, 310, 290, 302, 298, 301, 299, 300, 300], &[150; 10], None, None, None, None, 56, 9, 50, 300)]
    // …and against 55 % stays within tolerance.
    #[case::computed_tolerance_holds(10, 10, &[400, 200, 310, 290, 302, 298, 301, 299, 300, 300], &[150; 10], None, None, None, None, 55, 10, 50, 300)]
    fn resource_utilization_matches_upstream(
        #[case] current: i32,
        #[case] n: usize,
        #[case] requests: &[i64],
        #[case] levels: &[i64],
        #[case] ready: Option<&[bool]>,
        #[case] hot: Option<&[bool]>,
        #[case] phase: Option<&[PodPhase]>,
        #[case] deleting: Option<&[bool]>,
        #[case] target: i32,
        #[case] expected_replicas: i32,
        #[case] expected_utilization: i32,
        #[case] expected_raw: i64,
    ) {
        let config = test_config();
        let pods = pods(n, ready, hot, phase, deleting);
        let observation = MetricObservation::Resource {
            usage: samples(n, levels),
            requests: requests.iter().map(|r| Some(r * CONTAINERS)).collect(),
        };
        let got = replicas_for_metric(
            &cpu_utilization(target),
            &observation,
            &ctx(current, &pods, &config),
        )
        .unwrap();
        assert_eq!(got.replicas, expected_replicas, "replicas");
        assert_eq!(got.utilization, Some(expected_utilization), "utilization");
        assert_eq!(got.usage, expected_raw, "raw value");
    }

    #[rstest]
    #[case::scale_up(3, None, None, None, &[20000, 10000, 30000], 15000, 4, 20000)]
    // Readiness only matters for CPU: these unready/hot pods count as measured.
    #[case::unready_hot_cpu_no_less_scale(3, Some(&[true, true, false][..]), Some(&[false, false, true][..]), None, &[50000, 10000, 30000], 15000, 6, 30000)]
    #[case::unready_hot_cpu_scale_would_scale_down(3, Some(&[false, true, false][..]), Some(&[true, false, true][..]), None, &[50000, 15000, 30000], 15000, 7, 31666)]
    #[case::scale_down(5, None, None, None, &[12000; 5], 20000, 3, 12000)]
    #[case::tolerance(3, None, None, None, &[20000, 21000, 21000], 20000, 3, 20666)]
    // A pending pod counts as 0 on scale-up: (30+30+0)/3 = 20 → ceil(1.33 × 3).
    #[case::pending_counts_zero_on_scale_up(3, None, None, Some(&[R, R, P][..]), &[30000, 30000], 15000, 4, 30000)]
    // A missing pod counts as exactly the target on scale-down: (5+5+10)/3 → 2.
    #[case::missing_counts_target_on_scale_down(3, None, None, None, &[5000, 5000], 10000, 2, 5000)]
    // At a ratio of exactly 1 upstream counts missing pods as 0 for plain metrics.
    #[case::missing_at_exact_target_counts_zero(2, None, None, None, &[10000], 10000, 1, 10000)]
    fn pods_metric_matches_upstream(
        #[case] current: i32,
        #[case] ready: Option<&[bool]>,
        #[case] hot: Option<&[bool]>,
        #[case] phase: Option<&[PodPhase]>,
        #[case] levels: &[i64],
        #[case] target: i64,
        #[case] expected_replicas: i32,
        #[case] expected_usage: i64,
    ) {
        let config = test_config();
        let n = current as usize;
        let pods = pods(n, ready, hot, phase, None);
        let spec = MetricSpec {
            source: MetricSource::Pods {
                metric: "qps".into(),
            },
            target: MetricTarget::AverageValue(target),
        };
        // Custom-metric levels are per pod, not per container.
        let per_pod: Vec<Option<PodSample>> = samples(n, levels)
            .into_iter()
            .map(|s| {
                s.map(|s| PodSample {
                    value: s.value / CONTAINERS,
                    ..s
                })
            })
            .collect();
        let got = replicas_for_metric(
            &spec,
            &MetricObservation::Pods(per_pod),
            &ctx(current, &pods, &config),
        )
        .unwrap();
        assert_eq!(got.replicas, expected_replicas, "replicas");
        assert_eq!(got.usage, expected_usage, "usage");
        assert_eq!(got.utilization, None);
    }

    fn object(target: MetricTarget) -> MetricSpec {
        MetricSpec {
            source: MetricSource::Object {
                metric: "qps".into(),
            },
            target,
        }
    }

    fn external(target: MetricTarget) -> MetricSpec {
        MetricSpec {
            source: MetricSource::External {
                metric: "qps".into(),
            },
            target,
        }
    }

    #[rstest]
    #[case::object_scale_up(
        object(MetricTarget::Value(15000)),
        MetricObservation::Object(20000),
        3,
        None,
        4,
        20000
    )]
    #[case::object_per_pod_scale_up(
        object(MetricTarget::AverageValue(5000)),
        MetricObservation::Object(20000),
        3,
        None,
        4,
        6667
    )]
    // If unready pods counted, this would be 15.
    #[case::object_ignores_unready_pods(object(MetricTarget::Value(10000)), MetricObservation::Object(50000), 3, Some(&[false, true, false][..]), 5, 50000)]
    #[case::object_scale_down(
        object(MetricTarget::Value(20000)),
        MetricObservation::Object(12000),
        5,
        None,
        3,
        12000
    )]
    #[case::object_per_pod_scale_down(
        object(MetricTarget::AverageValue(2000)),
        MetricObservation::Object(6000),
        5,
        None,
        3,
        1200
    )]
    #[case::object_tolerance(
        object(MetricTarget::Value(20000)),
        MetricObservation::Object(20666),
        3,
        None,
        3,
        20666
    )]
    #[case::object_per_pod_tolerance(
        object(MetricTarget::AverageValue(5000)),
        MetricObservation::Object(20166),
        4,
        None,
        4,
        5042
    )]
    // If unready pods counted, this would be 6.
    #[case::external_ignores_unready_pods(external(MetricTarget::Value(4400)), MetricObservation::External(vec![8600]), 3, Some(&[false, true, false][..]), 2, 8600)]
    #[case::external_per_pod_scale_up(external(MetricTarget::AverageValue(2150)), MetricObservation::External(vec![8600]), 3, None, 4, 2867)]
    #[case::external_scale_down(external(MetricTarget::Value(14334)), MetricObservation::External(vec![8600]), 5, None, 3, 8600)]
    #[case::external_per_pod_scale_down(external(MetricTarget::AverageValue(2867)), MetricObservation::External(vec![8600]), 5, None, 3, 1720)]
    #[case::external_tolerance(external(MetricTarget::Value(8888)), MetricObservation::External(vec![8600]), 3, None, 3, 8600)]
    #[case::external_per_pod_tolerance(external(MetricTarget::AverageValue(2900)), MetricObservation::External(vec![8600]), 3, None, 3, 2867)]
    // Several series are summed.
    #[case::external_sums_series(external(MetricTarget::Value(4000)), MetricObservation::External(vec![3000, 5000, 4000]), 3, None, 9, 12000)]
    // From zero replicas a Value target goes straight to ceil(ratio).
    #[case::external_scale_from_zero(external(MetricTarget::Value(4400)), MetricObservation::External(vec![8600]), 0, None, 2, 8600)]
    #[case::object_stays_at_zero(
        object(MetricTarget::Value(4400)),
        MetricObservation::Object(0),
        0,
        None,
        0,
        0
    )]
    fn object_and_external_match_upstream(
        #[case] spec: MetricSpec,
        #[case] observation: MetricObservation,
        #[case] current: i32,
        #[case] ready: Option<&[bool]>,
        #[case] expected_replicas: i32,
        #[case] expected_usage: i64,
    ) {
        let config = test_config();
        let pods = pods(current.max(1) as usize, ready, None, None, None);
        let got = replicas_for_metric(&spec, &observation, &ctx(current, &pods, &config)).unwrap();
        assert_eq!(got.replicas, expected_replicas, "replicas");
        assert_eq!(got.usage, expected_usage, "usage");
    }

    #[rstest]
    // Scale-up tolerance 0.5: a ratio of 1.4 is no change…
    #[case::within_wide_scale_up_tolerance(0.1, 0.5, 14000, 5)]
    // …while scale-down keeps 0.1: a ratio of 0.8 scales down.
    #[case::outside_narrow_scale_down_tolerance(0.1, 0.5, 8000, 4)]
    #[case::within_wide_scale_down_tolerance(0.3, 0.1, 8000, 5)]
    #[case::outside_narrow_scale_up_tolerance(0.3, 0.1, 12000, 6)]
    fn tolerances_apply_per_direction(
        #[case] down: f64,
        #[case] up: f64,
        #[case] value: i64,
        #[case] expected: i32,
    ) {
        let config = test_config();
        let pods = pods(5, None, None, None, None);
        let mut c = ctx(5, &pods, &config);
        c.tolerances = Tolerances {
            scale_down: down,
            scale_up: up,
        };
        let got = replicas_for_metric(
            &object(MetricTarget::Value(10000)),
            &MetricObservation::Object(value),
            &c,
        )
        .unwrap();
        assert_eq!(got.replicas, expected);
    }

    #[test]
    fn cpu_initialisation_rules_follow_upstream_group_pods() {
        let config = test_config();
        let sample = PodSample {
            value: 1,
            timestamp: NOW,
            window: 30.0,
        };
        let pod = |start: Option<f64>, ready: Option<(bool, f64)>| Pod {
            name: "p".into(),
            phase: PodPhase::Running,
            deleting: false,
            start_time: start,
            ready: ready.map(|(ready, last_transition)| ReadyCondition {
                ready,
                last_transition,
            }),
        };
        let g = |p: &Pod, s: Option<&PodSample>, cpu| group_pod(p, s, cpu, &config, NOW);
        // No ready condition: unready for CPU, counted for memory.
        assert_eq!(
            g(&pod(Some(NOW), None), Some(&sample), true),
            Group::Unready
        );
        assert_eq!(g(&pod(Some(NOW), None), Some(&sample), false), Group::Ready);
        // Young and ready, sample a full window after the transition: counted.
        let young = pod(Some(NOW - 60.0), Some((true, NOW - 30.0)));
        assert_eq!(g(&young, Some(&sample), true), Group::Ready);
        // Same pod, sample taken before a window had passed: not trusted.
        let early = PodSample {
            timestamp: NOW - 1.0,
            ..sample
        };
        assert_eq!(g(&young, Some(&early), true), Group::Unready);
        // Old pod that went unready long after starting: it was ready once, counted.
        let flapped = pod(Some(NOW - 1000.0), Some((false, NOW - 500.0)));
        assert_eq!(g(&flapped, Some(&sample), true), Group::Ready);
        // Old pod unready since within the readiness delay of starting: never ready.
        let never = pod(Some(NOW - 1000.0), Some((false, NOW - 995.0)));
        assert_eq!(g(&never, Some(&sample), true), Group::Unready);
        // Missing sample, deleted, failed, pending.
        assert_eq!(g(&young, None, true), Group::Missing);
        let mut deleted = young.clone();
        deleted.deleting = true;
        assert_eq!(g(&deleted, Some(&sample), true), Group::Ignored);
        let mut failed = young.clone();
        failed.phase = PodPhase::Failed;
        assert_eq!(g(&failed, Some(&sample), false), Group::Ignored);
        let mut pending = young;
        pending.phase = PodPhase::Pending;
        assert_eq!(g(&pending, Some(&sample), false), Group::Unready);
    }

    #[test]
    fn memory_average_value_ignores_readiness() {
        let config = test_config();
        let pods = pods(3, Some(&[false, false, true]), None, None, None);
        let spec = MetricSpec {
            source: MetricSource::ContainerResource {
                resource: ResourceName::Memory,
                container: "app".into(),
            },
            target: MetricTarget::AverageValue(1000),
        };
        let obs = MetricObservation::Resource {
            usage: samples(3, &[1000, 1000, 1000]),
            requests: vec![],
        };
        // 2000 per pod against 1000: all three count, so 6.
        let got = replicas_for_metric(&spec, &obs, &ctx(3, &pods, &config)).unwrap();
        assert_eq!(got.replicas, 6);
        assert_eq!(got.usage, 2000);
    }

    #[rstest]
    #[case::missing_request(
        cpu_utilization(100),
        MetricObservation::Resource { usage: vec![Some(PodSample { value: 200, timestamp: 0.0, window: 60.0 })], requests: vec![None] },
        MetricError::MissingRequest { resource: ResourceName::Cpu, pod: "test-pod-0".into() }
    )]
    #[case::zero_requests(
        cpu_utilization(100),
        MetricObservation::Resource { usage: vec![Some(PodSample { value: 200, timestamp: 0.0, window: 60.0 })], requests: vec![Some(0)] },
        MetricError::ZeroRequests
    )]
    #[case::no_metrics(
        cpu_utilization(100),
        MetricObservation::Resource { usage: vec![None], requests: vec![Some(1000)] },
        MetricError::NoReadyMetrics
    )]
    #[case::misaligned(
        cpu_utilization(100),
        MetricObservation::Resource { usage: vec![], requests: vec![Some(1000)] },
        MetricError::Misaligned { metric: "resource cpu".into(), what: "usage", got: 0, pods: 1 }
    )]
    #[case::value_on_resource(
        MetricSpec { source: MetricSource::Resource { resource: ResourceName::Cpu }, target: MetricTarget::Value(1) },
        MetricObservation::Resource { usage: vec![None], requests: vec![] },
        MetricError::InvalidTarget { metric: "resource cpu".into(), target: "Value" }
    )]
    #[case::utilization_on_pods(
        MetricSpec { source: MetricSource::Pods { metric: "qps".into() }, target: MetricTarget::Utilization(50) },
        MetricObservation::Pods(vec![None]),
        MetricError::InvalidTarget { metric: "pods metric qps".into(), target: "Utilization" }
    )]
    #[case::utilization_on_external(
        external(MetricTarget::Utilization(50)),
        MetricObservation::External(vec![1]),
        MetricError::InvalidTarget { metric: "external metric qps".into(), target: "Utilization" }
    )]
    #[case::wrong_observation(
        object(MetricTarget::Value(1)),
        MetricObservation::External(vec![1]),
        MetricError::ObservationKind { metric: "object metric qps".into(), expected: "Object", got: "External" }
    )]
    #[case::unavailable(
        object(MetricTarget::Value(1)),
        MetricObservation::Unavailable("timeout".into()),
        MetricError::Unavailable { metric: "object metric qps".into(), reason: "timeout".into() }
    )]
    fn invalid_metrics_are_errors(
        #[case] spec: MetricSpec,
        #[case] observation: MetricObservation,
        #[case] expected: MetricError,
    ) {
        let config = test_config();
        let pods = pods(1, None, None, None, None);
        let got = replicas_for_metric(&spec, &observation, &ctx(1, &pods, &config));
        assert_eq!(got, Err(expected));
    }

    #[test]
    fn no_pods_is_an_error_for_pod_and_value_metrics() {
        let config = test_config();
        let c = ctx(3, &[], &config);
        let cpu = MetricObservation::Resource {
            usage: vec![],
            requests: vec![],
        };
        assert_eq!(
            replicas_for_metric(&cpu_utilization(50), &cpu, &c),
            Err(MetricError::NoPods)
        );
        assert_eq!(
            replicas_for_metric(
                &object(MetricTarget::Value(10)),
                &MetricObservation::Object(100),
                &c
            ),
            Err(MetricError::NoPods)
        );
        // Per-replica averages do not look at pods.
        assert!(
            replicas_for_metric(
                &object(MetricTarget::AverageValue(10)),
                &MetricObservation::Object(100),
                &c
            )
            .is_ok()
        );
    }
}
