#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The `labelSelector` watch cache on the request path: selecting the pods
//! of one Deployment among 10,000 cached pods, and applying a watch event.

use criterion::{Criterion, criterion_group, criterion_main};
use kube::runtime::watcher::Event;
use std::collections::BTreeMap;
use std::hint::black_box;
use tailor_api::selector::Selector;
use tailor_metrics_adapter::objects::{CompactObject, ObjectStore};

/// 10 namespaces × 1,000 pods, 10 Deployments of 100 pods per namespace,
/// with the labels a Deployment's pods carry.
fn pod(ns: usize, i: usize) -> CompactObject {
    let app = format!("web-{}", i % 10);
    let labels: BTreeMap<String, String> = [
        ("app", app.as_str()),
        ("pod-template-hash", "5d4f8c7b9"),
        ("tier", "frontend"),
        ("app.kubernetes.io/part-of", "shop"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    CompactObject {
        namespace: format!("ns-{ns}"),
        name: format!("{app}-{i}"),
        labels,
    }
}

fn bench(c: &mut Criterion) {
    let mut store = ObjectStore::default();
    store.apply(Event::Init);
    for ns in 0..10 {
        for i in 0..1000 {
            store.apply(Event::InitApply(pod(ns, i)));
        }
    }
    store.apply(Event::InitDone);
    assert_eq!(store.len(), 10_000);
    let deployment = Selector::parse("app=web-3,pod-template-hash=5d4f8c7b9").unwrap();
    assert_eq!(store.select(Some("ns-4"), &deployment).len(), 100);
    c.bench_function("objects/select_100_of_1000_in_namespace", |b| {
        b.iter(|| black_box(store.select(black_box(Some("ns-4")), black_box(&deployment))));
    });
    let set = Selector::parse("app in (web-1,web-2),tier!=backend").unwrap();
    c.bench_function("objects/select_2000_of_10000_all_namespaces", |b| {
        b.iter(|| black_box(store.select(black_box(None), black_box(&set))));
    });
    let mut i = 0;
    c.bench_function("objects/apply_modified_event", |b| {
        b.iter(|| {
            i = (i + 1) % 1000;
            store.apply(Event::Apply(black_box(pod(4, i))));
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
