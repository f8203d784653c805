#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! Query building on the request path: one object, a small regex, a wildcard.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tailor_metrics_adapter::config::Config;
use tailor_metrics_adapter::naming::GroupResource;
use tailor_metrics_adapter::query::{CustomRequest, Objects, QueryOptions, build_custom};
use tailor_metrics_adapter::selector::MetricSelector;

const DEFAULT: &str = include_str!("../src/testdata/default-config.yaml");

fn bench(c: &mut Criterion) {
    let config = Config::from_yaml(DEFAULT, "default-config.yaml").unwrap();
    let rule = &config.rules[0];
    let pods = GroupResource::pods();
    let selector = MetricSelector::parse(Some("verb in (GET,POST),code!=500")).unwrap();
    let one = vec!["web-0".to_owned()];
    let ten: Vec<String> = (0..10).map(|i| format!("web-{i}")).collect();
    let many: Vec<String> = (0..500).map(|i| format!("web-{i}")).collect();
    for (name, objects) in [
        ("one", Objects::Named(&one)),
        ("ten", Objects::Named(&ten)),
        ("many", Objects::Named(&many)),
        ("all", Objects::All),
    ] {
        c.bench_function(&format!("build_custom/{name}"), |b| {
            b.iter(|| {
                build_custom(
                    black_box(rule),
                    &CustomRequest {
                        series: "container_cpu_usage_seconds_total",
                        resource: &pods,
                        namespace: Some("production"),
                        objects,
                        metric_selector: &selector,
                    },
                    QueryOptions::default(),
                )
                .unwrap()
            });
        });
    }
    c.bench_function("config/load_default", |b| {
        b.iter(|| Config::from_yaml(black_box(DEFAULT), "d.yaml").unwrap());
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
