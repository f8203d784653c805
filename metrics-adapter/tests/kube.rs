#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The adapter's Kubernetes API calls, each asserted exactly by the kube
//! mock: TokenReview, SubjectAccessReview (with their caches) and the
//! metadata list behind wildcard requests with a `labelSelector`.

use std::time::Duration;

use axum::body::Body;
use http::request::Parts;
use serde_json::json;
use tailor_metrics_adapter::auth::{
    AccessReviewer, Auth, Identity, RequestAttributes, TokenReviewer,
};
use tailor_metrics_adapter::naming::GroupResource;
use tailor_metrics_adapter::objects::ObjectLister;
use tailor_testkit::kube_mock::{Exchange, KubeMock};

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

#[tokio::test]
async fn label_selectors_list_object_metadata_in_the_namespace() {
    let (client, mock) = KubeMock::pair();
    let list = json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {},
                      "items": [
                          {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": "web-1", "namespace": "shop"}},
                          {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": {"name": "web-0", "namespace": "shop"}}]});
    let script = mock.run(vec![
        Exchange::get("/api/v1/namespaces/shop/pods?labelSelector=app%3Dweb")
            .respond(200, list.clone()),
        Exchange::get(
            "/apis/apps/v1/namespaces/shop/deployments?labelSelector=tier+in+%28a%2Cb%29",
        )
        .respond(200, list),
    ]);
    let lister = ObjectLister::new(client);
    let names = lister
        .names(&GroupResource::pods(), Some("shop"), "app=web")
        .await
        .unwrap();
    assert_eq!(names, ["web-0", "web-1"]);
    lister
        .names(
            &GroupResource::new("apps", "deployments"),
            Some("shop"),
            "tier in (a,b)",
        )
        .await
        .unwrap();
    let err = lister
        .names(
            &GroupResource::new("example.com", "widgets"),
            Some("shop"),
            "a=b",
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("widgets.example.com"), "{err}");
    script.verify().await;
}
