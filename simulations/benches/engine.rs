//! Engine throughput: the 200-VM Bitbrains month at 5-minute steps (traces
//! read outside the timed part), reported as pod-steps per second.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::fmt::Write as _;
use std::path::Path;
use tailor_sim::demand;
use tailor_sim::engine::run_on;
use tailor_sim::scenario::Scenario;

/// 200 Bitbrains VMs, one pod each, fixed requests sized near their usage.
fn bitbrains_month() -> Scenario {
    let dir = tailor_sim::shared_data_dir().join("traces/bitbrains-rnd-2013-08");
    let mut y = String::from("name: bitbrains-200\nduration: 30d\nstep: 5m\nworkloads:\n");
    for i in 1..=200 {
        let _ = write!(
            y,
            "  - name: vm{i}\n    trace: {{path: {}/{i}.csv.gz, format: bitbrains}}\n    requests: {{cpu: 500m, memory: 2Gi}}\n    replicas: 1\n",
            dir.display()
        );
    }
    y.push_str(
        "nodeGroups:
  - name: m
    instanceType: m6i.2xlarge
    minSize: 1
    maxSize: 200
    cpu: \"8\"
    memory: 32Gi
    pricePerHour: 0.384
  - name: c
    instanceType: c6i.2xlarge
    maxSize: 200
    cpu: \"8\"
    memory: 16Gi
    pricePerHour: 0.34
expander: least-waste
",
    );
    Scenario::from_yaml("bench.yaml", &y).unwrap()
}

fn bench(c: &mut Criterion) {
    let s = bitbrains_month();
    let demand = demand::build(&s, Path::new(".")).unwrap();
    let steps = demand::step_count(&s) as u64;
    let pod_steps = steps * 200;
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.throughput(Throughput::Elements(pod_steps));
    g.bench_function("bitbrains_200_vms_month_5m", |b| {
        b.iter(|| run_on(&s, "baseline", Path::new("."), &demand).unwrap());
    });
    g.finish();

    // The built-in week (HPA, VPA, spot) at 1-minute steps.
    let builtin = Scenario::builtin().unwrap();
    let demand = demand::build(&builtin, Path::new(".")).unwrap();
    let mut g = c.benchmark_group("engine");
    g.sample_size(10);
    g.bench_function("builtin_week_1m", |b| {
        b.iter(|| run_on(&builtin, "baseline", Path::new("."), &demand).unwrap());
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
