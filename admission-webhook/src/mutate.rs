//! One pod being created → its JSON patch: the matching VPA's
//! recommendation applied by `tailor_core::admission::compute_pod_patch`,
//! then the cost placement operations. Pure: reads the index, writes
//! nothing.

use crate::index::{Index, LimitRangeError, MatchError};
use crate::placement::{self, PlacementConfig};
use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeMap;
use tailor_api::convert::{ConversionError, partial_resources};
use tailor_core::admission::{self, AdmissionContainer, AdmissionPod, PatchOperation};
use tailor_core::policy::{PartialResources, PodRecommendation};
use tailor_core::quantity::QuantityError;

/// Why a pod could not be processed; the pod is admitted unchanged.
#[derive(Debug, thiserror::Error)]
pub enum MutateError {
    /// The owner chain could not be followed.
    #[error("matching a VPA: {0}")]
    Match(#[from] MatchError),
    /// The matching VPA has a field core cannot read.
    #[error(transparent)]
    Vpa(#[from] ConversionError),
    /// A LimitRange in the namespace has an invalid quantity.
    #[error(transparent)]
    LimitRange(#[from] LimitRangeError),
    /// A container's resource quantity is invalid.
    #[error("pod {pod}: spec.containers[{index}].resources.{field}: {source}")]
    PodQuantity {
        /// `namespace/name` (or generateName) of the pod.
        pod: String,
        /// Container index.
        index: usize,
        /// `requests.cpu` and the like.
        field: String,
        /// Why the quantity is invalid.
        source: Box<QuantityError>,
    },
    /// A patch value could not be serialised.
    #[error("serialising the patch: {0}")]
    Serialize(#[from] serde_json::Error),
}

impl MutateError {
    /// A short stable label for metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            MutateError::Match(_) => "owner_chain",
            MutateError::Vpa(_) => "vpa_invalid",
            MutateError::LimitRange(_) => "limit_range_invalid",
            MutateError::PodQuantity { .. } => "pod_quantity_invalid",
            MutateError::Serialize(_) => "serialize",
        }
    }
}

/// What was decided for one pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mutation {
    /// The VPA that matched, if any.
    pub vpa: Option<String>,
    /// True when the recommendation changed something.
    pub resources_patched: bool,
    /// True when placement operations were added.
    pub placed: bool,
    /// All operations, resources first.
    pub operations: Vec<PatchOperation>,
}

fn pod_name(pod: &Pod) -> String {
    let name = pod
        .metadata
        .name
        .as_deref()
        .or(pod.metadata.generate_name.as_deref())
        .unwrap_or_default();
    format!(
        "{}/{name}",
        pod.metadata.namespace.as_deref().unwrap_or_default()
    )
}

type QuantityMap = BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>;

fn partial(
    pod: &Pod,
    index: usize,
    field: &str,
    list: Option<&QuantityMap>,
) -> Result<PartialResources, MutateError> {
    partial_resources(list).map_err(|bad| MutateError::PodQuantity {
        pod: pod_name(pod),
        index,
        field: format!("{field}.{}", bad.resource),
        source: Box::new(bad.source),
    })
}

/// The pod's regular containers (not init or ephemeral ones, as upstream)
/// in core terms.
///
/// # Errors
/// A CPU or memory quantity that does not parse.
pub fn admission_pod(pod: &Pod) -> Result<AdmissionPod, MutateError> {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(containers.len());
    for (i, c) in containers.iter().enumerate() {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
        out.push(AdmissionContainer {
            name: c.name.clone(),
            requests: partial(pod, i, "requests", requests)?,
            limits: partial(pod, i, "limits", limits)?,
            // As upstream: an empty map is written over like a missing one.
            has_requests_field: requests.is_some_and(|m| !m.is_empty()),
            has_limits_field: limits.is_some_and(|m| !m.is_empty()),
        });
    }
    Ok(AdmissionPod {
        containers: out,
        has_annotations: pod.metadata.annotations.is_some(),
    })
}

/// Decides the patch for one pod being created.
///
/// # Errors
/// See [`MutateError`]; the caller admits the pod unchanged.
pub fn mutate(
    index: &Index,
    placement_config: &PlacementConfig,
    pod: &Pod,
) -> Result<Mutation, MutateError> {
    let mut out = Mutation::default();
    if let Some(vpa) = index.match_vpa(pod)? {
        out.vpa = Some(vpa.name().to_owned());
        let converted = vpa.converted.as_ref().map_err(Clone::clone)?;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let limits = index.limits(namespace)?;
        let empty = PodRecommendation::default();
        let recommendation = converted.recommendation.as_ref().unwrap_or(&empty);
        let patch = admission::compute_pod_patch(
            vpa.name(),
            converted.mode,
            &admission_pod(pod)?,
            recommendation,
            &converted.policy,
            &limits,
        );
        out.resources_patched = !patch.is_empty();
        out.operations = patch.operations;
    }
    let annotation = index.annotation(pod, &placement_config.annotation);
    if placement::opted_in(placement_config, annotation) {
        let ops = placement::placement_patch(placement_config, pod)?;
        out.placed = !ops.is_empty();
        out.operations.extend(ops);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::{from_json, index_with_web, vpa};

    fn web_pod(resources: serde_json::Value, annotations: serde_json::Value) -> Pod {
        from_json(serde_json::json!({
            "metadata": {
                "generateName": "web-7d9f-", "namespace": "shop", "labels": {"app": "web"},
                "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f", "uid": "r1", "controller": true}]
            },
            "spec": {"containers": [{"name": "app", "image": "nginx", "resources": resources}]}
        }))
    }

    fn recommended_vpa(mode: &str) -> tailor_api::VerticalPodAutoscaler {
        vpa(
            "web-vpa",
            "Deployment",
            "web",
            serde_json::json!({
                "updatePolicy": {"updateMode": mode},
                "status": {"recommendation": {"containerRecommendations": [
                    {"containerName": "app", "target": {"cpu": "250m", "memory": "256Mi"},
                     "lowerBound": {"cpu": "100m", "memory": "128Mi"}, "upperBound": {"cpu": "1", "memory": "1Gi"}}
                ]}}
            }),
        )
    }

    fn ops(m: &Mutation) -> serde_json::Value {
        serde_json::to_value(&m.operations).unwrap()
    }

    #[test]
    fn recommendation_is_applied_with_limit_ratio_and_annotations() {
        let mut index = index_with_web();
        index.apply_vpa(recommended_vpa("Recreate"));
        let pod = web_pod(
            serde_json::json!({"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"cpu": "200m"}}),
            serde_json::Value::Null,
        );
        let m = mutate(&index, &PlacementConfig::default(), &pod).unwrap();
        assert_eq!(m.vpa.as_deref(), Some("web-vpa"));
        assert!(m.resources_patched);
        assert!(!m.placed);
        assert_eq!(
            ops(&m),
            serde_json::json!([
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "250m"},
                {"op": "add", "path": "/spec/containers/0/resources/requests/memory", "value": "268435456"},
                {"op": "add", "path": "/spec/containers/0/resources/limits/cpu", "value": "500m"},
                {"op": "add", "path": "/metadata/annotations/vpaUpdates",
                 "value": "Pod resources updated by web-vpa: container 0: memory: limit NOT set since originalLimit is nil or 0, cpu request, memory request, cpu limit"},
                {"op": "add", "path": "/metadata/annotations/vpaObservedContainers", "value": "app"}
            ])
        );
    }

    #[test]
    fn limit_range_caps_the_request() {
        let mut index = index_with_web();
        index.apply_vpa(recommended_vpa("Initial"));
        index.apply_limit_range(&from_json(serde_json::json!({
            "metadata": {"name": "lr", "namespace": "shop"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "200m"}}]}
        })));
        // The LimitRange max bounds the limit; with request = limit it
        // bounds the request too.
        let pod = web_pod(
            serde_json::json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "100m"}}),
            serde_json::json!({}),
        );
        let m = mutate(&index, &PlacementConfig::default(), &pod).unwrap();
        let json = ops(&m);
        assert_eq!(json[0]["path"], "/spec/containers/0/resources/requests/cpu");
        assert_eq!(json[0]["value"], "200m", "{json}");
        assert_eq!(json[2]["path"], "/spec/containers/0/resources/limits/cpu");
        assert_eq!(json[2]["value"], "200m", "{json}");
    }

    #[rstest::rstest]
    #[case::off("Off")]
    fn mode_off_gives_no_patch(#[case] mode: &str) {
        let mut index = index_with_web();
        index.apply_vpa(recommended_vpa(mode));
        let pod = web_pod(serde_json::json!({}), serde_json::Value::Null);
        let m = mutate(&index, &PlacementConfig::default(), &pod).unwrap();
        assert_eq!(m, Mutation::default());
    }

    #[test]
    fn vpa_without_recommendation_gives_no_patch() {
        let mut index = index_with_web();
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        let pod = web_pod(serde_json::json!({}), serde_json::Value::Null);
        let m = mutate(&index, &PlacementConfig::default(), &pod).unwrap();
        assert_eq!(m.vpa.as_deref(), Some("web-vpa"));
        assert!(m.operations.is_empty());
    }

    #[test]
    fn placement_follows_the_owner_annotation_when_enabled() {
        let index = index_with_web();
        let pod = web_pod(serde_json::json!({}), serde_json::Value::Null);
        let off = mutate(&index, &PlacementConfig::default(), &pod).unwrap();
        assert!(off.operations.is_empty());
        let config = PlacementConfig {
            enabled: true,
            ..PlacementConfig::default()
        };
        let on = mutate(&index, &config, &pod).unwrap();
        assert!(on.placed);
        assert_eq!(on.vpa, None);
        assert_eq!(ops(&on)[0]["path"], "/spec/tolerations");
        assert_eq!(ops(&on)[1]["path"], "/spec/affinity");
        // The pod's own "false" overrides the Deployment's "true".
        let says_no = web_pod(
            serde_json::json!({}),
            serde_json::json!({"tailor.dev/interruption-tolerant": "false"}),
        );
        assert!(
            mutate(&index, &config, &says_no)
                .unwrap()
                .operations
                .is_empty()
        );
    }

    #[test]
    fn invalid_vpa_is_an_error_not_a_panic() {
        let mut index = index_with_web();
        index.apply_vpa(vpa(
            "web-vpa",
            "Deployment",
            "web",
            serde_json::json!({"status": {"recommendation": {"containerRecommendations": [
                {"containerName": "app", "target": {"cpu": "a lot"}}]}}}),
        ));
        let pod = web_pod(serde_json::json!({}), serde_json::Value::Null);
        let err = mutate(&index, &PlacementConfig::default(), &pod).unwrap_err();
        assert_eq!(err.label(), "vpa_invalid");
    }

    #[test]
    fn invalid_pod_quantity_names_the_container_field() {
        let mut index = index_with_web();
        index.apply_vpa(recommended_vpa("Recreate"));
        let pod = web_pod(
            serde_json::json!({"limits": {"memory": "12 GB"}}),
            serde_json::Value::Null,
        );
        let err = mutate(&index, &PlacementConfig::default(), &pod).unwrap_err();
        assert_eq!(err.label(), "pod_quantity_invalid");
        assert!(
            err.to_string()
                .starts_with("pod shop/web-7d9f-: spec.containers[0].resources.limits.memory"),
            "{err}"
        );
    }
}
