//! Series → served metrics: what each rule makes of the series its
//! `seriesQuery` returned, and the `--check-config` listing.
//!
//! Pure: the relist loop (later) feeds it what Prometheus returned per rule;
//! `--check-config` feeds it a series list and matches each rule's
//! `seriesQuery` locally.

use crate::config::{Config, Rule, Section};
use crate::naming::{GroupResource, ResourceIndex, Series};
use crate::promql;
use crate::query::{Objects, QueryOptions, ResourceTarget, build_resource};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A custom metric the adapter serves.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomMetric {
    /// The resource it describes.
    pub resource: GroupResource,
    /// True when the objects live in namespaces (false for namespaces and
    /// nodes themselves, as upstream).
    pub namespaced: bool,
    /// The API metric name.
    pub metric: String,
}

impl CustomMetric {
    /// The name in discovery documents: `pods/http_requests`,
    /// `deployments.apps/queue_length`.
    #[must_use]
    pub fn api_name(&self) -> String {
        format!("{}/{}", self.resource, self.metric)
    }
}

impl fmt::Display for CustomMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.api_name())
    }
}

/// Where a served metric comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The rule's section.
    pub section: Section,
    /// The rule's index.
    pub index: usize,
    /// The Prometheus series name.
    pub series: String,
}

/// A series a rule could not use, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The series name.
    pub series: String,
    /// Why.
    pub reason: String,
}

/// What one rule made of its series.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleDiscovery {
    /// Custom metrics (custom rules), each with its series name.
    pub custom: BTreeMap<CustomMetric, String>,
    /// External metric name → series name (external rules).
    pub external: BTreeMap<String, String>,
    /// Series passed to the rule.
    pub series_seen: usize,
    /// Series removed by `seriesFilters` / `name.matches`.
    pub filtered: usize,
    /// Series that passed the filters but could not be used.
    pub skipped: Vec<Skipped>,
}

/// Applies one rule to the series its `seriesQuery` returned.
#[must_use]
pub fn discover(rule: &Rule, series: &[Series], known: &ResourceIndex) -> RuleDiscovery {
    let mut out = RuleDiscovery {
        series_seen: series.len(),
        ..RuleDiscovery::default()
    };
    for s in series {
        if !rule.keeps(&s.name) {
            out.filtered += 1;
            continue;
        }
        let skip = |reason: String| Skipped {
            series: s.name.clone(),
            reason,
        };
        if !promql::is_metric_name(&s.name) {
            out.skipped.push(skip(
                "not a plain metric name; it cannot be placed in a query".into(),
            ));
            continue;
        }
        let metric = match rule.name.metric_name(&s.name) {
            Ok(m) => m,
            Err(e) => {
                out.skipped.push(skip(e.to_string()));
                continue;
            }
        };
        match rule.section {
            Section::ExternalRules => {
                out.external.insert(metric, s.name.clone());
            }
            _ => {
                let (resources, namespaced) = rule
                    .resources
                    .resources_for_series(s.labels.iter().map(String::as_str), known);
                if resources.is_empty() {
                    out.skipped
                        .push(skip("no label maps to a Kubernetes resource".into()));
                    continue;
                }
                for resource in resources {
                    let cluster_scoped = known.is_cluster_scoped(&resource);
                    out.custom.insert(
                        CustomMetric {
                            resource,
                            namespaced: namespaced && !cluster_scoped,
                            metric: metric.clone(),
                        },
                        s.name.clone(),
                    );
                }
            }
        }
    }
    out
}

/// A metric served by more than one rule; the later rule wins, as upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The API name.
    pub metric: String,
    /// The rule that lost.
    pub shadowed: Source,
    /// The rule that won.
    pub winner: Source,
}

/// What a config would serve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServedMetrics {
    /// Custom metrics, with the rule and series behind each.
    pub custom: BTreeMap<CustomMetric, Source>,
    /// External metrics, with the rule and series behind each.
    pub external: BTreeMap<String, Source>,
    /// True when `resourceRules` serve `metrics.k8s.io` (pods and nodes).
    pub resource_metrics: bool,
    /// With `resourceRules`: the `window` they report and, per
    /// `("pods" | "nodes", "cpu" | "memory")`, the query a list of every
    /// object runs (or why it cannot be built).
    pub resource_queries: Vec<(&'static str, &'static str, Result<String, String>)>,
    /// `resourceRules.window`, as the bodies print it.
    pub resource_window: Option<String>,
    /// Per rule, in config order: section, index and what it made.
    pub rules: Vec<(Section, usize, RuleDiscovery)>,
    /// Metrics more than one rule produced.
    pub conflicts: Vec<Conflict>,
}

impl ServedMetrics {
    /// The `--check-config` listing: one line per served metric, then
    /// per-rule counts, skipped series and conflicts.
    #[must_use]
    pub fn report(&self) -> String {
        let mut out = String::new();
        let push = |out: &mut String, line: String| {
            out.push_str(&line);
            out.push('\n');
        };
        push(
            &mut out,
            format!("custom.metrics.k8s.io: {} metrics", self.custom.len()),
        );
        for (m, src) in &self.custom {
            let scope = if m.namespaced {
                "namespaced"
            } else {
                "cluster"
            };
            push(
                &mut out,
                format!(
                    "  {} ({scope}) <- {} [{}[{}]]",
                    m.api_name(),
                    src.series,
                    src.section,
                    src.index
                ),
            );
        }
        push(
            &mut out,
            format!("external.metrics.k8s.io: {} metrics", self.external.len()),
        );
        for (m, src) in &self.external {
            push(
                &mut out,
                format!("  {m} <- {} [{}[{}]]", src.series, src.section, src.index),
            );
        }
        match &self.resource_window {
            Some(window) => push(
                &mut out,
                format!("metrics.k8s.io: nodes, pods (window {window})"),
            ),
            None => push(
                &mut out,
                "metrics.k8s.io: not served (no resourceRules)".to_owned(),
            ),
        }
        for (resource, usage, q) in &self.resource_queries {
            match q {
                // One line per query: template newlines and indentation folded.
                Ok(q) => push(
                    &mut out,
                    format!(
                        "  {resource} {usage} <- {}",
                        q.split_whitespace().collect::<Vec<_>>().join(" ")
                    ),
                ),
                Err(e) => push(
                    &mut out,
                    format!("  {resource} {usage}: cannot be built: {e}"),
                ),
            }
        }
        for (section, index, d) in &self.rules {
            push(
                &mut out,
                format!(
                    "{section}[{index}]: {} series, {} filtered out, {} skipped, {} metrics",
                    d.series_seen,
                    d.filtered,
                    d.skipped.len(),
                    d.custom.len() + d.external.len()
                ),
            );
            for s in &d.skipped {
                push(&mut out, format!("  skipped {}: {}", s.series, s.reason));
            }
        }
        for c in &self.conflicts {
            push(
                &mut out,
                format!(
                    "conflict: {} from {}[{}] is shadowed by {}[{}]",
                    c.metric,
                    c.shadowed.section,
                    c.shadowed.index,
                    c.winner.section,
                    c.winner.index
                ),
            );
        }
        out
    }
}

/// The metrics `config` would serve given these series (each a label map
/// with `__name__`): every rule's `seriesQuery` is matched locally.
#[must_use]
pub fn served_metrics(config: &Config, series: &[BTreeMap<String, String>]) -> ServedMetrics {
    let mut served = ServedMetrics {
        resource_metrics: config.resource_rules.is_some(),
        ..ServedMetrics::default()
    };
    if let Some(rr) = &config.resource_rules {
        served.resource_window = Some(crate::resource::go_duration(rr.window));
        for (usage, rule) in [("cpu", &rr.cpu), ("memory", &rr.memory)] {
            for (resource, target) in [
                (
                    "pods",
                    ResourceTarget::Pods {
                        namespace: None,
                        objects: Objects::All,
                    },
                ),
                (
                    "nodes",
                    ResourceTarget::Nodes {
                        objects: Objects::All,
                    },
                ),
            ] {
                let q = build_resource(rule, target, QueryOptions::default())
                    .map(|b| b.promql)
                    .map_err(|e| e.to_string());
                served.resource_queries.push((resource, usage, q));
            }
        }
    }
    for rule in config.rules.iter().chain(&config.external_rules) {
        // Discovery strips values: one entry per name + label-name set.
        let matched: BTreeSet<Series> = series
            .iter()
            .filter(|s| rule.series_query.matches(s))
            .filter_map(|s| {
                let name = s.get("__name__")?;
                Some(Series::new(name, s.keys().cloned()))
            })
            .collect();
        let matched: Vec<Series> = matched.into_iter().collect();
        // --check-config has no API discovery: built-in resources only.
        let d = discover(rule, &matched, &ResourceIndex::builtin());
        for (m, series) in &d.custom {
            let src = Source {
                section: rule.section,
                index: rule.index,
                series: series.clone(),
            };
            // A rule yields each metric once, so an earlier entry is another rule's.
            if let Some(old) = served.custom.insert(m.clone(), src.clone()) {
                served.conflicts.push(Conflict {
                    metric: m.api_name(),
                    shadowed: old,
                    winner: src,
                });
            }
        }
        for (m, series) in &d.external {
            let src = Source {
                section: rule.section,
                index: rule.index,
                series: series.clone(),
            };
            // A rule yields each metric once, so an earlier entry is another rule's.
            if let Some(old) = served.external.insert(m.clone(), src.clone()) {
                served.conflicts.push(Conflict {
                    metric: m.clone(),
                    shadowed: old,
                    winner: src,
                });
            }
        }
        served.rules.push((rule.section, rule.index, d));
    }
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{DEFAULT, FULL};

    fn s(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn cadvisor(name: &str) -> BTreeMap<String, String> {
        s(&[
            ("__name__", name),
            ("namespace", "prod"),
            ("pod", "web-0"),
            ("container", "app"),
            ("id", "/x"),
        ])
    }

    fn sample_series() -> Vec<BTreeMap<String, String>> {
        vec![
            cadvisor("container_cpu_usage_seconds_total"),
            cadvisor("container_network_receive_bytes_total"),
            cadvisor("container_memory_working_set_bytes"),
            s(&[
                ("__name__", "container_cpu_usage_seconds_total"),
                ("namespace", "prod"),
                ("pod", "web-0"),
                ("container", "POD"),
            ]),
            s(&[
                ("__name__", "http_requests_total"),
                ("namespace", "shop"),
                ("service", "api"),
                ("pod", "api-1"),
                ("instance", "10.0.0.1"),
            ]),
            s(&[
                ("__name__", "queue_length"),
                ("namespace", "shop"),
                ("deployment", "worker"),
            ]),
            s(&[
                ("__name__", "gc_seconds_total"),
                ("namespace", "shop"),
                ("pod", "api-1"),
            ]),
            s(&[("__name__", "up"), ("job", "x")]),
            s(&[("__name__", "node_load1"), ("node", "n1")]),
        ]
    }

    fn names(served: &ServedMetrics) -> Vec<String> {
        let mut v: Vec<String> = served.custom.keys().map(CustomMetric::api_name).collect();
        v.sort();
        v
    }

    #[test]
    fn default_config_serves_the_expected_metrics() {
        let c = Config::from_yaml(DEFAULT, "d.yaml").unwrap();
        let served = served_metrics(&c, &sample_series());
        assert_eq!(
            names(&served),
            [
                "deployments.apps/queue_length",
                "namespaces/cpu_usage",
                "namespaces/gc",
                "namespaces/http_requests",
                "namespaces/memory_working_set_bytes",
                "namespaces/network_receive_bytes",
                "namespaces/queue_length",
                "pods/cpu_usage",
                "pods/gc",
                "pods/http_requests",
                "pods/memory_working_set_bytes",
                "pods/network_receive_bytes",
                "services/http_requests",
            ]
        );
        let pods_cpu = served
            .custom
            .iter()
            .find(|(m, _)| m.api_name() == "pods/cpu_usage")
            .unwrap();
        assert!(pods_cpu.0.namespaced);
        assert_eq!(pods_cpu.1.series, "container_cpu_usage_seconds_total");
        assert_eq!(pods_cpu.1.index, 0);
        assert!(
            served
                .custom
                .keys()
                .filter(|m| m.resource == GroupResource::namespaces())
                .all(|m| !m.namespaced)
        );
        // Rule 4 filters `_seconds_total` out; rule 5 names it `gc`.
        assert_eq!(
            served
                .custom
                .iter()
                .find(|(m, _)| m.api_name() == "pods/gc")
                .unwrap()
                .1
                .index,
            5
        );
        assert!(served.resource_metrics);
        assert!(served.external.is_empty());
        // `up` and `node_load1` have no namespace label: no rule's seriesQuery matches.
        assert!(served.rules.iter().all(|(_, _, d)| d.series_seen <= 6));
        let report = served.report();
        assert!(
            report.contains(
                "pods/cpu_usage (namespaced) <- container_cpu_usage_seconds_total [rules[0]]"
            ),
            "{report}"
        );
        assert!(
            report.contains("metrics.k8s.io: nodes, pods (window 5m0s)"),
            "{report}"
        );
        // The queries a list of every pod / node runs, one line each.
        assert!(
            report.contains(
                "  pods memory <- sum by (pod,container,namespace) ( container_memory_working_set_bytes{pod!=\"\",container!=\"\",pod!=\"\"} )\n"
            ),
            "{report}"
        );
        assert!(
            report.contains(
                "  nodes cpu <- sum by (node) ( irate( node_cpu_usage_seconds_total{node!=\"\"}[4m] ) )\n"
            ),
            "{report}"
        );
        assert_eq!(served.resource_queries.len(), 4);
    }

    #[test]
    fn external_rules_and_skips_are_reported() {
        let c = Config::from_yaml(FULL, "f.yaml").unwrap();
        let series = vec![
            s(&[
                ("__name__", "queue_consumer_lag"),
                ("name", "orders"),
                ("namespace", "shop"),
            ]),
            s(&[("__name__", "queue_depth"), ("topic", "orders")]),
            s(&[("__name__", "sqs_messages_visible"), ("queue", "a_b")]),
            s(&[("__name__", "cheddar"), ("sharp", "true"), ("brand", "x")]),
            s(&[("__name__", "cheddar"), ("sharp", "true")]),
        ];
        let served = served_metrics(&c, &series);
        let ext: Vec<_> = served.external.keys().cloned().collect();
        assert_eq!(
            ext,
            ["messages_visible", "queue_consumer_lag", "queue_depth"]
        );
        // Resources outside the built-in set are used as written until a
        // discovery-backed mapper resolves them.
        assert_eq!(
            names(&served),
            [
                "brand.cheese.io/cheesy_goodness",
                "namespaces/queue_consumer_lag"
            ]
        );
        let (_, _, cheddar) = &served.rules[1];
        assert_eq!(cheddar.series_seen, 2);
        assert_eq!(cheddar.skipped.len(), 1);
        assert!(
            served
                .report()
                .contains("skipped cheddar: no label maps to a Kubernetes resource")
        );
    }

    #[test]
    fn walkthrough_rule_serves_pods_and_namespaces() {
        let c = Config::from_yaml(crate::query::tests::WALKTHROUGH, "w.yaml").unwrap();
        let served = served_metrics(
            &c,
            &[
                s(&[
                    ("__name__", "http_requests_total"),
                    ("method", "GET"),
                    ("kubernetes_namespace", "production"),
                    ("kubernetes_pod_name", "frontend-server-abcd-0123"),
                ]),
                s(&[
                    ("__name__", "http_requests_total"),
                    ("method", "GET"),
                    ("kubernetes_pod_name", "orphan"),
                ]),
            ],
        );
        let got: Vec<_> = served
            .custom
            .keys()
            .map(|m| (m.api_name(), m.namespaced))
            .collect();
        assert_eq!(
            got,
            [
                ("namespaces/http_requests_per_second".to_owned(), false),
                ("pods/http_requests_per_second".to_owned(), true),
            ]
        );
    }

    #[test]
    fn without_resource_rules_metrics_k8s_io_is_not_served() {
        let c = Config::from_yaml("rules: []\n", "c.yaml").unwrap();
        let served = served_metrics(&c, &[]);
        assert!(!served.resource_metrics);
        assert!(served.resource_queries.is_empty());
        assert!(
            served
                .report()
                .contains("metrics.k8s.io: not served (no resourceRules)\n")
        );
    }

    #[test]
    fn later_rules_shadow_earlier_ones() {
        let text = "rules:\n- seriesQuery: '{namespace!=\"\"}'\n  resources: {template: <<.Resource>>}\n  metricsQuery: a\n- seriesQuery: '{namespace!=\"\"}'\n  resources: {template: <<.Resource>>}\n  metricsQuery: b\n";
        let c = Config::from_yaml(text, "c.yaml").unwrap();
        let served = served_metrics(&c, &[s(&[("__name__", "x"), ("namespace", "a")])]);
        assert_eq!(served.conflicts.len(), 1);
        assert_eq!(served.conflicts[0].winner.index, 1);
        assert_eq!(served.custom.values().next().unwrap().index, 1);
        assert!(
            served
                .report()
                .contains("conflict: namespaces/x from rules[0] is shadowed by rules[1]")
        );
    }

    #[test]
    fn discover_skips_unusable_series() {
        let c = Config::from_yaml(DEFAULT, "d.yaml").unwrap();
        let rule = &c.rules[3];
        let d = discover(
            rule,
            &[
                Series::new("my.metric", ["namespace"]),
                Series::new("ok_metric", ["namespace", "pod"]),
                Series::new("x_total", ["namespace"]),
            ],
            &ResourceIndex::builtin(),
        );
        assert_eq!(d.series_seen, 3);
        assert_eq!(d.filtered, 1);
        assert_eq!(d.skipped.len(), 1);
        assert_eq!(d.custom.len(), 2);
    }
}
