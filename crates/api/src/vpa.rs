//! `autoscaling.k8s.io/v1` `VerticalPodAutoscaler`, field for field as
//! upstream's CRD (`vertical-pod-autoscaler/deploy/vpa-v1-crd-gen.yaml`).
//!
//! Fidelity rules, so an upstream object read and written back is unchanged:
//! - every optional field is an `Option` and is skipped when `None`, and lists
//!   and maps are `Option<..>` too so an explicit `[]`/`{}` is kept;
//! - enum fields keep values they do not know (see [`UpdateMode::Unknown`]);
//!   upstream's CRD rejects such values, so they only appear with another CRD,
//!   and [`crate::convert`] reports them with the field's path;
//! - quantities are `k8s_openapi` [`Quantity`] strings. The one normalisation:
//!   a quantity written as a bare JSON number (`cpu: 1`) is written back as the
//!   string `"1"`, which is also what upstream's Go types do.

use crate::wire::string_enum;
use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Kubernetes `ResourceList`: resource name → quantity.
pub type ResourceList = BTreeMap<String, Quantity>;

/// The name of the recommender that handles VPAs naming no recommender.
pub const DEFAULT_RECOMMENDER: &str = "default";

/// `spec` of a `VerticalPodAutoscaler`.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "autoscaling.k8s.io",
    version = "v1",
    kind = "VerticalPodAutoscaler",
    singular = "verticalpodautoscaler",
    plural = "verticalpodautoscalers",
    shortname = "vpa",
    namespaced,
    status = "VerticalPodAutoscalerStatus",
    derive = "PartialEq",
    doc = "VerticalPodAutoscaler is the configuration for a vertical pod autoscaler, which automatically manages pod resources based on historical and real time resource utilization.",
    annotation(
        "api-approved.kubernetes.io",
        "https://github.com/kubernetes/kubernetes/pull/63797"
    ),
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.updatePolicy.updateMode"}"#,
    printcolumn = r#"{"name":"CPU","type":"string","jsonPath":".status.recommendation.containerRecommendations[0].target.cpu"}"#,
    printcolumn = r#"{"name":"Mem","type":"string","jsonPath":".status.recommendation.containerRecommendations[0].target.memory"}"#,
    printcolumn = r#"{"name":"Provided","type":"string","jsonPath":".status.conditions[?(@.type=='RecommendationProvided')].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"MinReplicas","type":"integer","jsonPath":".spec.updatePolicy.minReplicas","priority":1}"#,
    printcolumn = r#"{"name":"OOMSeconds","type":"integer","jsonPath":".spec.updatePolicy.evictAfterOOMSeconds","priority":1}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VerticalPodAutoscalerSpec {
    /// The controller whose pods this VPA manages (required upstream).
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub target_ref: CrossVersionObjectReference,
    /// How changes are applied to pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_policy: Option<PodUpdatePolicy>,
    /// Per-container constraints on recommendations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<PodResourcePolicy>,
    /// The recommender responsible for this VPA (empty/absent: `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommenders: Option<Vec<RecommenderSelector>>,
    /// Pod-level startup boost policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_boost: Option<StartupBoost>,
}

/// `spec.recommenders[]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RecommenderSelector {
    /// The recommender's name.
    pub name: String,
}

string_enum! {
    /// `spec.updatePolicy.updateMode`.
    pub enum UpdateMode {
        /// Recommend only.
        Off => "Off",
        /// Apply at pod creation only.
        Initial => "Initial",
        /// Apply at creation and by evicting pods.
        Recreate => "Recreate",
        /// Resize in place, evict when that fails.
        InPlaceOrRecreate => "InPlaceOrRecreate",
        /// Resize in place only (newer upstream).
        InPlace => "InPlace",
        /// Deprecated alias of `Recreate`.
        Auto => "Auto",
    }
}

string_enum! {
    /// `spec.updatePolicy.evictionRequirements[].changeRequirement`.
    pub enum EvictionChangeRequirement {
        /// Evict only when the target is above the current requests.
        TargetHigherThanRequests => "TargetHigherThanRequests",
        /// Evict only when the target is below the current requests.
        TargetLowerThanRequests => "TargetLowerThanRequests",
    }
}

string_enum! {
    /// `containerPolicies[].mode`.
    pub enum ContainerScalingMode {
        /// Autoscaled.
        Auto => "Auto",
        /// Not autoscaled.
        Off => "Off",
    }
}

string_enum! {
    /// `containerPolicies[].controlledValues`.
    pub enum ContainerControlledValues {
        /// Requests, with limits scaled proportionally.
        RequestsAndLimits => "RequestsAndLimits",
        /// Requests only.
        RequestsOnly => "RequestsOnly",
    }
}

string_enum! {
    /// `startupBoost.cpu.type`.
    pub enum StartupBoostType {
        /// Multiply the request by `factor`.
        Factor => "Factor",
        /// Use `quantity` as request and limit.
        Quantity => "Quantity",
    }
}

/// `spec.updatePolicy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodUpdatePolicy {
    /// When changes are applied (default `Recreate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_mode: Option<UpdateMode>,
    /// Replicas that must be alive before the updater evicts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// Conditions that must all hold for a pod to be evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_requirements: Option<Vec<EvictionRequirement>>,
    /// Seconds after an OOM within which a pod is evicted.
    #[serde(
        default,
        rename = "evictAfterOOMSeconds",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1))]
    pub evict_after_oom_seconds: Option<i32>,
}

/// `spec.updatePolicy.evictionRequirements[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EvictionRequirement {
    /// Resources the condition applies to (any one suffices).
    pub resources: Vec<String>,
    /// The change required.
    pub change_requirement: EvictionChangeRequirement,
}

/// `spec.resourcePolicy`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodResourcePolicy {
    /// Per-container policies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_policies: Option<Vec<ContainerResourcePolicy>>,
}

/// `spec.resourcePolicy.containerPolicies[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResourcePolicy {
    /// The container's name, or `*` for all containers without their own entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Whether the container is autoscaled (default `Auto`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ContainerScalingMode>,
    /// Lower bound on recommendations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_allowed: Option<ResourceList>,
    /// Upper bound on recommendations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_allowed: Option<ResourceList>,
    /// Resources recommended (default cpu and memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlled_resources: Option<Vec<String>>,
    /// Requests only, or requests and limits (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controlled_values: Option<ContainerControlledValues>,
    /// Ratio by which memory grows after an OOM.
    #[serde(
        default,
        rename = "oomBumpUpRatio",
        skip_serializing_if = "Option::is_none"
    )]
    pub oom_bump_up_ratio: Option<Quantity>,
    /// Minimum memory increase after an OOM.
    #[serde(
        default,
        rename = "oomMinBumpUp",
        skip_serializing_if = "Option::is_none"
    )]
    pub oom_min_bump_up: Option<Quantity>,
    /// Number of memory aggregation intervals in the memory window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory_aggregation_interval_count: Option<i64>,
    /// Length of one memory aggregation interval, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory_aggregation_interval_seconds: Option<i32>,
    /// CPU percentile used as target, in (0, 1].
    #[serde(
        default,
        rename = "targetCPUPercentile",
        skip_serializing_if = "Option::is_none"
    )]
    pub target_cpu_percentile: Option<Quantity>,
    /// Memory percentile used as target, in (0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_memory_percentile: Option<Quantity>,
    /// Container-level startup boost policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_boost: Option<StartupBoost>,
}

/// `startupBoost` (pod or container level).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartupBoost {
    /// CPU boost; absent means no boost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<GenericStartupBoost>,
}

/// `startupBoost.cpu`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "(self.type == 'Factor') == has(self.factor)",
        "message": "factor is required when type is Factor and forbidden otherwise"
    },
    {
        "rule": "(self.type == 'Quantity') == has(self.quantity)",
        "message": "quantity is required when type is Quantity and forbidden otherwise"
    }
]))]
pub struct GenericStartupBoost {
    /// `Factor` or `Quantity`.
    #[serde(rename = "type")]
    pub type_: StartupBoostType,
    /// Multiplier, with `type: Factor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i32>,
    /// Absolute request and limit, with `type: Quantity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Quantity>,
    /// Seconds to stay boosted after the pod is Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<i32>,
}

/// `status` of a `VerticalPodAutoscaler`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerticalPodAutoscalerStatus {
    /// The latest recommendation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<RecommendedPodResources>,
    /// Conditions such as `RecommendationProvided`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<VerticalPodAutoscalerCondition>>,
    /// The `metadata.generation` last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
}

/// `status.recommendation`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedPodResources {
    /// One entry per autoscaled container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_recommendations: Option<Vec<RecommendedContainerResources>>,
}

/// `status.recommendation.containerRecommendations[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendedContainerResources {
    /// The container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Recommended requests (required upstream).
    pub target: ResourceList,
    /// Smallest requests still considered fine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower_bound: Option<ResourceList>,
    /// Largest requests still considered useful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper_bound: Option<ResourceList>,
    /// The target before the container policy's min/max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncapped_target: Option<ResourceList>,
}

/// Condition types upstream sets on a VPA's status.
pub mod condition_type {
    /// A recommendation was computed.
    pub const RECOMMENDATION_PROVIDED: &str = "RecommendationProvided";
    /// Some containers' recommendations rest on little history.
    pub const LOW_CONFIDENCE: &str = "LowConfidence";
    /// The target's selector matched no pods.
    pub const NO_PODS_MATCHED: &str = "NoPodsMatched";
    /// History is still being loaded.
    pub const FETCHING_HISTORY: &str = "FetchingHistory";
    /// The VPA uses configuration that will stop being supported.
    pub const CONFIG_DEPRECATED: &str = "ConfigDeprecated";
    /// The VPA's configuration is unsupported; no recommendation is given.
    pub const CONFIG_UNSUPPORTED: &str = "ConfigUnsupported";
}

/// `status.conditions[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerticalPodAutoscalerCondition {
    /// The condition type (see [`condition_type`]).
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Machine-readable reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
}

impl VerticalPodAutoscalerSpec {
    /// The update mode, with upstream's default (`Recreate`) when unset.
    #[must_use]
    pub fn effective_update_mode(&self) -> UpdateMode {
        self.update_policy
            .as_ref()
            .and_then(|p| p.update_mode.clone())
            .unwrap_or(UpdateMode::Recreate)
    }

    /// True when the recommender named `name` is responsible for this VPA:
    /// the first entry of `recommenders` names it, or the list is empty and
    /// `name` is [`DEFAULT_RECOMMENDER`].
    #[must_use]
    pub fn handled_by(&self, name: &str) -> bool {
        match self.recommenders.as_deref().and_then(<[_]>::first) {
            Some(first) => first.name == name,
            None => name == DEFAULT_RECOMMENDER,
        }
    }
}
