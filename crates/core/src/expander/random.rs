//! `random`: a uniform pick, seeded so a decision can be replayed.

use super::{ExpansionContext, ExpansionOption, Filter, FilterOutcome};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Picks one option uniformly with ChaCha8 seeded from the context's seed.
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomFilter;

impl Filter for RandomFilter {
    fn name(&self) -> &'static str {
        "random"
    }

    fn filter(&self, options: &[&ExpansionOption], ctx: &ExpansionContext<'_>) -> FilterOutcome {
        let mut outcome = FilterOutcome::default();
        if !options.is_empty() {
            let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
            outcome.survivors.push(rng.random_range(0..options.len()));
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn seeded_and_roughly_uniform() {
        let opts: Vec<_> = (0..4).map(|i| option(&format!("g{i}"), 1, &[])).collect();
        let refs: Vec<_> = opts.iter().collect();
        let t = HashMap::new();
        let mut counts = [0u32; 4];
        for seed in 0..4000 {
            let c = ExpansionContext { seed, ..ctx(&t) };
            let out = RandomFilter.filter(&refs, &c);
            assert_eq!(out.survivors.len(), 1);
            assert_eq!(out.survivors, RandomFilter.filter(&refs, &c).survivors);
            counts[out.survivors[0]] += 1;
        }
        // Each of 4 options expects 1000 picks; 800..1200 is > 12 sigma wide.
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        assert!(RandomFilter.filter(&[], &ctx(&t)).survivors.is_empty());
    }
}
