//! One sync of one HPA (upstream `reconcileAutoscaler`).

use serde::{Deserialize, Serialize};

use super::behavior::{
    HpaState, Limit, limit_legacy, limit_with_behavior, record_scale_event, stabilize_legacy,
    stabilize_with_behavior,
};
use super::replicas::{
    MetricContext, MetricError, MetricObservation, MetricProposal, Pod, replicas_for_metric,
};
use super::spec::{ControllerConfig, HpaSpec, HpaSpecError, ResolvedRules};

/// What one sync reads.
#[derive(Clone, Copy, Debug)]
pub struct HpaInput<'a> {
    /// Now, seconds (any epoch, as long as pod and sample times use the same).
    pub now: f64,
    /// `scale.spec.replicas`: the current count the HPA scales from.
    pub spec_replicas: i32,
    /// `scale.status.replicas`: replicas that exist (per-replica Object/External averages).
    pub status_replicas: i32,
    /// Pods matched by the target's selector.
    pub pods: &'a [Pod],
    /// One observation per entry of the effective metrics, in order.
    pub observations: &'a [MetricObservation],
}

/// Which branch of the sync decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DecisionReason {
    /// The target has 0 replicas and minReplicas > 0: autoscaling is off.
    ScalingDisabled,
    /// Current count above maxReplicas: go to max.
    AboveMaxReplicas,
    /// Current count below minReplicas: go to min.
    BelowMinReplicas,
    /// The metrics decided.
    Metrics,
}

/// The outcome of one sync.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaDecision {
    /// The replica count to set.
    pub desired_replicas: i32,
    /// Whether that differs from the current count (a scale happens).
    pub rescale: bool,
    /// Which branch decided.
    pub reason: DecisionReason,
    /// The largest valid metric proposal, before stabilisation.
    pub metric_replicas: Option<i32>,
    /// The recommendation after stabilisation, before rate limits.
    pub stabilized_replicas: Option<i32>,
    /// What held the final count back from the stabilised one, if anything.
    pub limited_by: Option<Limit>,
    /// Every metric's proposal or error, in spec order.
    pub metrics: Vec<Result<MetricProposal, MetricError>>,
    /// How many metrics were invalid (the sync still scales on the valid ones).
    pub invalid_metrics: usize,
}

/// A sync that could not decide; the caller keeps the current count.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HpaError {
    /// The spec fails validation.
    #[error("invalid HPA spec: {0}")]
    Spec(#[from] HpaSpecError),
    /// Observations do not line up with the metrics.
    #[error("{got} metric observations for {expected} metrics")]
    ObservationCount {
        /// Effective metrics.
        expected: usize,
        /// Observations given.
        got: usize,
    },
    /// All metrics invalid, or some invalid while the valid ones would scale down.
    #[error("invalid metrics ({invalid} invalid out of {total}), first error is: {first}")]
    InvalidMetrics {
        /// Invalid metrics.
        invalid: usize,
        /// All metrics.
        total: usize,
        /// The first metric's error.
        first: MetricError,
    },
}

/// One sync of one HPA: decides the replica count and updates `state`.
///
/// On error `state` is unchanged and nothing should be scaled.
pub fn reconcile(
    spec: &HpaSpec,
    config: &ControllerConfig,
    input: &HpaInput<'_>,
    state: &mut HpaState,
) -> Result<HpaDecision, HpaError> {
    spec.validate()?;
    let metrics = spec.effective_metrics();
    if input.observations.len() != metrics.len() {
        return Err(HpaError::ObservationCount {
            expected: metrics.len(),
            got: input.observations.len(),
        });
    }
    let current = input.spec_replicas;
    let min = spec.min_replicas();
    let max = spec.max_replicas;
    let rules = spec.behavior.as_ref().map(|b| {
        (
            ResolvedRules::resolve(b.scale_up.as_ref(), ResolvedRules::default_scale_up(config)),
            ResolvedRules::resolve(
                b.scale_down.as_ref(),
                ResolvedRules::default_scale_down(config),
            ),
        )
    });

    let mut decision = HpaDecision {
        desired_replicas: current,
        rescale: false,
        reason: DecisionReason::Metrics,
        metric_replicas: None,
        stabilized_replicas: None,
        limited_by: None,
        metrics: Vec::new(),
        invalid_metrics: 0,
    };
    if current == 0 && min != 0 {
        decision.desired_replicas = 0;
        decision.reason = DecisionReason::ScalingDisabled;
        return Ok(decision);
    }
    if current > max {
        decision.desired_replicas = max;
        decision.reason = DecisionReason::AboveMaxReplicas;
    } else if current < min {
        decision.desired_replicas = min;
        decision.reason = DecisionReason::BelowMinReplicas;
    } else {
        let ctx = MetricContext {
            spec_replicas: current,
            status_replicas: input.status_replicas,
            pods: input.pods,
            tolerances: spec.tolerances(config),
            config,
            now: input.now,
        };
        let results: Vec<_> = metrics
            .iter()
            .zip(input.observations)
            .map(|(m, o)| replicas_for_metric(m, o, &ctx))
            .collect();
        // Upstream starts from 0 and lets any proposal replace a 0.
        let mut best = 0;
        let mut first_error = None;
        let mut invalid = 0;
        for r in &results {
            match r {
                Ok(p) => {
                    if best == 0 || p.replicas > best {
                        best = p.replicas;
                    }
                }
                Err(e) => {
                    invalid += 1;
                    first_error.get_or_insert_with(|| e.clone());
                }
            }
        }
        if let Some(first) = first_error
            && (invalid >= results.len() || best < current)
        {
            // Never scale down on partial information.
            return Err(HpaError::InvalidMetrics {
                invalid,
                total: results.len(),
                first,
            });
        }
        let desired = best.max(0);
        let (stabilized, (limited, why)) = match &rules {
            None => {
                let s = stabilize_legacy(
                    state,
                    input.now,
                    desired,
                    config.downscale_stabilization_window_seconds,
                );
                (s, limit_legacy(current, s, min, max))
            }
            Some((up, down)) => {
                let s = stabilize_with_behavior(
                    state,
                    input.now,
                    current,
                    desired,
                    up.stabilization_window_seconds,
                    down.stabilization_window_seconds,
                );
                (
                    s,
                    limit_with_behavior(state, input.now, current, s, min, max, up, down),
                )
            }
        };
        decision.metric_replicas = Some(best);
        decision.stabilized_replicas = Some(stabilized);
        decision.limited_by = why;
        decision.desired_replicas = limited;
        decision.metrics = results;
        decision.invalid_metrics = invalid;
    }
    decision.rescale = decision.desired_replicas != current;
    if decision.rescale
        && let Some((up, down)) = &rules
    {
        record_scale_event(
            state,
            input.now,
            current,
            decision.desired_replicas,
            up,
            down,
        );
    }
    Ok(decision)
}
