//! `least-nodes`: the option that adds the fewest nodes wins.

use super::{Better, ExpansionContext, ExpansionOption, Filter, FilterOutcome, keep_best};

/// Scores by node count; lowest wins, ties survive. Options adding zero nodes
/// are dropped, as upstream does.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeastNodesFilter;

impl Filter for LeastNodesFilter {
    fn name(&self) -> &'static str {
        "least-nodes"
    }

    fn filter(&self, options: &[&ExpansionOption], _ctx: &ExpansionContext<'_>) -> FilterOutcome {
        keep_best(options, Better::Lower, |o| {
            if o.node_count == 0 {
                Err("adds no nodes".into())
            } else {
                Ok(f64::from(o.node_count))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rstest::rstest;
    use std::collections::HashMap;

    #[rstest]
    #[case(&[3, 1, 2], &["g1"])]
    #[case(&[2, 5, 2], &["g0", "g2"])]
    #[case(&[0, 4], &["g1"])]
    #[case(&[0], &[])]
    fn fewest_nodes_win(#[case] counts: &[u32], #[case] expected: &[&str]) {
        let opts: Vec<_> = counts
            .iter()
            .enumerate()
            .map(|(i, &n)| option(&format!("g{i}"), n, &[(100, 100)]))
            .collect();
        let refs: Vec<_> = opts.iter().collect();
        let t = HashMap::new();
        let out = LeastNodesFilter.filter(&refs, &ctx(&t));
        assert_eq!(ids(&refs, &out.survivors), expected);
    }
}
