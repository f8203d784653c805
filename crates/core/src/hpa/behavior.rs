//! Stabilisation and rate limiting (upstream `normalizeDesiredReplicas*`), over a
//! plain state struct the caller keeps between syncs.
//!
//! Cost: every function is linear in the recorded history, which upstream keeps
//! bounded by reusing stale slots (one slot per sync within the longest window).

use serde::{Deserialize, Serialize};

use super::spec::{
    LEGACY_SCALE_UP_LIMIT_FACTOR, LEGACY_SCALE_UP_LIMIT_MINIMUM, ResolvedRules, ScalingPolicy,
    ScalingPolicyKind, SelectPolicy,
};

/// A raw (pre-stabilisation) recommendation and when it was made.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    /// Replicas recommended by the metrics.
    pub replicas: i32,
    /// When, seconds.
    pub at: f64,
}

/// A change of the replica count made by the HPA.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleEvent {
    /// Replicas added (scale-up list) or removed (scale-down list); positive.
    pub change: i32,
    /// When, seconds.
    pub at: f64,
    /// Older than the longest policy period at the last store: its slot may be reused.
    pub outdated: bool,
}

/// What the controller remembers about one HPA between syncs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HpaState {
    /// Recent raw recommendations (stabilisation windows look at these).
    pub recommendations: Vec<Recommendation>,
    /// Recent scale-ups (policy periods look at these).
    pub scale_up_events: Vec<ScaleEvent>,
    /// Recent scale-downs.
    pub scale_down_events: Vec<ScaleEvent>,
}

/// Why the final count differs from the stabilised recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limit {
    /// A scale-up policy (or the legacy 2×/4 cap) held it back.
    ScaleUpLimit,
    /// `maxReplicas` held it back.
    TooManyReplicas,
    /// A scale-down policy held it back.
    ScaleDownLimit,
    /// `minReplicas` held it back.
    TooFewReplicas,
}

/// Stores a recommendation, reusing the slot of one older than `cutoff` if any.
fn record(state: &mut HpaState, replicas: i32, now: f64, old_slot: Option<usize>) {
    let rec = Recommendation { replicas, at: now };
    match old_slot.and_then(|i| state.recommendations.get_mut(i)) {
        Some(slot) => *slot = rec,
        None => state.recommendations.push(rec),
    }
}

/// Legacy stabilisation (no `behavior`): the highest recommendation within the
/// window, including this one; records `desired`.
pub fn stabilize_legacy(state: &mut HpaState, now: f64, desired: i32, window_seconds: u32) -> i32 {
    let cutoff = now - f64::from(window_seconds);
    let mut highest = desired;
    let mut old_slot = None;
    for (i, rec) in state.recommendations.iter().enumerate() {
        if rec.at < cutoff {
            old_slot = Some(i);
        } else if rec.replicas > highest {
            highest = rec.replicas;
        }
    }
    record(state, desired, now, old_slot);
    highest
}

/// Stabilisation with behaviour: the count moves up at most to the lowest
/// recommendation of the scale-up window and down at most to the highest of the
/// scale-down window; records `desired`.
pub fn stabilize_with_behavior(
    state: &mut HpaState,
    now: f64,
    current: i32,
    desired: i32,
    up_window_seconds: u32,
    down_window_seconds: u32,
) -> i32 {
    let up_cutoff = now - f64::from(up_window_seconds);
    let down_cutoff = now - f64::from(down_window_seconds);
    let mut up = desired;
    let mut down = desired;
    let mut old_slot = None;
    for (i, rec) in state.recommendations.iter().enumerate() {
        if rec.at > up_cutoff {
            up = up.min(rec.replicas);
        }
        if rec.at > down_cutoff {
            down = down.max(rec.replicas);
        }
        if rec.at < up_cutoff && rec.at < down_cutoff {
            old_slot = Some(i);
        }
    }
    let stabilized = current.max(up).min(down);
    record(state, desired, now, old_slot);
    stabilized
}

/// Replicas changed by the events within the last `period_seconds`.
fn change_in_period(events: &[ScaleEvent], now: f64, period_seconds: u32) -> i64 {
    let cutoff = now - f64::from(period_seconds);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| i64::from(e.change))
        .sum()
}

fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Folds every policy's proposed count with `pick`. Each policy starts from
/// the count at the start of its period (changes made within it undone);
/// `Disabled` allows no change.
fn policy_limit(
    state: &HpaState,
    now: f64,
    current: i32,
    rules: &ResolvedRules,
    pick: fn(i64, i64) -> i64,
    propose: impl Fn(i64, &ScalingPolicy) -> i64,
) -> i32 {
    let mut result: Option<i64> = None;
    for p in &rules.policies {
        let start = i64::from(current)
            - change_in_period(&state.scale_up_events, now, p.period_seconds)
            + change_in_period(&state.scale_down_events, now, p.period_seconds);
        let proposed = propose(start, p);
        result = Some(result.map_or(proposed, |r| pick(r, proposed)));
    }
    clamp_i32(result.unwrap_or(i64::from(current)))
}

/// The most replicas the scale-up policies allow now.
#[must_use]
pub fn scale_up_limit(state: &HpaState, now: f64, current: i32, rules: &ResolvedRules) -> i32 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => i64::min,
        SelectPolicy::Max => i64::max,
    };
    policy_limit(state, now, current, rules, pick, |start, p| match p.kind {
        ScalingPolicyKind::Pods => start + i64::from(p.value),
        // Rounded up so that a small count can still grow.
        ScalingPolicyKind::Percent => {
            (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
        }
    })
}

/// The fewest replicas the scale-down policies allow now.
#[must_use]
pub fn scale_down_limit(state: &HpaState, now: f64, current: i32, rules: &ResolvedRules) -> i32 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        // The smallest change down is the largest remaining count.
        SelectPolicy::Min => i64::max,
        SelectPolicy::Max => i64::min,
    };
    policy_limit(state, now, current, rules, pick, |start, p| match p.kind {
        ScalingPolicyKind::Pods => start - i64::from(p.value),
        // Truncated, as upstream converts the float back to int32.
        ScalingPolicyKind::Percent => (start as f64 * (1.0 - f64::from(p.value) / 100.0)) as i64,
    })
}

/// Applies the policies and min/max to a stabilised recommendation.
#[allow(clippy::too_many_arguments)]
#[must_use]
pub fn limit_with_behavior(
    state: &HpaState,
    now: f64,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
    up: &ResolvedRules,
    down: &ResolvedRules,
) -> (i32, Option<Limit>) {
    if desired > current {
        // Never below current: events still in the period can push the limit under it.
        let up_limit = scale_up_limit(state, now, current, up).max(current);
        let (allowed, why) = if max > up_limit {
            (up_limit, Limit::ScaleUpLimit)
        } else {
            (max, Limit::TooManyReplicas)
        };
        if desired > allowed {
            return (allowed, Some(why));
        }
    } else if desired < current {
        let down_limit = scale_down_limit(state, now, current, down).min(current);
        let (allowed, why) = if min < down_limit {
            (down_limit, Limit::ScaleDownLimit)
        } else {
            (min, Limit::TooFewReplicas)
        };
        if desired < allowed {
            return (allowed, Some(why));
        }
    }
    (desired, None)
}

/// Legacy limits (no `behavior`): min/max, and at most max(2 × current, 4) up.
#[must_use]
pub fn limit_legacy(current: i32, desired: i32, min: i32, max: i32) -> (i32, Option<Limit>) {
    let cap = (LEGACY_SCALE_UP_LIMIT_FACTOR * f64::from(current)).max(LEGACY_SCALE_UP_LIMIT_MINIMUM)
        as i32;
    let (upper, why) = if max > cap {
        (cap, Limit::ScaleUpLimit)
    } else {
        (max, Limit::TooManyReplicas)
    };
    if desired < min {
        (min, Some(Limit::TooFewReplicas))
    } else if desired > upper {
        (upper, Some(why))
    } else {
        (desired, None)
    }
}

/// Records a scale from `previous` to `new` replicas for later policy periods,
/// reusing an outdated slot (older than the direction's longest period).
pub fn record_scale_event(
    state: &mut HpaState,
    now: f64,
    previous: i32,
    new: i32,
    up: &ResolvedRules,
    down: &ResolvedRules,
) {
    let (events, change, longest) = if new > previous {
        (
            &mut state.scale_up_events,
            new - previous,
            up.longest_policy_period(),
        )
    } else {
        (
            &mut state.scale_down_events,
            previous - new,
            down.longest_policy_period(),
        )
    };
    let cutoff = now - f64::from(longest);
    let mut slot = None;
    for (i, e) in events.iter_mut().enumerate() {
        if e.at < cutoff {
            e.outdated = true;
        }
        if e.outdated {
            slot = Some(i);
        }
    }
    let event = ScaleEvent {
        change,
        at: now,
        outdated: false,
    };
    match slot.and_then(|i| events.get_mut(i)) {
        Some(s) => *s = event,
        None => events.push(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hpa::spec::{ControllerConfig, ScalingPolicy};
    use rstest::rstest;

    const NOW: f64 = 10_000.0;

    fn rules(select: SelectPolicy, policies: Vec<ScalingPolicy>) -> ResolvedRules {
        ResolvedRules {
            stabilization_window_seconds: 0,
            select_policy: select,
            policies,
            tolerance: 0.1,
        }
    }

    fn events(list: &[(i32, f64)]) -> Vec<ScaleEvent> {
        list.iter()
            .map(|&(change, ago)| ScaleEvent {
                change,
                at: NOW - ago,
                outdated: false,
            })
            .collect()
    }

    fn state(ups: &[(i32, f64)], downs: &[(i32, f64)]) -> HpaState {
        HpaState {
            recommendations: vec![],
            scale_up_events: events(ups),
            scale_down_events: events(downs),
        }
    }

    #[rstest]
    #[case::default_policies_small(1, &[], &[], None, 5)]
    #[case::default_policies_large(10, &[], &[], None, 20)]
    #[case::pods_policy_no_events(10, &[], &[], Some((SelectPolicy::Max, vec![ScalingPolicy::pods(4, 60)])), 14)]
    // 3 pods already added within the period: the period started at 7.
    #[case::pods_policy_with_recent_up(10, &[(3, 30.0)], &[], Some((SelectPolicy::Max, vec![ScalingPolicy::pods(4, 60)])), 11)]
    // An event exactly one period old has left the period (strictly after the cutoff).
    #[case::event_at_cutoff_is_out(10, &[(3, 60.0)], &[], Some((SelectPolicy::Max, vec![ScalingPolicy::pods(4, 60)])), 14)]
    // A scale-down in the period raises the period's starting count.
    #[case::pods_policy_with_recent_down(10, &[], &[(2, 30.0)], Some((SelectPolicy::Max, vec![ScalingPolicy::pods(4, 60)])), 16)]
    #[case::percent_rounds_up(3, &[], &[], Some((SelectPolicy::Max, vec![ScalingPolicy::percent(10, 60)])), 4)]
    #[case::max_of_policies(10, &[], &[], Some((SelectPolicy::Max, vec![ScalingPolicy::pods(4, 60), ScalingPolicy::percent(50, 60)])), 15)]
    #[case::min_of_policies(10, &[], &[], Some((SelectPolicy::Min, vec![ScalingPolicy::pods(4, 60), ScalingPolicy::percent(50, 60)])), 14)]
    #[case::disabled(10, &[], &[], Some((SelectPolicy::Disabled, vec![ScalingPolicy::pods(4, 60)])), 10)]
    fn scale_up_limit_cases(
        #[case] current: i32,
        #[case] ups: &[(i32, f64)],
        #[case] downs: &[(i32, f64)],
        #[case] custom: Option<(SelectPolicy, Vec<ScalingPolicy>)>,
        #[case] expected: i32,
    ) {
        let r = custom.map_or_else(
            || ResolvedRules::default_scale_up(&ControllerConfig::default()),
            |(s, p)| rules(s, p),
        );
        assert_eq!(
            scale_up_limit(&state(ups, downs), NOW, current, &r),
            expected
        );
    }

    #[rstest]
    #[case::default_allows_to_zero(10, &[], &[], None, 0)]
    #[case::pods(10, &[], &[], Some((SelectPolicy::Max, vec![ScalingPolicy::pods(3, 60)])), 7)]
    // Percent truncates: 3 × 0.5 = 1.5 → 1.
    #[case::percent_truncates(3, &[], &[], Some((SelectPolicy::Max, vec![ScalingPolicy::percent(50, 60)])), 1)]
    // 4 removed within the period: it started at 10, so 50 % of that is 5.
    #[case::percent_with_recent_down(6, &[], &[(4, 10.0)], Some((SelectPolicy::Max, vec![ScalingPolicy::percent(50, 60)])), 5)]
    #[case::max_change_is_lowest_count(10, &[], &[], Some((SelectPolicy::Max, vec![ScalingPolicy::pods(3, 60), ScalingPolicy::percent(50, 60)])), 5)]
    #[case::min_change_is_highest_count(10, &[], &[], Some((SelectPolicy::Min, vec![ScalingPolicy::pods(3, 60), ScalingPolicy::percent(50, 60)])), 7)]
    #[case::disabled(10, &[], &[], Some((SelectPolicy::Disabled, vec![ScalingPolicy::pods(3, 60)])), 10)]
    // Only events within each policy's own period count.
    #[case::periods_differ(10, &[], &[(2, 100.0)], Some((SelectPolicy::Max, vec![ScalingPolicy::pods(1, 60), ScalingPolicy::pods(1, 300)])), 9)]
    fn scale_down_limit_cases(
        #[case] current: i32,
        #[case] ups: &[(i32, f64)],
        #[case] downs: &[(i32, f64)],
        #[case] custom: Option<(SelectPolicy, Vec<ScalingPolicy>)>,
        #[case] expected: i32,
    ) {
        let r = custom.map_or_else(
            || ResolvedRules::default_scale_down(&ControllerConfig::default()),
            |(s, p)| rules(s, p),
        );
        assert_eq!(
            scale_down_limit(&state(ups, downs), NOW, current, &r),
            expected
        );
    }

    fn recs(list: &[(i32, f64)]) -> HpaState {
        HpaState {
            recommendations: list
                .iter()
                .map(|&(replicas, ago)| Recommendation {
                    replicas,
                    at: NOW - ago,
                })
                .collect(),
            ..HpaState::default()
        }
    }

    #[rstest]
    // Scale-down held at the highest recommendation of the last 300 s.
    #[case::down_held_by_window(&[(8, 100.0), (6, 50.0)], 10, 4, 0, 300, 8)]
    // Recommendations older than the window no longer hold it.
    #[case::down_window_expired(&[(8, 400.0), (6, 50.0)], 10, 4, 0, 300, 6)]
    // Never moves away from the current count in the opposite direction.
    #[case::down_stops_at_current(&[(8, 100.0)], 5, 4, 0, 300, 5)]
    // Scale-up held at the lowest recommendation of the up window.
    #[case::up_held_by_window(&[(12, 30.0)], 5, 15, 60, 300, 12)]
    #[case::up_without_window(&[(12, 30.0)], 5, 15, 0, 300, 15)]
    fn stabilization_with_behavior(
        #[case] history: &[(i32, f64)],
        #[case] current: i32,
        #[case] desired: i32,
        #[case] up_window: u32,
        #[case] down_window: u32,
        #[case] expected: i32,
    ) {
        let mut s = recs(history);
        let got = stabilize_with_behavior(&mut s, NOW, current, desired, up_window, down_window);
        assert_eq!(got, expected);
        assert!(
            s.recommendations
                .iter()
                .any(|r| r.replicas == desired && r.at == NOW),
            "the raw recommendation is recorded"
        );
    }

    #[test]
    fn stale_recommendation_slots_are_reused() {
        let mut s = recs(&[(3, 1000.0), (4, 10.0)]);
        stabilize_with_behavior(&mut s, NOW, 4, 4, 0, 300);
        assert_eq!(s.recommendations.len(), 2);
        stabilize_legacy(&mut s, NOW + 1.0, 4, 300);
        assert_eq!(s.recommendations.len(), 3);
        let mut s = recs(&[(3, 1000.0)]);
        assert_eq!(stabilize_legacy(&mut s, NOW, 2, 300), 2);
        assert_eq!(
            s.recommendations,
            vec![Recommendation {
                replicas: 2,
                at: NOW
            }]
        );
    }

    #[test]
    fn legacy_stabilization_takes_window_maximum() {
        let mut s = recs(&[(9, 299.0), (7, 10.0)]);
        assert_eq!(stabilize_legacy(&mut s, NOW, 3, 300), 9);
        let mut s = recs(&[(9, 301.0), (7, 10.0)]);
        assert_eq!(stabilize_legacy(&mut s, NOW, 3, 300), 7);
    }

    #[rstest]
    #[case::within(5, 7, 1, 20, 7, None)]
    #[case::below_min(5, 0, 1, 20, 1, Some(Limit::TooFewReplicas))]
    #[case::scale_up_cap(3, 20, 1, 100, 6, Some(Limit::ScaleUpLimit))]
    #[case::scale_up_minimum_four(1, 20, 1, 100, 4, Some(Limit::ScaleUpLimit))]
    #[case::max(3, 20, 1, 5, 5, Some(Limit::TooManyReplicas))]
    fn legacy_limits(
        #[case] current: i32,
        #[case] desired: i32,
        #[case] min: i32,
        #[case] max: i32,
        #[case] expected: i32,
        #[case] why: Option<Limit>,
    ) {
        assert_eq!(limit_legacy(current, desired, min, max), (expected, why));
    }

    #[rstest]
    #[case::up_policy(5, 50, 1, 100, 10, Some(Limit::ScaleUpLimit))]
    #[case::up_max(5, 50, 1, 8, 8, Some(Limit::TooManyReplicas))]
    #[case::down_min(5, 1, 3, 10, 3, Some(Limit::TooFewReplicas))]
    #[case::within(5, 7, 1, 10, 7, None)]
    fn behavior_limits_with_defaults(
        #[case] current: i32,
        #[case] desired: i32,
        #[case] min: i32,
        #[case] max: i32,
        #[case] expected: i32,
        #[case] why: Option<Limit>,
    ) {
        let c = ControllerConfig::default();
        let got = limit_with_behavior(
            &HpaState::default(),
            NOW,
            current,
            desired,
            min,
            max,
            &ResolvedRules::default_scale_up(&c),
            &ResolvedRules::default_scale_down(&c),
        );
        assert_eq!(got, (expected, why));
    }

    #[test]
    fn scale_down_limit_above_current_is_capped_at_current() {
        // A recent scale-up makes the period start low; the limit must not exceed current.
        let c = ControllerConfig::default();
        let s = state(&[(6, 5.0)], &[]);
        let down = rules(SelectPolicy::Max, vec![ScalingPolicy::pods(1, 60)]);
        let got = limit_with_behavior(
            &s,
            NOW,
            10,
            2,
            1,
            20,
            &ResolvedRules::default_scale_up(&c),
            &down,
        );
        // Period started at 4, so the policy allows 3; ScaleDownLimit is min(3, 10) = 3.
        assert_eq!(got, (3, Some(Limit::ScaleDownLimit)));
    }

    #[test]
    fn scale_events_reuse_outdated_slots() {
        let c = ControllerConfig::default();
        let up = ResolvedRules::default_scale_up(&c);
        let down = ResolvedRules::default_scale_down(&c);
        let mut s = HpaState::default();
        record_scale_event(&mut s, 0.0, 2, 6, &up, &down);
        record_scale_event(&mut s, 5.0, 6, 8, &up, &down);
        assert_eq!(s.scale_up_events.len(), 2);
        // At 100 s both are older than the 15 s period: one slot is reused.
        record_scale_event(&mut s, 100.0, 8, 9, &up, &down);
        assert_eq!(s.scale_up_events.len(), 2);
        assert!(
            s.scale_up_events
                .iter()
                .any(|e| e.change == 1 && e.at == 100.0 && !e.outdated)
        );
        record_scale_event(&mut s, 101.0, 9, 4, &up, &down);
        assert_eq!(
            s.scale_down_events,
            vec![ScaleEvent {
                change: 5,
                at: 101.0,
                outdated: false
            }]
        );
    }
}
