#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The controller's API calls against the scripted Kubernetes API
//! (`tailor_testkit::kube_mock`): exact server-side-apply bodies and query
//! strings, no write when nothing changed, a failed write not stopping the
//! others, the HPA-conflict Event, checkpoints written and reloaded across a
//! restart with nothing lost, checkpoint GC; and the initial history load
//! against a real Prometheus.

use http::Method;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use tailor_api::VerticalPodAutoscaler;
use tailor_api::selector::Selector;
use tailor_api::target::{TargetObject, target_selector};
use tailor_core::catalog::Rates;
use tailor_core::recommender::{RecommenderOptions, Timestamp};
use tailor_recommender::controller::history::{self, HistoryLoad, HistoryWindow};
use tailor_recommender::controller::r#loop::{
    self, CostConfig, LookupError, PodInfo, Recommender, Snapshot, StepOutput, TargetLookup,
    VpaInfo,
};
use tailor_recommender::controller::state::{AggregateKey, ClusterState, VpaKey};
use tailor_recommender::controller::writer;
use tailor_recommender::prom::{ContainerKey, History, PromClient, SeriesConfig};
use tailor_testkit::kube_mock::{Exchange, KubeMock};
use tailor_testkit::{OpenMetrics, Prometheus};

const T0: Timestamp = 1_700_000_000;
const NOW: Timestamp = T0 + 86_400;
const APPLY: &str = "application/apply-patch+yaml";

/// Deployments selecting `app=<name>`.
struct Targets(Vec<Deployment>);

impl TargetLookup for Targets {
    fn selector(
        &self,
        _ns: &str,
        target: &CrossVersionObjectReference,
    ) -> Result<Selector, LookupError> {
        let found = self
            .0
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(&target.name));
        let object = match target.kind.as_str() {
            "Deployment" => found.map(TargetObject::Deployment),
            _ => None,
        };
        Ok(target_selector(target, object)?)
    }
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": name}}, "template": {}}
    }))
    .unwrap()
}

fn vpa(name: &str, status: Option<Value>) -> Arc<VpaInfo> {
    Arc::new(VpaInfo::new(full_vpa(name, status)))
}

fn full_vpa(name: &str, status: Option<Value>) -> VerticalPodAutoscaler {
    let mut v = json!({
        "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}}
    });
    if let Some(s) = status {
        v["status"] = s;
    }
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, app: &str) -> Arc<PodInfo> {
    let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}},
            "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
    Arc::new(PodInfo::from_pod(&pod))
}

fn hpa_on_cpu(target: &str) -> Arc<HorizontalPodAutoscaler> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": target, "namespace": "shop"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
                     "maxReplicas": 4,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}
        }))
        .unwrap(),
    )
}

fn recommender() -> Recommender {
    Recommender::new(
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
    )
}

/// A day of samples per minute: 0.5 cores; 400 MiB.
fn usage(pods: &[&str]) -> History {
    let mut h = History::default();
    for p in pods {
        let key = ContainerKey {
            namespace: "shop".into(),
            pod: (*p).into(),
            container: "app".into(),
        };
        h.cpu
            .insert(key.clone(), (0..1440).map(|i| (T0 + i * 60, 0.5)).collect());
        h.memory.insert(
            key,
            (0..1440)
                .map(|i| (T0 + i * 60, 400.0 * 1024.0 * 1024.0))
                .collect(),
        );
    }
    h
}

fn step(
    r: &mut Recommender,
    vpas: &[Arc<VpaInfo>],
    pods: &[Arc<PodInfo>],
    hpas: &[Arc<HorizontalPodAutoscaler>],
    history: &History,
) -> StepOutput {
    let targets = Targets(vec![deployment("web"), deployment("api")]);
    r.step(
        Snapshot {
            vpas,
            pods,
            hpas,
            targets: &targets,
            ooms: &[],
        },
        history,
        NOW,
    )
    .unwrap()
}

fn by_key(vpas: &[Arc<VpaInfo>]) -> std::collections::BTreeMap<VpaKey, Arc<VpaInfo>> {
    recommender().ours(vpas)
}

/// The status body for one VPA with the recommendation of [`usage`]:
/// CPU p90 of a constant 0.5 cores is the end of its histogram bucket
/// (0.5103 cores) + 15% = 587m; memory the 400 MiB peak's bucket end + 15%.
/// One day less a minute of history (c = 1439/1440 days): upper bound
/// × (1 + 1/c), lower bound × (1 + 0.001/c)^−2 — and, being under a day,
/// `LowConfidence`.
fn expected_status(extra_conditions: &[Value]) -> Value {
    let mut conditions = vec![
        json!({
            "type": "RecommendationProvided", "status": "True", "lastTransitionTime": "2023-11-15T22:13:20Z"
        }),
        json!({
            "type": "LowConfidence", "status": "True", "lastTransitionTime": "2023-11-15T22:13:20Z",
            "reason": "InsufficientHistory",
            "message": "Less than 1 day of usage history for container(s) app: their lower and upper bounds are widened until more is collected"
        }),
    ];
    conditions.extend(extra_conditions.iter().cloned());
    conditions.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
    json!({
        "apiVersion": "autoscaling.k8s.io/v1",
        "kind": "VerticalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "shop"},
        "status": {
            "recommendation": {"containerRecommendations": [{
                "containerName": "app",
                "target": {"cpu": "587m", "memory": "511772986"},
                "lowerBound": {"cpu": "585m", "memory": "510750264"},
                "upperBound": {"cpu": "1174m", "memory": "1023901616"},
                "uncappedTarget": {"cpu": "587m", "memory": "511772986"}
            }]},
            "conditions": conditions
        }
    })
}

/// What the API server answers to the status apply.
fn applied(extra_conditions: &[Value]) -> Value {
    let mut v = expected_status(extra_conditions);
    v["metadata"]["uid"] = json!("uid-web");
    v["spec"] =
        json!({"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}});
    v
}

const STATUS_PATH: &str = "/apis/autoscaling.k8s.io/v1/namespaces/shop/verticalpodautoscalers/web/status?fieldManager=tailor-recommender&force=true";

/// Writes `out` against the scripted API expecting exactly one status
/// apply for `web`, with [`expected_status`]`(extra)` as its body.
async fn write_web_status(
    out: &StepOutput,
    vpas: &[Arc<VpaInfo>],
    extra: &[Value],
) -> r#loop::WriteReport {
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::new(Method::PATCH, STATUS_PATH)
            .content_type(APPLY)
            .body(expected_status(extra))
            .respond(200, applied(extra)),
    ]);
    let report = r#loop::write(&client, out, None, &by_key(vpas)).await;
    api.verify().await;
    report
}

#[tokio::test]
async fn status_is_applied_with_the_exact_body_then_not_rewritten() {
    let mut r = recommender();
    let vpas = [vpa("web", None)];
    let pods = [pod("web-0", "web")];
    let out = step(&mut r, &vpas, &pods, &[], &usage(&["web-0"]));
    let report = write_web_status(&out, &vpas, &[]).await;
    assert_eq!((report.statuses_written, report.status_failures), (1, 0));

    // The VPA now carries what was applied: the next loop writes nothing.
    let applied = expected_status(&[])["status"].clone();
    let vpas = [vpa("web", Some(applied))];
    let out = step(&mut r, &vpas, &pods, &[], &History::default());
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![]);
    let report = r#loop::write(&client, &out, None, &by_key(&vpas)).await;
    api.verify().await;
    assert_eq!(report.statuses_written, 0);
}

#[tokio::test]
async fn fetching_history_is_applied_then_removed_once_the_history_is_in() {
    let mut r = recommender();
    r.fetching_history =
        Some("Loading --history-length of usage from Prometheus failed: connection refused".into());
    let vpas = [vpa("web", None)];
    let pods = [pod("web-0", "web")];
    let out = step(&mut r, &vpas, &pods, &[], &usage(&["web-0"]));
    let fetching = json!({
        "type": "FetchingHistory", "status": "True", "lastTransitionTime": "2023-11-15T22:13:20Z",
        "reason": "PrometheusHistoryNotLoaded",
        "message": "Loading --history-length of usage from Prometheus failed: connection refused"
    });
    let report = write_web_status(&out, &vpas, std::slice::from_ref(&fetching)).await;
    assert_eq!(report.statuses_written, 1);

    // The load completes: the condition goes, the others keep their times.
    r.fetching_history = None;
    let vpas = [vpa(
        "web",
        Some(expected_status(std::slice::from_ref(&fetching))["status"].clone()),
    )];
    let out = step(&mut r, &vpas, &pods, &[], &History::default());
    let report = write_web_status(&out, &vpas, &[]).await;
    assert_eq!(report.statuses_written, 1);
}

#[tokio::test]
async fn a_failed_write_does_not_stop_the_others_and_bad_vpas_get_a_condition() {
    let mut r = recommender();
    let widget = {
        let mut v = full_vpa("api", None);
        v.spec.target_ref.kind = "Widget".into();
        v.spec.target_ref.api_version = Some("example.com/v1".into());
        Arc::new(VpaInfo::new(v))
    };
    let vpas = [widget, vpa("web", None)];
    let pods = [pod("web-0", "web"), pod("api-0", "api")];
    let out = step(&mut r, &vpas, &pods, &[], &usage(&["web-0", "api-0"]));
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::new(
            Method::PATCH,
            "/apis/autoscaling.k8s.io/v1/namespaces/shop/verticalpodautoscalers/api/status?fieldManager=tailor-recommender&force=true",
        )
        .content_type(APPLY)
        .body(json!({
            "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
            "metadata": {"name": "api", "namespace": "shop"},
            "status": {"conditions": [
                {"type": "ConfigUnsupported", "status": "True", "lastTransitionTime": "2023-11-15T22:13:20Z",
                 "message": "Cannot read targetRef: targetRef Widget \"api\" (apiVersion \"example.com/v1\"): kind \"Widget\" is not a well-known controller and has no /scale subresource"},
                {"type": "RecommendationProvided", "status": "False", "lastTransitionTime": "2023-11-15T22:13:20Z"}
            ]}
        }))
        .respond_status(429, "TooManyRequests", "slow down"),
        Exchange::new(Method::PATCH, STATUS_PATH)
            .content_type(APPLY)
            .body(expected_status(&[]))
            .respond(200, applied(&[])),
    ]);
    let report = r#loop::write(&client, &out, None, &by_key(&vpas)).await;
    api.verify().await;
    assert_eq!((report.statuses_written, report.status_failures), (1, 1));
}

#[tokio::test]
async fn hpa_conflict_sets_a_warning_condition_and_publishes_one_event() {
    let mut r = recommender();
    let vpas = [vpa("web", None)];
    let pods = [pod("web-0", "web")];
    let out = step(
        &mut r,
        &vpas,
        &pods,
        &[hpa_on_cpu("web")],
        &usage(&["web-0"]),
    );
    let conflict = json!({
        "type": "HorizontalAutoscalerConflict", "status": "True", "lastTransitionTime": "2023-11-15T22:13:20Z",
        "reason": "HpaScalesOnCpuOrMemory",
        "message": "HorizontalPodAutoscaler shop/web also scales Deployment \"web\" on cpu: the two fight (VPA changes the requests the HPA's utilization is measured against)"
    });
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::new(Method::PATCH, STATUS_PATH)
            .content_type(APPLY)
            .body(expected_status(std::slice::from_ref(&conflict)))
            .respond(200, applied(std::slice::from_ref(&conflict))),
        Exchange::post("/apis/events.k8s.io/v1/namespaces/shop/events")
            .any_body()
            .respond(
                201,
                json!({"metadata": {"name": "web.1", "namespace": "shop"}}),
            ),
    ]);
    let recorder = kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "tailor-recommender".into(),
            instance: None,
        },
    );
    let report = r#loop::write(&client, &out, Some(&recorder), &by_key(&vpas)).await;
    let received = api.verify().await;
    assert_eq!((report.statuses_written, report.events), (1, 1));
    let event = received[1].body.as_ref().unwrap();
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "HpaScalesOnCpuOrMemory");
    assert_eq!(event["regarding"]["kind"], "VerticalPodAutoscaler");
    assert_eq!(event["regarding"]["name"], "web");
    assert_eq!(event["note"], conflict["message"]);
}

#[tokio::test]
async fn checkpoints_are_written_and_reloaded_across_a_restart_with_no_history_lost() {
    // Before the restart: a day of usage, then the checkpoint write.
    let mut before = recommender();
    let vpas = [vpa("web", None)];
    let pods = [pod("web-0", "web")];
    let history = usage(&["web-0"]);
    let out_before = step(&mut before, &vpas, &pods, &[], &history);
    let key = AggregateKey {
        vpa: VpaKey::new("shop", "web"),
        container: "app".into(),
    };
    let checkpoint = before.state.checkpoint(&key, NOW).unwrap();
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::new(
            Method::PATCH,
            "/apis/autoscaling.k8s.io/v1/namespaces/shop/verticalpodautoscalercheckpoints/web-app?fieldManager=tailor-recommender&force=true",
        )
        .content_type(APPLY)
        .body(json!({
            "apiVersion": "autoscaling.k8s.io/v1",
            "kind": "VerticalPodAutoscalerCheckpoint",
            "metadata": {"name": "web-app", "namespace": "shop"},
            "spec": {"vpaObjectName": "web", "containerName": "app"},
            "status": {
                "lastUpdateTime": "2023-11-15T22:13:20Z",
                "version": "v3",
                // 0.5 cores is in CPU bucket 25 ([0.477, 0.511) cores); the
                // reference is the first sample rounded to the half-life (a
                // day), and the day's 1440 weights decay relative to it.
                "cpuHistogram": {"referenceTimestamp": "2023-11-15T00:00:00Z", "bucketWeights": {"25": 10000}, "totalWeight": 1973.0313428801433},
                // One memory peak (400 MiB, bucket 23) at 22:13, 1h47m before
                // its reference: weight 2^(-107/1440).
                "memoryHistogram": {"referenceTimestamp": "2023-11-16T00:00:00Z", "bucketWeights": {"23": 10000}, "totalWeight": 0.9499516070835988},
                "firstSampleStart": "2023-11-14T22:13:20Z",
                "lastSampleStart": "2023-11-15T22:12:20Z",
                "totalSamplesCount": 1440
            }
        }))
        .respond(200, writer::checkpoint_object(&key, &checkpoint)),
    ]);
    writer::apply_checkpoint(&client, &key, &checkpoint)
        .await
        .unwrap();
    let received = api.verify().await;
    let written = received[0].body.clone().unwrap();

    // After the restart: the checkpoint is listed and loaded, then Prometheus
    // returns the same day again plus one new minute.
    let (client, mock) = KubeMock::pair();
    let api = mock.run(vec![
        Exchange::get("/apis/autoscaling.k8s.io/v1/verticalpodautoscalercheckpoints")
            .respond(200, json!({"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscalerCheckpointList",
                                 "metadata": {}, "items": [written]})),
    ]);
    let stored = writer::list_checkpoints(&client).await.unwrap();
    api.verify().await;
    assert_eq!(stored.len(), 1);
    let mut after = recommender();
    after
        .state
        .load_checkpoint(
            stored[0].key.as_ref().unwrap(),
            stored[0].state.as_ref().unwrap(),
            NOW,
        )
        .unwrap();
    let out_after = step(&mut after, &vpas, &pods, &[], &history);
    assert_eq!(
        out_after.samples.cpu, 0,
        "the replayed day is not counted twice"
    );
    assert_eq!(out_after.samples.dropped, 1440 + 1440);
    assert_eq!(
        out_after.results[0].recommendation, out_before.results[0].recommendation,
        "same recommendation after the restart"
    );
    assert_eq!(
        after.state.aggregates_of(&key.vpa)["app"].total_samples_count,
        before.state.aggregates_of(&key.vpa)["app"].total_samples_count
    );
}

#[tokio::test]
async fn checkpoint_gc_deletes_orphans_and_tolerates_already_gone() {
    let cp = |name: &str, vpa: &str, c: &str| {
        json!({"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscalerCheckpoint",
               "metadata": {"name": name, "namespace": "shop"},
               "spec": {"vpaObjectName": vpa, "containerName": c}, "status": {"version": "v3"}})
    };
    let (client, mock) = KubeMock::pair();
    let base = "/apis/autoscaling.k8s.io/v1/namespaces/shop/verticalpodautoscalercheckpoints";
    let api = mock.run(vec![
        Exchange::get("/apis/autoscaling.k8s.io/v1/verticalpodautoscalercheckpoints").respond(
            200,
            json!({"apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscalerCheckpointList", "metadata": {},
                   "items": [cp("web-app", "web", "app"), cp("web-sidecar", "web", "sidecar"), cp("gone-app", "gone", "app")]}),
        ),
        Exchange::delete(&format!("{base}/web-sidecar")).respond(200, json!({"kind": "Status", "apiVersion": "v1", "status": "Success"})),
        Exchange::delete(&format!("{base}/gone-app")).respond_status(404, "NotFound", "not found"),
    ]);
    let stored = writer::list_checkpoints(&client).await.unwrap();
    let existing: BTreeSet<VpaKey> = [VpaKey::new("shop", "web")].into();
    let aggregates: BTreeSet<AggregateKey> = [AggregateKey {
        vpa: VpaKey::new("shop", "web"),
        container: "app".into(),
    }]
    .into();
    for (ns, name) in writer::checkpoints_to_delete(&stored, &existing, &existing, &aggregates) {
        writer::delete_checkpoint(&client, &ns, &name)
            .await
            .unwrap();
    }
    api.verify().await;
}

// ---- Initial history load against a real Prometheus ----

const HOUR: i64 = 3600;
const SCRAPE: i64 = 300;

fn ms(t: i64) -> i64 {
    t * 1000
}

#[tokio::test(flavor = "multi_thread")]
async fn initial_history_includes_pods_that_no_longer_run() {
    // Hour-aligned window ending two hours ago; "web-old" ran the first four
    // days, "web-new" the last four; "stray" has no VPA. CPU is a constant
    // 0.25 cores for web, 2 cores for stray.
    let end = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / HOUR
        - 2)
        * HOUR;
    let start = end - 8 * 86_400;
    let mid = start + 4 * 86_400;
    let mut data = OpenMetrics::new();
    for (pod, rs, from, to, cores) in [
        ("web-old-a", "web-old", start - HOUR, mid, 0.25),
        ("web-new-b", "web-new", mid, end, 0.25),
        ("stray", "stray-rs", start - HOUR, end, 2.0),
    ] {
        let labels = [
            ("job", "kubernetes-cadvisor"),
            ("namespace", "shop"),
            ("pod", pod),
            ("container", "app"),
        ];
        let times: Vec<i64> = (from / SCRAPE..=to / SCRAPE).map(|k| k * SCRAPE).collect();
        data.counter(
            "container_cpu_usage_seconds_total",
            &labels,
            times.iter().map(|&t| (ms(t), (t - from) as f64 * cores)),
        )
        .unwrap();
        data.gauge(
            "container_memory_working_set_bytes",
            &labels,
            times.iter().map(|&t| (ms(t), 3e8)),
        )
        .unwrap();
        data.gauge(
            "kube_pod_owner",
            &[
                ("namespace", "shop"),
                ("pod", pod),
                ("owner_kind", "ReplicaSet"),
                ("owner_name", rs),
                ("owner_is_controller", "true"),
            ],
            times.iter().map(|&t| (ms(t), 1.0)),
        )
        .unwrap();
        data.gauge(
            "kube_replicaset_owner",
            &[
                ("namespace", "shop"),
                ("replicaset", rs),
                ("owner_kind", "Deployment"),
                ("owner_name", if pod == "stray" { "stray" } else { "web" }),
                ("owner_is_controller", "true"),
            ],
            times.iter().map(|&t| (ms(t), 1.0)),
        )
        .unwrap();
    }
    let prometheus = Prometheus::builder().backfill(data).start().await.unwrap();
    let prom = PromClient::new(prometheus.url(), std::time::Duration::from_secs(60)).unwrap();
    let window = HistoryWindow {
        length_secs: 8 * 86_400,
        resolution_secs: HOUR,
    };
    let mut r = recommender();
    let vpas = [vpa("web", None)];
    let ours = r.ours(&vpas);
    // Day slices, as the controller loads. Prometheus down first: an error,
    // nothing loaded or skipped; the retry loads the whole window.
    let mut load = HistoryLoad::new(window, end);
    let down = PromClient::new("http://127.0.0.1:1", std::time::Duration::from_secs(5)).unwrap();
    let series = SeriesConfig::default();
    assert!(
        load.resume(&down, &series, 86_400, &ours, &mut r.state)
            .await
            .is_err()
    );
    assert_eq!(
        (load.next, load.loaded),
        (end - window.length_secs, Default::default())
    );
    load.resume(&prom, &series, 86_400, &ours, &mut r.state)
        .await
        .unwrap();
    assert!(load.done());
    let stats = load.loaded;
    // The one-shot load of the same window, for the counts.
    let (history, _) = history::load(&prom, &SeriesConfig::default(), window, end)
        .await
        .unwrap();
    let count = |pod: &str| -> u64 {
        history
            .cpu
            .iter()
            .chain(history.memory.iter())
            .filter(|(k, _)| k.pod == pod)
            .map(|(_, v)| v.len() as u64)
            .sum()
    };
    assert!(count("stray") > 0 && count("web-old-a") > 0 && count("web-new-b") > 0);
    assert_eq!(
        stats.untracked,
        count("stray"),
        "only the stray pod has no VPA"
    );
    assert_eq!(
        stats.cpu + stats.memory + stats.dropped + stats.invalid,
        count("web-old-a") + count("web-new-b")
    );
    let cpu_web = history
        .cpu
        .iter()
        .filter(|(k, _)| k.pod != "stray")
        .map(|(_, v)| v.len() as u64)
        .sum::<u64>();
    let agg = &r.state.aggregates_of(&VpaKey::new("shop", "web"))["app"];
    assert_eq!(
        agg.total_samples_count, cpu_web,
        "every CPU sample of both pods, none twice"
    );
    assert!(
        agg.total_samples_count >= 8 * 24 - 4,
        "{}",
        agg.total_samples_count
    );

    // Only web-new runs now; the first step tracks it and recommends.
    let pods = [pod("web-new-b", "web")];
    let targets = Targets(vec![deployment("web")]);
    let out = r
        .step(
            Snapshot {
                vpas: &vpas,
                pods: &pods,
                hpas: &[],
                targets: &targets,
                ooms: &[],
            },
            &History::default(),
            end,
        )
        .unwrap();
    // Constant 0.25 cores → target is 0.25's bucket end + 15%.
    let target = out.results[0]
        .recommendation
        .as_ref()
        .unwrap()
        .container_recommendations[0]
        .target;
    let cpu = target.cpu_millis.unwrap();
    assert!((288..=310).contains(&cpu), "{cpu}");
}
