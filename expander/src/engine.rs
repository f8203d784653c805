//! One decision: validated options and templates in, the core chain run, an
//! explanation out. The CLI and the gRPC server both call [`Expander::decide`].

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use tailor_core::expander::{
    Chain, ChainConfig, ExpanderError, ExpansionContext, ExpansionOption, NodeTemplate, Step,
    StrategyName, parse_chain,
};

/// A request could not be decided.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// There is nothing to choose from.
    #[error("the request has no options")]
    NoOptions,
    /// An option names a node group without a template node.
    #[error("option {index} names node group {id:?}, which has no node in nodeMap")]
    UnknownGroup {
        /// 0-based position in `options`.
        index: usize,
        /// The node group id.
        id: String,
    },
    /// Two options name the same node group, so the answer would be ambiguous.
    #[error("options {first} and {second} both name node group {id:?}")]
    DuplicateGroup {
        /// The node group id.
        id: String,
        /// 0-based position of the first.
        first: usize,
        /// 0-based position of the repeat.
        second: usize,
    },
    /// An option's node count is negative.
    #[error("option {index} ({id:?}) has a negative nodeCount {count}")]
    NegativeCount {
        /// 0-based position in `options`.
        index: usize,
        /// The node group id.
        id: String,
        /// The count.
        count: i64,
    },
}

impl DecideError {
    /// A stable label for metrics.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            DecideError::NoOptions => "no_options",
            DecideError::UnknownGroup { .. } => "unknown_group",
            DecideError::DuplicateGroup { .. } => "duplicate_group",
            DecideError::NegativeCount { .. } => "negative_count",
        }
    }
}

/// Options and template nodes, converted to the core's types.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// The scale-up options, in the caller's order.
    pub options: Vec<ExpansionOption>,
    /// Node group id → template node.
    pub templates: HashMap<String, NodeTemplate>,
}

/// One step as the JSON output shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepOut {
    /// The expander that ran.
    pub strategy: String,
    /// Group id → score.
    pub scores: BTreeMap<String, f64>,
    /// Group ids that survived.
    pub survivors: Vec<String>,
}

/// What was decided and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// Indices into the request's options of the options returned to the caller.
    pub best: Vec<usize>,
    /// Index of the single option the chain's random fallback would pick.
    pub chosen: Option<usize>,
    /// Every step, with scores, survivors and reasons for drops.
    pub steps: Vec<Step>,
}

/// The `decide` JSON document: `{"best": [...], "steps": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExplanationOut {
    /// Ids of the returned options.
    pub best: Vec<String>,
    /// The steps.
    pub steps: Vec<StepOut>,
}

impl Explanation {
    /// The JSON shape, with group ids resolved from `request`.
    #[must_use]
    pub fn to_output(&self, request: &Request) -> ExplanationOut {
        ExplanationOut {
            best: self
                .best
                .iter()
                .map(|&i| request.options[i].node_group_id.clone())
                .collect(),
            steps: self
                .steps
                .iter()
                .map(|s| StepOut {
                    strategy: s.strategy.clone(),
                    scores: s.scores.clone(),
                    survivors: s.survivors.clone(),
                })
                .collect(),
        }
    }
}

/// A configured expander chain.
#[derive(Debug)]
pub struct Expander {
    chain: Chain,
    spec: String,
    /// `random` was named last: the caller wants one option, not the ties.
    pick_one: bool,
    seed: u64,
    cluster_node_count: usize,
}

impl Expander {
    /// Builds the chain named by `spec` (`priority,price,least-waste`).
    ///
    /// `cluster_node_count` sizes the `price` expander's preferred node; `seed`
    /// makes the random pick among ties reproducible.
    pub fn new(
        spec: &str,
        config: &ChainConfig,
        seed: u64,
        cluster_node_count: usize,
    ) -> Result<Expander, ExpanderError> {
        let names = parse_chain(spec)?;
        Ok(Expander {
            chain: Chain::build(spec, config)?,
            spec: spec.trim().to_owned(),
            pick_one: names.last() == Some(&StrategyName::Random),
            seed,
            cluster_node_count,
        })
    }

    /// The chain as configured.
    #[must_use]
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Validates `request` and runs the chain over it.
    ///
    /// The options returned are the chain's survivors; when the chain ends in
    /// `random`, only the one it picked.
    pub fn decide(&self, request: &Request) -> Result<Explanation, DecideError> {
        validate(request)?;
        let ctx = ExpansionContext {
            templates: &request.templates,
            cluster_node_count: self.cluster_node_count,
            seed: self.seed,
        };
        let decision = self.chain.decide(&request.options, &ctx);
        let index_of = |o: &ExpansionOption| {
            request
                .options
                .iter()
                .position(|x| std::ptr::eq(x, o))
                .unwrap_or(usize::MAX)
        };
        let chosen = decision.chosen.map(index_of);
        let best = if self.pick_one {
            chosen.into_iter().collect()
        } else {
            decision.best.iter().map(|o| index_of(o)).collect()
        };
        Ok(Explanation {
            best,
            chosen,
            steps: decision.steps,
        })
    }
}

fn validate(request: &Request) -> Result<(), DecideError> {
    if request.options.is_empty() {
        return Err(DecideError::NoOptions);
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(request.options.len());
    for (index, option) in request.options.iter().enumerate() {
        let id = option.node_group_id.as_str();
        if let Some(&first) = seen.get(id) {
            return Err(DecideError::DuplicateGroup {
                id: id.to_owned(),
                first,
                second: index,
            });
        }
        seen.insert(id, index);
        if !request.templates.contains_key(id) {
            return Err(DecideError::UnknownGroup {
                index,
                id: id.to_owned(),
            });
        }
    }
    Ok(())
}

/// A node count from the wire, which must not be negative.
pub fn node_count(index: usize, id: &str, count: i64) -> Result<u32, DecideError> {
    u32::try_from(count).map_err(|_| DecideError::NegativeCount {
        index,
        id: id.to_owned(),
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tailor_core::resources::Resources;
    use tailor_core::scheduling::PodRequest;

    const GIB: i64 = 1 << 30;

    fn option(id: &str, pods: usize) -> ExpansionOption {
        ExpansionOption {
            node_group_id: id.into(),
            node_count: 1,
            pods: (0..pods)
                .map(|i| PodRequest::new(format!("p{i}"), Resources::new(1000, GIB)))
                .collect(),
            debug: String::new(),
        }
    }

    fn template() -> NodeTemplate {
        NodeTemplate {
            capacity: Resources::new(4000, 16 * GIB),
            allocatable: Resources::new(4000, 16 * GIB),
            max_pods: 110,
            exists: true,
            ..NodeTemplate::default()
        }
    }

    fn request(ids: &[(&str, usize)], templates: &[&str]) -> Request {
        Request {
            options: ids.iter().map(|&(id, n)| option(id, n)).collect(),
            templates: templates
                .iter()
                .map(|id| ((*id).to_owned(), template()))
                .collect(),
        }
    }

    fn expander(spec: &str) -> Expander {
        Expander::new(spec, &ChainConfig::default(), 3, 0).unwrap()
    }

    #[test]
    fn bad_requests() {
        let e = expander("least-waste");
        assert_eq!(
            e.decide(&request(&[], &["a"])).unwrap_err(),
            DecideError::NoOptions
        );
        let err = e
            .decide(&request(&[("a", 1), ("b", 1)], &["a"]))
            .unwrap_err();
        assert_eq!(
            err,
            DecideError::UnknownGroup {
                index: 1,
                id: "b".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "option 1 names node group \"b\", which has no node in nodeMap"
        );
        assert_eq!(
            e.decide(&request(&[("a", 1), ("b", 1), ("a", 2)], &["a", "b"]))
                .unwrap_err(),
            DecideError::DuplicateGroup {
                id: "a".into(),
                first: 0,
                second: 2
            }
        );
        assert_eq!(
            node_count(4, "x", -1).unwrap_err().to_string(),
            "option 4 (\"x\") has a negative nodeCount -1"
        );
    }

    #[test]
    fn ties_survive_unless_random_is_named() {
        let r = request(&[("a", 1), ("b", 1), ("c", 3)], &["a", "b", "c"]);
        // a and b waste the same; c packs more.
        let all = expander("least-nodes").decide(&r).unwrap();
        assert_eq!(all.best, vec![0, 1, 2]);
        assert!(all.chosen.is_some());
        let ties = expander("most-pods").decide(&r).unwrap();
        assert_eq!(ties.best, vec![2]);
        let lw = expander("least-nodes,least-waste").decide(&r).unwrap();
        assert_eq!(lw.best, vec![2]);
        let r = request(&[("a", 1), ("b", 1)], &["a", "b"]);
        let tied = expander("least-waste").decide(&r).unwrap();
        assert_eq!(tied.best, vec![0, 1]);
        assert_eq!(tied.steps.last().unwrap().strategy, "random");
        let one = expander("least-waste,random").decide(&r).unwrap();
        assert_eq!(one.best.len(), 1);
        assert_eq!(one.best[0], one.chosen.unwrap());
        assert_eq!(one.chosen, tied.chosen, "same seed, same pick");
    }

    #[test]
    fn output_names_groups() {
        let r = request(&[("a", 1), ("b", 2)], &["a", "b"]);
        let x = expander("most-pods").decide(&r).unwrap();
        let out = serde_json::to_value(x.to_output(&r)).unwrap();
        assert_eq!(
            out,
            serde_json::json!({
                "best": ["b"],
                "steps": [{"strategy": "most-pods", "scores": {"a": 1.0, "b": 2.0}, "survivors": ["b"]}]
            })
        );
    }
}
