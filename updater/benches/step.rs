//! The updater's whole loop decision for a large cluster: 10,000 pods under
//! 2,000 VPAs (2,000 Deployments → ReplicaSets → 5 pods each), from the
//! compact caches to the planned actions — owner resolution, VPA matching,
//! core's decisions and the resize patches. Target: ≤ 50 ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;
use std::hint::black_box;
use std::sync::Arc;
use tailor_api::VerticalPodAutoscaler;
use tailor_runtime::scale::ScaleTargets;
use tailor_updater::model::{Controlled, ControllerIndex, PodEntry};
use tailor_updater::step::{LimitRangeIndex, ResizeTracker, Snapshot, StepConfig, step};

const VPAS: usize = 2_000;
const PODS_PER_VPA: usize = 5;
const NOW: i64 = 1_800_000_000;

struct Cluster {
    vpas: Vec<Arc<VerticalPodAutoscaler>>,
    pods: Vec<Arc<PodEntry>>,
    index: ControllerIndex,
}

fn build() -> Cluster {
    let mut index = ControllerIndex::new();
    let mut vpas = Vec::new();
    let mut pods = Vec::new();
    for v in 0..VPAS {
        let ns = format!("ns-{}", v % 50);
        let app = format!("app-{v}");
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": app, "namespace": ns},
            "spec": {"replicas": PODS_PER_VPA, "selector": {"matchLabels": {"app": app}}, "template": {}}
        }))
        .unwrap();
        index.insert((ns.clone(), "Deployment".into(), app.clone()), d.entry());
        let rs_name = format!("{app}-7d9f");
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": rs_name, "namespace": ns,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app, "uid": "d", "controller": true}]},
            "spec": {"replicas": PODS_PER_VPA, "selector": {"matchLabels": {"app": app}}, "template": {}}
        }))
        .unwrap();
        index.insert(
            (ns.clone(), "ReplicaSet".into(), rs_name.clone()),
            rs.entry(),
        );
        // Alternate modes: a third resize in place.
        let mode = ["Recreate", "Auto", "InPlaceOrRecreate"][v % 3];
        vpas.push(Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
                "metadata": {"name": app, "namespace": ns, "uid": format!("v{v}"), "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
                         "updatePolicy": {"updateMode": mode}},
                "status": {"recommendation": {"containerRecommendations": [
                    {"containerName": "app", "target": {"cpu": "500m", "memory": "512Mi"},
                     "lowerBound": {"cpu": "250m", "memory": "256Mi"}, "upperBound": {"cpu": "1", "memory": "1Gi"}},
                    {"containerName": "sidecar", "target": {"cpu": "50m", "memory": "64Mi"},
                     "lowerBound": {"cpu": "25m", "memory": "32Mi"}, "upperBound": {"cpu": "100m", "memory": "128Mi"}}]}}
            }))
            .unwrap(),
        ));
        for p in 0..PODS_PER_VPA {
            // Requests spread so that some pods are in range, some out, some drifted.
            let cpu = format!("{}m", 100 + 150 * ((v + p) % 7));
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("{rs_name}-{p}"), "namespace": ns, "uid": format!("u{v}-{p}"),
                    "labels": {"app": app, "pod-template-hash": "7d9f"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name, "uid": "r", "controller": true}]},
                "spec": {"containers": [
                    {"name": "app", "resources": {"requests": {"cpu": cpu, "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "1Gi"}}},
                    {"name": "sidecar", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]},
                "status": {"phase": "Running", "startTime": "2027-01-14T08:00:00Z"}
            }))
            .unwrap();
            pods.push(Arc::new(PodEntry::from_pod(&pod)));
        }
    }
    Cluster { vpas, pods, index }
}

/// Nanoseconds this thread has spent on a CPU (Linux schedstat): the machine
/// is shared, so wall-clock figures include waiting for a core.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn bench(c: &mut Criterion) {
    let cluster = build();
    let config = StepConfig::default();
    // No LimitRanges and no custom controllers: the same input as before
    // they were read (an empty index costs one lookup per namespace).
    let limit_ranges = LimitRangeIndex::default();
    let scale = ScaleTargets::default();
    let snap = Snapshot {
        vpas: &cluster.vpas,
        pods: &cluster.pods,
        controllers: &cluster.index,
        limit_ranges: &limit_ranges,
        scale: &scale,
    };
    let out = step(snap, &config, &mut ResizeTracker::default(), NOW);
    eprintln!(
        "considered {} pods, {} actions, {} skipped",
        out.considered,
        out.actions.len(),
        out.skipped.len()
    );
    assert_eq!(out.considered, VPAS * PODS_PER_VPA);
    if let Some(start) = thread_cpu_ns() {
        const N: u32 = 20;
        for _ in 0..N {
            black_box(step(snap, &config, &mut ResizeTracker::default(), NOW));
        }
        if let Some(end) = thread_cpu_ns() {
            #[allow(clippy::cast_precision_loss)]
            let ms = (end - start) as f64 / f64::from(N) / 1e6;
            eprintln!("step_10000_pods_2000_vpas: {ms:.2} ms on-CPU per step ({N} steps)");
        }
    }
    c.bench_function("step_10000_pods_2000_vpas", |b| {
        b.iter(|| {
            let mut tracker = ResizeTracker::default();
            black_box(step(black_box(snap), &config, &mut tracker, NOW))
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
