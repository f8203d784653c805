//! The VPA status conditions the controller sets, as upstream's recommender
//! does (`RecommendationProvided`, `NoPodsMatched`, `ConfigUnsupported`), plus
//! Tailor's warning when an HPA scales the same target on CPU or memory.
//! Pure: the caller passes the outcome, the current conditions and the time.
//!
//! `LowConfidence` and `FetchingHistory` are in the VPA API, but upstream's
//! recommender never sets them (its checkpoint writer only reads
//! `FetchingHistory`, skipping VPAs where it is True). Tailor sets them with
//! the API's meaning: `LowConfidence` while a container's recommendation
//! rests on less than [`LOW_CONFIDENCE_BELOW`] days of history, and
//! `FetchingHistory` while the initial Prometheus history has not been loaded
//! (it is retried every loop). Like `NoPodsMatched`, each is present only
//! while True; absent reads as False (as upstream's checkpoint writer reads it).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tailor_api::vpa::{VerticalPodAutoscalerCondition, condition_type};

/// Condition type of the HPA-conflict warning (Tailor's own).
pub const HPA_CONFLICT: &str = "HorizontalAutoscalerConflict";
/// Reason of the HPA-conflict warning.
pub const HPA_CONFLICT_REASON: &str = "HpaScalesOnCpuOrMemory";
/// Message of `NoPodsMatched` (upstream's text).
pub const NO_PODS_MESSAGE: &str = "No pods match this VPA object";
/// `LowConfidence` is set while some container's confidence (days of
/// history, or samples / 1440 when fewer) is below this: its upper bound is
/// then more than twice the margin-adjusted percentile.
pub const LOW_CONFIDENCE_BELOW: f64 = 1.0;
/// Reason of `LowConfidence`.
pub const LOW_CONFIDENCE_REASON: &str = "InsufficientHistory";
/// Reason of `FetchingHistory`.
pub const FETCHING_HISTORY_REASON: &str = "PrometheusHistoryNotLoaded";

/// What the controller concluded about one VPA this loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The VPA cannot be acted on; the message says why (field or targetRef).
    Unsupported {
        /// Why, naming the field or object.
        message: String,
    },
    /// The VPA was evaluated.
    Evaluated {
        /// Some running pod matched its target.
        pods_matched: bool,
        /// A recommendation was computed for at least one container.
        has_recommendation: bool,
        /// Set when an HPA scales the same target on CPU or memory: the message.
        hpa_conflict: Option<String>,
        /// Containers recommended for from less than [`LOW_CONFIDENCE_BELOW`]
        /// days of history, by name.
        low_confidence: Vec<String>,
        /// Set while the initial history load has not completed: why.
        fetching_history: Option<String>,
    },
}

/// The message of `LowConfidence`: stable while the set of containers is
/// (a message that changed every loop would rewrite the status every loop).
#[must_use]
pub fn low_confidence_message(containers: &[String]) -> String {
    format!(
        "Less than {LOW_CONFIDENCE_BELOW} day of usage history for container(s) {}: their lower and upper bounds are widened until more is collected",
        containers.join(", ")
    )
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
) -> VerticalPodAutoscalerCondition {
    VerticalPodAutoscalerCondition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        last_transition_time: None,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        message: (!message.is_empty()).then(|| message.to_owned()),
        observed_generation: None,
    }
}

/// The conditions the VPA should carry, sorted by type. A condition whose
/// status is unchanged keeps its `lastTransitionTime`; a new or flipped one
/// gets `now` (as upstream's `Conditions.Set`).
#[must_use]
pub fn desired_conditions(
    outcome: &Outcome,
    current: &[VerticalPodAutoscalerCondition],
    now: &Time,
) -> Vec<VerticalPodAutoscalerCondition> {
    let mut out = match outcome {
        Outcome::Unsupported { message } => vec![
            condition(condition_type::CONFIG_UNSUPPORTED, true, "", message),
            condition(condition_type::RECOMMENDATION_PROVIDED, false, "", ""),
        ],
        Outcome::Evaluated {
            pods_matched,
            has_recommendation,
            hpa_conflict,
            low_confidence,
            fetching_history,
        } => {
            let mut v = Vec::new();
            if let Some(why) = fetching_history {
                v.push(condition(
                    condition_type::FETCHING_HISTORY,
                    true,
                    FETCHING_HISTORY_REASON,
                    why,
                ));
            }
            if *has_recommendation && !low_confidence.is_empty() {
                v.push(condition(
                    condition_type::LOW_CONFIDENCE,
                    true,
                    LOW_CONFIDENCE_REASON,
                    &low_confidence_message(low_confidence),
                ));
            }
            let (reason, message) = if *pods_matched {
                ("", "")
            } else {
                v.push(condition(
                    condition_type::NO_PODS_MATCHED,
                    true,
                    "NoPodsMatched",
                    NO_PODS_MESSAGE,
                ));
                ("NoPodsMatched", NO_PODS_MESSAGE)
            };
            v.push(if *has_recommendation {
                condition(condition_type::RECOMMENDATION_PROVIDED, true, "", "")
            } else {
                condition(
                    condition_type::RECOMMENDATION_PROVIDED,
                    false,
                    reason,
                    message,
                )
            });
            if let Some(message) = hpa_conflict {
                v.push(condition(HPA_CONFLICT, true, HPA_CONFLICT_REASON, message));
            }
            v
        }
    };
    for c in &mut out {
        let previous = current.iter().find(|p| p.type_ == c.type_);
        c.last_transition_time = match previous {
            Some(p) if p.status == c.status && p.last_transition_time.is_some() => {
                p.last_transition_time.clone()
            }
            _ => Some(now.clone()),
        };
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// True when `desired` differs from `current` in anything but order.
#[must_use]
pub fn conditions_changed(
    current: &[VerticalPodAutoscalerCondition],
    desired: &[VerticalPodAutoscalerCondition],
) -> bool {
    let mut c = current.to_vec();
    c.sort_by(|a, b| a.type_.cmp(&b.type_));
    c != desired
}

/// True when the HPA-conflict condition is newly set (not in `current`):
/// the moment to emit the warning Event, once rather than every loop.
#[must_use]
pub fn hpa_conflict_started(
    current: &[VerticalPodAutoscalerCondition],
    desired: &[VerticalPodAutoscalerCondition],
) -> bool {
    let on = |cs: &[VerticalPodAutoscalerCondition]| {
        cs.iter()
            .any(|c| c.type_ == HPA_CONFLICT && c.status == "True")
    };
    on(desired) && !on(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use rstest::rstest;

    fn t(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn types(cs: &[VerticalPodAutoscalerCondition]) -> Vec<(&str, &str)> {
        cs.iter()
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect()
    }

    #[rstest]
    #[case(true, true, None, &[], None, vec![("RecommendationProvided", "True")])]
    #[case(false, true, None, &[], None, vec![("NoPodsMatched", "True"), ("RecommendationProvided", "True")])]
    #[case(false, false, None, &[], None, vec![("NoPodsMatched", "True"), ("RecommendationProvided", "False")])]
    #[case(true, true, Some("hpa"), &[], None, vec![("HorizontalAutoscalerConflict", "True"), ("RecommendationProvided", "True")])]
    #[case(true, true, None, &["app"], None, vec![("LowConfidence", "True"), ("RecommendationProvided", "True")])]
    // Without a recommendation there is nothing to be unsure of.
    #[case(true, false, None, &["app"], None, vec![("RecommendationProvided", "False")])]
    #[case(true, true, None, &[], Some("down"), vec![("FetchingHistory", "True"), ("RecommendationProvided", "True")])]
    #[case(false, false, None, &["app"], Some("down"), vec![("FetchingHistory", "True"), ("NoPodsMatched", "True"), ("RecommendationProvided", "False")])]
    fn evaluated(
        #[case] pods_matched: bool,
        #[case] has_recommendation: bool,
        #[case] hpa: Option<&str>,
        #[case] low_confidence: &[&str],
        #[case] fetching: Option<&str>,
        #[case] want: Vec<(&str, &str)>,
    ) {
        let outcome = Outcome::Evaluated {
            pods_matched,
            has_recommendation,
            hpa_conflict: hpa.map(str::to_owned),
            low_confidence: low_confidence.iter().map(|c| (*c).to_owned()).collect(),
            fetching_history: fetching.map(str::to_owned),
        };
        let got = desired_conditions(&outcome, &[], &t(100));
        assert_eq!(types(&got), want);
        assert!(got.iter().all(|c| c.last_transition_time == Some(t(100))));
    }

    #[test]
    fn low_confidence_and_fetching_history_say_why() {
        let outcome = Outcome::Evaluated {
            pods_matched: true,
            has_recommendation: true,
            hpa_conflict: None,
            low_confidence: vec!["app".into(), "sidecar".into()],
            fetching_history: Some("Prometheus at http://prom:9090: connection refused".into()),
        };
        let got = desired_conditions(&outcome, &[], &t(1));
        let fetching = &got[0];
        assert_eq!(fetching.type_, "FetchingHistory");
        assert_eq!(
            fetching.reason.as_deref(),
            Some("PrometheusHistoryNotLoaded")
        );
        assert_eq!(
            fetching.message.as_deref(),
            Some("Prometheus at http://prom:9090: connection refused")
        );
        let low = &got[1];
        assert_eq!(low.type_, "LowConfidence");
        assert_eq!(low.reason.as_deref(), Some("InsufficientHistory"));
        assert_eq!(
            low.message.as_deref(),
            Some(
                "Less than 1 day of usage history for container(s) app, sidecar: their lower and upper bounds are widened until more is collected"
            )
        );
        // Once enough history is in, both go: a change to write.
        let settled = desired_conditions(&evaluated_ok(), &got, &t(2));
        assert_eq!(types(&settled), vec![("RecommendationProvided", "True")]);
        assert!(conditions_changed(&got, &settled));
        assert_eq!(settled[0].last_transition_time, Some(t(1)));
    }

    fn evaluated_ok() -> Outcome {
        Outcome::Evaluated {
            pods_matched: true,
            has_recommendation: true,
            hpa_conflict: None,
            low_confidence: Vec::new(),
            fetching_history: None,
        }
    }

    #[test]
    fn unsupported_names_the_problem() {
        let outcome = Outcome::Unsupported {
            message: "targetRef Foo \"x\": no".into(),
        };
        let got = desired_conditions(&outcome, &[], &t(1));
        assert_eq!(
            types(&got),
            vec![
                ("ConfigUnsupported", "True"),
                ("RecommendationProvided", "False")
            ]
        );
        assert_eq!(got[0].message.as_deref(), Some("targetRef Foo \"x\": no"));
    }

    #[test]
    fn unchanged_status_keeps_transition_time_and_is_not_a_change() {
        let outcome = evaluated_ok();
        let first = desired_conditions(&outcome, &[], &t(100));
        let second = desired_conditions(&outcome, &first, &t(200));
        assert_eq!(first, second);
        assert!(!conditions_changed(&first, &second));
        let flipped = desired_conditions(
            &Outcome::Evaluated {
                pods_matched: true,
                has_recommendation: false,
                hpa_conflict: None,
                low_confidence: Vec::new(),
                fetching_history: None,
            },
            &first,
            &t(300),
        );
        assert_eq!(flipped[0].last_transition_time, Some(t(300)));
        assert!(conditions_changed(&first, &flipped));
    }

    #[test]
    fn conflict_event_fires_once() {
        let on = Outcome::Evaluated {
            pods_matched: true,
            has_recommendation: true,
            hpa_conflict: Some("x".into()),
            low_confidence: Vec::new(),
            fetching_history: None,
        };
        let first = desired_conditions(&on, &[], &t(1));
        assert!(hpa_conflict_started(&[], &first));
        let second = desired_conditions(&on, &first, &t(2));
        assert!(!hpa_conflict_started(&first, &second));
    }
}
