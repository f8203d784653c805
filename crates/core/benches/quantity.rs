#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Quantity parsing and printing, which sit on admission and metrics request paths.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tailor_core::quantity::{Format, Quantity, cpu_millis, format_memory_bytes};

const INPUTS: [&str; 8] = [
    "100m", "1500m", "2", "128Mi", "1Gi", "0.5Gi", "262144k", "1.5e3",
];

fn parse(c: &mut Criterion) {
    c.bench_function("parse 8 typical quantities", |b| {
        b.iter(|| {
            for s in INPUTS {
                black_box(Quantity::parse(black_box(s)).unwrap());
            }
        });
    });
    c.bench_function("cpu_millis(\"250m\")", |b| {
        b.iter(|| cpu_millis(black_box("250m")).unwrap());
    });
    c.bench_function("parse long fraction", |b| {
        b.iter(|| Quantity::parse(black_box("0.123456789012345678901234567890Gi")).unwrap());
    });
}

fn format(c: &mut Criterion) {
    let quantities: Vec<Quantity> = INPUTS.iter().map(|s| Quantity::parse(s).unwrap()).collect();
    c.bench_function("format 8 typical quantities", |b| {
        b.iter(|| {
            for q in &quantities {
                black_box(q.to_string());
            }
        });
    });
    c.bench_function("format_memory_bytes(128Mi)", |b| {
        b.iter(|| format_memory_bytes(black_box(134_217_728)));
    });
    c.bench_function("from_int DecimalSI to_string", |b| {
        b.iter(|| Quantity::from_int(black_box(262_144_000), Format::DecimalSI).to_string());
    });
}

criterion_group!(benches, parse, format);
criterion_main!(benches);
