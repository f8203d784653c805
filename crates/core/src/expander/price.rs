//! `price`: CA's price expander, with the exact upstream formula, over a
//! pluggable [`PricingModel`] (Tailor's catalog fills the gap CA leaves on AWS).

use super::{
    Better, ExpansionContext, ExpansionOption, Filter, FilterOutcome, NodeTemplate, keep_best,
    template_of,
};
use crate::catalog::{CapacityType, Rates};
use crate::resources::Resources;
use std::sync::Arc;

/// A price could not be determined.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no price for {subject}: {reason}")]
pub struct PricingError {
    /// What was being priced (a node group id, "pod").
    pub subject: String,
    /// Why it has no price.
    pub reason: String,
}

/// Hourly prices of one node of a group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodePrice {
    /// On-demand USD per hour.
    pub on_demand_usd_per_hour: f64,
    /// Spot USD per hour, when the model knows one.
    pub spot_usd_per_hour: Option<f64>,
}

impl NodePrice {
    /// What the node is billed at for `capacity` (on-demand when no spot price is known).
    #[must_use]
    pub fn billed(&self, capacity: CapacityType) -> f64 {
        match capacity {
            CapacityType::OnDemand => self.on_demand_usd_per_hour,
            CapacityType::Spot => self
                .spot_usd_per_hour
                .unwrap_or(self.on_demand_usd_per_hour),
        }
    }
}

/// Prices nodes and pods, per hour (CA's `cloudprovider.PricingModel`).
pub trait PricingModel: Send + Sync {
    /// Price of one node of `node_group_id`, whose template is given.
    fn node_price(
        &self,
        node_group_id: &str,
        template: &NodeTemplate,
    ) -> Result<NodePrice, PricingError>;
    /// Value of a pod's requests, per hour.
    fn pod_price(&self, requests: Resources) -> Result<f64, PricingError>;
}

/// Prices everything from per-vCPU and per-GiB hourly rates; a template's
/// explicit `usd_per_hour` wins for its node price.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RatePricing {
    /// The rates.
    pub rates: Rates,
    /// Fraction off on-demand for spot nodes (`None`: no spot price known).
    pub spot_discount: Option<f64>,
}

impl PricingModel for RatePricing {
    fn node_price(&self, _id: &str, template: &NodeTemplate) -> Result<NodePrice, PricingError> {
        let on_demand = template
            .price
            .usd_per_hour
            .unwrap_or_else(|| self.rates.price(template.capacity));
        Ok(NodePrice {
            on_demand_usd_per_hour: on_demand,
            spot_usd_per_hour: self.spot_discount.map(|d| on_demand * (1.0 - d)),
        })
    }

    fn pod_price(&self, requests: Resources) -> Result<f64, PricingError> {
        Ok(self.rates.price(requests))
    }
}

/// The stabilisation pod (500m CPU, 500 MiB) whose price damps the ratio.
pub const STABILIZATION_POD: Resources = Resources::new(500, 500 * 1024 * 1024);
/// Score multiplier for node groups that do not exist yet.
pub const NOT_EXIST_COEFFICIENT: f64 = 2.0;
/// Unfitness given to GPU node groups, so they are used only when needed.
pub const GPU_UNFITNESS: f64 = 1000.0;

/// CPU millicores of the preferred node for a cluster of `nodes` nodes: it
/// doubles every time the cluster grows about threefold.
#[must_use]
pub const fn preferred_node_cpu_millis(nodes: usize) -> i64 {
    match nodes {
        0..=2 => 1000,
        3..=6 => 2000,
        7..=20 => 4000,
        21..=60 => 8000,
        61..=200 => 16000,
        _ => 32000,
    }
}

/// How far a node's CPU is from the preferred node's, as a ratio ≥ 1.
#[must_use]
#[allow(clippy::cast_precision_loss)]
pub fn unfitness(preferred_cpu_millis: i64, node_cpu_millis: i64) -> f64 {
    let (p, n) = (preferred_cpu_millis as f64, node_cpu_millis as f64);
    (p / n).max(n / p)
}

/// Unfitness matters less the more nodes the option adds.
#[must_use]
pub fn suppressed_unfitness(unfitness: f64, node_count: u32) -> f64 {
    (unfitness - 1.0) * (1.0 - ((f64::from(node_count) - 1.0) / 15.0).tanh()) + 1.0
}

/// CA's price expander: score = suppressed unfitness × (node cost + S) /
/// (pod value + S), ×2 for groups that do not exist yet; lowest wins, and on
/// an exact tie the first such option, as upstream (so a filter after `price`
/// only runs when every option was dropped).
#[derive(Clone)]
pub struct PriceFilter {
    pricing: Arc<dyn PricingModel>,
}

impl std::fmt::Debug for PriceFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PriceFilter")
    }
}

impl PriceFilter {
    /// A price filter over `pricing`.
    #[must_use]
    pub fn new(pricing: Arc<dyn PricingModel>) -> PriceFilter {
        PriceFilter { pricing }
    }
}

impl Filter for PriceFilter {
    fn name(&self) -> &'static str {
        "price"
    }

    fn filter(&self, options: &[&ExpansionOption], ctx: &ExpansionContext<'_>) -> FilterOutcome {
        // Upstream carries on without stabilisation when this pod has no price.
        let stabilization = self.pricing.pod_price(STABILIZATION_POD).unwrap_or(0.0);
        let preferred = preferred_node_cpu_millis(ctx.cluster_node_count);
        let mut outcome = keep_best(options, Better::Lower, |option| {
            let node = template_of(ctx, option)?;
            let price = self
                .pricing
                .node_price(&option.node_group_id, node)
                .map_err(|e| e.to_string())?;
            let nodes_price = price.billed(node.price.capacity_type) * f64::from(option.node_count);
            let mut pods_price = 0.0;
            for pod in &option.pods {
                pods_price += self
                    .pricing
                    .pod_price(pod.requests)
                    .map_err(|e| format!("pod {}: {e}", pod.name))?;
            }
            if node.capacity.cpu_millis <= 0 {
                return Err("template has no cpu capacity".into());
            }
            let ratio = (nodes_price + stabilization) / (pods_price + stabilization);
            let suppressed = if node.gpus > 0 {
                GPU_UNFITNESS
            } else {
                suppressed_unfitness(
                    unfitness(preferred, node.capacity.cpu_millis),
                    option.node_count,
                )
            };
            let score = suppressed * ratio;
            Ok(if node.exists {
                score
            } else {
                score * NOT_EXIST_COEFFICIENT
            })
        });
        // Upstream keeps only the first option with the lowest score.
        outcome.survivors.truncate(1);
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::*;
    use rstest::rstest;
    use std::collections::HashMap;

    // GCE-like rates: $0.033174/vCPU-h and $0.004446/GiB-h.
    const RATES: Rates = Rates {
        usd_per_vcpu_hour: 0.033174,
        usd_per_gib_hour: 0.004446,
    };

    fn pricing() -> Arc<dyn PricingModel> {
        Arc::new(RatePricing {
            rates: RATES,
            spot_discount: Some(0.7),
        })
    }

    #[rstest]
    #[case(0, 1000)]
    #[case(2, 1000)]
    #[case(3, 2000)]
    #[case(6, 2000)]
    #[case(7, 4000)]
    #[case(20, 4000)]
    #[case(21, 8000)]
    #[case(60, 8000)]
    #[case(61, 16000)]
    #[case(200, 16000)]
    #[case(201, 32000)]
    fn preferred_node_grows_with_cluster(#[case] nodes: usize, #[case] cpu: i64) {
        assert_eq!(preferred_node_cpu_millis(nodes), cpu);
    }

    #[rstest]
    #[case(4000, 4000, 1, 1.0)]
    #[case(4000, 8000, 1, 2.0)]
    #[case(4000, 1000, 1, 4.0)]
    // At 16 nodes tanh(1) ≈ 0.7616 suppresses most of the unfitness.
    #[case(4000, 8000, 16, 1.0 + (1.0 - 1f64.tanh()))]
    fn unfitness_and_suppression(
        #[case] preferred: i64,
        #[case] node: i64,
        #[case] count: u32,
        #[case] expected: f64,
    ) {
        let s = suppressed_unfitness(unfitness(preferred, node), count);
        assert!((s - expected).abs() < 1e-12, "{s} != {expected}");
    }

    #[test]
    fn upstream_formula_by_hand() {
        let mut t: HashMap<String, NodeTemplate> = HashMap::new();
        t.insert("n4".into(), template(4000, 16 * GIB));
        t.insert("n8".into(), template(8000, 32 * GIB));
        let mut new8 = template(8000, 32 * GIB);
        new8.exists = false;
        t.insert("new8".into(), new8);
        let mut gpu = template(4000, 16 * GIB);
        gpu.gpus = 1;
        t.insert("gpu".into(), gpu);
        let mut spot = template(4000, 16 * GIB);
        spot.price.capacity_type = CapacityType::Spot;
        t.insert("spot".into(), spot);
        let pods = [(1000, 2 * GIB); 6];
        let opts = [
            option("n4", 2, &pods),
            option("n8", 1, &pods),
            option("new8", 1, &pods),
            option("gpu", 2, &pods),
        ];
        let refs: Vec<_> = opts.iter().collect();
        let c = ctx(&t); // 10 nodes: preferred 4 CPUs.
        let out = PriceFilter::new(pricing()).filter(&refs, &c);

        let s = RATES.price(STABILIZATION_POD);
        let pod_value = 6.0 * RATES.price(Resources::new(1000, 2 * GIB));
        let node4 = RATES.price(Resources::new(4000, 16 * GIB));
        let n4 = (2.0 * node4 + s) / (pod_value + s);
        let n8 = (1.0 + 1.0) * (2.0 * node4 + s) / (pod_value + s);
        assert!((out.scores["n4"] - n4).abs() < 1e-12);
        assert!((out.scores["n8"] - n8).abs() < 1e-12);
        assert!((out.scores["new8"] - 2.0 * n8).abs() < 1e-12);
        assert!((out.scores["gpu"] - 1000.0 * n4).abs() < 1e-9);
        assert_eq!(ids(&refs, &out.survivors), vec!["n4"]);

        // Spot nodes are billed at the spot price.
        let spot_opt = [option("spot", 2, &pods)];
        let refs: Vec<_> = spot_opt.iter().collect();
        let out = PriceFilter::new(pricing()).filter(&refs, &c);
        let expected = (2.0 * node4 * 0.3 + s) / (pod_value + s);
        assert!((out.scores["spot"] - expected).abs() < 1e-12);
    }

    #[test]
    fn exact_ties_keep_the_first_like_upstream() {
        let t: HashMap<String, NodeTemplate> = [
            ("zone-b".to_owned(), template(4000, 16 * GIB)),
            ("zone-a".to_owned(), template(4000, 16 * GIB)),
        ]
        .into_iter()
        .collect();
        let opts = [
            option("zone-b", 1, &[(500, GIB)]),
            option("zone-a", 1, &[(500, GIB)]),
        ];
        let refs: Vec<_> = opts.iter().collect();
        let out = PriceFilter::new(pricing()).filter(&refs, &ctx(&t));
        assert_eq!(out.scores["zone-a"], out.scores["zone-b"]);
        assert_eq!(ids(&refs, &out.survivors), vec!["zone-b"]);
    }

    #[test]
    fn stabilisation_keeps_podless_options_finite() {
        let t: HashMap<String, NodeTemplate> = [("a".to_owned(), template(4000, 16 * GIB))]
            .into_iter()
            .collect();
        let opts = [option("a", 1, &[])];
        let refs: Vec<_> = opts.iter().collect();
        let out = PriceFilter::new(pricing()).filter(&refs, &ctx(&t));
        assert!(out.scores["a"].is_finite());
        assert_eq!(out.survivors, vec![0]);
    }
}
