//! `metrics.k8s.io/v1beta1` from `resourceRules`: what `kubectl top` and
//! CPU/memory HPAs read, so metrics-server becomes optional.
//!
//! The shapes are metrics-server's: `NodeMetrics`/`PodMetrics` (and their
//! `…List`s) with `timestamp`, `window` (the config's `resourceRules.window`,
//! as prometheus-adapter reports it) and `usage`; CPU in nanocores printed as
//! Kubernetes prints a quantity of scale -9 (`329087452n`, `5m`), memory in
//! bytes as a binary quantity (`2748180Ki`). As in prometheus-adapter, a pod
//! or node is reported only when both its CPU and memory queries return it,
//! a container with only one of the two reports zero for the other, NaN and
//! negative samples count as zero, and the timestamp is the earliest sample's.
//!
//! The pure part (sample joining, quantities, bodies) is tested here; the
//! request path ([`pod_usage`], [`node_usage`]) runs both queries through
//! the value cache, so caching, coalescing and Prometheus-down behave as for
//! the custom metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use serde_json::{Value, json};
use tailor_core::quantity::{Format, Quantity};
use tokio::time::Instant;

use crate::api::{self, Status};
use crate::cache::Entry;
use crate::config::{ResourceRule, ResourceRules};
use crate::naming::GroupResource;
use crate::prom::Sample;
use crate::query::{self, BuiltQuery, Objects, ResourceTarget};
use crate::request::{self, RESOURCE_GROUP};
use crate::selector::parse_label_selector;
use crate::server::AppState;

const VERSION: &str = "v1beta1";

/// One container's usage, quantities already printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerUsage {
    /// The container name (the rule's `containerLabel`).
    pub name: String,
    /// CPU, e.g. `250m`, `329087452n`.
    pub cpu: String,
    /// Memory, e.g. `2748180Ki`.
    pub memory: String,
}

/// One pod's usage.
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    /// The namespace.
    pub namespace: String,
    /// The pod.
    pub name: String,
    /// The earliest sample time, Unix seconds.
    pub timestamp: f64,
    /// Containers, sorted by name.
    pub containers: Vec<ContainerUsage>,
}

/// One node's usage.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeUsage {
    /// The node.
    pub name: String,
    /// The earliest sample time, Unix seconds.
    pub timestamp: f64,
    /// CPU.
    pub cpu: String,
    /// Memory.
    pub memory: String,
}

/// NaN and negative samples count as zero, as prometheus-adapter has it.
fn clean(v: f64) -> f64 {
    if v.is_nan() || v < 0.0 { 0.0 } else { v }
}

/// CPU cores as metrics-server prints them: whole nanocores at scale -9,
/// in Kubernetes' canonical form (`0.25` → `250m`, `0.329087452` →
/// `329087452n`, `2` → `2`).
#[must_use]
pub fn cpu_quantity(cores: f64) -> String {
    // Saturating float → int, as metrics-server's uint64 → int64 keeps the
    // value in range; infinities land on the extremes.
    #[allow(clippy::cast_possible_truncation)]
    let nanos = (clean(cores) * 1e9) as i64;
    Quantity::parse(&format!("{nanos}n")).map_or_else(|_| "0".to_owned(), |q| q.to_string())
}

/// Memory bytes as metrics-server prints them: a whole number of bytes as a
/// binary quantity (`2814136320` → `2748180Ki`, `512` → `512`).
#[must_use]
pub fn memory_quantity(bytes: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let bytes = clean(bytes) as i64;
    Quantity::from_int(bytes, Format::BinarySI).to_string()
}

/// A duration as Go's `time.Duration.String()` prints it, which is how
/// `metav1.Duration` (the `window` field) is serialized: `5m0s`, `1h0m0s`,
/// `30s`, `1.5s`, `500ms`, `0s`.
#[must_use]
pub fn go_duration(d: std::time::Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    if nanos < 1_000_000_000 {
        // Below a second Go picks the largest unit that keeps a non-zero
        // integer part and prints the rest as a fraction.
        let (unit, per) = if nanos < 1_000 {
            ("ns", 1)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", fraction(nanos, per));
    }
    let secs_total = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = secs_total / 3600;
    let minutes = secs_total % 3600 / 60;
    let secs = secs_total % 60;
    let secs = fraction(
        u128::from(u64::try_from(secs).unwrap_or(0)) * 1_000_000_000 + sub,
        1_000_000_000,
    );
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / per` with the fraction's trailing zeros dropped (`1500, 1000` → `1.5`).
fn fraction(value: u128, per: u128) -> String {
    let whole = value / per;
    let rest = value % per;
    if rest == 0 {
        return whole.to_string();
    }
    let width = per.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The labels a resource rule's results are read by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleLabels {
    /// The label naming the object (pod or node).
    pub object: String,
    /// The namespace label.
    pub namespace: String,
    /// The container label.
    pub container: String,
}

impl RuleLabels {
    /// The labels of `rule` (validated at load, so they exist).
    ///
    /// # Errors
    /// A rule without a label for pods, nodes or namespaces.
    pub fn of(rule: &ResourceRule, object: &GroupResource) -> Result<Self, Status> {
        let label = |gr: &GroupResource| {
            rule.resources
                .label_for(gr)
                .map_err(|e| Status::new(500, e.to_string()))
        };
        Ok(RuleLabels {
            object: label(object)?,
            namespace: label(&GroupResource::namespaces())?,
            container: rule.container_label.clone(),
        })
    }
}

/// Which results to keep: the request's names (or the query's own
/// `keep` set) and, for a request in one namespace, that namespace.
#[derive(Clone, Copy, Debug)]
pub struct Filter<'a> {
    /// Keep only these object names; `None` keeps every object.
    pub names: Option<&'a BTreeSet<String>>,
}

impl Filter<'_> {
    fn keeps(&self, name: &str) -> bool {
        self.names.is_none_or(|n| n.contains(name))
    }
}

/// `(namespace, pod)` → container → (cpu, memory), with the earliest timestamp.
type PodSamples<'a> =
    BTreeMap<(&'a str, &'a str), (f64, BTreeMap<&'a str, (Option<f64>, Option<f64>)>)>;

/// Joins the CPU and memory results of a pod query into pods.
///
/// `namespace` is the request's (used when the results carry no namespace
/// label, as a one-namespace query need not group by it). A pod missing
/// from either result is left out, as prometheus-adapter does.
#[must_use]
pub fn pods_from_samples(
    cpu: (&[Sample], &RuleLabels),
    memory: (&[Sample], &RuleLabels),
    namespace: Option<&str>,
    filter: Filter<'_>,
) -> Vec<PodUsage> {
    let mut pods: PodSamples<'_> = BTreeMap::new();
    let mut seen_cpu: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut seen_mem: BTreeSet<(&str, &str)> = BTreeSet::new();
    for (is_cpu, (samples, labels)) in [(true, cpu), (false, memory)] {
        for s in samples {
            let Some(pod) = s.labels.get(&labels.object) else {
                continue;
            };
            if !filter.keeps(pod) {
                continue;
            }
            let ns = match namespace {
                Some(ns) => ns,
                None => match s.labels.get(&labels.namespace) {
                    Some(ns) => ns.as_str(),
                    None => continue,
                },
            };
            let container = s.labels.get(&labels.container).map_or("", String::as_str);
            let key = (ns, pod.as_str());
            if is_cpu {
                seen_cpu.insert(key);
            } else {
                seen_mem.insert(key);
            }
            let (ts, containers) = pods.entry(key).or_insert((f64::INFINITY, BTreeMap::new()));
            *ts = ts.min(s.timestamp);
            let slot = containers.entry(container).or_default();
            let v = clean(s.value);
            if is_cpu {
                slot.0 = Some(v);
            } else {
                slot.1 = Some(v);
            }
        }
    }
    pods.into_iter()
        .filter(|(k, _)| seen_cpu.contains(k) && seen_mem.contains(k))
        .map(|((ns, pod), (timestamp, containers))| PodUsage {
            namespace: ns.to_owned(),
            name: pod.to_owned(),
            timestamp,
            containers: containers
                .into_iter()
                .map(|(name, (cpu, mem))| ContainerUsage {
                    name: name.to_owned(),
                    cpu: cpu_quantity(cpu.unwrap_or(0.0)),
                    memory: memory_quantity(mem.unwrap_or(0.0)),
                })
                .collect(),
        })
        .collect()
}

/// Joins the CPU and memory results of a node query into nodes; a node
/// missing from either is left out. Several samples for one node (a query
/// that does not aggregate) use the first, as prometheus-adapter does.
#[must_use]
pub fn nodes_from_samples(
    cpu: (&[Sample], &str),
    memory: (&[Sample], &str),
    filter: Filter<'_>,
) -> Vec<NodeUsage> {
    fn first<'s>(
        samples: &'s [Sample],
        label: &str,
        filter: Filter<'_>,
    ) -> BTreeMap<String, &'s Sample> {
        let mut by_node: BTreeMap<String, &Sample> = BTreeMap::new();
        for s in samples {
            if let Some(n) = s.labels.get(label).filter(|n| filter.keeps(n)) {
                by_node.entry(n.clone()).or_insert(s);
            }
        }
        by_node
    }
    let cpu = first(cpu.0, cpu.1, filter);
    let mut memory = first(memory.0, memory.1, filter);
    cpu.into_iter()
        .filter_map(|(name, c)| {
            let m = memory.remove(&name)?;
            Some(NodeUsage {
                name,
                timestamp: c.timestamp.min(m.timestamp),
                cpu: cpu_quantity(c.value),
                memory: memory_quantity(m.value),
            })
        })
        .collect()
}

fn usage(cpu: &str, memory: &str) -> Value {
    json!({"cpu": cpu, "memory": memory})
}

/// A `NodeMetrics` object. `now` is the `creationTimestamp` (metrics-server
/// stamps the time of the answer).
#[must_use]
pub fn node_metrics(n: &NodeUsage, window: &str, now: &str) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{RESOURCE_GROUP}/{VERSION}"),
        "metadata": {"name": n.name, "creationTimestamp": now},
        "timestamp": api::rfc3339(n.timestamp),
        "window": window,
        "usage": usage(&n.cpu, &n.memory),
    })
}

/// A `PodMetrics` object.
#[must_use]
pub fn pod_metrics(p: &PodUsage, window: &str, now: &str) -> Value {
    let containers: Vec<Value> = p
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "usage": usage(&c.cpu, &c.memory)}))
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": format!("{RESOURCE_GROUP}/{VERSION}"),
        "metadata": {"name": p.name, "namespace": p.namespace, "creationTimestamp": now},
        "timestamp": api::rfc3339(p.timestamp),
        "window": window,
        "containers": containers,
    })
}

/// A `NodeMetricsList` or `PodMetricsList`.
#[must_use]
pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": kind,
        "apiVersion": format!("{RESOURCE_GROUP}/{VERSION}"),
        "metadata": {},
        "items": items,
    })
}

/// `/apis/metrics.k8s.io/v1beta1`: the `APIResourceList` metrics-server serves.
#[must_use]
pub fn resource_list() -> Bytes {
    let entry = |name: &str, namespaced: bool, kind: &str| {
        json!({
            "name": name,
            "singularName": "",
            "namespaced": namespaced,
            "kind": kind,
            "verbs": ["get", "list"],
        })
    };
    api::to_bytes(&json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{RESOURCE_GROUP}/{VERSION}"),
        "resources": [entry("nodes", false, "NodeMetrics"), entry("pods", true, "PodMetrics")],
    }))
}

/// The 404 metrics-server answers for an object it has no metrics for.
#[must_use]
pub fn not_found(resource: &str, name: &str) -> Status {
    Status::new(
        404,
        format!("{resource}.{RESOURCE_GROUP} {name:?} not found"),
    )
}

fn rules(state: &AppState) -> Result<&ResourceRules, Status> {
    state
        .registry
        .config()
        .resource_rules
        .as_ref()
        .ok_or_else(|| {
            Status::new(
                404,
                "metrics.k8s.io is not served: the config has no resourceRules",
            )
        })
}

/// Builds and runs a rule's query through the value cache; `None` when the
/// request selects no objects.
async fn run(
    state: &AppState,
    rule: &ResourceRule,
    target: ResourceTarget<'_>,
    what: &str,
) -> Result<Option<(BuiltQuery, Arc<Entry>)>, Status> {
    let built = match query::build_resource(rule, target, state.query_options) {
        Ok(b) => b,
        Err(query::QueryError::NoObjects) => return Ok(None),
        Err(e) => return Err(Status::new(e.status_code(), e.to_string())),
    };
    let entry = crate::server::fetch(state, &built.promql, what).await?;
    Ok(Some((built, entry)))
}

/// Pod usage for `objects` in `namespace` (all namespaces when `None`).
///
/// This is the seam for object selection: `objects` are the candidate pod
/// names — one for a get, [`Objects::All`] for a list without a
/// `labelSelector` (every pod Prometheus has), or the pods a selector picked
/// from the Kubernetes API.
///
/// # Errors
/// A `Status`: 404 without `resourceRules`, 503 Prometheus failing.
pub async fn pod_usage(
    state: &AppState,
    namespace: Option<&str>,
    objects: Objects<'_>,
) -> Result<Usage<PodUsage>, Status> {
    let rules = rules(state)?;
    let target = ResourceTarget::Pods { namespace, objects };
    let Some(both) = run_both(state, rules, target, "pods").await? else {
        return Ok(Usage::default());
    };
    let pods = GroupResource::pods();
    let names = names_to_keep(objects, &both.built);
    let items = pods_from_samples(
        (&both.cpu.samples, &RuleLabels::of(&rules.cpu, &pods)?),
        (&both.memory.samples, &RuleLabels::of(&rules.memory, &pods)?),
        namespace,
        Filter {
            names: names.as_ref(),
        },
    );
    Ok(both.usage(items))
}

/// The CPU and memory results of one request, and the CPU query (whose
/// `keep` set narrows both: the two rules share the request's objects).
struct Both {
    built: BuiltQuery,
    cpu: Arc<Entry>,
    memory: Arc<Entry>,
}

impl Both {
    fn usage<T>(&self, items: Vec<T>) -> Usage<T> {
        Usage {
            items,
            fetched: Some(self.cpu.fetched.min(self.memory.fetched)),
        }
    }
}

/// Runs the CPU and the memory query concurrently; `None` when the request
/// selects no objects.
async fn run_both(
    state: &AppState,
    rules: &ResourceRules,
    target: ResourceTarget<'_>,
    what: &str,
) -> Result<Option<Both>, Status> {
    let (cpu_what, memory_what) = (format!("{what} cpu"), format!("{what} memory"));
    let (cpu, memory) = tokio::join!(
        run(state, &rules.cpu, target, &cpu_what),
        run(state, &rules.memory, target, &memory_what)
    );
    Ok(match (cpu?, memory?) {
        (Some((built, cpu)), Some((_, memory))) => Some(Both { built, cpu, memory }),
        _ => None,
    })
}

/// Node usage for `objects` (see [`pod_usage`] for the seam).
///
/// # Errors
/// A `Status`: 404 without `resourceRules`, 503 Prometheus failing.
pub async fn node_usage(
    state: &AppState,
    objects: Objects<'_>,
) -> Result<Usage<NodeUsage>, Status> {
    let rules = rules(state)?;
    let target = ResourceTarget::Nodes { objects };
    let Some(both) = run_both(state, rules, target, "nodes").await? else {
        return Ok(Usage::default());
    };
    let nodes = GroupResource::nodes();
    let names = names_to_keep(objects, &both.built);
    let items = nodes_from_samples(
        (
            &both.cpu.samples,
            &RuleLabels::of(&rules.cpu, &nodes)?.object,
        ),
        (
            &both.memory.samples,
            &RuleLabels::of(&rules.memory, &nodes)?.object,
        ),
        Filter {
            names: names.as_ref(),
        },
    );
    Ok(both.usage(items))
}

/// Usage of some objects, and when the older of the two queries behind it
/// was answered (`None` when no query ran).
#[derive(Clone, Debug)]
pub struct Usage<T> {
    /// The objects, sorted.
    pub items: Vec<T>,
    /// When Prometheus answered.
    pub fetched: Option<Instant>,
}

impl<T> Default for Usage<T> {
    fn default() -> Self {
        Usage {
            items: Vec::new(),
            fetched: None,
        }
    }
}

/// The names a result is narrowed to: the query's `keep` set (many names),
/// else the requested names themselves (a template may select more).
fn names_to_keep(objects: Objects<'_>, built: &BuiltQuery) -> Option<BTreeSet<String>> {
    match objects {
        Objects::All => None,
        Objects::Named(n) => Some(
            built
                .keep
                .clone()
                .unwrap_or_else(|| n.iter().cloned().collect()),
        ),
    }
}

/// The window as the bodies print it.
#[must_use]
pub fn window(rules: &ResourceRules) -> String {
    go_duration(rules.window)
}

/// A `PodMetricsList` body.
#[must_use]
pub fn pods_body(pods: &[PodUsage], window: &str, now: &str) -> Value {
    list(
        "PodMetricsList",
        pods.iter().map(|p| pod_metrics(p, window, now)).collect(),
    )
}

/// A `NodeMetricsList` body.
#[must_use]
pub fn nodes_body(nodes: &[NodeUsage], window: &str, now: &str) -> Value {
    list(
        "NodeMetricsList",
        nodes.iter().map(|n| node_metrics(n, window, now)).collect(),
    )
}

fn now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    api::rfc3339(t)
}

/// The candidate objects of a list request: every object Prometheus has
/// without a `labelSelector`, the ones the Kubernetes API selects with one.
async fn candidates(
    state: &AppState,
    resource: &GroupResource,
    namespace: Option<&str>,
    query: &str,
) -> Result<Option<Vec<String>>, Status> {
    let params =
        request::parse_query(query).map_err(|e| Status::new(e.status_code(), e.to_string()))?;
    let selector = parse_label_selector(params.label_selector.as_deref())
        .map_err(|e| Status::new(400, e.to_string()))?;
    if selector == tailor_api::selector::Selector::everything() {
        return Ok(None);
    }
    let Some(lister) = &state.objects else {
        return Err(Status::new(
            400,
            format!(
                "labelSelector on {RESOURCE_GROUP} {resource} needs Kubernetes API access to find the matching objects; \
                 run the adapter with a kubeconfig or in-cluster, or leave out labelSelector"
            ),
        ));
    };
    let names = lister
        .names(resource, namespace, &selector)
        .await
        .map_err(|e| Status::new(e.status_code(), e.to_string()))?;
    Ok(Some(names))
}

/// `GET /apis/metrics.k8s.io/v1beta1/[namespaces/{ns}/]pods[/{name}]`: the
/// body and when the values behind it were fetched.
///
/// # Errors
/// A `Status`: 404 unknown pod or no `resourceRules`, 400 bad selector,
/// 503 Prometheus failing.
pub async fn get_pods(
    state: &AppState,
    query: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<(Value, Option<Instant>), Status> {
    let rules = rules(state)?;
    let window = window(rules);
    if let (Some(ns), Some(name)) = (namespace, name) {
        let one = [name.to_owned()];
        let pods = pod_usage(state, Some(ns), Objects::Named(&one)).await?;
        return pods
            .items
            .first()
            .map(|p| (pod_metrics(p, &window, &now()), pods.fetched))
            .ok_or_else(|| not_found("podmetrics", &format!("{ns}/{name}")));
    }
    let picked = candidates(state, &GroupResource::pods(), namespace, query).await?;
    let objects = picked.as_deref().map_or(Objects::All, Objects::Named);
    let pods = pod_usage(state, namespace, objects).await?;
    Ok((pods_body(&pods.items, &window, &now()), pods.fetched))
}

/// `GET /apis/metrics.k8s.io/v1beta1/nodes[/{name}]`.
///
/// # Errors
/// As [`get_pods`].
pub async fn get_nodes(
    state: &AppState,
    query: &str,
    name: Option<&str>,
) -> Result<(Value, Option<Instant>), Status> {
    let rules = rules(state)?;
    let window = window(rules);
    if let Some(name) = name {
        let one = [name.to_owned()];
        let nodes = node_usage(state, Objects::Named(&one)).await?;
        return nodes
            .items
            .first()
            .map(|n| (node_metrics(n, &window, &now()), nodes.fetched))
            .ok_or_else(|| not_found("nodemetrics", name));
    }
    let picked = candidates(state, &GroupResource::nodes(), None, query).await?;
    let objects = picked.as_deref().map_or(Objects::All, Objects::Named);
    let nodes = node_usage(state, objects).await?;
    Ok((nodes_body(&nodes.items, &window, &now()), nodes.fetched))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use std::time::Duration;

    #[rstest]
    #[case(0.25, "250m")]
    #[case(0.329_087_452, "329087452n")]
    #[case(2.0, "2")]
    #[case(0.0, "0")]
    #[case(-1.0, "0")]
    #[case(f64::NAN, "0")]
    #[case(0.000_001, "1u")]
    #[case(1.5, "1500m")]
    fn cpu_is_printed_in_nanocores_like_metrics_server(#[case] cores: f64, #[case] want: &str) {
        assert_eq!(cpu_quantity(cores), want);
    }

    #[rstest]
    #[case(2_814_136_320.0, "2748180Ki")]
    #[case(1_048_576.0, "1Mi")]
    #[case(512.0, "512")]
    #[case(1_000_000.0, "1000000")]
    #[case(0.0, "0")]
    #[case(-5.0, "0")]
    #[case(f64::NAN, "0")]
    #[case(1536.7, "1536")]
    fn memory_is_printed_as_binary_bytes(#[case] bytes: f64, #[case] want: &str) {
        assert_eq!(memory_quantity(bytes), want);
    }

    #[rstest]
    #[case(Duration::ZERO, "0s")]
    #[case(Duration::from_secs(300), "5m0s")]
    #[case(Duration::from_secs(3600), "1h0m0s")]
    #[case(Duration::from_secs(5400), "1h30m0s")]
    #[case(Duration::from_secs(30), "30s")]
    #[case(Duration::from_millis(1500), "1.5s")]
    #[case(Duration::from_millis(20_064), "20.064s")]
    #[case(Duration::from_millis(500), "500ms")]
    #[case(Duration::from_micros(1500), "1.5ms")]
    #[case(Duration::from_nanos(5), "5ns")]
    #[case(Duration::from_nanos(2500), "2.5µs")]
    #[case(Duration::from_secs(90_061), "25h1m1s")]
    fn windows_print_like_go_durations(#[case] d: Duration, #[case] want: &str) {
        assert_eq!(go_duration(d), want);
    }

    fn sample(labels: &[(&str, &str)], ts: f64, value: f64) -> Sample {
        Sample {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            timestamp: ts,
            value,
        }
    }

    fn labels(object: &str) -> RuleLabels {
        RuleLabels {
            object: object.into(),
            namespace: "namespace".into(),
            container: "container".into(),
        }
    }

    #[test]
    fn pods_join_cpu_and_memory_per_container() {
        let cpu = [
            sample(&[("pod", "web-0"), ("container", "app")], 100.0, 0.25),
            sample(&[("pod", "web-0"), ("container", "sidecar")], 99.0, 0.001),
            // Only CPU for this pod: left out.
            sample(&[("pod", "web-1"), ("container", "app")], 100.0, 1.0),
            // Another pod the filter drops.
            sample(&[("pod", "other"), ("container", "app")], 100.0, 1.0),
        ];
        let mem = [
            sample(
                &[("pod", "web-0"), ("container", "app")],
                101.0,
                1_048_576.0,
            ),
            // Memory only: CPU reported as zero.
            sample(&[("pod", "web-0"), ("container", "init")], 101.0, 4096.0),
            sample(&[("pod", "other"), ("container", "app")], 100.0, 1.0),
        ];
        let keep: BTreeSet<String> = ["web-0".to_owned(), "web-1".to_owned()].into();
        let pods = pods_from_samples(
            (&cpu, &labels("pod")),
            (&mem, &labels("pod")),
            Some("shop"),
            Filter { names: Some(&keep) },
        );
        assert_eq!(
            pods,
            [PodUsage {
                namespace: "shop".into(),
                name: "web-0".into(),
                timestamp: 99.0,
                containers: vec![
                    ContainerUsage {
                        name: "app".into(),
                        cpu: "250m".into(),
                        memory: "1Mi".into()
                    },
                    ContainerUsage {
                        name: "init".into(),
                        cpu: "0".into(),
                        memory: "4Ki".into()
                    },
                    ContainerUsage {
                        name: "sidecar".into(),
                        cpu: "1m".into(),
                        memory: "0".into()
                    },
                ],
            }]
        );
    }

    #[test]
    fn pods_in_all_namespaces_are_told_apart_by_namespace() {
        let s = |ns: &str, v: f64| {
            sample(
                &[("namespace", ns), ("pod", "web-0"), ("container", "c")],
                1.0,
                v,
            )
        };
        let cpu = [s("a", 1.0), s("b", 2.0), sample(&[("pod", "x")], 1.0, 1.0)];
        let mem = [
            s("a", 1024.0),
            s("b", 2048.0),
            sample(&[("pod", "x")], 1.0, 1.0),
        ];
        let pods = pods_from_samples(
            (&cpu, &labels("pod")),
            (&mem, &labels("pod")),
            None,
            Filter { names: None },
        );
        let got: Vec<_> = pods
            .iter()
            .map(|p| {
                (
                    p.namespace.as_str(),
                    p.containers[0].cpu.as_str(),
                    p.containers[0].memory.as_str(),
                )
            })
            .collect();
        assert_eq!(got, [("a", "1", "1Ki"), ("b", "2", "2Ki")]);
    }

    #[test]
    fn nodes_need_both_resources() {
        let cpu = [
            sample(&[("node", "n1")], 10.0, 1.5),
            sample(&[("node", "n2")], 10.0, 0.5),
            sample(&[("node", "n1")], 5.0, 99.0),
        ];
        let mem = [sample(&[("node", "n1")], 9.0, 2_814_136_320.0)];
        let nodes = nodes_from_samples((&cpu, "node"), (&mem, "node"), Filter { names: None });
        assert_eq!(
            nodes,
            [NodeUsage {
                name: "n1".into(),
                timestamp: 9.0,
                cpu: "1500m".into(),
                memory: "2748180Ki".into()
            }]
        );
    }

    #[test]
    fn bodies_have_metrics_servers_shape() {
        let node = NodeUsage {
            name: "n1".into(),
            timestamp: 0.0,
            cpu: "329087452n".into(),
            memory: "2748180Ki".into(),
        };
        assert_eq!(
            nodes_body(&[node], "5m0s", "1970-01-01T00:00:01Z"),
            json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
                   "items": [{"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                              "metadata": {"name": "n1", "creationTimestamp": "1970-01-01T00:00:01Z"},
                              "timestamp": "1970-01-01T00:00:00Z", "window": "5m0s",
                              "usage": {"cpu": "329087452n", "memory": "2748180Ki"}}]})
        );
        let pod = PodUsage {
            namespace: "shop".into(),
            name: "web-0".into(),
            timestamp: 60.0,
            containers: vec![ContainerUsage {
                name: "app".into(),
                cpu: "250m".into(),
                memory: "1Mi".into(),
            }],
        };
        assert_eq!(
            pod_metrics(&pod, "30s", "t"),
            json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                   "metadata": {"name": "web-0", "namespace": "shop", "creationTimestamp": "t"},
                   "timestamp": "1970-01-01T00:01:00Z", "window": "30s",
                   "containers": [{"name": "app", "usage": {"cpu": "250m", "memory": "1Mi"}}]})
        );
        let v: Value = serde_json::from_slice(&resource_list()).unwrap();
        assert_eq!(
            v,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metrics.k8s.io/v1beta1",
                   "resources": [
                       {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
                       {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]}]})
        );
        assert_eq!(
            not_found("podmetrics", "shop/web-9").message,
            "podmetrics.metrics.k8s.io \"shop/web-9\" not found"
        );
    }
}
