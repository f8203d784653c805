#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Custom `targetRef` kinds through discovery and their `/scale`
//! subresource, against the scripted Kubernetes API: the exact requests, the
//! cache (no request while fresh, one discovery per kind), every failure
//! named in the VPA's condition, and a recommendation for a custom kind.

use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use tailor_api::selector::Selector;
use tailor_core::catalog::Rates;
use tailor_core::recommender::{RecommenderOptions, Timestamp};
use tailor_recommender::controller::r#loop::{
    CostConfig, LookupError, PodInfo, Recommender, Snapshot, TargetLookup, VpaInfo,
};
use tailor_recommender::controller::state::ClusterState;
use tailor_recommender::prom::{ContainerKey, History};
use tailor_runtime::scale::{CrossVersionObjectReferenceKey, DEFAULT_MAX_AGE_SECS, ScaleTargets};
use tailor_testkit::kube_mock::{Exchange, KubeMock};

const NOW: Timestamp = 1_700_086_400;
const DISCOVERY: &str = "/apis/example.com/v1";

fn vpa(name: &str, api_version: &str, kind: &str, target: &str) -> Arc<VpaInfo> {
    Arc::new(VpaInfo::new(
        serde_json::from_value(json!({
            "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"targetRef": {"apiVersion": api_version, "kind": kind, "name": target}}
        }))
        .unwrap(),
    ))
}

fn target(kind: &str, name: &str) -> CrossVersionObjectReference {
    CrossVersionObjectReference {
        api_version: Some("example.com/v1".into()),
        kind: kind.into(),
        name: name.into(),
    }
}

/// `example.com/v1` serves Widgets (with /scale) and Gadgets (without).
fn resources() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "example.com/v1",
        "resources": [
            {"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget",
             "verbs": ["get", "list", "watch"]},
            {"name": "widgets/scale", "singularName": "", "namespaced": true, "group": "autoscaling",
             "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]},
            {"name": "gadgets", "singularName": "gadget", "namespaced": true, "kind": "Gadget",
             "verbs": ["get", "list"]}
        ]
    })
}

fn scale(name: &str, selector: &str) -> Value {
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"replicas": 2}, "status": {"replicas": 2, "selector": selector}
    })
}

fn custom(vpas: &[Arc<VpaInfo>]) -> BTreeSet<(String, CrossVersionObjectReferenceKey)> {
    ScaleTargets::custom_targets(
        vpas.iter()
            .map(|v| (v.namespace.as_str(), &v.spec.target_ref)),
    )
}

fn scale_path(name: &str) -> String {
    format!("/apis/example.com/v1/namespaces/shop/widgets/{name}/scale")
}

fn message(e: &LookupError) -> String {
    format!("Cannot read targetRef: {e}")
}

#[tokio::test]
async fn reads_scale_selectors_once_per_kind_and_not_again_while_fresh() {
    let cache = ScaleTargets::default();
    let vpas = [
        vpa("a", "example.com/v1", "Widget", "a"),
        vpa("b", "example.com/v1", "Widget", "b"),
        vpa("web", "apps/v1", "Deployment", "web"),
    ];
    let targets = custom(&vpas);
    assert_eq!(
        targets.len(),
        2,
        "well-known kinds are not read through /scale"
    );
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::get(DISCOVERY).respond(200, resources()),
        Exchange::get(&scale_path("a")).respond(200, scale("a", "app=a,tier in (fe)")),
        Exchange::get(&scale_path("b")).respond(200, scale("b", "app=b")),
    ]);
    cache
        .refresh(&client, &targets, NOW, DEFAULT_MAX_AGE_SECS)
        .await;
    api.verify().await;
    assert_eq!(
        cache.selector("shop", &target("Widget", "a")).unwrap(),
        Selector::parse("app=a,tier in (fe)").unwrap()
    );
    assert_eq!(
        cache.selector("shop", &target("Widget", "b")).unwrap(),
        Selector::parse("app=b").unwrap()
    );
    assert_eq!(
        cache.replicas("shop", &target("Widget", "b")).unwrap(),
        Some(2)
    );

    // Fresh: nothing is asked.
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![]);
    cache
        .refresh(
            &client,
            &targets,
            NOW + DEFAULT_MAX_AGE_SECS - 1,
            DEFAULT_MAX_AGE_SECS,
        )
        .await;
    api.verify().await;

    // Stale, and "b" no longer named: the kind and "a" are read again, "b" is forgotten.
    let only_a = custom(&vpas[..1]);
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::get(DISCOVERY).respond(200, resources()),
        Exchange::get(&scale_path("a")).respond(200, scale("a", "app=a2")),
    ]);
    cache
        .refresh(
            &client,
            &only_a,
            NOW + DEFAULT_MAX_AGE_SECS,
            DEFAULT_MAX_AGE_SECS,
        )
        .await;
    api.verify().await;
    assert_eq!(
        cache.selector("shop", &target("Widget", "a")).unwrap(),
        Selector::parse("app=a2").unwrap()
    );
    let pending = cache.selector("shop", &target("Widget", "b")).unwrap_err();
    assert_eq!(
        message(&pending),
        "Cannot read targetRef: the /scale subresource of Widget \"b\" has not been read yet"
    );
}

#[tokio::test]
async fn every_failure_is_named() {
    let cache = ScaleTargets::default();
    let vpas = [
        vpa("gadget", "example.com/v1", "Gadget", "g"),
        vpa("gone", "example.com/v1", "Widget", "gone"),
        vpa("denied", "example.com/v1", "Widget", "denied"),
        vpa("nogroup", "other.io/v1", "Thing", "t"),
    ];
    let (client, mock) = KubeMock::pair();
    // Targets are read in (namespace, apiVersion, kind, name) order; a
    // group/version is discovered once for all its kinds.
    let api = mock.run(vec![
        Exchange::get(DISCOVERY).respond(200, resources()),
        Exchange::get(&scale_path("denied")).respond_status(
            403,
            "Forbidden",
            "widgets.example.com \"denied\" is forbidden: User \"system:serviceaccount:tailor-system:tailor-recommender\" cannot get resource \"widgets/scale\"",
        ),
        Exchange::get(&scale_path("gone")).respond_status(404, "NotFound", "widgets.example.com \"gone\" not found"),
        Exchange::get("/apis/other.io/v1").respond_status(404, "NotFound", "the server could not find the requested resource"),
    ]);
    cache
        .refresh(&client, &custom(&vpas), NOW, DEFAULT_MAX_AGE_SECS)
        .await;
    api.verify().await;
    let err = |kind: &str, name: &str, api_version: &str| {
        let t = CrossVersionObjectReference {
            api_version: Some(api_version.into()),
            kind: kind.into(),
            name: name.into(),
        };
        message(&cache.selector("shop", &t).unwrap_err())
    };
    assert_eq!(
        err("Gadget", "g", "example.com/v1"),
        "Cannot read targetRef: targetRef Gadget \"g\" (apiVersion \"example.com/v1\"): kind \"Gadget\" is not a well-known controller and has no /scale subresource"
    );
    assert_eq!(
        err("Widget", "gone", "example.com/v1"),
        "Cannot read targetRef: targetRef Widget \"gone\" does not exist"
    );
    let denied = err("Widget", "denied", "example.com/v1");
    assert!(
        denied.starts_with(
            "Cannot read targetRef: GET example.com/v1/widgets \"denied\" /scale in shop: "
        ) && denied.contains("cannot get resource \"widgets/scale\""),
        "{denied}"
    );
    assert_eq!(
        err("Thing", "t", "other.io/v1"),
        "Cannot read targetRef: targetRef Thing \"t\" (apiVersion \"other.io/v1\"): kind \"Thing\" is not a well-known controller and has no /scale subresource"
    );
}

/// Only custom kinds, from the scale cache (what the controller's lookup
/// does for any kind that is not a well-known controller).
struct Custom(ScaleTargets);

impl TargetLookup for Custom {
    fn selector(
        &self,
        namespace: &str,
        target: &CrossVersionObjectReference,
    ) -> Result<Selector, LookupError> {
        self.0.selector(namespace, target)
    }
}

#[tokio::test]
async fn a_custom_kind_gets_a_recommendation() {
    let cache = ScaleTargets::default();
    let vpas = [vpa("w", "example.com/v1", "Widget", "w")];
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::get(DISCOVERY).respond(200, resources()),
        Exchange::get(&scale_path("w")).respond(200, scale("w", "app=w")),
    ]);
    cache
        .refresh(&client, &custom(&vpas), NOW, DEFAULT_MAX_AGE_SECS)
        .await;
    api.verify().await;

    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
        "metadata": {"name": "w-0", "namespace": "shop", "labels": {"app": "w"}},
        "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]},
        "status": {"phase": "Running"}
    }))
    .unwrap();
    let pods = [Arc::new(PodInfo::from_pod(&pod))];
    let mut history = History::default();
    let key = ContainerKey {
        namespace: "shop".into(),
        pod: "w-0".into(),
        container: "app".into(),
    };
    history.cpu.insert(
        key.clone(),
        (0..60).map(|i| (NOW - 3600 + i * 60, 0.5)).collect(),
    );
    history.memory.insert(key, vec![(NOW - 60, 3e8)]);
    let mut r = Recommender::new(
        "default",
        CostConfig {
            rates: Rates {
                usd_per_vcpu_hour: 0.04,
                usd_per_gib_hour: 0.005,
            },
            default_policy: None,
            penalty: None,
            min_quantile: 0.5,
            max_quantile: 0.99,
        },
        ClusterState::new(RecommenderOptions::default()).unwrap(),
    );
    let out = r
        .step(
            Snapshot {
                vpas: &vpas,
                pods: &pods,
                hpas: &[],
                targets: &Custom(cache),
                ooms: &[],
            },
            &history,
            NOW,
        )
        .unwrap();
    let status = out.results[0].status.as_ref().unwrap();
    assert!(status.recommendation.is_some(), "{status:?}");
    // An hour of samples: provided, with low confidence.
    let types: Vec<(&str, &str)> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    assert_eq!(
        types,
        [
            ("LowConfidence", "True"),
            ("RecommendationProvided", "True")
        ]
    );
}
