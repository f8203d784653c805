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
    /// Value in milli-units (millicores for CPU; milli-bytes for memory, or bytes —
    /// any unit works as long as requests use the same).
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
