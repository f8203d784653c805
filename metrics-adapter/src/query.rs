//! Rule + request → PromQL, with every outside value escaped.
//!
//! Matches prometheus-adapter's output for the same inputs (matchers in the
//! order: metric-selector requirements by key, then namespace, then the
//! resource label; `=` for one object, `=~"a|b"` for several), except that:
//! - every value is a properly escaped PromQL string, and regex positions
//!   quote regex metacharacters, so names match only themselves;
//! - many objects (more than [`QueryOptions::max_regex_names`]) or a
//!   wildcard never become a giant `pod=~"a|b|…"` regex: the query selects the
//!   namespace and any object (`pod!=""`), and [`BuiltQuery::keep`] tells the
//!   caller which objects to keep from the result.

use crate::config::{ResourceRule, Rule};
use crate::naming::{GroupResource, NamingError};
use crate::promql;
use crate::selector::MetricSelector;
use crate::template::{LabelValues, QueryArgs, RenderError};
use std::collections::{BTreeMap, BTreeSet};
use tailor_api::selector::Operator;

/// Objects a request asks about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Objects<'a> {
    /// These objects (one for object requests; those a label selector picked
    /// for wildcard requests).
    Named(&'a [String]),
    /// Every object of the resource (in the namespace, if any).
    All,
}

/// Knobs for query building.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryOptions {
    /// Above this many names, query every object and filter the result
    /// instead of building an alternation regex.
    pub max_regex_names: usize,
}

/// Default for [`QueryOptions::max_regex_names`]: far below the ~150 names
/// where upstream's URLs start failing with 414/422.
pub const DEFAULT_MAX_REGEX_NAMES: usize = 20;

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            max_regex_names: DEFAULT_MAX_REGEX_NAMES,
        }
    }
}

/// A built query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltQuery {
    /// The PromQL.
    pub promql: String,
    /// The label whose values name the objects in the result (custom and
    /// resource queries); empty for external queries.
    pub resource_label: String,
    /// When set, keep only result series whose resource label is in here.
    pub keep: Option<BTreeSet<String>>,
}

/// A query that cannot be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The rule has no label for a resource the request needs.
    #[error(transparent)]
    Label(#[from] NamingError),
    /// A metric selector operator PromQL cannot express.
    #[error("metricLabelSelector on {key:?}: operator not supported")]
    Operator {
        /// The key.
        key: String,
    },
    /// A metric selector key that is not a label name.
    #[error("metricLabelSelector key {0:?} is not a valid Prometheus label name")]
    LabelName(String),
    /// The template could not place a value.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The request names no objects; the answer is an empty list.
    #[error("no objects selected")]
    NoObjects,
}

impl QueryError {
    /// The HTTP status this error answers with.
    #[must_use]
    pub fn status_code(&self) -> u16 {
        match self {
            QueryError::Operator { .. } | QueryError::LabelName(_) => 400,
            QueryError::NoObjects => 200,
            QueryError::Label(_) | QueryError::Render(_) => 500,
        }
    }
}

/// Label matchers and `.LabelValuesByName` under construction.
#[derive(Default)]
struct Matchers {
    exprs: Vec<String>,
    values: BTreeMap<String, LabelValues>,
}

impl Matchers {
    fn selector(&mut self, selector: &MetricSelector) -> Result<(), QueryError> {
        for r in selector.requirements() {
            if !promql::is_label_name(&r.key) {
                return Err(QueryError::LabelName(r.key.clone()));
            }
            let k = &r.key;
            let expr = match (r.operator, r.values.as_slice()) {
                (Operator::In, [v]) => format!("{k}={}", promql::quote(v)),
                (Operator::In, vs) => {
                    format!("{k}=~{}", promql::quote(&promql::regex_alternation(vs)))
                }
                (Operator::NotIn, [v]) => format!("{k}!={}", promql::quote(v)),
                (Operator::NotIn, vs) => {
                    format!("{k}!~{}", promql::quote(&promql::regex_alternation(vs)))
                }
                (Operator::Exists, _) => format!("{k}!=\"\""),
                (Operator::DoesNotExist, _) => format!("{k}=\"\""),
                (Operator::GreaterThan | Operator::LessThan, _) => {
                    return Err(QueryError::Operator { key: k.clone() });
                }
            };
            self.exprs.push(expr);
            self.values
                .insert(k.clone(), LabelValues::Exact(r.values.clone()));
        }
        Ok(())
    }

    fn eq(&mut self, label: &str, value: &str) {
        self.exprs.push(format!("{label}={}", promql::quote(value)));
        self.values
            .insert(label.to_owned(), LabelValues::Exact(vec![value.to_owned()]));
    }

    fn objects(&mut self, label: &str, names: Option<&[String]>) {
        match names {
            Some([one]) => self.eq(label, one),
            Some(names) => {
                self.exprs.push(format!(
                    "{label}=~{}",
                    promql::quote(&promql::regex_alternation(names))
                ));
                self.values
                    .insert(label.to_owned(), LabelValues::Exact(names.to_vec()));
            }
            None => {
                self.exprs.push(format!("{label}!=\"\""));
                self.values.insert(label.to_owned(), LabelValues::Any);
            }
        }
    }
}

/// A custom-metrics request for one rule's series.
#[derive(Clone, Copy, Debug)]
pub struct CustomRequest<'a> {
    /// The Prometheus series backing the metric.
    pub series: &'a str,
    /// The resource the objects are.
    pub resource: &'a GroupResource,
    /// The namespace, for namespaced resources.
    pub namespace: Option<&'a str>,
    /// The objects.
    pub objects: Objects<'a>,
    /// `?metricLabelSelector=`.
    pub metric_selector: &'a MetricSelector,
}

/// What a request needs matched, shared by custom and resource queries.
struct Target<'a> {
    resource: &'a GroupResource,
    namespace: Option<&'a str>,
    objects: Objects<'a>,
    /// Extra group-by labels after the resource label.
    extra_group_by: Vec<String>,
}

fn build_for(
    resources: &crate::naming::ResourceMapper,
    template: &crate::template::Template,
    series: &str,
    target: &Target<'_>,
    selector: &MetricSelector,
    options: QueryOptions,
) -> Result<BuiltQuery, QueryError> {
    let names = match target.objects {
        Objects::Named([]) => return Err(QueryError::NoObjects),
        Objects::Named(n) => Some(n),
        Objects::All => None,
    };
    let resource_label = resources.label_for(target.resource)?;
    let namespace_label = match target.namespace {
        Some(ns) if !ns.is_empty() => {
            Some((resources.label_for(&GroupResource::namespaces())?, ns))
        }
        _ => None,
    };
    let mut group_by = vec![resource_label.clone()];
    group_by.extend(target.extra_group_by.iter().cloned());
    let render = |names: Option<&[String]>| -> Result<String, QueryError> {
        let mut m = Matchers::default();
        m.selector(selector)?;
        if let Some((label, ns)) = &namespace_label {
            m.eq(label, ns);
        }
        m.objects(&resource_label, names);
        let args = QueryArgs {
            series: series.to_owned(),
            label_matchers: m.exprs.join(","),
            values_by_name: m.values,
            group_by: group_by.clone(),
        };
        Ok(template.render_query(&args)?)
    };
    match names {
        Some(n) if n.len() > options.max_regex_names => match render(None) {
            Ok(promql) => Ok(BuiltQuery {
                promql,
                resource_label,
                keep: Some(n.iter().cloned().collect()),
            }),
            // The template needs the names themselves (outside a regex).
            Err(QueryError::Render(RenderError::AnyOutsideRegex(_))) => Ok(BuiltQuery {
                promql: render(Some(n))?,
                resource_label,
                keep: None,
            }),
            Err(e) => Err(e),
        },
        names => Ok(BuiltQuery {
            promql: render(names)?,
            resource_label,
            keep: None,
        }),
    }
}

/// Builds the query for a custom-metrics request.
///
/// # Errors
/// See [`QueryError`].
pub fn build_custom(
    rule: &Rule,
    request: &CustomRequest<'_>,
    options: QueryOptions,
) -> Result<BuiltQuery, QueryError> {
    build_for(
        &rule.resources,
        &rule.metrics_query,
        request.series,
        &Target {
            resource: request.resource,
            namespace: request.namespace,
            objects: request.objects,
            extra_group_by: Vec::new(),
        },
        request.metric_selector,
        options,
    )
}

/// Builds the query for an external-metrics request. The namespace is
/// matched only when the rule is namespaced (the default).
///
/// # Errors
/// See [`QueryError`].
pub fn build_external(
    rule: &Rule,
    series: &str,
    namespace: Option<&str>,
    metric_selector: &MetricSelector,
) -> Result<String, QueryError> {
    let mut m = Matchers::default();
    m.selector(metric_selector)?;
    if let Some(ns) = namespace.filter(|ns| rule.namespaced && !ns.is_empty()) {
        let label = rule.resources.label_for(&GroupResource::namespaces())?;
        m.eq(&label, ns);
    }
    // Upstream rewrites `.LabelValuesByName` (not the matchers) for
    // labels whose values Kubernetes cannot carry.
    let mut values = m.values;
    for v in values.values_mut() {
        if let LabelValues::Exact(list) = v {
            for item in list.iter_mut() {
                for (find, replace) in &rule.label_value_replacements {
                    *item = item.replace(find.as_str(), replace);
                }
            }
        }
    }
    let args = QueryArgs {
        series: series.to_owned(),
        label_matchers: m.exprs.join(","),
        values_by_name: values,
        group_by: Vec::new(),
    };
    Ok(rule.metrics_query.render_query(&args)?)
}

/// What a resource-metrics (`metrics.k8s.io`) request is for.
#[derive(Clone, Copy, Debug)]
pub enum ResourceTarget<'a> {
    /// Pods (grouped by pod and container, and by namespace when the
    /// request spans all namespaces).
    Pods {
        /// The namespace; `None` for all namespaces.
        namespace: Option<&'a str>,
        /// The pods.
        objects: Objects<'a>,
    },
    /// Nodes (grouped by node).
    Nodes {
        /// The nodes.
        objects: Objects<'a>,
    },
}

/// Builds the CPU or memory query of a `resourceRules` entry.
///
/// # Errors
/// See [`QueryError`].
pub fn build_resource(
    rule: &ResourceRule,
    target: ResourceTarget<'_>,
    options: QueryOptions,
) -> Result<BuiltQuery, QueryError> {
    let pods = GroupResource::pods();
    let nodes = GroupResource::nodes();
    let (template, t) = match target {
        ResourceTarget::Pods { namespace, objects } => {
            let mut extra = vec![rule.container_label.clone()];
            if namespace.is_none() {
                // Pods of the same name in different namespaces stay apart.
                extra.push(rule.resources.label_for(&GroupResource::namespaces())?);
            }
            (
                &rule.container_query,
                Target {
                    resource: &pods,
                    namespace,
                    objects,
                    extra_group_by: extra,
                },
            )
        }
        ResourceTarget::Nodes { objects } => (
            &rule.node_query,
            Target {
                resource: &nodes,
                namespace: None,
                objects,
                extra_group_by: Vec::new(),
            },
        ),
    };
    build_for(
        &rule.resources,
        template,
        "",
        &t,
        &MetricSelector::everything(),
        options,
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Config;
    use crate::promql::literal;
    use proptest::prelude::*;
    use rstest::rstest;
    use tailor_api::selector::Requirement;

    fn rule_with(query: &str, resources: &str) -> Rule {
        let text = format!(
            "rules:\n- seriesQuery: x\n  resources: {resources}\n  metricsQuery: '{}'\n",
            query.replace('\'', "''")
        );
        Config::from_yaml(&text, "t.yaml").unwrap().rules.remove(0)
    }

    fn external_with(query: &str, resources: &str) -> Rule {
        let text = format!(
            "externalRules:\n- seriesQuery: x\n  resources: {resources}\n  metricsQuery: '{}'\n  labelValueReplacements: [{{find: '_', replace: '#'}}]\n",
            query.replace('\'', "''")
        );
        Config::from_yaml(&text, "t.yaml")
            .unwrap()
            .external_rules
            .remove(0)
    }

    /// A rule whose resource label is the resource's singular name, like
    /// upstream's test mock (which used the resource name itself).
    fn plain(query: &str) -> Rule {
        rule_with(query, "{template: '<<.Resource>>'}")
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    fn sel(s: &str) -> MetricSelector {
        MetricSelector::parse(Some(s)).unwrap()
    }

    fn custom(
        rule: &Rule,
        series: &str,
        resource: &GroupResource,
        ns: Option<&str>,
        objects: Objects<'_>,
        s: &MetricSelector,
    ) -> Result<BuiltQuery, QueryError> {
        build_custom(
            rule,
            &CustomRequest {
                series,
                resource,
                namespace: ns,
                objects,
                metric_selector: s,
            },
            QueryOptions::default(),
        )
    }

    // Upstream's TestBuildSelector table, with `service` as the resource.
    #[rstest]
    #[case("series <<.Series>>", &["bar"], None, "", "series foo")]
    #[case("<<.LabelMatchers>>", &["bar", "baz"], None, "", "service=~\"bar|baz\"")]
    #[case("<<.LabelMatchers>>", &["bar"], None, "", "service=\"bar\"")]
    #[case("<<.LabelMatchers>>", &["bar"], None, "metric1=value1", "metric1=\"value1\",service=\"bar\"")]
    #[case("x=\"<<index .LabelValuesByName \"service\">>\"", &["bar"], None, "", "x=\"bar\"")]
    #[case("x=\"<<index .LabelValuesByName \"service\">>\"", &["bar", "baz"], None, "", "x=\"bar|baz\"")]
    #[case("x=\"<<index .LabelValuesByName \"namespace\">> <<index .LabelValuesByName \"service\">>\"", &["bar", "baz"], Some("default"), "", "x=\"default bar|baz\"")]
    #[case("<<.GroupBy>>", &["bar"], None, "", "service")]
    #[case("<<.GroupBySlice>>", &["bar"], None, "", "[service]")]
    #[case("sum(rate(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}[2m])) by (<<.GroupBy>>)", &["pod1", "pod2"], Some("somens"), "",
           "sum(rate(foo{namespace=\"somens\",service=~\"pod1|pod2\",container!=\"POD\"}[2m])) by (service)")]
    fn upstream_build_table(
        #[case] template: &str,
        #[case] objs: &[&str],
        #[case] ns: Option<&str>,
        #[case] selector: &str,
        #[case] want: &str,
    ) {
        let rule = plain(template);
        let n = names(objs);
        let q = custom(
            &rule,
            "foo",
            &GroupResource::new("", "services"),
            ns,
            Objects::Named(&n),
            &sel(selector),
        )
        .unwrap();
        assert_eq!(q.promql, want);
        assert_eq!(q.resource_label, "service");
        assert_eq!(q.keep, None);
    }

    // Upstream's TestBuildExternalSelector table (namespace label `namespace`).
    #[rstest]
    #[case("series <<.Series>>", None, "", "series foo")]
    #[case("<<.GroupBy>>x", None, "", "x")]
    #[case("<<.GroupBySlice>>", None, "", "[]")]
    #[case("<<.LabelMatchers>>", None, "foo=bar", "foo=\"bar\"")]
    #[case(
        "<<.LabelMatchers>>",
        Some("default"),
        "foo=bar",
        "foo=\"bar\",namespace=\"default\""
    )]
    #[case(
        "<<.LabelMatchers>>",
        None,
        "foo=bar,qux in (bar,baz)",
        "foo=\"bar\",qux=~\"bar|baz\""
    )]
    #[case(
        "x=~\"<<index .LabelValuesByName \"foo\">>\"",
        None,
        "foo in (bar,baz)",
        "x=~\"bar|baz\""
    )]
    #[case(
        "x=\"<<index .LabelValuesByName \"namespace\">>\"",
        Some("default"),
        "",
        "x=\"default\""
    )]
    #[case(
        "<<.LabelMatchers>>",
        None,
        "a!=b,c notin (d,e),f,!g",
        "a!=\"b\",c!~\"d|e\",f!=\"\",g=\"\""
    )]
    // labelValueReplacements apply to .LabelValuesByName only.
    #[case(
        "<<.LabelMatchers>> x=\"<<index .LabelValuesByName \"queue\">>\"",
        None,
        "queue=a_b",
        "queue=\"a_b\" x=\"a#b\""
    )]
    fn upstream_external_table(
        #[case] template: &str,
        #[case] ns: Option<&str>,
        #[case] selector: &str,
        #[case] want: &str,
    ) {
        let rule = external_with(template, "{overrides: {namespace: {resource: namespace}}}");
        assert_eq!(
            build_external(&rule, "foo", ns, &sel(selector)).unwrap(),
            want
        );
    }

    /// The config walkthrough's per-pod HTTP requests rule.
    pub(crate) const WALKTHROUGH: &str = "rules:\n- seriesQuery: 'http_requests_total{kubernetes_namespace!=\"\",kubernetes_pod_name!=\"\"}'\n  resources:\n    overrides:\n      kubernetes_namespace: {resource: \"namespace\"}\n      kubernetes_pod_name: {resource: \"pod\"}\n  name:\n    matches: \"^(.*)_total\"\n    as: \"${1}_per_second\"\n  metricsQuery: 'sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m])) by (<<.GroupBy>>)'\n";

    #[test]
    fn walkthrough_rule_renders_its_documented_query() {
        let c = Config::from_yaml(WALKTHROUGH, "walkthrough.yaml").unwrap();
        let pods = names(&["frontend-server-abcd-0123", "fronted-server-abcd-4567"]);
        let q = custom(
            &c.rules[0],
            "http_requests_total",
            &GroupResource::pods(),
            Some("production"),
            Objects::Named(&pods),
            &MetricSelector::everything(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum(rate(http_requests_total{kubernetes_namespace=\"production\",kubernetes_pod_name=~\"frontend-server-abcd-0123|fronted-server-abcd-4567\"}[2m])) by (kubernetes_pod_name)"
        );
        assert_eq!(q.resource_label, "kubernetes_pod_name");
        let ns = names(&["production"]);
        let q = custom(
            &c.rules[0],
            "http_requests_total",
            &GroupResource::namespaces(),
            None,
            Objects::Named(&ns),
            &MetricSelector::everything(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum(rate(http_requests_total{kubernetes_namespace=\"production\"}[2m])) by (kubernetes_namespace)"
        );
    }

    #[test]
    fn external_not_namespaced_ignores_the_namespace() {
        let rule = external_with(
            "sum(<<.Series>>{<<.LabelMatchers>>})",
            "{namespaced: false}",
        );
        assert_eq!(
            build_external(&rule, "queue_depth", Some("default"), &sel("topic=orders")).unwrap(),
            "sum(queue_depth{topic=\"orders\"})"
        );
    }

    #[test]
    fn many_names_never_become_a_giant_regex() {
        let rule = rule_with(
            "sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
            "{overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}",
        );
        let many: Vec<String> = (0..500).map(|i| format!("web-{i}")).collect();
        let q = custom(
            &rule,
            "http_requests",
            &GroupResource::pods(),
            Some("prod"),
            Objects::Named(&many),
            &MetricSelector::everything(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum(http_requests{namespace=\"prod\",pod!=\"\"}) by (pod)"
        );
        assert_eq!(q.keep.as_ref().map(BTreeSet::len), Some(500));
        let all = custom(
            &rule,
            "http_requests",
            &GroupResource::pods(),
            Some("prod"),
            Objects::All,
            &MetricSelector::everything(),
        )
        .unwrap();
        assert_eq!(all.promql, q.promql);
        assert_eq!(all.keep, None);
        let few = names(&["a.b", "c"]);
        let q = custom(
            &rule,
            "http_requests",
            &GroupResource::pods(),
            Some("prod"),
            Objects::Named(&few),
            &MetricSelector::everything(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum(http_requests{namespace=\"prod\",pod=~\"a\\\\.b|c\"}) by (pod)"
        );
        let none: Vec<String> = Vec::new();
        assert_eq!(
            custom(
                &rule,
                "x",
                &GroupResource::pods(),
                Some("prod"),
                Objects::Named(&none),
                &MetricSelector::everything()
            ),
            Err(QueryError::NoObjects)
        );
    }

    #[test]
    fn templates_that_need_names_outside_a_regex_get_them() {
        let rule = rule_with(
            "x{pod=\"<<index .LabelValuesByName \"pod\">>\"}",
            "{overrides: {pod: {resource: pod}}}",
        );
        let many: Vec<String> = (0..30).map(|i| format!("p{i}")).collect();
        let q = custom(
            &rule,
            "x",
            &GroupResource::pods(),
            None,
            Objects::Named(&many),
            &MetricSelector::everything(),
        )
        .unwrap();
        assert!(q.promql.starts_with("x{pod=\"p0|p1|"));
        assert_eq!(q.keep, None);
        assert!(matches!(
            custom(
                &rule,
                "x",
                &GroupResource::pods(),
                None,
                Objects::All,
                &MetricSelector::everything()
            ),
            Err(QueryError::Render(RenderError::AnyOutsideRegex(_)))
        ));
    }

    #[test]
    fn missing_labels_and_operators_are_errors() {
        let rule = rule_with("<<.LabelMatchers>>", "{overrides: {pod: {resource: pod}}}");
        let e = custom(
            &rule,
            "x",
            &GroupResource::pods(),
            Some("ns"),
            Objects::All,
            &MetricSelector::everything(),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            QueryError::Label(NamingError::NoLabelForResource(_))
        ));
        assert_eq!(e.status_code(), 500);
        // `>`/`<` never reach the builder: the selector refuses them (400).
        let gt = MetricSelector::from_requirements(vec![Requirement {
            key: "n".into(),
            operator: Operator::GreaterThan,
            values: vec!["1".into()],
        }]);
        assert!(gt.is_err());
    }

    #[test]
    fn resource_rules_group_by_container_and_node() {
        let c = Config::from_yaml(crate::config::tests::DEFAULT, "d.yaml").unwrap();
        let rr = c.resource_rules.unwrap();
        let pods = names(&["web-1", "web-2"]);
        let q = build_resource(
            &rr.memory,
            ResourceTarget::Pods {
                namespace: Some("prod"),
                objects: Objects::Named(&pods),
            },
            QueryOptions::default(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum by (pod,container) (\n  container_memory_working_set_bytes{namespace=\"prod\",pod=~\"web-1|web-2\",container!=\"\",pod!=\"\"}\n)\n"
        );
        let q = build_resource(
            &rr.cpu,
            ResourceTarget::Nodes {
                objects: Objects::All,
            },
            QueryOptions::default(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum by (node) (\n  irate(\n      node_cpu_usage_seconds_total{node!=\"\"}[4m]\n  )\n)\n"
        );
        assert_eq!(q.resource_label, "node");
    }

    #[test]
    fn pods_in_all_namespaces_group_by_namespace_too() {
        let c = Config::from_yaml(crate::config::tests::DEFAULT, "d.yaml").unwrap();
        let rr = c.resource_rules.unwrap();
        let q = build_resource(
            &rr.memory,
            ResourceTarget::Pods {
                namespace: None,
                objects: Objects::All,
            },
            QueryOptions::default(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum by (pod,container,namespace) (\n  container_memory_working_set_bytes{pod!=\"\",container!=\"\",pod!=\"\"}\n)\n"
        );
    }

    #[test]
    fn default_config_rules_render_like_upstream() {
        let c = Config::from_yaml(crate::config::tests::DEFAULT, "d.yaml").unwrap();
        let pod = names(&["web-0"]);
        let q = custom(
            &c.rules[0],
            "container_cpu_usage_seconds_total",
            &GroupResource::pods(),
            Some("default"),
            Objects::Named(&pod),
            &MetricSelector::everything(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum(rate(container_cpu_usage_seconds_total{namespace=\"default\",pod=\"web-0\",container!=\"POD\"}[5m])) by (pod)"
        );
        // Template rules: the namespace metric itself.
        let ns = names(&["default"]);
        let q = custom(
            &c.rules[3],
            "queue_length",
            &GroupResource::namespaces(),
            None,
            Objects::Named(&ns),
            &MetricSelector::everything(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum(queue_length{namespace=\"default\"}) by (namespace)"
        );
        let svc = names(&["api"]);
        let q = custom(
            &c.rules[4],
            "http_requests_total",
            &GroupResource::new("", "services"),
            Some("shop"),
            Objects::Named(&svc),
            &sel("verb=GET"),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum(rate(http_requests_total{verb=\"GET\",namespace=\"shop\",service=\"api\"}[5m])) by (service)"
        );
        let dep = names(&["web"]);
        let q = custom(
            &c.rules[3],
            "queue_length",
            &GroupResource::new("apps", "deployments"),
            Some("shop"),
            Objects::Named(&dep),
            &MetricSelector::everything(),
        )
        .unwrap();
        assert_eq!(
            q.promql,
            "sum(queue_length{namespace=\"shop\",deployment=\"web\"}) by (deployment)"
        );
    }

    const HOSTILE: &[&str] = &[
        "\"",
        "\\",
        "\\\"",
        "a\"} or vector(1) #",
        "\"} or vector(1) or x{a=\"",
        "a\nb",
        "a\r\n}",
        ".*",
        "a|b",
        "(?i)x",
        "$1",
        "'",
        "`",
        "\u{0}",
        "} or vector(1)",
        "x\\\"}[5m])) or vector(1) #",
    ];

    /// Every literal in the query, decoded.
    fn literals(q: &str) -> Vec<String> {
        literal::all(q).unwrap_or_else(|e| panic!("{q:?} does not lex: {e}"))
    }

    #[test]
    fn hostile_names_and_namespaces_stay_in_their_literals() {
        let rule = rule_with(
            "sum(<<.Series>>{<<.LabelMatchers>>,container!=\"POD\"}) by (<<.GroupBy>>)",
            "{overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}",
        );
        for h in HOSTILE {
            let one = vec![(*h).to_owned()];
            let q = custom(
                &rule,
                "m",
                &GroupResource::pods(),
                Some(h),
                Objects::Named(&one),
                &MetricSelector::everything(),
            )
            .unwrap();
            assert_eq!(literals(&q.promql), [*h, *h, "POD"], "{}", q.promql);
            // With the literals blanked, only the template's own text is left.
            let mut skeleton = q.promql.clone();
            for l in [*h, *h] {
                skeleton = skeleton.replacen(&promql::quote(l), "\"\"", 1);
            }
            assert_eq!(
                skeleton,
                "sum(m{namespace=\"\",pod=\"\",container!=\"POD\"}) by (pod)"
            );
            let two = vec![(*h).to_owned(), "ok".to_owned()];
            let q = custom(
                &rule,
                "m",
                &GroupResource::pods(),
                Some("ns"),
                Objects::Named(&two),
                &MetricSelector::everything(),
            )
            .unwrap();
            let lits = literals(&q.promql);
            assert_eq!(lits[1], format!("{}|ok", promql::regex_escape(h)));
            let re = regex::Regex::new(&format!("^(?:{})$", lits[1])).unwrap();
            assert!(re.is_match(h));
            assert!(!re.is_match("anything-else"));
        }
    }

    #[test]
    fn hostile_selector_values_stay_in_their_literals() {
        let rule = external_with(
            "sum(<<.Series>>{<<.LabelMatchers>>,q=~\"<<index .LabelValuesByName \"k\">>\",r='<<index .LabelValuesByName \"k\">>'})",
            "{namespaced: false}",
        );
        for h in HOSTILE {
            for op in [Operator::In, Operator::NotIn] {
                let s = MetricSelector::from_requirements(vec![Requirement {
                    key: "k".into(),
                    operator: op,
                    values: vec![(*h).to_owned()],
                }])
                .unwrap();
                let q = build_external(&rule, "m", None, &s).unwrap();
                let replaced = h.replace('_', "#");
                assert_eq!(
                    literals(&q),
                    [
                        h.to_string(),
                        promql::regex_escape(&replaced),
                        replaced.clone()
                    ],
                    "{q}"
                );
            }
        }
    }

    #[rstest]
    #[case("a\"b")]
    #[case("a b")]
    #[case("a}")]
    #[case("")]
    fn hostile_selector_keys_are_rejected(#[case] key: &str) {
        let e = MetricSelector::from_requirements(vec![Requirement {
            key: key.into(),
            operator: Operator::Exists,
            values: vec![],
        }]);
        assert!(e.is_err());
    }

    #[test]
    fn hostile_series_names_are_refused_outside_strings() {
        let rule = plain("sum(<<.Series>>{<<.LabelMatchers>>})");
        let one = names(&["x"]);
        for h in ["x{a=\"b\"} or vector(1)", "a b", "", "x)"] {
            let e = custom(
                &rule,
                h,
                &GroupResource::pods(),
                None,
                Objects::Named(&one),
                &MetricSelector::everything(),
            )
            .unwrap_err();
            assert!(
                matches!(e, QueryError::Render(RenderError::InvalidSeries(_))),
                "{h}: {e}"
            );
        }
    }

    proptest! {
        // Arbitrary names, namespaces and selector values read back intact
        // from the literals they were placed in.
        #[test]
        fn arbitrary_values_read_back(name in any::<String>(), ns in any::<String>(), value in any::<String>(), extra in any::<String>()) {
            let rule = rule_with(
                "sum(<<.Series>>{<<.LabelMatchers>>,x=\"<<index .LabelValuesByName \"k\">>\"}) by (<<.GroupBy>>)",
                "{overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}",
            );
            let s = MetricSelector::from_requirements(vec![Requirement { key: "k".into(), operator: Operator::In, values: vec![value.clone()] }])
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let objs = vec![name.clone()];
            let q = custom(&rule, "m", &GroupResource::pods(), Some(&ns), Objects::Named(&objs), &s)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let lits = literal::all(&q.promql).map_err(TestCaseError::fail)?;
            let want = if ns.is_empty() { vec![value.clone(), name.clone(), value.clone()] } else { vec![value.clone(), ns.clone(), name.clone(), value.clone()] };
            prop_assert_eq!(lits, want);
            // Outside the literals, the query is exactly the template's text.
            let objs2 = vec![name.clone(), extra.clone()];
            let q2 = custom(&rule, "m", &GroupResource::pods(), Some("n"), Objects::Named(&objs2), &MetricSelector::everything())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let lits2 = literal::all(&q2.promql).map_err(TestCaseError::fail)?;
            if name == extra {
                prop_assert_eq!(&lits2[1], &format!("{0}|{0}", promql::regex_escape(&name)));
            }
            let mut skeleton = q2.promql.clone();
            for l in &lits2 {
                skeleton = skeleton.replacen(&promql::quote(l), "\"\"", 1);
            }
            prop_assert_eq!(skeleton, "sum(m{namespace=\"\",pod=~\"\",x=\"\"}) by (pod)");
        }
    }
}
