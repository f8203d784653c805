#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The one-shot report over 1,000 workloads against a real Prometheus
//! (target: ≤ 30 s per report).
//!
//! Setup (not measured): 1,000 Deployments with one pod and one container
//! each, eight days of cAdvisor series scraped every 15 minutes, and sparse
//! kube-state-metrics series, backfilled with promtool. Measured: the whole
//! `recommend` command in-process (history and inventory queries, JSON
//! decoding, aggregation, recommendation, pricing, JSON rendering).
//!
//! Run: `cargo bench -p tailor-recommender --bench report -- --quick`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser as _;
use criterion::{Criterion, criterion_group, criterion_main};
use tailor_core::recommender::format_rfc3339;
use tailor_recommender::cli::{Cli, Command, recommend};
use tailor_testkit::{OpenMetrics, Prometheus};

const WORKLOADS: usize = 1_000;
const HOUR: i64 = 3600;
const SCRAPE: i64 = 900;
const HISTORY: i64 = 8 * 86_400;

fn data(end: i64) -> OpenMetrics {
    let from = end - HISTORY - HOUR;
    let times: Vec<i64> = (0..=(end - from) / SCRAPE)
        .map(|i| from + i * SCRAPE)
        .collect();
    let sparse = [(from + HOUR) * 1000, end * 1000];
    let mut m = OpenMetrics::new();
    for w in 0..WORKLOADS {
        let ns = format!("ns-{}", w % 20);
        let name = format!("app-{w}");
        let rs = format!("{name}-7c9d");
        let pod = format!("{rs}-x{w}");
        let labels = [
            ("job", "kubernetes-cadvisor"),
            ("namespace", ns.as_str()),
            ("pod", pod.as_str()),
            ("container", "main"),
        ];
        let mut total = 0.0;
        let counter: Vec<(i64, f64)> = times
            .iter()
            .map(|&t| {
                let cores = 0.05 + ((t / HOUR + w as i64 * 7) % 23) as f64 * 0.01;
                total += cores * SCRAPE as f64;
                (t * 1000, total)
            })
            .collect();
        m.counter("container_cpu_usage_seconds_total", &labels, counter)
            .unwrap();
        m.gauge(
            "container_memory_working_set_bytes",
            &labels,
            times.iter().map(|&t| {
                (
                    t * 1000,
                    (2e8 + ((t / SCRAPE + w as i64) % 31) as f64 * 4e6),
                )
            }),
        )
        .unwrap();
        let ksm = [("namespace", ns.as_str()), ("pod", pod.as_str())];
        for (resource, v) in [("cpu", 0.5), ("memory", 536_870_912.0)] {
            let mut l = ksm.to_vec();
            l.extend([("container", "main"), ("resource", resource)]);
            m.gauge(
                "kube_pod_container_resource_requests",
                &l,
                sparse.map(|t| (t, v)),
            )
            .unwrap();
        }
        let mut l = ksm.to_vec();
        l.extend([
            ("owner_kind", "ReplicaSet"),
            ("owner_name", rs.as_str()),
            ("owner_is_controller", "true"),
        ]);
        m.gauge("kube_pod_owner", &l, sparse.map(|t| (t, 1.0)))
            .unwrap();
        m.gauge(
            "kube_replicaset_owner",
            &[
                ("namespace", ns.as_str()),
                ("replicaset", rs.as_str()),
                ("owner_kind", "Deployment"),
                ("owner_name", name.as_str()),
                ("owner_is_controller", "true"),
            ],
            sparse.map(|t| (t, 1.0)),
        )
        .unwrap();
    }
    m
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = (now - 2 * HOUR) / HOUR * HOUR;
    let prometheus = rt.block_on(
        Prometheus::builder()
            .backfill(data(end))
            .ready_timeout(Duration::from_secs(300))
            .start(),
    );
    let prometheus = prometheus.unwrap();
    let at = format_rfc3339(end);
    let cli = Cli::try_parse_from([
        "tailor-recommender",
        "recommend",
        "--prometheus-url",
        prometheus.url(),
        "--at",
        &at,
        "--format",
        "json",
        "--quiet",
    ])
    .unwrap();
    let Command::Recommend(args) = cli.command else {
        panic!("parsed as another command")
    };
    // One run outside criterion checks the setup produced every workload.
    let out = rt.block_on(recommend(&args)).unwrap();
    let rows = out.matches("\"container\": \"main\"").count();
    assert_eq!(rows, WORKLOADS, "report rows");

    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("recommend_1000_workloads_8d", |b| {
        b.iter(|| rt.block_on(recommend(&args)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
