//! Updater decisions for a large cluster: 10,000 pods under 2,000 VPAs.
//! Target: one full round of decisions in ≤ 50 ms.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::hint::black_box;
use tailor_core::admission::NamespaceLimits;
use tailor_core::policy::{
    ContainerPolicy, ContainerRecommendation, PartialResources, PodRecommendation, ResourcePolicy,
    UpdateMode,
};
use tailor_core::update::{
    ControllerRef, OomKill, PodPhase, UpdaterConfig, UpdaterContainer, UpdaterPod, VpaUpdateInput,
    decide_updates,
};

const VPAS: usize = 2_000;
const PODS_PER_VPA: usize = 5;
const NOW: i64 = 1_700_000_000;
const MI: i64 = 1024 * 1024;

struct Vpa {
    name: String,
    policy: ResourcePolicy,
    recommendation: PodRecommendation,
    pods: Vec<UpdaterPod>,
}

fn both(cpu: i64, mem: i64) -> PartialResources {
    PartialResources {
        cpu_millis: Some(cpu),
        memory_bytes: Some(mem),
    }
}

fn build(rng: &mut ChaCha8Rng) -> Vec<Vpa> {
    (0..VPAS)
        .map(|v| {
            let names = ["app", "sidecar"];
            let recommendation = PodRecommendation {
                container_recommendations: names
                    .iter()
                    .map(|n| {
                        let cpu = rng.random_range(50..4000);
                        let mem = rng.random_range(64..4096) * MI;
                        ContainerRecommendation {
                            container_name: (*n).to_owned(),
                            target: both(cpu, mem),
                            lower_bound: both(cpu * 8 / 10, mem * 8 / 10),
                            upper_bound: both(cpu * 13 / 10, mem * 13 / 10),
                            uncapped_target: both(cpu, mem),
                        }
                    })
                    .collect(),
            };
            let policy = ResourcePolicy {
                container_policies: vec![ContainerPolicy {
                    min_allowed: both(10, 32 * MI),
                    max_allowed: both(8000, 16 * 1024 * MI),
                    ..ContainerPolicy::default_for("*")
                }],
            };
            let pods = (0..PODS_PER_VPA)
                .map(|p| UpdaterPod {
                    name: format!("w{v}-{p}"),
                    namespace: format!("ns{}", v % 50),
                    controller: Some(ControllerRef {
                        kind: "ReplicaSet".to_owned(),
                        name: format!("w{v}-rs{}", p % 2),
                        configured_replicas: Some(3),
                    }),
                    phase: if rng.random_bool(0.95) {
                        PodPhase::Running
                    } else {
                        PodPhase::Pending
                    },
                    is_mirror: false,
                    annotations: BTreeMap::from([(
                        "vpaObservedContainers".to_owned(),
                        "app, sidecar".to_owned(),
                    )]),
                    started_at_secs: Some(NOW - rng.random_range(0..72 * 3600)),
                    containers: names
                        .iter()
                        .map(|n| UpdaterContainer {
                            name: (*n).to_owned(),
                            requests: both(
                                rng.random_range(50..4000),
                                rng.random_range(64..4096) * MI,
                            ),
                            limits: both(8000, 8192 * MI),
                            last_oom_kill: rng.random_bool(0.02).then_some(OomKill {
                                started_at_secs: NOW - 400,
                                finished_at_secs: NOW - 100,
                            }),
                        })
                        .collect(),
                })
                .collect();
            Vpa {
                name: format!("w{v}"),
                policy,
                recommendation,
                pods,
            }
        })
        .collect()
}

fn bench_update(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let vpas = build(&mut rng);
    let limits = NamespaceLimits::default();
    let config = UpdaterConfig::default();
    c.bench_function("decide_updates 10k pods / 2k VPAs", |b| {
        b.iter(|| {
            let mut updates = 0;
            for vpa in &vpas {
                let plan = decide_updates(
                    &VpaUpdateInput {
                        vpa_name: &vpa.name,
                        mode: UpdateMode::Recreate,
                        min_replicas: None,
                        eviction_requirements: &[],
                        resource_policy: &vpa.policy,
                        recommendation: &vpa.recommendation,
                        limits: &limits,
                        pods: &vpa.pods,
                    },
                    &config,
                    NOW,
                );
                updates += plan.updates.len();
            }
            black_box(updates)
        });
    });
}

criterion_group!(benches, bench_update);
criterion_main!(benches);
