//! API paths and query strings → typed metric requests.
//!
//! Pure parsing of what kube-apiserver forwards: the custom metrics API
//! (`v1beta1`, `v1beta2`), the external metrics API and `metrics.k8s.io`,
//! with percent-decoding. Unknown shapes are 404s, bad encodings 400s.

use crate::naming::GroupResource;

/// The custom metrics API group.
pub const CUSTOM_GROUP: &str = "custom.metrics.k8s.io";
/// The external metrics API group.
pub const EXTERNAL_GROUP: &str = "external.metrics.k8s.io";
/// The resource metrics API group.
pub const RESOURCE_GROUP: &str = "metrics.k8s.io";

/// A custom metrics API version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CustomVersion {
    /// `v1beta1`: items carry `metricName`/`selector`.
    V1beta1,
    /// `v1beta2`: items carry `metric: {name, selector}`.
    V1beta2,
}

/// Which object(s) a custom-metrics request is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ObjectName {
    /// One named object.
    Named(String),
    /// `*`: every object (narrowed by `labelSelector`).
    Wildcard,
}

/// A parsed request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiPath {
    /// `/apis`.
    Groups,
    /// `/apis/{group}`.
    Group(String),
    /// `/apis/{group}/{version}`: the resource list.
    Version {
        /// The group.
        group: String,
        /// The version.
        version: String,
    },
    /// A custom metric for objects.
    Custom {
        /// API version.
        version: CustomVersion,
        /// Namespace; `None` for cluster-scoped objects.
        namespace: Option<String>,
        /// The resource (`pods`, `deployments.apps`).
        resource: GroupResource,
        /// The object(s).
        name: ObjectName,
        /// The metric.
        metric: String,
    },
    /// An external metric.
    External {
        /// The namespace.
        namespace: String,
        /// The metric.
        metric: String,
    },
    /// `metrics.k8s.io` pods.
    PodMetrics {
        /// Namespace; `None` for all namespaces.
        namespace: Option<String>,
        /// One pod, or all.
        name: Option<String>,
    },
    /// `metrics.k8s.io` nodes.
    NodeMetrics {
        /// One node, or all.
        name: Option<String>,
    },
}

/// A path or query string that cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// No such API path.
    #[error("the server could not find the requested resource {0:?}")]
    NotFound(String),
    /// Bad percent-encoding or UTF-8.
    #[error("invalid encoding in {0:?}")]
    Encoding(String),
}

impl PathError {
    /// The HTTP status for this error.
    #[must_use]
    pub fn status_code(&self) -> u16 {
        match self {
            PathError::NotFound(_) => 404,
            PathError::Encoding(_) => 400,
        }
    }
}

/// Percent-decodes `s` (`+` kept as is, as in paths).
///
/// # Errors
/// Truncated or non-hex escapes, or bytes that are not UTF-8.
pub fn percent_decode(s: &str) -> Result<String, PathError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| PathError::Encoding(s.to_owned()))?;
            let b = u8::from_str_radix(hex, 16).map_err(|_| PathError::Encoding(s.to_owned()))?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::Encoding(s.to_owned()))
}

/// Parses a request path (without the query string).
///
/// # Errors
/// [`PathError::NotFound`] for shapes no API serves; [`PathError::Encoding`]
/// for bad escapes.
pub fn parse_path(path: &str) -> Result<ApiPath, PathError> {
    let not_found = || PathError::NotFound(path.to_owned());
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let rest = trimmed.strip_prefix("/apis").ok_or_else(not_found)?;
    if rest.is_empty() {
        return Ok(ApiPath::Groups);
    }
    let rest = rest.strip_prefix('/').ok_or_else(not_found)?;
    let segs = rest
        .split('/')
        .map(percent_decode)
        .collect::<Result<Vec<_>, _>>()?;
    if segs.iter().any(String::is_empty) {
        return Err(not_found());
    }
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let owned = |v: &str| v.to_owned();
    let name = |v: &str| {
        if v == "*" {
            ObjectName::Wildcard
        } else {
            ObjectName::Named(v.to_owned())
        }
    };
    match s.as_slice() {
        [g] if is_group(g) => Ok(ApiPath::Group(owned(g))),
        [g, v] if is_group(g) && is_version(g, v) => Ok(ApiPath::Version {
            group: owned(g),
            version: owned(v),
        }),
        [CUSTOM_GROUP, v, tail @ ..] => {
            let version = match *v {
                "v1beta1" => CustomVersion::V1beta1,
                "v1beta2" => CustomVersion::V1beta2,
                _ => return Err(not_found()),
            };
            let custom =
                |namespace: Option<&str>, resource: &str, n: &str, metric: &str| ApiPath::Custom {
                    version,
                    namespace: namespace.map(owned),
                    resource: GroupResource::parse(resource),
                    name: name(n),
                    metric: owned(metric),
                };
            match tail {
                // The namespace object itself.
                ["namespaces", ns, "metrics", metric] => Ok(ApiPath::Custom {
                    version,
                    namespace: None,
                    resource: GroupResource::namespaces(),
                    name: ObjectName::Named(owned(ns)),
                    metric: owned(metric),
                }),
                ["namespaces", ns, resource, n, metric] => {
                    Ok(custom(Some(ns), resource, n, metric))
                }
                [resource, n, metric] => Ok(custom(None, resource, n, metric)),
                _ => Err(not_found()),
            }
        }
        [EXTERNAL_GROUP, "v1beta1", "namespaces", ns, metric] => Ok(ApiPath::External {
            namespace: owned(ns),
            metric: owned(metric),
        }),
        [RESOURCE_GROUP, "v1beta1", tail @ ..] => match tail {
            ["nodes"] => Ok(ApiPath::NodeMetrics { name: None }),
            ["nodes", n] => Ok(ApiPath::NodeMetrics {
                name: Some(owned(n)),
            }),
            ["pods"] => Ok(ApiPath::PodMetrics {
                namespace: None,
                name: None,
            }),
            ["namespaces", ns, "pods"] => Ok(ApiPath::PodMetrics {
                namespace: Some(owned(ns)),
                name: None,
            }),
            ["namespaces", ns, "pods", n] => Ok(ApiPath::PodMetrics {
                namespace: Some(owned(ns)),
                name: Some(owned(n)),
            }),
            _ => Err(not_found()),
        },
        _ => Err(not_found()),
    }
}

fn is_group(g: &str) -> bool {
    matches!(g, CUSTOM_GROUP | EXTERNAL_GROUP | RESOURCE_GROUP)
}

fn is_version(g: &str, v: &str) -> bool {
    match g {
        CUSTOM_GROUP => matches!(v, "v1beta1" | "v1beta2"),
        _ => v == "v1beta1",
    }
}

/// The query parameters the metrics APIs read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryParams {
    /// `labelSelector`.
    pub label_selector: Option<String>,
    /// `metricLabelSelector`.
    pub metric_label_selector: Option<String>,
}

/// Parses a query string (`a=b&c=d`, `+` as space, percent-decoded);
/// unknown parameters are ignored, a repeated one keeps the first value.
///
/// # Errors
/// Bad percent-encoding.
pub fn parse_query(query: &str) -> Result<QueryParams, PathError> {
    let mut params = QueryParams::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(&k.replace('+', " "))?;
        let v = percent_decode(&v.replace('+', " "))?;
        let slot = match k.as_str() {
            "labelSelector" => &mut params.label_selector,
            "metricLabelSelector" => &mut params.metric_label_selector,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(v);
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn custom(
        v: CustomVersion,
        ns: Option<&str>,
        resource: &str,
        name: ObjectName,
        metric: &str,
    ) -> ApiPath {
        ApiPath::Custom {
            version: v,
            namespace: ns.map(str::to_owned),
            resource: GroupResource::parse(resource),
            name,
            metric: metric.to_owned(),
        }
    }

    fn named(n: &str) -> ObjectName {
        ObjectName::Named(n.to_owned())
    }

    #[rstest]
    #[case("/apis", ApiPath::Groups)]
    #[case("/apis/", ApiPath::Groups)]
    #[case("/apis/custom.metrics.k8s.io", ApiPath::Group(CUSTOM_GROUP.into()))]
    #[case("/apis/custom.metrics.k8s.io/v1beta2", ApiPath::Version { group: CUSTOM_GROUP.into(), version: "v1beta2".into() })]
    #[case("/apis/custom.metrics.k8s.io/v1beta1/", ApiPath::Version { group: CUSTOM_GROUP.into(), version: "v1beta1".into() })]
    #[case("/apis/external.metrics.k8s.io/v1beta1", ApiPath::Version { group: EXTERNAL_GROUP.into(), version: "v1beta1".into() })]
    #[case(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/prod/pods/web-0/http_requests",
        custom(
            CustomVersion::V1beta2,
            Some("prod"),
            "pods",
            named("web-0"),
            "http_requests"
        )
    )]
    #[case(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/prod/pods/*/http_requests",
        custom(
            CustomVersion::V1beta1,
            Some("prod"),
            "pods",
            ObjectName::Wildcard,
            "http_requests"
        )
    )]
    #[case(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/prod/deployments.apps/web/queue",
        custom(
            CustomVersion::V1beta2,
            Some("prod"),
            "deployments.apps",
            named("web"),
            "queue"
        )
    )]
    #[case(
        "/apis/custom.metrics.k8s.io/v1beta2/nodes/n1/load",
        custom(CustomVersion::V1beta2, None, "nodes", named("n1"), "load")
    )]
    #[case(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/prod/metrics/queue_length",
        custom(
            CustomVersion::V1beta2,
            None,
            "namespaces",
            named("prod"),
            "queue_length"
        )
    )]
    #[case(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/prod/queue_length",
        custom(
            CustomVersion::V1beta2,
            None,
            "namespaces",
            named("prod"),
            "queue_length"
        )
    )]
    #[case("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_depth",
           ApiPath::External { namespace: "default".into(), metric: "queue_depth".into() })]
    #[case("/apis/metrics.k8s.io/v1beta1/nodes", ApiPath::NodeMetrics { name: None })]
    #[case("/apis/metrics.k8s.io/v1beta1/nodes/n1", ApiPath::NodeMetrics { name: Some("n1".into()) })]
    #[case("/apis/metrics.k8s.io/v1beta1/pods", ApiPath::PodMetrics { namespace: None, name: None })]
    #[case("/apis/metrics.k8s.io/v1beta1/namespaces/a/pods", ApiPath::PodMetrics { namespace: Some("a".into()), name: None })]
    #[case("/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/p", ApiPath::PodMetrics { namespace: Some("a".into()), name: Some("p".into()) })]
    #[case(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/a%22b/pods/x%0Ay/m%7D",
        custom(CustomVersion::V1beta2, Some("a\"b"), "pods", named("x\ny"), "m}")
    )]
    fn paths(#[case] path: &str, #[case] want: ApiPath) {
        assert_eq!(parse_path(path).unwrap(), want);
    }

    #[rstest]
    #[case("/", 404)]
    #[case("/api", 404)]
    #[case("/apisx", 404)]
    #[case("/apis/other.k8s.io", 404)]
    #[case("/apis/custom.metrics.k8s.io/v2", 404)]
    #[case("/apis/custom.metrics.k8s.io/v1beta2/pods/x", 404)]
    #[case("/apis/custom.metrics.k8s.io/v1beta2/namespaces/a/pods/x/m/extra", 404)]
    #[case("/apis/custom.metrics.k8s.io/v1beta2/namespaces//pods/x/m", 404)]
    #[case("/apis/external.metrics.k8s.io/v1beta2/namespaces/a/m", 404)]
    #[case("/apis/external.metrics.k8s.io/v1beta1/m", 404)]
    #[case("/apis/metrics.k8s.io/v1beta1/services", 404)]
    #[case("/apis/custom.metrics.k8s.io/v1beta2/namespaces/a%2/pods/x/m", 400)]
    #[case("/apis/custom.metrics.k8s.io/v1beta2/namespaces/a%zz/pods/x/m", 400)]
    #[case("/apis/custom.metrics.k8s.io/v1beta2/namespaces/a%ff/pods/x/m", 400)]
    #[case("/apis/custom.metrics.k8s.io/v1beta2/namespaces/a%+1/pods/x/m", 400)]
    fn bad_paths(#[case] path: &str, #[case] code: u16) {
        assert_eq!(parse_path(path).unwrap_err().status_code(), code);
    }

    #[rstest]
    #[case("", None, None)]
    #[case("labelSelector=app%3Dweb", Some("app=web"), None)]
    #[case(
        "labelSelector=app+in+(a,b)&metricLabelSelector=verb%3DGET",
        Some("app in (a,b)"),
        Some("verb=GET")
    )]
    #[case("x=1&labelSelector=a&labelSelector=b", Some("a"), None)]
    #[case("metricLabelSelector", None, Some(""))]
    fn queries(#[case] q: &str, #[case] label: Option<&str>, #[case] metric: Option<&str>) {
        let p = parse_query(q).unwrap();
        assert_eq!(p.label_selector.as_deref(), label);
        assert_eq!(p.metric_label_selector.as_deref(), metric);
    }

    #[test]
    fn bad_query_encoding_is_400() {
        assert_eq!(
            parse_query("labelSelector=%").unwrap_err().status_code(),
            400
        );
    }

    proptest! {
        #[test]
        fn path_parsing_never_panics(path in "\\PC{0,80}") {
            let _ = parse_path(&path);
            let _ = parse_query(&path);
        }

        #[test]
        fn path_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
            Just("/apis"), Just("/"), Just("custom.metrics.k8s.io"), Just("external.metrics.k8s.io"),
            Just("metrics.k8s.io"), Just("v1beta1"), Just("v1beta2"), Just("namespaces"), Just("metrics"),
            Just("pods"), Just("*"), Just("%"), Just("%2F"), Just("%e2%82"), Just("x"), Just("é"),
        ], 0..12)) {
            let path: String = parts.concat();
            let _ = parse_path(&path);
        }

        // Any metric name survives the path round trip.
        #[test]
        fn encoded_metric_names_round_trip(metric in "\\PC{1,30}") {
            let encoded: String = metric.bytes().map(|b| format!("%{b:02X}")).collect();
            let p = parse_path(&format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/ns/{encoded}"))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(p, ApiPath::External { namespace: "ns".into(), metric });
        }
    }
}
