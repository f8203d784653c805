//! Scenario files: what to simulate.
//!
//! A scenario names the workloads (from a trace or a synthetic generator), how
//! each is autoscaled (fixed requests and replicas, an HPA in the
//! `autoscaling/v2` shape, VPA-style recommendations with an update mode), the
//! node groups the cluster can grow (instance type, on-demand or spot, min/max,
//! price), how nodes are chosen (the expander chain), scaled down and
//! provisioned, and how spot capacity misbehaves. `docs/scenario.example.yaml`
//! is a commented example; the built-in scenario is that file.
//!
//! Parsing rejects unknown fields, and every error names the file, the line
//! (where it can be found) and the field.

use crate::duration::Duration;
use crate::synthetic::SyntheticKind;
use crate::trace::{AlibabaOptions, GoogleOptions, PlanetLabOptions, TraceFormat};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use tailor_core::policy::{ControlledValues, UpdateMode};
use tailor_core::quantity::{cpu_millis, memory_bytes};
use tailor_core::resources::{ResourceName, Resources};

/// The built-in scenario, run when no `--scenario` is given.
pub const BUILTIN_YAML: &str = include_str!("../../docs/scenario.example.yaml");

/// A scenario could not be used. Displays as `file:line: field: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {field}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ScenarioError {
    /// The scenario file.
    pub file: String,
    /// 1-based line of the offending field, where it could be located.
    pub line: Option<usize>,
    /// The field's path, e.g. `workloads[web].hpa.maxReplicas`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn default_seed() -> u64 {
    1
}
fn default_step() -> Duration {
    Duration(60)
}
fn default_expander() -> String {
    "least-waste".to_owned()
}
fn default_provisioning_delay() -> Duration {
    Duration(180)
}
fn default_one() -> u32 {
    1
}
fn default_max_pods() -> u32 {
    110
}

/// A whole scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// A short name, used in reports.
    pub name: String,
    /// Free text for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Seed for every random choice (synthetic workloads, spot events, random
    /// expander). Same seed and inputs → byte-identical outputs.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How long to simulate.
    pub duration: Duration,
    /// The virtual clock's step; the HPA and scheduler run once per step.
    #[serde(default = "default_step")]
    pub step: Duration,
    /// The workloads.
    pub workloads: Vec<WorkloadSpec>,
    /// The node groups the cluster may grow.
    pub node_groups: Vec<NodeGroupSpec>,
    /// A price catalog CSV (the `aws-ec2-us-east-1.csv` format) for node groups
    /// that give an instance type but no price or shape; relative to the
    /// scenario file.
    #[serde(default)]
    pub catalog: Option<PathBuf>,
    /// Expander chain, e.g. `priority,price,least-waste`.
    #[serde(default = "default_expander")]
    pub expander: String,
    /// Priority expander configuration: priority → regexes on group names
    /// (the upstream ConfigMap's `priorities` map).
    #[serde(default)]
    pub priorities: Option<BTreeMap<i32, Vec<String>>>,
    /// Scale-down rules.
    #[serde(default)]
    pub scale_down: ScaleDownSpec,
    /// Time from asking for a node to it being ready.
    #[serde(default = "default_provisioning_delay")]
    pub provisioning_delay: Duration,
    /// Spot interruptions and capacity outages.
    #[serde(default)]
    pub spot: SpotSpec,
    /// Alternative policies for `tailor-sim compare` (the scenario as written is
    /// always the first strategy, named `baseline`).
    #[serde(default)]
    pub strategies: Vec<StrategySpec>,
}

/// Where a workload's demand comes from, and how it is autoscaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Unique name.
    pub name: String,
    /// A generated demand shape (give this or `trace`).
    #[serde(default)]
    pub synthetic: Option<SyntheticSource>,
    /// Demand read from a trace file (give this or `synthetic`).
    #[serde(default)]
    pub trace: Option<TraceSource>,
    /// Requests per replica at the start (what pods are created with before any
    /// recommendation).
    pub requests: ResourceSpec,
    /// Limits per replica; none means unlimited (usage is bounded by the node).
    #[serde(default)]
    pub limits: Option<ResourceSpec>,
    /// Replicas when there is no HPA (the starting count when there is one).
    #[serde(default = "default_one")]
    pub replicas: u32,
    /// A HorizontalPodAutoscaler, as `autoscaling/v2` spells its spec.
    #[serde(default)]
    pub hpa: Option<HpaSpec>,
    /// VPA-style vertical scaling.
    #[serde(default)]
    pub vpa: Option<VpaSpec>,
    /// Pod priority; below the expendable cutoff (−10) pods never trigger a
    /// scale-up.
    #[serde(default)]
    pub priority: i32,
    /// Pods may run on spot nodes.
    #[serde(default)]
    pub interruption_tolerant: bool,
}

/// A synthetic demand source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SyntheticSource {
    /// The shape.
    pub kind: SyntheticKind,
    /// Peak total CPU, cores.
    pub peak_cores: f64,
    /// Baseline total memory, a quantity such as `6Gi`.
    pub base_memory: String,
}

/// A trace demand source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TraceSource {
    /// The file, relative to the scenario file (`.gz` is decompressed).
    pub path: PathBuf,
    /// Its format.
    pub format: TraceFormat,
    /// Which workload of a multi-workload file; single-VM formats need none.
    #[serde(default)]
    pub workload: Option<String>,
    /// Multiply demand by this (e.g. to model growth).
    #[serde(default)]
    pub scale: Option<f64>,
    /// PlanetLab conversion.
    #[serde(default)]
    pub planetlab: Option<PlanetLabOptions>,
    /// Alibaba 2018 conversion.
    #[serde(default)]
    pub alibaba: Option<AlibabaOptions>,
    /// Google 2019 conversion.
    #[serde(default)]
    pub google: Option<GoogleOptions>,
}

/// CPU and memory as Kubernetes quantities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// CPU, e.g. `500m` or `2`.
    pub cpu: String,
    /// Memory, e.g. `512Mi`.
    pub memory: String,
}

/// `autoscaling/v2` HorizontalPodAutoscalerSpec, without `scaleTargetRef` (the
/// workload is the target).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaSpec {
    /// Lower replica bound (default 1).
    #[serde(default = "default_one")]
    pub min_replicas: u32,
    /// Upper replica bound.
    pub max_replicas: u32,
    /// The metrics; the simulator has CPU and memory usage, so `Resource` and
    /// `ContainerResource` metrics are supported.
    pub metrics: Vec<HpaMetricSpec>,
    /// Scaling behaviour (upstream defaults when absent).
    #[serde(default)]
    pub behavior: Option<HpaBehaviorSpec>,
}

/// One HPA metric (`spec.metrics[]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaMetricSpec {
    /// `Resource` or `ContainerResource`.
    #[serde(rename = "type")]
    pub type_: String,
    /// For `type: Resource`.
    #[serde(default)]
    pub resource: Option<HpaResourceMetric>,
    /// For `type: ContainerResource` (the simulator's pods have one container).
    #[serde(default)]
    pub container_resource: Option<HpaResourceMetric>,
}

/// `resource:` / `containerResource:` of a metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaResourceMetric {
    /// `cpu` or `memory`.
    pub name: String,
    /// The container (ContainerResource only; ignored by the simulator).
    #[serde(default)]
    pub container: Option<String>,
    /// The target.
    pub target: HpaTarget,
}

/// A metric target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaTarget {
    /// `Utilization`, `AverageValue` or `Value`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Percent of requests (Utilization).
    #[serde(default)]
    pub average_utilization: Option<u32>,
    /// A quantity per pod (AverageValue).
    #[serde(default)]
    pub average_value: Option<String>,
    /// A quantity in total (Value).
    #[serde(default)]
    pub value: Option<String>,
}

/// `spec.behavior`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaBehaviorSpec {
    /// Scale-up rules.
    #[serde(default)]
    pub scale_up: Option<HpaScalingRules>,
    /// Scale-down rules.
    #[serde(default)]
    pub scale_down: Option<HpaScalingRules>,
}

/// `behavior.scaleUp` / `behavior.scaleDown`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaScalingRules {
    /// Stabilization window in seconds.
    #[serde(default)]
    pub stabilization_window_seconds: Option<u32>,
    /// `Max`, `Min` or `Disabled`.
    #[serde(default)]
    pub select_policy: Option<String>,
    /// The policies.
    #[serde(default)]
    pub policies: Option<Vec<HpaScalingPolicy>>,
    /// Tolerance for this direction (a fraction, e.g. 0.1).
    #[serde(default)]
    pub tolerance: Option<f64>,
}

/// One scaling policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaScalingPolicy {
    /// `Pods` or `Percent`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Pods or percent per period.
    pub value: u32,
    /// The period, seconds.
    pub period_seconds: u32,
}

/// VPA-style vertical scaling for a workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VpaSpec {
    /// `Off`, `Initial`, `Recreate`, `InPlaceOrRecreate` or `Auto`.
    pub update_mode: UpdateMode,
    /// Lower cap on recommendations.
    #[serde(default)]
    pub min_allowed: Option<PartialResourceSpec>,
    /// Upper cap on recommendations.
    #[serde(default)]
    pub max_allowed: Option<PartialResourceSpec>,
    /// Resources the VPA controls (default both).
    #[serde(default)]
    pub controlled_resources: Option<Vec<ResourceName>>,
    /// `RequestsAndLimits` (default) or `RequestsOnly`.
    #[serde(default)]
    pub controlled_values: Option<ControlledValues>,
    /// Fewest live replicas before the updater may disrupt (default 2).
    #[serde(default)]
    pub min_replicas: Option<u32>,
    /// Recommender settings; upstream defaults when absent.
    #[serde(default)]
    pub recommender: Option<RecommenderSettings>,
}

/// CPU and/or memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialResourceSpec {
    /// CPU quantity.
    #[serde(default)]
    pub cpu: Option<String>,
    /// Memory quantity.
    #[serde(default)]
    pub memory: Option<String>,
}

/// Recommender knobs a scenario may change (all optional; upstream defaults).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RecommenderSettings {
    /// CPU target percentile (default 0.9).
    #[serde(default)]
    pub target_cpu_percentile: Option<f64>,
    /// Memory target percentile (default 0.9).
    #[serde(default)]
    pub target_memory_percentile: Option<f64>,
    /// Safety margin fraction (default 0.15).
    #[serde(default)]
    pub safety_margin_fraction: Option<f64>,
    /// Histogram decay half-life (default 24h).
    #[serde(default)]
    pub half_life: Option<Duration>,
    /// Cost-aware CPU quantile: under-provisioning penalty in USD per core-hour
    /// short (off when absent).
    #[serde(default)]
    pub under_provisioning_penalty_usd_per_core_hour: Option<f64>,
}

/// On-demand or spot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityType {
    /// Billed at the list price, never interrupted.
    #[default]
    OnDemand,
    /// Cheaper, interruptible, sometimes unavailable.
    Spot,
}

/// A node group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeGroupSpec {
    /// Unique name.
    pub name: String,
    /// EC2 instance type (looked up in the catalog when shape or price is
    /// missing).
    pub instance_type: String,
    /// On-demand or spot.
    #[serde(default)]
    pub capacity_type: CapacityType,
    /// Fewest nodes.
    #[serde(default)]
    pub min_size: u32,
    /// Most nodes.
    pub max_size: u32,
    /// Nodes at the start (default `minSize`).
    #[serde(default)]
    pub initial_size: Option<u32>,
    /// USD per node-hour; from the catalog when absent (spot: on-demand price
    /// × (1 − `spotDiscount`)).
    #[serde(default)]
    pub price_per_hour: Option<f64>,
    /// Spot discount off the on-demand price when no spot price is given
    /// (default 0.6).
    #[serde(default)]
    pub spot_discount: Option<f64>,
    /// Node CPU capacity (from the catalog when absent).
    #[serde(default)]
    pub cpu: Option<String>,
    /// Node memory capacity (from the catalog when absent).
    #[serde(default)]
    pub memory: Option<String>,
    /// Reserved for the system (default 100m CPU, 600Mi memory).
    #[serde(default)]
    pub reserved: Option<ResourceSpec>,
    /// Pod limit per node (default 110).
    #[serde(default = "default_max_pods")]
    pub max_pods: u32,
}

/// Scale-down rules (Cluster Autoscaler's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ScaleDownSpec {
    /// Scale down at all.
    pub enabled: bool,
    /// A node whose requests are below this fraction of allocatable is unneeded.
    pub utilization_threshold: f64,
    /// How long a node must be unneeded before removal.
    pub unneeded_time: Duration,
    /// No scale-down this long after a scale-up.
    pub delay_after_add: Duration,
}

impl Default for ScaleDownSpec {
    fn default() -> Self {
        ScaleDownSpec {
            enabled: true,
            utilization_threshold: 0.5,
            unneeded_time: Duration(600),
            delay_after_add: Duration(600),
        }
    }
}

/// Spot behaviour, drawn from the scenario's seed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SpotSpec {
    /// Expected interruptions per spot node per day.
    #[serde(default)]
    pub interruptions_per_node_day: f64,
    /// Expected capacity outages (no new spot nodes) per day.
    #[serde(default)]
    pub outages_per_day: f64,
    /// How long a random outage lasts.
    #[serde(default)]
    pub outage_duration: Option<Duration>,
    /// Outages at fixed times, in addition to random ones.
    #[serde(default)]
    pub outages: Vec<OutageSpec>,
}

/// A fixed spot capacity outage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutageSpec {
    /// Start, from the simulation's start.
    pub start: Duration,
    /// Length.
    pub duration: Duration,
}

/// An alternative policy set for `compare`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StrategySpec {
    /// Unique name (not `baseline`).
    pub name: String,
    /// Expander chain override.
    #[serde(default)]
    pub expander: Option<String>,
    /// Per-workload overrides, by workload name or `*` for all.
    #[serde(default)]
    pub workloads: BTreeMap<String, WorkloadOverride>,
}

/// Fields a strategy may replace in a workload (each replaces the whole field).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadOverride {
    /// New starting requests.
    #[serde(default)]
    pub requests: Option<ResourceSpec>,
    /// New limits.
    #[serde(default)]
    pub limits: Option<ResourceSpec>,
    /// New fixed replicas.
    #[serde(default)]
    pub replicas: Option<u32>,
    /// New HPA (replaces any).
    #[serde(default)]
    pub hpa: Option<HpaSpec>,
    /// New VPA (replaces any).
    #[serde(default)]
    pub vpa: Option<VpaSpec>,
}

/// Finds the 1-based line where a list item `name: <name>` sits below a
/// top-level `section:` key, and optionally a `field:` key inside that item.
fn locate(text: &str, section: &str, name: &str, field: Option<&str>) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim_end() == format!("{section}:"))?;
    let is_name = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ").trim();
        t.strip_prefix("name:")
            .is_some_and(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == name)
    };
    let item = (start + 1..lines.len()).find(|&i| is_name(lines[i]))?;
    let Some(field) = field else {
        return Some(item + 1);
    };
    let key = format!("{field}:");
    (item..lines.len())
        .take_while(|&i| i == item || !lines[i].trim_start().starts_with("- name:"))
        .find(|&i| {
            lines[i]
                .trim_start()
                .trim_start_matches("- ")
                .starts_with(&key)
        })
        .map_or(Some(item + 1), |i| Some(i + 1))
}

/// Parses CPU and memory quantities of a `ResourceSpec`.
pub fn parse_resources(spec: &ResourceSpec) -> Result<Resources, String> {
    let cpu = cpu_millis(&spec.cpu).map_err(|e| format!("cpu: {e}"))?;
    let memory = memory_bytes(&spec.memory).map_err(|e| format!("memory: {e}"))?;
    if cpu < 0 || memory < 0 {
        return Err("amounts must not be negative".to_owned());
    }
    Ok(Resources::new(cpu, memory))
}

impl Scenario {
    /// Parses and validates a scenario. `file` names it in errors.
    pub fn from_yaml(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            // serde_yaml names the path (`workloads[0].hpa`) before the message.
            let message = e.to_string();
            let (field, message) = match message.split_once(": ") {
                Some((path, rest)) if !path.contains(' ') => (path.to_owned(), rest.to_owned()),
                _ => ("(document)".to_owned(), message),
            };
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            ScenarioError {
                file: file.to_owned(),
                line,
                field,
                message,
            }
        })?;
        scenario.validate(file, text)?;
        Ok(scenario)
    }

    /// The built-in scenario.
    pub fn builtin() -> Result<Scenario, ScenarioError> {
        Scenario::from_yaml("<built-in scenario>", BUILTIN_YAML)
    }

    /// Checks everything serde cannot: ranges, uniqueness, quantities,
    /// references between fields.
    #[allow(clippy::too_many_lines)] // one flat list of checks reads best
    pub fn validate(&self, file: &str, text: &str) -> Result<(), ScenarioError> {
        let err = |section: &str, name: Option<&str>, field: &str, message: String| {
            let line = name.and_then(|n| {
                locate(
                    text,
                    section,
                    n,
                    field.rsplit('.').next().filter(|f| !f.is_empty()),
                )
            });
            let path = match name {
                Some(n) => format!(
                    "{section}[{n}]{}{field}",
                    if field.is_empty() { "" } else { "." }
                ),
                None => field.to_owned(),
            };
            ScenarioError {
                file: file.to_owned(),
                line,
                field: path,
                message,
            }
        };
        if self.name.trim().is_empty() {
            return Err(err("", None, "name", "must not be empty".into()));
        }
        if self.duration.seconds() <= 0 {
            return Err(err("", None, "duration", "must be positive".into()));
        }
        if self.step.seconds() <= 0 || self.step.seconds() > self.duration.seconds() {
            return Err(err(
                "",
                None,
                "step",
                format!(
                    "must be positive and at most the duration ({})",
                    self.duration
                ),
            ));
        }
        if self.workloads.is_empty() {
            return Err(err(
                "",
                None,
                "workloads",
                "at least one workload is needed".into(),
            ));
        }
        let mut names = BTreeSet::new();
        for w in &self.workloads {
            let n = Some(w.name.as_str());
            let werr = |field: &str, message: String| err("workloads", n, field, message);
            if w.name.trim().is_empty() {
                return Err(err(
                    "",
                    None,
                    "workloads[].name",
                    "must not be empty".into(),
                ));
            }
            if !names.insert(w.name.as_str()) {
                return Err(werr("name", "appears twice".into()));
            }
            match (&w.synthetic, &w.trace) {
                (Some(_), Some(_)) => {
                    return Err(werr(
                        "trace",
                        "give `synthetic` or `trace`, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err(werr(
                        "synthetic",
                        "give a demand source: `synthetic` or `trace`".into(),
                    ));
                }
                (Some(s), None) => {
                    if !s.peak_cores.is_finite() || s.peak_cores <= 0.0 {
                        return Err(werr(
                            "peakCores",
                            format!("{} must be a positive number of cores", s.peak_cores),
                        ));
                    }
                    memory_bytes(&s.base_memory).map_err(|e| werr("baseMemory", e.to_string()))?;
                }
                (None, Some(t)) => {
                    if let Some(scale) = t.scale
                        && (!scale.is_finite() || scale <= 0.0)
                    {
                        return Err(werr("scale", format!("{scale} must be positive")));
                    }
                    if t.format == TraceFormat::Alibaba2018 && t.alibaba.is_none() {
                        return Err(werr(
                            "trace",
                            "the alibaba-2018 format needs `alibaba: {cpuCores, memoryBytes}`"
                                .into(),
                        ));
                    }
                    if t.format == TraceFormat::Google2019 && t.google.is_none() {
                        return Err(werr(
                            "trace",
                            "the google-2019 format needs `google: {coresPerUnit, bytesPerUnit}`"
                                .into(),
                        ));
                    }
                }
            }
            let requests = parse_resources(&w.requests).map_err(|m| werr("requests", m))?;
            if requests.cpu_millis <= 0 || requests.memory_bytes <= 0 {
                return Err(werr(
                    "requests",
                    "CPU and memory requests must be positive".into(),
                ));
            }
            if let Some(limits) = &w.limits {
                let limits = parse_resources(limits).map_err(|m| werr("limits", m))?;
                if !requests.fits_within(&limits) {
                    return Err(werr(
                        "limits",
                        "limits must be at least the requests".into(),
                    ));
                }
            }
            if w.hpa.is_none() && w.replicas == 0 {
                return Err(werr("replicas", "must be at least 1 without an HPA".into()));
            }
            if let Some(hpa) = &w.hpa {
                validate_hpa(hpa).map_err(|(f, m)| werr(&format!("hpa.{f}"), m))?;
            }
            if let Some(vpa) = &w.vpa {
                for (field, caps) in [
                    ("minAllowed", &vpa.min_allowed),
                    ("maxAllowed", &vpa.max_allowed),
                ] {
                    if let Some(caps) = caps {
                        if let Some(cpu) = &caps.cpu {
                            cpu_millis(cpu)
                                .map_err(|e| werr(&format!("vpa.{field}"), e.to_string()))?;
                        }
                        if let Some(mem) = &caps.memory {
                            memory_bytes(mem)
                                .map_err(|e| werr(&format!("vpa.{field}"), e.to_string()))?;
                        }
                    }
                }
                if let Some(r) = &vpa.recommender {
                    for (field, p) in [
                        ("targetCpuPercentile", r.target_cpu_percentile),
                        ("targetMemoryPercentile", r.target_memory_percentile),
                    ] {
                        if let Some(p) = p
                            && !(p > 0.0 && p <= 1.0)
                        {
                            return Err(werr(
                                &format!("vpa.recommender.{field}"),
                                format!("{p} must be in (0, 1]"),
                            ));
                        }
                    }
                    if let Some(m) = r.safety_margin_fraction
                        && !(0.0..=10.0).contains(&m)
                    {
                        return Err(werr(
                            "vpa.recommender.safetyMarginFraction",
                            format!("{m} must be in [0, 10]"),
                        ));
                    }
                    if let Some(p) = r.under_provisioning_penalty_usd_per_core_hour
                        && (!p.is_finite() || p <= 0.0)
                    {
                        return Err(werr(
                            "vpa.recommender.underProvisioningPenaltyUsdPerCoreHour",
                            format!("{p} must be positive"),
                        ));
                    }
                }
            }
        }
        if self.node_groups.is_empty() {
            return Err(err(
                "",
                None,
                "nodeGroups",
                "at least one node group is needed".into(),
            ));
        }
        let mut groups = BTreeSet::new();
        for g in &self.node_groups {
            let gerr = |field: &str, message: String| {
                err("nodeGroups", Some(g.name.as_str()), field, message)
            };
            if !groups.insert(g.name.as_str()) {
                return Err(gerr("name", "appears twice".into()));
            }
            if g.min_size > g.max_size || g.max_size == 0 {
                return Err(gerr(
                    "maxSize",
                    format!(
                        "need 0 < maxSize and minSize ≤ maxSize (got {}..{})",
                        g.min_size, g.max_size
                    ),
                ));
            }
            if let Some(initial) = g.initial_size
                && (initial < g.min_size || initial > g.max_size)
            {
                return Err(gerr(
                    "initialSize",
                    format!("{initial} is outside {}..{}", g.min_size, g.max_size),
                ));
            }
            if let Some(p) = g.price_per_hour
                && (!p.is_finite() || p < 0.0)
            {
                return Err(gerr(
                    "pricePerHour",
                    format!("{p} must be a non-negative number"),
                ));
            }
            if let Some(d) = g.spot_discount
                && !(0.0..1.0).contains(&d)
            {
                return Err(gerr("spotDiscount", format!("{d} must be in [0, 1)")));
            }
            if let Some(cpu) = &g.cpu {
                cpu_millis(cpu).map_err(|e| gerr("cpu", e.to_string()))?;
            }
            if let Some(mem) = &g.memory {
                memory_bytes(mem).map_err(|e| gerr("memory", e.to_string()))?;
            }
            if let Some(r) = &g.reserved {
                parse_resources(r).map_err(|m| gerr("reserved", m))?;
            }
            if g.max_pods == 0 {
                return Err(gerr("maxPods", "must be at least 1".into()));
            }
            let shape_known = g.cpu.is_some() && g.memory.is_some() && g.price_per_hour.is_some();
            if !shape_known && self.catalog.is_none() {
                return Err(gerr(
                    "instanceType",
                    "give cpu, memory and pricePerHour, or a top-level `catalog` to look them up"
                        .into(),
                ));
            }
        }
        let sd = &self.scale_down;
        if !(0.0..=1.0).contains(&sd.utilization_threshold) {
            return Err(err(
                "",
                None,
                "scaleDown.utilizationThreshold",
                format!("{} must be in [0, 1]", sd.utilization_threshold),
            ));
        }
        let spot = &self.spot;
        for (field, v) in [
            (
                "spot.interruptionsPerNodeDay",
                spot.interruptions_per_node_day,
            ),
            ("spot.outagesPerDay", spot.outages_per_day),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(err(
                    "",
                    None,
                    field,
                    format!("{v} must be a non-negative rate"),
                ));
            }
        }
        if spot.outages_per_day > 0.0 && spot.outage_duration.is_none_or(|d| d.seconds() <= 0) {
            return Err(err(
                "",
                None,
                "spot.outageDuration",
                "random outages need a positive outageDuration".into(),
            ));
        }
        let mut strategies = BTreeSet::from(["baseline"]);
        for s in &self.strategies {
            let serr = |field: &str, message: String| {
                err("strategies", Some(s.name.as_str()), field, message)
            };
            if !strategies.insert(s.name.as_str()) {
                return Err(serr(
                    "name",
                    "appears twice (or is `baseline`, the scenario as written)".into(),
                ));
            }
            for (target, o) in &s.workloads {
                if target != "*" && !names.contains(target.as_str()) {
                    return Err(serr(
                        &format!("workloads.{target}"),
                        "names no workload of this scenario".into(),
                    ));
                }
                if let Some(r) = &o.requests {
                    parse_resources(r)
                        .map_err(|m| serr(&format!("workloads.{target}.requests"), m))?;
                }
                if let Some(l) = &o.limits {
                    parse_resources(l)
                        .map_err(|m| serr(&format!("workloads.{target}.limits"), m))?;
                }
                if let Some(hpa) = &o.hpa {
                    validate_hpa(hpa)
                        .map_err(|(f, m)| serr(&format!("workloads.{target}.hpa.{f}"), m))?;
                }
            }
        }
        Ok(())
    }
}

/// Checks an HPA spec; errors give the field within the spec.
fn validate_hpa(hpa: &HpaSpec) -> Result<(), (String, String)> {
    if hpa.min_replicas == 0 || hpa.min_replicas > hpa.max_replicas {
        return Err((
            "maxReplicas".into(),
            format!(
                "need 1 ≤ minReplicas ≤ maxReplicas (got {} and {})",
                hpa.min_replicas, hpa.max_replicas
            ),
        ));
    }
    if hpa.metrics.is_empty() {
        return Err(("metrics".into(), "at least one metric is needed".into()));
    }
    for (i, m) in hpa.metrics.iter().enumerate() {
        let field = format!("metrics[{i}]");
        let resource = match m.type_.as_str() {
            "Resource" => m.resource.as_ref(),
            "ContainerResource" => m.container_resource.as_ref(),
            "Pods" | "Object" | "External" => {
                return Err((
                    format!("{field}.type"),
                    format!(
                        "{} metrics have no source in a simulation; use Resource or ContainerResource",
                        m.type_
                    ),
                ));
            }
            other => {
                return Err((format!("{field}.type"), format!("unknown metric type `{other}`")));
            }
        }
        .ok_or_else(|| {
            (
                field.clone(),
                format!("type {} needs its `{}` block", m.type_, if m.type_ == "Resource" { "resource" } else { "containerResource" }),
            )
        })?;
        if ResourceName::parse(&resource.name).is_none() {
            return Err((
                format!("{field}.name"),
                format!("`{}` is not cpu or memory", resource.name),
            ));
        }
        let t = &resource.target;
        match t.type_.as_str() {
            "Utilization" => {
                if t.average_utilization.is_none_or(|u| u == 0) {
                    return Err((
                        format!("{field}.target.averageUtilization"),
                        "Utilization targets need a positive averageUtilization".into(),
                    ));
                }
            }
            "AverageValue" => {
                let v = t.average_value.as_deref().ok_or_else(|| {
                    (
                        format!("{field}.target.averageValue"),
                        "AverageValue targets need averageValue".to_owned(),
                    )
                })?;
                tailor_core::quantity::Quantity::parse(v)
                    .map_err(|e| (format!("{field}.target.averageValue"), e.to_string()))?;
            }
            "Value" => {
                let v = t.value.as_deref().ok_or_else(|| {
                    (
                        format!("{field}.target.value"),
                        "Value targets need value".to_owned(),
                    )
                })?;
                tailor_core::quantity::Quantity::parse(v)
                    .map_err(|e| (format!("{field}.target.value"), e.to_string()))?;
            }
            other => {
                return Err((
                    format!("{field}.target.type"),
                    format!("unknown target type `{other}`"),
                ));
            }
        }
    }
    if let Some(b) = &hpa.behavior {
        for (dir, rules) in [("scaleUp", &b.scale_up), ("scaleDown", &b.scale_down)] {
            let Some(rules) = rules else { continue };
            if let Some(sp) = &rules.select_policy
                && !matches!(sp.as_str(), "Max" | "Min" | "Disabled")
            {
                return Err((
                    format!("behavior.{dir}.selectPolicy"),
                    format!("`{sp}` is not Max, Min or Disabled"),
                ));
            }
            if rules.stabilization_window_seconds.is_some_and(|w| w > 3600) {
                return Err((
                    format!("behavior.{dir}.stabilizationWindowSeconds"),
                    "must be at most 3600".into(),
                ));
            }
            for (i, p) in rules.policies.iter().flatten().enumerate() {
                if !matches!(p.type_.as_str(), "Pods" | "Percent") {
                    return Err((
                        format!("behavior.{dir}.policies[{i}].type"),
                        format!("`{}` is not Pods or Percent", p.type_),
                    ));
                }
                if p.value == 0 || p.period_seconds == 0 || p.period_seconds > 1800 {
                    return Err((
                        format!("behavior.{dir}.policies[{i}]"),
                        "value must be positive and periodSeconds in 1..=1800".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn builtin_scenario_parses() {
        let s = Scenario::builtin().unwrap();
        assert!(!s.workloads.is_empty());
        assert!(!s.node_groups.is_empty());
        assert!(s.duration.seconds() >= 86_400);
    }

    const SMALL: &str = "name: small
duration: 1d
step: 5m
workloads:
  - name: web
    synthetic: {kind: diurnal-web, peakCores: 4, baseMemory: 2Gi}
    requests: {cpu: 500m, memory: 1Gi}
    replicas: 2
nodeGroups:
  - name: od
    instanceType: m6i.xlarge
    maxSize: 10
    cpu: \"4\"
    memory: 16Gi
    pricePerHour: 0.192
";

    #[test]
    fn small_scenario_with_defaults() {
        let s = Scenario::from_yaml("s.yaml", SMALL).unwrap();
        assert_eq!(s.step, Duration(300));
        assert_eq!(s.seed, 1);
        assert_eq!(s.expander, "least-waste");
        assert_eq!(s.node_groups[0].capacity_type, CapacityType::OnDemand);
        assert_eq!(s.node_groups[0].max_pods, 110);
        assert_eq!(s.provisioning_delay, Duration(180));
        assert!(s.scale_down.enabled);
    }

    #[rstest]
    #[case(
        "replicas: 2",
        "replicas: two",
        "s.yaml:8: workloads[0].replicas: invalid type: string \"two\", expected u32"
    )]
    #[case(
        "replicas: 2",
        "replica: 2",
        "s.yaml:8: workloads[0]: unknown field `replica`"
    )]
    #[case("cpu: 500m", "cpu: 5Zi", "s.yaml:7: workloads[web].requests: cpu: ")]
    #[case(
        "maxSize: 10",
        "maxSize: 0",
        "s.yaml:12: nodeGroups[od].maxSize: need 0 < maxSize"
    )]
    #[case(
        "step: 5m",
        "step: 5 minutes",
        "s.yaml:3: step: invalid duration `5 minutes`"
    )]
    #[case(
        "    pricePerHour: 0.192\n",
        "",
        "s.yaml:11: nodeGroups[od].instanceType: give cpu, memory and pricePerHour"
    )]
    #[case(
        "kind: diurnal-web",
        "kind: sawtooth",
        "s.yaml:6: workloads[0].synthetic.kind: unknown variant `sawtooth`"
    )]
    fn errors_name_file_line_and_field(
        #[case] from: &str,
        #[case] to: &str,
        #[case] expected: &str,
    ) {
        let text = SMALL.replacen(from, to, 1);
        let err = Scenario::from_yaml("s.yaml", &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "got: {err}");
    }

    #[test]
    fn hpa_validation() {
        let text = SMALL.to_string()
        .replace(
            "    replicas: 2\n",
            "    replicas: 2\n    hpa:\n      minReplicas: 3\n      maxReplicas: 2\n      metrics:\n        - type: Resource\n          resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}\n",
        );
        let err = Scenario::from_yaml("s.yaml", &text).unwrap_err();
        assert_eq!(err.field, "workloads[web].hpa.maxReplicas");
        assert_eq!(err.line, Some(11));
        let ok = text.replace("minReplicas: 3", "minReplicas: 1");
        Scenario::from_yaml("s.yaml", &ok).unwrap();
        let pods = ok.replace("type: Resource", "type: Pods");
        let err = Scenario::from_yaml("s.yaml", &pods).unwrap_err();
        assert_eq!(err.field, "workloads[web].hpa.metrics[0].type");
        assert!(err.message.contains("no source in a simulation"));
    }

    #[test]
    fn strategies_must_name_real_workloads() {
        let text = format!(
            "{SMALL}strategies:\n  - name: bigger\n    workloads:\n      api: {{replicas: 3}}\n"
        );
        let err = Scenario::from_yaml("s.yaml", &text).unwrap_err();
        assert_eq!(err.field, "strategies[bigger].workloads.api");
        let text = format!("{SMALL}strategies:\n  - name: baseline\n");
        let err = Scenario::from_yaml("s.yaml", &text).unwrap_err();
        assert_eq!(err.field, "strategies[baseline].name");
    }

    #[test]
    fn locate_finds_items_and_fields() {
        assert_eq!(locate(SMALL, "workloads", "web", None), Some(5));
        assert_eq!(locate(SMALL, "workloads", "web", Some("requests")), Some(7));
        assert_eq!(locate(SMALL, "nodeGroups", "od", Some("maxSize")), Some(12));
        assert_eq!(locate(SMALL, "nodeGroups", "nope", None), None);
    }
}
