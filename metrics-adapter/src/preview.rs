//! `tailor-metrics-adapter preview --hpa hpa.yaml`: the metric values an
//! HPA would read from this adapter now, and the replica count the HPA
//! controller's maths (`tailor_core::hpa`) would choose from them.
//!
//! It runs from Prometheus alone: one relist, then the same query path the
//! server uses. Without the Kubernetes API, a Pods metric covers every pod
//! in the namespace that has the metric (the target's selector is not
//! applied), and Resource metrics cannot be previewed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::autoscaling::v2 as k8s;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use tailor_core::hpa::{
    Behavior, ControllerConfig, HpaInput, HpaSpec, HpaState, MetricObservation, MetricSource,
    MetricSpec, MetricTarget, Pod, PodPhase, PodSample, ReadyCondition, ScalingPolicy,
    ScalingRules, SelectPolicy, reconcile,
};
use tailor_core::quantity::Quantity;
use tailor_core::resources::ResourceName;

use crate::api::Status;
use crate::auth::Auth;
use crate::cache::{CacheOptions, ValueCache};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::naming::{BUILTIN_RESOURCES, GroupResource};
use crate::prom::Client;
use crate::query::QueryOptions;
use crate::registry::Registry;
use crate::request::{ObjectName, QueryParams};
use crate::server::{AppState, custom_values, external_values};

/// `preview` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct PreviewArgs {
    /// An `autoscaling/v2` HorizontalPodAutoscaler manifest (YAML or JSON).
    #[arg(long)]
    pub hpa: PathBuf,
    /// The target's current replica count; defaults to the manifest's
    /// status.currentReplicas, else the pods found for Pods metrics, else minReplicas.
    #[arg(long)]
    pub replicas: Option<i32>,
}

/// A metric label selector in its string form (`a=b,c in (x,y)`).
#[must_use]
pub fn selector_string(sel: Option<&LabelSelector>) -> Option<String> {
    let sel = sel?;
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

fn milli(q: &K8sQuantity, what: &str) -> anyhow::Result<i64> {
    Quantity::parse(&q.0)
        .and_then(|q| q.milli_value())
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

type K8sQuantity = k8s_openapi::apimachinery::pkg::api::resource::Quantity;

fn need<'a>(
    o: Option<&'a K8sQuantity>,
    what: &str,
    t: &k8s::MetricTarget,
    field: &str,
) -> anyhow::Result<&'a K8sQuantity> {
    o.with_context(|| format!("{what}: target type {} needs {field}", t.type_))
}

fn target(t: &k8s::MetricTarget, what: &str) -> anyhow::Result<MetricTarget> {
    Ok(match t.type_.as_str() {
        "Utilization" => MetricTarget::Utilization(t.average_utilization.with_context(|| {
            format!("{what}: target type Utilization needs averageUtilization")
        })?),
        "AverageValue" => MetricTarget::AverageValue(milli(
            need(t.average_value.as_ref(), what, t, "averageValue")?,
            what,
        )?),
        "Value" => MetricTarget::Value(milli(need(t.value.as_ref(), what, t, "value")?, what)?),
        other => anyhow::bail!("{what}: unknown target type {other:?}"),
    })
}

fn rules(r: Option<&k8s::HPAScalingRules>) -> anyhow::Result<Option<ScalingRules>> {
    let Some(r) = r else { return Ok(None) };
    let policies = r
        .policies
        .as_ref()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let period = u32::try_from(p.period_seconds)
                        .context("periodSeconds must be positive")?;
                    Ok(match p.type_.as_str() {
                        "Pods" => ScalingPolicy::pods(p.value, period),
                        "Percent" => ScalingPolicy::percent(p.value, period),
                        other => anyhow::bail!("unknown scaling policy type {other:?}"),
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .transpose()?;
    Ok(Some(ScalingRules {
        stabilization_window_seconds: r
            .stabilization_window_seconds
            .map(|s| u32::try_from(s).context("stabilizationWindowSeconds must not be negative"))
            .transpose()?,
        select_policy: match r.select_policy.as_deref() {
            None => None,
            Some("Max") => Some(SelectPolicy::Max),
            Some("Min") => Some(SelectPolicy::Min),
            Some("Disabled") => Some(SelectPolicy::Disabled),
            Some(other) => anyhow::bail!("unknown selectPolicy {other:?}"),
        },
        policies,
        tolerance: r.tolerance.as_ref().map(|q| {
            Quantity::parse(&q.0)
                .and_then(|q| q.milli_value())
                .map_or(0.1, |m| m as f64 / 1000.0)
        }),
    }))
}

/// What to fetch for one metric of the spec.
#[derive(Clone, Debug)]
enum Fetch {
    Pods {
        metric: String,
        selector: Option<String>,
    },
    Object {
        resource: GroupResource,
        name: String,
        metric: String,
        selector: Option<String>,
    },
    External {
        metric: String,
        selector: Option<String>,
    },
    Unsupported(String),
}

/// The HPA in core terms, with what to fetch for each metric.
fn convert(hpa: &k8s::HorizontalPodAutoscaler) -> anyhow::Result<(HpaSpec, Vec<Fetch>)> {
    let spec = hpa.spec.as_ref().context("the manifest has no spec")?;
    let mut metrics = Vec::new();
    let mut fetches = Vec::new();
    for (i, m) in spec.metrics.iter().flatten().enumerate() {
        let what = format!("spec.metrics[{i}]");
        let (source, t, fetch) = match m.type_.as_str() {
            "Pods" => {
                let p = m
                    .pods
                    .as_ref()
                    .with_context(|| format!("{what}: type Pods needs pods"))?;
                (
                    MetricSource::Pods {
                        metric: p.metric.name.clone(),
                    },
                    &p.target,
                    Fetch::Pods {
                        metric: p.metric.name.clone(),
                        selector: selector_string(p.metric.selector.as_ref()),
                    },
                )
            }
            "Object" => {
                let o = m
                    .object
                    .as_ref()
                    .with_context(|| format!("{what}: type Object needs object"))?;
                let group = o
                    .described_object
                    .api_version
                    .as_deref()
                    .and_then(|v| v.rsplit_once('/').map(|(g, _)| g))
                    .unwrap_or("");
                let b = BUILTIN_RESOURCES.iter().find(|b| {
                    b.kind == o.described_object.kind && (group.is_empty() || b.group == group)
                });
                let fetch = match b {
                    Some(b) => Fetch::Object {
                        resource: b.group_resource(),
                        name: o.described_object.name.clone(),
                        metric: o.metric.name.clone(),
                        selector: selector_string(o.metric.selector.as_ref()),
                    },
                    None => Fetch::Unsupported(format!(
                        "kind {} is not a built-in resource; preview maps only built-in kinds",
                        o.described_object.kind
                    )),
                };
                (
                    MetricSource::Object {
                        metric: o.metric.name.clone(),
                    },
                    &o.target,
                    fetch,
                )
            }
            "External" => {
                let e = m
                    .external
                    .as_ref()
                    .with_context(|| format!("{what}: type External needs external"))?;
                (
                    MetricSource::External {
                        metric: e.metric.name.clone(),
                    },
                    &e.target,
                    Fetch::External {
                        metric: e.metric.name.clone(),
                        selector: selector_string(e.metric.selector.as_ref()),
                    },
                )
            }
            "Resource" | "ContainerResource" => {
                let (resource, t, container) = match (&m.resource, &m.container_resource) {
                    (Some(r), _) => (r.name.clone(), &r.target, None),
                    (None, Some(c)) => (c.name.clone(), &c.target, Some(c.container.clone())),
                    _ => anyhow::bail!(
                        "{what}: type {} needs resource or containerResource",
                        m.type_
                    ),
                };
                let resource = match resource.as_str() {
                    "cpu" => ResourceName::Cpu,
                    "memory" => ResourceName::Memory,
                    other => anyhow::bail!("{what}: unknown resource {other:?}"),
                };
                let source = match container {
                    Some(container) => MetricSource::ContainerResource {
                        resource,
                        container,
                    },
                    None => MetricSource::Resource { resource },
                };
                (
                    source,
                    t,
                    Fetch::Unsupported(
                        "resource metrics come from metrics.k8s.io (metrics-server), which this adapter does not serve".into(),
                    ),
                )
            }
            other => anyhow::bail!("{what}: unknown metric type {other:?}"),
        };
        metrics.push(MetricSpec {
            source,
            target: target(t, &what)?,
        });
        fetches.push(fetch);
    }
    if metrics.is_empty() {
        fetches.push(Fetch::Unsupported(
            "an HPA without metrics scales on CPU, which comes from metrics.k8s.io".into(),
        ));
    }
    let behavior = match &spec.behavior {
        Some(b) => Some(Behavior {
            scale_up: rules(b.scale_up.as_ref()).context("spec.behavior.scaleUp")?,
            scale_down: rules(b.scale_down.as_ref()).context("spec.behavior.scaleDown")?,
        }),
        None => None,
    };
    Ok((
        HpaSpec {
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            metrics,
            behavior,
        },
        fetches,
    ))
}

fn params(selector: Option<&String>, external: bool) -> QueryParams {
    let mut p = QueryParams::default();
    if external {
        p.label_selector = selector.cloned();
    } else {
        p.metric_label_selector = selector.cloned();
    }
    p
}

fn value_milli(q: &str) -> Option<i64> {
    Quantity::parse(q).ok()?.milli_value().ok()
}

fn fmt_milli(m: i64) -> String {
    Quantity::from_milli(m, tailor_core::quantity::Format::DecimalSI).to_string()
}

/// Runs the preview and returns the report.
///
/// # Errors
/// An unreadable or invalid manifest.
pub async fn preview(
    config: &Config,
    client: &Client,
    args: &PreviewArgs,
    max_age: Duration,
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(&args.hpa)
        .with_context(|| format!("cannot read --hpa {}", args.hpa.display()))?;
    let hpa: k8s::HorizontalPodAutoscaler = serde_yaml::from_str(&text).with_context(|| {
        format!(
            "{}: not an autoscaling/v2 HorizontalPodAutoscaler",
            args.hpa.display()
        )
    })?;
    let (spec, fetches) = convert(&hpa).with_context(|| args.hpa.display().to_string())?;
    spec.validate()
        .with_context(|| args.hpa.display().to_string())?;
    let namespace = hpa
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_owned());
    let name = hpa.metadata.name.clone().unwrap_or_default();

    let registry = Arc::new(Registry::new(Arc::new(config.clone())));
    let metrics = Metrics::default();
    crate::relist::relist_once(&registry, client, max_age, &metrics).await;
    let state = AppState {
        registry,
        client: client.clone(),
        cache: ValueCache::new(
            CacheOptions {
                ttl: Duration::from_secs(60),
                max_staleness: Duration::from_secs(60),
                max_entries: 100,
            },
            metrics.clone(),
        ),
        metrics,
        auth: Arc::new(Auth::default()),
        objects: None,
        query_options: QueryOptions::default(),
    };

    // Fetch every metric; Pods metrics are aligned on the union of pods.
    let mut per_pod: Vec<Option<BTreeMap<String, (i64, f64)>>> = Vec::new();
    let mut results: Vec<Result<MetricObservation, String>> = Vec::new();
    for f in &fetches {
        let status_text = |s: Status| format!("{} ({})", s.message, s.code);
        match f {
            Fetch::Pods { metric, selector } => {
                let r = custom_values(
                    &state,
                    &params(selector.as_ref(), false),
                    Some(namespace.clone()),
                    &GroupResource::pods(),
                    &ObjectName::Wildcard,
                    metric,
                )
                .await;
                match r {
                    Ok(a) => {
                        per_pod.push(Some(
                            a.values
                                .iter()
                                .filter_map(|v| {
                                    Some((
                                        v.object.name.clone(),
                                        (value_milli(&v.value)?, v.timestamp),
                                    ))
                                })
                                .collect(),
                        ));
                        results.push(Ok(MetricObservation::Pods(Vec::new())));
                    }
                    Err(s) => {
                        per_pod.push(None);
                        results.push(Err(status_text(s)));
                    }
                }
            }
            Fetch::Object {
                resource,
                name,
                metric,
                selector,
            } => {
                per_pod.push(None);
                let r = custom_values(
                    &state,
                    &params(selector.as_ref(), false),
                    Some(namespace.clone()),
                    resource,
                    &ObjectName::Named(name.clone()),
                    metric,
                )
                .await;
                results.push(match r {
                    Ok(a) => a
                        .values
                        .first()
                        .and_then(|v| value_milli(&v.value))
                        .map(MetricObservation::Object)
                        .ok_or_else(|| format!("no value for {resource} {name}")),
                    Err(s) => Err(status_text(s)),
                });
            }
            Fetch::External { metric, selector } => {
                per_pod.push(None);
                let r =
                    external_values(&state, &params(selector.as_ref(), true), &namespace, metric)
                        .await;
                results.push(match r {
                    Ok(vs) => Ok(MetricObservation::External(
                        vs.iter().filter_map(|v| value_milli(&v.value)).collect(),
                    )),
                    Err(s) => Err(status_text(s)),
                });
            }
            Fetch::Unsupported(why) => {
                per_pod.push(None);
                results.push(Err(why.clone()));
            }
        }
    }
    let pod_names: BTreeSet<String> = per_pod
        .iter()
        .flatten()
        .flat_map(|m| m.keys().cloned())
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let pods: Vec<Pod> = pod_names
        .iter()
        .map(|n| Pod {
            name: n.clone(),
            phase: PodPhase::Running,
            deleting: false,
            // Long-running and ready: the preview knows nothing else.
            start_time: Some(now - 3600.0),
            ready: Some(ReadyCondition {
                ready: true,
                last_transition: now - 3600.0,
            }),
        })
        .collect();
    let observations: Vec<MetricObservation> = results
        .iter()
        .zip(&per_pod)
        .map(|(r, pp)| match (r, pp) {
            (Ok(MetricObservation::Pods(_)), Some(map)) => MetricObservation::Pods(
                pod_names
                    .iter()
                    .map(|n| {
                        map.get(n).map(|(v, ts)| PodSample {
                            value: *v,
                            timestamp: *ts,
                            window: 0.0,
                        })
                    })
                    .collect(),
            ),
            (Ok(o), _) => o.clone(),
            (Err(e), _) => MetricObservation::Unavailable(e.clone()),
        })
        .collect();
    let current = args
        .replicas
        .or_else(|| hpa.status.as_ref().and_then(|s| s.current_replicas))
        .or_else(|| (!pods.is_empty()).then(|| i32::try_from(pods.len()).unwrap_or(i32::MAX)))
        .unwrap_or_else(|| spec.min_replicas());
    let input = HpaInput {
        now,
        spec_replicas: current,
        status_replicas: current,
        pods: &pods,
        observations: &observations,
    };
    let decision = reconcile(
        &spec,
        &ControllerConfig::default(),
        &input,
        &mut HpaState::default(),
    );

    let mut out = String::new();
    let _ = writeln!(
        out,
        "HPA {namespace}/{name}: {current} replicas now, min {}, max {}",
        spec.min_replicas(),
        spec.max_replicas
    );
    let effective = spec.effective_metrics();
    for (i, m) in effective.iter().enumerate() {
        let target = match m.target {
            MetricTarget::Utilization(p) => format!("{p}% utilization"),
            MetricTarget::AverageValue(v) => format!("average {}", fmt_milli(v)),
            MetricTarget::Value(v) => format!("value {}", fmt_milli(v)),
        };
        let seen = match &observations[i] {
            MetricObservation::Pods(s) => {
                let vals: Vec<i64> = s.iter().flatten().map(|p| p.value).collect();
                let sum: i64 = vals.iter().sum();
                let n = i64::try_from(vals.len()).unwrap_or(1).max(1);
                format!("average {} over {} pods", fmt_milli(sum / n), vals.len())
            }
            MetricObservation::Object(v) => format!("value {}", fmt_milli(*v)),
            MetricObservation::External(vs) => {
                format!("value {} ({} series)", fmt_milli(vs.iter().sum()), vs.len())
            }
            MetricObservation::Unavailable(e) => format!("unavailable: {e}"),
            MetricObservation::Resource { .. } => String::new(),
        };
        let proposal = match decision.as_ref().ok().and_then(|d| d.metrics.get(i)) {
            Some(Ok(p)) => format!(" -> {} replicas", p.replicas),
            Some(Err(e)) => format!(" -> invalid: {e}"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}: target {target}; now {seen}{proposal}",
            m.source.label()
        );
    }
    match decision {
        Ok(d) => {
            let _ = writeln!(
                out,
                "decision: {} replicas ({}{})",
                d.desired_replicas,
                if d.rescale { "scale" } else { "no change" },
                d.limited_by
                    .map(|l| format!(", limited by {l:?}"))
                    .unwrap_or_default()
            );
        }
        Err(e) => {
            let _ = writeln!(out, "decision: keep {current} replicas ({e})");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_convert_to_core_specs() {
        let hpa: k8s::HorizontalPodAutoscaler = serde_yaml::from_str(
            r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 10
  metrics:
  - type: Pods
    pods:
      metric: {name: http_requests, selector: {matchLabels: {verb: GET}}}
      target: {type: AverageValue, averageValue: 500m}
  - type: Object
    object:
      describedObject: {apiVersion: apps/v1, kind: Deployment, name: web}
      metric: {name: queue_length}
      target: {type: Value, value: "10"}
  - type: External
    external:
      metric: {name: sqs_depth, selector: {matchExpressions: [{key: queue, operator: In, values: [a, b]}]}}
      target: {type: AverageValue, averageValue: "30"}
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 60
      policies: [{type: Pods, value: 1, periodSeconds: 30}]
"#,
        )
        .unwrap();
        let (spec, fetches) = convert(&hpa).unwrap();
        assert_eq!(spec.min_replicas, Some(2));
        assert_eq!(spec.metrics[0].target, MetricTarget::AverageValue(500));
        assert_eq!(spec.metrics[1].target, MetricTarget::Value(10_000));
        assert_eq!(spec.metrics[3].target, MetricTarget::Utilization(60));
        assert!(matches!(&fetches[0], Fetch::Pods { selector: Some(s), .. } if s == "verb=GET"));
        assert!(
            matches!(&fetches[1], Fetch::Object { resource, .. } if *resource == GroupResource::new("apps", "deployments"))
        );
        assert!(
            matches!(&fetches[2], Fetch::External { selector: Some(s), .. } if s == "queue in (a,b)")
        );
        assert!(matches!(&fetches[3], Fetch::Unsupported(_)));
        let down = spec.behavior.unwrap().scale_down.unwrap();
        assert_eq!(down.stabilization_window_seconds, Some(60));
        assert_eq!(down.policies, Some(vec![ScalingPolicy::pods(1, 30)]));
    }

    #[test]
    fn bad_targets_name_the_metric() {
        let hpa: k8s::HorizontalPodAutoscaler = serde_yaml::from_str(
            r#"
spec:
  scaleTargetRef: {kind: Deployment, name: web}
  maxReplicas: 3
  metrics:
  - type: External
    external:
      metric: {name: x}
      target: {type: Value}
"#,
        )
        .unwrap();
        let e = convert(&hpa).unwrap_err().to_string();
        assert!(
            e.contains("spec.metrics[0]") && e.contains("needs value"),
            "{e}"
        );
    }
}
