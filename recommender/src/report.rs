//! The one-shot report: history and inventory in, one row per (workload,
//! container) out, priced, in table, JSON, YAML or CSV.
//!
//! Samples go through [`ContainerState`] (one per container instance, i.e.
//! per pod) into one [`AggregateContainerState`] per (workload, container
//! name), and [`PodResourceRecommender::recommend`] turns each workload's
//! containers into a recommendation, exactly as the controller does for a
//! VPA that targets the workload.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use tailor_core::catalog::Rates;
use tailor_core::policy::{PartialResources, ResourcePolicy};
use tailor_core::quantity::{format_cpu_millis, format_memory_bytes};
use tailor_core::recommender::{
    AggregateContainerState, ContainerState, PodResourceRecommender, RecommenderError,
    RecommenderOptions, Timestamp,
};
use tailor_core::resources::Resources;

use crate::prom::{ContainerKey, History, Inventory, WorkloadRef};

/// Hours in the month used for monthly costs (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

/// Errors building the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The recommender options are invalid.
    #[error("invalid recommender options: {0}")]
    Options(#[from] RecommenderError),
    /// Serialising the output failed.
    #[error("cannot write the report as {format}: {reason}")]
    Output {
        /// The format.
        format: &'static str,
        /// Why.
        reason: String,
    },
}

/// Counts reported on stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Container instances (pods × containers) with history.
    pub container_instances: usize,
    /// CPU samples aggregated.
    pub cpu_samples: u64,
    /// Memory samples aggregated.
    pub memory_samples: u64,
    /// Samples skipped: NaN, infinite or negative.
    pub invalid_samples: u64,
    /// Samples dropped as duplicates or out of order.
    pub dropped_samples: u64,
    /// Container instances skipped because `--selector` excluded their pod.
    pub unselected_instances: usize,
    /// Workload containers running now but without usage history (no row).
    pub without_history: usize,
}

/// A pair of Kubernetes quantity strings; `None` when unset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QuantityPair {
    /// CPU quantity (`"250m"`).
    pub cpu: Option<String>,
    /// Memory quantity (`"256Mi"`).
    pub memory: Option<String>,
}

impl QuantityPair {
    fn from_partial(p: PartialResources) -> Self {
        QuantityPair {
            cpu: p.cpu_millis.map(format_cpu_millis),
            memory: p.memory_bytes.map(format_memory_bytes),
        }
    }
}

/// Monthly cost in USD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct MonthlyCost {
    /// What the current requests of the running replicas cost.
    pub current: f64,
    /// What the recommended target would cost for as many replicas.
    pub recommended: f64,
    /// `current − recommended` (negative: the workload is under-provisioned).
    pub savings: f64,
}

/// The workload a row belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WorkloadId {
    /// Kind (`Deployment`, `StatefulSet`, ..., `Pod` for bare pods).
    pub kind: String,
    /// Name.
    pub name: String,
}

/// An HPA scaling the workload on CPU or memory (it will fight a VPA).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HpaMark {
    /// HPA name.
    pub name: String,
    /// Resource metrics it scales on.
    pub metrics: Vec<String>,
}

/// One row: a container of a workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// Namespace.
    pub namespace: String,
    /// Workload.
    pub workload: WorkloadId,
    /// Container name.
    pub container: String,
    /// Pods of the workload running now.
    pub replicas: u32,
    /// Current requests (largest over the running replicas).
    pub requests: QuantityPair,
    /// Recommended requests.
    pub target: QuantityPair,
    /// Lower bound.
    pub lower_bound: QuantityPair,
    /// Upper bound.
    pub upper_bound: QuantityPair,
    /// Monthly cost now vs. recommended.
    #[serde(rename = "monthlyCostUSD")]
    pub monthly_cost_usd: MonthlyCost,
    /// HPA on CPU/memory targeting the workload, if any.
    pub hpa: Option<HpaMark>,
}

/// The whole report (the JSON and YAML document).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// One entry per (workload, container), sorted by namespace, kind, name, container.
    pub recommendations: Vec<Recommendation>,
}

/// Rounds dollars to cents so output is stable.
fn cents(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// The per-workload state the report (and the controller) keeps.
#[derive(Debug, Default)]
struct WorkloadState {
    containers: BTreeMap<String, AggregateContainerState>,
}

/// Builds the report from history and inventory; `start` is when the
/// history window opens (creation time of the aggregates).
pub fn build(
    history: &History,
    inventory: &Inventory,
    options: &RecommenderOptions,
    rates: Rates,
    start: Timestamp,
) -> Result<(Report, Stats), ReportError> {
    options.validate()?;
    let mut stats = Stats::default();
    let selected = |k: &ContainerKey| {
        inventory
            .selected_pods
            .as_ref()
            .is_none_or(|s| s.contains(&(k.namespace.clone(), k.pod.clone())))
    };
    let mut workloads: BTreeMap<WorkloadRef, WorkloadState> = BTreeMap::new();
    let mut instances: BTreeMap<&ContainerKey, ()> = BTreeMap::new();
    for k in history.cpu.keys().chain(history.memory.keys()) {
        instances.insert(k, ());
    }
    for key in instances.keys() {
        if !selected(key) {
            stats.unselected_instances += 1;
            continue;
        }
        stats.container_instances += 1;
        let workload = inventory.owners.resolve(&key.namespace, &key.pod);
        let aggregate = match workloads
            .entry(workload)
            .or_default()
            .containers
            .entry(key.container.clone())
        {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(AggregateContainerState::new(&options.aggregation, start)?)
            }
        };
        let req = inventory
            .last_requests
            .get(*key)
            .copied()
            .unwrap_or_default();
        let request = Resources::new(req.cpu_millis.unwrap_or(0), req.memory_bytes.unwrap_or(0));
        let mut state = ContainerState::new(request, &options.aggregation);
        for &(t, v) in history.cpu.get(*key).map_or(&[][..], Vec::as_slice) {
            match state.add_cpu_sample(aggregate, t, v) {
                Ok(true) => stats.cpu_samples += 1,
                Ok(false) => stats.dropped_samples += 1,
                Err(_) => stats.invalid_samples += 1,
            }
        }
        for &(t, v) in history.memory.get(*key).map_or(&[][..], Vec::as_slice) {
            match state.add_memory_sample(aggregate, t, v) {
                Ok(true) => stats.memory_samples += 1,
                Ok(false) => stats.dropped_samples += 1,
                Err(_) => stats.invalid_samples += 1,
            }
        }
    }

    // What runs now: replicas and current requests per workload container.
    struct Live {
        pods: std::collections::BTreeSet<String>,
        requests: BTreeMap<String, PartialResources>,
        hourly: BTreeMap<String, f64>,
    }
    let mut live: BTreeMap<WorkloadRef, Live> = BTreeMap::new();
    for (key, req) in &inventory.live_requests {
        if !selected(key) {
            continue;
        }
        let workload = inventory.owners.resolve(&key.namespace, &key.pod);
        let entry = live.entry(workload).or_insert_with(|| Live {
            pods: std::collections::BTreeSet::new(),
            requests: BTreeMap::new(),
            hourly: BTreeMap::new(),
        });
        entry.pods.insert(key.pod.clone());
        let r = entry.requests.entry(key.container.clone()).or_default();
        r.cpu_millis = max_opt(r.cpu_millis, req.cpu_millis);
        r.memory_bytes = max_opt(r.memory_bytes, req.memory_bytes);
        *entry.hourly.entry(key.container.clone()).or_default() += rates.price(Resources::new(
            req.cpu_millis.unwrap_or(0),
            req.memory_bytes.unwrap_or(0),
        ));
    }

    let recommender = PodResourceRecommender::new(&options.estimation);
    let policy = ResourcePolicy::default();
    let mut rows = Vec::new();
    for (workload, now_running) in &live {
        let empty = WorkloadState::default();
        let state = workloads.get(workload).unwrap_or(&empty);
        // Only containers running now count towards the per-pod minimum split.
        let containers: BTreeMap<String, AggregateContainerState> = state
            .containers
            .iter()
            .filter(|(name, _)| now_running.requests.contains_key(*name))
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect();
        let pod_rec = recommender.recommend(&policy, &containers);
        #[allow(clippy::cast_possible_truncation)] // pod counts fit u32
        let replicas = now_running.pods.len() as u32;
        for (container, requests) in &now_running.requests {
            let Some(rec) = pod_rec.for_container(container) else {
                stats.without_history += 1;
                continue;
            };
            let current =
                now_running.hourly.get(container).copied().unwrap_or(0.0) * HOURS_PER_MONTH;
            let target = Resources::new(
                rec.target.cpu_millis.unwrap_or(0),
                rec.target.memory_bytes.unwrap_or(0),
            );
            let recommended = rates.price(target) * f64::from(replicas) * HOURS_PER_MONTH;
            rows.push(Recommendation {
                namespace: workload.namespace.clone(),
                workload: WorkloadId {
                    kind: workload.kind.clone(),
                    name: workload.name.clone(),
                },
                container: container.clone(),
                replicas,
                requests: QuantityPair::from_partial(*requests),
                target: QuantityPair::from_partial(rec.target),
                lower_bound: QuantityPair::from_partial(rec.lower_bound),
                upper_bound: QuantityPair::from_partial(rec.upper_bound),
                monthly_cost_usd: MonthlyCost {
                    current: cents(current),
                    recommended: cents(recommended),
                    savings: cents(current) - cents(recommended),
                },
                hpa: inventory.hpas.get(workload).map(|h| HpaMark {
                    name: h.name.clone(),
                    metrics: h.metrics.iter().cloned().collect(),
                }),
            });
        }
    }
    for r in &mut rows {
        r.monthly_cost_usd.savings = cents(r.monthly_cost_usd.savings);
    }
    Ok((
        Report {
            recommendations: rows,
        },
        stats,
    ))
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns, at most 120 characters wide.
    Table,
    /// The documented JSON document.
    Json,
    /// The same document as YAML.
    Yaml,
    /// One row per container with flat columns.
    Csv,
}

/// Renders the report.
pub fn render(report: &Report, format: Format) -> Result<String, ReportError> {
    match format {
        Format::Table => Ok(table(report)),
        Format::Json => serde_json::to_string_pretty(report)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| ReportError::Output {
                format: "json",
                reason: e.to_string(),
            }),
        Format::Yaml => serde_yaml::to_string(report).map_err(|e| ReportError::Output {
            format: "yaml",
            reason: e.to_string(),
        }),
        Format::Csv => Ok(csv(report)),
    }
}

/// CSV header, in column order.
pub const CSV_HEADER: &str = "namespace,kind,name,container,replicas,request_cpu,request_memory,target_cpu,target_memory,lower_cpu,lower_memory,upper_cpu,upper_memory,monthly_cost_current_usd,monthly_cost_recommended_usd,monthly_savings_usd,hpa,hpa_metrics";

/// Quotes a CSV field when it holds a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn csv(report: &Report) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    for r in &report.recommendations {
        let fields = [
            r.namespace.clone(),
            r.workload.kind.clone(),
            r.workload.name.clone(),
            r.container.clone(),
            r.replicas.to_string(),
            opt(&r.requests.cpu),
            opt(&r.requests.memory),
            opt(&r.target.cpu),
            opt(&r.target.memory),
            opt(&r.lower_bound.cpu),
            opt(&r.lower_bound.memory),
            opt(&r.upper_bound.cpu),
            opt(&r.upper_bound.memory),
            format!("{:.2}", r.monthly_cost_usd.current),
            format!("{:.2}", r.monthly_cost_usd.recommended),
            format!("{:.2}", r.monthly_cost_usd.savings),
            r.hpa.as_ref().map(|h| h.name.clone()).unwrap_or_default(),
            r.hpa
                .as_ref()
                .map(|h| h.metrics.join(" "))
                .unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Short CPU for the table: `250m`, `1.5`, `12`.
fn short_cpu(millis: Option<i64>) -> String {
    match millis {
        None => "-".to_owned(),
        Some(m) if m < 1000 => format!("{m}m"),
        #[allow(clippy::cast_precision_loss)]
        Some(m) => {
            let cores = m as f64 / 1000.0;
            if m % 1000 == 0 {
                format!("{}", m / 1000)
            } else if cores < 10.0 {
                format!("{cores:.2}")
            } else {
                format!("{cores:.1}")
            }
        }
    }
}

/// Short memory for the table: `900Ki`, `256Mi`, `1.5Gi`.
#[allow(clippy::cast_precision_loss)]
fn short_mem(bytes: Option<i64>) -> String {
    const KI: f64 = 1024.0;
    match bytes {
        None => "-".to_owned(),
        Some(b) => {
            let b = b as f64;
            if b < 1000.0 * KI {
                format!("{:.0}Ki", b / KI)
            } else if b < 1000.0 * KI * KI {
                format!("{:.0}Mi", b / KI / KI)
            } else if b < 10.0 * KI * KI * KI {
                format!("{:.1}Gi", b / KI / KI / KI)
            } else if b < 1000.0 * KI * KI * KI {
                format!("{:.0}Gi", b / KI / KI / KI)
            } else {
                format!("{:.1}Ti", b / KI / KI / KI / KI)
            }
        }
    }
}

/// Cuts `s` to `width` characters, marking the cut with `…`.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

fn money(v: f64) -> String {
    if v.abs() >= 100_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.2}")
    }
}

/// Table widths: 120 columns with the single spaces between them.
const TABLE_WIDTHS: [usize; 11] = [28, 12, 6, 6, 10, 6, 6, 12, 8, 8, 8];

fn table(report: &Report) -> String {
    let pair = |lo: String, up: String| format!("{lo}-{up}");
    let mut rows: Vec<[String; 11]> = vec![[
        "WORKLOAD".into(),
        "CONTAINER".into(),
        "CPU".into(),
        "→CPU".into(),
        "CPU RANGE".into(),
        "MEM".into(),
        "→MEM".into(),
        "MEM RANGE".into(),
        "$/MO NOW".into(),
        "$/MO REC".into(),
        "$ SAVED".into(),
    ]];
    for r in &report.recommendations {
        let cpu = |q: &QuantityPair| {
            short_cpu(
                q.cpu
                    .as_deref()
                    .and_then(|s| tailor_core::quantity::cpu_millis(s).ok()),
            )
        };
        let mem = |q: &QuantityPair| {
            short_mem(
                q.memory
                    .as_deref()
                    .and_then(|s| tailor_core::quantity::memory_bytes(s).ok()),
            )
        };
        let mut workload = format!(
            "{}/{}/{}",
            r.namespace,
            kind_abbrev(&r.workload.kind),
            r.workload.name
        );
        if r.hpa.is_some() {
            // Marks an HPA on CPU/memory: the VPA and HPA would fight.
            workload.insert(0, '!');
        }
        rows.push([
            workload,
            r.container.clone(),
            cpu(&r.requests),
            cpu(&r.target),
            pair(cpu(&r.lower_bound), cpu(&r.upper_bound)),
            mem(&r.requests),
            mem(&r.target),
            pair(mem(&r.lower_bound), mem(&r.upper_bound)),
            money(r.monthly_cost_usd.current),
            money(r.monthly_cost_usd.recommended),
            money(r.monthly_cost_usd.savings),
        ]);
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(TABLE_WIDTHS).enumerate() {
            let cell = fit(cell, width);
            if i > 0 {
                line.push(' ');
            }
            // Text left, numbers right.
            if i < 2 {
                let _ = write!(line, "{cell:<width$}");
            } else {
                let _ = write!(line, "{cell:>width$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let (now, rec): (f64, f64) = report.recommendations.iter().fold((0.0, 0.0), |acc, r| {
        (
            acc.0 + r.monthly_cost_usd.current,
            acc.1 + r.monthly_cost_usd.recommended,
        )
    });
    let _ = writeln!(
        out,
        "{} containers; monthly cost now ${now:.2}, recommended ${rec:.2}, savings ${:.2}. ! = also scaled by an HPA on CPU/memory.",
        report.recommendations.len(),
        now - rec
    );
    out
}

fn kind_abbrev(kind: &str) -> &str {
    match kind {
        "Deployment" => "deploy",
        "StatefulSet" => "sts",
        "DaemonSet" => "ds",
        "ReplicaSet" => "rs",
        "CronJob" => "cronjob",
        "Job" => "job",
        "Pod" => "pod",
        "ReplicationController" => "rc",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prom::{ContainerRequests, HpaInfo, Owner};
    use rstest::rstest;

    fn sample_report() -> Report {
        Report {
            recommendations: vec![
                Recommendation {
                    namespace: "shop".into(),
                    workload: WorkloadId {
                        kind: "Deployment".into(),
                        name: "web".into(),
                    },
                    container: "app".into(),
                    replicas: 3,
                    requests: QuantityPair {
                        cpu: Some("1".into()),
                        memory: Some("1Gi".into()),
                    },
                    target: QuantityPair {
                        cpu: Some("250m".into()),
                        memory: Some("512Mi".into()),
                    },
                    lower_bound: QuantityPair {
                        cpu: Some("100m".into()),
                        memory: Some("256Mi".into()),
                    },
                    upper_bound: QuantityPair {
                        cpu: Some("1500m".into()),
                        memory: Some("2Gi".into()),
                    },
                    monthly_cost_usd: MonthlyCost {
                        current: 100.5,
                        recommended: 30.25,
                        savings: 70.25,
                    },
                    hpa: Some(HpaMark {
                        name: "web".into(),
                        metrics: vec!["cpu".into()],
                    }),
                },
                Recommendation {
                    namespace: "a-very-long-namespace-name".into(),
                    workload: WorkloadId {
                        kind: "StatefulSet".into(),
                        name: "database-with-a-long-name".into(),
                    },
                    container: "postgres,\"main\"".into(),
                    replicas: 1,
                    requests: QuantityPair {
                        cpu: None,
                        memory: Some("64Gi".into()),
                    },
                    target: QuantityPair {
                        cpu: Some("12345m".into()),
                        memory: Some("70000Mi".into()),
                    },
                    lower_bound: QuantityPair {
                        cpu: Some("25m".into()),
                        memory: Some("250Mi".into()),
                    },
                    upper_bound: QuantityPair {
                        cpu: Some("1000".into()),
                        memory: Some("1000Gi".into()),
                    },
                    monthly_cost_usd: MonthlyCost {
                        current: 1234567.0,
                        recommended: 2.0,
                        savings: 1234565.0,
                    },
                    hpa: None,
                },
            ],
        }
    }

    const GOLDEN_JSON: &str = r#"{
  "recommendations": [
    {
      "namespace": "shop",
      "workload": {
        "kind": "Deployment",
        "name": "web"
      },
      "container": "app",
      "replicas": 3,
      "requests": {
        "cpu": "1",
        "memory": "1Gi"
      },
      "target": {
        "cpu": "250m",
        "memory": "512Mi"
      },
      "lowerBound": {
        "cpu": "100m",
        "memory": "256Mi"
      },
      "upperBound": {
        "cpu": "1500m",
        "memory": "2Gi"
      },
      "monthlyCostUSD": {
        "current": 100.5,
        "recommended": 30.25,
        "savings": 70.25
      },
      "hpa": {
        "name": "web",
        "metrics": [
          "cpu"
        ]
      }
    }
  ]
}
"#;

    const GOLDEN_YAML: &str = r#"recommendations:
- namespace: shop
  workload:
    kind: Deployment
    name: web
  container: app
  replicas: 3
  requests:
    cpu: '1'
    memory: 1Gi
  target:
    cpu: 250m
    memory: 512Mi
  lowerBound:
    cpu: 100m
    memory: 256Mi
  upperBound:
    cpu: 1500m
    memory: 2Gi
  monthlyCostUSD:
    current: 100.5
    recommended: 30.25
    savings: 70.25
  hpa:
    name: web
    metrics:
    - cpu
"#;

    fn first_only() -> Report {
        let mut r = sample_report();
        r.recommendations.truncate(1);
        r
    }

    #[test]
    fn json_matches_golden() {
        assert_eq!(render(&first_only(), Format::Json).unwrap(), GOLDEN_JSON);
    }

    #[test]
    fn yaml_matches_golden_and_is_the_same_document() {
        let yaml = render(&first_only(), Format::Yaml).unwrap();
        assert_eq!(yaml, GOLDEN_YAML);
        let a: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
        let b: serde_json::Value = serde_json::from_str(GOLDEN_JSON).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn csv_matches_golden_and_quotes() {
        let got = render(&sample_report(), Format::Csv).unwrap();
        let want = format!(
            "{CSV_HEADER}\n\
shop,Deployment,web,app,3,1,1Gi,250m,512Mi,100m,256Mi,1500m,2Gi,100.50,30.25,70.25,web,cpu\n\
a-very-long-namespace-name,StatefulSet,database-with-a-long-name,\"postgres,\"\"main\"\"\",1,,64Gi,12345m,70000Mi,25m,250Mi,1000,1000Gi,1234567.00,2.00,1234565.00,,\n"
        );
        assert_eq!(got, want);
    }

    #[test]
    fn missing_request_is_null_in_json() {
        let json = render(&sample_report(), Format::Json).unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(v["recommendations"][1]["requests"]["cpu"].is_null());
        assert!(v["recommendations"][1]["hpa"].is_null());
    }

    #[test]
    fn table_fits_120_columns() {
        let t = render(&sample_report(), Format::Table).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        for l in &lines[..3] {
            assert!(l.chars().count() <= 120, "{} chars: {l}", l.chars().count());
        }
        assert!(lines[1].starts_with("!shop/deploy/web"), "{t}");
        assert!(lines[1].contains("250m"), "{t}");
        assert!(lines[1].contains("100m-1.50"), "{t}");
        assert!(lines[2].contains("250Mi-1.0Ti"), "{t}");
        assert!(lines[1].contains("512Mi"), "{t}");
        assert!(lines[2].contains('…'), "{t}");
        assert!(lines[2].contains("12.3"), "{t}");
        assert!(lines[2].contains("68Gi"), "{t}");
        assert!(lines[2].contains("1235k"), "{t}");
    }

    #[rstest]
    #[case(None, "-")]
    #[case(Some(25), "25m")]
    #[case(Some(1000), "1")]
    #[case(Some(1500), "1.50")]
    #[case(Some(12345), "12.3")]
    fn short_cpus(#[case] m: Option<i64>, #[case] want: &str) {
        assert_eq!(short_cpu(m), want);
    }

    #[rstest]
    #[case(Some(512 * 1024), "512Ki")]
    #[case(Some(256 * 1024 * 1024), "256Mi")]
    #[case(Some(3 * 1024 * 1024 * 1024 / 2), "1.5Gi")]
    #[case(Some(1023 * 1024 * 1024), "1.0Gi")]
    #[case(Some(70_000 * 1024 * 1024), "68Gi")]
    fn short_mems(#[case] b: Option<i64>, #[case] want: &str) {
        assert_eq!(short_mem(b), want);
    }

    fn key(pod: &str, container: &str) -> ContainerKey {
        ContainerKey {
            namespace: "ns".into(),
            pod: pod.into(),
            container: container.into(),
        }
    }

    #[test]
    fn build_groups_pods_by_workload_prices_and_counts_bad_samples() {
        let now = 10 * 86_400;
        let start = now - 8 * 86_400;
        let mut history = History::default();
        let cpu: Vec<(i64, f64)> = (0..192).map(|i| (start + i * 3600, 0.5)).collect();
        let mut cpu_bad = cpu.clone();
        cpu_bad.push((now, f64::NAN));
        cpu_bad.push((now + 1, -1.0));
        history.cpu.insert(key("web-1", "app"), cpu_bad);
        history.cpu.insert(key("web-2", "app"), cpu.clone());
        let mem: Vec<(i64, f64)> = (0..192).map(|i| (start + i * 3600, 1e9)).collect();
        history.memory.insert(key("web-1", "app"), mem.clone());
        history.memory.insert(key("web-2", "app"), mem);
        let mut inv = Inventory::default();
        for pod in ["web-1", "web-2"] {
            inv.owners.pods.insert(
                ("ns".into(), pod.into()),
                vec![Owner {
                    kind: "StatefulSet".into(),
                    name: "web".into(),
                    is_controller: true,
                }],
            );
            let r = ContainerRequests {
                cpu_millis: Some(1000),
                memory_bytes: Some(1 << 30),
            };
            inv.last_requests.insert(key(pod, "app"), r);
            inv.live_requests.insert(key(pod, "app"), r);
        }
        let w = WorkloadRef {
            namespace: "ns".into(),
            kind: "StatefulSet".into(),
            name: "web".into(),
        };
        inv.hpas.insert(
            w,
            HpaInfo {
                name: "h".into(),
                metrics: ["cpu".to_owned()].into_iter().collect(),
            },
        );
        let rates = Rates {
            usd_per_vcpu_hour: 0.04,
            usd_per_gib_hour: 0.005,
        };
        let (report, stats) =
            build(&history, &inv, &RecommenderOptions::default(), rates, start).unwrap();
        assert_eq!(stats.invalid_samples, 2);
        assert_eq!(stats.cpu_samples, 384);
        assert_eq!(stats.container_instances, 2);
        assert_eq!(report.recommendations.len(), 1);
        let r = &report.recommendations[0];
        assert_eq!(r.workload.kind, "StatefulSet");
        assert_eq!(r.replicas, 2);
        assert_eq!(r.requests.cpu.as_deref(), Some("1"));
        // Current: 2 pods × (1 core × 0.04 + 1 GiB × 0.005) × 730.
        assert!((r.monthly_cost_usd.current - 65.70).abs() < 1e-9);
        assert_eq!(r.hpa.as_ref().map(|h| h.name.as_str()), Some("h"));
        // Constant 0.5 cores: p90 is the end of 0.5's bucket, plus 15%.
        let target = tailor_core::quantity::cpu_millis(r.target.cpu.as_deref().unwrap()).unwrap();
        assert!((575..=610).contains(&target), "{target}");
    }

    #[test]
    fn selector_excludes_pods_and_missing_history_gives_no_row() {
        let mut history = History::default();
        history.cpu.insert(key("a", "app"), vec![(100, 0.1)]);
        let mut inv = Inventory::default();
        inv.live_requests
            .insert(key("a", "app"), ContainerRequests::default());
        inv.live_requests
            .insert(key("b", "app"), ContainerRequests::default());
        inv.selected_pods = Some([("ns".to_owned(), "b".to_owned())].into_iter().collect());
        let rates = Rates {
            usd_per_vcpu_hour: 1.0,
            usd_per_gib_hour: 1.0,
        };
        let (report, stats) =
            build(&history, &inv, &RecommenderOptions::default(), rates, 0).unwrap();
        assert!(report.recommendations.is_empty());
        assert_eq!(stats.unselected_instances, 1);
        assert_eq!(stats.without_history, 1);
    }
}
