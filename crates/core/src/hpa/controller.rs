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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpa::replicas::{PodPhase, PodSample, ReadyCondition};
    use crate::hpa::spec::{
        Behavior, MetricSource, MetricSpec, MetricTarget, ScalingPolicy, ScalingRules, SelectPolicy,
    };
    use crate::resources::ResourceName;
    use proptest::prelude::*;
    use rstest::rstest;

    fn ready_pods(n: i32) -> Vec<Pod> {
        (0..n)
            .map(|i| Pod {
                name: format!("pod-{i}"),
                phase: PodPhase::Running,
                deleting: false,
                start_time: Some(0.0),
                ready: Some(ReadyCondition {
                    ready: true,
                    last_transition: 0.0,
                }),
            })
            .collect()
    }

    fn object_value(target: i64) -> MetricSpec {
        MetricSpec {
            source: MetricSource::Object {
                metric: "queue".into(),
            },
            target: MetricTarget::Value(target),
        }
    }

    fn spec(min: i32, max: i32, metrics: Vec<MetricSpec>, behavior: Option<Behavior>) -> HpaSpec {
        HpaSpec {
            min_replicas: Some(min),
            max_replicas: max,
            metrics,
            behavior,
        }
    }

    /// One sync at `now` with `current` ready pods and an Object metric value.
    fn sync(
        s: &HpaSpec,
        state: &mut HpaState,
        now: f64,
        current: i32,
        value: i64,
    ) -> Result<HpaDecision, HpaError> {
        let pods = ready_pods(current);
        let obs = vec![MetricObservation::Object(value); s.effective_metrics().len()];
        reconcile(
            s,
            &ControllerConfig::default(),
            &HpaInput {
                now,
                spec_replicas: current,
                status_replicas: current,
                pods: &pods,
                observations: &obs,
            },
            state,
        )
    }

    #[rstest]
    #[case::disabled_at_zero(1, 10, 0, 0, DecisionReason::ScalingDisabled, false)]
    #[case::above_max(1, 10, 12, 10, DecisionReason::AboveMaxReplicas, true)]
    #[case::below_min(3, 10, 1, 3, DecisionReason::BelowMinReplicas, true)]
    #[case::in_range_no_change(1, 10, 4, 4, DecisionReason::Metrics, false)]
    fn bounds_are_checked_before_metrics(
        #[case] min: i32,
        #[case] max: i32,
        #[case] current: i32,
        #[case] expected: i32,
        #[case] reason: DecisionReason,
        #[case] rescale: bool,
    ) {
        let s = spec(min, max, vec![object_value(1000)], None);
        // A value at the target: no metric-driven change.
        let d = sync(&s, &mut HpaState::default(), 0.0, current, 1000).unwrap();
        assert_eq!(d.desired_replicas, expected);
        assert_eq!(d.reason, reason);
        assert_eq!(d.rescale, rescale);
    }

    #[test]
    fn largest_metric_wins() {
        let s = spec(
            1,
            100,
            vec![object_value(1000), object_value(500), object_value(4000)],
            None,
        );
        // 2000 against 1000/500/4000 with 4 ready pods: 8, 16, 2 → 16 capped to 2×4.
        let d = sync(&s, &mut HpaState::default(), 0.0, 4, 2000).unwrap();
        assert_eq!(d.metric_replicas, Some(16));
        assert_eq!(d.desired_replicas, 8);
        assert_eq!(d.limited_by, Some(Limit::ScaleUpLimit));
        assert_eq!(
            d.metrics
                .iter()
                .map(|m| m.as_ref().map(|p| p.replicas))
                .collect::<Vec<_>>(),
            vec![Ok(8), Ok(16), Ok(2)]
        );
    }

    fn mixed(value: i64) -> (HpaSpec, Vec<MetricObservation>) {
        let s = spec(
            1,
            100,
            vec![
                object_value(1000),
                MetricSpec {
                    source: MetricSource::External {
                        metric: "lag".into(),
                    },
                    target: MetricTarget::Value(10),
                },
            ],
            None,
        );
        (
            s,
            vec![
                MetricObservation::Object(value),
                MetricObservation::Unavailable("adapter down".into()),
            ],
        )
    }

    fn run(s: &HpaSpec, obs: &[MetricObservation], current: i32) -> Result<HpaDecision, HpaError> {
        let pods = ready_pods(current);
        reconcile(
            s,
            &ControllerConfig::default(),
            &HpaInput {
                now: 0.0,
                spec_replicas: current,
                status_replicas: current,
                pods: &pods,
                observations: obs,
            },
            &mut HpaState::default(),
        )
    }

    #[test]
    fn invalid_metric_still_scales_up_on_the_valid_ones() {
        let (s, obs) = mixed(3000);
        let d = run(&s, &obs, 2).unwrap();
        assert_eq!(d.desired_replicas, 4);
        assert_eq!(d.invalid_metrics, 1);
    }

    #[test]
    fn invalid_metric_blocks_scale_down() {
        let (s, obs) = mixed(500);
        let err = run(&s, &obs, 4).unwrap_err();
        assert!(
            matches!(
                err,
                HpaError::InvalidMetrics {
                    invalid: 1,
                    total: 2,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("adapter down"));
    }

    #[test]
    fn all_metrics_invalid_is_an_error() {
        let s = spec(1, 10, vec![object_value(1000)], None);
        let obs = vec![MetricObservation::Unavailable("x".into())];
        let err = run(&s, &obs, 4).unwrap_err();
        assert!(matches!(
            err,
            HpaError::InvalidMetrics {
                invalid: 1,
                total: 1,
                ..
            }
        ));
    }

    #[test]
    fn empty_metrics_default_to_cpu_80_percent() {
        let s = spec(1, 10, vec![], None);
        let pods = ready_pods(2);
        let obs = vec![MetricObservation::Resource {
            usage: vec![
                Some(PodSample {
                    value: 1600,
                    timestamp: 0.0,
                    window: 60.0,
                });
                2
            ],
            requests: vec![Some(1000); 2],
        }];
        let d = reconcile(
            &s,
            &ControllerConfig::default(),
            &HpaInput {
                now: 1000.0,
                spec_replicas: 2,
                status_replicas: 2,
                pods: &pods,
                observations: &obs,
            },
            &mut HpaState::default(),
        )
        .unwrap();
        // 160 % against 80 %: twice the pods.
        assert_eq!(d.desired_replicas, 4);
        assert_eq!(d.metrics[0].as_ref().unwrap().utilization, Some(160));
    }

    #[rstest]
    #[case::max_zero(spec(1, 0, vec![], None), "maxReplicas")]
    #[case::min_above_max(spec(5, 3, vec![], None), "minReplicas")]
    #[case::zero_without_object(spec(0, 3, vec![], None), "minReplicas 0")]
    #[case::zero_target(spec(1, 3, vec![object_value(0)], None), "must be positive")]
    #[case::empty_policies(spec(1, 3, vec![], Some(Behavior { scale_up: Some(ScalingRules { policies: Some(vec![]), ..ScalingRules::default() }), scale_down: None })), "at least one policy")]
    #[case::policy_period(spec(1, 3, vec![], Some(Behavior { scale_up: None, scale_down: Some(ScalingRules { policies: Some(vec![ScalingPolicy::pods(1, 1801)]), ..ScalingRules::default() }) })), "periodSeconds")]
    #[case::window(spec(1, 3, vec![], Some(Behavior { scale_up: None, scale_down: Some(ScalingRules { stabilization_window_seconds: Some(3601), ..ScalingRules::default() }) })), "stabilizationWindowSeconds")]
    #[case::tolerance(spec(1, 3, vec![], Some(Behavior { scale_up: Some(ScalingRules { tolerance: Some(-0.1), ..ScalingRules::default() }), scale_down: None })), "tolerance")]
    fn invalid_specs_are_rejected(#[case] s: HpaSpec, #[case] message: &str) {
        let err = run(&s, &[MetricObservation::Object(1)], 2).unwrap_err();
        assert!(matches!(err, HpaError::Spec(_)), "{err:?}");
        assert!(err.to_string().contains(message), "{err}");
    }

    #[test]
    fn observation_count_must_match() {
        let s = spec(1, 3, vec![object_value(1)], None);
        assert_eq!(
            run(&s, &[], 2).unwrap_err(),
            HpaError::ObservationCount {
                expected: 1,
                got: 0
            }
        );
    }

    #[test]
    fn legacy_path_holds_scale_down_for_five_minutes() {
        let s = spec(1, 100, vec![object_value(1000)], None);
        let mut st = HpaState::default();
        // At the target with 10 pods: stays at 10, recorded.
        assert_eq!(
            sync(&s, &mut st, 0.0, 10, 1_000).unwrap().desired_replicas,
            10
        );
        // Load halves: recommendation 5, held at 10 by the window.
        let d = sync(&s, &mut st, 15.0, 10, 500).unwrap();
        assert_eq!((d.metric_replicas, d.desired_replicas), (Some(5), 10));
        // After the window the 10 has expired.
        let d = sync(&s, &mut st, 301.0, 10, 500).unwrap();
        assert_eq!(d.desired_replicas, 5);
        assert!(
            st.scale_down_events.is_empty(),
            "legacy path keeps no events"
        );
    }

    #[test]
    fn default_behavior_rate_limits_scale_up_over_periods() {
        let s = spec(1, 100, vec![object_value(1000)], Some(Behavior::default()));
        let mut st = HpaState::default();
        // 5 → wants 50; max(5 + 4, 2 × 5) = 10.
        let d = sync(&s, &mut st, 0.0, 5, 50_000).unwrap();
        assert_eq!(d.desired_replicas, 10);
        assert_eq!(d.limited_by, Some(Limit::ScaleUpLimit));
        // 10 s later the period still holds the +5: start 5, limit 10 → no change.
        let d = sync(&s, &mut st, 10.0, 10, 100_000).unwrap();
        assert_eq!((d.desired_replicas, d.rescale), (10, false));
        // After the 15 s period: max(10 + 4, 20) = 20.
        let d = sync(&s, &mut st, 16.0, 10, 100_000).unwrap();
        assert_eq!(d.desired_replicas, 20);
    }

    #[test]
    fn behavior_scale_down_uses_controller_window_and_policies() {
        let b = Behavior {
            scale_up: None,
            scale_down: Some(ScalingRules {
                stabilization_window_seconds: Some(60),
                select_policy: Some(SelectPolicy::Max),
                policies: Some(vec![ScalingPolicy::pods(2, 60)]),
                tolerance: None,
            }),
        };
        let s = spec(1, 100, vec![object_value(1000)], Some(b));
        let mut st = HpaState::default();
        assert_eq!(
            sync(&s, &mut st, 0.0, 10, 1_000).unwrap().desired_replicas,
            10
        );
        // Wants 2, held by the 60 s window.
        assert_eq!(
            sync(&s, &mut st, 30.0, 10, 200).unwrap().desired_replicas,
            10
        );
        // Window passed: wants 2, but at most 2 pods per 60 s.
        let d = sync(&s, &mut st, 61.0, 10, 200).unwrap();
        assert_eq!(d.desired_replicas, 8);
        assert_eq!(d.limited_by, Some(Limit::ScaleDownLimit));
        // Within the same 60 s, no further removal.
        assert_eq!(sync(&s, &mut st, 90.0, 8, 250).unwrap().desired_replicas, 8);
        // The event at 61 s has left the period (strictly after 122 − 60).
        assert_eq!(
            sync(&s, &mut st, 122.0, 8, 250).unwrap().desired_replicas,
            6
        );
    }

    #[test]
    fn disabled_scale_down_never_shrinks() {
        let b = Behavior {
            scale_up: None,
            scale_down: Some(ScalingRules {
                select_policy: Some(SelectPolicy::Disabled),
                ..ScalingRules::default()
            }),
        };
        let s = spec(1, 100, vec![object_value(1000)], Some(b));
        // Wants 1.
        let d = sync(&s, &mut HpaState::default(), 0.0, 10, 100).unwrap();
        assert_eq!(d.metric_replicas, Some(1));
        assert_eq!((d.desired_replicas, d.rescale), (10, false));
    }

    #[test]
    fn behavior_tolerance_overrides_controller_tolerance() {
        let b = Behavior {
            scale_up: Some(ScalingRules {
                tolerance: Some(0.5),
                ..ScalingRules::default()
            }),
            scale_down: None,
        };
        let s = spec(1, 100, vec![object_value(1000)], Some(b));
        // Ratio 1.4 is within 0.5 up…
        let d = sync(&s, &mut HpaState::default(), 0.0, 10, 1_400).unwrap();
        assert_eq!(d.desired_replicas, 10);
        // …while 0.8 is outside the controller's 0.1 down (held only by min 1 and policies).
        let d = sync(&s, &mut HpaState::default(), 0.0, 10, 800).unwrap();
        assert_eq!(d.metric_replicas, Some(8));
    }

    #[test]
    fn unready_cpu_pods_do_not_trigger_scale_down_through_reconcile() {
        let s = spec(
            1,
            10,
            vec![MetricSpec {
                source: MetricSource::Resource {
                    resource: ResourceName::Cpu,
                },
                target: MetricTarget::Utilization(50),
            }],
            None,
        );
        let mut pods = ready_pods(2);
        pods[1].phase = PodPhase::Pending;
        let sample = PodSample {
            value: 500,
            timestamp: 0.0,
            window: 60.0,
        };
        let obs = vec![MetricObservation::Resource {
            usage: vec![Some(sample), None],
            requests: vec![Some(1000), Some(1000)],
        }];
        let d = reconcile(
            &s,
            &ControllerConfig::default(),
            &HpaInput {
                now: 1000.0,
                spec_replicas: 2,
                status_replicas: 2,
                pods: &pods,
                observations: &obs,
            },
            &mut HpaState::default(),
        )
        .unwrap();
        assert_eq!(d.desired_replicas, 2);
    }

    #[rstest]
    #[case::stays_at_zero(0, 0)]
    #[case::wakes_up(25, 3)]
    // From zero the legacy cap is max(2 × 0, 4).
    #[case::wakes_up_capped(95, 4)]
    fn scale_from_zero_with_external_metric(#[case] value: i64, #[case] expected: i32) {
        let s = spec(
            0,
            10,
            vec![MetricSpec {
                source: MetricSource::External {
                    metric: "queue_depth".into(),
                },
                target: MetricTarget::Value(10),
            }],
            None,
        );
        let d = reconcile(
            &s,
            &ControllerConfig::default(),
            &HpaInput {
                now: 0.0,
                spec_replicas: 0,
                status_replicas: 0,
                pods: &[],
                observations: &[MetricObservation::External(vec![value])],
            },
            &mut HpaState::default(),
        )
        .unwrap();
        assert_eq!(d.reason, DecisionReason::Metrics);
        assert_eq!(d.desired_replicas, expected);
    }

    fn arb_behavior() -> impl Strategy<Value = Option<Behavior>> {
        prop_oneof![
            Just(None),
            Just(Some(Behavior::default())),
            (0u32..400, 1i32..6, 15u32..120, 1i32..100, prop::bool::ANY).prop_map(
                |(window, pods, period, percent, min_select)| Some(Behavior {
                    scale_up: Some(ScalingRules {
                        stabilization_window_seconds: Some(window / 4),
                        select_policy: Some(if min_select {
                            SelectPolicy::Min
                        } else {
                            SelectPolicy::Max
                        }),
                        policies: Some(vec![
                            ScalingPolicy::pods(pods, period),
                            ScalingPolicy::percent(percent, period),
                        ]),
                        tolerance: None,
                    }),
                    scale_down: Some(ScalingRules {
                        stabilization_window_seconds: Some(window),
                        select_policy: None,
                        policies: Some(vec![ScalingPolicy::pods(pods, period)]),
                        tolerance: None,
                    }),
                })
            ),
        ]
    }

    proptest! {
        #[test]
        fn result_always_within_min_max(
            min in 1i32..5,
            extra in 0i32..30,
            behavior in arb_behavior(),
            steps in prop::collection::vec((1i32..40, 0i64..200_000), 1..40),
        ) {
            let max = min + extra;
            let s = spec(min, max, vec![object_value(1000)], behavior);
            let mut st = HpaState::default();
            let mut t = 0.0;
            for (current, value) in steps {
                t += 15.0;
                let d = sync(&s, &mut st, t, current, value).unwrap();
                prop_assert!(d.desired_replicas >= min && d.desired_replicas <= max,
                    "{} not in [{min}, {max}] from {current}", d.desired_replicas);
            }
        }

        /// Following its own decisions every 15 s, no scale-down goes more than a
        /// Pods policy allows below the count at the start of its period, nor below
        /// the highest raw recommendation of the stabilisation window.
        #[test]
        fn scale_down_never_faster_than_policy_or_window(
            start in 1i32..60,
            pods_per_period in 1i32..5,
            period in 15u32..300,
            window in 0u32..600,
            values in prop::collection::vec(0i64..100_000, 1..60),
        ) {
            let b = Behavior {
                scale_up: None,
                scale_down: Some(ScalingRules {
                    stabilization_window_seconds: Some(window),
                    select_policy: Some(SelectPolicy::Max),
                    policies: Some(vec![ScalingPolicy::pods(pods_per_period, period)]),
                    tolerance: None,
                }),
            };
            let s = spec(1, 100, vec![object_value(1000)], Some(b));
            let mut st = HpaState::default();
            let mut current = start;
            let mut history: Vec<(f64, i32)> = vec![(0.0, current)];
            let mut raw: Vec<(f64, i32)> = vec![];
            for (i, value) in values.into_iter().enumerate() {
                let t = 15.0 * (i as f64 + 1.0);
                let d = sync(&s, &mut st, t, current, value).unwrap();
                if let Some(m) = d.metric_replicas {
                    raw.push((t, m.max(0)));
                }
                let next = d.desired_replicas;
                if next < current {
                    // A scale-down may go at most `pods_per_period` below the count
                    // at the start of the policy period (events strictly after
                    // t − period undone, scale-ups included, as upstream). Steps that
                    // do not scale down are not bound by it: a scale-down made just
                    // after a scale-up can leave the count far below what it was one
                    // period later, and upstream allows that too.
                    let cutoff = t - f64::from(period);
                    let before = history
                        .iter()
                        .rev()
                        .find(|(at, _)| *at <= cutoff)
                        .map_or(history[0].1, |&(_, r)| r);
                    prop_assert!(before - next <= pods_per_period,
                        "dropped from {before} to {next} within {period}s (policy {pods_per_period})");
                    let held = raw
                        .iter()
                        .filter(|(at, _)| *at > t - f64::from(window))
                        .map(|&(_, r)| r)
                        .max()
                        .unwrap_or(0);
                    prop_assert!(next >= held.min(current).max(1),
                        "scaled down to {next} below window maximum {held}");
                }
                current = next;
                history.push((t, current));
            }
        }
    }
}
