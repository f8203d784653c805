#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The adapter's Kubernetes API calls, each asserted exactly by the kube
//! mock: TokenReview, SubjectAccessReview (with their caches) and the
//! metadata watch cache behind wildcard requests with a `labelSelector`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::request::Parts;
use serde_json::json;
use tailor_api::selector::Selector;
use tailor_metrics_adapter::apidiscovery;
use tailor_metrics_adapter::auth::{
    AccessReviewer, Auth, Identity, RequestAttributes, TokenReviewer,
};
use tailor_metrics_adapter::config::Config;
use tailor_metrics_adapter::naming::{
    GroupResource, KnownResources, ResourceIndex, ResourceInfo, Series,
};
use tailor_metrics_adapter::objects::{CacheOptions, ObjectCache, ObjectMetrics, ResourceLabels};
use tailor_metrics_adapter::registry::Registry;
use tailor_testkit::kube_mock::{Exchange, KubeMock};
use tokio_util::sync::CancellationToken;

fn request(path: &str, token: Option<&str>) -> Parts {
    let mut b = http::Request::get(path);
    if let Some(t) = token {
        b = b.header("Authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap().into_parts().0
}

fn token_review(token: &str) -> serde_json::Value {
    json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
           "spec": {"token": token}})
}

#[tokio::test]
async fn bearer_tokens_go_to_token_review_once_per_ttl() {
    let (client, mock) = KubeMock::pair();
    let script = mock.run(vec![
        Exchange::post("/apis/authentication.k8s.io/v1/tokenreviews")
            .body(token_review("good-token"))
            .respond(
                201,
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
                       "spec": {"token": "good-token"},
                       "status": {"authenticated": true, "user": {"username": "alice", "groups": ["devs"]}}}),
            ),
        Exchange::post("/apis/authentication.k8s.io/v1/tokenreviews")
            .body(token_review("bad-token"))
            .respond(
                201,
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
                       "spec": {"token": "bad-token"}, "status": {"authenticated": false}}),
            ),
    ]);
    let mut auth = Auth::new(Vec::new());
    auth.tokens = Some(TokenReviewer::new(client, Duration::from_secs(60)));
    let alice = Identity {
        user: "alice".into(),
        groups: vec!["devs".into()],
    };
    let path = "/apis/custom.metrics.k8s.io/v1beta2";
    assert_eq!(
        auth.authenticate(&request(path, Some("good-token")))
            .await
            .unwrap(),
        alice
    );
    // Cached: no second call.
    assert_eq!(
        auth.authenticate(&request(path, Some("good-token")))
            .await
            .unwrap(),
        alice
    );
    let denied = auth
        .authenticate(&request(path, Some("bad-token")))
        .await
        .unwrap_err();
    assert_eq!(denied.code, 401);
    let none = auth.authenticate(&request(path, None)).await.unwrap_err();
    assert_eq!(none.code, 401);
    assert!(none.message.contains("no bearer token"), "{}", none.message);
    script.verify().await;
}

fn sar(user: &str, attrs: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
           "spec": {"user": user, "groups": ["devs"], "resourceAttributes": attrs}})
}

#[tokio::test]
async fn metric_reads_go_to_subject_access_review_and_discovery_does_not() {
    let (client, mock) = KubeMock::pair();
    let pods_attrs = json!({"group": "custom.metrics.k8s.io", "version": "v1beta2", "namespace": "shop",
                            "resource": "pods", "name": "web-0", "subresource": "http_requests", "verb": "get"});
    let ext_attrs = json!({"group": "external.metrics.k8s.io", "version": "v1beta1", "namespace": "shop",
                           "resource": "queue_depth", "verb": "get"});
    let script = mock.run(vec![
        Exchange::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
            .body(sar("alice", pods_attrs.clone()))
            .respond(201, json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
                                 "spec": {"user": "alice", "resourceAttributes": pods_attrs}, "status": {"allowed": true}})),
        Exchange::post("/apis/authorization.k8s.io/v1/subjectaccessreviews")
            .body(sar("alice", ext_attrs.clone()))
            .respond(201, json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "metadata": {},
                                 "spec": {"user": "alice", "resourceAttributes": ext_attrs}, "status": {"allowed": false}})),
    ]);
    let mut auth = Auth::new(Vec::new());
    auth.access = Some(AccessReviewer::new(client, Duration::from_secs(60)));
    let alice = Identity {
        user: "alice".into(),
        groups: vec!["devs".into()],
    };
    let pods = "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-0/http_requests";
    auth.authorize(&alice, &request(pods, None)).await.unwrap();
    // The decision is cached.
    auth.authorize(&alice, &request(pods, None)).await.unwrap();
    let ext = "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth";
    let denied = auth
        .authorize(&alice, &request(ext, None))
        .await
        .unwrap_err();
    assert_eq!((denied.code, denied.reason), (403, "Forbidden"));
    assert!(denied.message.contains("alice"), "{}", denied.message);
    // Discovery needs no review.
    for p in [
        "/apis",
        "/apis/custom.metrics.k8s.io",
        "/apis/custom.metrics.k8s.io/v1beta2",
        "/openapi/v2",
    ] {
        auth.authorize(&alice, &request(p, None)).await.unwrap();
    }
    script.verify().await;
}

#[test]
fn request_attributes_follow_kube_apiserver_request_info() {
    let a = RequestAttributes::of_path(
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/metrics/queue",
    )
    .unwrap();
    assert_eq!(
        (a.resource.as_str(), a.name.as_deref(), a.subresource),
        ("metrics", Some("queue"), None)
    );
    let a =
        RequestAttributes::of_path("/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/load").unwrap();
    assert_eq!(
        (a.namespace, a.resource.as_str(), a.subresource.as_deref()),
        (None, "nodes", Some("load"))
    );
    assert!(RequestAttributes::of_path("/apis/custom.metrics.k8s.io/v1beta1").is_none());
    assert!(RequestAttributes::of_path("/healthz").is_none());
}

fn object(namespace: &str, name: &str, rv: &str, labels: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
           "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv, "labels": labels,
                        "annotations": {"big": "dropped from the cache"},
                        "managedFields": [{"manager": "kubectl", "operation": "Apply"}]}})
}

fn object_list(rv: &str, items: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
           "metadata": {"resourceVersion": rv}, "items": items})
}

fn event(kind: &str, object: serde_json::Value) -> serde_json::Value {
    json!({"type": kind, "object": object})
}

/// kube-runtime's watch after a list: bookmarks on, its 290 s timeout.
fn watch(path: &str, rv: &str) -> String {
    format!("{path}?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion={rv}")
}

/// Retries never fire during a test: a failed watch parks the reflector.
fn options(sync_wait: Duration) -> CacheOptions {
    CacheOptions {
        sync_wait,
        backoff: Duration::from_secs(3600),
        max_backoff: Duration::from_secs(3600),
    }
}

/// The built-in resources plus one namespaced resource discovery found.
fn discovered(group: &str, plural: &str, singular: &str, kind: &str) -> KnownResources {
    let known = KnownResources::default();
    known.replace(ResourceIndex::with_discovered(vec![ResourceInfo::v1(
        group, plural, singular, kind, true,
    )]));
    known
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

#[tokio::test]
async fn label_selectors_are_answered_from_one_list_and_the_watch() {
    let (client, mock) = KubeMock::pair();
    let mut script = mock.run(vec![
        // One paged, metadata-only list, cluster-wide, on the first request.
        Exchange::get("/api/v1/pods?limit=500").respond(
            200,
            object_list(
                "10",
                vec![
                    object("shop", "web-0", "7", json!({"app": "web"})),
                    object("shop", "db-0", "8", json!({"app": "db"})),
                    object("other", "web-9", "9", json!({"app": "web"})),
                ],
            ),
        ),
        // Then a watch from the list's resourceVersion.
        Exchange::get(&watch("/api/v1/pods", "10")).respond_watch(&[
            event(
                "ADDED",
                object("shop", "web-1", "11", json!({"app": "web"})),
            ),
            event(
                "MODIFIED",
                object("shop", "db-0", "12", json!({"app": "web"})),
            ),
            event(
                "DELETED",
                object("shop", "web-0", "13", json!({"app": "web"})),
            ),
            event(
                "BOOKMARK",
                json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                       "metadata": {"resourceVersion": "14"}}),
            ),
        ]),
        // The stream ended (as at its timeout): it resumes from the bookmark.
        Exchange::get(&watch("/api/v1/pods", "14")).respond_status(
            500,
            "InternalError",
            "etcd is unavailable",
        ),
    ]);
    let shutdown = CancellationToken::new();
    let metrics = ObjectMetrics::default();
    let cache = ObjectCache::new(
        client,
        KnownResources::default(),
        options(Duration::from_secs(30)),
        metrics.clone(),
        shutdown.clone(),
    );
    let pods = GroupResource::pods();
    // The first request waits for the list; the watch may or may not have
    // been applied yet.
    let first = cache
        .names(&pods, Some("shop"), &sel("app=web"))
        .await
        .unwrap();
    assert!(
        first == ["web-0"] || first == ["db-0", "web-1"],
        "{first:?}"
    );
    // The re-watch comes only after every event of the first watch was applied.
    script.wait_consumed().await;
    for _ in 0..20 {
        assert_eq!(
            cache
                .names(&pods, Some("shop"), &sel("app=web"))
                .await
                .unwrap(),
            ["db-0", "web-1"]
        );
    }
    assert_eq!(
        cache.names(&pods, None, &sel("app=web")).await.unwrap(),
        ["db-0", "web-1", "web-9"]
    );
    assert_eq!(
        cache
            .names(&pods, Some("shop"), &sel("app notin (web)"))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    let labels = ResourceLabels {
        resource: "pods".into(),
    };
    assert_eq!(metrics.objects.get_or_create(&labels).get(), 3);
    shutdown.cancel();
    // Exactly one list and two watches for 23 requests.
    script.verify().await;
}

#[tokio::test]
async fn a_request_before_the_first_list_gets_a_503_and_the_next_one_the_objects() {
    let (client, mock) = KubeMock::pair();
    let mut script = mock.run(vec![
        Exchange::get("/apis/apps/v1/deployments?limit=500").respond(
            200,
            object_list(
                "3",
                vec![object("shop", "web", "2", json!({"tier": "front"}))],
            ),
        ),
        Exchange::get(&watch("/apis/apps/v1/deployments", "3")).respond_status(
            500,
            "InternalError",
            "watch refused",
        ),
    ]);
    let shutdown = CancellationToken::new();
    let cache = ObjectCache::new(
        client,
        KnownResources::default(),
        options(Duration::ZERO),
        ObjectMetrics::default(),
        shutdown.clone(),
    );
    let deployments = GroupResource::new("apps", "deployments");
    // No wait allowed: the reflector has not listed yet.
    let err = cache
        .names(&deployments, Some("shop"), &sel("tier=front"))
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 503);
    assert!(err.to_string().contains("still syncing"), "{err}");
    script.wait_consumed().await;
    // Synced by now, and a failing watch keeps the listed objects served.
    assert_eq!(
        cache
            .names(&deployments, Some("shop"), &sel("tier=front"))
            .await
            .unwrap(),
        ["web"]
    );
    shutdown.cancel();
    script.verify().await;
}

#[tokio::test]
async fn a_forbidden_list_names_the_permission_and_unknown_resources_call_nothing() {
    let (client, mock) = KubeMock::pair();
    let script = mock.run(vec![
        Exchange::get("/apis/example.com/v1/widgets?limit=500").respond_status(
            403,
            "Forbidden",
            "widgets.example.com is forbidden: User \"system:serviceaccount:tailor-system:tailor-metrics-adapter\" cannot list resource \"widgets\" in API group \"example.com\" at the cluster scope",
        ),
    ]);
    let known = discovered("example.com", "widgets", "widget", "Widget");
    let shutdown = CancellationToken::new();
    let metrics = ObjectMetrics::default();
    let cache = ObjectCache::new(
        client,
        known,
        options(Duration::from_secs(30)),
        metrics.clone(),
        shutdown.clone(),
    );
    let widgets = GroupResource::new("example.com", "widgets");
    for _ in 0..2 {
        // The second request gets the same answer without a second list.
        let err = cache
            .names(&widgets, Some("shop"), &sel("a=b"))
            .await
            .unwrap_err();
        assert_eq!(err.status_code(), 403, "{err}");
        let text = err.to_string();
        assert!(
            text.contains(
                r#"apiGroups: ["example.com"], resources: [widgets], verbs: [list, watch]"#
            ),
            "{text}"
        );
        assert!(text.contains("cannot list resource"), "{text}");
    }
    let restarts = metrics.restarts.get_or_create(&ResourceLabels {
        resource: "widgets.example.com".into(),
    });
    assert_eq!(restarts.get(), 1);
    let err = cache
        .names(
            &GroupResource::new("example.com", "gadgets"),
            None,
            &sel(""),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), 404);
    assert!(err.to_string().contains("gadgets.example.com"), "{err}");
    shutdown.cancel();
    script.verify().await;
}

fn resource(name: &str, singular: &str, kind: &str, namespaced: bool) -> serde_json::Value {
    json!({"name": name, "singularName": singular, "namespaced": namespaced, "kind": kind,
           "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
           "storageVersionHash": "abc="})
}

fn resource_list(group_version: &str, resources: Vec<serde_json::Value>) -> serde_json::Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
           "resources": resources})
}

fn group(name: &str, versions: &[&str]) -> serde_json::Value {
    let vs: Vec<serde_json::Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({"name": name, "versions": vs, "preferredVersion": vs[0]})
}

fn api_versions() -> Exchange {
    Exchange::get("/api").respond(
        200,
        json!({"kind": "APIVersions", "versions": ["v1"],
               "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]}),
    )
}

fn api_groups(groups: Vec<serde_json::Value>) -> Exchange {
    Exchange::get("/apis").respond(
        200,
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

const DISCOVERY_CONFIG: &str = r#"
rules:
- seriesQuery: '{__name__=~"^nginx_.*"}'
  resources:
    template: <<.Resource>>
  name:
    matches: ^nginx_(.*)$
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
"#;

#[tokio::test]
async fn api_discovery_maps_every_resource_and_keeps_a_failed_group() {
    let (client, mock) = KubeMock::pair();
    let script = mock.run(vec![
        api_versions(),
        api_groups(vec![
            group("apps", &["v1"]),
            group("networking.k8s.io", &["v1"]),
            group("example.com", &["v1", "v1beta1"]),
            group("metrics.k8s.io", &["v1beta1"]),
        ]),
        Exchange::get("/api/v1").respond(
            200,
            resource_list(
                "v1",
                vec![
                    resource("pods", "pod", "Pod", true),
                    resource("pods/status", "", "Pod", true),
                    resource("namespaces", "namespace", "Namespace", false),
                    resource(
                        "persistentvolumes",
                        "persistentvolume",
                        "PersistentVolume",
                        false,
                    ),
                ],
            ),
        ),
        Exchange::get("/apis/apps/v1").respond(
            200,
            resource_list(
                "apps/v1",
                vec![
                    resource("deployments", "deployment", "Deployment", true),
                    resource("deployments/scale", "", "Scale", true),
                ],
            ),
        ),
        Exchange::get("/apis/networking.k8s.io/v1").respond(
            200,
            resource_list(
                "networking.k8s.io/v1",
                vec![resource("ingresses", "ingress", "Ingress", true)],
            ),
        ),
        Exchange::get("/apis/example.com/v1").respond(
            200,
            resource_list(
                "example.com/v1",
                vec![
                    resource("widgets", "widget", "Widget", true),
                    resource("gizmos", "", "Gizmo", false),
                ],
            ),
        ),
        // An aggregated API that is down fails only its own group.
        Exchange::get("/apis/metrics.k8s.io/v1beta1").respond_status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
        // Second round: example.com fails and keeps what it had.
        api_versions(),
        api_groups(vec![group("example.com", &["v1"])]),
        Exchange::get("/api/v1").respond(
            200,
            resource_list("v1", vec![resource("pods", "pod", "Pod", true)]),
        ),
        Exchange::get("/apis/example.com/v1").respond_status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ),
    ]);
    let known = KnownResources::default();
    let first = apidiscovery::discover(&client, &known.current())
        .await
        .unwrap();
    assert_eq!(first.failed, ["metrics.k8s.io/v1beta1"]);
    assert!(known.replace(first.index));
    let index = known.current();
    let found = |g: &str, r: &str| index.find(g, r).map(|i| i.group_resource().to_string());
    // Upstream's RESTMapper forms: plural or singular, any group or a
    // group, and the group as a label template writes it.
    for (g, r, want) in [
        ("", "ingress", "ingresses.networking.k8s.io"),
        ("", "Ingresses", "ingresses.networking.k8s.io"),
        (
            "networking.k8s.io",
            "ingress",
            "ingresses.networking.k8s.io",
        ),
        (
            "networking_k8s_io",
            "ingress",
            "ingresses.networking.k8s.io",
        ),
        ("networking", "ingresses", "ingresses.networking.k8s.io"),
        ("", "widget", "widgets.example.com"),
        ("", "gizmo", "gizmos.example.com"),
        ("", "persistentvolume", "persistentvolumes"),
        ("", "po", "pods"),
        ("", "deploy", "deployments.apps"),
        ("", "job", "jobs.batch"),
    ] {
        assert_eq!(found(g, r).as_deref(), Some(want), "{g}/{r}");
    }
    assert_eq!(found("", "pods/status"), None);
    assert_eq!(found("", "scale"), None);
    assert_eq!(
        index.kind_of(&GroupResource::new("networking.k8s.io", "ingresses")),
        Some(("Ingress".into(), "networking.k8s.io/v1".into()))
    );
    assert!(index.is_cluster_scoped(&GroupResource::new("example.com", "gizmos")));

    let second = apidiscovery::discover(&client, &index).await.unwrap();
    assert_eq!(second.failed, ["example.com/v1"]);
    assert!(second.index.find("", "widgets").is_some());
    assert!(second.index.find("", "ingress").is_none());
    script.verify().await;

    // Series labels map through the discovered resources; without API
    // access (built-in resources only) the same series map to nothing.
    let config = Arc::new(Config::from_yaml(DISCOVERY_CONFIG, "adapter.yaml").unwrap());
    let series = [
        Series::new("nginx_requests", ["namespace", "ingress"]),
        Series::new("nginx_load", ["namespace", "gizmo"]),
    ];
    let with_api = Registry::with_resources(config.clone(), known);
    let without_api = Registry::new(config);
    for r in [&with_api, &without_api] {
        r.update(r.rule_ids()[0], &series, 2);
    }
    let snap = with_api.snapshot();
    let ingress = &snap.custom[&(
        GroupResource::new("networking.k8s.io", "ingresses"),
        "requests".to_owned(),
    )];
    assert!(ingress.namespaced);
    let gizmo = &snap.custom[&(
        GroupResource::new("example.com", "gizmos"),
        "load".to_owned(),
    )];
    assert!(!gizmo.namespaced, "cluster-scoped per discovery");
    let doc: serde_json::Value = serde_json::from_slice(&snap.custom_v1beta2).unwrap();
    let names: Vec<&str> = doc["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"ingresses.networking.k8s.io/requests"),
        "{names:?}"
    );
    assert!(names.contains(&"gizmos.example.com/load"), "{names:?}");
    let without = without_api.snapshot();
    assert!(
        without
            .custom
            .keys()
            .all(|(r, _)| r.resource == "namespaces"),
        "{:?}",
        without.custom.keys()
    );
}

/// A wildcard request with a `labelSelector` on a discovered resource the
/// shipped RBAC does not cover, through the router: the singular path
/// resolves through discovery, and the answer is a 403 `Status` naming the
/// ClusterRole to add.
#[tokio::test]
async fn label_selectors_on_other_resources_answer_403_naming_the_permission() {
    use axum::body::Body;
    use tailor_metrics_adapter::cache::{CacheOptions as ValueCacheOptions, ValueCache};
    use tailor_metrics_adapter::metrics::Metrics;
    use tailor_metrics_adapter::prom::{Client, ClientOptions};
    use tailor_metrics_adapter::query::QueryOptions;
    use tailor_metrics_adapter::server::{AppState, router};
    use tower::ServiceExt as _;

    let (client, mock) = KubeMock::pair();
    let script = mock.run(vec![
        Exchange::get("/apis/networking.k8s.io/v1/ingresses?limit=500").respond_status(
            403,
            "Forbidden",
            "ingresses.networking.k8s.io is forbidden: User \"system:serviceaccount:tailor-system:tailor-metrics-adapter\" cannot list resource \"ingresses\" in API group \"networking.k8s.io\" at the cluster scope",
        ),
    ]);
    let known = discovered("networking.k8s.io", "ingresses", "ingress", "Ingress");
    let config = Arc::new(Config::from_yaml(DISCOVERY_CONFIG, "adapter.yaml").unwrap());
    let registry = Arc::new(Registry::with_resources(config, known.clone()));
    registry.update(
        registry.rule_ids()[0],
        &[Series::new("nginx_requests", ["namespace", "ingress"])],
        1,
    );
    let shutdown = CancellationToken::new();
    let metrics = Metrics::default();
    let state = AppState {
        registry,
        // Nothing listens there; the request must not get that far.
        client: Client::new(&ClientOptions {
            url: "http://127.0.0.1:9".into(),
            ..ClientOptions::default()
        })
        .unwrap(),
        cache: ValueCache::new(
            ValueCacheOptions {
                ttl: Duration::from_secs(60),
                max_staleness: Duration::from_secs(60),
                max_entries: 10,
            },
            metrics.clone(),
        ),
        metrics,
        auth: Arc::new(Auth::new(Vec::new())),
        objects: Some(ObjectCache::new(
            client,
            known,
            options(Duration::from_secs(30)),
            ObjectMetrics::default(),
            shutdown.clone(),
        )),
        query_options: QueryOptions::default(),
    };
    let peer = tailor_runtime::tls::PeerCertificate::from_der(
        tailor_testkit::Pki::generate("front-proxy-client", None)
            .unwrap()
            .client()
            .cert_der(),
    )
    .unwrap();
    let req = http::Request::get(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/ingress/*/requests?labelSelector=app%3Dweb",
    )
    .extension(peer)
    .body(Body::empty())
    .unwrap();
    let response = router(state).oneshot(req).await.unwrap();
    assert_eq!(response.status().as_u16(), 403);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["reason"].as_str()),
        (Some("Status"), Some("Forbidden"))
    );
    let message = v["message"].as_str().unwrap();
    assert!(
        message.contains(
            r#"apiGroups: ["networking.k8s.io"], resources: [ingresses], verbs: [list, watch]"#
        ),
        "{message}"
    );
    shutdown.cancel();
    script.verify().await;
}
