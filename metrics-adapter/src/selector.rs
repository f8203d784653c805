//! `?labelSelector=` and `?metricLabelSelector=` parsing, with 400-class
//! typed errors.
//!
//! The syntax is Kubernetes' (via [`tailor_api::selector`]). A metric label
//! selector must also be expressible in PromQL: its keys must be Prometheus
//! label names, and `>`/`<` have no PromQL matcher.

use tailor_api::selector::{Operator, Requirement, Selector, SelectorError};

/// A request selector that cannot be used; always the client's fault (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestSelectorError {
    /// The selector string is malformed.
    #[error("invalid {parameter}: {source}")]
    Syntax {
        /// `labelSelector` or `metricLabelSelector`.
        parameter: &'static str,
        /// The parser's error.
        source: SelectorError,
    },
    /// A key that is not a Prometheus label name.
    #[error("invalid metricLabelSelector: {key:?} is not a valid Prometheus label name")]
    LabelName {
        /// The key.
        key: String,
    },
    /// An operator PromQL cannot express.
    #[error("invalid metricLabelSelector: {key:?}: the > and < operators are not supported")]
    Operator {
        /// The key.
        key: String,
    },
}

impl RequestSelectorError {
    /// The HTTP status for this error.
    #[must_use]
    pub fn status_code(&self) -> u16 {
        400
    }

    /// A stable label for metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            RequestSelectorError::Syntax { .. } => "selector_syntax",
            RequestSelectorError::LabelName { .. } => "selector_label_name",
            RequestSelectorError::Operator { .. } => "selector_operator",
        }
    }
}

/// Parses `?labelSelector=` (object labels); empty or absent selects all.
///
/// # Errors
/// Malformed selectors.
pub fn parse_label_selector(input: Option<&str>) -> Result<Selector, RequestSelectorError> {
    Selector::parse(input.unwrap_or("")).map_err(|source| RequestSelectorError::Syntax {
        parameter: "labelSelector",
        source,
    })
}

/// A selector on a metric's own labels, ready to become PromQL matchers:
/// requirements sorted by key (as Kubernetes sorts them), values sorted and
/// de-duplicated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricSelector {
    requirements: Vec<Requirement>,
}

impl MetricSelector {
    /// The selector with no requirements.
    #[must_use]
    pub fn everything() -> Self {
        MetricSelector::default()
    }

    /// Parses `?metricLabelSelector=`; empty or absent selects everything.
    ///
    /// # Errors
    /// Malformed selectors, non-Prometheus keys, `>`/`<`.
    pub fn parse(input: Option<&str>) -> Result<Self, RequestSelectorError> {
        let selector = Selector::parse(input.unwrap_or("")).map_err(|source| {
            RequestSelectorError::Syntax {
                parameter: "metricLabelSelector",
                source,
            }
        })?;
        match selector {
            // The string form never yields Nothing; treat it as no constraint.
            Selector::Nothing => Ok(MetricSelector::everything()),
            Selector::All(reqs) => MetricSelector::from_requirements(reqs),
        }
    }

    /// Builds from requirements (also ones not validated as Kubernetes
    /// labels, e.g. external metric selectors from other sources).
    ///
    /// # Errors
    /// Non-Prometheus keys, `>`/`<`.
    pub fn from_requirements(mut reqs: Vec<Requirement>) -> Result<Self, RequestSelectorError> {
        for r in &mut reqs {
            if !crate::promql::is_label_name(&r.key) {
                return Err(RequestSelectorError::LabelName { key: r.key.clone() });
            }
            if matches!(r.operator, Operator::GreaterThan | Operator::LessThan) {
                return Err(RequestSelectorError::Operator { key: r.key.clone() });
            }
            r.values.sort();
            r.values.dedup();
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(MetricSelector { requirements: reqs })
    }

    /// The requirements in PromQL order.
    #[must_use]
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case(None, 0)]
    #[case(Some(""), 0)]
    #[case(Some("app=web"), 1)]
    #[case(Some("app in (a,b),tier!=db,!legacy"), 3)]
    #[case(Some("app.kubernetes.io/name=web"), 1)]
    fn label_selectors_parse(#[case] input: Option<&str>, #[case] reqs: usize) {
        match parse_label_selector(input).unwrap() {
            Selector::All(r) => assert_eq!(r.len(), reqs),
            Selector::Nothing => panic!("string selectors never select nothing"),
        }
    }

    #[rstest]
    #[case("app in a")]
    #[case("app in (a")]
    #[case("=x")]
    #[case("a=\"b\"")]
    #[case("a=b\"} or vector(1)")]
    #[case("a=b\nc")]
    fn bad_label_selectors_are_400(#[case] input: &str) {
        let e = parse_label_selector(Some(input)).unwrap_err();
        assert_eq!(e.status_code(), 400);
        assert_eq!(e.label(), "selector_syntax");
    }

    #[rstest]
    #[case("app.kubernetes.io/name=x", "selector_label_name")]
    #[case("a-b=x", "selector_label_name")]
    #[case("count>3", "selector_operator")]
    #[case("count<3", "selector_operator")]
    #[case("a=(", "selector_syntax")]
    fn bad_metric_selectors(#[case] input: &str, #[case] label: &str) {
        let e = MetricSelector::parse(Some(input)).unwrap_err();
        assert_eq!(e.label(), label, "{e}");
        assert_eq!(e.status_code(), 400);
    }

    #[test]
    fn metric_selectors_are_sorted() {
        let s = MetricSelector::parse(Some("zone in (b,a,b),app=web")).unwrap();
        let keys: Vec<_> = s.requirements().iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["app", "zone"]);
        assert_eq!(s.requirements()[1].values, ["a", "b"]);
    }

    proptest! {
        #[test]
        fn selector_parsing_never_panics(input in "\\PC{0,60}") {
            let _ = parse_label_selector(Some(&input));
            let _ = MetricSelector::parse(Some(&input));
        }

        #[test]
        fn selector_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
            Just("a"), Just("="), Just("=="), Just("!="), Just("!"), Just(","), Just(" in "), Just(" notin "),
            Just("("), Just(")"), Just(">"), Just("<"), Just("1"), Just("\""), Just("\\"), Just("/"), Just("."),
        ], 0..25)) {
            let input: String = parts.concat();
            let _ = parse_label_selector(Some(&input));
            let _ = MetricSelector::parse(Some(&input));
        }
    }
}
