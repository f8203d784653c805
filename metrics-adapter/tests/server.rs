#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The HTTPS API against a real Prometheus holding known series, over real
//! TLS with real client certificates: served values equal the data, every
//! path and body shape, Status errors, authentication, coalescing counted at
//! Prometheus, and Prometheus going away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tailor_metrics_adapter::auth::Auth;
use tailor_metrics_adapter::cache::{CacheOptions, ValueCache};
use tailor_metrics_adapter::config::Config;
use tailor_metrics_adapter::metrics::Metrics;
use tailor_metrics_adapter::prom::{Client, ClientOptions, Verb};
use tailor_metrics_adapter::query::QueryOptions;
use tailor_metrics_adapter::registry::Registry;
use tailor_metrics_adapter::relist::relist_once;
use tailor_metrics_adapter::server::{AppState, router};
use tailor_runtime::args::TlsArgs;
use tailor_runtime::tls;
use tailor_testkit::{OpenMetrics, Pki, Prometheus};
use tokio_util::sync::CancellationToken;

const CONFIG: &str = r#"
rules:
- seriesQuery: 'http_requests{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)$", as: "${1}_per_second"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'queue_length{namespace!="",deployment!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      deployment: {group: apps, resource: deployment}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
- seriesQuery: 'node_load{node!=""}'
  resources:
    overrides:
      node: {resource: node}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
# Prometheus refuses this selector (it matches the empty set): the rule's
# relist fails, and only this rule.
- seriesQuery: '{absent=""}'
  resources:
    overrides:
      pod: {resource: pod}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
externalRules:
- seriesQuery: 'queue_depth{namespace!="",queue!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)'
"#;

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Every series, with one constant value over the last two hours.
fn data() -> OpenMetrics {
    let end = now_ms() / 60_000 * 60_000;
    let samples = |v: f64| (0..120).map(move |i| (end - (119 - i) * 60_000, v));
    let mut d = OpenMetrics::new();
    for (labels, v) in [
        (
            &[("namespace", "shop"), ("pod", "web-0"), ("verb", "GET")][..],
            1.5,
        ),
        (
            &[("namespace", "shop"), ("pod", "web-0"), ("verb", "POST")],
            0.5,
        ),
        (
            &[("namespace", "shop"), ("pod", "web-1"), ("verb", "GET")],
            2.25,
        ),
        (
            &[("namespace", "other"), ("pod", "web-0"), ("verb", "GET")],
            100.0,
        ),
    ] {
        d.gauge("http_requests", labels, samples(v)).unwrap();
    }
    d.gauge(
        "queue_length",
        &[("namespace", "shop"), ("deployment", "worker")],
        samples(12.0),
    )
    .unwrap();
    d.gauge("node_load", &[("node", "n1")], samples(0.75))
        .unwrap();
    for (ns, q, v) in [
        ("shop", "orders", 42.0),
        ("shop", "emails", 7.0),
        ("other", "orders", 1000.0),
    ] {
        d.gauge(
            "queue_depth",
            &[("namespace", ns), ("queue", q)],
            samples(v),
        )
        .unwrap();
    }
    d
}

async fn prometheus() -> Prometheus {
    Prometheus::builder()
        .backfill(data())
        // The newest backfilled sample is up to a minute old.
        .lookback_delta(Duration::from_secs(3 * 3600))
        .start()
        .await
        .unwrap()
}

struct Adapter {
    addr: SocketAddr,
    metrics: Metrics,
    shutdown: CancellationToken,
}

impl Drop for Adapter {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn client_for(url: &str) -> Client {
    Client::new(&ClientOptions {
        url: url.to_owned(),
        timeout: Duration::from_secs(5),
        verb: Some(Verb::Post),
        ..ClientOptions::default()
    })
    .unwrap()
}

async fn start(
    prom_url: &str,
    pki: &Pki,
    cache: CacheOptions,
    allowed: &[&str],
    relist: bool,
) -> Adapter {
    let config = relist.then_some(CONFIG);
    start_with(prom_url, pki, cache, allowed, config).await
}

/// Starts the API with `config`, relisted once, or with the test config
/// and no relist when `None`.
async fn start_with(
    prom_url: &str,
    pki: &Pki,
    cache: CacheOptions,
    allowed: &[&str],
    config: Option<&str>,
) -> Adapter {
    tls::install_crypto_provider();
    let relist = config.is_some();
    let config = Arc::new(Config::from_yaml(config.unwrap_or(CONFIG), "adapter.yaml").unwrap());
    let registry = Arc::new(Registry::new(config));
    let metrics = Metrics::default();
    let client = client_for(prom_url);
    if relist {
        relist_once(&registry, &client, Duration::from_secs(600), &metrics).await;
    }
    let state = AppState {
        registry,
        client,
        cache: ValueCache::new(cache, metrics.clone()),
        metrics: metrics.clone(),
        auth: Arc::new(Auth::new(allowed.iter().map(|s| (*s).to_owned()).collect())),
        objects: None,
        query_options: QueryOptions::default(),
    };
    let tls_config = tls::server_config(
        &TlsArgs {
            tls_cert_file: pki.server().cert_path.clone(),
            tls_private_key_file: pki.server().key_path.clone(),
        },
        Some(&tls::ClientAuth {
            ca_file: pki.ca().cert_path.clone(),
            required: false,
        }),
    )
    .unwrap();
    let listener = tailor_runtime::serve::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(tailor_runtime::serve::serve_tls(
        listener,
        tls_config,
        router(state),
        shutdown.clone(),
        Duration::from_secs(1),
    ));
    Adapter {
        addr,
        metrics,
        shutdown,
    }
}

fn default_cache() -> CacheOptions {
    CacheOptions {
        ttl: Duration::from_secs(60),
        max_staleness: Duration::from_secs(120),
        max_entries: 1000,
    }
}

fn https(config: rustls::ClientConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .build()
        .unwrap()
}

async fn get(client: &reqwest::Client, a: &Adapter, path: &str) -> (u16, Value) {
    let r = client
        .get(format!("https://localhost:{}{path}", a.addr.port()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e:?}"));
    let code = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, body)
}

/// Replaces every `timestamp` (checked to be RFC 3339 UTC) with `<ts>`.
fn normalize(mut v: Value) -> Value {
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            let ts = item["timestamp"].as_str().unwrap().to_owned();
            assert!(
                ts.len() == 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "{ts}"
            );
            item["timestamp"] = json!("<ts>");
        }
    }
    v
}

fn resource_names(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn every_path_serves_the_data_in_both_versions() {
    let prom = prometheus().await;
    let pki = Pki::generate("front-proxy-client", None).unwrap();
    let a = start(
        prom.url(),
        &pki,
        default_cache(),
        &["front-proxy-client"],
        true,
    )
    .await;
    let c = https(pki.client_config_with_cert().unwrap());

    // Discovery.
    let (code, v) = get(&c, &a, "/apis").await;
    assert_eq!(code, 200);
    assert_eq!(v["kind"], "APIGroupList");
    // No resourceRules: metrics.k8s.io is not claimed.
    assert_eq!(v["groups"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        v["groups"][0]["preferredVersion"]["groupVersion"],
        "custom.metrics.k8s.io/v1beta2"
    );
    let (_, v) = get(&c, &a, "/apis/custom.metrics.k8s.io").await;
    assert_eq!(v["kind"], "APIGroup");
    for version in ["v1beta1", "v1beta2"] {
        let (code, v) = get(&c, &a, &format!("/apis/custom.metrics.k8s.io/{version}")).await;
        assert_eq!(code, 200);
        assert_eq!(
            v["groupVersion"],
            format!("custom.metrics.k8s.io/{version}")
        );
        assert_eq!(
            resource_names(&v),
            [
                "deployments.apps/queue_length",
                "namespaces/http_requests_per_second",
                "namespaces/queue_length",
                "nodes/node_load",
                "pods/http_requests_per_second",
            ]
        );
        let pods = v["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "pods/http_requests_per_second")
            .unwrap();
        assert_eq!(
            pods,
            &json!({"name": "pods/http_requests_per_second", "singularName": "", "namespaced": true,
                    "kind": "MetricValueList", "verbs": ["get"]})
        );
    }
    let (_, v) = get(&c, &a, "/apis/external.metrics.k8s.io/v1beta1").await;
    assert_eq!(
        v["resources"],
        json!([{"name": "queue_depth", "singularName": "", "namespaced": true,
                "kind": "ExternalMetricValueList", "verbs": ["get"]}])
    );

    // One object, v1beta2 and v1beta1 shapes.
    let (code, v) = get(
        &c,
        &a,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-0/http_requests_per_second",
    )
    .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        normalize(v),
        json!({"kind": "MetricValueList", "apiVersion": "custom.metrics.k8s.io/v1beta2", "metadata": {},
               "items": [{"describedObject": {"kind": "Pod", "namespace": "shop", "name": "web-0", "apiVersion": "v1"},
                          "metric": {"name": "http_requests_per_second"}, "timestamp": "<ts>", "value": "2"}]})
    );
    // Rendered answers are kept per path *and* query string.
    let one =
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-0/http_requests_per_second";
    let (_, v) = get(&c, &a, &format!("{one}?metricLabelSelector=verb%3DPOST")).await;
    assert_eq!(v["items"][0]["value"], "500m", "{v}");
    let (_, v) = get(&c, &a, one).await;
    assert_eq!(v["items"][0]["value"], "2", "{v}");
    let (_, v) = get(&c, &a, "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-0/http_requests_per_second?metricLabelSelector=verb%3DGET").await;
    assert_eq!(
        normalize(v),
        json!({"kind": "MetricValueList", "apiVersion": "custom.metrics.k8s.io/v1beta1", "metadata": {},
               "items": [{"describedObject": {"kind": "Pod", "namespace": "shop", "name": "web-0", "apiVersion": "v1"},
                          "metricName": "http_requests_per_second", "timestamp": "<ts>", "value": "1500m",
                          "selector": {"matchLabels": {"verb": "GET"}}}]})
    );

    // Wildcard without labelSelector: from the Prometheus series alone.
    let (_, v) = get(
        &c,
        &a,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_per_second",
    )
    .await;
    let got: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["describedObject"]["name"].as_str().unwrap().to_owned(),
                i["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("web-0".to_owned(), "2".to_owned()),
            ("web-1".to_owned(), "2250m".to_owned())
        ]
    );

    // The namespace itself, a workload, a cluster-scoped node.
    let (_, v) = get(
        &c,
        &a,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/metrics/http_requests_per_second",
    )
    .await;
    assert_eq!(
        normalize(v)["items"],
        json!([{"describedObject": {"kind": "Namespace", "name": "shop", "apiVersion": "v1"},
                "metric": {"name": "http_requests_per_second"}, "timestamp": "<ts>", "value": "4250m"}])
    );
    let (_, v) = get(
        &c,
        &a,
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/deployments.apps/worker/queue_length",
    )
    .await;
    assert_eq!(
        normalize(v)["items"],
        json!([{"describedObject": {"kind": "Deployment", "namespace": "shop", "name": "worker", "apiVersion": "apps/v1"},
                "metric": {"name": "queue_length"}, "timestamp": "<ts>", "value": "12"}])
    );
    let (_, v) = get(
        &c,
        &a,
        "/apis/custom.metrics.k8s.io/v1beta1/nodes/n1/node_load",
    )
    .await;
    assert_eq!(
        normalize(v)["items"],
        json!([{"describedObject": {"kind": "Node", "name": "n1", "apiVersion": "v1"},
                "metricName": "node_load", "timestamp": "<ts>", "value": "750m", "selector": null}])
    );

    // External, with and without a selector.
    let (_, v) = get(
        &c,
        &a,
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth",
    )
    .await;
    let v = normalize(v);
    assert_eq!(v["kind"], "ExternalMetricValueList");
    assert_eq!(v["apiVersion"], "external.metrics.k8s.io/v1beta1");
    let mut items = v["items"].as_array().unwrap().clone();
    items.sort_by_key(|i| i["value"].as_str().unwrap().to_owned());
    assert_eq!(
        items,
        [
            json!({"metricName": "queue_depth", "metricLabels": {"queue": "orders"}, "timestamp": "<ts>", "value": "42"}),
            json!({"metricName": "queue_depth", "metricLabels": {"queue": "emails"}, "timestamp": "<ts>", "value": "7"}),
        ]
    );
    let (_, v) = get(&c, &a, "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/queue_depth?labelSelector=queue%3Dorders").await;
    assert_eq!(
        normalize(v)["items"],
        json!([{"metricName": "queue_depth", "metricLabels": {"queue": "orders"}, "timestamp": "<ts>", "value": "42"}])
    );

    // Errors are Status objects with the right code.
    for (path, code, reason, needle) in [
        (
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-0/nope",
            404,
            "NotFound",
            "could not find the metric nope for pods",
        ),
        (
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-9/http_requests_per_second",
            404,
            "NotFound",
            "for pods web-9",
        ),
        (
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/nope",
            404,
            "NotFound",
            "external metric nope",
        ),
        (
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-0/http_requests_per_second?metricLabelSelector=verb%3D%3D%3D",
            400,
            "BadRequest",
            "metricLabelSelector",
        ),
        (
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_per_second?labelSelector=app%20in%20(",
            400,
            "BadRequest",
            "labelSelector",
        ),
        (
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_per_second?labelSelector=app%3Dweb",
            400,
            "BadRequest",
            "needs Kubernetes API access",
        ),
        ("/apis/custom.metrics.k8s.io/v1beta3", 404, "NotFound", ""),
        ("/apis/metrics.k8s.io/v1beta1/nodes", 404, "NotFound", ""),
    ] {
        let (got, v) = get(&c, &a, path).await;
        assert_eq!(got, code, "{path}: {v}");
        assert_eq!(v["kind"], "Status", "{path}");
        assert_eq!(v["status"], "Failure");
        assert_eq!(v["reason"], reason, "{path}");
        assert_eq!(v["code"], code);
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{path}: {v}"
        );
    }

    // Health and OpenAPI.
    for p in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(get(&c, &a, p).await.0, 200, "{p}");
    }
    let (code, v) = get(&c, &a, "/openapi/v2").await;
    assert_eq!(code, 200);
    assert_eq!(v["swagger"], "2.0");
    let (_, v) = get(&c, &a, "/openapi/v3").await;
    let url = v["paths"]["apis/custom.metrics.k8s.io/v1beta2"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, v) = get(&c, &a, &url).await;
    assert_eq!(code, 200);
    assert_eq!(v["openapi"], "3.0.0");
}

#[tokio::test]
async fn discovery_and_health_answer_before_any_relist_with_prometheus_down() {
    let pki = Pki::generate("front-proxy-client", None).unwrap();
    // Nothing listens on port 9 (discard) on loopback.
    let a = start("http://127.0.0.1:9", &pki, default_cache(), &[], false).await;
    let c = https(pki.client_config_with_cert().unwrap());
    for p in [
        "/apis",
        "/apis/custom.metrics.k8s.io",
        "/apis/custom.metrics.k8s.io/v1beta1",
        "/apis/custom.metrics.k8s.io/v1beta2",
        "/apis/external.metrics.k8s.io/v1beta1",
        "/healthz",
        "/readyz",
        "/livez",
    ] {
        assert_eq!(get(&c, &a, p).await.0, 200, "{p}");
    }
    let (_, v) = get(&c, &a, "/apis/custom.metrics.k8s.io/v1beta2").await;
    assert_eq!(v["resources"], json!([]));
}

#[tokio::test]
async fn a_failing_series_query_does_not_stop_the_other_rules() {
    let prom = prometheus().await;
    let config = Arc::new(Config::from_yaml(CONFIG, "adapter.yaml").unwrap());
    let registry = Registry::new(config);
    let metrics = Metrics::default();
    relist_once(
        &registry,
        &client_for(prom.url()),
        Duration::from_secs(600),
        &metrics,
    )
    .await;
    let states = registry.rule_states();
    assert!(states[0].last_error.is_none() && states[0].last_success.is_some());
    assert!(states[3].last_success.is_none());
    let err = states[3].last_error.as_deref().unwrap();
    assert!(err.contains("HTTP 400"), "{err}");
    assert_eq!(registry.snapshot().custom.len(), 5);
    // 4 http_requests, 1 queue_length, 1 node_load, 3 queue_depth series.
    assert_eq!(registry.listed(), 9);
    // Kept as distinct name + label names only.
    assert_eq!(registry.counts().0, 4);
}

#[tokio::test]
async fn client_certificates_are_checked() {
    let prom = prometheus().await;
    let pki = Pki::generate("front-proxy-client", None).unwrap();
    let a = start(
        prom.url(),
        &pki,
        default_cache(),
        &["front-proxy-client"],
        true,
    )
    .await;
    let path = "/apis/custom.metrics.k8s.io/v1beta2";

    // Accepted.
    assert_eq!(
        get(&https(pki.client_config_with_cert().unwrap()), &a, path)
            .await
            .0,
        200
    );

    // Missing: 401 Status, health still open.
    let no_cert = https(pki.client_config().unwrap());
    let (code, v) = get(&no_cert, &a, path).await;
    assert_eq!(
        (code, v["reason"].as_str()),
        (401, Some("Unauthorized")),
        "{v}"
    );
    assert_eq!(get(&no_cert, &a, "/healthz").await.0, 200);
    assert_eq!(get(&no_cert, &a, "/openapi/v2").await.0, 401);

    // Signed by another CA: the handshake fails.
    let other = Pki::generate("front-proxy-client", None).unwrap();
    let wrong_ca = rustls::ClientConfig::builder_with_provider(tailor_testkit::ring_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.roots().unwrap())
        .with_client_auth_cert(vec![other.client().cert_der()], other.client().key_der())
        .unwrap();
    let r = https(wrong_ca)
        .get(format!("https://localhost:{}{path}", a.addr.port()))
        .send()
        .await;
    assert!(
        r.is_err(),
        "a certificate from another CA must be refused: {r:?}"
    );

    // Right CA, name not allowed: 401 naming the flag.
    let stranger = Pki::generate("someone-else", None).unwrap();
    let b = start(
        prom.url(),
        &stranger,
        default_cache(),
        &["front-proxy-client"],
        false,
    )
    .await;
    let (code, v) = get(
        &https(stranger.client_config_with_cert().unwrap()),
        &b,
        path,
    )
    .await;
    assert_eq!(code, 401);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("--requestheader-allowed-names"),
        "{v}"
    );
}

/// `prometheus_http_requests_total` for the query endpoint, read from
/// Prometheus' own /metrics.
async fn prometheus_query_count(prom: &Prometheus) -> u64 {
    let text = reqwest::get(format!("{}/metrics", prom.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains("handler=\"/api/v1/query\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

#[tokio::test]
async fn concurrent_identical_requests_cause_one_prometheus_query() {
    let prom = prometheus().await;
    let pki = Pki::generate("front-proxy-client", None).unwrap();
    let a = start(prom.url(), &pki, default_cache(), &[], true).await;
    let c = https(pki.client_config_with_cert().unwrap());
    // Open the connections first so the requests arrive together.
    let before = prometheus_query_count(&prom).await;
    let path =
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/*/http_requests_per_second";
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = c.clone();
        let url = format!("https://localhost:{}{path}", a.addr.port());
        tasks.push(tokio::spawn(async move {
            c.get(url).send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(prometheus_query_count(&prom).await - before, 1);
    let hits: u64 = ["hit", "coalesced", "miss"]
        .iter()
        .map(|r| {
            a.metrics
                .cache
                .get_or_create(&tailor_metrics_adapter::metrics::ResultLabels {
                    result: (*r).to_owned(),
                })
                .get()
        })
        .sum();
    assert_eq!(hits, 100);
}

#[tokio::test]
async fn prometheus_down_serves_last_values_until_the_staleness_limit_then_503() {
    let prom = prometheus().await;
    let pki = Pki::generate("front-proxy-client", None).unwrap();
    let cache = CacheOptions {
        ttl: Duration::ZERO,
        max_staleness: Duration::from_secs(2),
        max_entries: 100,
    };
    let a = start(prom.url(), &pki, cache, &[], true).await;
    let c = https(pki.client_config_with_cert().unwrap());
    let path =
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/shop/pods/web-1/http_requests_per_second";
    assert_eq!(get(&c, &a, path).await.1["items"][0]["value"], "2250m");
    drop(prom);
    // Within the limit: the last good value.
    let (code, v) = get(&c, &a, path).await;
    assert_eq!(
        (code, v["items"][0]["value"].as_str()),
        (200, Some("2250m"))
    );
    // Past it: a 503 Status naming Prometheus, quickly (the connection is refused).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (code, v) = get(&c, &a, path).await;
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["reason"], "ServiceUnavailable");
    assert!(v["message"].as_str().unwrap().contains("Prometheus"), "{v}");
    // Discovery is unaffected.
    assert_eq!(
        get(&c, &a, "/apis/custom.metrics.k8s.io/v1beta2").await.0,
        200
    );
}

#[tokio::test]
async fn preview_prints_the_values_and_the_hpa_decision() {
    let prom = prometheus().await;
    let dir = tempfile::tempdir().unwrap();
    let hpa = dir.path().join("hpa.yaml");
    std::fs::write(
        &hpa,
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Pods
    pods:
      metric: {name: http_requests_per_second}
      target: {type: AverageValue, averageValue: "1"}
  - type: External
    external:
      metric: {name: queue_depth, selector: {matchLabels: {queue: orders}}}
      target: {type: Value, value: "21"}
"#,
    )
    .unwrap();
    let config = Config::from_yaml(CONFIG, "adapter.yaml").unwrap();
    let args = tailor_metrics_adapter::preview::PreviewArgs {
        hpa,
        replicas: Some(2),
    };
    let out = tailor_metrics_adapter::preview::preview(
        &config,
        &client_for(prom.url()),
        &args,
        Duration::from_secs(600),
    )
    .await
    .unwrap();
    // Pods: (2 + 2.25) / 2 = 2.125 per pod against 1 → ceil(2 × 2.125) = 5.
    // External: 42 against 21 → ceil(2 × 2) = 4. The larger wins, and the
    // HPA without behavior caps a scale-up at max(2 × 2, 4) = 4.
    assert!(
        out.contains("HPA shop/web: 2 replicas now, min 1, max 10"),
        "{out}"
    );
    assert!(out.contains("pods metric http_requests_per_second: target average 1; now average 2125m over 2 pods -> 5 replicas"), "{out}");
    assert!(
        out.contains(
            "external metric queue_depth: target value 21; now value 42 (1 series) -> 4 replicas"
        ),
        "{out}"
    );
    assert!(
        out.contains("decision: 4 replicas (scale, limited by ScaleUpLimit)"),
        "{out}"
    );
}

#[tokio::test]
async fn upstreams_default_config_works_unchanged() {
    let end = now_ms() / 60_000 * 60_000;
    let mut d = OpenMetrics::new();
    for (container, per_minute) in [("app", 30.0), ("sidecar", 6.0)] {
        d.counter(
            "container_cpu_usage_seconds_total",
            &[
                ("namespace", "shop"),
                ("pod", "web-0"),
                ("container", container),
            ],
            (0..60).map(|i| {
                (
                    end - (59 - i) * 60_000,
                    f64::from(u32::try_from(i).unwrap()) * per_minute,
                )
            }),
        )
        .unwrap();
    }
    let prom = Prometheus::builder()
        .backfill(d)
        .lookback_delta(Duration::from_secs(3 * 3600))
        .start()
        .await
        .unwrap();
    let config = Arc::new(
        Config::from_yaml(
            include_str!("../src/testdata/default-config.yaml"),
            "default.yaml",
        )
        .unwrap(),
    );
    let registry = Registry::new(config);
    relist_once(
        &registry,
        &client_for(prom.url()),
        Duration::from_secs(600),
        &Metrics::default(),
    )
    .await;
    let v: Value = serde_json::from_slice(&registry.snapshot().custom_v1beta2).unwrap();
    assert_eq!(
        resource_names(&v),
        ["namespaces/cpu_usage", "pods/cpu_usage"]
    );
    // Served through the HTTPS API: the stock rate() query over both containers.
    let pki = Pki::generate("front-proxy-client", None).unwrap();
    let a = start_with(
        prom.url(),
        &pki,
        default_cache(),
        &[],
        Some(include_str!("../src/testdata/default-config.yaml")),
    )
    .await;
    let c = https(pki.client_config_with_cert().unwrap());
    let (code, v) = get(
        &c,
        &a,
        "/apis/custom.metrics.k8s.io/v1beta1/namespaces/shop/pods/web-0/cpu_usage",
    )
    .await;
    assert_eq!(code, 200, "{v}");
    // 30/min + 6/min = 0.6 CPU seconds per second. Prometheus extrapolates
    // rate() to the window's edges from millisecond timestamps, so the sum
    // may come back a hair under 0.6, and values are truncated to millis as
    // upstream truncates them: 599m then, never anything further off.
    let value = v["items"][0]["value"].as_str().unwrap_or_default();
    assert!(value == "600m" || value == "599m", "{v}");
}

/// Known container and node series under upstream's stock `resourceRules`
/// (`irate(...[4m])` of the CPU counters, the working-set gauges).
fn resource_data() -> OpenMetrics {
    let end = now_ms() / 60_000 * 60_000;
    let minutes = |per_minute: f64| {
        (0..30).map(move |i| {
            (
                end - (29 - i) * 60_000,
                f64::from(u32::try_from(i).unwrap()) * per_minute,
            )
        })
    };
    let constant = |v: f64| (0..30).map(move |i| (end - (29 - i) * 60_000, v));
    let mut d = OpenMetrics::new();
    // Per minute: 15 CPU-seconds = 0.25 cores, 7.5 = 0.125, 90 = 1.5.
    for (ns, pod, container, cpu_per_minute, memory) in [
        ("shop", "web-0", "app", 15.0, 104_857_600.0),
        ("shop", "web-0", "sidecar", 7.5, 3_670_016.0),
        ("shop", "web-1", "app", 30.0, 1_000_000.0),
        ("other", "web-0", "app", 60.0, 2048.0),
    ] {
        let labels = [("namespace", ns), ("pod", pod), ("container", container)];
        d.counter(
            "container_cpu_usage_seconds_total",
            &labels,
            minutes(cpu_per_minute),
        )
        .unwrap();
        d.gauge(
            "container_memory_working_set_bytes",
            &labels,
            constant(memory),
        )
        .unwrap();
    }
    d.counter(
        "node_cpu_usage_seconds_total",
        &[("node", "n1")],
        minutes(90.0),
    )
    .unwrap();
    d.gauge(
        "node_memory_working_set_bytes",
        &[("node", "n1")],
        constant(2_814_136_320.0),
    )
    .unwrap();
    // CPU only: metrics-server (and prometheus-adapter) leave such a node out.
    d.counter(
        "node_cpu_usage_seconds_total",
        &[("node", "n2")],
        minutes(30.0),
    )
    .unwrap();
    d
}

/// Replaces `creationTimestamp` (the answer's time) and `timestamp` (the
/// sample's) with placeholders after checking they are RFC 3339 UTC.
fn normalize_resource(mut v: Value) -> Value {
    fn fix(obj: &mut Value) {
        let ts = obj["timestamp"].as_str().unwrap().to_owned();
        assert!(ts.len() == 20 && ts.ends_with('Z'), "{ts}");
        obj["timestamp"] = json!("<ts>");
        let created = obj["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(created.len() == 20 && created.ends_with('Z'), "{created}");
        obj["metadata"]["creationTimestamp"] = json!("<now>");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        items.iter_mut().for_each(fix);
    } else {
        fix(&mut v);
    }
    v
}

#[tokio::test]
async fn resource_metrics_serve_the_data_like_metrics_server() {
    let prom = Prometheus::builder()
        .backfill(resource_data())
        .lookback_delta(Duration::from_secs(3 * 3600))
        .start()
        .await
        .unwrap();
    let pki = Pki::generate("front-proxy-client", None).unwrap();
    let config = include_str!("../src/testdata/default-config.yaml")
        .replace("\"window\": \"5m\"", "\"window\": \"4m\"");
    let a = start_with(prom.url(), &pki, default_cache(), &[], Some(&config)).await;
    let c = https(pki.client_config_with_cert().unwrap());

    // Discovery: the group is listed because the config has resourceRules.
    let (_, v) = get(&c, &a, "/apis").await;
    assert_eq!(
        v["groups"][2],
        json!({"name": "metrics.k8s.io", "versions": [{"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}],
               "preferredVersion": {"groupVersion": "metrics.k8s.io/v1beta1", "version": "v1beta1"}})
    );
    let (code, v) = get(&c, &a, "/apis/metrics.k8s.io").await;
    assert_eq!((code, v["kind"].as_str()), (200, Some("APIGroup")));
    let (_, v) = get(&c, &a, "/apis/metrics.k8s.io/v1beta1").await;
    assert_eq!(
        v["resources"],
        json!([{"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": ["get", "list"]},
               {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": ["get", "list"]}])
    );

    // Nodes: n2 has no memory series and is left out.
    let (code, v) = get(&c, &a, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(code, 200, "{v}");
    let n1 = json!({"kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {"name": "n1", "creationTimestamp": "<now>"},
                    "timestamp": "<ts>", "window": "4m0s",
                    "usage": {"cpu": "1500m", "memory": "2748180Ki"}});
    assert_eq!(
        normalize_resource(v),
        json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {}, "items": [n1.clone()]})
    );
    let (code, v) = get(&c, &a, "/apis/metrics.k8s.io/v1beta1/nodes/n1").await;
    // Asked again while fresh: the same rendered answer (even its
    // creationTimestamp), counted as a request and a cache hit.
    let hits = || {
        a.metrics
            .cache
            .get_or_create(&tailor_metrics_adapter::metrics::ResultLabels {
                result: "hit".to_owned(),
            })
            .get()
    };
    let before = hits();
    assert_eq!(
        get(&c, &a, "/apis/metrics.k8s.io/v1beta1/nodes/n1").await,
        (code, v.clone())
    );
    assert_eq!(hits(), before + 1);
    assert_eq!(a.metrics.request_counter("resource", "nodes", 200).get(), 3);
    assert_eq!((code, normalize_resource(v)), (200, n1));

    // Pods in one namespace, one pod, all namespaces.
    let web0 = json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                      "metadata": {"name": "web-0", "namespace": "shop", "creationTimestamp": "<now>"},
                      "timestamp": "<ts>", "window": "4m0s",
                      "containers": [{"name": "app", "usage": {"cpu": "250m", "memory": "100Mi"}},
                                     {"name": "sidecar", "usage": {"cpu": "125m", "memory": "3584Ki"}}]});
    let web1 = json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                      "metadata": {"name": "web-1", "namespace": "shop", "creationTimestamp": "<now>"},
                      "timestamp": "<ts>", "window": "4m0s",
                      "containers": [{"name": "app", "usage": {"cpu": "500m", "memory": "1000000"}}]});
    let other = json!({"kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                      "metadata": {"name": "web-0", "namespace": "other", "creationTimestamp": "<now>"},
                      "timestamp": "<ts>", "window": "4m0s",
                      "containers": [{"name": "app", "usage": {"cpu": "1", "memory": "2Ki"}}]});
    let (code, v) = get(&c, &a, "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods").await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        normalize_resource(v),
        json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
               "items": [web0.clone(), web1.clone()]})
    );
    let (code, v) = get(
        &c,
        &a,
        "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-0",
    )
    .await;
    assert_eq!((code, normalize_resource(v)), (200, web0.clone()));
    let (_, v) = get(&c, &a, "/apis/metrics.k8s.io/v1beta1/pods").await;
    assert_eq!(normalize_resource(v)["items"], json!([other, web0, web1]));

    // Unknown objects are metrics-server's 404s; selectors need the API.
    for (path, code, needle) in [
        (
            "/apis/metrics.k8s.io/v1beta1/nodes/n2",
            404,
            "nodemetrics.metrics.k8s.io \"n2\" not found",
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/nodes/nope",
            404,
            "nodemetrics.metrics.k8s.io \"nope\" not found",
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods/web-9",
            404,
            "podmetrics.metrics.k8s.io \"shop/web-9\" not found",
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods?labelSelector=app%3Dweb",
            400,
            "needs Kubernetes API access",
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%20in%20(",
            400,
            "labelSelector",
        ),
        (
            "/apis/metrics.k8s.io/v1beta1/services",
            404,
            "could not find",
        ),
    ] {
        let (got, v) = get(&c, &a, path).await;
        assert_eq!(
            (got, v["kind"].as_str()),
            (code, Some("Status")),
            "{path}: {v}"
        );
        assert!(
            v["message"].as_str().unwrap().contains(needle),
            "{path}: {v}"
        );
    }

    // Prometheus gone: cached answers still served (the cache TTL is a minute).
    drop(prom);
    let (code, _) = get(&c, &a, "/apis/metrics.k8s.io/v1beta1/nodes/n1").await;
    assert_eq!(code, 200);
}

mod fuzz {
    use super::*;
    use axum::body::Body;
    use proptest::prelude::*;
    use tower::ServiceExt as _;

    static PEER: std::sync::LazyLock<tailor_runtime::tls::PeerCertificate> =
        std::sync::LazyLock::new(|| {
            tailor_runtime::tls::PeerCertificate::from_der(
                Pki::generate("front-proxy-client", None)
                    .unwrap()
                    .client()
                    .cert_der(),
            )
            .unwrap()
        });

    fn state() -> AppState {
        let config = Arc::new(Config::from_yaml(CONFIG, "adapter.yaml").unwrap());
        let registry = Arc::new(Registry::new(config));
        registry.update(
            registry.rule_ids()[0],
            &[tailor_metrics_adapter::naming::Series::new(
                "http_requests",
                ["namespace", "pod"],
            )],
            1,
        );
        let metrics = Metrics::default();
        AppState {
            registry,
            // Nothing listens there: requests that reach Prometheus get 503.
            client: client_for("http://127.0.0.1:9"),
            cache: ValueCache::new(default_cache(), metrics.clone()),
            metrics,
            auth: Arc::new(Auth::new(Vec::new())),
            objects: None,
            query_options: QueryOptions::default(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Arbitrary paths and query strings: always a JSON Status or body,
        /// never a panic or a 500.
        #[test]
        fn arbitrary_requests_get_a_status_never_a_crash(
            segs in proptest::collection::vec(prop_oneof![
                Just("namespaces".to_owned()), Just("pods".to_owned()), Just("*".to_owned()),
                Just("custom.metrics.k8s.io".to_owned()), Just("external.metrics.k8s.io".to_owned()),
                Just("v1beta1".to_owned()), Just("v1beta2".to_owned()), Just("metrics".to_owned()),
                Just("http_requests_per_second".to_owned()), "[a-z0-9.%*-]{0,8}", "\\PC{0,6}",
            ], 0..8),
            query in "[a-zA-Z=&%!(),+ *-]{0,30}",
        ) {
            let peer = PEER.clone();
            let path: String = segs.iter().map(|s| format!("/{}", s.replace(['?', '#', ' '], "%20"))).collect();
            let uri = format!("/apis{path}?{query}").replace(' ', "+");
            let Ok(req) = http::Request::get(&uri).extension(peer).body(Body::empty()) else {
                return Ok(());
            };
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let response = rt.block_on(router(state()).oneshot(req)).unwrap();
            let code = response.status().as_u16();
            prop_assert!([200, 400, 404, 503].contains(&code), "{uri}: {code}");
            let body = rt.block_on(http_body_util::BodyExt::collect(response.into_body())).unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&body).unwrap();
            if code != 200 {
                prop_assert_eq!(&v["kind"], "Status");
                prop_assert_eq!(v["code"].as_u64(), Some(u64::from(code)));
            }
        }
    }
}
