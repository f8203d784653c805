//! The served-metrics registry: each rule's last good discovery, merged into
//! one index, with the discovery documents rendered once per change.
//!
//! Each rule keeps only what it made of its series (metric → series name),
//! never the series themselves, so memory follows the number of metrics,
//! not the number of series Prometheus holds. A rule whose relist fails
//! keeps its previous metrics; the others are unaffected.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::api;
use crate::config::{Config, Section};
use crate::discovery::{self, CustomMetric};
use crate::naming::{GroupResource, KnownResources, Series};

/// Where a served metric comes from: the rule (index into its section) and
/// the Prometheus series name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// Index into `config.rules` or `config.external_rules`.
    pub rule: usize,
    /// The series name placed in `<<.Series>>`.
    pub series: String,
    /// Whether the objects are namespaced.
    pub namespaced: bool,
}

/// One consistent view of what is served, swapped whole after each relist.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// `(resource, metric)` → source.
    pub custom: HashMap<(GroupResource, String), Served>,
    /// External metric → source.
    pub external: HashMap<String, Served>,
    /// `/apis/custom.metrics.k8s.io/v1beta1`, rendered.
    pub custom_v1beta1: Bytes,
    /// `/apis/custom.metrics.k8s.io/v1beta2`, rendered.
    pub custom_v1beta2: Bytes,
    /// `/apis/external.metrics.k8s.io/v1beta1`, rendered.
    pub external_v1beta1: Bytes,
}

/// What one rule made of its last successful relist.
#[derive(Clone, Debug, Default)]
pub struct RuleState {
    /// Custom metrics and their series.
    pub custom: BTreeMap<CustomMetric, String>,
    /// External metrics and their series.
    pub external: BTreeMap<String, String>,
    /// Series the last successful relist returned (distinct name + label names).
    pub series: usize,
    /// Series Prometheus listed for the rule's query (before deduplication).
    pub listed: usize,
    /// When the last relist succeeded.
    pub last_success: Option<Instant>,
    /// The last relist's error, cleared by a success.
    pub last_error: Option<String>,
}

/// The registry. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct Registry {
    config: Arc<Config>,
    resources: KnownResources,
    rules: Mutex<Vec<RuleState>>,
    snapshot: RwLock<Arc<Snapshot>>,
}

/// A rule's position: section and index, as `config.rules` /
/// `config.external_rules` hold them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleId {
    /// The section.
    pub section: Section,
    /// The index within it.
    pub index: usize,
}

impl Registry {
    /// An empty registry: discovery documents list nothing until the first
    /// relist, but they are served from the start.
    #[must_use]
    pub fn new(config: Arc<Config>) -> Self {
        Registry::with_resources(config, KnownResources::default())
    }

    /// An empty registry that maps series labels to the resources
    /// `resources` knows (kept current by API discovery).
    #[must_use]
    pub fn with_resources(config: Arc<Config>, resources: KnownResources) -> Self {
        let n = config.rules.len() + config.external_rules.len();
        let registry = Registry {
            config,
            resources,
            rules: Mutex::new(vec![RuleState::default(); n]),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
        };
        registry.rebuild();
        registry
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The resources series labels and request paths can name.
    #[must_use]
    pub fn resources(&self) -> &KnownResources {
        &self.resources
    }

    /// Every rule in relist order (custom, then external).
    #[must_use]
    pub fn rule_ids(&self) -> Vec<RuleId> {
        let c = (0..self.config.rules.len()).map(|index| RuleId {
            section: Section::Rules,
            index,
        });
        let e = (0..self.config.external_rules.len()).map(|index| RuleId {
            section: Section::ExternalRules,
            index,
        });
        c.chain(e).collect()
    }

    fn slot(&self, id: RuleId) -> usize {
        match id.section {
            Section::ExternalRules => self.config.rules.len() + id.index,
            _ => id.index,
        }
    }

    /// The rule behind an id.
    #[must_use]
    pub fn rule(&self, id: RuleId) -> Option<&crate::config::Rule> {
        match id.section {
            Section::ExternalRules => self.config.external_rules.get(id.index),
            _ => self.config.rules.get(id.index),
        }
    }

    /// The current view (cheap: one `Arc` clone under a read lock).
    #[must_use]
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A copy of each rule's state, in relist order.
    #[must_use]
    pub fn rule_states(&self) -> Vec<RuleState> {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records a successful relist of one rule and republishes.
    pub fn update(&self, id: RuleId, series: &[Series], listed: usize) {
        let Some(rule) = self.rule(id) else { return };
        let d = discovery::discover(rule, series, &self.resources.current());
        {
            let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = self.slot(id);
            rules[slot] = RuleState {
                custom: d.custom,
                external: d.external,
                series: series.len(),
                listed,
                last_success: Some(Instant::now()),
                last_error: None,
            };
        }
        self.rebuild();
    }

    /// Records a failed relist: the rule keeps its last good metrics.
    pub fn failed(&self, id: RuleId, error: String) {
        let mut rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = self.slot(id);
        rules[slot].last_error = Some(error);
    }

    /// Age of each rule's last good relist (`None`: never succeeded).
    #[must_use]
    pub fn ages(&self) -> Vec<Option<Duration>> {
        self.rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| r.last_success.map(|t| t.elapsed()))
            .collect()
    }

    /// Merges every rule (later rules win, as upstream) and re-renders the
    /// discovery documents.
    fn rebuild(&self) {
        let rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let mut snap = Snapshot::default();
        let n_custom = self.config.rules.len();
        for (slot, state) in rules.iter().enumerate() {
            if slot < n_custom {
                for (m, series) in &state.custom {
                    snap.custom.insert(
                        (m.resource.clone(), m.metric.clone()),
                        Served {
                            rule: slot,
                            series: series.clone(),
                            namespaced: m.namespaced,
                        },
                    );
                }
            } else {
                for (m, series) in &state.external {
                    snap.external.insert(
                        m.clone(),
                        Served {
                            rule: slot - n_custom,
                            series: series.clone(),
                            namespaced: true,
                        },
                    );
                }
            }
        }
        drop(rules);
        let mut custom: Vec<(String, bool)> = snap
            .custom
            .iter()
            .map(|((r, m), s)| (format!("{r}/{m}"), s.namespaced))
            .collect();
        custom.sort();
        let mut external: Vec<&str> = snap.external.keys().map(String::as_str).collect();
        external.sort_unstable();
        snap.custom_v1beta1 = api::custom_resource_list("v1beta1", &custom);
        snap.custom_v1beta2 = api::custom_resource_list("v1beta2", &custom);
        snap.external_v1beta1 = api::external_resource_list(&external);
        *self
            .snapshot
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(snap);
    }

    /// Series Prometheus listed over all rules (rules sharing a query count
    /// it once).
    #[must_use]
    pub fn listed(&self) -> usize {
        let rules = self.rules.lock().unwrap_or_else(PoisonError::into_inner);
        let mut seen = std::collections::BTreeSet::new();
        let all = self.config.rules.iter().chain(&self.config.external_rules);
        all.zip(rules.iter())
            .filter(|(rule, _)| seen.insert(rule.series_query.source().to_owned()))
            .map(|(_, state)| state.listed)
            .sum()
    }

    /// Counts for self-metrics: (series, custom metrics, external metrics).
    #[must_use]
    pub fn counts(&self) -> (usize, usize, usize) {
        let series = self
            .rules
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|r| r.series)
            .sum();
        let snap = self.snapshot();
        (series, snap.custom.len(), snap.external.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = include_str!("testdata/default-config.yaml");

    fn registry() -> Registry {
        Registry::new(Arc::new(
            Config::from_yaml(DEFAULT, "default.yaml").unwrap(),
        ))
    }

    #[test]
    fn discovery_documents_exist_before_any_relist() {
        let r = registry();
        let snap = r.snapshot();
        let v: serde_json::Value = serde_json::from_slice(&snap.custom_v1beta2).unwrap();
        assert_eq!(v["kind"], "APIResourceList");
        assert_eq!(v["groupVersion"], "custom.metrics.k8s.io/v1beta2");
        assert_eq!(v["resources"], serde_json::json!([]));
    }

    #[test]
    fn a_failed_rule_keeps_its_metrics_and_others_update() {
        let r = registry();
        let ids = r.rule_ids();
        let container = Series::new(
            "container_cpu_usage_seconds_total",
            ["namespace", "pod", "container"],
        );
        r.update(ids[0], &[container], 1);
        let before = r.snapshot().custom.len();
        assert!(before > 0);
        r.failed(ids[0], "boom".into());
        assert_eq!(r.snapshot().custom.len(), before);
        assert_eq!(r.rule_states()[0].last_error.as_deref(), Some("boom"));
        let states = r.rule_states();
        assert!(states[0].last_success.is_some());
        assert!(states[1].last_success.is_none());
        let v: serde_json::Value = serde_json::from_slice(&r.snapshot().custom_v1beta1).unwrap();
        let names: Vec<&str> = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods/cpu_usage"), "{names:?}");
        assert!(names.contains(&"namespaces/cpu_usage"), "{names:?}");
    }
}
