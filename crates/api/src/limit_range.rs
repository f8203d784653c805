//! LimitRanges in core units, merged per namespace as upstream's admission
//! controller merges them. The admission webhook caps new pods by them and
//! the updater caps in-place resizes by the same reading, so both live here
//! rather than in either binary.

use k8s_openapi::api::core::v1::LimitRange;
use std::collections::BTreeMap;
use tailor_core::admission::{LimitRangeItem, NamespaceLimits};
use tailor_core::policy::PartialResources;
use tailor_core::quantity::{self, Quantity, QuantityError};
use tailor_core::resources::ResourceName;

/// A LimitRange item whose quantities could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("LimitRange {limit_range}: {field}: {source}")]
pub struct LimitRangeError {
    /// `namespace/name` of the LimitRange.
    pub limit_range: String,
    /// The field (`spec.limits[0].max.cpu`).
    pub field: String,
    /// Why the quantity is invalid.
    pub source: Box<QuantityError>,
}

/// One LimitRange item of type Container or Pod, in core units.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LimitItem {
    pod: bool,
    item: LimitRangeItem,
    has_min: bool,
    has_max: bool,
    has_default: bool,
}

/// Every LimitRange of the cluster, read once on arrival, keyed by
/// `(namespace, name)`. A LimitRange with an unreadable quantity is kept with
/// its error, so its namespace reports it instead of silently going
/// unlimited.
#[derive(Clone, Debug, Default)]
pub struct LimitRanges {
    by_name: BTreeMap<(String, String), Result<Vec<LimitItem>, LimitRangeError>>,
}

impl LimitRanges {
    /// Adds or replaces a LimitRange.
    pub fn apply(&mut self, limit_range: &LimitRange) {
        let namespace = limit_range.metadata.namespace.clone().unwrap_or_default();
        let name = limit_range.metadata.name.clone().unwrap_or_default();
        let items = convert_limit_range(&namespace, &name, limit_range);
        self.by_name.insert((namespace, name), items);
    }

    /// Removes a LimitRange.
    pub fn delete(&mut self, namespace: &str, name: &str) {
        self.by_name
            .remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Forgets every LimitRange (before a relist replaces them).
    pub fn clear(&mut self) {
        self.by_name.clear();
    }

    /// How many LimitRanges are held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// True when none is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The namespace's container and pod limits, merged as upstream does
    /// over all its LimitRanges (in name order): the highest `min`, the
    /// lowest `max`, the last `default`/`defaultRequest`, and the lowest
    /// `maxLimitRequestRatio`. Only items with `min`, `max` or `default` count.
    ///
    /// # Errors
    /// A LimitRange in the namespace has an invalid quantity.
    pub fn limits(&self, namespace: &str) -> Result<NamespaceLimits, LimitRangeError> {
        let mut out = NamespaceLimits::default();
        let range = self.by_name.range((namespace.to_owned(), String::new())..);
        for ((ns, _), items) in range {
            if ns != namespace {
                break;
            }
            for item in items.as_ref().map_err(Clone::clone)? {
                if !(item.has_min || item.has_max || item.has_default) {
                    continue;
                }
                let slot = if item.pod {
                    &mut out.pod
                } else {
                    &mut out.container
                };
                let merged = slot.get_or_insert_with(LimitRangeItem::default);
                merge_item(merged, &item.item, item.has_default);
            }
        }
        Ok(out)
    }
}

fn merge_item(merged: &mut LimitRangeItem, item: &LimitRangeItem, has_default: bool) {
    for r in ResourceName::ALL {
        let pick = |a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        merged.min = merged
            .min
            .with(r, pick(merged.min.get(r), item.min.get(r), i64::max));
        merged.max = merged
            .max
            .with(r, pick(merged.max.get(r), item.max.get(r), i64::min));
        merged.max_limit_request_ratio_milli = merged.max_limit_request_ratio_milli.with(
            r,
            pick(
                merged.max_limit_request_ratio_milli.get(r),
                item.max_limit_request_ratio_milli.get(r),
                i64::min,
            ),
        );
    }
    // As upstream, a later `default` replaces the earlier one whole.
    if has_default {
        merged.default_limit = item.default_limit;
    }
    if !item.default_request.is_empty() {
        merged.default_request = item.default_request;
    }
}

fn convert_limit_range(
    namespace: &str,
    name: &str,
    limit_range: &LimitRange,
) -> Result<Vec<LimitItem>, LimitRangeError> {
    let items = limit_range
        .spec
        .as_ref()
        .map(|s| s.limits.as_slice())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let pod = match item.type_.as_str() {
            "Container" => false,
            "Pod" => true,
            _ => continue,
        };
        let err = |field: String, source| LimitRangeError {
            limit_range: format!("{namespace}/{name}"),
            field: format!("spec.limits[{index}].{field}"),
            source: Box::new(source),
        };
        type List = BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>;
        let read = |field: &str, list: Option<&List>, ratio: bool| {
            let mut values = PartialResources::NONE;
            for (resource_name, q) in list.into_iter().flatten() {
                let Some(resource) = ResourceName::parse(resource_name) else {
                    continue;
                };
                let parsed = if ratio {
                    Quantity::parse(&q.0).and_then(|v| v.milli_value())
                } else {
                    match resource {
                        ResourceName::Cpu => quantity::cpu_millis(&q.0),
                        ResourceName::Memory => quantity::memory_bytes(&q.0),
                    }
                };
                let v = parsed.map_err(|e| err(format!("{field}.{resource_name}"), e))?;
                values = values.with(resource, Some(v));
            }
            Ok::<_, LimitRangeError>(values)
        };
        out.push(LimitItem {
            pod,
            item: LimitRangeItem {
                min: read("min", item.min.as_ref(), false)?,
                max: read("max", item.max.as_ref(), false)?,
                default_limit: read("default", item.default.as_ref(), false)?,
                default_request: read("defaultRequest", item.default_request.as_ref(), false)?,
                max_limit_request_ratio_milli: read(
                    "maxLimitRequestRatio",
                    item.max_limit_request_ratio.as_ref(),
                    true,
                )?,
            },
            has_min: item.min.is_some(),
            has_max: item.max.is_some(),
            has_default: item.default.is_some(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit_range(name: &str, limits: serde_json::Value) -> LimitRange {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"limits": limits}
        }))
        .unwrap()
    }

    #[test]
    fn limit_ranges_merge_as_upstream() {
        let mut index = LimitRanges::default();
        index.apply(&limit_range(
            "a",
            serde_json::json!([
                {"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "2", "memory": "1Gi"},
                 "default": {"cpu": "500m"}, "maxLimitRequestRatio": {"cpu": "4"}},
                {"type": "Pod", "max": {"memory": "4Gi"}},
                {"type": "PersistentVolumeClaim", "max": {"storage": "1Gi"}}
            ]),
        ));
        index.apply(&limit_range(
            "b",
            serde_json::json!([
                {"type": "Container", "min": {"cpu": "50m", "memory": "64Mi"}, "max": {"cpu": "1"},
                 "default": {"memory": "256Mi"}, "maxLimitRequestRatio": {"cpu": "2"}}
            ]),
        ));
        let limits = index.limits("shop").unwrap();
        let c = limits.container.unwrap();
        assert_eq!(c.min.get(ResourceName::Cpu), Some(100));
        assert_eq!(c.min.get(ResourceName::Memory), Some(64 << 20));
        assert_eq!(c.max.get(ResourceName::Cpu), Some(1000));
        assert_eq!(c.max.get(ResourceName::Memory), Some(1 << 30));
        assert_eq!(
            c.default_limit.get(ResourceName::Cpu),
            None,
            "b's default replaces a's"
        );
        assert_eq!(c.default_limit.get(ResourceName::Memory), Some(256 << 20));
        assert_eq!(
            c.max_limit_request_ratio_milli.get(ResourceName::Cpu),
            Some(2000)
        );
        assert_eq!(
            limits.pod.unwrap().max.get(ResourceName::Memory),
            Some(4 << 30)
        );
        assert_eq!(index.limits("other").unwrap(), NamespaceLimits::default());
        index.delete("shop", "a");
        index.delete("shop", "b");
        assert_eq!(index.limits("shop").unwrap(), NamespaceLimits::default());
    }

    #[test]
    fn invalid_limit_range_quantity_names_the_field() {
        let mut index = LimitRanges::default();
        index.apply(&limit_range(
            "bad",
            serde_json::json!([{"type": "Container", "max": {"cpu": "lots"}}]),
        ));
        let err = index.limits("shop").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("LimitRange shop/bad: spec.limits[0].max.cpu"),
            "{err}"
        );
    }

    #[test]
    fn clear_forgets_every_limit_range() {
        let mut index = LimitRanges::default();
        index.apply(&limit_range(
            "a",
            serde_json::json!([{"type": "Container", "max": {"cpu": "1"}}]),
        ));
        assert_eq!(index.len(), 1);
        assert!(index.limits("shop").unwrap().container.is_some());
        index.clear();
        assert!(index.is_empty());
        assert_eq!(index.limits("shop").unwrap(), NamespaceLimits::default());
    }
}
