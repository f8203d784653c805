//! Response bodies, exactly as kube-apiserver and the HPA controller read
//! them: discovery documents, `MetricValueList` (v1beta1 and v1beta2),
//! `ExternalMetricValueList` and `Status` errors.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tailor_api::selector::{Operator, Requirement};
use tailor_core::quantity::{Format, Quantity};

use crate::naming::{GroupResource, builtin_resource, singular};
use crate::request::{CUSTOM_GROUP, CustomVersion, EXTERNAL_GROUP, RESOURCE_GROUP};

const JSON: &str = "application/json";

pub(crate) fn to_bytes(v: &Value) -> Bytes {
    // Serializing a Value cannot fail.
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// A 200 JSON response from pre-rendered bytes.
#[must_use]
pub fn json_response(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(JSON),
        )],
        body,
    )
        .into_response()
}

fn group_versions(group: &str) -> Value {
    let versions: &[&str] = if group == CUSTOM_GROUP {
        // The preferred version first, as kube-apiserver lists them.
        &["v1beta2", "v1beta1"]
    } else {
        &["v1beta1"]
    };
    let list: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "name": group,
        "versions": list,
        "preferredVersion": list[0],
    })
}

/// `/apis`: the `APIGroupList` of the groups served; `metrics.k8s.io` only
/// with `resourceRules`, so an adapter without them never claims it.
#[must_use]
pub fn api_group_list(resource_metrics: bool) -> Bytes {
    let mut groups = vec![group_versions(CUSTOM_GROUP), group_versions(EXTERNAL_GROUP)];
    if resource_metrics {
        groups.push(group_versions(RESOURCE_GROUP));
    }
    to_bytes(&json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups,
    }))
}

/// `/apis/{group}`: the `APIGroup`.
#[must_use]
pub fn api_group(group: &str) -> Bytes {
    let mut v = group_versions(group);
    if let Value::Object(m) = &mut v {
        m.insert("kind".into(), "APIGroup".into());
        m.insert("apiVersion".into(), "v1".into());
    }
    to_bytes(&v)
}

/// The custom metrics `APIResourceList`: one entry per `<resource>/<metric>`.
#[must_use]
pub fn custom_resource_list(version: &str, metrics: &[(String, bool)]) -> Bytes {
    let resources: Vec<Value> = metrics
        .iter()
        .map(|(name, namespaced)| {
            json!({
                "name": name,
                "singularName": "",
                "namespaced": namespaced,
                "kind": "MetricValueList",
                "verbs": ["get"],
            })
        })
        .collect();
    to_bytes(&json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{CUSTOM_GROUP}/{version}"),
        "resources": resources,
    }))
}

/// The external metrics `APIResourceList`.
#[must_use]
pub fn external_resource_list(metrics: &[&str]) -> Bytes {
    let resources: Vec<Value> = metrics
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "singularName": "",
                "namespaced": true,
                "kind": "ExternalMetricValueList",
                "verbs": ["get"],
            })
        })
        .collect();
    to_bytes(&json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": format!("{EXTERNAL_GROUP}/v1beta1"),
        "resources": resources,
    }))
}

/// A Kubernetes `Status` failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// HTTP code.
    pub code: u16,
    /// Kubernetes reason (`NotFound`, `BadRequest`, …).
    pub reason: &'static str,
    /// What went wrong, for a person.
    pub message: String,
}

impl Status {
    /// A status with the reason Kubernetes uses for `code`.
    #[must_use]
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        let reason = match code {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        Status {
            code,
            reason,
            message: message.into(),
        }
    }

    /// The JSON body.
    #[must_use]
    pub fn body(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        })
    }
}

impl IntoResponse for Status {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (code, [(header::CONTENT_TYPE, JSON)], to_bytes(&self.body())).into_response();
        if self.code == 503 {
            // Tell well-behaved clients when to come back.
            r.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        r
    }
}

/// A Prometheus value as a Kubernetes quantity, the way upstream makes it:
/// `NewMilliQuantity(int64(v*1000), DecimalSI)`, printed canonically
/// (`1500m`, `2`, `10k`). `None` for NaN and infinities, which have no
/// quantity.
#[must_use]
pub fn quantity(value: f64) -> Option<String> {
    let milli = value * 1000.0;
    if !milli.is_finite() {
        return None;
    }
    // Saturates beyond i64, where Go's conversion is undefined.
    #[allow(clippy::cast_possible_truncation)]
    let milli = milli as i64;
    Some(Quantity::from_milli(milli, Format::DecimalSI).to_string())
}

/// Unix seconds as RFC 3339 in UTC, to the second (`metav1.Time`).
#[must_use]
pub fn rfc3339(unix: f64) -> String {
    #[allow(clippy::cast_possible_truncation)]
    let secs = unix.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days → civil date.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A metric label selector as `metav1.LabelSelector` (what
/// `ParseToLabelSelector` makes of it); `None` when it selects everything.
#[must_use]
pub fn label_selector_json(reqs: &[Requirement]) -> Option<Value> {
    if reqs.is_empty() {
        return None;
    }
    let mut labels = Map::new();
    let mut exprs = Vec::new();
    for r in reqs {
        let op = match r.operator {
            Operator::In if r.values.len() == 1 => {
                labels.insert(r.key.clone(), Value::String(r.values[0].clone()));
                continue;
            }
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
            Operator::GreaterThan => "Gt",
            Operator::LessThan => "Lt",
        };
        let mut e = json!({"key": r.key, "operator": op});
        if !r.values.is_empty() {
            e["values"] = json!(r.values);
        }
        exprs.push(e);
    }
    let mut sel = Map::new();
    if !labels.is_empty() {
        sel.insert("matchLabels".into(), Value::Object(labels));
    }
    if !exprs.is_empty() {
        sel.insert("matchExpressions".into(), Value::Array(exprs));
    }
    Some(Value::Object(sel))
}

/// The object a custom metric value describes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectRef {
    /// Kind (`Pod`).
    pub kind: String,
    /// API version (`v1`, `apps/v1`).
    pub api_version: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// Kind and apiVersion of a resource: built-in ones exactly; others guessed
/// from the singular (`widgets.example.com` → `Widget`, `example.com/v1`)
/// until a discovery-backed mapper resolves them.
#[must_use]
pub fn kind_of(resource: &GroupResource) -> (String, String) {
    if let Some(b) = builtin_resource(&resource.group, &resource.resource) {
        return (b.kind.to_owned(), b.api_version());
    }
    let s = singular(resource);
    let mut chars = s.chars();
    let kind = chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default();
    let api_version = if resource.group.is_empty() {
        "v1".to_owned()
    } else {
        format!("{}/v1", resource.group)
    };
    (kind, api_version)
}

/// One custom metric value.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricValue {
    /// The object.
    pub object: ObjectRef,
    /// Unix seconds.
    pub timestamp: f64,
    /// The quantity text.
    pub value: String,
}

/// A `MetricValueList` body in the requested version's shape.
#[must_use]
pub fn metric_value_list(
    version: CustomVersion,
    metric: &str,
    selector: Option<&Value>,
    values: &[MetricValue],
) -> Value {
    let items: Vec<Value> = values
        .iter()
        .map(|v| {
            let mut obj = Map::new();
            obj.insert("kind".into(), v.object.kind.clone().into());
            if let Some(ns) = &v.object.namespace {
                obj.insert("namespace".into(), ns.clone().into());
            }
            obj.insert("name".into(), v.object.name.clone().into());
            obj.insert("apiVersion".into(), v.object.api_version.clone().into());
            let ts = rfc3339(v.timestamp);
            match version {
                CustomVersion::V1beta2 => {
                    let mut id = json!({"name": metric});
                    if let Some(s) = selector {
                        id["selector"] = s.clone();
                    }
                    json!({"describedObject": obj, "metric": id, "timestamp": ts, "value": v.value})
                }
                CustomVersion::V1beta1 => json!({
                    "describedObject": obj,
                    "metricName": metric,
                    "timestamp": ts,
                    "value": v.value,
                    "selector": selector.cloned().unwrap_or(Value::Null),
                }),
            }
        })
        .collect();
    let version = match version {
        CustomVersion::V1beta1 => "v1beta1",
        CustomVersion::V1beta2 => "v1beta2",
    };
    json!({
        "kind": "MetricValueList",
        "apiVersion": format!("{CUSTOM_GROUP}/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// One external metric value.
#[derive(Clone, Debug, PartialEq)]
pub struct ExternalValue {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// Unix seconds.
    pub timestamp: f64,
    /// The quantity text.
    pub value: String,
}

/// An `ExternalMetricValueList` body.
#[must_use]
pub fn external_value_list(metric: &str, values: &[ExternalValue]) -> Value {
    let items: Vec<Value> = values
        .iter()
        .map(|v| {
            json!({
                "metricName": metric,
                "metricLabels": v.labels,
                "timestamp": rfc3339(v.timestamp),
                "value": v.value,
            })
        })
        .collect();
    json!({
        "kind": "ExternalMetricValueList",
        "apiVersion": format!("{EXTERNAL_GROUP}/v1beta1"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(1.5, "1500m")]
    #[case(2.0, "2")]
    #[case(0.0, "0")]
    #[case(10_000.0, "10k")]
    #[case(0.0001, "0")]
    #[case(0.001, "1m")]
    #[case(-3.25, "-3250m")]
    #[case(1_500_000.0, "1500k")]
    #[case(123.456_789, "123456m")]
    fn quantities_are_upstream_milli_quantities(#[case] v: f64, #[case] want: &str) {
        assert_eq!(quantity(v).as_deref(), Some(want));
    }

    #[test]
    fn non_finite_values_have_no_quantity() {
        assert_eq!(quantity(f64::NAN), None);
        assert_eq!(quantity(f64::INFINITY), None);
    }

    #[rstest]
    #[case(0.0, "1970-01-01T00:00:00Z")]
    #[case(1_700_000_000.9, "2023-11-14T22:13:20Z")]
    #[case(951_782_400.0, "2000-02-29T00:00:00Z")]
    #[case(4_102_444_799.0, "2099-12-31T23:59:59Z")]
    fn timestamps_are_rfc3339_utc(#[case] t: f64, #[case] want: &str) {
        assert_eq!(rfc3339(t), want);
    }

    #[test]
    fn status_bodies_are_kubernetes_status_objects() {
        let s = Status::new(404, "the server could not find the metric x for pods");
        assert_eq!(
            s.body(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"the server could not find the metric x for pods","reason":"NotFound","code":404})
        );
        assert_eq!(Status::new(400, "").reason, "BadRequest");
        assert_eq!(Status::new(503, "").reason, "ServiceUnavailable");
    }

    #[test]
    fn selectors_render_as_label_selectors() {
        let sel = tailor_api::selector::Selector::parse("a=b,c in (x,y),!d,e!=f").unwrap();
        let tailor_api::selector::Selector::All(reqs) = sel else {
            panic!()
        };
        assert_eq!(
            label_selector_json(&reqs).unwrap(),
            json!({"matchLabels":{"a":"b"},"matchExpressions":[
                {"key":"c","operator":"In","values":["x","y"]},
                {"key":"d","operator":"DoesNotExist"},
                {"key":"e","operator":"NotIn","values":["f"]}]})
        );
        assert!(label_selector_json(&[]).is_none());
    }

    #[test]
    fn kinds_of_builtin_and_other_resources() {
        assert_eq!(kind_of(&GroupResource::pods()), ("Pod".into(), "v1".into()));
        assert_eq!(
            kind_of(&GroupResource::new("apps", "deployments")),
            ("Deployment".into(), "apps/v1".into())
        );
        assert_eq!(
            kind_of(&GroupResource::new("example.com", "widgets")),
            ("Widget".into(), "example.com/v1".into())
        );
    }
}
