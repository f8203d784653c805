//! The HTTPS API: discovery, custom and external metrics, resource metrics
//! (`metrics.k8s.io`, with `resourceRules`), health and OpenAPI, with
//! authentication in front of everything but health.
//!
//! Discovery documents come from the registry's pre-rendered bytes, so they
//! answer from startup, before the first relist and with Prometheus down.
//! Health endpoints never touch Prometheus. Every failure is a Kubernetes
//! `Status`. Successful metric answers are kept rendered while their values
//! are fresh (see [`crate::cache::BodyCache`]), so the HPA controller's
//! repeated requests cost one map lookup after authentication.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::api::{self, ExternalValue, MetricValue, ObjectRef, Status};
use crate::auth::Auth;
use crate::cache::ValueCache;
use crate::metrics::Metrics;
use crate::naming::GroupResource;
use crate::objects::ObjectCache;
use crate::prom::Client;
use crate::query::{self, CustomRequest, Objects, QueryOptions};
use crate::registry::Registry;
use crate::request::{
    self, ApiPath, CUSTOM_GROUP, CustomVersion, EXTERNAL_GROUP, ObjectName, PathError,
    RESOURCE_GROUP,
};
use crate::resource;
use crate::selector::{MetricSelector, parse_label_selector};

/// Everything a request needs.
#[derive(Clone)]
pub struct AppState {
    /// Served metrics.
    pub registry: Arc<Registry>,
    /// Prometheus.
    pub client: Client,
    /// Value cache.
    pub cache: ValueCache,
    /// Self-metrics.
    pub metrics: Metrics,
    /// Authentication and authorization.
    pub auth: Arc<Auth>,
    /// The objects wildcard requests with a `labelSelector` pick (metadata
    /// watch cache); `None` without Kubernetes API access.
    pub objects: Option<ObjectCache>,
    /// Query building knobs.
    pub query_options: QueryOptions,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The API router.
pub fn router(state: AppState) -> Router {
    // Shared, not cloned field by field on every request.
    let state = Arc::new(state);
    let authenticated = Router::new()
        .route("/openapi/v2", get(openapi_v2))
        .route("/openapi/v3", get(openapi_v3_index))
        .route("/openapi/v3/{*path}", get(openapi_v3))
        .fallback(api)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state);
    // Health answers without credentials and without Prometheus.
    Router::new()
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .merge(authenticated)
}

async fn ok() -> &'static str {
    "ok"
}

async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    // The body is not Sync: authenticate on the parts only.
    let (mut parts, body) = req.into_parts();
    match state.auth.authenticate(&parts).await {
        Ok(identity) => {
            if let Err(status) = state.auth.authorize(&identity, &parts).await {
                return status.into_response();
            }
            parts.extensions.insert(identity);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(status) => status.into_response(),
    }
}

fn openapi_info() -> Value {
    json!({"title": "tailor-metrics-adapter", "version": env!("CARGO_PKG_VERSION")})
}

const METRIC_PATHS: &[(&str, &[&str])] = &[
    (
        "custom.metrics.k8s.io/v1beta1",
        &[
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/{resource}/{name}/{metric}",
            "/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/metrics/{metric}",
            "/apis/custom.metrics.k8s.io/v1beta1/{resource}/{name}/{metric}",
        ],
    ),
    (
        "custom.metrics.k8s.io/v1beta2",
        &[
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/{resource}/{name}/{metric}",
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/metrics/{metric}",
            "/apis/custom.metrics.k8s.io/v1beta2/{resource}/{name}/{metric}",
        ],
    ),
    (
        "external.metrics.k8s.io/v1beta1",
        &["/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}"],
    ),
];

fn operation(kind: &str) -> Value {
    json!({"get": {
        "produces": ["application/json"],
        "responses": {"200": {"description": format!("a {kind}")}},
    }})
}

async fn openapi_v2() -> Response {
    let mut paths = serde_json::Map::new();
    for (gv, list) in METRIC_PATHS {
        let kind = if gv.starts_with(EXTERNAL_GROUP) {
            "ExternalMetricValueList"
        } else {
            "MetricValueList"
        };
        for p in *list {
            paths.insert((*p).to_owned(), operation(kind));
        }
    }
    axum::Json(json!({"swagger": "2.0", "info": openapi_info(), "paths": paths})).into_response()
}

async fn openapi_v3_index() -> Response {
    let mut paths = serde_json::Map::new();
    for (gv, _) in METRIC_PATHS {
        paths.insert(
            format!("apis/{gv}"),
            json!({"serverRelativeURL": format!("/openapi/v3/apis/{gv}")}),
        );
    }
    axum::Json(json!({"paths": paths})).into_response()
}

async fn openapi_v3(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    let Some((gv, list)) = METRIC_PATHS
        .iter()
        .find(|(gv, _)| path == format!("apis/{gv}"))
    else {
        return Status::new(404, format!("no OpenAPI v3 document for {path:?}")).into_response();
    };
    let mut paths = serde_json::Map::new();
    for p in *list {
        paths.insert(
            (*p).to_owned(),
            json!({"get": {"responses": {"200": {"description": format!("metric values ({gv})")}}}}),
        );
    }
    axum::Json(json!({"openapi": "3.0.0", "info": openapi_info(), "paths": paths})).into_response()
}

/// Every `/apis/...` path.
async fn api(State(state): State<Arc<AppState>>, req: Request<Body>) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Status::new(
            405,
            format!(
                "{} is not supported; the metrics APIs are read-only",
                req.method()
            ),
        )
        .into_response();
    }
    let uri = req.uri();
    let key = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |pq| pq.as_str());
    // A repeated request for fresh values: the rendered answer, as is.
    if let Some(body) = state.cache.bodies().get(key) {
        body.requests.inc();
        state.metrics.cache(crate::cache::Outcome::Hit);
        return api::json_response(body.bytes);
    }
    let key = key.to_owned();
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let parsed = match request::parse_path(&path) {
        Ok(p) => p,
        Err(e) => return path_error(&e).into_response(),
    };
    let snap = state.registry.snapshot();
    let resource_metrics = state.registry.config().resource_rules.is_some();
    match parsed {
        ApiPath::Groups => api::json_response(api::api_group_list(resource_metrics)),
        ApiPath::Group(g)
            if g == CUSTOM_GROUP
                || g == EXTERNAL_GROUP
                || (g == RESOURCE_GROUP && resource_metrics) =>
        {
            api::json_response(api::api_group(&g))
        }
        ApiPath::Version { group, .. } if group == RESOURCE_GROUP && resource_metrics => {
            api::json_response(resource::resource_list())
        }
        ApiPath::PodMetrics { namespace, name } if resource_metrics => {
            let r = resource::get_pods(&state, &query, namespace.as_deref(), name.as_deref()).await;
            respond(&state, &key, "resource", "pods", r)
        }
        ApiPath::NodeMetrics { name } if resource_metrics => {
            let r = resource::get_nodes(&state, &query, name.as_deref()).await;
            respond(&state, &key, "resource", "nodes", r)
        }
        ApiPath::Version { group, version } if group == CUSTOM_GROUP => {
            api::json_response(if version == "v1beta1" {
                snap.custom_v1beta1.clone()
            } else {
                snap.custom_v1beta2.clone()
            })
        }
        ApiPath::Version { group, .. } if group == EXTERNAL_GROUP => {
            api::json_response(snap.external_v1beta1.clone())
        }
        ApiPath::Custom {
            version,
            namespace,
            resource,
            name,
            metric,
        } => {
            let resource = (state.registry.resources().current())
                .normalize(&resource.group, &resource.resource);
            let label = format!("{resource}/{metric}");
            let served = snap
                .custom
                .contains_key(&(resource.clone(), metric.clone()));
            let r = custom(&state, &query, version, namespace, resource, name, metric).await;
            respond(
                &state,
                &key,
                "custom",
                if served { &label } else { "unknown" },
                r,
            )
        }
        ApiPath::External { namespace, metric } => {
            let served = snap.external.contains_key(&metric);
            let r = external(&state, &query, &namespace, &metric).await;
            respond(
                &state,
                &key,
                "external",
                if served { &metric } else { "unknown" },
                r,
            )
        }
        _ => path_error(&PathError::NotFound(path)).into_response(),
    }
}

/// A metric answer (the body and when the values behind it were fetched,
/// `None` when no query ran), counted, and kept for `key` while fresh.
fn respond(
    state: &AppState,
    key: &str,
    api_label: &str,
    metric: &str,
    r: Result<(Value, Option<Instant>), Status>,
) -> Response {
    let code = r.as_ref().map_or_else(|s| s.code, |_| 200);
    let requests = state.metrics.request_counter(api_label, metric, code);
    requests.inc();
    match r {
        Err(status) => status.into_response(),
        Ok((v, fetched)) => {
            let bytes = api::to_bytes(&v);
            if let Some(fetched) = fetched {
                state.cache.bodies().insert(
                    key,
                    crate::cache::Body {
                        bytes: bytes.clone(),
                        fresh_until: fetched + state.cache.ttl(),
                        requests,
                    },
                );
            }
            api::json_response(bytes)
        }
    }
}

fn path_error(e: &PathError) -> Status {
    Status::new(e.status_code(), e.to_string())
}

fn bad_request(e: impl std::fmt::Display) -> Status {
    Status::new(400, e.to_string())
}

/// Runs a built query through the cache.
pub(crate) async fn fetch(
    state: &AppState,
    promql: &str,
    metric: &str,
) -> Result<Arc<crate::cache::Entry>, Status> {
    let client = state.client.clone();
    let metrics = state.metrics.clone();
    let q = promql.to_owned();
    state
        .cache
        .get(promql, move || async move {
            let r = client.query(&q).await;
            metrics.prometheus_call(r.as_ref().map_or_else(|e| e.label(), |_| "ok"));
            r
        })
        .await
        .map(|(e, _)| e)
        .map_err(|e| {
            tracing::warn!(error = %e, %metric, "metric query failed");
            Status::new(
                503,
                format!("cannot get metric {metric:?} from Prometheus: {e}"),
            )
        })
}

async fn custom(
    state: &AppState,
    query: &str,
    version: CustomVersion,
    namespace: Option<String>,
    resource: GroupResource,
    name: ObjectName,
    metric: String,
) -> Result<(Value, Option<Instant>), Status> {
    let params = request::parse_query(query).map_err(|e| path_error(&e))?;
    let answer = custom_values(state, &params, namespace, &resource, &name, &metric).await?;
    Ok((
        api::metric_value_list(version, &metric, answer.selector.as_ref(), &answer.values),
        answer.fetched,
    ))
}

/// A custom-metrics answer before it is shaped for a version.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomAnswer {
    /// One value per object, sorted by name.
    pub values: Vec<MetricValue>,
    /// The metric selector as a `LabelSelector`, when there is one.
    pub selector: Option<Value>,
    /// When Prometheus answered the query behind the values; `None` when
    /// the request selected no objects and no query ran.
    pub fetched: Option<Instant>,
}

/// The values of a custom metric for the requested objects.
///
/// # Errors
/// A `Status`: 404 unknown metric or object, 400 bad selector, 503 Prometheus failing.
pub async fn custom_values(
    state: &AppState,
    params: &request::QueryParams,
    namespace: Option<String>,
    resource: &GroupResource,
    name: &ObjectName,
    metric: &str,
) -> Result<CustomAnswer, Status> {
    let snap = state.registry.snapshot();
    let not_found = || {
        Status::new(
            404,
            format!("the server could not find the metric {metric} for {resource}"),
        )
    };
    let served = snap
        .custom
        .get(&(resource.clone(), metric.to_owned()))
        .ok_or_else(not_found)?;
    let rule = state
        .registry
        .config()
        .rules
        .get(served.rule)
        .ok_or_else(not_found)?;
    let selector =
        MetricSelector::parse(params.metric_label_selector.as_deref()).map_err(bad_request)?;
    let label_selector =
        parse_label_selector(params.label_selector.as_deref()).map_err(bad_request)?;
    // Objects that are not namespaced ignore the request namespace.
    let namespace = namespace.filter(|_| served.namespaced);
    let names: Vec<String>;
    let objects = match name {
        ObjectName::Named(n) => {
            names = vec![n.clone()];
            Objects::Named(&names)
        }
        ObjectName::Wildcard if label_selector == tailor_api::selector::Selector::everything() => {
            Objects::All
        }
        ObjectName::Wildcard => {
            let Some(cache) = &state.objects else {
                return Err(Status::new(
                    400,
                    format!(
                        "labelSelector on {resource} needs Kubernetes API access to find the matching objects; \
                         run the adapter with a kubeconfig or in-cluster, or leave out labelSelector"
                    ),
                ));
            };
            names = cache
                .names(resource, namespace.as_deref(), &label_selector)
                .await
                .map_err(|e| Status::new(e.status_code(), e.to_string()))?;
            Objects::Named(&names)
        }
    };
    let built = match query::build_custom(
        rule,
        &CustomRequest {
            series: &served.series,
            resource,
            namespace: namespace.as_deref(),
            objects,
            metric_selector: &selector,
        },
        state.query_options,
    ) {
        Ok(b) => Some(b),
        Err(query::QueryError::NoObjects) => None,
        Err(e) => return Err(Status::new(e.status_code(), e.to_string())),
    };
    let selector_json = api::label_selector_json(selector.requirements());
    let Some(built) = built else {
        return Ok(CustomAnswer {
            values: Vec::new(),
            selector: selector_json,
            fetched: None,
        });
    };
    let entry = fetch(state, &built.promql, &format!("{resource}/{metric}")).await?;
    let (kind, api_version) = (state.registry.resources().current().kind_of(resource))
        .unwrap_or_else(|| api::kind_of(resource));
    let mut by_name: BTreeMap<&str, MetricValue> = BTreeMap::new();
    for s in &entry.samples {
        let Some(obj) = s.labels.get(&built.resource_label) else {
            continue;
        };
        if let Some(keep) = &built.keep
            && !keep.contains(obj)
        {
            continue;
        }
        if let ObjectName::Named(n) = name
            && n != obj
        {
            continue;
        }
        let Some(value) = api::quantity(s.value) else {
            continue;
        };
        by_name.entry(obj).or_insert_with(|| MetricValue {
            object: ObjectRef {
                kind: kind.clone(),
                api_version: api_version.clone(),
                namespace: namespace.clone(),
                name: obj.clone(),
            },
            timestamp: s.timestamp,
            value,
        });
    }
    if let (ObjectName::Named(n), true) = (name, by_name.is_empty()) {
        return Err(Status::new(
            404,
            format!("the server could not find the metric {metric} for {resource} {n}"),
        ));
    }
    Ok(CustomAnswer {
        values: by_name.into_values().collect(),
        selector: selector_json,
        fetched: Some(entry.fetched),
    })
}

async fn external(
    state: &AppState,
    query: &str,
    namespace: &str,
    metric: &str,
) -> Result<(Value, Option<Instant>), Status> {
    let params = request::parse_query(query).map_err(|e| path_error(&e))?;
    let (values, fetched) = external_answer(state, &params, namespace, metric).await?;
    Ok((api::external_value_list(metric, &values), Some(fetched)))
}

/// The values of an external metric.
///
/// # Errors
/// A `Status`: 404 unknown metric, 400 bad selector, 503 Prometheus failing.
pub async fn external_values(
    state: &AppState,
    params: &request::QueryParams,
    namespace: &str,
    metric: &str,
) -> Result<Vec<ExternalValue>, Status> {
    Ok(external_answer(state, params, namespace, metric).await?.0)
}

/// The values of an external metric and when Prometheus answered for them.
async fn external_answer(
    state: &AppState,
    params: &request::QueryParams,
    namespace: &str,
    metric: &str,
) -> Result<(Vec<ExternalValue>, Instant), Status> {
    let snap = state.registry.snapshot();
    let not_found = || {
        Status::new(
            404,
            format!("the server could not find the external metric {metric}"),
        )
    };
    let served = snap.external.get(metric).ok_or_else(not_found)?;
    let rule = state
        .registry
        .config()
        .external_rules
        .get(served.rule)
        .ok_or_else(not_found)?;
    // The external API's labelSelector selects on the metric's labels.
    let selector = MetricSelector::parse(params.label_selector.as_deref()).map_err(bad_request)?;
    let promql = query::build_external(rule, &served.series, Some(namespace), &selector)
        .map_err(|e| Status::new(e.status_code(), e.to_string()))?;
    let entry = fetch(state, &promql, metric).await?;
    let values = entry
        .samples
        .iter()
        .filter_map(|s| {
            Some(ExternalValue {
                labels: s.labels.clone(),
                timestamp: s.timestamp,
                value: api::quantity(s.value)?,
            })
        })
        .collect();
    Ok((values, entry.fetched))
}
