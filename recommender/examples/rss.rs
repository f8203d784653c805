#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Resident memory of the controller's state: N running containers (one per
//! pod, one VPA per `--pods-per-vpa` pods), 8 days of usage at the initial
//! load's resolution, fed through the real step (pods → containers →
//! aggregates → recommendations). Holds what the running controller holds:
//! the VPA and pod caches, the compact Deployment and ReplicaSet caches
//! (selectors only) the targets are resolved through, the aggregates, the metrics registry with
//! its per-VPA rows, each status and checkpoint apply body as it is written,
//! and the checkpoint memo, and one /metrics scrape as the admin server
//! streams it. Prints VmRSS after each phase and the peak
//! (VmHWM), read from /proc/self/status.
//!
//! `cargo run -p tailor-recommender --example rss -- [containers] [pods-per-vpa] [resolution-secs] [--bitbrains]`
//! (defaults 10000, 1, 3600). The resolution changes the load time and the
//! transient `History`. Histograms store only the run of buckets a
//! container's usage reached, so their size follows how widely usage
//! varies: by default each container follows a smooth daily cycle (about
//! 25 buckets wide); `--bitbrains` feeds container i the first 8 days of
//! Bitbrains VM (i mod 200) + 1 from the shared data (`TAILOR_SHARED_DATA`,
//! else `../shared/data`) instead, sampled
//! every resolution (real, much wider spreads).

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;
use serde_json::json;
use std::sync::Arc;
use tailor_api::VerticalPodAutoscaler;
use tailor_api::selector::Selector;
use tailor_api::target::target_selector;
use tailor_core::catalog::Rates;
use tailor_core::recommender::RecommenderOptions;
use tailor_core::resources::Resources;
use tailor_recommender::controller::r#loop::{
    CostConfig, LookupError, PodInfo, Recommender, Snapshot, TargetLookup, VpaInfo,
};
use tailor_recommender::controller::metrics::Metrics;
use tailor_recommender::controller::run::ControllerCache;
use tailor_recommender::controller::state::{ClusterState, VpaKey};
use tailor_recommender::controller::writer::{self, CheckpointMemo};
use tailor_recommender::prom::{ContainerKey, History};

const T0: i64 = 1_700_000_000;

/// The Deployment cache, as the controller holds it (the selector of each,
/// by namespace and name).
struct Deployments(ControllerCache<Deployment>);

impl TargetLookup for Deployments {
    fn selector(
        &self,
        namespace: &str,
        target: &CrossVersionObjectReference,
    ) -> Result<Selector, LookupError> {
        match self.0.get(namespace, &target.name) {
            Some(held) => held.selector(),
            None => Ok(target_selector(target, None)?),
        }
    }
}

/// A typical object as the API server sends it: the pod template is what
/// the controller's slimming drops.
fn template(app: &str) -> serde_json::Value {
    json!({
        "metadata": {"labels": {"app": app, "pod-template-hash": "5d9f7c"}},
        "spec": {"containers": [{"name": "main", "image": "registry.example/app:1.2.3",
            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
            "ports": [{"containerPort": 8080}], "env": [{"name": "MODE", "value": "prod"}]}]}
    })
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

/// The process's on-CPU seconds so far (user + system, from
/// /proc/self/stat; clock ticks at the usual 100 Hz): wall-clock is unfair
/// on a shared machine.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th of the line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn report(phase: &str) {
    let (rss, hwm) = status_kib();
    println!(
        "{phase:<44} VmRSS {:>8.1} MiB   VmHWM {:>8.1} MiB   CPU {:>7.2} s",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        cpu_secs()
    );
}

fn main() {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let bitbrains = raw.iter().any(|a| a == "--bitbrains");
    let args: Vec<usize> = raw
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse().unwrap())
        .collect();
    let containers = args.first().copied().unwrap_or(10_000);
    let pods_per_vpa = args.get(1).copied().unwrap_or(1).max(1);
    let resolution = args.get(2).copied().unwrap_or(3600) as i64;
    let vpa_count = containers.div_ceil(pods_per_vpa);
    let trace = bitbrains.then(|| {
        let dir = tailor_sim::shared_data_dir().join("traces/bitbrains-rnd-2013-08");
        let trace = tailor_sim::trace::read_bitbrains_dir(&dir, None).unwrap();
        // Only the rows the load reads are kept (the parsed month is freed
        // before anything is measured, and its memory reused).
        let rows = (8 * 86_400 / resolution) as usize;
        trace
            .workloads
            .into_iter()
            .map(|w| {
                (0..rows)
                    .map(|k| {
                        let s =
                            &w.samples[(k * resolution as usize / 300).min(w.samples.len() - 1)];
                        (s.cpu_cores, s.memory_bytes)
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    });
    println!(
        "{containers} containers, {vpa_count} VPAs, 8 days at {resolution} s, usage {}",
        if bitbrains {
            "from Bitbrains VMs"
        } else {
            "synthetic"
        }
    );
    report("start");

    // VPAs as the controller's cache holds them (VpaInfo).
    let vpas: Vec<Arc<VpaInfo>> = (0..vpa_count)
        .map(|v| Arc::new(VpaInfo::new(full_vpa(&format!("app-{v}")))))
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
    // Fed as the watch's initial list delivers them: each object decoded,
    // then compacted.
    let deployments = ControllerCache::<Deployment>::default();
    let replica_sets = ControllerCache::<ReplicaSet>::default();
    let (mut d_list, mut rs_list) = (Vec::new(), Vec::new());
    deployments.apply(&mut d_list, Event::Init);
    replica_sets.apply(&mut rs_list, Event::Init);
    for v in 0..vpa_count {
        let app = format!("app-{v}");
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": app, "namespace": "bench", "uid": format!("d-{v}"), "generation": 3,
                "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": pods_per_vpa, "selector": {"matchLabels": {"app": app}}, "template": template(&app)},
            "status": {"replicas": pods_per_vpa, "readyReplicas": pods_per_vpa, "observedGeneration": 3}
        }))
        .unwrap();
        deployments.apply(&mut d_list, Event::InitApply(d));
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": format!("{app}-5d9f7c"), "namespace": "bench", "uid": format!("rs-{v}"),
                "labels": {"app": app, "pod-template-hash": "5d9f7c"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app, "uid": format!("d-{v}"), "controller": true}]},
            "spec": {"replicas": pods_per_vpa, "selector": {"matchLabels": {"app": app, "pod-template-hash": "5d9f7c"}}, "template": template(&app)},
            "status": {"replicas": pods_per_vpa}
        }))
        .unwrap();
        replica_sets.apply(&mut rs_list, Event::InitApply(rs));
    }
    deployments.apply(&mut d_list, Event::InitDone);
    replica_sets.apply(&mut rs_list, Event::InitDone);
    assert_eq!(replica_sets.state().len(), vpa_count);
    let targets = Deployments(deployments);
    report("VPA, pod, Deployment, ReplicaSet caches");

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
    // The initial load as the controller does it (history::HistoryLoad): one
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
            let (cpu, mem) = match &trace {
                // The VM's row at the same offset from its start (5-min rows).
                Some(trace) => {
                    let vm = &trace[i % trace.len()];
                    (
                        times.clone().map(|(k, t)| (t, vm[k as usize].0)).collect(),
                        times.map(|(k, t)| (t, vm[k as usize].1)).collect(),
                    )
                }
                None => (
                    times
                        .clone()
                        .map(|(k, t)| (t, base + (k % 24) as f64 * 0.005))
                        .collect(),
                    times
                        .map(|(k, t)| (t, 2e8 + (k % 24) as f64 * 1e6))
                        .collect(),
                ),
            };
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
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::register(&mut registry);
    let mut memo = CheckpointMemo::default();
    // The first step as the controller runs it (`run_step`).
    let first = Loop {
        rec: &mut rec,
        metrics: &metrics,
        memo: &mut memo,
        targets: &targets,
        pods: &pods,
    }
    .run(&vpas, &History::default(), now, true);
    println!(
        "aggregated {loaded} samples into {} aggregates; {} VPAs recommended; {} statuses and {} checkpoints written; histogram heap {:.1} MiB; largest apply body {} B",
        rec.state.aggregate_count(),
        first.recommended,
        first.statuses,
        first.checkpoints,
        rec.state.histogram_heap_bytes() as f64 / 1024.0 / 1024.0,
        first.largest_body
    );
    assert_eq!(first.recommended, vpa_count);
    assert_eq!(first.checkpoints, rec.state.aggregate_count());
    report("+ first step (statuses, metrics, checkpoints)");
    drop(vpas);
    // What the watch delivers back after the status writes, compacted.
    let vpas = first.delivered;
    report("steady state (VPAs cached, statuses written)");
    // The metrics as scraped: the admin server encodes into 64 KiB pieces
    // and sends each on (at most two in flight).
    let mut scrape = Pieces::default();
    prometheus_client::encoding::text::encode(&mut scrape, &registry).unwrap();
    let scraped = scrape.sent + scrape.buf.len();
    report("+ one /metrics scrape (64 KiB pieces)");
    drop(scrape);

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
    let next = Loop {
        rec: &mut rec,
        metrics: &metrics,
        memo: &mut memo,
        targets: &targets,
        pods: &pods,
    }
    .run(&vpas, &fresh, now + 120, false);
    drop(fresh);
    println!(
        "loop: {} statuses and {} checkpoints written; /metrics {scraped} B",
        next.statuses, next.checkpoints
    );
    report("during a loop (fresh samples + step output)");
}

/// The admin server's `/metrics` writer, without the socket: a piece is
/// handed on (here: dropped) every 64 KiB.
#[derive(Default)]
struct Pieces {
    buf: String,
    sent: usize,
}

impl std::fmt::Write for Pieces {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= 64 * 1024 {
            self.sent += self.buf.len();
            std::hint::black_box(std::mem::replace(
                &mut self.buf,
                String::with_capacity(64 * 1024),
            ));
        }
        Ok(())
    }
}

/// One controller step as `run_step` does it, without the API server.
struct Loop<'a> {
    rec: &'a mut Recommender,
    metrics: &'a Metrics,
    memo: &'a mut CheckpointMemo,
    targets: &'a Deployments,
    pods: &'a [Arc<PodInfo>],
}

struct Done {
    recommended: usize,
    statuses: usize,
    checkpoints: usize,
    largest_body: usize,
    delivered: Vec<Arc<VpaInfo>>,
}

impl Loop<'_> {
    /// `deliver`: each written status comes back through the watch on the
    /// whole VPA (as first listed), cached compacted in `delivered`.
    fn run(self, vpas: &[Arc<VpaInfo>], history: &History, now: i64, deliver: bool) -> Done {
        let pending = self
            .rec
            .update(
                Snapshot {
                    vpas,
                    pods: self.pods,
                    hpas: &[],
                    targets: self.targets,
                    ooms: &[],
                },
                history,
                &mut |_| None,
                now,
            )
            .unwrap();
        assert_eq!(
            pending.out.samples.cpu as usize,
            history.cpu.len(),
            "every fresh sample is aggregated"
        );
        let mut done = Done {
            recommended: 0,
            statuses: 0,
            checkpoints: 0,
            largest_body: 0,
            delivered: Vec::new(),
        };
        // Each status is built, its apply body serialized (as the write
        // does), then dropped before the next (`write_each`).
        let (mut out, results) = pending.results(self.rec, &[]);
        let mut kept = Vec::new();
        for mut r in results {
            if let Some(status) = r.status.take() {
                let body = writer::status_patch(&r.key, &status).to_string();
                done.largest_body = done.largest_body.max(body.len());
                done.statuses += 1;
                if deliver {
                    let mut full = full_vpa(&r.key.name);
                    full.status = Some(status);
                    done.delivered.push(Arc::new(VpaInfo::new(full)));
                }
            }
            kept.push(r);
        }
        out.results = kept;
        done.recommended = out
            .results
            .iter()
            .filter(|r| r.recommendation.is_some())
            .count();
        let s = &self.rec.state;
        self.metrics
            .record_step(&out, s.aggregate_count(), s.container_count());
        drop(out);
        // Checkpoints: one built, serialized and marked at a time.
        for key in self.memo.due(&self.rec.state, now) {
            let checkpoint = self.rec.state.checkpoint(&key, now).unwrap();
            std::hint::black_box(writer::checkpoint_object(&key, &checkpoint).to_string());
            self.memo.mark_written(&key, &checkpoint);
            done.checkpoints += 1;
        }
        done
    }
}

/// A VPA as the API server lists it (before the first status write).
fn full_vpa(name: &str) -> VerticalPodAutoscaler {
    serde_json::from_value(json!({
        "apiVersion": "autoscaling.k8s.io/v1", "kind": "VerticalPodAutoscaler",
        "metadata": {"name": name, "namespace": "bench", "uid": format!("uid-{name}"),
            "resourceVersion": "123456", "generation": 1, "creationTimestamp": "2026-11-01T00:00:00Z"},
        "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "updatePolicy": {"updateMode": "Off"}}
    }))
    .unwrap()
}
