//! Stabilisation and rate limiting (upstream `normalizeDesiredReplicas*`), over a
//! plain state struct the caller keeps between syncs.
//!
//! Cost: every function is linear in the recorded history, which upstream keeps
//! bounded by reusing stale slots (one slot per sync within the longest window).

use serde::{Deserialize, Serialize};

use super::spec::{
    LEGACY_SCALE_UP_LIMIT_FACTOR, LEGACY_SCALE_UP_LIMIT_MINIMUM, ResolvedRules, ScalingPolicyKind,
    SelectPolicy,
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

/// The most replicas the scale-up policies allow now.
#[must_use]
pub fn scale_up_limit(state: &HpaState, now: f64, current: i32, rules: &ResolvedRules) -> i32 {
    let pick: fn(i64, i64) -> i64 = match rules.select_policy {
        SelectPolicy::Disabled => return current,
        SelectPolicy::Min => i64::min,
        SelectPolicy::Max => i64::max,
    };
    let mut result: Option<i64> = None;
    for p in &rules.policies {
        // The count at the start of the period, undoing changes made within it.
        let start = i64::from(current)
            - change_in_period(&state.scale_up_events, now, p.period_seconds)
            + change_in_period(&state.scale_down_events, now, p.period_seconds);
        let proposed = match p.kind {
            ScalingPolicyKind::Pods => start + i64::from(p.value),
            // Rounded up so that a small count can still grow.
            ScalingPolicyKind::Percent => {
                (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
            }
        };
        result = Some(result.map_or(proposed, |r| pick(r, proposed)));
    }
    clamp_i32(result.unwrap_or(i64::from(current)))
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
    let mut result: Option<i64> = None;
    for p in &rules.policies {
        let start = i64::from(current)
            - change_in_period(&state.scale_up_events, now, p.period_seconds)
            + change_in_period(&state.scale_down_events, now, p.period_seconds);
        let proposed = match p.kind {
            ScalingPolicyKind::Pods => start - i64::from(p.value),
            // Truncated, as upstream converts the float back to int32.
            ScalingPolicyKind::Percent => {
                (start as f64 * (1.0 - f64::from(p.value) / 100.0)) as i64
            }
        };
        result = Some(result.map_or(proposed, |r| pick(r, proposed)));
    }
    clamp_i32(result.unwrap_or(i64::from(current)))
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
