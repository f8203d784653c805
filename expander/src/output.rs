//! Rendering a decision: JSON for machines, a table for a person debugging it.

use crate::engine::{Explanation, Request};
use std::fmt::Write as _;
use tailor_core::quantity::{format_cpu_millis, format_memory_bytes};
use tailor_core::resources::Resources;

/// The `decide` JSON document, pretty-printed.
pub fn json(explanation: &Explanation, request: &Request) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&explanation.to_output(request))
}

fn score(s: f64) -> String {
    if s.fract() == 0.0 && s.abs() < 1e15 {
        format!("{s:.0}")
    } else {
        format!("{s:.6}")
    }
}

/// A step-by-step explanation for a person.
#[must_use]
pub fn table(explanation: &Explanation, request: &Request, chain: &str) -> String {
    let mut out = String::new();
    let width = request
        .options
        .iter()
        .map(|o| o.node_group_id.len())
        .max()
        .unwrap_or(0)
        .max("GROUP".len());
    let _ = writeln!(out, "chain: {chain}");
    let _ = writeln!(out, "\noptions ({}):", request.options.len());
    let _ = writeln!(
        out,
        "  {:<width$}  {:>5}  {:>5}  {:>10}  {:>10}  {:>10}  {:>10}",
        "GROUP", "NODES", "PODS", "POD CPU", "POD MEM", "NODE CPU", "NODE MEM"
    );
    for o in &request.options {
        let requested = o
            .pods
            .iter()
            .fold(Resources::ZERO, |acc, p| acc.saturating_add(p.requests));
        let (cpu, mem) = request
            .templates
            .get(&o.node_group_id)
            .map(|t| {
                (
                    format_cpu_millis(t.allocatable.cpu_millis),
                    format_memory_bytes(t.allocatable.memory_bytes),
                )
            })
            .unwrap_or_else(|| ("-".into(), "-".into()));
        let _ = writeln!(
            out,
            "  {:<width$}  {:>5}  {:>5}  {:>10}  {:>10}  {:>10}  {:>10}",
            o.node_group_id,
            o.node_count,
            o.pods.len(),
            format_cpu_millis(requested.cpu_millis),
            format_memory_bytes(requested.memory_bytes),
            cpu,
            mem,
        );
    }
    for (n, step) in explanation.steps.iter().enumerate() {
        let what = match step.strategy.as_str() {
            "random" => "  (seeded pick among ties)",
            "least-waste" | "price" | "cost" | "least-nodes" => "  (lowest score wins)",
            "most-pods" | "priority" => "  (highest score wins)",
            _ => "",
        };
        let _ = writeln!(out, "\nstep {}: {}{what}", n + 1, step.strategy);
        let mut ids: Vec<&str> = step
            .scores
            .keys()
            .chain(step.dropped.keys())
            .map(String::as_str)
            .collect();
        if step.strategy == "random" {
            ids = step.survivors.iter().map(String::as_str).collect();
        }
        // Show the options in request order.
        ids.sort_by_key(|id| {
            request
                .options
                .iter()
                .position(|o| o.node_group_id == *id)
                .unwrap_or(usize::MAX)
        });
        ids.dedup();
        for id in ids {
            let kept = step.survivors.iter().any(|s| s == id);
            let verdict = match step.dropped.get(id) {
                Some(why) => format!("dropped: {why}"),
                None if kept => "kept".into(),
                None => "dropped".into(),
            };
            let s = step
                .scores
                .get(id)
                .map_or_else(|| "-".into(), |s| score(*s));
            let _ = writeln!(out, "  {id:<width$}  {s:>14}  {verdict}");
        }
    }
    let name = |i: usize| request.options[i].node_group_id.as_str();
    let best: Vec<&str> = explanation.best.iter().map(|&i| name(i)).collect();
    let _ = writeln!(
        out,
        "\nbest: {}",
        if best.is_empty() {
            "(none)".into()
        } else {
            best.join(", ")
        }
    );
    if let Some(c) = explanation.chosen {
        let _ = writeln!(out, "chosen: {}", name(c));
    }
    out
}
