//! `most-pods`: the option that schedules the most pending pods wins.

use super::{Better, ExpansionContext, ExpansionOption, Filter, FilterOutcome, keep_best};

/// Scores by the number of pods the option schedules; highest wins, ties survive.
#[derive(Clone, Copy, Debug, Default)]
pub struct MostPodsFilter;

impl Filter for MostPodsFilter {
    fn name(&self) -> &'static str {
        "most-pods"
    }

    #[allow(clippy::cast_precision_loss)] // pod counts are far below 2^52
    fn filter(&self, options: &[&ExpansionOption], _ctx: &ExpansionContext<'_>) -> FilterOutcome {
        keep_best(options, Better::Higher, |o| Ok(o.pods.len() as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rstest::rstest;
    use std::collections::HashMap;

    #[rstest]
    #[case(&[1, 3, 2], &["g1"])]
    #[case(&[3, 1, 3], &["g0", "g2"])]
    #[case(&[0, 0], &["g0", "g1"])]
    #[case(&[], &[])]
    fn most_pods_win(#[case] pods: &[usize], #[case] expected: &[&str]) {
        let opts: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, &n)| option(&format!("g{i}"), 1, &vec![(100, 100); n]))
            .collect();
        let refs: Vec<_> = opts.iter().collect();
        let t = HashMap::new();
        let out = MostPodsFilter.filter(&refs, &ctx(&t));
        assert_eq!(ids(&refs, &out.survivors), expected);
    }
}
