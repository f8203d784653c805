//! `priority`: user-ranked node groups, configured exactly like CA's
//! `cluster-autoscaler-priority-expander` ConfigMap.

use super::{ExpanderError, ExpansionContext, ExpansionOption, Filter, FilterOutcome};
use regex::Regex;
use std::collections::BTreeMap;

/// Name of the ConfigMap CA reads the priorities from.
pub const PRIORITY_CONFIGMAP_NAME: &str = "cluster-autoscaler-priority-expander";
/// Key in that ConfigMap holding the YAML.
pub const PRIORITY_CONFIGMAP_KEY: &str = "priorities";

/// Priority → regexes matched (unanchored) against node group ids.
///
/// Each option takes the highest priority whose list matches its id; the
/// options at the top priority survive; options matching nothing are dropped;
/// if no option matches anything, all pass unfiltered.
#[derive(Clone, Debug)]
pub struct PriorityFilter {
    /// Highest priority first.
    rules: Vec<(i64, Vec<Regex>)>,
}

impl PriorityFilter {
    /// Parses the `priorities` YAML: a map of integer priority to a list of
    /// regexes, e.g. `10: [".*spot.*"]`.
    pub fn from_yaml(text: &str) -> Result<PriorityFilter, ExpanderError> {
        if text.trim().is_empty() {
            return Err(ExpanderError::EmptyPriorities);
        }
        let raw: BTreeMap<i64, Vec<String>> =
            serde_yaml::from_str(text).map_err(|e| ExpanderError::PriorityYaml(e.to_string()))?;
        let mut rules = Vec::with_capacity(raw.len());
        for (priority, patterns) in raw.into_iter().rev() {
            let compiled = patterns
                .iter()
                .map(|p| {
                    Regex::new(p).map_err(|e| ExpanderError::PriorityRegex {
                        priority,
                        pattern: p.clone(),
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            rules.push((priority, compiled));
        }
        Ok(PriorityFilter { rules })
    }

    /// The highest priority whose regexes match `group_id`, if any.
    #[must_use]
    pub fn priority_of(&self, group_id: &str) -> Option<i64> {
        self.rules
            .iter()
            .find(|(_, res)| res.iter().any(|re| re.is_match(group_id)))
            .map(|(p, _)| *p)
    }
}

impl Filter for PriorityFilter {
    fn name(&self) -> &'static str {
        "priority"
    }

    #[allow(clippy::cast_precision_loss)] // priorities are small integers
    fn filter(&self, options: &[&ExpansionOption], _ctx: &ExpansionContext<'_>) -> FilterOutcome {
        let mut outcome = FilterOutcome::default();
        let mut best: Option<i64> = None;
        for (i, option) in options.iter().enumerate() {
            let id = &option.node_group_id;
            let Some(p) = self.priority_of(id) else {
                outcome
                    .dropped
                    .insert(id.clone(), "matches no priority rule".into());
                continue;
            };
            outcome.scores.insert(id.clone(), p as f64);
            if best.is_none_or(|b| p > b) {
                best = Some(p);
                outcome.survivors.clear();
            }
            if best == Some(p) {
                outcome.survivors.push(i);
            }
        }
        if outcome.survivors.is_empty() {
            // Nothing configured for any option: filter nothing, as upstream.
            outcome.survivors = (0..options.len()).collect();
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rstest::rstest;
    use std::collections::HashMap;

    const CONFIG: &str = r#"
10:
  - .*t2\.large.*
  - .*t3\.large.*
50:
  - .*m4\.4xlarge.*
-5:
  - fallback
"#;

    #[rstest]
    #[case(&["eks-t2.large-1", "eks-m4.4xlarge-a", "eks-t3.large"], &["eks-m4.4xlarge-a"])]
    #[case(&["eks-t2.large-1", "other", "eks-t3.large"], &["eks-t2.large-1", "eks-t3.large"])]
    #[case(&["x", "y"], &["x", "y"])]
    #[case(&["x", "fallback-pool"], &["fallback-pool"])]
    // Unanchored: the pattern matches anywhere in the id.
    #[case(&["a-fallback-b", "z"], &["a-fallback-b"])]
    fn highest_matching_priority_wins(#[case] groups: &[&str], #[case] expected: &[&str]) {
        let f = PriorityFilter::from_yaml(CONFIG).unwrap();
        let opts: Vec<_> = groups.iter().map(|g| option(g, 1, &[])).collect();
        let refs: Vec<_> = opts.iter().collect();
        let t = HashMap::new();
        let out = f.filter(&refs, &ctx(&t));
        assert_eq!(ids(&refs, &out.survivors), expected);
    }

    #[test]
    fn a_group_takes_its_highest_match() {
        let f = PriorityFilter::from_yaml("1: [\".*\"]\n20: [\"gpu\"]").unwrap();
        assert_eq!(f.priority_of("gpu-pool"), Some(20));
        assert_eq!(f.priority_of("cpu-pool"), Some(1));
    }

    #[rstest]
    #[case("", "priority expander configuration (key \"priorities\") is empty")]
    #[case(
        "  \n",
        "priority expander configuration (key \"priorities\") is empty"
    )]
    #[case("high: [a]", "priority expander configuration is not a map")]
    #[case("10: a", "priority expander configuration is not a map")]
    #[case(
        "10: [\"ok\", \"(unclosed\"]",
        "priority expander: cannot compile regex \"(unclosed\" for priority 10"
    )]
    fn bad_config_is_a_clear_error(#[case] text: &str, #[case] message: &str) {
        let err = PriorityFilter::from_yaml(text).unwrap_err().to_string();
        assert!(err.starts_with(message), "{err}");
    }
}
