//! `cost` (Tailor only): dollars paid for the new nodes per dollar of
//! resources the pods actually request on them.
//!
//! CA's `price` expander mixes money with a preferred node size; `least-waste`
//! counts idle fractions but not what they cost. `cost` asks one question: for
//! each dollar this option adds to the hourly bill, how much requested CPU and
//! memory (valued at the pricing model's per-vCPU and per-GiB rates) lands on
//! it? A cheap group that packs badly needs more nodes and loses to a dearer
//! group that packs well.
//!
//! # Worked example
//!
//! Four pods of 1.2 vCPU / 2 GiB. Group `small` (2 vCPU, 8 GiB, $0.096/h) fits
//! one pod per node, so it needs 4 nodes: $0.384/h. Group `large` (4 vCPU,
//! 8 GiB, $0.17/h) fits three, so it needs 2 nodes: $0.34/h. At $0.04/vCPU-h
//! and $0.005/GiB-h the pods are worth 4 × (1.2·0.04 + 2·0.005) = $0.232/h, so
//! `small` scores 0.384/0.232 ≈ 1.655 and `large` 0.34/0.232 ≈ 1.466: `large`
//! wins although each of its nodes costs 77% more.
//!
//! ```
//! use std::{collections::HashMap, sync::Arc};
//! use tailor_core::catalog::Rates;
//! use tailor_core::expander::{
//!     CostConfig, CostFilter, ExpansionContext, ExpansionOption, Filter, NodeTemplate,
//!     RatePricing,
//! };
//! use tailor_core::resources::Resources;
//! use tailor_core::scheduling::{PodRequest, pack_first_fit_decreasing};
//!
//! const GIB: i64 = 1 << 30;
//! let pods: Vec<_> = (0..4)
//!     .map(|i| PodRequest::new(format!("web-{i}"), Resources::new(1200, 2 * GIB)))
//!     .collect();
//! let group = |cpu, usd| {
//!     let mut t = NodeTemplate {
//!         capacity: Resources::new(cpu, 8 * GIB),
//!         allocatable: Resources::new(cpu, 8 * GIB),
//!         max_pods: 110,
//!         exists: true,
//!         ..NodeTemplate::default()
//!     };
//!     t.price.usd_per_hour = Some(usd);
//!     t
//! };
//! let templates: HashMap<String, NodeTemplate> =
//!     [("small".into(), group(2000, 0.096)), ("large".into(), group(4000, 0.17))].into();
//! // Pack the pending pods onto each group to build the options.
//! let options: Vec<ExpansionOption> = ["small", "large"]
//!     .iter()
//!     .map(|id| {
//!         let packing = pack_first_fit_decreasing(&pods, &templates[*id].shape(), None);
//!         ExpansionOption {
//!             node_group_id: (*id).into(),
//!             node_count: packing.node_count() as u32,
//!             pods: packing.placed().map(|i| pods[i].clone()).collect(),
//!             debug: String::new(),
//!         }
//!     })
//!     .collect();
//! assert_eq!((options[0].node_count, options[1].node_count), (4, 2));
//!
//! let pricing = RatePricing {
//!     rates: Rates { usd_per_vcpu_hour: 0.04, usd_per_gib_hour: 0.005 },
//!     spot_discount: None,
//! };
//! let filter = CostFilter::new(Arc::new(pricing), CostConfig::default());
//! let ctx = ExpansionContext { templates: &templates, cluster_node_count: 10, seed: 0 };
//! let refs: Vec<&ExpansionOption> = options.iter().collect();
//! let outcome = filter.filter(&refs, &ctx);
//! assert!((outcome.scores["small"] - 0.384 / 0.232).abs() < 1e-9);
//! assert!((outcome.scores["large"] - 0.34 / 0.232).abs() < 1e-9);
//! assert_eq!(outcome.survivors, vec![1]); // `large`
//! ```

use super::{
    Better, ExpansionContext, ExpansionOption, Filter, FilterOutcome, NodePrice, PricingModel,
    keep_best, template_of,
};
use crate::catalog::CapacityType;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Settings of the `cost` expander.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CostConfig {
    /// Fraction off on-demand for spot nodes whose spot price the pricing
    /// model does not know (`None`: bill them at on-demand, the safe side).
    pub spot_discount: Option<f64>,
    /// Expected cost of interruptions, as a fraction of the on-demand price
    /// added to every spot node-hour (rescheduling, lost work, cold caches).
    pub interruption_penalty: f64,
}

impl CostConfig {
    /// Effective hourly price of one node: the billed price, plus the
    /// interruption penalty for spot.
    #[must_use]
    pub fn effective_node_price(&self, price: NodePrice, capacity: CapacityType) -> f64 {
        match capacity {
            CapacityType::OnDemand => price.on_demand_usd_per_hour,
            CapacityType::Spot => {
                let od = price.on_demand_usd_per_hour;
                let spot = price
                    .spot_usd_per_hour
                    .or(self.spot_discount.map(|d| od * (1.0 - d)))
                    .unwrap_or(od);
                spot + self.interruption_penalty * od
            }
        }
    }
}

/// Scores by (nodes × effective node price) / (value of the pods' requests);
/// lowest wins, ties survive.
#[derive(Clone)]
pub struct CostFilter {
    pricing: Arc<dyn PricingModel>,
    config: CostConfig,
}

impl std::fmt::Debug for CostFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CostFilter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl CostFilter {
    /// A cost filter over `pricing`.
    #[must_use]
    pub fn new(pricing: Arc<dyn PricingModel>, config: CostConfig) -> CostFilter {
        CostFilter { pricing, config }
    }
}

impl Filter for CostFilter {
    fn name(&self) -> &'static str {
        "cost"
    }

    fn filter(&self, options: &[&ExpansionOption], ctx: &ExpansionContext<'_>) -> FilterOutcome {
        keep_best(options, Better::Lower, |option| {
            let node = template_of(ctx, option)?;
            let price = self
                .pricing
                .node_price(&option.node_group_id, node)
                .map_err(|e| e.to_string())?;
            let spend = self
                .config
                .effective_node_price(price, node.price.capacity_type)
                * f64::from(option.node_count);
            let mut value = 0.0;
            for pod in &option.pods {
                value += self
                    .pricing
                    .pod_price(pod.requests)
                    .map_err(|e| format!("pod {}: {e}", pod.name))?;
            }
            if value <= 0.0 {
                return Err("its pods request no CPU or memory".into());
            }
            Ok(spend / value)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::{NodeTemplate, RatePricing};
    use super::*;
    use crate::catalog::Rates;
    use rstest::rstest;
    use std::collections::HashMap;

    const RATES: Rates = Rates {
        usd_per_vcpu_hour: 0.04,
        usd_per_gib_hour: 0.005,
    };

    #[rstest]
    #[case(CapacityType::OnDemand, Some(0.03), None, 0.5, 0.1)]
    #[case(CapacityType::Spot, Some(0.03), None, 0.0, 0.03)]
    #[case(CapacityType::Spot, Some(0.03), Some(0.9), 0.0, 0.03)]
    #[case(CapacityType::Spot, None, Some(0.6), 0.0, 0.04)]
    #[case(CapacityType::Spot, None, None, 0.0, 0.1)]
    #[case(CapacityType::Spot, Some(0.03), None, 0.2, 0.05)]
    fn effective_price(
        #[case] capacity: CapacityType,
        #[case] spot: Option<f64>,
        #[case] discount: Option<f64>,
        #[case] penalty: f64,
        #[case] expected: f64,
    ) {
        let config = CostConfig {
            spot_discount: discount,
            interruption_penalty: penalty,
        };
        let price = NodePrice {
            on_demand_usd_per_hour: 0.1,
            spot_usd_per_hour: spot,
        };
        let got = config.effective_node_price(price, capacity);
        assert!((got - expected).abs() < 1e-12, "{got} != {expected}");
    }

    fn priced(cpu: i64, usd: f64, capacity: CapacityType) -> NodeTemplate {
        let mut t = template(cpu, 8 * GIB);
        t.price.usd_per_hour = Some(usd);
        t.price.capacity_type = capacity;
        t
    }

    #[rstest]
    // Without a penalty, spot at 40% of on-demand wins.
    #[case(0.0, "spot")]
    // A penalty of 70% of on-demand per hour makes spot (0.4 + 0.7) dearer.
    #[case(0.7, "on-demand")]
    fn interruption_penalty_can_flip_spot(#[case] penalty: f64, #[case] winner: &str) {
        let t: HashMap<String, NodeTemplate> = [
            ("spot".to_owned(), priced(4000, 0.17, CapacityType::Spot)),
            (
                "on-demand".to_owned(),
                priced(4000, 0.17, CapacityType::OnDemand),
            ),
        ]
        .into_iter()
        .collect();
        let pods = [(1200, 2 * GIB); 3];
        let opts = [option("spot", 1, &pods), option("on-demand", 1, &pods)];
        let refs: Vec<_> = opts.iter().collect();
        let pricing = RatePricing {
            rates: RATES,
            spot_discount: Some(0.6),
        };
        let config = CostConfig {
            spot_discount: None,
            interruption_penalty: penalty,
        };
        let out = CostFilter::new(Arc::new(pricing), config).filter(&refs, &ctx(&t));
        assert_eq!(ids(&refs, &out.survivors), vec![winner]);
    }

    #[test]
    fn podless_options_are_dropped() {
        let t: HashMap<String, NodeTemplate> =
            [("a".to_owned(), priced(4000, 0.17, CapacityType::OnDemand))]
                .into_iter()
                .collect();
        let opts = [option("a", 1, &[(0, 0)])];
        let refs: Vec<_> = opts.iter().collect();
        let pricing = RatePricing {
            rates: RATES,
            spot_discount: None,
        };
        let out = CostFilter::new(Arc::new(pricing), CostConfig::default()).filter(&refs, &ctx(&t));
        assert!(out.survivors.is_empty());
        assert_eq!(out.dropped["a"], "its pods request no CPU or memory");
    }
}
