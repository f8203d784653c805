//! Turns a validated scenario into the engine's model: core HPA specs,
//! recommender options, resolved node groups and strategy overrides.

use super::EngineError;
use crate::scenario::{
    CapacityType, HpaSpec as ScenarioHpa, NodeGroupSpec, ResourceSpec, Scenario, StrategySpec,
    VpaSpec, parse_resources,
};
use std::path::Path;
use tailor_core::catalog::Catalog;
use tailor_core::hpa::{
    Behavior, HpaSpec, MetricSource, MetricSpec, MetricTarget, ScalingPolicy, ScalingRules,
    SelectPolicy,
};
use tailor_core::policy::{
    ContainerPolicy, ControlledValues, PartialResources, ResourcePolicy, UpdateMode,
};
use tailor_core::quantity::{cpu_millis, memory_bytes};
use tailor_core::recommender::{AggregationOptions, EstimationOptions};
use tailor_core::resources::{ResourceName, Resources};

/// The single container every simulated pod runs (workloads are one container).
pub const CONTAINER: &str = "app";

/// Default spot discount when a spot group's price comes from the catalog.
pub const DEFAULT_SPOT_DISCOUNT: f64 = 0.6;

/// Default system reservation per node (kubelet and daemons).
const DEFAULT_RESERVED: Resources = Resources::new(100, 600 * 1024 * 1024);

/// The scenario with a strategy's overrides applied (`baseline` = unchanged).
#[must_use]
pub fn with_strategy(scenario: &Scenario, strategy: Option<&StrategySpec>) -> Scenario {
    let mut out = scenario.clone();
    let Some(s) = strategy else {
        return out;
    };
    if let Some(e) = &s.expander {
        out.expander.clone_from(e);
    }
    for w in &mut out.workloads {
        // A named override wins over `*` for the fields it sets.
        for key in ["*", w.name.as_str()] {
            let Some(o) = s.workloads.get(key) else {
                continue;
            };
            if let Some(r) = &o.requests {
                w.requests = r.clone();
            }
            if let Some(l) = &o.limits {
                w.limits = Some(l.clone());
            }
            if let Some(r) = o.replicas {
                w.replicas = r;
            }
            if let Some(h) = &o.hpa {
                w.hpa = Some(h.clone());
            }
            if let Some(v) = &o.vpa {
                w.vpa = Some(v.clone());
            }
        }
    }
    out
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> EngineError {
    EngineError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Parses a requests/limits block.
pub fn resources(field: &str, spec: &ResourceSpec) -> Result<Resources, EngineError> {
    parse_resources(spec).map_err(|m| invalid(field, m))
}

/// Converts the scenario's `autoscaling/v2` spec to the core's.
pub fn hpa_spec(workload: &str, h: &ScenarioHpa) -> Result<HpaSpec, EngineError> {
    let field = |f: &str| format!("workloads[{workload}].hpa.{f}");
    let mut metrics = Vec::with_capacity(h.metrics.len());
    for (i, m) in h.metrics.iter().enumerate() {
        let res = m
            .resource
            .as_ref()
            .or(m.container_resource.as_ref())
            .ok_or_else(|| invalid(field(&format!("metrics[{i}]")), "needs a resource block"))?;
        let resource = ResourceName::parse(&res.name).ok_or_else(|| {
            invalid(
                field(&format!("metrics[{i}].resource.name")),
                format!("unknown resource {:?}", res.name),
            )
        })?;
        let quantity = |q: &str| match resource {
            ResourceName::Cpu => cpu_millis(q).map_err(|e| e.to_string()),
            // Upstream compares milli-values; memory bytes × 1000.
            ResourceName::Memory => memory_bytes(q)
                .map(|b| b.saturating_mul(1000))
                .map_err(|e| e.to_string()),
        };
        let t = &res.target;
        let target = match t.type_.as_str() {
            "Utilization" => MetricTarget::Utilization(
                i32::try_from(t.average_utilization.unwrap_or(80)).unwrap_or(i32::MAX),
            ),
            "AverageValue" => MetricTarget::AverageValue(
                quantity(t.average_value.as_deref().unwrap_or("0"))
                    .map_err(|e| invalid(field(&format!("metrics[{i}].target")), e))?,
            ),
            other => {
                return Err(invalid(
                    field(&format!("metrics[{i}].target.type")),
                    format!("{other} is not supported for resource metrics"),
                ));
            }
        };
        // One container per pod: a ContainerResource metric is the pod's.
        metrics.push(MetricSpec {
            source: MetricSource::Resource { resource },
            target,
        });
    }
    let rules = |r: &crate::scenario::HpaScalingRules| -> Result<ScalingRules, EngineError> {
        let select_policy = match r.select_policy.as_deref() {
            None => None,
            Some("Max") => Some(SelectPolicy::Max),
            Some("Min") => Some(SelectPolicy::Min),
            Some("Disabled") => Some(SelectPolicy::Disabled),
            Some(other) => {
                return Err(invalid(
                    field("behavior.selectPolicy"),
                    format!("{other:?} is not Max, Min or Disabled"),
                ));
            }
        };
        let policies = r
            .policies
            .as_ref()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        let value = i32::try_from(p.value).unwrap_or(i32::MAX);
                        match p.type_.as_str() {
                            "Pods" => Ok(ScalingPolicy::pods(value, p.period_seconds)),
                            "Percent" => Ok(ScalingPolicy::percent(value, p.period_seconds)),
                            other => Err(invalid(
                                field("behavior.policies.type"),
                                format!("{other:?} is not Pods or Percent"),
                            )),
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(ScalingRules {
            stabilization_window_seconds: r.stabilization_window_seconds,
            select_policy,
            policies,
            tolerance: r.tolerance,
        })
    };
    let behavior = match &h.behavior {
        None => None,
        Some(b) => Some(Behavior {
            scale_up: b.scale_up.as_ref().map(&rules).transpose()?,
            scale_down: b.scale_down.as_ref().map(&rules).transpose()?,
        }),
    };
    let spec = HpaSpec {
        min_replicas: Some(i32::try_from(h.min_replicas).unwrap_or(i32::MAX)),
        max_replicas: i32::try_from(h.max_replicas).unwrap_or(i32::MAX),
        metrics,
        behavior,
    };
    spec.validate()
        .map_err(|e| invalid(field("(spec)"), e.to_string()))?;
    Ok(spec)
}

fn partial(
    field: &str,
    p: Option<&crate::scenario::PartialResourceSpec>,
) -> Result<PartialResources, EngineError> {
    let Some(p) = p else {
        return Ok(PartialResources::NONE);
    };
    let cpu = p
        .cpu
        .as_deref()
        .map(cpu_millis)
        .transpose()
        .map_err(|e| invalid(format!("{field}.cpu"), e.to_string()))?;
    let memory = p
        .memory
        .as_deref()
        .map(memory_bytes)
        .transpose()
        .map_err(|e| invalid(format!("{field}.memory"), e.to_string()))?;
    Ok(PartialResources {
        cpu_millis: cpu,
        memory_bytes: memory,
    })
}

/// Everything the engine needs for one workload's VPA.
#[derive(Clone, Debug)]
pub struct VpaModel {
    /// Update mode.
    pub mode: UpdateMode,
    /// The resource policy (one container policy for [`CONTAINER`]).
    pub policy: ResourcePolicy,
    /// Histogram and OOM settings.
    pub aggregation: AggregationOptions,
    /// Percentiles and margins.
    pub estimation: EstimationOptions,
    /// Fewest live replicas before the updater disrupts.
    pub min_replicas: Option<u32>,
}

/// Converts a workload's `vpa:` block.
pub fn vpa_model(workload: &str, v: &VpaSpec) -> Result<VpaModel, EngineError> {
    let field = format!("workloads[{workload}].vpa");
    let mut cp = ContainerPolicy::default_for(CONTAINER);
    cp.min_allowed = partial(&format!("{field}.minAllowed"), v.min_allowed.as_ref())?;
    cp.max_allowed = partial(&format!("{field}.maxAllowed"), v.max_allowed.as_ref())?;
    if let Some(r) = &v.controlled_resources {
        cp.controlled_resources.clone_from(r);
    }
    cp.controlled_values = v
        .controlled_values
        .unwrap_or(ControlledValues::RequestsAndLimits);
    let mut aggregation = AggregationOptions::default();
    let mut estimation = EstimationOptions::default();
    if let Some(r) = &v.recommender {
        if let Some(p) = r.target_cpu_percentile {
            estimation.target_cpu_percentile = p;
        }
        if let Some(p) = r.target_memory_percentile {
            estimation.target_memory_percentile = p;
        }
        if let Some(m) = r.safety_margin_fraction {
            estimation.safety_margin_fraction = m;
        }
        if let Some(h) = r.half_life {
            aggregation.cpu_half_life_secs = h.seconds();
            aggregation.memory_half_life_secs = h.seconds();
        }
    }
    aggregation
        .validate()
        .map_err(|e| invalid(format!("{field}.recommender"), e.to_string()))?;
    estimation
        .validate()
        .map_err(|e| invalid(format!("{field}.recommender"), e.to_string()))?;
    Ok(VpaModel {
        mode: v.update_mode,
        policy: ResourcePolicy {
            container_policies: vec![cp],
        },
        aggregation,
        estimation,
        min_replicas: v.min_replicas,
    })
}

/// A node group with its shape and price resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedGroup {
    /// Group name.
    pub name: String,
    /// Instance type.
    pub instance_type: String,
    /// On-demand or spot.
    pub capacity_type: CapacityType,
    /// Node capacity.
    pub capacity: Resources,
    /// Capacity less the system reservation.
    pub allocatable: Resources,
    /// USD per node-hour.
    pub price_per_hour: f64,
    /// Fewest nodes.
    pub min_size: u32,
    /// Most nodes.
    pub max_size: u32,
    /// Nodes at the start.
    pub initial_size: u32,
    /// Pods per node.
    pub max_pods: u32,
}

/// Resolves node groups, reading the catalog (relative to `base_dir`) when a
/// group leaves its shape or price out.
pub fn resolve_groups(
    scenario: &Scenario,
    base_dir: &Path,
) -> Result<Vec<ResolvedGroup>, EngineError> {
    let catalog = match &scenario.catalog {
        None => None,
        Some(p) => {
            let path = base_dir.join(p);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| invalid("catalog", format!("cannot read {}: {e}", path.display())))?;
            Some(
                Catalog::from_csv(&text)
                    .map_err(|e| invalid("catalog", format!("{}: {e}", path.display())))?,
            )
        }
    };
    scenario
        .node_groups
        .iter()
        .map(|g| resolve_group(g, catalog.as_ref()))
        .collect()
}

fn resolve_group(
    g: &NodeGroupSpec,
    catalog: Option<&Catalog>,
) -> Result<ResolvedGroup, EngineError> {
    let field = |f: &str| format!("nodeGroups[{}].{f}", g.name);
    let lookup = || {
        catalog
            .and_then(|c| c.instance_type(&g.instance_type))
            .ok_or_else(|| {
                invalid(
                    field("instanceType"),
                    format!("{} is not in the catalog", g.instance_type),
                )
            })
    };
    let cpu = match &g.cpu {
        Some(c) => cpu_millis(c).map_err(|e| invalid(field("cpu"), e.to_string()))?,
        None => lookup()?.resources().cpu_millis,
    };
    let memory = match &g.memory {
        Some(m) => memory_bytes(m).map_err(|e| invalid(field("memory"), e.to_string()))?,
        None => lookup()?.resources().memory_bytes,
    };
    let price = match g.price_per_hour {
        Some(p) => p,
        None => {
            let od = lookup()?.on_demand_usd_per_hour;
            match g.capacity_type {
                CapacityType::OnDemand => od,
                CapacityType::Spot => od * (1.0 - g.spot_discount.unwrap_or(DEFAULT_SPOT_DISCOUNT)),
            }
        }
    };
    let reserved = match &g.reserved {
        Some(r) => resources(&field("reserved"), r)?,
        None => DEFAULT_RESERVED,
    };
    let capacity = Resources::new(cpu, memory);
    let allocatable = capacity.saturating_sub(reserved).non_negative();
    if allocatable.cpu_millis <= 0 || allocatable.memory_bytes <= 0 {
        return Err(invalid(
            field("reserved"),
            "leaves no allocatable CPU or memory",
        ));
    }
    if !(price.is_finite() && price > 0.0) {
        return Err(invalid(field("pricePerHour"), "must be positive"));
    }
    Ok(ResolvedGroup {
        name: g.name.clone(),
        instance_type: g.instance_type.clone(),
        capacity_type: g.capacity_type,
        capacity,
        allocatable,
        price_per_hour: price,
        min_size: g.min_size,
        max_size: g.max_size,
        initial_size: g
            .initial_size
            .unwrap_or(g.min_size)
            .clamp(g.min_size, g.max_size),
        max_pods: g.max_pods,
    })
}
