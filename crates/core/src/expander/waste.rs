//! `least-waste`: the option that leaves the least CPU and memory idle on the
//! nodes it adds wins.

use super::{
    Better, ExpansionContext, ExpansionOption, Filter, FilterOutcome, keep_best, template_of,
};
use crate::resources::{ResourceName, Resources};

/// Scores by the idle fraction of the new nodes' **capacity** (as CA does, not
/// allocatable): `(cap − req)/cap` for CPU plus the same for memory; lowest
/// wins, exact ties all survive.
#[derive(Clone, Copy, Debug, Default)]
pub struct LeastWasteFilter;

impl Filter for LeastWasteFilter {
    fn name(&self) -> &'static str {
        "least-waste"
    }

    fn filter(&self, options: &[&ExpansionOption], ctx: &ExpansionContext<'_>) -> FilterOutcome {
        keep_best(options, Better::Lower, |option| {
            let node = template_of(ctx, option)?;
            waste_score(node.capacity, option)
        })
    }
}

#[allow(clippy::cast_precision_loss)] // a score, not an amount
fn waste_score(capacity: Resources, option: &ExpansionOption) -> Result<f64, String> {
    let available = capacity
        .checked_mul(i64::from(option.node_count))
        .map_err(|e| e.to_string())?;
    let requested: Resources = option.pods.iter().map(|p| p.requests).sum();
    let mut score = 0.0;
    for r in ResourceName::ALL {
        let avail = available.get(r);
        if avail <= 0 {
            return Err(format!("template has no {r} capacity"));
        }
        score += (avail - requested.get(r)) as f64 / avail as f64;
    }
    Ok(score)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rstest::rstest;
    use std::collections::HashMap;

    #[rstest]
    // One pod of 1 core / 1 GiB on one 2-core / 4 GiB node: 0.5 + 0.75.
    #[case(2000, 4 * GIB, 1, &[(1000, GIB)], 1.25)]
    // Two nodes double the capacity: 0.75 + 0.875.
    #[case(2000, 4 * GIB, 2, &[(1000, GIB)], 1.625)]
    #[case(2000, 4 * GIB, 1, &[(2000, 4 * GIB)], 0.0)]
    #[case(2000, 4 * GIB, 1, &[], 2.0)]
    fn scores(
        #[case] cpu: i64,
        #[case] mem: i64,
        #[case] count: u32,
        #[case] pods: &[(i64, i64)],
        #[case] expected: f64,
    ) {
        let s = waste_score(Resources::new(cpu, mem), &option("g", count, pods)).unwrap();
        assert!((s - expected).abs() < 1e-12, "{s} != {expected}");
    }

    #[test]
    fn uses_capacity_not_allocatable_and_keeps_exact_ties() {
        let mut small = template(2000, 4 * GIB);
        small.allocatable = Resources::new(1000, GIB);
        let t: HashMap<_, _> = [
            ("small".to_owned(), small),
            ("small2".to_owned(), template(2000, 4 * GIB)),
            ("big".to_owned(), template(8000, 32 * GIB)),
            ("empty".to_owned(), template(0, 4 * GIB)),
        ]
        .into_iter()
        .collect();
        let opts = [
            option("big", 1, &[(1000, GIB)]),
            option("small", 1, &[(1000, GIB)]),
            option("small2", 1, &[(1000, GIB)]),
            option("empty", 1, &[(1000, GIB)]),
            option("unknown", 1, &[(1000, GIB)]),
        ];
        let refs: Vec<_> = opts.iter().collect();
        let out = LeastWasteFilter.filter(&refs, &ctx(&t));
        assert_eq!(ids(&refs, &out.survivors), vec!["small", "small2"]);
        assert!((out.scores["big"] - (0.875 + 31.0 / 32.0)).abs() < 1e-12);
        assert_eq!(out.dropped["empty"], "template has no cpu capacity");
        assert!(out.dropped.contains_key("unknown"));
    }
}
