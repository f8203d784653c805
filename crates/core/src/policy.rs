//! The parts of a `VerticalPodAutoscaler` that decisions read, in core terms.
//!
//! `tailor-api` converts the Kubernetes objects into these types; the
//! recommender, the updater, the admission webhook and the simulator all decide
//! from them, so none of them depends on Kubernetes types.

use crate::resources::{ResourceName, Resources};
use serde::{Deserialize, Serialize};

/// How a VPA applies its recommendation (`spec.updatePolicy.updateMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UpdateMode {
    /// Recommend only; never change pods.
    Off,
    /// Set requests when pods are created; never evict or resize.
    Initial,
    /// Set requests at creation and evict pods that drift.
    Recreate,
    /// Resize in place where possible, evict otherwise.
    InPlaceOrRecreate,
    /// Deprecated upstream alias of `Recreate` (the upstream default).
    #[default]
    Auto,
}

impl UpdateMode {
    /// True for the modes in which running pods are changed.
    #[must_use]
    pub fn updates_running_pods(self) -> bool {
        matches!(
            self,
            UpdateMode::Recreate | UpdateMode::InPlaceOrRecreate | UpdateMode::Auto
        )
    }

    /// True for the modes in which the admission webhook sets requests.
    #[must_use]
    pub fn applies_at_admission(self) -> bool {
        !matches!(self, UpdateMode::Off)
    }
}

/// Whether a container's resources are autoscaled (`containerPolicies[].mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ContainerScalingMode {
    /// Autoscaled (the default).
    #[default]
    Auto,
    /// Not autoscaled: no recommendation is produced or applied.
    Off,
}

/// Which values a VPA controls (`containerPolicies[].controlledValues`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ControlledValues {
    /// Requests, with limits scaled to keep their ratio to requests (default).
    #[default]
    RequestsAndLimits,
    /// Requests only; limits are left as they are.
    RequestsOnly,
}

/// Amounts where each resource may be absent, as in a Kubernetes `ResourceList`
/// that names only some resources (a `minAllowed` with only `cpu`, say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartialResources {
    /// CPU in millicores, when given.
    pub cpu_millis: Option<i64>,
    /// Memory in bytes, when given.
    pub memory_bytes: Option<i64>,
}

impl PartialResources {
    /// Nothing given.
    pub const NONE: PartialResources = PartialResources {
        cpu_millis: None,
        memory_bytes: None,
    };

    /// The amount of one resource, when given.
    #[must_use]
    pub const fn get(&self, name: ResourceName) -> Option<i64> {
        match name {
            ResourceName::Cpu => self.cpu_millis,
            ResourceName::Memory => self.memory_bytes,
        }
    }

    /// A copy with one resource set (or cleared).
    #[must_use]
    pub const fn with(mut self, name: ResourceName, value: Option<i64>) -> Self {
        match name {
            ResourceName::Cpu => self.cpu_millis = value,
            ResourceName::Memory => self.memory_bytes = value,
        }
        self
    }

    /// True when no resource is given.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.cpu_millis.is_none() && self.memory_bytes.is_none()
    }
}

impl From<Resources> for PartialResources {
    fn from(r: Resources) -> Self {
        PartialResources {
            cpu_millis: Some(r.cpu_millis),
            memory_bytes: Some(r.memory_bytes),
        }
    }
}

/// Per-container policy (`spec.resourcePolicy.containerPolicies[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPolicy {
    /// The container this applies to, or `"*"` for every container without its
    /// own entry.
    pub container_name: String,
    /// Whether the container is autoscaled.
    pub mode: ContainerScalingMode,
    /// Lower cap on recommendations.
    pub min_allowed: PartialResources,
    /// Upper cap on recommendations.
    pub max_allowed: PartialResources,
    /// Resources recommended and applied (default: CPU and memory).
    pub controlled_resources: Vec<ResourceName>,
    /// Requests only, or requests and limits.
    pub controlled_values: ControlledValues,
}

/// The container name that matches every container without its own policy.
pub const DEFAULT_CONTAINER_POLICY: &str = "*";

impl ContainerPolicy {
    /// Upstream's defaults for a container with no policy at all.
    #[must_use]
    pub fn default_for(container_name: impl Into<String>) -> Self {
        ContainerPolicy {
            container_name: container_name.into(),
            mode: ContainerScalingMode::Auto,
            min_allowed: PartialResources::NONE,
            max_allowed: PartialResources::NONE,
            controlled_resources: ResourceName::ALL.to_vec(),
            controlled_values: ControlledValues::RequestsAndLimits,
        }
    }

    /// True when this policy lets the VPA control `resource`.
    #[must_use]
    pub fn controls(&self, resource: ResourceName) -> bool {
        self.controlled_resources.contains(&resource)
    }
}

/// `spec.resourcePolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourcePolicy {
    /// The container policies, as written.
    pub container_policies: Vec<ContainerPolicy>,
}

impl ResourcePolicy {
    /// The policy for a container: its own entry, else the `"*"` entry, else
    /// none (upstream's lookup order).
    #[must_use]
    pub fn for_container(&self, container_name: &str) -> Option<&ContainerPolicy> {
        self.container_policies
            .iter()
            .find(|p| p.container_name == container_name)
            .or_else(|| {
                self.container_policies
                    .iter()
                    .find(|p| p.container_name == DEFAULT_CONTAINER_POLICY)
            })
    }

    /// The effective policy for a container, with upstream defaults when none
    /// is written.
    #[must_use]
    pub fn effective(&self, container_name: &str) -> ContainerPolicy {
        self.for_container(container_name)
            .cloned()
            .unwrap_or_else(|| ContainerPolicy::default_for(container_name))
    }
}

/// One container's recommendation (`status.recommendation.containerRecommendations[]`).
///
/// Each amount may lack a resource that the policy does not control.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecommendation {
    /// The container's name.
    pub container_name: String,
    /// The recommended requests.
    pub target: PartialResources,
    /// The smallest requests still considered fine.
    pub lower_bound: PartialResources,
    /// The largest requests still considered fine.
    pub upper_bound: PartialResources,
    /// The target before policy min/max capping.
    pub uncapped_target: PartialResources,
}

/// A pod's recommendation: one entry per container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecommendation {
    /// Per-container recommendations.
    pub container_recommendations: Vec<ContainerRecommendation>,
}

impl PodRecommendation {
    /// The recommendation for one container, if any.
    #[must_use]
    pub fn for_container(&self, container_name: &str) -> Option<&ContainerRecommendation> {
        self.container_recommendations
            .iter()
            .find(|r| r.container_name == container_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, cpu_min: i64) -> ContainerPolicy {
        ContainerPolicy {
            min_allowed: PartialResources {
                cpu_millis: Some(cpu_min),
                memory_bytes: None,
            },
            ..ContainerPolicy::default_for(name)
        }
    }

    #[test]
    fn container_policy_lookup_prefers_exact_name_then_star() {
        let rp = ResourcePolicy {
            container_policies: vec![policy("*", 1), policy("app", 2)],
        };
        assert_eq!(
            rp.for_container("app").map(|p| p.min_allowed.cpu_millis),
            Some(Some(2))
        );
        assert_eq!(
            rp.for_container("sidecar")
                .map(|p| p.container_name.as_str()),
            Some("*")
        );
        let none = ResourcePolicy::default();
        assert!(none.for_container("app").is_none());
        let eff = none.effective("app");
        assert!(eff.controls(ResourceName::Cpu) && eff.controls(ResourceName::Memory));
        assert_eq!(eff.controlled_values, ControlledValues::RequestsAndLimits);
    }

    #[test]
    fn update_modes() {
        assert!(UpdateMode::Auto.updates_running_pods());
        assert!(UpdateMode::InPlaceOrRecreate.updates_running_pods());
        assert!(!UpdateMode::Initial.updates_running_pods());
        assert!(UpdateMode::Initial.applies_at_admission());
        assert!(!UpdateMode::Off.applies_at_admission());
    }

    #[test]
    fn partial_resources() {
        let p = PartialResources::from(Resources::new(5, 6));
        assert_eq!(p.get(ResourceName::Memory), Some(6));
        let q = p.with(ResourceName::Cpu, None);
        assert_eq!(q.get(ResourceName::Cpu), None);
        assert!(!q.is_empty());
        assert!(PartialResources::NONE.is_empty());
    }
}
