//! The HPA specification in core terms: metric sources and targets, scaling
//! behaviour, controller settings, and the upstream defaults as named constants.

use serde::{Deserialize, Serialize};

use crate::resources::ResourceName;

/// `--horizontal-pod-autoscaler-tolerance`: no change while |ratio − 1| ≤ this.
pub const DEFAULT_TOLERANCE: f64 = 0.1;
/// `--horizontal-pod-autoscaler-cpu-initialization-period` (5 min), in seconds.
pub const DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS: f64 = 300.0;
/// `--horizontal-pod-autoscaler-initial-readiness-delay` (30 s), in seconds.
pub const DEFAULT_INITIAL_READINESS_DELAY_SECONDS: f64 = 30.0;
/// `--horizontal-pod-autoscaler-downscale-stabilization` (5 min), in seconds.
pub const DEFAULT_SCALE_DOWN_STABILIZATION_WINDOW_SECONDS: u32 = 300;
/// Default scale-up stabilisation window: none.
pub const DEFAULT_SCALE_UP_STABILIZATION_WINDOW_SECONDS: u32 = 0;
/// `--horizontal-pod-autoscaler-sync-period` (15 s), in seconds.
pub const DEFAULT_SYNC_PERIOD_SECONDS: f64 = 15.0;
/// `spec.minReplicas` when unset.
pub const DEFAULT_MIN_REPLICAS: i32 = 1;
/// The metric an HPA gets when it lists none: CPU at 80 % utilisation.
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;
/// Period of every default scaling policy, in seconds.
pub const DEFAULT_POLICY_PERIOD_SECONDS: u32 = 15;
/// Default scale-up policy: add up to 100 % per period…
pub const DEFAULT_SCALE_UP_PERCENT: i32 = 100;
/// …or up to 4 pods per period, whichever is more.
pub const DEFAULT_SCALE_UP_PODS: i32 = 4;
/// Default scale-down policy: remove up to 100 % per period.
pub const DEFAULT_SCALE_DOWN_PERCENT: i32 = 100;
/// Without `behavior`, scale-up is capped at this factor of the current count…
pub const LEGACY_SCALE_UP_LIMIT_FACTOR: f64 = 2.0;
/// …but never below this many replicas.
pub const LEGACY_SCALE_UP_LIMIT_MINIMUM: f64 = 4.0;
/// API validation bound on a policy period, in seconds.
pub const MAX_POLICY_PERIOD_SECONDS: u32 = 1800;
/// API validation bound on a stabilisation window, in seconds.
pub const MAX_STABILIZATION_WINDOW_SECONDS: u32 = 3600;

/// Controller-wide settings (kube-controller-manager flags).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ControllerConfig {
    /// Tolerance for both directions unless a behaviour rule overrides it.
    pub tolerance: f64,
    /// CPU samples of pods younger than this are trusted only if taken while ready.
    pub cpu_initialization_period_seconds: f64,
    /// A pod that turned unready within this delay of starting never became ready.
    pub initial_readiness_delay_seconds: f64,
    /// Scale-down stabilisation window when `behavior` does not set one.
    pub downscale_stabilization_window_seconds: u32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            tolerance: DEFAULT_TOLERANCE,
            cpu_initialization_period_seconds: DEFAULT_CPU_INITIALIZATION_PERIOD_SECONDS,
            initial_readiness_delay_seconds: DEFAULT_INITIAL_READINESS_DELAY_SECONDS,
            downscale_stabilization_window_seconds: DEFAULT_SCALE_DOWN_STABILIZATION_WINDOW_SECONDS,
        }
    }
}

/// What a metric is measured on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum MetricSource {
    /// Per-pod resource usage (sum over the pod's containers).
    Resource {
        /// The resource.
        resource: ResourceName,
    },
    /// Per-pod resource usage of one named container.
    ContainerResource {
        /// The resource.
        resource: ResourceName,
        /// The container whose usage and request count.
        container: String,
    },
    /// A custom metric reported per pod.
    Pods {
        /// Metric name.
        metric: String,
    },
    /// A custom metric describing one Kubernetes object.
    Object {
        /// Metric name.
        metric: String,
    },
    /// A metric from outside the cluster.
    External {
        /// Metric name.
        metric: String,
    },
}

impl MetricSource {
    /// A short label naming the metric, for messages.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            MetricSource::Resource { resource } => format!("resource {resource}"),
            MetricSource::ContainerResource {
                resource,
                container,
            } => format!("resource {resource} of container {container}"),
            MetricSource::Pods { metric } => format!("pods metric {metric}"),
            MetricSource::Object { metric } => format!("object metric {metric}"),
            MetricSource::External { metric } => format!("external metric {metric}"),
        }
    }
}

/// The target value of a metric. Values are milli-units, as upstream compares
/// `Quantity.MilliValue()`s (a target of `"10"` is `10_000`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "value")]
pub enum MetricTarget {
    /// Average of usage/request over pods, in percent (resource metrics only).
    Utilization(i32),
    /// Average value per pod (or per replica for Object/External), milli-units.
    AverageValue(i64),
    /// The whole value, compared directly (Object/External only), milli-units.
    Value(i64),
}

impl MetricTarget {
    /// The upstream name of the target type.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            MetricTarget::Utilization(_) => "Utilization",
            MetricTarget::AverageValue(_) => "AverageValue",
            MetricTarget::Value(_) => "Value",
        }
    }
}

/// One entry of `spec.metrics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricSpec {
    /// What is measured.
    pub source: MetricSource,
    /// What it should be.
    pub target: MetricTarget,
}

impl MetricSpec {
    /// The metric an HPA without metrics gets (CPU at 80 %).
    #[must_use]
    pub fn default_cpu() -> Self {
        MetricSpec {
            source: MetricSource::Resource {
                resource: ResourceName::Cpu,
            },
            target: MetricTarget::Utilization(DEFAULT_CPU_UTILIZATION),
        }
    }
}

/// How a scaling policy measures change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScalingPolicyKind {
    /// An absolute number of pods per period.
    Pods,
    /// A percentage of the replica count at the start of the period.
    Percent,
}

/// One rate limit: at most `value` (pods or percent) per `period_seconds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    /// Pods or Percent.
    pub kind: ScalingPolicyKind,
    /// The allowed change; must be positive.
    pub value: i32,
    /// The window the change is measured over, 1..=1800 s.
    pub period_seconds: u32,
}

impl ScalingPolicy {
    /// A Pods policy.
    #[must_use]
    pub const fn pods(value: i32, period_seconds: u32) -> Self {
        ScalingPolicy {
            kind: ScalingPolicyKind::Pods,
            value,
            period_seconds,
        }
    }

    /// A Percent policy.
    #[must_use]
    pub const fn percent(value: i32, period_seconds: u32) -> Self {
        ScalingPolicy {
            kind: ScalingPolicyKind::Percent,
            value,
            period_seconds,
        }
    }
}

/// Which policy wins when several apply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelectPolicy {
    /// The policy allowing the largest change (upstream default).
    #[default]
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `behavior.scaleUp` / `behavior.scaleDown` as written; unset fields take defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ScalingRules {
    /// Look-back window for stabilisation, 0..=3600 s.
    pub stabilization_window_seconds: Option<u32>,
    /// Policy selection.
    pub select_policy: Option<SelectPolicy>,
    /// Rate limits; `None` takes the direction's defaults.
    pub policies: Option<Vec<ScalingPolicy>>,
    /// Direction-specific tolerance (upstream `HPAConfigurableTolerance`).
    pub tolerance: Option<f64>,
}

/// `spec.behavior` as written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Behavior {
    /// Rules for growing.
    pub scale_up: Option<ScalingRules>,
    /// Rules for shrinking.
    pub scale_down: Option<ScalingRules>,
}

/// Scaling rules with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedRules {
    /// Stabilisation window in seconds.
    pub stabilization_window_seconds: u32,
    /// Policy selection.
    pub select_policy: SelectPolicy,
    /// Rate limits (non-empty after validation).
    pub policies: Vec<ScalingPolicy>,
    /// Tolerance for this direction.
    pub tolerance: f64,
}

impl ResolvedRules {
    /// Upstream's default scale-up rules: no window, max(100 %, 4 pods) per 15 s.
    #[must_use]
    pub fn default_scale_up(config: &ControllerConfig) -> Self {
        ResolvedRules {
            stabilization_window_seconds: DEFAULT_SCALE_UP_STABILIZATION_WINDOW_SECONDS,
            select_policy: SelectPolicy::Max,
            policies: vec![
                ScalingPolicy::pods(DEFAULT_SCALE_UP_PODS, DEFAULT_POLICY_PERIOD_SECONDS),
                ScalingPolicy::percent(DEFAULT_SCALE_UP_PERCENT, DEFAULT_POLICY_PERIOD_SECONDS),
            ],
            tolerance: config.tolerance,
        }
    }

    /// Upstream's default scale-down rules: the controller's window, 100 % per 15 s.
    #[must_use]
    pub fn default_scale_down(config: &ControllerConfig) -> Self {
        ResolvedRules {
            stabilization_window_seconds: config.downscale_stabilization_window_seconds,
            select_policy: SelectPolicy::Max,
            policies: vec![ScalingPolicy::percent(
                DEFAULT_SCALE_DOWN_PERCENT,
                DEFAULT_POLICY_PERIOD_SECONDS,
            )],
            tolerance: config.tolerance,
        }
    }

    /// Fills the unset fields of `rules` from `defaults`.
    #[must_use]
    pub fn resolve(rules: Option<&ScalingRules>, defaults: ResolvedRules) -> Self {
        let Some(rules) = rules else {
            return defaults;
        };
        ResolvedRules {
            stabilization_window_seconds: rules
                .stabilization_window_seconds
                .unwrap_or(defaults.stabilization_window_seconds),
            select_policy: rules.select_policy.unwrap_or(defaults.select_policy),
            policies: rules.policies.clone().unwrap_or(defaults.policies),
            tolerance: rules.tolerance.unwrap_or(defaults.tolerance),
        }
    }

    /// The longest policy period, which bounds how long scale events matter.
    #[must_use]
    pub fn longest_policy_period(&self) -> u32 {
        self.policies
            .iter()
            .map(|p| p.period_seconds)
            .max()
            .unwrap_or(0)
    }
}

/// Tolerances per direction: no change while `1 − down ≤ ratio ≤ 1 + up`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    /// Allowed ratio below 1 before scaling down.
    pub scale_down: f64,
    /// Allowed ratio above 1 before scaling up.
    pub scale_up: f64,
}

impl Tolerances {
    /// The same tolerance both ways.
    #[must_use]
    pub const fn symmetric(tolerance: f64) -> Self {
        Tolerances {
            scale_down: tolerance,
            scale_up: tolerance,
        }
    }

    /// Whether `ratio` is close enough to 1 to leave the count alone (false for NaN).
    #[must_use]
    pub fn is_within(&self, ratio: f64) -> bool {
        (1.0 - self.scale_down) <= ratio && ratio <= (1.0 + self.scale_up)
    }
}

/// An HPA's spec in core terms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaSpec {
    /// Lower bound; `None` means 1. Zero (scale to zero) needs an Object or External metric.
    #[serde(default)]
    pub min_replicas: Option<i32>,
    /// Upper bound, at least 1.
    pub max_replicas: i32,
    /// The metrics; empty means CPU at 80 % utilisation.
    #[serde(default)]
    pub metrics: Vec<MetricSpec>,
    /// Scaling behaviour; `None` uses the legacy path (2×/4-pod cap, controller window).
    #[serde(default)]
    pub behavior: Option<Behavior>,
}

/// A spec that the API server would have rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum HpaSpecError {
    /// `maxReplicas` below 1.
    #[error("maxReplicas must be at least 1, got {0}")]
    MaxReplicas(i32),
    /// `minReplicas` negative or above `maxReplicas`.
    #[error("minReplicas must be within 0..=maxReplicas ({max}), got {min}")]
    MinReplicas {
        /// The value given.
        min: i32,
        /// maxReplicas.
        max: i32,
    },
    /// `minReplicas: 0` without an Object or External metric.
    #[error("minReplicas 0 requires at least one Object or External metric")]
    ScaleToZeroWithoutObjectOrExternal,
    /// A target value that is not positive.
    #[error("metrics[{index}] ({metric}): target {target} must be positive, got {value}")]
    Target {
        /// Position in `metrics`.
        index: usize,
        /// The metric's label.
        metric: String,
        /// Target type name.
        target: &'static str,
        /// The value given.
        value: i64,
    },
    /// A tolerance that is negative or not finite.
    #[error("behavior.{direction}.tolerance must be a finite non-negative number, got {value}")]
    Tolerance {
        /// `scaleUp`, `scaleDown` or `controller`.
        direction: &'static str,
        /// The value given.
        value: f64,
    },
    /// An explicitly empty policy list.
    #[error("behavior.{direction}.policies must list at least one policy")]
    NoPolicies {
        /// `scaleUp` or `scaleDown`.
        direction: &'static str,
    },
    /// A policy with a non-positive value or an out-of-range period.
    #[error(
        "behavior.{direction}.policies[{index}]: value must be > 0 and periodSeconds within 1..={MAX_POLICY_PERIOD_SECONDS}, got value {value}, periodSeconds {period_seconds}"
    )]
    Policy {
        /// `scaleUp` or `scaleDown`.
        direction: &'static str,
        /// Position in the list.
        index: usize,
        /// The value given.
        value: i32,
        /// The period given.
        period_seconds: u32,
    },
    /// A stabilisation window over an hour.
    #[error(
        "behavior.{direction}.stabilizationWindowSeconds must be at most {MAX_STABILIZATION_WINDOW_SECONDS}, got {value}"
    )]
    StabilizationWindow {
        /// `scaleUp` or `scaleDown`.
        direction: &'static str,
        /// The value given.
        value: u32,
    },
}

fn validate_rules(direction: &'static str, rules: &ScalingRules) -> Result<(), HpaSpecError> {
    if let Some(window) = rules.stabilization_window_seconds
        && window > MAX_STABILIZATION_WINDOW_SECONDS
    {
        return Err(HpaSpecError::StabilizationWindow {
            direction,
            value: window,
        });
    }
    if let Some(tolerance) = rules.tolerance
        && !(tolerance.is_finite() && tolerance >= 0.0)
    {
        return Err(HpaSpecError::Tolerance {
            direction,
            value: tolerance,
        });
    }
    if let Some(policies) = &rules.policies {
        if policies.is_empty() {
            return Err(HpaSpecError::NoPolicies { direction });
        }
        for (index, p) in policies.iter().enumerate() {
            if p.value <= 0 || p.period_seconds == 0 || p.period_seconds > MAX_POLICY_PERIOD_SECONDS
            {
                return Err(HpaSpecError::Policy {
                    direction,
                    index,
                    value: p.value,
                    period_seconds: p.period_seconds,
                });
            }
        }
    }
    Ok(())
}

impl HpaSpec {
    /// `minReplicas` with its default applied.
    #[must_use]
    pub fn min_replicas(&self) -> i32 {
        self.min_replicas.unwrap_or(DEFAULT_MIN_REPLICAS)
    }

    /// The metrics with the CPU default applied when none are listed.
    #[must_use]
    pub fn effective_metrics(&self) -> std::borrow::Cow<'_, [MetricSpec]> {
        if self.metrics.is_empty() {
            std::borrow::Cow::Owned(vec![MetricSpec::default_cpu()])
        } else {
            std::borrow::Cow::Borrowed(&self.metrics)
        }
    }

    /// Checks what the API server's validation checks. Target/source mismatches are
    /// left to the controller, which reports them as invalid metrics.
    pub fn validate(&self) -> Result<(), HpaSpecError> {
        if self.max_replicas < 1 {
            return Err(HpaSpecError::MaxReplicas(self.max_replicas));
        }
        let min = self.min_replicas();
        if min < 0 || min > self.max_replicas {
            return Err(HpaSpecError::MinReplicas {
                min,
                max: self.max_replicas,
            });
        }
        if min == 0
            && !self.metrics.iter().any(|m| {
                matches!(
                    m.source,
                    MetricSource::Object { .. } | MetricSource::External { .. }
                )
            })
        {
            return Err(HpaSpecError::ScaleToZeroWithoutObjectOrExternal);
        }
        for (index, m) in self.metrics.iter().enumerate() {
            let value = match m.target {
                MetricTarget::Utilization(v) => i64::from(v),
                MetricTarget::AverageValue(v) | MetricTarget::Value(v) => v,
            };
            if value <= 0 {
                return Err(HpaSpecError::Target {
                    index,
                    metric: m.source.label(),
                    target: m.target.type_name(),
                    value,
                });
            }
        }
        if let Some(b) = &self.behavior {
            if let Some(r) = &b.scale_up {
                validate_rules("scaleUp", r)?;
            }
            if let Some(r) = &b.scale_down {
                validate_rules("scaleDown", r)?;
            }
        }
        Ok(())
    }

    /// Tolerances per direction: the behaviour's, else the controller's.
    #[must_use]
    pub fn tolerances(&self, config: &ControllerConfig) -> Tolerances {
        let pick = |rules: Option<&ScalingRules>| {
            rules.and_then(|r| r.tolerance).unwrap_or(config.tolerance)
        };
        let behavior = self.behavior.as_ref();
        Tolerances {
            scale_down: pick(behavior.and_then(|b| b.scale_down.as_ref())),
            scale_up: pick(behavior.and_then(|b| b.scale_up.as_ref())),
        }
    }
}
