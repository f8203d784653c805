//! Node-group expanders: given the scale-up options Cluster Autoscaler (or
//! Tailor's own AWS mode) computed, pick the node group to grow.
//!
//! Compatible with CA's `--expander` chains (`priority,price,least-waste`):
//! filters run in order, the chain stops as soon as one option survives, and a
//! seeded random pick decides among whatever is left. Each step records its
//! scores so a decision can be explained.

pub mod asg;
pub mod cost;
pub mod leastnodes;
pub mod mostpods;
pub mod price;
pub mod priority;
pub mod random;
pub mod scaleup;
pub mod waste;

pub use cost::{CostConfig, CostFilter};
pub use leastnodes::LeastNodesFilter;
pub use mostpods::MostPodsFilter;
pub use price::{NodePrice, PriceFilter, PricingError, PricingModel, RatePricing};
pub use priority::PriorityFilter;
pub use random::RandomFilter;
pub use waste::LeastWasteFilter;

use crate::catalog::CapacityType;
use crate::resources::Resources;
use crate::scheduling::{NodeShape, PodRequest, Taint};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// What a node group's price depends on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceInputs {
    /// Instance types, in launch-template / mixed-instances override order.
    pub instance_types: Vec<String>,
    /// On-demand or spot.
    pub capacity_type: CapacityType,
    /// An explicit hourly price in USD, which wins over any catalog lookup.
    pub usd_per_hour: Option<f64>,
}

/// A node as it would look if the group were grown by one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeTemplate {
    /// `status.capacity` (CPU, memory).
    pub capacity: Resources,
    /// `status.allocatable` (CPU, memory).
    pub allocatable: Resources,
    /// Maximum pods per node (`status.allocatable.pods`); 0 admits none.
    pub max_pods: u32,
    /// GPUs per node.
    pub gpus: u32,
    /// Node labels.
    pub labels: BTreeMap<String, String>,
    /// Node taints.
    pub taints: Vec<Taint>,
    /// Inputs for pricing.
    pub price: PriceInputs,
    /// False for a group that would have to be created first (autoprovisioning).
    pub exists: bool,
}

impl NodeTemplate {
    /// The scheduling view of one node of this template.
    #[must_use]
    pub fn shape(&self) -> NodeShape {
        NodeShape {
            allocatable: self.allocatable,
            max_pods: self.max_pods,
            labels: self.labels.clone(),
            taints: self.taints.clone(),
        }
    }
}

/// One way to scale up: grow `node_group_id` by `node_count` nodes, which lets
/// `pods` schedule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpansionOption {
    /// Node group id.
    pub node_group_id: String,
    /// Nodes to add.
    pub node_count: u32,
    /// Pending pods that would schedule on the new nodes.
    pub pods: Vec<PodRequest>,
    /// Free-form debug text carried through (CA's `debug`).
    pub debug: String,
}

/// Everything a filter may consult besides the options themselves.
#[derive(Clone, Copy, Debug)]
pub struct ExpansionContext<'a> {
    /// Node group id → template node.
    pub templates: &'a HashMap<String, NodeTemplate>,
    /// Nodes currently in the cluster (sizes the price expander's preferred node).
    pub cluster_node_count: usize,
    /// Seed for the random pick, so a decision can be replayed.
    pub seed: u64,
}

/// What one filter did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterOutcome {
    /// Group id → score, for every option the filter could score.
    pub scores: BTreeMap<String, f64>,
    /// Indices (into the filter's input) of the options that survive.
    pub survivors: Vec<usize>,
    /// Group id → why the option could not be scored.
    pub dropped: BTreeMap<String, String>,
}

/// A step of a chain: options in, survivors out, with scores for explanation.
pub trait Filter: Send + Sync {
    /// The expander name (`least-waste`, `price`, …).
    fn name(&self) -> &'static str;
    /// Scores `options` and returns the survivors.
    fn filter(&self, options: &[&ExpansionOption], ctx: &ExpansionContext<'_>) -> FilterOutcome;
}

/// Which way a score is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Better {
    Lower,
    Higher,
}

/// Scores each option with `score` (an `Err` drops it with a reason) and keeps
/// the best, exact ties included. Shared by every "best score wins" filter.
pub(crate) fn keep_best(
    options: &[&ExpansionOption],
    better: Better,
    mut score: impl FnMut(&ExpansionOption) -> Result<f64, String>,
) -> FilterOutcome {
    let mut outcome = FilterOutcome::default();
    let mut best: Option<f64> = None;
    for (i, option) in options.iter().enumerate() {
        let s = match score(option) {
            Ok(s) if s.is_nan() => {
                outcome
                    .dropped
                    .insert(option.node_group_id.clone(), "score is not a number".into());
                continue;
            }
            Ok(s) => s,
            Err(reason) => {
                outcome.dropped.insert(option.node_group_id.clone(), reason);
                continue;
            }
        };
        outcome.scores.insert(option.node_group_id.clone(), s);
        let improves = match (best, better) {
            (None, _) => true,
            (Some(b), Better::Lower) => s < b,
            (Some(b), Better::Higher) => s > b,
        };
        if improves {
            best = Some(s);
            outcome.survivors.clear();
            outcome.survivors.push(i);
        } else if best == Some(s) {
            outcome.survivors.push(i);
        }
    }
    outcome
}

/// Looks up an option's template, or says which one is missing.
pub(crate) fn template_of<'a>(
    ctx: &ExpansionContext<'a>,
    option: &ExpansionOption,
) -> Result<&'a NodeTemplate, String> {
    ctx.templates
        .get(&option.node_group_id)
        .ok_or_else(|| format!("no template for node group {}", option.node_group_id))
}

/// The expanders a chain may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StrategyName {
    /// `random`.
    Random,
    /// `most-pods`.
    MostPods,
    /// `least-waste`.
    LeastWaste,
    /// `least-nodes`.
    LeastNodes,
    /// `price`.
    Price,
    /// `priority`.
    Priority,
    /// `cost` (Tailor only).
    Cost,
}

impl StrategyName {
    /// Every name, in documentation order.
    pub const ALL: [StrategyName; 7] = [
        StrategyName::Random,
        StrategyName::MostPods,
        StrategyName::LeastWaste,
        StrategyName::LeastNodes,
        StrategyName::Price,
        StrategyName::Priority,
        StrategyName::Cost,
    ];

    /// The name as written in `--expander`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            StrategyName::Random => "random",
            StrategyName::MostPods => "most-pods",
            StrategyName::LeastWaste => "least-waste",
            StrategyName::LeastNodes => "least-nodes",
            StrategyName::Price => "price",
            StrategyName::Priority => "priority",
            StrategyName::Cost => "cost",
        }
    }
}

impl fmt::Display for StrategyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StrategyName {
    type Err = ExpanderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StrategyName::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| ExpanderError::UnknownStrategy {
                name: s.to_owned(),
                position: 1,
            })
    }
}

/// Invalid expander configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExpanderError {
    /// The chain named no expander.
    #[error("expander chain is empty")]
    EmptyChain,
    /// An entry names no known expander.
    #[error(
        "unknown expander {name:?} at entry {position} (known: random, most-pods, least-waste, least-nodes, price, priority, cost)"
    )]
    UnknownStrategy {
        /// The entry as written.
        name: String,
        /// 1-based position in the chain.
        position: usize,
    },
    /// An expander is listed twice.
    #[error("expander {name:?} is listed more than once (entries {first} and {second})")]
    Duplicate {
        /// The repeated name.
        name: String,
        /// 1-based position of its first use.
        first: usize,
        /// 1-based position of the repeat.
        second: usize,
    },
    /// `random` picks one option, so nothing may follow it.
    #[error("expander \"random\" must be last, but is entry {position} of {len}")]
    RandomNotLast {
        /// 1-based position of `random`.
        position: usize,
        /// Chain length.
        len: usize,
    },
    /// `price` or `cost` was named without a pricing model.
    #[error("expander {name:?} needs a pricing model (a price catalog), and none is configured")]
    MissingPricing {
        /// The expander that needs it.
        name: String,
    },
    /// `priority` was named without a priorities configuration.
    #[error("expander \"priority\" needs a priorities configuration, and none is configured")]
    MissingPriorities,
    /// The priorities text is empty.
    #[error("priority expander configuration (key \"priorities\") is empty")]
    EmptyPriorities,
    /// The priorities text is not a YAML map of integer → list of strings.
    #[error("priority expander configuration is not a map of priority to list of regexes: {0}")]
    PriorityYaml(String),
    /// A regex in the priorities does not compile.
    #[error(
        "priority expander: cannot compile regex {pattern:?} for priority {priority}: {reason}"
    )]
    PriorityRegex {
        /// The priority it was listed under.
        priority: i64,
        /// The pattern.
        pattern: String,
        /// The regex engine's message.
        reason: String,
    },
}

/// Parses an `--expander` value such as `priority,price,least-waste`, with
/// CA's rules: no empty or unknown entries, no duplicates, `random` only last.
pub fn parse_chain(spec: &str) -> Result<Vec<StrategyName>, ExpanderError> {
    if spec.trim().is_empty() {
        return Err(ExpanderError::EmptyChain);
    }
    let entries: Vec<&str> = spec.split(',').map(str::trim).collect();
    let mut names: Vec<StrategyName> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let name = entry
            .parse::<StrategyName>()
            .map_err(|_| ExpanderError::UnknownStrategy {
                name: (*entry).to_owned(),
                position: i + 1,
            })?;
        if let Some(first) = names.iter().position(|n| *n == name) {
            return Err(ExpanderError::Duplicate {
                name: name.as_str().to_owned(),
                first: first + 1,
                second: i + 1,
            });
        }
        if name == StrategyName::Random && i + 1 != entries.len() {
            return Err(ExpanderError::RandomNotLast {
                position: i + 1,
                len: entries.len(),
            });
        }
        names.push(name);
    }
    Ok(names)
}

/// What a chain's filters need beyond the options.
#[derive(Clone, Default)]
pub struct ChainConfig {
    /// Prices for `price` and `cost`.
    pub pricing: Option<Arc<dyn PricingModel>>,
    /// Priorities for `priority`.
    pub priorities: Option<PriorityFilter>,
    /// Settings for `cost`.
    pub cost: CostConfig,
}

impl fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainConfig")
            .field("pricing", &self.pricing.as_ref().map(|_| "<pricing model>"))
            .field("priorities", &self.priorities)
            .field("cost", &self.cost)
            .finish()
    }
}

/// One explained step of a decision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// The expander that ran.
    pub strategy: String,
    /// Group id → score (empty for `random`).
    pub scores: BTreeMap<String, f64>,
    /// Group ids that survived, in input order.
    pub survivors: Vec<String>,
    /// Group id → why it was dropped without a score.
    pub dropped: BTreeMap<String, String>,
}

/// The outcome of running a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<'a> {
    /// The options left after the filters (before the final random pick).
    pub best: Vec<&'a ExpansionOption>,
    /// The option to expand, or `None` when no option survived.
    pub chosen: Option<&'a ExpansionOption>,
    /// What each step scored and kept.
    pub steps: Vec<Step>,
}

/// An ordered expander chain with a random fallback.
pub struct Chain {
    filters: Vec<Box<dyn Filter>>,
    fallback: RandomFilter,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.filters.iter().map(|x| x.name()))
            .finish()
    }
}

impl Chain {
    /// Builds the chain named by `spec` (see [`parse_chain`]).
    pub fn build(spec: &str, config: &ChainConfig) -> Result<Chain, ExpanderError> {
        let names = parse_chain(spec)?;
        let mut filters: Vec<Box<dyn Filter>> = Vec::with_capacity(names.len());
        for name in names {
            let pricing = || {
                config
                    .pricing
                    .clone()
                    .ok_or_else(|| ExpanderError::MissingPricing {
                        name: name.as_str().to_owned(),
                    })
            };
            let filter: Box<dyn Filter> = match name {
                // The fallback already picks at random.
                StrategyName::Random => continue,
                StrategyName::MostPods => Box::new(MostPodsFilter),
                StrategyName::LeastWaste => Box::new(LeastWasteFilter),
                StrategyName::LeastNodes => Box::new(LeastNodesFilter),
                StrategyName::Price => Box::new(PriceFilter::new(pricing()?)),
                StrategyName::Cost => Box::new(CostFilter::new(pricing()?, config.cost)),
                StrategyName::Priority => Box::new(
                    config
                        .priorities
                        .clone()
                        .ok_or(ExpanderError::MissingPriorities)?,
                ),
            };
            filters.push(filter);
        }
        Ok(Chain::from_filters(filters))
    }

    /// A chain of the given filters, in order, with the random fallback.
    #[must_use]
    pub fn from_filters(filters: Vec<Box<dyn Filter>>) -> Chain {
        Chain {
            filters,
            fallback: RandomFilter,
        }
    }

    /// The filter names, in order (without the random fallback).
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Runs the chain: each filter in turn, stopping at one survivor; then a
    /// seeded random pick among the rest.
    #[must_use]
    pub fn decide<'a>(
        &self,
        options: &'a [ExpansionOption],
        ctx: &ExpansionContext<'_>,
    ) -> Decision<'a> {
        let mut current: Vec<&'a ExpansionOption> = options.iter().collect();
        let mut steps = Vec::with_capacity(self.filters.len() + 1);
        for filter in &self.filters {
            let outcome = filter.filter(&current, ctx);
            current = outcome.survivors.iter().map(|&i| current[i]).collect();
            steps.push(step(filter.name(), outcome, &current));
            if current.len() == 1 {
                return Decision {
                    chosen: Some(current[0]),
                    best: current,
                    steps,
                };
            }
        }
        let chosen = match current.len() {
            0 => None,
            1 => Some(current[0]),
            _ => {
                let outcome = self.fallback.filter(&current, ctx);
                let picked: Vec<_> = outcome.survivors.iter().map(|&i| current[i]).collect();
                steps.push(step(self.fallback.name(), outcome, &picked));
                picked.first().copied()
            }
        };
        Decision {
            best: current,
            chosen,
            steps,
        }
    }
}

fn step(name: &str, outcome: FilterOutcome, survivors: &[&ExpansionOption]) -> Step {
    Step {
        strategy: name.to_owned(),
        scores: outcome.scores,
        survivors: survivors.iter().map(|o| o.node_group_id.clone()).collect(),
        dropped: outcome.dropped,
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub const MIB: i64 = 1024 * 1024;
    pub const GIB: i64 = 1024 * MIB;

    pub fn option(id: &str, count: u32, pods: &[(i64, i64)]) -> ExpansionOption {
        ExpansionOption {
            node_group_id: id.into(),
            node_count: count,
            pods: pods
                .iter()
                .enumerate()
                .map(|(i, &(c, m))| PodRequest::new(format!("pod-{i}"), Resources::new(c, m)))
                .collect(),
            debug: String::new(),
        }
    }

    pub fn template(cpu: i64, mem: i64) -> NodeTemplate {
        NodeTemplate {
            capacity: Resources::new(cpu, mem),
            allocatable: Resources::new(cpu, mem),
            max_pods: 110,
            exists: true,
            ..NodeTemplate::default()
        }
    }

    pub fn ctx(templates: &HashMap<String, NodeTemplate>) -> ExpansionContext<'_> {
        ExpansionContext {
            templates,
            cluster_node_count: 10,
            seed: 7,
        }
    }

    pub fn ids(options: &[&ExpansionOption], survivors: &[usize]) -> Vec<String> {
        survivors
            .iter()
            .map(|&i| options[i].node_group_id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("least-waste", &[StrategyName::LeastWaste])]
    #[case("priority,price,least-waste", &[StrategyName::Priority, StrategyName::Price, StrategyName::LeastWaste])]
    #[case(" most-pods , random ", &[StrategyName::MostPods, StrategyName::Random])]
    #[case("cost,least-nodes", &[StrategyName::Cost, StrategyName::LeastNodes])]
    fn parses_chains(#[case] spec: &str, #[case] expected: &[StrategyName]) {
        assert_eq!(parse_chain(spec).unwrap(), expected);
    }

    #[rstest]
    #[case("", "expander chain is empty")]
    #[case("price,cheapest", "unknown expander \"cheapest\" at entry 2")]
    #[case("price,,least-waste", "unknown expander \"\" at entry 2")]
    #[case(
        "price,least-waste,price",
        "expander \"price\" is listed more than once (entries 1 and 3)"
    )]
    #[case(
        "random,price",
        "expander \"random\" must be last, but is entry 1 of 2"
    )]
    #[case(
        "random,random",
        "expander \"random\" must be last, but is entry 1 of 2"
    )]
    #[case(
        "least-nodes,random,least-nodes",
        "expander \"random\" must be last, but is entry 2 of 3"
    )]
    #[case(
        "least-nodes,most-pods,least-nodes,random",
        "expander \"least-nodes\" is listed more than once (entries 1 and 3)"
    )]
    fn rejects_bad_chains(#[case] spec: &str, #[case] message: &str) {
        let err = parse_chain(spec).unwrap_err().to_string();
        assert!(err.starts_with(message), "{err}");
    }

    #[test]
    fn build_needs_pricing_and_priorities() {
        let config = ChainConfig::default();
        assert_eq!(
            Chain::build("least-waste,price", &config).unwrap_err(),
            ExpanderError::MissingPricing {
                name: "price".into()
            }
        );
        assert_eq!(
            Chain::build("priority", &config).unwrap_err(),
            ExpanderError::MissingPriorities
        );
        let chain = Chain::build("most-pods,least-waste,random", &config).unwrap();
        assert_eq!(chain.names(), vec!["most-pods", "least-waste"]);
    }

    fn templates() -> HashMap<String, NodeTemplate> {
        [
            ("a".to_owned(), template(4000, 16 * GIB)),
            ("b".to_owned(), template(4000, 16 * GIB)),
            ("c".to_owned(), template(8000, 32 * GIB)),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn chain_stops_at_one_survivor() {
        let t = templates();
        let options = vec![
            option("a", 1, &[(1000, GIB)]),
            option("b", 1, &[(1000, GIB), (1000, GIB)]),
            option("c", 1, &[(1000, GIB), (1000, GIB)]),
        ];
        let chain = Chain::build("most-pods,least-waste", &ChainConfig::default()).unwrap();
        let d = chain.decide(&options, &ctx(&t));
        assert_eq!(d.chosen.unwrap().node_group_id, "b");
        assert_eq!(d.steps.len(), 2);
        assert_eq!(d.steps[0].strategy, "most-pods");
        assert_eq!(d.steps[0].survivors, vec!["b", "c"]);
        assert_eq!(d.steps[0].scores["a"], 1.0);
        assert_eq!(d.steps[1].survivors, vec!["b"]);
        // b wastes 0.5 + 0.875; c wastes 0.75 + 0.9375.
        assert!((d.steps[1].scores["b"] - 1.375).abs() < 1e-12);
        assert_eq!(d.best.len(), 1);

        // Early exit: the first filter leaves one, the second never runs.
        let chain = Chain::build("least-waste,most-pods", &ChainConfig::default()).unwrap();
        let d = chain.decide(&options, &ctx(&t));
        assert_eq!(d.steps.len(), 1);
        assert_eq!(d.chosen.unwrap().node_group_id, "b");
    }

    #[test]
    fn ties_go_to_a_reproducible_random_pick() {
        let t = templates();
        let options = vec![
            option("a", 1, &[(1000, GIB)]),
            option("b", 1, &[(1000, GIB)]),
        ];
        let chain = Chain::build("least-waste", &ChainConfig::default()).unwrap();
        let mut picks = std::collections::BTreeSet::new();
        for seed in 0..32 {
            let c = ExpansionContext { seed, ..ctx(&t) };
            let d = chain.decide(&options, &c);
            assert_eq!(d.best.len(), 2);
            assert_eq!(d.steps.last().unwrap().strategy, "random");
            let again = chain.decide(&options, &c);
            assert_eq!(d.chosen, again.chosen);
            picks.insert(d.chosen.unwrap().node_group_id.clone());
        }
        assert_eq!(picks.len(), 2, "both tied options get picked for some seed");
    }

    #[test]
    fn priority_price_least_waste_explained() {
        use crate::catalog::Catalog;
        let catalog = Catalog::from_csv(
            "instance_type,vcpu,memory_mib,gpus,architectures,current_generation,burstable,bare_metal,on_demand_usd_per_hour
m6i.large,2,8192,0,x86_64,true,false,false,0.096
m6i.xlarge,4,16384,0,x86_64,true,false,false,0.192
c6i.xlarge,4,8192,0,x86_64,true,false,false,0.17
",
        )
        .unwrap()
        .with_overrides_yaml("rates: { usdPerVcpuHour: 0.04, usdPerGibHour: 0.005 }")
        .unwrap();
        let group = |ty: &str, cpu: i64, mem: i64| {
            let mut t = template(cpu, mem);
            t.price.instance_types = vec![ty.to_owned()];
            t
        };
        let t: HashMap<String, NodeTemplate> = [
            (
                "pool-m6i-large".to_owned(),
                group("m6i.large", 2000, 8 * GIB),
            ),
            (
                "pool-m6i-xlarge".to_owned(),
                group("m6i.xlarge", 4000, 16 * GIB),
            ),
            (
                "pool-c6i-xlarge".to_owned(),
                group("c6i.xlarge", 4000, 8 * GIB),
            ),
            ("legacy".to_owned(), group("m6i.large", 2000, 8 * GIB)),
        ]
        .into_iter()
        .collect();
        let pods = [(1500, GIB); 4];
        let options = vec![
            option("pool-m6i-large", 4, &pods),
            option("pool-m6i-xlarge", 2, &pods),
            option("pool-c6i-xlarge", 2, &pods),
            option("legacy", 4, &pods),
        ];
        let config = ChainConfig {
            pricing: Some(Arc::new(catalog)),
            priorities: Some(PriorityFilter::from_yaml("10: [\"^pool-\"]\n0: [\".*\"]").unwrap()),
            cost: CostConfig::default(),
        };
        let chain = Chain::build("priority,price,least-waste", &config).unwrap();
        let d = chain.decide(&options, &ctx(&t));
        assert_eq!(d.chosen.unwrap().node_group_id, "pool-c6i-xlarge");
        let strategies: Vec<_> = d.steps.iter().map(|s| s.strategy.as_str()).collect();
        assert_eq!(strategies, vec!["priority", "price"]);
        assert_eq!(d.steps[0].scores["legacy"], 0.0);
        assert_eq!(d.steps[0].survivors.len(), 3);
        // Preferred node for 10 nodes is 4 CPUs; the c6i pays least for the same pods.
        let s = 0.5 * 0.04 + (500.0 / 1024.0) * 0.005;
        let pods_value = 4.0 * (1.5 * 0.04 + 0.005);
        let c6i = (2.0 * 0.17 + s) / (pods_value + s);
        assert!((d.steps[1].scores["pool-c6i-xlarge"] - c6i).abs() < 1e-12);
        // Half the preferred CPU (unfitness 2), suppressed over 4 nodes.
        let m6i_large = (2.0 - 0.2f64.tanh()) * (4.0 * 0.096 + s) / (pods_value + s);
        assert!((d.steps[1].scores["pool-m6i-large"] - m6i_large).abs() < 1e-12);
        assert_eq!(d.steps[1].survivors, vec!["pool-c6i-xlarge"]);
        let json = serde_json::to_string(&d.steps).unwrap();
        assert!(json.contains("\"strategy\":\"price\""), "{json}");
    }

    proptest::proptest! {
        #[test]
        fn least_waste_chain_picks_a_minimum(
            groups in proptest::collection::vec((1i64..64, 1i64..256, 1u32..20, 0usize..30), 1..12),
            seed in 0u64..1000,
        ) {
            let mut t = HashMap::new();
            let mut options = Vec::new();
            for (i, &(cpu, gib, count, pods)) in groups.iter().enumerate() {
                let id = format!("g{i}");
                t.insert(id.clone(), template(cpu * 1000, gib * GIB));
                options.push(option(&id, count, &vec![(250, GIB / 2); pods]));
            }
            let chain = Chain::build("least-waste", &ChainConfig::default()).unwrap();
            let c = ExpansionContext { seed, ..ctx(&t) };
            let d = chain.decide(&options, &c);
            let scores = &d.steps[0].scores;
            let min = scores.values().copied().fold(f64::INFINITY, f64::min);
            let chosen = d.chosen.unwrap();
            proptest::prop_assert_eq!(scores[&chosen.node_group_id], min);
            // Every option at the minimum survived, and only those.
            let at_min = scores.values().filter(|&&v| v == min).count();
            proptest::prop_assert_eq!(d.best.len(), at_min);
            proptest::prop_assert!(d.best.iter().any(|o| std::ptr::eq(*o, chosen)));
            proptest::prop_assert_eq!(chain.decide(&options, &c).chosen, d.chosen);
        }
    }

    #[test]
    fn no_survivors_means_no_choice() {
        let t = HashMap::new();
        let options = vec![option("a", 1, &[(1000, GIB)])];
        let chain = Chain::build("least-waste", &ChainConfig::default()).unwrap();
        let d = chain.decide(&options, &ctx(&t));
        assert!(d.chosen.is_none() && d.best.is_empty());
        assert_eq!(d.steps[0].dropped["a"], "no template for node group a");
    }
}
