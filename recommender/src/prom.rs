//! Input from Prometheus: container usage history (upstream's cAdvisor
//! queries), workload ownership, requests and HPAs from kube-state-metrics.
//!
//! Every label value placed into PromQL goes through [`escape_label_value`];
//! every configurable label name is checked by [`check_label_name`]. Queries
//! use the plain HTTP API (`/api/v1/query`, `/api/v1/query_range`) with a
//! per-query timeout, so an unreachable or slow Prometheus is an error that
//! names the URL rather than a hang.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;
use tailor_core::recommender::Timestamp;
use tailor_runtime::redact;

/// Upstream's cAdvisor job label value.
pub const DEFAULT_CADVISOR_JOB: &str = "kubernetes-cadvisor";
/// Upstream's CPU usage counter.
pub const DEFAULT_CPU_METRIC: &str = "container_cpu_usage_seconds_total";
/// Upstream's memory usage gauge.
pub const DEFAULT_MEMORY_METRIC: &str = "container_memory_working_set_bytes";
/// Upstream's `rate()` window, seconds.
pub const DEFAULT_RATE_WINDOW_SECS: i64 = 3600;
/// Upstream's history query step, seconds.
pub const DEFAULT_STEP_SECS: i64 = 3600;
/// Default per-query timeout.
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Prometheus refuses range queries of more than 11,000 points per series;
/// longer ranges are split into chunks of at most this many steps.
pub const MAX_POINTS_PER_QUERY: i64 = 10_000;
/// kube-state-metrics' value for "no owner".
const KSM_NONE: &str = "<none>";

/// Errors talking to Prometheus or reading its answers.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The server could not be reached (connection refused, DNS, TLS).
    #[error("Prometheus at {url} is unreachable: {source}")]
    Unreachable {
        /// The base URL used.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A query took longer than the timeout.
    #[error("query to Prometheus at {url} timed out after {timeout:?}: {query}")]
    Timeout {
        /// The base URL used.
        url: String,
        /// The timeout in force.
        timeout: Duration,
        /// The PromQL sent.
        query: String,
    },
    /// Prometheus answered with an error (bad query, overload, ...).
    #[error(
        "Prometheus at {url} rejected the query (HTTP {status}, {error_type}: {error}): {query}"
    )]
    Query {
        /// The base URL used.
        url: String,
        /// HTTP status.
        status: u16,
        /// Prometheus' `errorType`.
        error_type: String,
        /// Prometheus' `error`.
        error: String,
        /// The PromQL sent.
        query: String,
    },
    /// The answer was not the JSON the HTTP API documents.
    #[error("unexpected answer from Prometheus at {url} to {query}: {reason}")]
    BadResponse {
        /// The base URL used.
        url: String,
        /// The PromQL sent.
        query: String,
        /// What was wrong.
        reason: String,
    },
    /// The base URL does not parse.
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A configured label name is not a valid Prometheus label name.
    #[error("invalid label name {name:?} for {what}: must match [a-zA-Z_][a-zA-Z0-9_]*")]
    InvalidLabelName {
        /// Which setting held it.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// A configured metric name is not a valid Prometheus metric name.
    #[error("invalid metric name {name:?} for {what}: must match [a-zA-Z_:][a-zA-Z0-9_:]*")]
    InvalidMetricName {
        /// Which setting held it.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// The `--selector` did not parse.
    #[error("invalid label selector {selector:?}: {reason}")]
    InvalidSelector {
        /// The selector given.
        selector: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl PromError {
    /// A stable label for metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            PromError::Unreachable { .. } => "unreachable",
            PromError::Timeout { .. } => "timeout",
            PromError::Query { .. } => "query",
            PromError::BadResponse { .. } => "bad_response",
            PromError::InvalidUrl { .. } => "invalid_url",
            PromError::InvalidLabelName { .. } => "invalid_label_name",
            PromError::InvalidMetricName { .. } => "invalid_metric_name",
            PromError::InvalidSelector { .. } => "invalid_selector",
        }
    }
}

/// Escapes a string for a double-quoted PromQL label value: backslash,
/// double quote, newline, carriage return and tab become escape sequences,
/// so no value can close the string or inject a matcher.
#[must_use]
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// `name="value"` with the value escaped.
#[must_use]
pub fn eq_matcher(name: &str, value: &str) -> String {
    format!("{name}=\"{}\"", escape_label_value(value))
}

/// Whether `name` is a valid Prometheus label name.
#[must_use]
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a configured label name; the error names the setting.
pub fn check_label_name(what: &'static str, name: &str) -> Result<(), PromError> {
    if is_valid_label_name(name) {
        Ok(())
    } else {
        Err(PromError::InvalidLabelName {
            what,
            name: name.to_owned(),
        })
    }
}

fn check_metric_name(what: &'static str, name: &str) -> Result<(), PromError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(PromError::InvalidMetricName {
            what,
            name: name.to_owned(),
        })
    }
}

/// One requirement of a Kubernetes equality-based label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelRequirement {
    /// The Kubernetes label key (`app`, `app.kubernetes.io/name`).
    pub key: String,
    /// The value compared with.
    pub value: String,
    /// `true` for `!=`.
    pub negated: bool,
}

/// Parses `k=v,k2==v2,k3!=v3` (equality-based selectors only).
pub fn parse_selector(selector: &str) -> Result<Vec<LabelRequirement>, PromError> {
    let bad = |reason: String| PromError::InvalidSelector {
        selector: selector.to_owned(),
        reason,
    };
    let mut out = Vec::new();
    for part in selector.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value, negated) = if let Some((k, v)) = part.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = part.split_once("==") {
            (k, v, false)
        } else if let Some((k, v)) = part.split_once('=') {
            (k, v, false)
        } else {
            return Err(bad(format!(
                "{part:?} is not key=value, key==value or key!=value (set-based selectors are not supported)"
            )));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(bad(format!("{part:?} has an empty key")));
        }
        out.push(LabelRequirement {
            key: key.to_owned(),
            value: value.trim().to_owned(),
            negated,
        });
    }
    if out.is_empty() {
        return Err(bad("no requirements".to_owned()));
    }
    Ok(out)
}

/// The kube-state-metrics label a pod label key becomes on `kube_pod_labels`:
/// `label_` + the key with every character outside `[a-zA-Z0-9_]` replaced by `_`.
#[must_use]
pub fn ksm_label_name(key: &str) -> String {
    let mut out = String::from("label_");
    out.extend(key.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

/// Label names and metric names of the cAdvisor series (all configurable,
/// defaults as upstream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesConfig {
    /// `job` label value of the cAdvisor scrape.
    pub cadvisor_job: String,
    /// Label holding the job (`job`).
    pub job_label: String,
    /// Label holding the namespace.
    pub namespace_label: String,
    /// Label holding the pod name.
    pub pod_label: String,
    /// Label holding the container name.
    pub container_label: String,
    /// CPU usage counter (seconds).
    pub cpu_metric: String,
    /// Memory usage gauge (bytes).
    pub memory_metric: String,
    /// `rate()` window for CPU, seconds.
    pub rate_window_secs: i64,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        SeriesConfig {
            cadvisor_job: DEFAULT_CADVISOR_JOB.to_owned(),
            job_label: "job".to_owned(),
            namespace_label: "namespace".to_owned(),
            pod_label: "pod".to_owned(),
            container_label: "container".to_owned(),
            cpu_metric: DEFAULT_CPU_METRIC.to_owned(),
            memory_metric: DEFAULT_MEMORY_METRIC.to_owned(),
            rate_window_secs: DEFAULT_RATE_WINDOW_SECS,
        }
    }
}

impl SeriesConfig {
    /// Checks every label and metric name.
    pub fn validate(&self) -> Result<(), PromError> {
        check_label_name("job label", &self.job_label)?;
        check_label_name("namespace label", &self.namespace_label)?;
        check_label_name("pod label", &self.pod_label)?;
        check_label_name("container label", &self.container_label)?;
        check_metric_name("CPU metric", &self.cpu_metric)?;
        check_metric_name("memory metric", &self.memory_metric)
    }

    /// Upstream's selector: `{job="…", pod=~".+", container!="POD", container!=""}`,
    /// plus the namespace when given.
    #[must_use]
    pub fn selector(&self, namespace: Option<&str>) -> String {
        let mut s = format!(
            "{{{}, {}=~\".+\", {c}!=\"POD\", {c}!=\"\"",
            eq_matcher(&self.job_label, &self.cadvisor_job),
            self.pod_label,
            c = self.container_label
        );
        if let Some(ns) = namespace {
            let _ = write!(s, ", {}", eq_matcher(&self.namespace_label, ns));
        }
        s.push('}');
        s
    }

    fn by_clause(&self) -> String {
        format!(
            "{}, {}, {}",
            self.namespace_label, self.pod_label, self.container_label
        )
    }

    /// CPU query: upstream's `rate(…[1h])`, summed per container so duplicate
    /// cAdvisor series (restarts, extra labels) do not collide.
    #[must_use]
    pub fn cpu_query(&self, namespace: Option<&str>) -> String {
        format!(
            "sum by ({}) (rate({}{}[{}s]))",
            self.by_clause(),
            self.cpu_metric,
            self.selector(namespace),
            self.rate_window_secs
        )
    }

    /// Memory query: upstream's working-set gauge, one series per container.
    #[must_use]
    pub fn memory_query(&self, namespace: Option<&str>) -> String {
        format!(
            "max by ({}) ({}{})",
            self.by_clause(),
            self.memory_metric,
            self.selector(namespace)
        )
    }
}

/// One container instance: namespace, pod and container name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerKey {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
}

/// A time series: its labels and `(unix seconds, value)` samples in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Labels, `__name__` included when Prometheus returns it.
    pub labels: BTreeMap<String, String>,
    /// Samples in time order; values may be NaN or infinite.
    pub samples: Vec<(Timestamp, f64)>,
}

/// Usage history per container instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// CPU usage, cores.
    pub cpu: BTreeMap<ContainerKey, Vec<(Timestamp, f64)>>,
    /// Memory working set, bytes.
    pub memory: BTreeMap<ContainerKey, Vec<(Timestamp, f64)>>,
}

impl History {
    /// Number of samples (CPU and memory).
    #[must_use]
    pub fn sample_count(&self) -> usize {
        self.cpu
            .values()
            .chain(self.memory.values())
            .map(Vec::len)
            .sum()
    }
}

/// A workload: the top-most well-known controller of a pod, or the pod itself.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadRef {
    /// Namespace.
    pub namespace: String,
    /// `Deployment`, `StatefulSet`, `DaemonSet`, `CronJob`, `Job`, `ReplicaSet`, `Pod`, ….
    pub kind: String,
    /// Name.
    pub name: String,
}

/// An owner reference as kube-state-metrics exports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Owner kind (`<none>` for none).
    pub kind: String,
    /// Owner name.
    pub name: String,
    /// Whether it is the controller reference.
    pub is_controller: bool,
}

/// Ownership edges from kube-state-metrics: pods, ReplicaSets and Jobs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Owners {
    /// (namespace, pod) → owners.
    pub pods: BTreeMap<(String, String), Vec<Owner>>,
    /// (namespace, replicaset) → owners.
    pub replica_sets: BTreeMap<(String, String), Vec<Owner>>,
    /// (namespace, job) → owners.
    pub jobs: BTreeMap<(String, String), Vec<Owner>>,
}

fn controller(owners: Option<&Vec<Owner>>) -> Option<&Owner> {
    let owners = owners?;
    owners
        .iter()
        .filter(|o| o.kind != KSM_NONE && !o.kind.is_empty() && !o.name.is_empty())
        .max_by_key(|o| o.is_controller)
}

impl Owners {
    /// The pod's workload: ReplicaSet → its Deployment (or the ReplicaSet when
    /// it has no owner), Job → its CronJob (or the Job), StatefulSet,
    /// DaemonSet and any other kind as is; a pod without owner is its own
    /// workload (kind `Pod`). The controller reference wins over others.
    #[must_use]
    pub fn resolve(&self, namespace: &str, pod: &str) -> WorkloadRef {
        let key = |name: &str| (namespace.to_owned(), name.to_owned());
        let make = |kind: &str, name: &str| WorkloadRef {
            namespace: namespace.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
        };
        let Some(owner) = controller(self.pods.get(&key(pod))) else {
            return make("Pod", pod);
        };
        let parent = match owner.kind.as_str() {
            "ReplicaSet" => controller(self.replica_sets.get(&key(&owner.name)))
                .filter(|o| o.kind == "Deployment"),
            "Job" => controller(self.jobs.get(&key(&owner.name))).filter(|o| o.kind == "CronJob"),
            _ => None,
        };
        match parent {
            Some(p) => make(&p.kind, &p.name),
            None => make(&owner.kind, &owner.name),
        }
    }
}

/// Requests of one container instance (from `kube_pod_container_resource_requests`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ContainerRequests {
    /// CPU request, millicores, if set.
    pub cpu_millis: Option<i64>,
    /// Memory request, bytes, if set.
    pub memory_bytes: Option<i64>,
}

/// A HorizontalPodAutoscaler scaling a workload on resource metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HpaInfo {
    /// HPA name.
    pub name: String,
    /// Resource metrics it scales on (`cpu`, `memory`), sorted.
    pub metrics: BTreeSet<String>,
}

/// What kube-state-metrics says about the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inventory {
    /// Ownership edges over the history window.
    pub owners: Owners,
    /// Last known requests of every container instance over the window
    /// (weights CPU samples of pods gone since).
    pub last_requests: BTreeMap<ContainerKey, ContainerRequests>,
    /// Requests of the containers running now (current cost, replicas).
    pub live_requests: BTreeMap<ContainerKey, ContainerRequests>,
    /// Pods allowed by `--selector` over the window (`None`: no selector).
    pub selected_pods: Option<BTreeSet<(String, String)>>,
    /// HPAs on CPU or memory, by target workload.
    pub hpas: BTreeMap<WorkloadRef, HpaInfo>,
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<ApiSeries>,
}

#[derive(Deserialize)]
struct ApiSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
    #[serde(default)]
    value: Option<(f64, String)>,
}

/// Parses a sample value as the HTTP API spells it (`"NaN"`, `"+Inf"`, ...).
fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

#[allow(clippy::cast_possible_truncation)] // Unix seconds fit i64
fn to_secs(t: f64) -> Timestamp {
    t.floor() as Timestamp
}

/// A Prometheus HTTP API client with a per-query timeout.
#[derive(Clone, Debug)]
pub struct PromClient {
    base: String,
    /// `base` as errors and logs show it (no credentials).
    shown: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl PromClient {
    /// A client for `url` (e.g. `http://prometheus:9090`); every query gives
    /// up after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, PromError> {
        // Kept as given: a path prefix and a query string survive into every
        // request (`tailor_runtime::url::join`).
        let base = url.to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PromError::InvalidUrl {
                url: redact::url(url),
                reason: "must start with http:// or https://".to_owned(),
            });
        }
        if let Err(e) = reqwest::Url::parse(&base) {
            return Err(PromError::InvalidUrl {
                url: redact::url(url),
                reason: e.to_string(),
            });
        }
        let shown = redact::url(base.trim_end_matches('/'));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| PromError::Unreachable {
                url: shown.clone(),
                source: e.without_url(),
            })?;
        Ok(PromClient {
            base,
            shown,
            http,
            timeout,
        })
    }

    /// The base URL as it may be shown: a user name, password or query
    /// string is hidden.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.shown
    }

    async fn call(
        &self,
        path: &str,
        query: &str,
        params: &[(&str, String)],
        want: &str,
    ) -> Result<Vec<ApiSeries>, PromError> {
        let mut form: Vec<(&str, String)> = vec![
            ("query", query.to_owned()),
            // Ask Prometheus to give up too, so it does not keep working.
            ("timeout", format!("{}ms", self.timeout.as_millis().max(1))),
        ];
        form.extend(params.iter().cloned());
        let url = tailor_runtime::url::join(&self.base, path);
        let response = self
            .http
            .post(&url)
            .form(&form)
            .send()
            .await
            .map_err(|e| self.transport_error(e, query))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, query))?;
        let bad = |reason: String| PromError::BadResponse {
            url: self.shown.clone(),
            query: query.to_owned(),
            reason,
        };
        let parsed: ApiResponse = serde_json::from_slice(&body).map_err(|e| {
            let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            bad(format!("HTTP {status}, not API JSON ({e}): {head:?}"))
        })?;
        if parsed.status != "success" {
            return Err(PromError::Query {
                url: self.shown.clone(),
                status: status.as_u16(),
                error_type: parsed.error_type.unwrap_or_default(),
                error: parsed.error.unwrap_or_default(),
                query: query.to_owned(),
            });
        }
        let data = parsed.data.ok_or_else(|| bad("no data".to_owned()))?;
        if data.result_type != want {
            return Err(bad(format!(
                "result type {:?}, expected {want:?}",
                data.result_type
            )));
        }
        Ok(data.result)
    }

    fn transport_error(&self, e: reqwest::Error, query: &str) -> PromError {
        if e.is_timeout() {
            PromError::Timeout {
                url: self.shown.clone(),
                timeout: self.timeout,
                query: query.to_owned(),
            }
        } else {
            // reqwest's message carries the request URL, credentials and all.
            PromError::Unreachable {
                url: self.shown.clone(),
                source: e.without_url(),
            }
        }
    }

    /// An instant query at `time` (Unix seconds).
    pub async fn query(&self, query: &str, time: Timestamp) -> Result<Vec<Series>, PromError> {
        let result = self
            .call(
                "/api/v1/query",
                query,
                &[("time", time.to_string())],
                "vector",
            )
            .await?;
        result
            .into_iter()
            .map(|s| {
                let (t, v) = s.value.ok_or_else(|| PromError::BadResponse {
                    url: self.shown.clone(),
                    query: query.to_owned(),
                    reason: "vector element without value".to_owned(),
                })?;
                let v = self.value(query, &v)?;
                Ok(Series {
                    labels: s.metric,
                    samples: vec![(to_secs(t), v)],
                })
            })
            .collect()
    }

    fn value(&self, query: &str, v: &str) -> Result<f64, PromError> {
        parse_value(v).ok_or_else(|| PromError::BadResponse {
            url: self.shown.clone(),
            query: query.to_owned(),
            reason: format!("sample value {v:?} is not a number"),
        })
    }

    /// A range query over `[start, end]` every `step` seconds, split into
    /// chunks Prometheus accepts; series are joined by their labels.
    pub async fn query_range(
        &self,
        query: &str,
        start: Timestamp,
        end: Timestamp,
        step: i64,
    ) -> Result<Vec<Series>, PromError> {
        let step = step.max(1);
        let mut joined: BTreeMap<BTreeMap<String, String>, Vec<(Timestamp, f64)>> = BTreeMap::new();
        let mut chunk_start = start;
        while chunk_start <= end {
            let chunk_end = end.min(chunk_start + (MAX_POINTS_PER_QUERY - 1) * step);
            let result = self
                .call(
                    "/api/v1/query_range",
                    query,
                    &[
                        ("start", chunk_start.to_string()),
                        ("end", chunk_end.to_string()),
                        ("step", step.to_string()),
                    ],
                    "matrix",
                )
                .await?;
            for s in result {
                let samples = joined.entry(s.metric).or_default();
                for (t, v) in s.values {
                    samples.push((to_secs(t), self.value(query, &v)?));
                }
            }
            chunk_start = chunk_end + step;
        }
        Ok(joined
            .into_iter()
            .map(|(labels, samples)| Series { labels, samples })
            .collect())
    }

    /// CPU (cores) and memory (bytes) history of every container over
    /// `[start, end]`, one sample per `step` seconds.
    pub async fn load_history(
        &self,
        config: &SeriesConfig,
        namespace: Option<&str>,
        start: Timestamp,
        end: Timestamp,
        step: i64,
    ) -> Result<History, PromError> {
        config.validate()?;
        let cpu = self
            .query_range(&config.cpu_query(namespace), start, end, step)
            .await?;
        let memory = self
            .query_range(&config.memory_query(namespace), start, end, step)
            .await?;
        Ok(History {
            cpu: by_container(config, cpu),
            memory: by_container(config, memory),
        })
    }

    /// Owners, requests, selected pods and HPAs from kube-state-metrics over
    /// `(end − window, end]`.
    pub async fn load_inventory(
        &self,
        namespace: Option<&str>,
        selector: Option<&[LabelRequirement]>,
        window_secs: i64,
        end: Timestamp,
    ) -> Result<Inventory, PromError> {
        let ns = namespace.map(|n| eq_matcher("namespace", n));
        let sel = |extra: &[String]| -> String {
            let mut parts: Vec<String> = ns.iter().cloned().collect();
            parts.extend(extra.iter().cloned());
            format!("{{{}}}", parts.join(", "))
        };
        let window = format!("{}s", window_secs.max(1));
        let owner_query = |metric: &str, object: &str| {
            format!(
                "max by (namespace, {object}, owner_kind, owner_name, owner_is_controller) (max_over_time({metric}{}[{window}]))",
                sel(&[])
            )
        };
        let mut owners = Owners::default();
        for (metric, object, map) in [
            ("kube_pod_owner", "pod", &mut owners.pods),
            (
                "kube_replicaset_owner",
                "replicaset",
                &mut owners.replica_sets,
            ),
            ("kube_job_owner", "job_name", &mut owners.jobs),
        ] {
            for s in self.query(&owner_query(metric, object), end).await? {
                let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                map.entry((get("namespace"), get(object)))
                    .or_default()
                    .push(Owner {
                        kind: get("owner_kind"),
                        name: get("owner_name"),
                        is_controller: get("owner_is_controller") == "true",
                    });
            }
        }
        let requests_selector = sel(&["resource=~\"cpu|memory\"".to_owned()]);
        let by = "namespace, pod, container, resource";
        let last = self
            .query(
                &format!(
                    "max by ({by}) (last_over_time(kube_pod_container_resource_requests{requests_selector}[{window}]))"
                ),
                end,
            )
            .await?;
        let live = self
            .query(
                &format!("max by ({by}) (kube_pod_container_resource_requests{requests_selector})"),
                end,
            )
            .await?;
        let selected_pods = match selector {
            None => None,
            Some(reqs) => {
                let mut matchers = Vec::new();
                for r in reqs {
                    let name = ksm_label_name(&r.key);
                    let op = if r.negated { "!=" } else { "=" };
                    matchers.push(format!("{name}{op}\"{}\"", escape_label_value(&r.value)));
                }
                let q = format!(
                    "max by (namespace, pod) (max_over_time(kube_pod_labels{}[{window}]))",
                    sel(&matchers)
                );
                let pods = self.query(&q, end).await?;
                Some(
                    pods.into_iter()
                        .map(|s| {
                            let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                            (get("namespace"), get("pod"))
                        })
                        .collect(),
                )
            }
        };
        let hpa_metrics = self
            .query(
                &format!(
                    "max by (namespace, horizontalpodautoscaler, metric_name) (kube_horizontalpodautoscaler_spec_target_metric{})",
                    sel(&["metric_name=~\"cpu|memory\"".to_owned()])
                ),
                end,
            )
            .await?;
        let hpa_info = self
            .query(
                &format!(
                    "max by (namespace, horizontalpodautoscaler, scaletargetref_kind, scaletargetref_name) (kube_horizontalpodautoscaler_info{})",
                    sel(&[])
                ),
                end,
            )
            .await?;
        Ok(Inventory {
            owners,
            last_requests: requests(last),
            live_requests: requests(live),
            selected_pods,
            hpas: hpas(&hpa_metrics, &hpa_info),
        })
    }
}

fn by_container(
    config: &SeriesConfig,
    series: Vec<Series>,
) -> BTreeMap<ContainerKey, Vec<(Timestamp, f64)>> {
    let mut out: BTreeMap<ContainerKey, Vec<(Timestamp, f64)>> = BTreeMap::new();
    for s in series {
        let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        let key = ContainerKey {
            namespace: get(&config.namespace_label),
            pod: get(&config.pod_label),
            container: get(&config.container_label),
        };
        out.entry(key).or_default().extend(s.samples);
    }
    for samples in out.values_mut() {
        samples.sort_by_key(|(t, _)| *t);
    }
    out
}

#[allow(clippy::cast_possible_truncation)] // clamped to the i64 range first
fn requests(series: Vec<Series>) -> BTreeMap<ContainerKey, ContainerRequests> {
    let mut out: BTreeMap<ContainerKey, ContainerRequests> = BTreeMap::new();
    for s in series {
        let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        let Some(&(_, v)) = s.samples.first() else {
            continue;
        };
        if !v.is_finite() || v < 0.0 {
            continue;
        }
        let entry = out
            .entry(ContainerKey {
                namespace: get("namespace"),
                pod: get("pod"),
                container: get("container"),
            })
            .or_default();
        // kube-state-metrics reports CPU in cores and memory in bytes.
        match get("resource").as_str() {
            "cpu" => entry.cpu_millis = Some((v * 1000.0).round().min(1e17) as i64),
            "memory" => entry.memory_bytes = Some(v.round().min(1e17) as i64),
            _ => {}
        }
    }
    out
}

fn hpas(metrics: &[Series], info: &[Series]) -> BTreeMap<WorkloadRef, HpaInfo> {
    let mut by_hpa: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for s in metrics {
        let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        by_hpa
            .entry((get("namespace"), get("horizontalpodautoscaler")))
            .or_default()
            .insert(get("metric_name"));
    }
    let mut out = BTreeMap::new();
    for s in info {
        let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
        let key = (get("namespace"), get("horizontalpodautoscaler"));
        if let Some(metrics) = by_hpa.get(&key) {
            out.insert(
                WorkloadRef {
                    namespace: key.0.clone(),
                    kind: get("scaletargetref_kind"),
                    name: get("scaletargetref_name"),
                },
                HpaInfo {
                    name: key.1,
                    metrics: metrics.clone(),
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[tokio::test]
    async fn errors_never_show_credentials() {
        // Port 1 on loopback refuses the connection: reqwest's own message
        // would carry the request URL.
        let client = PromClient::new(
            "http://alice:s3cret@127.0.0.1:1/?token=t0ken",
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(client.url(), "http://***@127.0.0.1:1/?***");
        let err = client.query("up", 0).await.unwrap_err();
        assert!(matches!(err, PromError::Unreachable { .. }), "{err:?}");
        let shown = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
        for secret in ["alice", "s3cret", "t0ken"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let err = PromClient::new(
            "ftp://alice:s3cret@prom?token=t0ken",
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid Prometheus URL \"ftp://***@prom?***\": must start with http:// or https://"
        );
    }

    #[rstest]
    #[case("web", "web")]
    #[case("a\"b", "a\\\"b")]
    #[case("a\\b", "a\\\\b")]
    #[case("x\ny", "x\\ny")]
    #[case("x\r\ty", "x\\r\\ty")]
    #[case("\"}) or vector(1) #", "\\\"}) or vector(1) #")]
    #[case("\\\"", "\\\\\\\"")]
    #[case("ünï", "ünï")]
    fn escapes_label_values(#[case] raw: &str, #[case] want: &str) {
        assert_eq!(escape_label_value(raw), want);
    }

    /// Undoes PromQL string escapes (the subset `escape_label_value` emits).
    fn unescape(s: &str) -> Option<String> {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(match chars.next()? {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    c @ ('\\' | '"') => c,
                    _ => return None,
                }),
                '"' => return None,
                c => out.push(c),
            }
        }
        Some(out)
    }

    proptest! {
        #[test]
        fn escaped_values_stay_one_string_and_round_trip(raw in ".*") {
            let escaped = escape_label_value(&raw);
            // No unescaped quote can end the string early.
            prop_assert_eq!(unescape(&escaped), Some(raw));
        }
    }

    #[test]
    fn hostile_namespace_stays_inside_its_matcher() {
        let ns = "x\", job=~\".*";
        let q = SeriesConfig::default().cpu_query(Some(ns));
        assert_eq!(
            q,
            "sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{job=\"kubernetes-cadvisor\", pod=~\".+\", container!=\"POD\", container!=\"\", namespace=\"x\\\", job=~\\\".*\"}[3600s]))"
        );
    }

    #[test]
    fn default_queries_match_upstream() {
        let c = SeriesConfig::default();
        assert_eq!(
            c.memory_query(None),
            "max by (namespace, pod, container) (container_memory_working_set_bytes{job=\"kubernetes-cadvisor\", pod=~\".+\", container!=\"POD\", container!=\"\"})"
        );
    }

    #[test]
    fn configured_label_names_are_used() {
        let c = SeriesConfig {
            pod_label: "pod_name".into(),
            container_label: "name".into(),
            cadvisor_job: "kubelet".into(),
            ..SeriesConfig::default()
        };
        assert!(c.validate().is_ok());
        assert_eq!(
            c.selector(None),
            "{job=\"kubelet\", pod_name=~\".+\", name!=\"POD\", name!=\"\"}"
        );
    }

    #[rstest]
    #[case("pod")]
    #[case("_x9")]
    fn valid_label_names(#[case] name: &str) {
        assert!(is_valid_label_name(name));
    }

    #[rstest]
    #[case("")]
    #[case("9pod")]
    #[case("pod\"")]
    #[case("po-d")]
    #[case("pod}or{")]
    fn invalid_label_names_are_rejected(#[case] name: &str) {
        let c = SeriesConfig {
            pod_label: name.into(),
            ..SeriesConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert!(matches!(
            err,
            PromError::InvalidLabelName {
                what: "pod label",
                ..
            }
        ));
        assert!(err.to_string().contains("pod label"));
    }

    #[rstest]
    #[case("app=web", &[("app", "web", false)])]
    #[case("app==web, tier!=db", &[("app", "web", false), ("tier", "db", true)])]
    #[case("app.kubernetes.io/name=x", &[("app.kubernetes.io/name", "x", false)])]
    #[case("a=", &[("a", "", false)])]
    fn parses_selectors(#[case] s: &str, #[case] want: &[(&str, &str, bool)]) {
        let got = parse_selector(s).unwrap();
        let want: Vec<LabelRequirement> = want
            .iter()
            .map(|(k, v, n)| LabelRequirement {
                key: (*k).into(),
                value: (*v).into(),
                negated: *n,
            })
            .collect();
        assert_eq!(got, want);
    }

    #[rstest]
    #[case("")]
    #[case("app in (a,b)")]
    #[case("=x")]
    fn rejects_bad_selectors(#[case] s: &str) {
        assert!(matches!(
            parse_selector(s),
            Err(PromError::InvalidSelector { .. })
        ));
    }

    #[rstest]
    #[case("app", "label_app")]
    #[case("app.kubernetes.io/name", "label_app_kubernetes_io_name")]
    fn ksm_label_names(#[case] key: &str, #[case] want: &str) {
        assert_eq!(ksm_label_name(key), want);
    }

    fn owner(kind: &str, name: &str, is_controller: bool) -> Owner {
        Owner {
            kind: kind.into(),
            name: name.into(),
            is_controller,
        }
    }

    fn fixture() -> Owners {
        let k = |n: &str| ("ns".to_owned(), n.to_owned());
        let mut o = Owners::default();
        o.pods
            .insert(k("web-abc-1"), vec![owner("ReplicaSet", "web-abc", true)]);
        o.pods.insert(
            k("orphan-rs-1"),
            vec![owner("ReplicaSet", "orphan-rs", true)],
        );
        o.pods
            .insert(k("db-0"), vec![owner("StatefulSet", "db", true)]);
        o.pods
            .insert(k("agent-x"), vec![owner("DaemonSet", "agent", true)]);
        o.pods
            .insert(k("batch-1-q"), vec![owner("Job", "batch-1", true)]);
        o.pods.insert(k("once-q"), vec![owner("Job", "once", true)]);
        o.pods
            .insert(k("bare"), vec![owner(KSM_NONE, KSM_NONE, false)]);
        o.pods.insert(
            k("two"),
            vec![
                owner("Foo", "not-controller", false),
                owner("Bar", "ctl", true),
            ],
        );
        o.pods
            .insert(k("rc-1"), vec![owner("ReplicationController", "rc", true)]);
        o.replica_sets
            .insert(k("web-abc"), vec![owner("Deployment", "web", true)]);
        o.replica_sets
            .insert(k("orphan-rs"), vec![owner(KSM_NONE, KSM_NONE, false)]);
        o.jobs
            .insert(k("batch-1"), vec![owner("CronJob", "batch", true)]);
        o
    }

    #[rstest]
    #[case("web-abc-1", "Deployment", "web")]
    #[case("orphan-rs-1", "ReplicaSet", "orphan-rs")]
    #[case("db-0", "StatefulSet", "db")]
    #[case("agent-x", "DaemonSet", "agent")]
    #[case("batch-1-q", "CronJob", "batch")]
    #[case("once-q", "Job", "once")]
    #[case("bare", "Pod", "bare")]
    #[case("unknown-pod", "Pod", "unknown-pod")]
    #[case("two", "Bar", "ctl")]
    #[case("rc-1", "ReplicationController", "rc")]
    fn resolves_owners(#[case] pod: &str, #[case] kind: &str, #[case] name: &str) {
        let w = fixture().resolve("ns", pod);
        assert_eq!(
            w,
            WorkloadRef {
                namespace: "ns".into(),
                kind: kind.into(),
                name: name.into()
            }
        );
    }

    #[test]
    fn owners_are_per_namespace() {
        assert_eq!(fixture().resolve("other", "web-abc-1").kind, "Pod");
    }

    #[rstest]
    #[case("1.5", Some(1.5))]
    #[case("NaN", None)]
    #[case("+Inf", Some(f64::INFINITY))]
    #[case("-Inf", Some(f64::NEG_INFINITY))]
    #[case("x", None)]
    fn parses_values(#[case] s: &str, #[case] want: Option<f64>) {
        match (parse_value(s), want) {
            (Some(got), Some(w)) => assert_eq!(got, w),
            (Some(got), None) => assert!(got.is_nan(), "{s} → {got}"),
            (None, None) => assert_eq!(s, "x"),
            (None, Some(w)) => panic!("{s} did not parse, want {w}"),
        }
    }

    #[test]
    fn requests_convert_units_and_skip_bad_values() {
        let s = |pod: &str, resource: &str, v: f64| Series {
            labels: [
                ("namespace", "ns"),
                ("pod", pod),
                ("container", "app"),
                ("resource", resource),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
            samples: vec![(0, v)],
        };
        let got = requests(vec![
            s("a", "cpu", 0.25),
            s("a", "memory", 268_435_456.0),
            s("b", "cpu", f64::NAN),
            s("b", "memory", -1.0),
        ]);
        let key = |pod: &str| ContainerKey {
            namespace: "ns".into(),
            pod: pod.into(),
            container: "app".into(),
        };
        assert_eq!(
            got.get(&key("a")),
            Some(&ContainerRequests {
                cpu_millis: Some(250),
                memory_bytes: Some(268_435_456)
            })
        );
        assert_eq!(got.get(&key("b")), None);
    }

    #[test]
    fn hpas_join_metrics_and_targets() {
        let s = |pairs: &[(&str, &str)]| Series {
            labels: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            samples: vec![(0, 1.0)],
        };
        let metrics = [
            s(&[
                ("namespace", "ns"),
                ("horizontalpodautoscaler", "h"),
                ("metric_name", "cpu"),
            ]),
            s(&[
                ("namespace", "ns"),
                ("horizontalpodautoscaler", "h"),
                ("metric_name", "memory"),
            ]),
        ];
        let info = [
            s(&[
                ("namespace", "ns"),
                ("horizontalpodautoscaler", "h"),
                ("scaletargetref_kind", "Deployment"),
                ("scaletargetref_name", "web"),
            ]),
            s(&[
                ("namespace", "ns"),
                ("horizontalpodautoscaler", "custom-only"),
                ("scaletargetref_kind", "Deployment"),
                ("scaletargetref_name", "api"),
            ]),
        ];
        let got = hpas(&metrics, &info);
        assert_eq!(got.len(), 1);
        let w = WorkloadRef {
            namespace: "ns".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        };
        assert_eq!(
            got[&w].metrics.iter().cloned().collect::<Vec<_>>(),
            vec!["cpu".to_owned(), "memory".to_owned()]
        );
    }

    #[rstest]
    #[case("localhost:9090")]
    #[case("ftp://x")]
    #[case("")]
    #[case("http://")]
    #[case("http://bad host:9090")]
    fn rejects_bad_urls(#[case] url: &str) {
        let err = PromClient::new(url, DEFAULT_QUERY_TIMEOUT).unwrap_err();
        assert!(matches!(err, PromError::InvalidUrl { .. }), "{err}");
        assert!(err.to_string().contains(url));
    }
}
