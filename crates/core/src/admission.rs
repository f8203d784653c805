//! The admission webhook's pod patch: new requests and limits for a pod being
//! created, and the RFC 6902 JSON Patch that applies them.
//!
//! Follows the upstream VPA admission controller: the recommendation is capped
//! (pod LimitRange, then container LimitRange, then policy min/max, then — for
//! `RequestsOnly` — the container's own limit), requests are set to the capped
//! target, and with `RequestsAndLimits` each limit is scaled to keep its
//! original ratio to the request. Only `spec.containers` are patched.

use crate::policy::{
    ContainerRecommendation, ContainerScalingMode, ControlledValues, PartialResources,
    PodRecommendation, ResourcePolicy, UpdateMode,
};
use crate::resources::ResourceName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Annotation listing what the webhook changed (upstream `vpaUpdates`).
pub const RESOURCE_UPDATES_ANNOTATION: &str = "vpaUpdates";
/// Annotation listing the containers present at admission (upstream `vpaObservedContainers`).
pub const OBSERVED_CONTAINERS_ANNOTATION: &str = "vpaObservedContainers";
/// Separator of container names in [`OBSERVED_CONTAINERS_ANNOTATION`].
pub const OBSERVED_CONTAINERS_SEPARATOR: &str = ", ";

/// One `LimitRange` item (type `Container` or `Pod`), already merged across
/// every LimitRange of the namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitRangeItem {
    /// `min`: the smallest request and limit allowed.
    pub min: PartialResources,
    /// `max`: the largest limit allowed.
    pub max: PartialResources,
    /// `default`: the limit given to containers that set none.
    pub default_limit: PartialResources,
    /// `defaultRequest`: the request given to containers that set none.
    pub default_request: PartialResources,
    /// `maxLimitRequestRatio`, in thousandths (1500 = a limit may be 1.5× the request).
    pub max_limit_request_ratio_milli: PartialResources,
}

/// The LimitRange constraints of a namespace, by item type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceLimits {
    /// The merged `type: Container` item, if any.
    pub container: Option<LimitRangeItem>,
    /// The merged `type: Pod` item, if any.
    pub pod: Option<LimitRangeItem>,
}

/// A container of the pod being admitted, as written in `spec.containers[i]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionContainer {
    /// The container's name.
    pub name: String,
    /// `resources.requests` (CPU and memory only).
    pub requests: PartialResources,
    /// `resources.limits` (CPU and memory only).
    pub limits: PartialResources,
    /// True when `resources.requests` is present in the object, even if it
    /// names neither CPU nor memory: the patch must then not replace it.
    pub has_requests_field: bool,
    /// True when `resources.limits` is present in the object.
    pub has_limits_field: bool,
}

impl AdmissionContainer {
    /// A container whose request and limit maps are present exactly when they
    /// name CPU or memory (the common case; set the flags by hand otherwise).
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        requests: PartialResources,
        limits: PartialResources,
    ) -> Self {
        AdmissionContainer {
            name: name.into(),
            requests,
            limits,
            has_requests_field: !requests.is_empty(),
            has_limits_field: !limits.is_empty(),
        }
    }
}

/// The pod being admitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionPod {
    /// `spec.containers`, in order. Init containers are never patched.
    pub containers: Vec<AdmissionContainer>,
    /// True when `metadata.annotations` is present (possibly empty).
    pub has_annotations: bool,
}

/// One RFC 6902 JSON Patch operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PatchOperation {
    /// The operation (`add`).
    pub op: String,
    /// A JSON Pointer (RFC 6901), escaped.
    pub path: String,
    /// The value to add.
    pub value: serde_json::Value,
}

impl PatchOperation {
    fn add(path: String, value: serde_json::Value) -> Self {
        PatchOperation {
            op: "add".to_owned(),
            path,
            value,
        }
    }
}

/// New requests and limits for one container; absent resources stay as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerResources {
    /// Requests to set.
    pub requests: PartialResources,
    /// Limits to set.
    pub limits: PartialResources,
}

/// What the webhook does to one pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdmissionPatch {
    /// Per `spec.containers[i]`: the new resources, or `None` when the
    /// container has no recommendation (left untouched).
    pub containers: Vec<Option<ContainerResources>>,
    /// The `vpaUpdates` annotation value, when anything changes.
    pub updates_annotation: Option<String>,
    /// The JSON Patch; empty when nothing changes.
    pub operations: Vec<PatchOperation>,
}

impl AdmissionPatch {
    /// True when the pod is admitted unchanged.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

/// Escapes one JSON Pointer reference token (RFC 6901: `~` → `~0`, `/` → `~1`).
#[must_use]
pub fn escape_json_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Formats CPU millicores as a Kubernetes quantity: `"2"` for whole cores, `"250m"` otherwise.
// Local until crates/core/src/quantity.rs lands (`format_cpu_millis`).
fn format_cpu_millis(millis: i64) -> String {
    if millis % 1000 == 0 {
        (millis / 1000).to_string()
    } else {
        format!("{millis}m")
    }
}

/// Formats memory as a plain byte count, which Kubernetes accepts as a quantity.
// Local until crates/core/src/quantity.rs lands (`format_memory_bytes`).
fn format_memory_bytes(bytes: i64) -> String {
    bytes.to_string()
}

fn format_quantity(resource: ResourceName, amount: i64) -> String {
    match resource {
        ResourceName::Cpu => format_cpu_millis(amount),
        ResourceName::Memory => format_memory_bytes(amount),
    }
}

/// `value × numerator / denominator` in 128-bit integers, truncated and capped at
/// `i64::MAX`; the flag says whether the cap was hit. Units are the caller's
/// (millicores for CPU, bytes for memory), as upstream's milli-unit maths.
fn scale_proportionally(value: i64, numerator: i64, denominator: i64) -> (i64, bool) {
    if denominator == 0 {
        return (value, false);
    }
    let scaled = i128::from(value) * i128::from(numerator) / i128::from(denominator);
    match i64::try_from(scaled) {
        Ok(v) => (v, false),
        Err(_) if scaled > 0 => (i64::MAX, true),
        Err(_) => (i64::MIN, true),
    }
}

/// Treats zero as unset, as upstream's `Value() == 0` checks do.
fn nonzero(v: Option<i64>) -> Option<i64> {
    v.filter(|&x| x != 0)
}

/// The limit that keeps the original limit/request ratio for a new request
/// (upstream `getProportionalResourceLimit`).
///
/// Returns the new limit (if any) and, when no limit is set or the ratio could
/// not be kept, upstream's explanatory annotation.
#[must_use]
pub fn proportional_limit(
    resource: ResourceName,
    original_limit: Option<i64>,
    original_request: Option<i64>,
    new_request: Option<i64>,
    default_limit: Option<i64>,
) -> (Option<i64>, Option<String>) {
    let Some(limit) = nonzero(original_limit).or(nonzero(default_limit)) else {
        return (
            None,
            Some(format!(
                "{resource}: limit NOT set since originalLimit is nil or 0"
            )),
        );
    };
    let Some(new_request) = nonzero(new_request) else {
        return (
            None,
            Some(format!(
                "{resource}: limit NOT set since recommendedRequest is nil or 0"
            )),
        );
    };
    // No request: Kubernetes treats it as equal to the limit.
    let Some(request) = nonzero(original_request) else {
        return (Some(new_request), None);
    };
    if request == limit {
        return (Some(new_request), None);
    }
    let (scaled, capped) = scale_proportionally(limit, new_request, request);
    let note = capped.then(|| {
        format!("{resource}: failed to keep limit to request ratio; capping limit to int64")
    });
    (Some(scaled), note)
}

/// The request bound that keeps a limit within `boundary` at the container's
/// limit/request ratio (upstream `GetBoundaryRequest`); `None` means no bound.
fn boundary_request(
    original_request: Option<i64>,
    original_limit: Option<i64>,
    boundary: Option<i64>,
    default_limit: Option<i64>,
) -> Option<i64> {
    let boundary = nonzero(boundary)?;
    let limit = nonzero(original_limit).or(nonzero(default_limit))?;
    let Some(request) = nonzero(original_request) else {
        return Some(boundary);
    };
    Some(scale_proportionally(request, boundary, limit).0)
}

/// Which amounts of a recommendation a capping step works on.
#[derive(Clone, Copy)]
enum Field {
    Target,
    Lower,
    Upper,
}

fn field_mut(rec: &mut ContainerRecommendation, field: Field) -> &mut PartialResources {
    match field {
        Field::Target => &mut rec.target,
        Field::Lower => &mut rec.lower_bound,
        Field::Upper => &mut rec.upper_bound,
    }
}

fn field(rec: &ContainerRecommendation, field: Field) -> &PartialResources {
    match field {
        Field::Target => &rec.target,
        Field::Lower => &rec.lower_bound,
        Field::Upper => &rec.upper_bound,
    }
}

/// The request a container effectively has: its own, else the LimitRange default.
fn effective_request(
    requests: &PartialResources,
    item: Option<&LimitRangeItem>,
    resource: ResourceName,
) -> Option<i64> {
    nonzero(requests.get(resource))
        .or_else(|| item.and_then(|i| nonzero(i.default_request.get(resource))))
}

/// Scales the recommendations of all containers so that the pod's total fits
/// the pod LimitRange (upstream `applyPodLimitRange`), for one resource and field.
fn apply_pod_limit_range(
    recs: &mut [ContainerRecommendation],
    containers: &[AdmissionContainer],
    item: &LimitRangeItem,
    resource: ResourceName,
    fld: Field,
) {
    let min = item.min.get(resource).unwrap_or(0);
    let max = item.max.get(resource).unwrap_or(0);
    let default_limit = item.default_limit.get(resource);

    let mut sum_limit: i64 = 0;
    let mut sum_rec: i64 = 0;
    for c in containers {
        let request = c.requests.get(resource);
        let recommended = match recs.iter().find(|r| r.container_name == c.name) {
            Some(r) => field(r, fld).get(resource).unwrap_or(0),
            // No recommendation: the container keeps its request.
            None => request.unwrap_or(0),
        };
        let (limit, _) = proportional_limit(
            resource,
            c.limits.get(resource),
            request,
            Some(recommended),
            default_limit,
        );
        sum_limit = sum_limit.saturating_add(limit.unwrap_or(0));
        sum_rec = sum_rec.saturating_add(recommended);
    }

    if min <= sum_limit && min <= sum_rec && (max == 0 || max >= sum_limit) {
        return;
    }
    if min > sum_rec && sum_limit != 0 {
        for r in recs.iter_mut() {
            let values = field_mut(r, fld);
            if let Some(v) = values.get(resource) {
                *values = values.with(resource, Some(scale_proportionally(v, min, sum_rec).0));
            }
        }
        return;
    }
    if sum_limit == 0 {
        return;
    }
    let mut target_total = 0;
    if min > sum_limit {
        target_total = min;
    }
    if max != 0 && max < sum_limit {
        target_total = max;
    }
    for r in recs.iter_mut() {
        let values = field_mut(r, fld);
        if let Some(v) = values.get(resource) {
            *values = values.with(
                resource,
                Some(scale_proportionally(v, target_total, sum_limit).0),
            );
        }
    }
}

/// Raises `values` to `min` and lowers it to `max` where those are set and
/// non-zero, pushing `"<resource> <why>"` notes when `notes` is given.
fn cap_to(
    values: &mut PartialResources,
    min: &PartialResources,
    max: &PartialResources,
    min_note: &str,
    max_note: &str,
    mut notes: Option<&mut Vec<String>>,
) {
    for resource in ResourceName::ALL {
        let Some(mut v) = values.get(resource) else {
            continue;
        };
        if let Some(lo) = nonzero(min.get(resource))
            && v < lo
        {
            v = lo;
            if let Some(n) = notes.as_deref_mut() {
                n.push(format!("{resource} {min_note}"));
            }
        }
        if let Some(hi) = nonzero(max.get(resource))
            && v > hi
        {
            v = hi;
            if let Some(n) = notes.as_deref_mut() {
                n.push(format!("{resource} {max_note}"));
            }
        }
        *values = values.with(resource, Some(v));
    }
}

/// Caps one container's recommendation: container LimitRange, then policy
/// min/max, then (RequestsOnly) the container's limit (upstream
/// `getCappedRecommendationForContainer`). Notes are produced for the target only.
fn cap_container(
    rec: &mut ContainerRecommendation,
    container: &AdmissionContainer,
    policy: &ResourcePolicy,
    item: Option<&LimitRangeItem>,
    notes: &mut Vec<String>,
) {
    cap_container_amounts(
        &container.name,
        &container.requests,
        &container.limits,
        [&mut rec.target, &mut rec.lower_bound, &mut rec.upper_bound],
        policy,
        item,
        Some(notes),
    );
}

/// [`cap_container`] on bare amounts (target, lower bound, upper bound), so the
/// updater can cap without copying recommendations. No notes when `notes` is `None`.
pub(crate) fn cap_container_amounts(
    name: &str,
    requests: &PartialResources,
    limits: &PartialResources,
    amounts: [&mut PartialResources; 3],
    policy: &ResourcePolicy,
    item: Option<&LimitRangeItem>,
    mut notes: Option<&mut Vec<String>>,
) {
    let own_policy = policy.for_container(name);
    let controlled_values =
        own_policy.map_or(ControlledValues::RequestsAndLimits, |p| p.controlled_values);

    // LimitRange bounds expressed on the request, at the container's own ratio.
    let (lr_min, lr_max) = match item {
        Some(item) => {
            let mut lo = PartialResources::NONE;
            let mut hi = PartialResources::NONE;
            for resource in ResourceName::ALL {
                let request = effective_request(requests, Some(item), resource);
                let limit = limits.get(resource);
                let default_limit = item.default_limit.get(resource);
                let min_for_limit =
                    boundary_request(request, limit, item.min.get(resource), default_limit);
                // Both the request and the limit must be at least `min`.
                let min_for_request = nonzero(item.min.get(resource));
                let min_bound = match (min_for_limit, min_for_request) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                lo = lo.with(resource, min_bound);
                hi = hi.with(
                    resource,
                    boundary_request(request, limit, item.max.get(resource), default_limit),
                );
            }
            (lo, hi)
        }
        None => (PartialResources::NONE, PartialResources::NONE),
    };

    for (index, values) in amounts.into_iter().enumerate() {
        // Index 0 is the target, the only amount upstream annotates.
        let mut target_notes = if index == 0 {
            notes.as_deref_mut()
        } else {
            None
        };
        if item.is_some() {
            cap_to(
                values,
                &lr_min,
                &lr_max,
                "capped to fit Min in container LimitRange",
                "capped to fit Max in container LimitRange",
                target_notes.as_deref_mut(),
            );
        }
        if let Some(p) = own_policy {
            cap_to(
                values,
                &p.min_allowed,
                &p.max_allowed,
                "capped to minAllowed",
                "capped to maxAllowed",
                target_notes.as_deref_mut(),
            );
        }
        if controlled_values == ControlledValues::RequestsOnly {
            for resource in ResourceName::ALL {
                if let (Some(v), Some(limit)) = (values.get(resource), limits.get(resource))
                    && v > limit
                {
                    *values = values.with(resource, Some(limit));
                    if let Some(n) = target_notes.as_deref_mut() {
                        n.push(format!("{resource} capped to container limit"));
                    }
                }
            }
        }
    }
}

/// A recommendation capped for one pod, with upstream's capping notes per container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CappedRecommendation {
    /// The capped recommendation; only containers present in the pod.
    pub recommendation: PodRecommendation,
    /// Capping notes per container name (`"cpu capped to maxAllowed"`, …).
    pub notes: BTreeMap<String, Vec<String>>,
}

/// Caps a VPA's recommendation for one pod in upstream's order: pod LimitRange
/// (scaling all containers together), then per container the container
/// LimitRange, the policy's min/max and, for `RequestsOnly`, the container limit.
#[must_use]
pub fn cap_recommendation(
    containers: &[AdmissionContainer],
    recommendation: &PodRecommendation,
    policy: &ResourcePolicy,
    limits: &NamespaceLimits,
) -> CappedRecommendation {
    let mut recs = recommendation.container_recommendations.clone();
    if let Some(pod_item) = &limits.pod {
        // Containers without a recommendation keep their requests, and take
        // part in the pod total (upstream `insertRequestsForMissingRecommendations`).
        for c in containers {
            if !c.requests.is_empty() && !recs.iter().any(|r| r.container_name == c.name) {
                recs.push(ContainerRecommendation {
                    container_name: c.name.clone(),
                    target: c.requests,
                    lower_bound: PartialResources::NONE,
                    upper_bound: PartialResources::NONE,
                    uncapped_target: c.requests,
                });
            }
        }
        for fld in [Field::Upper, Field::Target, Field::Lower] {
            for resource in ResourceName::ALL {
                apply_pod_limit_range(&mut recs, containers, pod_item, resource, fld);
            }
        }
    }

    let mut out = CappedRecommendation::default();
    for mut rec in recs {
        let Some(container) = containers.iter().find(|c| c.name == rec.container_name) else {
            continue;
        };
        let mut notes = Vec::new();
        cap_container(
            &mut rec,
            container,
            policy,
            limits.container.as_ref(),
            &mut notes,
        );
        if !notes.is_empty() {
            out.notes.insert(rec.container_name.clone(), notes);
        }
        out.recommendation.container_recommendations.push(rec);
    }
    out
}

/// Keeps only the resources the container's policy controls; `None` for
/// `mode: Off` containers.
fn controlled_target(
    rec: &ContainerRecommendation,
    policy: &ResourcePolicy,
) -> Option<PartialResources> {
    let p = policy.effective(&rec.container_name);
    if p.mode == ContainerScalingMode::Off {
        return None;
    }
    let mut target = rec.target;
    for resource in ResourceName::ALL {
        if !p.controls(resource) {
            target = target.with(resource, None);
        }
    }
    Some(target)
}

/// Computes the webhook's patch for a pod matched by the VPA `vpa_name`.
///
/// Returns an empty patch when the mode is `Off` or when every value the patch
/// would set is already what the pod has.
#[must_use]
pub fn compute_pod_patch(
    vpa_name: &str,
    mode: UpdateMode,
    pod: &AdmissionPod,
    recommendation: &PodRecommendation,
    policy: &ResourcePolicy,
    limits: &NamespaceLimits,
) -> AdmissionPatch {
    if !mode.applies_at_admission() {
        return AdmissionPatch::default();
    }
    let capped = cap_recommendation(&pod.containers, recommendation, policy, limits);
    let container_item = limits.container.as_ref();

    let mut result = AdmissionPatch::default();
    let mut value_ops = Vec::new();
    let mut container_updates = Vec::new();
    let mut any_change = false;

    for (i, container) in pod.containers.iter().enumerate() {
        let Some(rec) = capped.recommendation.for_container(&container.name) else {
            result.containers.push(None);
            continue;
        };
        let Some(requests) = controlled_target(rec, policy) else {
            result.containers.push(None);
            continue;
        };
        let mut notes = capped
            .notes
            .get(&container.name)
            .cloned()
            .unwrap_or_default();
        let mut new_limits = PartialResources::NONE;
        let controlled_values = policy.effective(&container.name).controlled_values;
        if controlled_values == ControlledValues::RequestsAndLimits {
            let mut limit_notes = Vec::new();
            for resource in ResourceName::ALL {
                let (limit, note) = proportional_limit(
                    resource,
                    container.limits.get(resource),
                    effective_request(&container.requests, container_item, resource),
                    requests.get(resource),
                    container_item.and_then(|i| i.default_limit.get(resource)),
                );
                // Keep within maxLimitRequestRatio, or LimitRanger would reject the pod.
                let limit = match (limit, requests.get(resource), container_item) {
                    (Some(l), Some(req), Some(item)) => {
                        match nonzero(item.max_limit_request_ratio_milli.get(resource)) {
                            Some(ratio) => Some(l.min(scale_proportionally(req, ratio, 1000).0)),
                            None => Some(l),
                        }
                    }
                    (l, _, _) => l,
                };
                new_limits = new_limits.with(resource, limit);
                limit_notes.extend(note);
            }
            // Upstream reports limit notes only when some limit is set.
            if !new_limits.is_empty() {
                notes.extend(limit_notes);
            }
        }
        let resources = ContainerResources {
            requests,
            limits: new_limits,
        };
        result.containers.push(Some(resources));

        let mut ops = Vec::new();
        if !container.has_requests_field && !container.has_limits_field {
            ops.push(PatchOperation::add(
                format!("/spec/containers/{i}/resources"),
                serde_json::json!({}),
            ));
        }
        for (values, current, has_field, field_name, label) in [
            (
                &requests,
                &container.requests,
                container.has_requests_field,
                "requests",
                "request",
            ),
            (
                &new_limits,
                &container.limits,
                container.has_limits_field,
                "limits",
                "limit",
            ),
        ] {
            if !has_field && !values.is_empty() {
                ops.push(PatchOperation::add(
                    format!("/spec/containers/{i}/resources/{field_name}"),
                    serde_json::json!({}),
                ));
            }
            for resource in ResourceName::ALL {
                let Some(v) = values.get(resource) else {
                    continue;
                };
                if current.get(resource) != Some(v) {
                    any_change = true;
                }
                ops.push(PatchOperation::add(
                    format!("/spec/containers/{i}/resources/{field_name}/{resource}"),
                    serde_json::Value::String(format_quantity(resource, v)),
                ));
                notes.push(format!("{resource} {label}"));
            }
        }
        if !ops.is_empty() {
            container_updates.push(format!("container {i}: {}", notes.join(", ")));
            value_ops.extend(ops);
        }
    }

    if !any_change {
        // Nothing would change: admit the pod untouched, but say what was computed.
        return AdmissionPatch {
            containers: result.containers,
            ..AdmissionPatch::default()
        };
    }

    let annotation_path = |key: &str| format!("/metadata/annotations/{}", escape_json_pointer(key));
    if !pod.has_annotations {
        result.operations.push(PatchOperation::add(
            "/metadata/annotations".to_owned(),
            serde_json::json!({}),
        ));
    }
    result.operations.extend(value_ops);
    if !container_updates.is_empty() {
        let value = format!(
            "Pod resources updated by {vpa_name}: {}",
            container_updates.join("; ")
        );
        result.operations.push(PatchOperation::add(
            annotation_path(RESOURCE_UPDATES_ANNOTATION),
            serde_json::Value::String(value.clone()),
        ));
        result.updates_annotation = Some(value);
    }
    let observed = pod
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(OBSERVED_CONTAINERS_SEPARATOR);
    result.operations.push(PatchOperation::add(
        annotation_path(OBSERVED_CONTAINERS_ANNOTATION),
        serde_json::Value::String(observed),
    ));
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ContainerPolicy;
    use rstest::rstest;
    use serde_json::json;

    const MI: i64 = 1024 * 1024;

    fn pr(cpu: Option<i64>, mem: Option<i64>) -> PartialResources {
        PartialResources {
            cpu_millis: cpu,
            memory_bytes: mem,
        }
    }

    fn rec(name: &str, target: PartialResources) -> ContainerRecommendation {
        ContainerRecommendation {
            container_name: name.to_owned(),
            target,
            lower_bound: target,
            upper_bound: target,
            uncapped_target: target,
        }
    }

    fn pod_rec(recs: Vec<ContainerRecommendation>) -> PodRecommendation {
        PodRecommendation {
            container_recommendations: recs,
        }
    }

    fn ops(patch: &AdmissionPatch) -> Vec<(String, serde_json::Value)> {
        patch
            .operations
            .iter()
            .map(|o| {
                assert_eq!(o.op, "add");
                (o.path.clone(), o.value.clone())
            })
            .collect()
    }

    // REFERENCE.md vectors plus upstream's edge cases.
    #[rstest]
    #[case::reference_ratio(Some(2000), Some(1000), Some(10_000), None, Some(20_000))]
    #[case::reference_no_request(Some(2000), None, Some(10_000), None, Some(10_000))]
    #[case::equal_limit_and_request(Some(500), Some(500), Some(700), None, Some(700))]
    #[case::no_limit(None, Some(1000), Some(2000), None, None)]
    #[case::zero_limit_uses_default(Some(0), Some(1000), Some(2000), Some(3000), Some(6000))]
    #[case::default_limit(None, Some(1000), Some(2000), Some(1500), Some(3000))]
    #[case::zero_recommendation(Some(2000), Some(1000), Some(0), None, None)]
    #[case::truncates(Some(1000), Some(3000), Some(1000), None, Some(333))]
    fn proportional_limits(
        #[case] limit: Option<i64>,
        #[case] request: Option<i64>,
        #[case] new_request: Option<i64>,
        #[case] default_limit: Option<i64>,
        #[case] expected: Option<i64>,
    ) {
        let (got, _) = proportional_limit(
            ResourceName::Cpu,
            limit,
            request,
            new_request,
            default_limit,
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn proportional_limit_caps_at_i64_max_and_says_so() {
        let (got, note) = proportional_limit(
            ResourceName::Memory,
            Some(i64::MAX / 2),
            Some(1),
            Some(10),
            None,
        );
        assert_eq!(got, Some(i64::MAX));
        assert_eq!(
            note.as_deref(),
            Some("memory: failed to keep limit to request ratio; capping limit to int64")
        );
        let (_, note) = proportional_limit(ResourceName::Cpu, None, Some(1), Some(2), None);
        assert_eq!(
            note.as_deref(),
            Some("cpu: limit NOT set since originalLimit is nil or 0")
        );
    }

    #[rstest]
    #[case("vpaUpdates", "vpaUpdates")]
    #[case("example.com/owner", "example.com~1owner")]
    #[case("a~b/c", "a~0b~1c")]
    #[case("~1", "~01")]
    fn escapes_json_pointer_tokens(#[case] raw: &str, #[case] escaped: &str) {
        assert_eq!(escape_json_pointer(raw), escaped);
    }

    #[rstest]
    #[case(ResourceName::Cpu, 2000, "2")]
    #[case(ResourceName::Cpu, 250, "250m")]
    #[case(ResourceName::Cpu, 1500, "1500m")]
    #[case(ResourceName::Cpu, 0, "0")]
    #[case(ResourceName::Memory, 262_144_000, "262144000")]
    fn formats_quantities(#[case] r: ResourceName, #[case] v: i64, #[case] s: &str) {
        assert_eq!(format_quantity(r, v), s);
    }

    #[test]
    fn patches_requests_and_scales_limits() {
        let pod = AdmissionPod {
            containers: vec![AdmissionContainer::new(
                "app",
                pr(Some(100), Some(100 * MI)),
                pr(Some(200), None),
            )],
            has_annotations: true,
        };
        let recommendation = pod_rec(vec![rec("app", pr(Some(250), Some(200 * MI)))]);
        let patch = compute_pod_patch(
            "my-vpa",
            UpdateMode::Recreate,
            &pod,
            &recommendation,
            &ResourcePolicy::default(),
            &NamespaceLimits::default(),
        );
        let expected_updates = "Pod resources updated by my-vpa: container 0: \
            memory: limit NOT set since originalLimit is nil or 0, cpu request, memory request, cpu limit";
        assert_eq!(
            ops(&patch),
            vec![
                (
                    "/spec/containers/0/resources/requests/cpu".into(),
                    json!("250m")
                ),
                (
                    "/spec/containers/0/resources/requests/memory".into(),
                    json!("209715200")
                ),
                (
                    "/spec/containers/0/resources/limits/cpu".into(),
                    json!("500m")
                ),
                (
                    "/metadata/annotations/vpaUpdates".into(),
                    json!(expected_updates)
                ),
                (
                    "/metadata/annotations/vpaObservedContainers".into(),
                    json!("app")
                ),
            ]
        );
        assert_eq!(patch.updates_annotation.as_deref(), Some(expected_updates));
        assert_eq!(
            patch.containers,
            vec![Some(ContainerResources {
                requests: pr(Some(250), Some(200 * MI)),
                limits: pr(Some(500), None),
            })]
        );
        // The patch serialises as RFC 6902 operations.
        let v = serde_json::to_value(&patch.operations[0]).unwrap();
        assert_eq!(
            v,
            json!({"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "250m"})
        );
    }

    #[test]
    fn creates_missing_objects_and_skips_containers_without_recommendation() {
        let pod = AdmissionPod {
            containers: vec![
                AdmissionContainer::new("sidecar", PartialResources::NONE, PartialResources::NONE),
                AdmissionContainer::new("app", PartialResources::NONE, PartialResources::NONE),
            ],
            has_annotations: false,
        };
        let recommendation = pod_rec(vec![rec("app", pr(Some(1000), None))]);
        let patch = compute_pod_patch(
            "v",
            UpdateMode::Auto,
            &pod,
            &recommendation,
            &ResourcePolicy::default(),
            &NamespaceLimits::default(),
        );
        assert_eq!(
            ops(&patch),
            vec![
                ("/metadata/annotations".into(), json!({})),
                ("/spec/containers/1/resources".into(), json!({})),
                ("/spec/containers/1/resources/requests".into(), json!({})),
                (
                    "/spec/containers/1/resources/requests/cpu".into(),
                    json!("1")
                ),
                (
                    "/metadata/annotations/vpaUpdates".into(),
                    json!("Pod resources updated by v: container 1: cpu request")
                ),
                (
                    "/metadata/annotations/vpaObservedContainers".into(),
                    json!("sidecar, app")
                ),
            ]
        );
        assert_eq!(patch.containers[0], None);
    }

    #[test]
    fn keeps_a_requests_map_that_names_other_resources() {
        // `requests: {ephemeral-storage: 1Gi}`: present, so never replaced by `{}`.
        let mut c = AdmissionContainer::new("app", PartialResources::NONE, PartialResources::NONE);
        c.has_requests_field = true;
        let pod = AdmissionPod {
            containers: vec![c],
            has_annotations: true,
        };
        let patch = compute_pod_patch(
            "v",
            UpdateMode::Initial,
            &pod,
            &pod_rec(vec![rec("app", pr(Some(300), None))]),
            &ResourcePolicy::default(),
            &NamespaceLimits::default(),
        );
        assert_eq!(
            patch.operations[0].path,
            "/spec/containers/0/resources/requests/cpu"
        );
        assert!(
            !patch
                .operations
                .iter()
                .any(|o| o.path.ends_with("/resources") || o.path.ends_with("/requests"))
        );
    }

    #[rstest]
    #[case::unchanged(UpdateMode::Recreate, Some(250))]
    #[case::mode_off(UpdateMode::Off, Some(100))]
    fn no_patch(#[case] mode: UpdateMode, #[case] cpu_now: Option<i64>) {
        let pod = AdmissionPod {
            containers: vec![AdmissionContainer::new(
                "app",
                pr(cpu_now, Some(MI)),
                PartialResources::NONE,
            )],
            has_annotations: false,
        };
        let patch = compute_pod_patch(
            "v",
            mode,
            &pod,
            &pod_rec(vec![rec("app", pr(Some(250), Some(MI)))]),
            &ResourcePolicy::default(),
            &NamespaceLimits::default(),
        );
        assert!(patch.is_empty());
        assert_eq!(patch.updates_annotation, None);
    }

    #[test]
    fn policy_caps_are_annotated_and_requests_only_respects_the_limit() {
        let policy = ResourcePolicy {
            container_policies: vec![
                ContainerPolicy {
                    max_allowed: pr(Some(400), None),
                    ..ContainerPolicy::default_for("a")
                },
                ContainerPolicy {
                    min_allowed: pr(None, Some(300 * MI)),
                    controlled_values: ControlledValues::RequestsOnly,
                    ..ContainerPolicy::default_for("b")
                },
            ],
        };
        let pod = AdmissionPod {
            containers: vec![
                AdmissionContainer::new("a", pr(Some(100), None), pr(Some(200), None)),
                AdmissionContainer::new(
                    "b",
                    pr(Some(100), Some(MI)),
                    pr(Some(150), Some(256 * MI)),
                ),
            ],
            has_annotations: true,
        };
        let recommendation = pod_rec(vec![
            rec("a", pr(Some(900), None)),
            rec("b", pr(Some(500), Some(10 * MI))),
        ]);
        let patch = compute_pod_patch(
            "v",
            UpdateMode::Recreate,
            &pod,
            &recommendation,
            &policy,
            &NamespaceLimits::default(),
        );
        assert_eq!(
            patch.containers,
            vec![
                Some(ContainerResources {
                    requests: pr(Some(400), None),
                    limits: pr(Some(800), None),
                }),
                // Raised to minAllowed, then held at the container's limits.
                Some(ContainerResources {
                    requests: pr(Some(150), Some(256 * MI)),
                    limits: PartialResources::NONE,
                }),
            ]
        );
        assert_eq!(
            patch.updates_annotation.as_deref(),
            Some(
                "Pod resources updated by v: container 0: cpu capped to maxAllowed, \
                 memory: limit NOT set since originalLimit is nil or 0, cpu request, cpu limit; \
                 container 1: memory capped to minAllowed, cpu capped to container limit, \
                 memory capped to container limit, cpu request, memory request"
            )
        );
    }

    #[test]
    fn container_limit_range_bounds_requests_at_the_container_ratio() {
        let limits = NamespaceLimits {
            container: Some(LimitRangeItem {
                min: pr(Some(100), None),
                max: pr(Some(1000), None),
                ..LimitRangeItem::default()
            }),
            pod: None,
        };
        // limit = 2 × request, so the request may be at most 500m.
        let pod = AdmissionPod {
            containers: vec![AdmissionContainer::new(
                "app",
                pr(Some(200), None),
                pr(Some(400), None),
            )],
            has_annotations: true,
        };
        let capped = cap_recommendation(
            &pod.containers,
            &pod_rec(vec![rec("app", pr(Some(800), None))]),
            &ResourcePolicy::default(),
            &limits,
        );
        let r = &capped.recommendation.container_recommendations[0];
        assert_eq!(r.target.cpu_millis, Some(500));
        assert_eq!(
            capped.notes["app"],
            vec!["cpu capped to fit Max in container LimitRange".to_owned()]
        );
        // Min applies to the request and to the limit: 100m request (limit 200m ≥ 100m).
        let capped = cap_recommendation(
            &pod.containers,
            &pod_rec(vec![rec("app", pr(Some(20), None))]),
            &ResourcePolicy::default(),
            &limits,
        );
        assert_eq!(
            capped.recommendation.container_recommendations[0]
                .target
                .cpu_millis,
            Some(100)
        );
    }

    #[test]
    fn pod_limit_range_scales_all_containers_together() {
        // Two containers with limit = request; pod max 1000m; recommended 800m + 400m.
        let limits = NamespaceLimits {
            container: None,
            pod: Some(LimitRangeItem {
                max: pr(Some(1000), None),
                ..LimitRangeItem::default()
            }),
        };
        let containers = vec![
            AdmissionContainer::new("a", pr(Some(100), None), pr(Some(100), None)),
            AdmissionContainer::new("b", pr(Some(100), None), pr(Some(100), None)),
            // No recommendation: keeps its request but counts towards the total.
            AdmissionContainer::new("c", pr(Some(300), None), pr(Some(300), None)),
        ];
        let capped = cap_recommendation(
            &containers,
            &pod_rec(vec![
                rec("a", pr(Some(800), None)),
                rec("b", pr(Some(400), None)),
            ]),
            &ResourcePolicy::default(),
            &limits,
        );
        let targets: Vec<_> = capped
            .recommendation
            .container_recommendations
            .iter()
            .map(|r| (r.container_name.as_str(), r.target.cpu_millis))
            .collect();
        // Total limit 1500m → scaled by 1000/1500.
        assert_eq!(
            targets,
            vec![("a", Some(533)), ("b", Some(266)), ("c", Some(200))]
        );
    }

    #[test]
    fn pod_limit_range_min_raises_the_total_request() {
        let limits = NamespaceLimits {
            container: None,
            pod: Some(LimitRangeItem {
                min: pr(None, Some(400)),
                ..LimitRangeItem::default()
            }),
        };
        let containers = vec![
            AdmissionContainer::new("a", pr(None, Some(100)), pr(None, Some(200))),
            AdmissionContainer::new("b", pr(None, Some(100)), pr(None, Some(200))),
        ];
        let capped = cap_recommendation(
            &containers,
            &pod_rec(vec![
                rec("a", pr(None, Some(100))),
                rec("b", pr(None, Some(100))),
            ]),
            &ResourcePolicy::default(),
            &limits,
        );
        for r in &capped.recommendation.container_recommendations {
            assert_eq!(r.target.memory_bytes, Some(200), "{}", r.container_name);
        }
    }

    #[test]
    fn limit_is_kept_within_max_limit_request_ratio() {
        let limits = NamespaceLimits {
            container: Some(LimitRangeItem {
                max_limit_request_ratio_milli: pr(Some(1500), None),
                ..LimitRangeItem::default()
            }),
            pod: None,
        };
        // Original ratio 4 (written before the LimitRange existed): 300m → 1200m → 450m.
        let pod = AdmissionPod {
            containers: vec![AdmissionContainer::new(
                "app",
                pr(Some(100), None),
                pr(Some(400), None),
            )],
            has_annotations: true,
        };
        let patch = compute_pod_patch(
            "v",
            UpdateMode::Recreate,
            &pod,
            &pod_rec(vec![rec("app", pr(Some(300), None))]),
            &ResourcePolicy::default(),
            &limits,
        );
        assert_eq!(
            patch.containers[0].map(|c| c.limits.cpu_millis),
            Some(Some(450))
        );
    }

    #[test]
    fn uncontrolled_resources_and_off_containers_are_not_patched() {
        let policy = ResourcePolicy {
            container_policies: vec![
                ContainerPolicy {
                    controlled_resources: vec![ResourceName::Memory],
                    ..ContainerPolicy::default_for("a")
                },
                ContainerPolicy {
                    mode: ContainerScalingMode::Off,
                    ..ContainerPolicy::default_for("b")
                },
            ],
        };
        let pod = AdmissionPod {
            containers: vec![
                AdmissionContainer::new("a", pr(Some(100), Some(MI)), PartialResources::NONE),
                AdmissionContainer::new("b", pr(Some(100), Some(MI)), PartialResources::NONE),
            ],
            has_annotations: true,
        };
        let patch = compute_pod_patch(
            "v",
            UpdateMode::Recreate,
            &pod,
            &pod_rec(vec![
                rec("a", pr(Some(900), Some(2 * MI))),
                rec("b", pr(Some(900), Some(2 * MI))),
            ]),
            &policy,
            &NamespaceLimits::default(),
        );
        let paths: Vec<_> = patch.operations.iter().map(|o| o.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "/spec/containers/0/resources/requests/memory",
                "/metadata/annotations/vpaUpdates",
                "/metadata/annotations/vpaObservedContainers",
            ]
        );
        assert_eq!(patch.containers[1], None);
    }
}
