//! Expander decision cost: the `price,least-waste` chain over 100 node groups
//! (real EC2 types and prices) and 1,000 pending pods. Budget: ≤ 10 ms.
//!
//! Reads the catalog from `$TAILOR_SHARED_DATA/aws/aws-ec2-us-east-1.csv`,
//! falling back to `../../../shared/data` relative to this crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use tailor_core::catalog::{Catalog, TypeFilter};
use tailor_core::expander::{
    Chain, ChainConfig, ExpansionContext, ExpansionOption, NodeTemplate, PricingModel,
};
use tailor_core::resources::Resources;
use tailor_core::scheduling::{PodRequest, pack_first_fit_decreasing};

const MIB: i64 = 1024 * 1024;

fn catalog() -> Catalog {
    let base = std::env::var("TAILOR_SHARED_DATA")
        .unwrap_or_else(|_| format!("{}/../../../shared/data", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{base}/aws/aws-ec2-us-east-1.csv");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {path} (set TAILOR_SHARED_DATA): {e}"));
    Catalog::from_csv(&text).unwrap()
}

struct Setup {
    templates: HashMap<String, NodeTemplate>,
    options: Vec<ExpansionOption>,
    pods: Vec<PodRequest>,
    catalog: Arc<Catalog>,
}

fn setup() -> Setup {
    let catalog = catalog();
    let filter = TypeFilter {
        gpu: false,
        bare_metal: false,
        ..TypeFilter::default()
    };
    // 100 node groups: every fifth eligible type, so sizes and families vary.
    let types: Vec<_> = catalog
        .instance_types(&filter)
        .step_by(5)
        .take(100)
        .cloned()
        .collect();
    assert_eq!(types.len(), 100);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let pods: Vec<PodRequest> = (0..1000)
        .map(|i| {
            let cpu = rng.random_range(50..2000);
            let mem = rng.random_range(64..4096) * MIB;
            PodRequest::new(format!("ns/pod-{i}"), Resources::new(cpu, mem))
        })
        .collect();
    let mut templates = HashMap::new();
    let mut options = Vec::new();
    for t in &types {
        let mut template = NodeTemplate {
            capacity: t.resources(),
            allocatable: t.resources(),
            max_pods: 110,
            exists: true,
            ..NodeTemplate::default()
        };
        template.price.instance_types = vec![t.name.clone()];
        let packing = pack_first_fit_decreasing(&pods, &template.shape(), None);
        options.push(ExpansionOption {
            node_group_id: t.name.clone(),
            node_count: u32::try_from(packing.node_count()).unwrap(),
            pods: packing.placed().map(|i| pods[i].clone()).collect(),
            debug: String::new(),
        });
        templates.insert(t.name.clone(), template);
    }
    Setup {
        templates,
        options,
        pods,
        catalog: Arc::new(catalog),
    }
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let pricing: Arc<dyn PricingModel> = s.catalog.clone();
    let config = ChainConfig {
        pricing: Some(pricing),
        ..ChainConfig::default()
    };
    let ctx = ExpansionContext {
        templates: &s.templates,
        cluster_node_count: 50,
        seed: 1,
    };
    for spec in ["price,least-waste", "cost,least-waste"] {
        let chain = Chain::build(spec, &config).unwrap();
        let decision = chain.decide(&s.options, &ctx);
        assert!(decision.chosen.is_some());
        c.bench_function(&format!("decide {spec} 100 options x 1000 pods"), |b| {
            b.iter(|| chain.decide(black_box(&s.options), black_box(&ctx)));
        });
    }
    let (name, eight_cpu) = s
        .templates
        .iter()
        .filter(|(_, t)| t.capacity.cpu_millis == 8000)
        .min_by_key(|(name, _)| name.as_str())
        .unwrap();
    let shape = eight_cpu.shape();
    c.bench_function(&format!("ffd 1000 pods onto {name}"), |b| {
        b.iter(|| pack_first_fit_decreasing(black_box(&s.pods), black_box(&shape), None));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
