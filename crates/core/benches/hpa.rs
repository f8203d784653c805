//! Hot paths the simulator calls per step: one HPA sync, and the fluid lower
//! bound over the real EC2 catalog (`../shared/data/aws`, current-generation,
//! non-burstable types), as REFERENCE.md prescribes for whole-catalog bounds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use tailor_core::cost::{FluidLowerBound, NodeType, fluid_lower_bound_exhaustive};
use tailor_core::hpa::{
    Behavior, ControllerConfig, HpaInput, HpaSpec, HpaState, MetricObservation, MetricSource,
    MetricSpec, MetricTarget, Pod, PodPhase, PodSample, ReadyCondition, reconcile,
};
use tailor_core::resources::{ResourceName, Resources};

fn catalog() -> Vec<NodeType> {
    // `../shared/data` beside the checkout (a main checkout or a worktree one level deeper).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = ["../shared", "../../shared"]
        .iter()
        .map(|s| root.join(s).join("data/aws/aws-ec2-us-east-1.csv"))
        .find(|p| p.exists())
        .expect("the EC2 catalog in ../shared/data/aws");
    let text = std::fs::read_to_string(&path).expect("the EC2 catalog in ../shared/data/aws");
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let (vcpu, mib, current, burstable, price) = (
                f[1].parse::<i64>().ok()?,
                f[2].parse::<i64>().ok()?,
                f[5] == "true",
                f[6] == "true",
                f[8].parse::<f64>().ok()?,
            );
            (current && !burstable && price > 0.0 && vcpu > 0 && mib > 0).then(|| NodeType {
                name: f[0].to_string(),
                cpu_millis: vcpu * 1000,
                memory_bytes: mib * 1024 * 1024,
                price_per_hour: price,
            })
        })
        .collect()
}

fn demands() -> Vec<Resources> {
    // A sweep of sizes and CPU:memory mixes from 1:0.5 to 1:32 GiB per vCPU.
    (0..1024)
        .map(|i| {
            let cpu = 500 + (i * 7919) % 400_000;
            let gib_per_vcpu = 0.5 * f64::from(1 << (i % 7));
            let mem = (cpu as f64 / 1000.0 * gib_per_vcpu * 1024.0 * 1024.0 * 1024.0) as i64;
            Resources::new(i64::from(cpu), mem)
        })
        .collect()
}

fn bench_fluid_bound(c: &mut Criterion) {
    let types = catalog();
    let bound = FluidLowerBound::new(&types).unwrap();
    eprintln!(
        "catalog: {} types, {} hull candidates",
        types.len(),
        bound.candidate_count()
    );
    let ds = demands();
    c.bench_function("fluid_bound/solve_1024_demands", |b| {
        b.iter(|| {
            let mut s = 0.0;
            for d in &ds {
                s += bound.cost_per_hour(black_box(*d)).unwrap();
            }
            s
        });
    });
    c.bench_function("fluid_bound/new_from_catalog", |b| {
        b.iter(|| FluidLowerBound::new(black_box(&types)).unwrap());
    });
    c.bench_function("fluid_bound/exhaustive_one_demand", |b| {
        b.iter(|| fluid_lower_bound_exhaustive(black_box(&types), black_box(ds[3])).unwrap());
    });
}

fn bench_hpa(c: &mut Criterion) {
    let n = 100;
    let pods: Vec<Pod> = (0..n)
        .map(|i| Pod {
            name: format!("pod-{i}"),
            phase: PodPhase::Running,
            deleting: false,
            start_time: Some(0.0),
            ready: Some(ReadyCondition {
                ready: i % 10 != 0,
                last_transition: 0.0,
            }),
        })
        .collect();
    let usage = (0..n)
        .map(|i| {
            (i % 7 != 0).then_some(PodSample {
                value: 300 + (i as i64 * 37) % 900,
                timestamp: 0.0,
                window: 60.0,
            })
        })
        .collect();
    let obs = vec![MetricObservation::Resource {
        usage,
        requests: vec![Some(500); n],
    }];
    let spec = HpaSpec {
        min_replicas: Some(1),
        max_replicas: 1000,
        metrics: vec![MetricSpec {
            source: MetricSource::Resource {
                resource: ResourceName::Cpu,
            },
            target: MetricTarget::Utilization(70),
        }],
        behavior: Some(Behavior::default()),
    };
    let config = ControllerConfig::default();
    c.bench_function("hpa/reconcile_100_pods_cpu", |b| {
        let mut state = HpaState::default();
        let mut now = 1000.0;
        b.iter(|| {
            now += 15.0;
            let input = HpaInput {
                now,
                spec_replicas: n as i32,
                status_replicas: n as i32,
                pods: &pods,
                observations: &obs,
            };
            reconcile(&spec, &config, black_box(&input), &mut state).unwrap()
        });
    });
}

criterion_group!(benches, bench_fluid_bound, bench_hpa);
criterion_main!(benches);
