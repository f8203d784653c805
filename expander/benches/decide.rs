//! A full decision over 100 options × 1,000 pending pods, conversion included.
//! `request/*` is the gRPC call as the server sees it once TLS and HTTP/2 are
//! off: the encoded `BestOptionsRequest` in, the encoded reply out (reading
//! the request, decoding every distinct pod and template node, conversion to
//! the core's types, the chain, writing the reply). `view/*` starts from the
//! request already read ([`RequestView`]), and `read` is that reading alone.
//! Every option lists all 1,000 pods (100,000 pod entries), the worst case of
//! CA's request, where a pod appears under every option it fits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use prost::Message;
use serde_json::{Value, json};
use std::hint::black_box;
use std::sync::Arc;
use tailor_core::catalog::{Catalog, TypeFilter};
use tailor_core::expander::ChainConfig;
use tailor_expander::Expander;
use tailor_expander::grpc::{ExpanderService, Metrics};
use tailor_expander::outer::RequestView;
use tailor_expander::request::DecideRequest;
use tailor_expander::wire::request_to_proto;

const OPTIONS: usize = 100;
const PODS: usize = 1_000;

fn catalog() -> Catalog {
    let data = std::env::var("TAILOR_SHARED_DATA")
        .unwrap_or_else(|_| format!("{}/../../shared/data", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{data}/aws/aws-ec2-us-east-1.csv");
    Catalog::from_csv(&std::fs::read_to_string(&path).expect(&path)).unwrap()
}

fn pod(i: usize) -> Value {
    // Deterministic spread of shapes: 100m–4 CPUs, 128Mi–8Gi.
    let cpu = 100 + (i * 7919) % 3900;
    let mem = 128 + (i * 104_729) % 8064;
    json!({
        "metadata": {"name": format!("web-{i}"), "namespace": format!("team-{}", i % 17),
                     "labels": {"app": format!("app-{}", i % 50), "tier": "web", "pod-template-hash": "5d8f7c9b6"}},
        "spec": {
            "priority": (i % 3) as i64 * 1000,
            "containers": [
                {"name": "app", "image": "registry.example/app:1.2.3",
                 "resources": {"requests": {"cpu": format!("{cpu}m"), "memory": format!("{mem}Mi")},
                               "limits": {"cpu": format!("{}m", cpu * 2), "memory": format!("{mem}Mi")}}},
                {"name": "proxy", "image": "registry.example/proxy:0.9",
                 "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}
            ],
            "tolerations": [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"kubernetes.io/os": "linux"}
        }
    })
}

fn request_json(catalog: &Catalog) -> String {
    let filter = TypeFilter {
        gpu: false,
        ..TypeFilter::default()
    };
    let types: Vec<_> = catalog
        .instance_types(&filter)
        .filter(|t| (4..=64).contains(&t.vcpu))
        .take(OPTIONS)
        .collect();
    assert_eq!(types.len(), OPTIONS);
    let pods: Vec<Value> = (0..PODS).map(pod).collect();
    let options: Vec<Value> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({"nodeGroupId": format!("ng-{i}-{}", t.name), "nodeCount": 1 + (i % 20), "pods": pods})
        })
        .collect();
    let node_map: serde_json::Map<String, Value> = types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                format!("ng-{i}-{}", t.name),
                json!({
                    "metadata": {"name": format!("template-{i}"), "labels": {
                        "node.kubernetes.io/instance-type": t.name,
                        "kubernetes.io/os": "linux",
                        "karpenter.sh/capacity-type": if i % 2 == 0 { "spot" } else { "on-demand" }}},
                    "status": {
                        "capacity": {"cpu": t.vcpu.to_string(), "memory": format!("{}Mi", t.memory_mib), "pods": "110"},
                        "allocatable": {"cpu": format!("{}m", t.vcpu * 1000 - 100), "memory": format!("{}Mi", t.memory_mib - 512), "pods": "110"}}
                }),
            )
        })
        .collect();
    json!({"options": options, "nodeMap": node_map}).to_string()
}

fn bench(c: &mut Criterion) {
    let catalog = Arc::new(catalog());
    let text = request_json(&catalog);
    let file = DecideRequest::from_json(&text).unwrap();
    let encoded = prost::bytes::Bytes::from(request_to_proto(&file).encode_to_vec());
    eprintln!("request of {} bytes", encoded.len());
    let view = RequestView::parse(encoded.clone()).unwrap();
    let config = ChainConfig {
        pricing: Some(catalog.clone()),
        ..ChainConfig::default()
    };
    let mut group = c.benchmark_group("decide_100x1000");
    group.sample_size(20);
    for chain in ["least-waste", "price,least-waste", "cost"] {
        let expander = Arc::new(Expander::new(chain, &config, 0, 50).unwrap());
        let service = ExpanderService::new(expander.clone(), Metrics::default());
        assert!(!service.decide(&view).unwrap().is_empty());
        group.bench_function(format!("request/{chain}"), |b| {
            b.iter(|| service.answer(black_box(encoded.clone())).unwrap())
        });
        group.bench_function(format!("view/{chain}"), |b| {
            b.iter(|| service.decide(black_box(&view)).unwrap())
        });
        let converted = file.to_request().unwrap();
        group.bench_function(format!("chain_only/{chain}"), |b| {
            b.iter(|| expander.decide(black_box(&converted)).unwrap())
        });
    }
    group.bench_function("read", |b| {
        b.iter(|| RequestView::parse(black_box(encoded.clone())).unwrap())
    });
    let expander = Expander::new("least-waste", &config, 0, 50).unwrap();
    group.bench_function("json_file/least-waste", |b| {
        b.iter(|| {
            let r = DecideRequest::from_json(black_box(&text))
                .unwrap()
                .to_request()
                .unwrap();
            expander.decide(&r).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
