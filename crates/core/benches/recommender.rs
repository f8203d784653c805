#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Recommender hot paths: adding one CPU sample, and computing
//! recommendations for 10,000 containers with 8 days of history. Also prints
//! the memory held per tracked container.

use criterion::{Criterion, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;
use tailor_core::policy::ResourcePolicy;
use tailor_core::recommender::{
    AggregateContainerState, AggregationOptions, ContainerState, EstimationOptions,
    PodResourceRecommender,
};
use tailor_core::resources::Resources;

const T0: i64 = 1_700_000_000;
const CONTAINERS: usize = 10_000;
const DISTINCT_HISTORIES: usize = 64;

// Eight days of 5-minute samples with a daily cycle and per-container scale.
fn history(seed: usize) -> AggregateContainerState {
    let opts = AggregationOptions::default();
    let mut agg = AggregateContainerState::new(&opts, T0).unwrap();
    let mut c = ContainerState::new(Resources::new(250, 256 << 20), &opts);
    let scale = 0.05 + (seed % 16) as f64 * 0.1;
    for i in 0..(8 * 24 * 12) {
        let t = T0 + i as i64 * 300;
        let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
        let noise = ((i * 7919 + seed * 104_729) % 100) as f64 / 100.0;
        let cpu = scale * (1.0 + 0.5 * phase.sin() + 0.3 * noise);
        c.add_cpu_sample(&mut agg, t, cpu).unwrap();
        c.add_memory_sample(&mut agg, t, 1e8 + cpu * 4e8).unwrap();
    }
    agg
}

fn report_memory(sample: &AggregateContainerState) {
    let per_container = std::mem::size_of::<AggregateContainerState>()
        + sample.heap_bytes()
        + std::mem::size_of::<ContainerState>();
    let total = per_container * CONTAINERS;
    eprintln!(
        "memory: {} B per tracked container (aggregate {} B + heap {} B + container {} B); \
         {CONTAINERS} containers = {:.1} MiB",
        per_container,
        std::mem::size_of::<AggregateContainerState>(),
        sample.heap_bytes(),
        std::mem::size_of::<ContainerState>(),
        total as f64 / (1024.0 * 1024.0)
    );
}

// Nanoseconds this thread has spent on a CPU (Linux schedstat). The machine
// is shared, so wall-clock numbers include time spent waiting for a core;
// this reports the work itself next to criterion's wall-clock figures.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn report_cpu_time(label: &str, iterations: u64, mut f: impl FnMut()) {
    let Some(start) = thread_cpu_ns() else {
        eprintln!("{label}: /proc/thread-self/schedstat unavailable");
        return;
    };
    for _ in 0..iterations {
        f();
    }
    if let Some(end) = thread_cpu_ns() {
        eprintln!(
            "{label}: {:.1} ns on-CPU per iteration ({iterations} iterations)",
            (end - start) as f64 / iterations as f64
        );
    }
}

fn bench(c: &mut Criterion) {
    let opts = AggregationOptions::default();
    let mut agg = AggregateContainerState::new(&opts, T0).unwrap();
    let mut state = ContainerState::new(Resources::new(500, 1 << 30), &opts);
    let mut t = T0;
    let mut v = 0.0_f64;
    c.bench_function("add_cpu_sample", |b| {
        b.iter(|| {
            t += 60;
            v = if v > 3.0 { 0.01 } else { v + 0.137 };
            black_box(
                state
                    .add_cpu_sample(&mut agg, black_box(t), black_box(v))
                    .unwrap(),
            );
        });
    });

    {
        let mut agg = AggregateContainerState::new(&opts, T0).unwrap();
        let mut state = ContainerState::new(Resources::new(500, 1 << 30), &opts);
        let mut t = T0;
        let mut v = 0.0_f64;
        report_cpu_time("add_cpu_sample", 5_000_000, || {
            t += 60;
            v = if v > 3.0 { 0.01 } else { v + 0.137 };
            black_box(
                state
                    .add_cpu_sample(&mut agg, black_box(t), black_box(v))
                    .unwrap(),
            );
        });
    }

    let histories: Vec<AggregateContainerState> = (0..DISTINCT_HISTORIES).map(history).collect();
    report_memory(&histories[0]);
    // 5,000 pods × 2 containers = 10,000 containers.
    let pods: Vec<BTreeMap<String, AggregateContainerState>> = (0..CONTAINERS / 2)
        .map(|i| {
            [
                (
                    "app".to_owned(),
                    histories[(2 * i) % DISTINCT_HISTORIES].clone(),
                ),
                (
                    "sidecar".to_owned(),
                    histories[(2 * i + 1) % DISTINCT_HISTORIES].clone(),
                ),
            ]
            .into()
        })
        .collect();
    let recommender = PodResourceRecommender::new(&EstimationOptions::default());
    let policy = ResourcePolicy::default();
    report_cpu_time("recommend 10k containers", 5, || {
        for pod in &pods {
            black_box(recommender.recommend(&policy, black_box(pod)));
        }
    });
    let mut group = c.benchmark_group("recommend");
    group.sample_size(10);
    group.bench_function("10k_containers_8d_history", |b| {
        b.iter(|| {
            let mut n = 0;
            for pod in &pods {
                n += recommender
                    .recommend(&policy, black_box(pod))
                    .container_recommendations
                    .len();
            }
            assert_eq!(n, CONTAINERS);
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
