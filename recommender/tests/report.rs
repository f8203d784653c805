#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The one-shot report against a real Prometheus backfilled with eight days of
//! cAdvisor and kube-state-metrics series with known values. The report's
//! numbers must equal an independent computation: the same samples fed
//! straight into the core engine, grouped by the workloads the fixture
//! declares (not by the report's owner resolution).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tailor_core::catalog::Rates;
use tailor_core::policy::ResourcePolicy;
use tailor_core::quantity::{format_cpu_millis, format_memory_bytes};
use tailor_core::recommender::{
    AggregateContainerState, ContainerState, CostAwareQuantile, PodResourceRecommender,
    RecommenderOptions, format_rfc3339,
};
use tailor_core::resources::Resources;
use tailor_testkit::{OpenMetrics, Prometheus};

const HOUR: i64 = 3600;
const SCRAPE: i64 = 300;
const HISTORY: i64 = 8 * 86_400;
const JOB: &str = "kubernetes-cadvisor";
const RATES: Rates = Rates {
    usd_per_vcpu_hour: 0.04,
    usd_per_gib_hour: 0.005,
};
const MI: i64 = 1024 * 1024;

struct Container {
    name: &'static str,
    cpu_request_millis: i64,
    memory_request_bytes: i64,
}

struct Pod {
    namespace: &'static str,
    name: &'static str,
    /// Direct owner as kube-state-metrics reports it.
    owner: (&'static str, &'static str),
    /// The workload the report must attribute the pod to (fixture truth).
    workload: (&'static str, &'static str),
    containers: Vec<Container>,
    /// Active from `from` to `to` (Unix seconds, hour-aligned), inclusive.
    from: i64,
    to: i64,
    seed: i64,
    app_label: &'static str,
}

/// CPU usage of the hour ending at `t`, cores: whole millicores plus half a
/// millicore, so truncation to millicores is immune to rate() rounding.
fn cpu_usage(seed: i64, container: usize, t: i64) -> f64 {
    let h = t / HOUR;
    let millis = 20 + (h * 7919 + seed * 31 + container as i64 * 613).rem_euclid(97) * 9;
    (millis as f64 + 0.5) / 1000.0
}

/// Memory working set at `t`, bytes; NaN and negative at some hours for the
/// `bad` pods.
fn memory_usage(seed: i64, container: usize, t: i64, bad: bool) -> f64 {
    let h = t / HOUR;
    if bad && t % HOUR == 0 {
        match h.rem_euclid(10) {
            0 => return f64::NAN,
            5 => return -5.0,
            _ => {}
        }
    }
    let step = (t / SCRAPE + seed * 13 + container as i64 * 5).rem_euclid(41);
    (100 * MI + step * 3 * MI) as f64
}

struct Fixture {
    end: i64,
    start: i64,
    pods: Vec<Pod>,
}

fn fixture() -> Fixture {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = (now - 2 * HOUR) / HOUR * HOUR;
    let start = end - HISTORY;
    let before = start - HOUR;
    let c = |name, cpu, mem| Container {
        name,
        cpu_request_millis: cpu,
        memory_request_bytes: mem,
    };
    let pods = vec![
        Pod {
            namespace: "shop",
            name: "web-5d9f-a",
            owner: ("ReplicaSet", "web-5d9f"),
            workload: ("Deployment", "web"),
            containers: vec![c("app", 500, 512 * MI), c("sidecar", 100, 64 * MI)],
            from: start + 3 * 86_400,
            to: end,
            seed: 1,
            app_label: "web",
        },
        Pod {
            namespace: "shop",
            name: "web-5d9f-b",
            owner: ("ReplicaSet", "web-5d9f"),
            workload: ("Deployment", "web"),
            containers: vec![c("app", 500, 512 * MI), c("sidecar", 100, 64 * MI)],
            from: start + 3 * 86_400,
            to: end,
            seed: 2,
            app_label: "web",
        },
        // The previous ReplicaSet's pod: gone now, its history still counts.
        Pod {
            namespace: "shop",
            name: "web-old1-a",
            owner: ("ReplicaSet", "web-old1"),
            workload: ("Deployment", "web"),
            containers: vec![c("app", 1000, 1024 * MI), c("sidecar", 100, 64 * MI)],
            from: before,
            to: start + 3 * 86_400,
            seed: 3,
            app_label: "web",
        },
        Pod {
            namespace: "shop",
            name: "db-0",
            owner: ("StatefulSet", "db"),
            workload: ("StatefulSet", "db"),
            containers: vec![c("postgres", 2000, 4096 * MI)],
            from: before,
            to: end,
            seed: 4,
            app_label: "db",
        },
        Pod {
            namespace: "shop",
            name: "debug",
            owner: ("<none>", "<none>"),
            workload: ("Pod", "debug"),
            containers: vec![c("sh", 50, 128 * MI)],
            from: before,
            to: end,
            seed: 5,
            app_label: "debug",
        },
        Pod {
            namespace: "batch",
            name: "nightly-29001-x",
            owner: ("Job", "nightly-29001"),
            workload: ("CronJob", "nightly"),
            containers: vec![c("run", 250, 256 * MI)],
            from: start + 6 * 86_400,
            to: end,
            seed: 6,
            app_label: "nightly",
        },
        Pod {
            namespace: "other",
            name: "agent-q2",
            owner: ("DaemonSet", "agent"),
            workload: ("DaemonSet", "agent"),
            containers: vec![c("agent", 100, 200 * MI)],
            from: before,
            to: end,
            seed: 7,
            app_label: "agent",
        },
    ];
    Fixture { end, start, pods }
}

fn scrape_times(from: i64, to: i64) -> impl Iterator<Item = i64> {
    (0..=(to - from) / SCRAPE).map(move |i| from + i * SCRAPE)
}

fn ms(t: i64) -> i64 {
    t * 1000
}

fn backfill(f: &Fixture) -> OpenMetrics {
    let mut data = OpenMetrics::new();
    let ones = |from, to| {
        scrape_times(from, to)
            .map(|t| (ms(t), 1.0))
            .collect::<Vec<_>>()
    };
    for pod in &f.pods {
        let bad = pod.name == "debug";
        for (i, c) in pod.containers.iter().enumerate() {
            let labels = [
                ("job", JOB),
                ("namespace", pod.namespace),
                ("pod", pod.name),
                ("container", c.name),
            ];
            let mut total = 0.0;
            let counter: Vec<(i64, f64)> = scrape_times(pod.from, pod.to)
                .map(|t| {
                    if t > pod.from {
                        // The increment lands in the hour ending at or after t.
                        let hour_end = (t + HOUR - 1).div_euclid(HOUR) * HOUR;
                        total += cpu_usage(pod.seed, i, hour_end) * SCRAPE as f64;
                    }
                    (ms(t), total)
                })
                .collect();
            data.counter("container_cpu_usage_seconds_total", &labels, counter)
                .unwrap();
            data.gauge(
                "container_memory_working_set_bytes",
                &labels,
                scrape_times(pod.from, pod.to).map(|t| (ms(t), memory_usage(pod.seed, i, t, bad))),
            )
            .unwrap();
            for (resource, unit, v) in [
                ("cpu", "core", c.cpu_request_millis as f64 / 1000.0),
                ("memory", "byte", c.memory_request_bytes as f64),
            ] {
                data.gauge(
                    "kube_pod_container_resource_requests",
                    &[
                        ("namespace", pod.namespace),
                        ("pod", pod.name),
                        ("container", c.name),
                        ("resource", resource),
                        ("unit", unit),
                    ],
                    scrape_times(pod.from, pod.to).map(|t| (ms(t), v)),
                )
                .unwrap();
            }
        }
        data.gauge(
            "kube_pod_owner",
            &[
                ("namespace", pod.namespace),
                ("pod", pod.name),
                ("owner_kind", pod.owner.0),
                ("owner_name", pod.owner.1),
                (
                    "owner_is_controller",
                    if pod.owner.0 == "<none>" {
                        "<none>"
                    } else {
                        "true"
                    },
                ),
            ],
            ones(pod.from, pod.to),
        )
        .unwrap();
        data.gauge(
            "kube_pod_labels",
            &[
                ("namespace", pod.namespace),
                ("pod", pod.name),
                ("label_app", pod.app_label),
            ],
            ones(pod.from, pod.to),
        )
        .unwrap();
        // Series the default selector must ignore: the pause container, the
        // pod-level cgroup and another job.
        for (job, container) in [
            (JOB, "POD"),
            (JOB, ""),
            ("other-job", pod.containers[0].name),
        ] {
            let mut labels = vec![
                ("job", job),
                ("namespace", pod.namespace),
                ("pod", pod.name),
            ];
            if !container.is_empty() {
                labels.push(("container", container));
            }
            data.gauge(
                "container_memory_working_set_bytes",
                &labels,
                scrape_times(pod.from, pod.to).map(|t| (ms(t), 1e12)),
            )
            .unwrap();
        }
    }
    let (before, end) = (f.start - HOUR, f.end);
    for (ns, rs, kind, name) in [
        ("shop", "web-5d9f", "Deployment", "web"),
        ("shop", "web-old1", "Deployment", "web"),
    ] {
        data.gauge(
            "kube_replicaset_owner",
            &[
                ("namespace", ns),
                ("replicaset", rs),
                ("owner_kind", kind),
                ("owner_name", name),
                ("owner_is_controller", "true"),
            ],
            ones(before, end),
        )
        .unwrap();
    }
    data.gauge(
        "kube_job_owner",
        &[
            ("namespace", "batch"),
            ("job_name", "nightly-29001"),
            ("owner_kind", "CronJob"),
            ("owner_name", "nightly"),
            ("owner_is_controller", "true"),
        ],
        ones(before, end),
    )
    .unwrap();
    data.gauge(
        "kube_horizontalpodautoscaler_spec_target_metric",
        &[
            ("namespace", "shop"),
            ("horizontalpodautoscaler", "web"),
            ("metric_name", "cpu"),
            ("metric_target_type", "utilization"),
        ],
        scrape_times(before, end).map(|t| (ms(t), 60.0)),
    )
    .unwrap();
    data.gauge(
        "kube_horizontalpodautoscaler_info",
        &[
            ("namespace", "shop"),
            ("horizontalpodautoscaler", "web"),
            ("scaletargetref_kind", "Deployment"),
            ("scaletargetref_name", "web"),
        ],
        ones(before, end),
    )
    .unwrap();
    data
}

/// Expected rows, keyed by (namespace, kind, name, container): the JSON the
/// report must print for each, computed from the fixture alone.
fn expected(
    f: &Fixture,
    options: &RecommenderOptions,
    namespace: Option<&str>,
) -> BTreeMap<(String, String, String, String), Value> {
    let mut states: BTreeMap<(String, String, String), BTreeMap<String, AggregateContainerState>> =
        BTreeMap::new();
    let mut live: BTreeMap<(String, String, String), Vec<&Pod>> = BTreeMap::new();
    let mut pods: Vec<&Pod> = f
        .pods
        .iter()
        .filter(|p| namespace.is_none_or(|n| n == p.namespace))
        .collect();
    pods.sort_by_key(|p| (p.namespace, p.name));
    for pod in pods {
        let w = (
            pod.namespace.to_owned(),
            pod.workload.0.to_owned(),
            pod.workload.1.to_owned(),
        );
        if pod.to == f.end {
            live.entry(w.clone()).or_default().push(pod);
        }
        let mut containers: Vec<(usize, &Container)> = pod.containers.iter().enumerate().collect();
        containers.sort_by_key(|(_, c)| c.name);
        for (i, c) in containers {
            let agg = states
                .entry(w.clone())
                .or_default()
                .entry(c.name.to_owned())
                .or_insert_with(|| {
                    AggregateContainerState::new(&options.aggregation, f.start).unwrap()
                });
            let mut state = ContainerState::new(
                Resources::new(c.cpu_request_millis, c.memory_request_bytes),
                &options.aggregation,
            );
            // Hour-aligned evaluation points of the range queries.
            let points = |from: i64| {
                (0..=HISTORY / HOUR)
                    .map(|k| f.start + k * HOUR)
                    .filter(move |t| *t >= from && *t <= pod.to)
            };
            for t in points(pod.from + HOUR) {
                state
                    .add_cpu_sample(agg, t, cpu_usage(pod.seed, i, t))
                    .unwrap();
            }
            for t in points(pod.from) {
                let v = memory_usage(pod.seed, i, t, pod.name == "debug");
                let _ = state.add_memory_sample(agg, t, v); // NaN/negative rejected
            }
        }
    }
    let recommender = PodResourceRecommender::new(&options.estimation);
    let mut out = BTreeMap::new();
    for (w, pods) in live {
        let rec = recommender.recommend(&ResourcePolicy::default(), &states[&w]);
        for c in &pods[0].containers {
            let r = rec.for_container(c.name).unwrap();
            let q = |p: tailor_core::policy::PartialResources| {
                serde_json::json!({
                    "cpu": format_cpu_millis(p.cpu_millis.unwrap()),
                    "memory": format_memory_bytes(p.memory_bytes.unwrap()),
                })
            };
            let replicas = pods.len() as f64;
            let req = Resources::new(c.cpu_request_millis, c.memory_request_bytes);
            let tgt = Resources::new(r.target.cpu_millis.unwrap(), r.target.memory_bytes.unwrap());
            let cents = |v: f64| (v * 100.0).round() / 100.0;
            let current = cents(RATES.price(req) * replicas * 730.0);
            let recommended = cents(RATES.price(tgt) * replicas * 730.0);
            let hpa = (w.1 == "Deployment" && w.2 == "web")
                .then(|| serde_json::json!({"name": "web", "metrics": ["cpu"]}));
            out.insert(
                (w.0.clone(), w.1.clone(), w.2.clone(), c.name.to_owned()),
                serde_json::json!({
                    "namespace": w.0,
                    "workload": {"kind": w.1, "name": w.2},
                    "container": c.name,
                    "replicas": pods.len(),
                    "requests": {
                        "cpu": format_cpu_millis(c.cpu_request_millis),
                        "memory": format_memory_bytes(c.memory_request_bytes),
                    },
                    "target": q(r.target),
                    "lowerBound": q(r.lower_bound),
                    "upperBound": q(r.upper_bound),
                    "monthlyCostUSD": {
                        "current": current,
                        "recommended": recommended,
                        "savings": cents(current - recommended),
                    },
                    "hpa": hpa,
                }),
            );
        }
    }
    out
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tailor-recommender"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn rows(json: &str) -> BTreeMap<(String, String, String, String), Value> {
    let v: Value = serde_json::from_str(json).unwrap();
    v["recommendations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let s = |v: &Value| v.as_str().unwrap().to_owned();
            (
                (
                    s(&r["namespace"]),
                    s(&r["workload"]["kind"]),
                    s(&r["workload"]["name"]),
                    s(&r["container"]),
                ),
                r.clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn report_equals_an_independent_computation() {
    let f = fixture();
    let prometheus = Prometheus::builder()
        .backfill(backfill(&f))
        .start()
        .await
        .unwrap();
    let at = format_rfc3339(f.end);
    let base = [
        "recommend",
        "--prometheus-url",
        prometheus.url(),
        "--at",
        &at,
        "--usd-per-vcpu-hour",
        "0.04",
        "--usd-per-gib-hour",
        "0.005",
    ];
    let with = |extra: &[&'static str]| -> Vec<&str> {
        base.iter().copied().chain(extra.iter().copied()).collect()
    };

    // JSON: every row equals the independent computation.
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| run(&with(&["--format", "json"])));
    assert!(ok, "{stderr}");
    let got = rows(&stdout);
    let want = expected(&f, &RecommenderOptions::default(), None);
    assert_eq!(got.len(), 6, "{stdout}");
    assert_eq!(got, want);

    // A URL as a proxy may want it, with a trailing slash and a query
    // string: the query is kept on every request and the rows are the same.
    let proxied = format!("{}/?tenant=team-a", prometheus.url());
    let args: Vec<&str> = with(&["--format", "json"])
        .into_iter()
        .map(|a| {
            if a == prometheus.url() {
                proxied.as_str()
            } else {
                a
            }
        })
        .collect();
    let (ok, stdout, stderr) = tokio::task::block_in_place(|| run(&args));
    assert!(ok, "{stderr}");
    assert_eq!(rows(&stdout), want);
    // The debug pod's NaN and negative memory samples were skipped and counted.
    let bad_points = (0..=HISTORY / HOUR)
        .map(|k| f.start + k * HOUR)
        .filter(|t| matches!((t / HOUR).rem_euclid(10), 0 | 5))
        .count();
    assert!(
        stderr.contains(&format!("skipped {bad_points} NaN/negative/infinite")),
        "{stderr}"
    );

    // YAML is the same document.
    let (ok, yaml, stderr) =
        tokio::task::block_in_place(|| run(&with(&["--format", "yaml", "-q"])));
    assert!(ok, "{stderr}");
    assert!(stderr.is_empty(), "quiet: {stderr}");
    let yaml: Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(yaml, serde_json::from_str::<Value>(&stdout).unwrap());

    // Table: readable at 120 columns, HPA marked.
    let (ok, table, stderr) = tokio::task::block_in_place(|| run(&with(&["--format", "table"])));
    assert!(ok, "{stderr}");
    assert_eq!(table.lines().count(), 1 + 6 + 1, "{table}");
    for line in table.lines().take(7) {
        assert!(line.chars().count() <= 120, "{line}");
    }
    println!("{table}");
    assert!(table.contains("!shop/deploy/web"), "{table}");
    assert!(table.contains("batch/cronjob/nightly"), "{table}");

    // CSV: header and one line per row.
    let (ok, csv, stderr) = tokio::task::block_in_place(|| run(&with(&["--format", "csv"])));
    assert!(ok, "{stderr}");
    assert_eq!(csv.lines().count(), 7, "{csv}");
    assert!(
        csv.lines()
            .any(|l| l.starts_with("shop,StatefulSet,db,postgres,1,2,4Gi,")),
        "{csv}"
    );

    // --namespace keeps one namespace; its numbers are unchanged.
    let (ok, out, stderr) =
        tokio::task::block_in_place(|| run(&with(&["--format", "json", "--namespace", "other"])));
    assert!(ok, "{stderr}");
    assert_eq!(
        rows(&out),
        expected(&f, &RecommenderOptions::default(), Some("other"))
    );

    // --selector on pod labels.
    let (ok, out, stderr) =
        tokio::task::block_in_place(|| run(&with(&["--format", "json", "--selector", "app=web"])));
    assert!(ok, "{stderr}");
    let names: Vec<String> = rows(&out)
        .keys()
        .map(|k| format!("{}/{}", k.2, k.3))
        .collect();
    assert_eq!(names, vec!["web/app", "web/sidecar"]);

    // A hostile namespace value is a matcher, not PromQL: no rows, no error.
    let (ok, out, stderr) = tokio::task::block_in_place(|| {
        run(&with(&[
            "--format",
            "json",
            "--namespace",
            "x\"} or vector(1) or {a=\"",
        ]))
    });
    assert!(ok, "{stderr}");
    assert!(rows(&out).is_empty(), "{out}");

    // Newsvendor: the CPU target moves to the critical fractile 0.75.
    let (ok, out, stderr) = tokio::task::block_in_place(|| {
        run(&with(&[
            "--format",
            "json",
            "--cost-policy",
            "newsvendor",
            "--under-provisioning-penalty",
            "0.12",
        ]))
    });
    assert!(ok, "{stderr}");
    let mut options = RecommenderOptions::default();
    let q = CostAwareQuantile::new(0.04, 0.12).unwrap();
    assert!((q.target_quantile() - 0.75).abs() < 1e-12);
    options.estimation.cost_aware = Some(q);
    let newsvendor = rows(&out);
    assert_eq!(newsvendor, expected(&f, &options, None));
    assert_ne!(newsvendor, got, "the policy changed nothing");
}

#[test]
fn unreachable_prometheus_is_a_clear_error() {
    // Port 9 (discard) on loopback: nothing listens in the test environment.
    let (ok, stdout, stderr) = run(&[
        "recommend",
        "--prometheus-url",
        "http://127.0.0.1:9",
        "--query-timeout",
        "5s",
    ]);
    assert!(!ok);
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.contains("Prometheus at http://127.0.0.1:9 is unreachable"),
        "{stderr}"
    );
}

#[test]
fn bad_flags_are_rejected_before_querying() {
    for (args, needle) in [
        (vec!["--pod-label", "po-d"], "pod label"),
        (vec!["--selector", "app in (a)"], "invalid label selector"),
        (
            vec!["--cost-policy", "newsvendor"],
            "--under-provisioning-penalty",
        ),
        (
            vec!["--target-cpu-percentile", "1.5"],
            "target_cpu_percentile",
        ),
        (vec!["--history", "8y"], "unknown unit"),
    ] {
        let mut all = vec!["recommend", "--prometheus-url", "http://127.0.0.1:9"];
        all.extend(args);
        let (ok, _, stderr) = run(&all);
        assert!(!ok, "{all:?}");
        assert!(stderr.contains(needle), "{all:?}: {stderr}");
    }
}
