#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Resident memory of the controller's state: N running containers (one per
//! pod, one VPA per `--pods-per-vpa` pods), 8 days of usage at the initial
//! load's resolution, fed through the real step (pods → containers →
//! aggregates → recommendations). Prints VmRSS after each phase and the peak
//! (VmHWM), read from /proc/self/status.
//!
//! `cargo run -p tailor-recommender --example rss -- [containers] [pods-per-vpa] [resolution-secs]`
//! (defaults 10000, 1, 3600). Histograms are fixed-size, so the resolution
//! changes the load time and the transient `History`, not the steady state.

use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::sync::Arc;
use tailor_api::VerticalPodAutoscaler;
use tailor_api::selector::Selector;
use tailor_core::catalog::Rates;
use tailor_core::recommender::RecommenderOptions;
use tailor_core::resources::Resources;
use tailor_recommender::controller::r#loop::{
    CostConfig, LookupError, PodInfo, Recommender, Snapshot, TargetLookup, VpaInfo,
};
use tailor_recommender::controller::metrics::Metrics;
use tailor_recommender::controller::state::{ClusterState, VpaKey};
use tailor_recommender::controller::writer;
use tailor_recommender::prom::{ContainerKey, History};

const T0: i64 = 1_700_000_000;

struct ByName;

impl TargetLookup for ByName {
    fn selector(
        &self,
        _ns: &str,
        target: &CrossVersionObjectReference,
    ) -> Result<Selector, LookupError> {
        Ok(Selector::parse(&format!("app={}", target.name)).unwrap())
    }
}

fn status_kib() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn report(phase: &str) {
    let (rss, hwm) = status_kib();
    println!(
        "{phase:<44} VmRSS {:>8.1} MiB   VmHWM {:>8.1} MiB",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let containers = args.first().copied().unwrap_or(10_000);
    let pods_per_vpa = args.get(1).copied().unwrap_or(1).max(1);
    let resolution = args.get(2).copied().unwrap_or(3600) as i64;
    let vpa_count = containers.div_ceil(pods_per_vpa);
    println!("{containers} containers, {vpa_count} VPAs, 8 days at {resolution} s");
    report("start");

    // VPAs as the controller's cache holds them (VpaInfo).
    let vpas: Vec<Arc<VpaInfo>> = (0..vpa_count)
        .map(|v| {
            let vpa: VerticalPodAutoscaler = serde_json::from_value(json!({
                "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
                "metadata": {"name": format!("app-{v}"), "namespace": "bench", "uid": format!("uid-{v}"),
                    "resourceVersion": "123456", "generation": 1, "creationTimestamp": "2026-11-01T00:00:00Z"},
                "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("app-{v}")},
                    "updatePolicy": {"updateMode": "Off"}}
            }))
            .unwrap();
            Arc::new(VpaInfo::new(vpa))
        })
        .collect();
    // Pods as the watch cache holds them: decoded from a typical full
    // object, kept as the controller's compact PodInfo.
    let pods: Vec<Arc<PodInfo>> = (0..containers)
        .map(|i| {
            let app = format!("app-{}", i / pods_per_vpa);
            let pod: Pod = serde_json::from_value(json!({
                    "metadata": {"name": format!("{app}-pod-{i}"), "namespace": "bench", "uid": format!("pod-uid-{i}"),
                        "labels": {"app": app, "pod-template-hash": "5d9f7c"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-5d9f7c"), "uid": "rs", "controller": true}]},
                    "spec": {"containers": [{"name": "main", "image": "registry.example/app:1.2.3",
                        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
                        "ports": [{"containerPort": 8080}], "env": [{"name": "MODE", "value": "prod"}]}],
                        "nodeName": "node-1", "serviceAccountName": "default"},
                    "status": {"phase": "Running", "podIP": "10.0.0.1", "hostIP": "10.1.0.1"}
                }))
                .unwrap();
            Arc::new(PodInfo::from_pod(&pod))
        })
        .collect();
    report("VPA and pod objects (watch caches)");

    let mut rec = Recommender::new(
        "default",
        CostConfig {
            rates: Rates {
                usd_per_vcpu_hour: 0.0373,
                usd_per_gib_hour: 0.0048,
            },
            default_policy: None,
            penalty: None,
            min_quantile: 0.5,
            max_quantile: 0.99,
        },
        ClusterState::new(RecommenderOptions::default()).unwrap(),
    );
    let now = T0 + 8 * 86_400;
    // The initial load as the controller does it (history::load_into): one
    // day slice of every container at a time, each container resolved to
    // its VPA through its owners.
    let per_day = 86_400 / resolution;
    let mut loaded = 0;
    for day in 0..8 {
        let mut history = History::default();
        for (i, p) in pods.iter().enumerate() {
            let key = ContainerKey {
                namespace: "bench".into(),
                pod: p.name.clone(),
                container: "main".into(),
            };
            let base = 0.05 + (i % 50) as f64 * 0.01;
            let times = (day * per_day..(day + 1) * per_day).map(|k| (k, T0 + k * resolution));
            let cpu = times
                .clone()
                .map(|(k, t)| (t, base + (k % 24) as f64 * 0.005))
                .collect();
            let mem = times
                .map(|(k, t)| (t, 2e8 + (k % 24) as f64 * 1e6))
                .collect();
            history.cpu.insert(key.clone(), cpu);
            history.memory.insert(key, mem);
        }
        let stats = rec
            .state
            .add_history(
                &history,
                |k| {
                    let app = k.pod.split("-pod-").next().unwrap_or_default();
                    Some((VpaKey::new("bench", app), Resources::new(250, 512 << 20)))
                },
                now,
            )
            .unwrap();
        loaded += stats.cpu + stats.memory;
    }
    report("+ 8 days loaded in day slices (peak = load)");
    // The first step as the controller runs it: update, then each VPA's
    // status built and written (here: serialized, as the apply body is)
    // before the next is built. Metrics are recorded as the controller does.
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let by_name: std::collections::HashMap<String, Arc<VpaInfo>> = vpas
        .iter()
        .map(|v| (v.metadata.name.clone().unwrap_or_default(), Arc::clone(v)))
        .collect();
    // What the watch delivers back after each write, compacted on arrival.
    let mut delivered: Vec<Arc<VpaInfo>> = Vec::with_capacity(vpas.len());
    let pending = rec
        .update(
            Snapshot {
                vpas: &vpas,
                pods: &pods,
                hpas: &[],
                targets: &ByName,
                ooms: &[],
            },
            &History::default(),
            &mut |_| None,
            now,
        )
        .unwrap();
    let (mut out, results) = pending.results(&rec, &[]);
    let mut peak_body = 0;
    let mut kept = Vec::new();
    for mut r in results {
        if let Some(status) = r.status.take() {
            let body = writer::status_patch(&r.key, &status).to_string();
            peak_body = peak_body.max(body.len());
            let mut full = VerticalPodAutoscaler::clone(&by_name[&r.key.name]);
            full.status = Some(status);
            delivered.push(Arc::new(VpaInfo::new(full)));
        }
        kept.push(r);
    }
    out.results = kept;
    report("+ first step (every status built and written)");
    metrics.record_step(
        &out,
        rec.state.aggregate_count(),
        rec.state.container_count(),
    );
    let recommended = out
        .results
        .iter()
        .filter(|r| r.recommendation.is_some())
        .count();
    println!(
        "aggregated {loaded} samples into {} aggregates; {} VPAs recommended; histogram heap {:.1} MiB; largest apply body {peak_body} B",
        rec.state.aggregate_count(),
        recommended,
        rec.state.histogram_heap_bytes() as f64 / 1024.0 / 1024.0
    );
    assert_eq!(recommended, vpa_count);
    drop(out);
    report("+ metrics recorded");
    drop((vpas, by_name));
    let vpas = delivered;
    report("steady state (VPAs cached, statuses written)");

    // A steady-state loop: one new minute of samples, then the step.
    let mut fresh = History::default();
    for p in &pods {
        let key = ContainerKey {
            namespace: "bench".into(),
            pod: p.name.clone(),
            container: "main".into(),
        };
        fresh.cpu.insert(key.clone(), vec![(now + 60, 0.1)]);
        fresh.memory.insert(key, vec![(now + 60, 2e8)]);
    }
    let pending = rec
        .update(
            Snapshot {
                vpas: &vpas,
                pods: &pods,
                hpas: &[],
                targets: &ByName,
                ooms: &[],
            },
            &fresh,
            &mut |_| None,
            now + 120,
        )
        .unwrap();
    drop(fresh);
    let (mut out, results) = pending.results(&rec, &[]);
    assert_eq!(out.samples.cpu as usize, containers);
    let mut writes = 0;
    let mut kept = Vec::new();
    for mut r in results {
        if let Some(status) = r.status.take() {
            std::hint::black_box(writer::status_patch(&r.key, &status).to_string());
            writes += 1;
        }
        kept.push(r);
    }
    out.results = kept;
    metrics.record_step(
        &out,
        rec.state.aggregate_count(),
        rec.state.container_count(),
    );
    println!("loop: {writes} statuses written");
    report("during a loop (fresh samples + step output)");
}
