//! From aggregated history to a VPA's `status.recommendation`, in upstream's
//! order:
//!
//! 1. drop containers whose policy says `mode: Off`, and containers without
//!    samples (`routines/vpa.go`);
//! 2. estimate target / lower / upper with the decorator chain, the per-pod
//!    minimum split equally across the remaining containers
//!    (`logic/recommender.go`);
//! 3. keep only the policy's `controlledResources`;
//! 4. sort by container name, round CPU up to `round_cpu_millicores`, copy
//!    the target to `uncappedTarget` (`MapToListOfRecommendedContainerResources`);
//! 5. run the post-processor chain, capping (`minAllowed`/`maxAllowed`, with
//!    the `"*"` fallback and the global max) last.

use super::estimator::{
    ConfidenceMultiplier, MarginEstimator, MinResourcesEstimator, PercentileEstimator,
    ResourceEstimator,
};
use super::options::EstimationOptions;
use super::state::AggregateContainerState;
use super::units::{
    cpu_amount_from_cores, memory_amount_from_bytes, round_up_to_multiple, scale_amount,
};
use crate::policy::{
    ContainerRecommendation, ContainerScalingMode, PartialResources, PodRecommendation,
    ResourcePolicy,
};
use crate::resources::{ResourceName, Resources};
use std::collections::BTreeMap;

/// A boxed estimator usable across threads.
pub type BoxedEstimator = Box<dyn ResourceEstimator + Send + Sync>;

/// A step applied to a pod's recommendation after estimation.
pub trait RecommendationPostProcessor {
    /// Returns the adjusted recommendation.
    fn process(
        &self,
        policy: &ResourcePolicy,
        recommendation: PodRecommendation,
    ) -> PodRecommendation;
}

/// Clamps target, lower and upper bound to the container policy's
/// `minAllowed` then `maxAllowed` (a zero cap is ignored, as upstream), with
/// `global_max_allowed` filling resources the policy leaves uncapped.
/// `uncappedTarget` is left alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CappingPostProcessor {
    /// Upper cap for every container, per resource, where the policy has none.
    pub global_max_allowed: PartialResources,
}

fn cap(value: i64, min: Option<i64>, max: Option<i64>) -> i64 {
    let value = match min {
        Some(m) if m != 0 && value < m => m,
        _ => value,
    };
    match max {
        Some(m) if m != 0 && value > m => m,
        _ => value,
    }
}

fn cap_partial(
    r: PartialResources,
    min: PartialResources,
    max: PartialResources,
) -> PartialResources {
    let mut out = r;
    for name in ResourceName::ALL {
        if let Some(v) = r.get(name) {
            out = out.with(name, Some(cap(v, min.get(name), max.get(name))));
        }
    }
    out
}

impl RecommendationPostProcessor for CappingPostProcessor {
    fn process(
        &self,
        policy: &ResourcePolicy,
        mut recommendation: PodRecommendation,
    ) -> PodRecommendation {
        for rec in &mut recommendation.container_recommendations {
            let container_policy = policy.for_container(&rec.container_name);
            let min = container_policy.map_or(PartialResources::NONE, |p| p.min_allowed);
            let mut max = container_policy.map_or(PartialResources::NONE, |p| p.max_allowed);
            for name in ResourceName::ALL {
                if max.get(name).is_none() {
                    max = max.with(name, self.global_max_allowed.get(name));
                }
            }
            rec.target = cap_partial(rec.target, min, max);
            rec.lower_bound = cap_partial(rec.lower_bound, min, max);
            rec.upper_bound = cap_partial(rec.upper_bound, min, max);
        }
        recommendation
    }
}

/// Target, lower and upper bound for one container, before policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecommendedContainerResources {
    /// Recommended requests.
    pub target: Resources,
    /// Smallest requests still fine.
    pub lower_bound: Resources,
    /// Largest requests still fine.
    pub upper_bound: Resources,
}

/// The recommender: three estimator chains, the per-pod minimum, rounding and
/// the post-processor chain.
pub struct PodResourceRecommender {
    target: BoxedEstimator,
    lower_bound: BoxedEstimator,
    upper_bound: BoxedEstimator,
    pod_min: Resources,
    round_cpu_millicores: i64,
    post_processors: Vec<Box<dyn RecommendationPostProcessor + Send + Sync>>,
}

impl std::fmt::Debug for PodResourceRecommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodResourceRecommender")
            .field("pod_min", &self.pod_min)
            .field("round_cpu_millicores", &self.round_cpu_millicores)
            .field("post_processors", &self.post_processors.len())
            .finish_non_exhaustive()
    }
}

impl PodResourceRecommender {
    /// Upstream's recommender (or the cost-aware CPU target when configured):
    /// target p90, lower p50, upper p95; +15% margin; upper × (1 + 1/c),
    /// lower × (1 + 0.001/c)^−2; capping post-processor. Call
    /// [`EstimationOptions::validate`] first: out-of-range options are not
    /// rejected here.
    #[must_use]
    pub fn new(options: &EstimationOptions) -> Self {
        let margin = options.safety_margin_fraction;
        let target = MarginEstimator {
            margin_fraction: margin,
            base: PercentileEstimator {
                cpu_percentile: options.effective_target_cpu_percentile(),
                memory_percentile: options.target_memory_percentile,
            },
        };
        let lower = ConfidenceMultiplier {
            multiplier: options.lower_bound_confidence_multiplier,
            exponent: options.lower_bound_confidence_exponent,
            base: MarginEstimator {
                margin_fraction: margin,
                base: PercentileEstimator {
                    cpu_percentile: options.lower_bound_cpu_percentile,
                    memory_percentile: options.lower_bound_memory_percentile,
                },
            },
        };
        let upper = ConfidenceMultiplier {
            multiplier: options.upper_bound_confidence_multiplier,
            exponent: options.upper_bound_confidence_exponent,
            base: MarginEstimator {
                margin_fraction: margin,
                base: PercentileEstimator {
                    cpu_percentile: options.upper_bound_cpu_percentile,
                    memory_percentile: options.upper_bound_memory_percentile,
                },
            },
        };
        Self::with_estimators(Box::new(target), Box::new(lower), Box::new(upper), options)
    }

    /// A recommender with caller-chosen estimator chains (the per-pod minimum,
    /// rounding and capping from `options` still apply).
    #[must_use]
    pub fn with_estimators(
        target: BoxedEstimator,
        lower_bound: BoxedEstimator,
        upper_bound: BoxedEstimator,
        options: &EstimationOptions,
    ) -> Self {
        PodResourceRecommender {
            target,
            lower_bound,
            upper_bound,
            pod_min: Resources::new(
                cpu_amount_from_cores(options.pod_min_cpu_millicores * 0.001),
                memory_amount_from_bytes(options.pod_min_memory_mb * 1024.0 * 1024.0),
            ),
            round_cpu_millicores: options.round_cpu_millicores,
            post_processors: vec![Box::new(CappingPostProcessor {
                global_max_allowed: options.global_max_allowed,
            })],
        }
    }

    /// Replaces the post-processor chain (keep capping last).
    #[must_use]
    pub fn with_post_processors(
        mut self,
        post_processors: Vec<Box<dyn RecommendationPostProcessor + Send + Sync>>,
    ) -> Self {
        self.post_processors = post_processors;
        self
    }

    /// Estimates for each container of one pod (already filtered), with the
    /// per-pod minimum split equally among them.
    #[must_use]
    pub fn estimate_pod<'a>(
        &self,
        containers: impl ExactSizeIterator<Item = (&'a str, &'a AggregateContainerState)>,
    ) -> Vec<(&'a str, RecommendedContainerResources)> {
        let n = containers.len();
        if n == 0 {
            return Vec::new();
        }
        #[allow(clippy::cast_precision_loss)] // container counts are tiny
        let fraction = 1.0 / n as f64;
        let min = self.pod_min.map(|_, v| scale_amount(v, fraction));
        let target = MinResourcesEstimator {
            min,
            base: &self.target,
        };
        let lower = MinResourcesEstimator {
            min,
            base: &self.lower_bound,
        };
        let upper = MinResourcesEstimator {
            min,
            base: &self.upper_bound,
        };
        containers
            .map(|(name, state)| {
                (
                    name,
                    RecommendedContainerResources {
                        target: target.estimate(state),
                        lower_bound: lower.estimate(state),
                        upper_bound: upper.estimate(state),
                    },
                )
            })
            .collect()
    }

    /// The VPA's recommendation from its containers' merged states
    /// (container name → state). Containers with `mode: Off` or no samples
    /// get no entry.
    #[must_use]
    pub fn recommend(
        &self,
        policy: &ResourcePolicy,
        containers: &BTreeMap<String, AggregateContainerState>,
    ) -> PodRecommendation {
        let eligible: Vec<(&str, &AggregateContainerState)> = containers
            .iter()
            .filter(|(name, state)| {
                let off = policy
                    .for_container(name)
                    .is_some_and(|p| p.mode == ContainerScalingMode::Off);
                !off && state.total_samples_count > 0
            })
            .map(|(name, state)| (name.as_str(), state))
            .collect();
        let estimates = self.estimate_pod(eligible.into_iter());
        let container_recommendations = estimates
            .into_iter()
            .map(|(name, est)| {
                let controlled = |r: Resources| -> PartialResources {
                    let mut out = PartialResources::NONE;
                    for resource in ResourceName::ALL {
                        let is_controlled = policy
                            .for_container(name)
                            .is_none_or(|p| p.controls(resource));
                        if is_controlled {
                            let mut v = r.get(resource);
                            if resource == ResourceName::Cpu {
                                v = round_up_to_multiple(v, self.round_cpu_millicores);
                            }
                            out = out.with(resource, Some(v));
                        }
                    }
                    out
                };
                let target = controlled(est.target);
                ContainerRecommendation {
                    container_name: name.to_owned(),
                    target,
                    lower_bound: controlled(est.lower_bound),
                    upper_bound: controlled(est.upper_bound),
                    uncapped_target: target,
                }
            })
            .collect();
        self.post_processors.iter().fold(
            PodRecommendation {
                container_recommendations,
            },
            |rec, p| p.process(policy, rec),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ContainerPolicy;
    use crate::recommender::estimator::ConstEstimator;
    use crate::recommender::options::AggregationOptions;
    use crate::recommender::state::ContainerState;
    use rstest::rstest;

    const T0: i64 = 1_700_000_000;
    const MIB: i64 = 1024 * 1024;

    fn const_recommender(r: Resources) -> PodResourceRecommender {
        PodResourceRecommender::with_estimators(
            Box::new(ConstEstimator(r)),
            Box::new(ConstEstimator(r)),
            Box::new(ConstEstimator(r)),
            &EstimationOptions::default(),
        )
    }

    fn sampled_state() -> AggregateContainerState {
        let mut s = AggregateContainerState::new(&AggregationOptions::default(), T0).unwrap();
        s.add_cpu_sample(T0, 1, 100).unwrap();
        s
    }

    fn states(names: &[&str]) -> BTreeMap<String, AggregateContainerState> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), sampled_state()))
            .collect()
    }

    #[rstest]
    #[case(&["c1"], 25, 262_144_000)]
    #[case(&["c1", "c2"], 12, 131_072_000)]
    #[case(&["c1", "c2", "c3"], 8, 87_381_333)]
    fn per_pod_minimum_is_split(#[case] names: &[&str], #[case] cpu: i64, #[case] mem: i64) {
        let r = const_recommender(Resources::new(1, 1_000_000));
        let rec = r.recommend(&ResourcePolicy::default(), &states(names));
        assert_eq!(rec.container_recommendations.len(), names.len());
        for c in &rec.container_recommendations {
            assert_eq!(c.target, PartialResources::from(Resources::new(cpu, mem)));
            assert_eq!(c.lower_bound, c.target);
            assert_eq!(c.upper_bound, c.target);
            assert_eq!(c.uncapped_target, c.target);
        }
    }

    fn policy(name: &str, f: impl FnOnce(&mut ContainerPolicy)) -> ContainerPolicy {
        let mut p = ContainerPolicy::default_for(name);
        f(&mut p);
        p
    }

    #[test]
    fn controlled_resources_filter() {
        let r = const_recommender(Resources::new(500, 1_000_000_000));
        let rp = ResourcePolicy {
            container_policies: vec![policy("c1", |p| {
                p.controlled_resources = vec![ResourceName::Memory]
            })],
        };
        let rec = r.recommend(&rp, &states(&["c1", "c2"]));
        let c1 = rec.for_container("c1").unwrap();
        assert_eq!(c1.target.cpu_millis, None);
        assert_eq!(c1.upper_bound.cpu_millis, None);
        assert_eq!(c1.lower_bound.memory_bytes, Some(1_000_000_000));
        let c2 = rec.for_container("c2").unwrap();
        assert_eq!(c2.target.cpu_millis, Some(500));
    }

    #[test]
    fn mode_off_and_empty_containers_get_nothing_and_do_not_split_minimum() {
        let r = const_recommender(Resources::new(1, 1));
        let rp = ResourcePolicy {
            container_policies: vec![policy("off", |p| p.mode = ContainerScalingMode::Off)],
        };
        let mut containers = states(&["app", "off"]);
        containers.insert(
            "empty".into(),
            AggregateContainerState::new(&AggregationOptions::default(), T0).unwrap(),
        );
        let rec = r.recommend(&rp, &containers);
        assert_eq!(rec.container_recommendations.len(), 1);
        let app = rec.for_container("app").unwrap();
        assert_eq!(app.target.cpu_millis, Some(25));
        // `"*"` with mode Off turns everything off.
        let star = ResourcePolicy {
            container_policies: vec![policy("*", |p| p.mode = ContainerScalingMode::Off)],
        };
        assert!(
            r.recommend(&star, &containers)
                .container_recommendations
                .is_empty()
        );
    }

    #[rstest]
    // Below min → raised; above max → lowered; zero caps ignored.
    #[case(Some(600), None, Some(600))]
    #[case(None, Some(400), Some(400))]
    #[case(Some(0), Some(0), Some(500))]
    #[case(Some(100), Some(900), Some(500))]
    fn capping_with_star_fallback(
        #[case] min: Option<i64>,
        #[case] max: Option<i64>,
        #[case] expected: Option<i64>,
    ) {
        let r = const_recommender(Resources::new(500, 300 * MIB));
        let rp = ResourcePolicy {
            container_policies: vec![
                policy("*", |p| {
                    p.min_allowed.cpu_millis = min;
                    p.max_allowed.cpu_millis = max;
                }),
                policy("exact", |p| p.max_allowed.memory_bytes = Some(200 * MIB)),
            ],
        };
        let rec = r.recommend(&rp, &states(&["app", "exact"]));
        let app = rec.for_container("app").unwrap();
        assert_eq!(app.target.cpu_millis, expected);
        assert_eq!(app.lower_bound.cpu_millis, expected);
        assert_eq!(app.upper_bound.cpu_millis, expected);
        assert_eq!(app.uncapped_target.cpu_millis, Some(500));
        // The exact entry wins over "*": its CPU is uncapped, memory capped.
        let exact = rec.for_container("exact").unwrap();
        assert_eq!(exact.target.cpu_millis, Some(500));
        assert_eq!(exact.target.memory_bytes, Some(200 * MIB));
        assert_eq!(exact.uncapped_target.memory_bytes, Some(300 * MIB));
    }

    #[test]
    fn global_max_fills_only_uncapped_resources() {
        let opts = EstimationOptions {
            global_max_allowed: PartialResources {
                cpu_millis: Some(300),
                memory_bytes: Some(100 * MIB),
            },
            ..EstimationOptions::default()
        };
        let e = || -> BoxedEstimator { Box::new(ConstEstimator(Resources::new(500, 300 * MIB))) };
        let r = PodResourceRecommender::with_estimators(e(), e(), e(), &opts);
        let rp = ResourcePolicy {
            container_policies: vec![policy("app", |p| {
                p.max_allowed.memory_bytes = Some(250 * MIB)
            })],
        };
        let rec = r.recommend(&rp, &states(&["app"]));
        let app = rec.for_container("app").unwrap();
        assert_eq!(app.target.cpu_millis, Some(300));
        assert_eq!(app.target.memory_bytes, Some(250 * MIB));
    }

    #[test]
    fn cpu_rounded_up_to_configured_millicores() {
        let opts = EstimationOptions {
            round_cpu_millicores: 100,
            ..EstimationOptions::default()
        };
        let e = || -> BoxedEstimator { Box::new(ConstEstimator(Resources::new(1234, 300 * MIB))) };
        let r = PodResourceRecommender::with_estimators(e(), e(), e(), &opts);
        let rec = r.recommend(&ResourcePolicy::default(), &states(&["app"]));
        let app = rec.for_container("app").unwrap();
        assert_eq!(app.target.cpu_millis, Some(1300));
        assert_eq!(app.uncapped_target.cpu_millis, Some(1300));
        assert_eq!(app.target.memory_bytes, Some(300 * MIB));
    }

    fn eight_days_of_history() -> AggregateContainerState {
        let opts = AggregationOptions::default();
        let mut agg = AggregateContainerState::new(&opts, T0).unwrap();
        let mut c = ContainerState::new(Resources::new(500, 512 * MIB), &opts);
        for i in 0..(8 * 24 * 60) {
            let t = T0 + i * 60;
            // 0.2 cores most of the time, 1 core for 6 minutes an hour.
            let cpu = if i % 60 < 6 { 1.0 } else { 0.2 };
            c.add_cpu_sample(&mut agg, t, cpu).unwrap();
            c.add_memory_sample(&mut agg, t, 300e6).unwrap();
        }
        agg
    }

    #[test]
    fn default_recommender_end_to_end() {
        let agg = eight_days_of_history();
        let containers: BTreeMap<String, AggregateContainerState> =
            [("app".to_owned(), agg)].into();
        let r = PodResourceRecommender::new(&EstimationOptions::default());
        let rec = r.recommend(&ResourcePolicy::default(), &containers);
        let app = rec.for_container("app").unwrap();
        let target = app.target.cpu_millis.unwrap();
        let lower = app.lower_bound.cpu_millis.unwrap();
        let upper = app.upper_bound.cpu_millis.unwrap();
        // p90 of CPU is the end of the 0.2-core bucket (the 1-core samples
        // are 10% of the weight), +15%.
        let o = AggregationOptions::default().cpu_histogram().unwrap();
        let p90 = cpu_amount_from_cores(o.bucket_start(o.find_bucket(0.2) + 1));
        assert_eq!(target, p90 + scale_amount(p90, 0.15), "target {target}");
        assert!(
            lower <= target && target <= upper,
            "{lower} {target} {upper}"
        );
        // Upper: p95 = 1 core bucket end, ×1.15, ×(1 + 1/8).
        assert!((1250..=1400).contains(&upper), "upper {upper}");
        let mem = app.target.memory_bytes.unwrap();
        assert!((345_000_000..=362_000_000).contains(&mem), "memory {mem}");
    }

    #[test]
    fn cost_aware_target_moves_with_prices() {
        let agg = eight_days_of_history();
        let containers: BTreeMap<String, AggregateContainerState> =
            [("app".to_owned(), agg)].into();
        let target_for = |penalty: f64| {
            let opts = EstimationOptions {
                cost_aware: Some(
                    crate::recommender::cost::CostAwareQuantile::new(0.04, penalty).unwrap(),
                ),
                ..EstimationOptions::default()
            };
            PodResourceRecommender::new(&opts)
                .recommend(&ResourcePolicy::default(), &containers)
                .for_container("app")
                .and_then(|c| c.target.cpu_millis)
                .unwrap()
        };
        let upstream = PodResourceRecommender::new(&EstimationOptions::default())
            .recommend(&ResourcePolicy::default(), &containers)
            .for_container("app")
            .and_then(|c| c.target.cpu_millis)
            .unwrap();
        // p = 9c reproduces upstream's p90 exactly.
        assert_eq!(target_for(0.36), upstream);
        // A steep throttling penalty (q = 0.99) asks for the 1-core peaks.
        assert!(target_for(3.96) > 1000, "{}", target_for(3.96));
    }
}
