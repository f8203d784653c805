//! The VPA status conditions the controller sets, as upstream's recommender
//! does (`RecommendationProvided`, `NoPodsMatched`, `ConfigUnsupported`), plus
//! Tailor's warning when an HPA scales the same target on CPU or memory.
//! Pure: the caller passes the outcome, the current conditions and the time.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tailor_api::vpa::{VerticalPodAutoscalerCondition, condition_type};

/// Condition type of the HPA-conflict warning (Tailor's own).
pub const HPA_CONFLICT: &str = "HorizontalAutoscalerConflict";
/// Reason of the HPA-conflict warning.
pub const HPA_CONFLICT_REASON: &str = "HpaScalesOnCpuOrMemory";
/// Message of `NoPodsMatched` (upstream's text).
pub const NO_PODS_MESSAGE: &str = "No pods match this VPA object";

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
    },
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
        } => {
            let mut v = Vec::new();
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
    #[case(true, true, None, vec![("RecommendationProvided", "True")])]
    #[case(false, true, None, vec![("NoPodsMatched", "True"), ("RecommendationProvided", "True")])]
    #[case(false, false, None, vec![("NoPodsMatched", "True"), ("RecommendationProvided", "False")])]
    #[case(true, true, Some("hpa"), vec![("HorizontalAutoscalerConflict", "True"), ("RecommendationProvided", "True")])]
    fn evaluated(
        #[case] pods_matched: bool,
        #[case] has_recommendation: bool,
        #[case] hpa: Option<&str>,
        #[case] want: Vec<(&str, &str)>,
    ) {
        let outcome = Outcome::Evaluated {
            pods_matched,
            has_recommendation,
            hpa_conflict: hpa.map(str::to_owned),
        };
        let got = desired_conditions(&outcome, &[], &t(100));
        assert_eq!(types(&got), want);
        assert!(got.iter().all(|c| c.last_transition_time == Some(t(100))));
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
        let outcome = Outcome::Evaluated {
            pods_matched: true,
            has_recommendation: true,
            hpa_conflict: None,
        };
        let first = desired_conditions(&outcome, &[], &t(100));
        let second = desired_conditions(&outcome, &first, &t(200));
        assert_eq!(first, second);
        assert!(!conditions_changed(&first, &second));
        let flipped = desired_conditions(
            &Outcome::Evaluated {
                pods_matched: true,
                has_recommendation: false,
                hpa_conflict: None,
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
        };
        let first = desired_conditions(&on, &[], &t(1));
        assert!(hpa_conflict_started(&[], &first));
        let second = desired_conditions(&on, &first, &t(2));
        assert!(!hpa_conflict_started(&first, &second));
    }
}
