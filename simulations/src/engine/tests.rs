//! Engine invariants, end-to-end runs and determinism.

use super::*;
use crate::scenario::Scenario;
use proptest::prelude::*;
use rstest::rstest;
use std::path::PathBuf;

fn scenario(yaml: &str) -> Scenario {
    Scenario::from_yaml("test.yaml", yaml).unwrap()
}

fn checked(s: &Scenario) -> Outcome {
    run_with(
        s,
        "baseline",
        Path::new("."),
        RunOptions {
            check_invariants: true,
        },
    )
    .unwrap()
}

/// Σ node-hours × price, from the node ledger alone.
fn ledger_cost(o: &Outcome, end: i64) -> f64 {
    o.nodes
        .iter()
        .filter(|n| n.billed)
        .map(|n| {
            #[allow(clippy::cast_precision_loss)]
            let secs = (n.removed_at.unwrap_or(end).min(end) - n.requested_at) as f64;
            secs / 3600.0 * o.group_prices[n.group]
        })
        .sum()
}

fn end_of(s: &Scenario) -> i64 {
    #[allow(clippy::cast_possible_wrap)]
    let steps = demand::step_count(s) as i64;
    steps * s.step.seconds()
}

const TWO_GROUPS: &str = "name: two
seed: 7
duration: 2d
step: 5m
workloads:
  - name: web
    synthetic: {kind: diurnal-web, peakCores: 10, baseMemory: 4Gi}
    requests: {cpu: 500m, memory: 1Gi}
    limits: {cpu: \"1\", memory: 3Gi}
    replicas: 3
    hpa:
      minReplicas: 2
      maxReplicas: 30
      metrics:
        - type: Resource
          resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
  - name: batch
    synthetic: {kind: bursty-batch, peakCores: 6, baseMemory: 4Gi}
    requests: {cpu: \"1\", memory: 2Gi}
    replicas: 3
    interruptionTolerant: true
    vpa: {updateMode: Recreate}
  - name: leaky
    synthetic: {kind: memory-leak, peakCores: 1, baseMemory: 1Gi}
    requests: {cpu: 250m, memory: 512Mi}
    limits: {cpu: 500m, memory: 1Gi}
    replicas: 2
nodeGroups:
  - name: od
    instanceType: m6i.xlarge
    minSize: 1
    maxSize: 20
    cpu: \"4\"
    memory: 16Gi
    pricePerHour: 0.192
  - name: spot
    instanceType: m6i.xlarge
    capacityType: spot
    maxSize: 20
    cpu: \"4\"
    memory: 16Gi
    pricePerHour: 0.07
expander: priority,least-waste
priorities:
  20: [\"^spot$\"]
  10: [\"^od$\"]
spot:
  interruptionsPerNodeDay: 2
  outages:
    - {start: 2h, duration: 36h}
";

#[test]
fn builtin_runs_with_invariants_and_documented_fields() {
    let s = Scenario::builtin().unwrap();
    let o = checked(&s);
    let r = &o.report;
    assert_eq!(r.steps.len(), demand::step_count(&s));
    let json: serde_json::Value = serde_json::from_str(&r.summary_json().unwrap()).unwrap();
    for field in [
        "total_cost_usd",
        "lower_bound_usage_usd",
        "lower_bound_requests_usd",
        "unserved_cpu_core_hours",
        "unserved_cpu_fraction",
        "oom_kills",
        "pending_pod_minutes",
        "relative_slack_mean",
        "evictions",
        "resizes",
        "node_scale_ups",
        "node_scale_downs",
    ] {
        assert!(json.get(field).is_some(), "summary.json lacks {field}");
    }
    let sm = &r.summary;
    assert!(sm.total_cost_usd > 0.0);
    assert!(sm.lower_bound_usage_usd > 0.0);
    assert!(sm.total_cost_usd >= sm.lower_bound_usage_usd);
    // The HPA workload scales with the day: more replicas at some point than at the start.
    assert!(r.steps.iter().map(|x| x.replicas).max() > r.steps.first().map(|x| x.replicas));
    // The VPA workloads get updated.
    assert!(sm.evictions + sm.resizes > 0);
    assert!(sm.node_scale_ups > 0 && sm.node_scale_downs > 0);
}

#[test]
fn cost_is_node_hours_times_price() {
    let s = scenario(TWO_GROUPS);
    let o = checked(&s);
    let want = ledger_cost(&o, end_of(&s));
    let got = o.report.summary.total_cost_usd;
    assert!((got - want).abs() < 1e-9 * want.max(1.0), "{got} vs {want}");
    let per_step: f64 = o.report.steps.iter().map(|x| x.cost_usd).sum();
    assert!((per_step - got).abs() < 1e-9 * got.max(1.0));
}

#[test]
fn demand_is_served_plus_unserved() {
    let s = scenario(TWO_GROUPS);
    let o = checked(&s);
    let demand: f64 = o.report.steps.iter().map(|x| x.demanded_cpu_cores).sum();
    let served: f64 = o.report.steps.iter().map(|x| x.used_cpu_cores).sum();
    let unserved: f64 = o.unserved_cpu_cores.iter().sum();
    assert!(
        (demand - served - unserved).abs() < 1e-6,
        "{demand} {served} {unserved}"
    );
    #[allow(clippy::cast_precision_loss)]
    let hours = s.step.seconds() as f64 / 3600.0;
    assert!((unserved * hours - o.report.summary.unserved_cpu_core_hours).abs() < 1e-6);
}

const SPOT_ONLY: &str = "name: spot
seed: 3
duration: 2d
step: 5m
workloads:
  - name: batch
    synthetic: {kind: bursty-batch, peakCores: 6, baseMemory: 4Gi}
    requests: {cpu: \"1\", memory: 2Gi}
    replicas: 6
    interruptionTolerant: true
nodeGroups:
  - name: od
    instanceType: m6i.xlarge
    maxSize: 20
    cpu: \"4\"
    memory: 16Gi
    pricePerHour: 0.192
  - name: spot
    instanceType: m6i.xlarge
    capacityType: spot
    maxSize: 20
    cpu: \"4\"
    memory: 16Gi
    pricePerHour: 0.07
expander: priority
priorities:
  20: [\"^spot$\"]
  10: [\"^od$\"]
spot:
  interruptionsPerNodeDay: 6
  outages:
    - {start: 2h, duration: 36h}
";

#[test]
fn spot_outage_falls_back_to_on_demand() {
    let s = scenario(SPOT_ONLY);
    let o = checked(&s);
    // Spot first, while there is capacity.
    assert!(o.nodes.iter().any(|n| n.group == 1 && n.ready_at.is_some()));
    // A spot request during the outage never arrived and was not billed.
    let failed: Vec<&NodeRecord> = o
        .nodes
        .iter()
        .filter(|n| n.group == 1 && !n.billed)
        .collect();
    assert!(
        !failed.is_empty(),
        "no spot request failed during the outage"
    );
    assert!(
        failed
            .iter()
            .all(|n| n.requested_at >= 2 * 3600 && n.requested_at < 38 * 3600)
    );
    // On-demand took over during the outage.
    assert!(
        o.nodes
            .iter()
            .any(|n| n.group == 0 && n.requested_at >= 2 * 3600 && n.requested_at < 38 * 3600)
    );
    assert!(o.report.summary.pending_pod_minutes > 0.0);
    let want = ledger_cost(&o, end_of(&s));
    assert!((o.report.summary.total_cost_usd - want).abs() < 1e-9);
}

#[test]
fn waste_split_adds_up() {
    let s = scenario(TWO_GROUPS);
    let sm = checked(&s).report.summary;
    let w = &sm.waste;
    let total = w.sizing_slack_usd + w.packing_loss_usd + w.scale_down_lag_usd;
    assert!((total - (sm.total_cost_usd - sm.lower_bound_usage_usd)).abs() < 1e-9);
}

#[test]
fn tight_memory_limits_oom() {
    let yaml = TWO_GROUPS.replace(
        "limits: {cpu: 500m, memory: 1Gi}",
        "limits: {cpu: 500m, memory: 600Mi}",
    );
    let sm = checked(&scenario(&yaml)).report.summary;
    assert!(sm.oom_kills > 0);
    assert!(sm.relative_oom_rate > 0.0);
}

#[rstest]
#[case(1)]
#[case(99)]
fn same_seed_same_report(#[case] seed: u64) {
    let mut s = scenario(TWO_GROUPS);
    s.seed = seed;
    let a = run(&s, "baseline", Path::new(".")).unwrap();
    let b = run(&s, "baseline", Path::new(".")).unwrap();
    let mut ca = Vec::new();
    let mut cb = Vec::new();
    a.write_csv(&mut ca).unwrap();
    b.write_csv(&mut cb).unwrap();
    assert_eq!(ca, cb);
    assert_eq!(a.summary_json().unwrap(), b.summary_json().unwrap());
    assert_eq!(a.html(), b.html());
}

#[test]
fn strategies_change_the_outcome() {
    let s = Scenario::builtin().unwrap();
    let strat = s
        .strategies
        .iter()
        .find(|x| x.name == "right-sized")
        .unwrap();
    let changed = setup::with_strategy(&s, Some(strat));
    assert!(changed.workloads.iter().all(|w| {
        w.vpa
            .as_ref()
            .is_some_and(|v| v.update_mode == UpdateMode::InPlaceOrRecreate)
    }));
    let base = setup::with_strategy(&s, None);
    assert_eq!(base, s);
}

fn bitbrains(n: usize) -> Option<PathBuf> {
    let p = crate::shared_data_dir().join(format!("traces/bitbrains-rnd-2013-08/{n}.csv.gz"));
    p.exists().then_some(p)
}

/// The fluid bound by hand: the cheapest single type or pair mix covering `(c, m)`.
fn independent_bound(types: &[(f64, f64, f64)], c: f64, m: f64) -> f64 {
    if c <= 0.0 && m <= 0.0 {
        return 0.0;
    }
    let mut best = f64::INFINITY;
    for &(tc, tm, p) in types {
        best = best.min((c / tc).max(m / tm) * p);
    }
    for (i, &(c1, m1, p1)) in types.iter().enumerate() {
        for &(c2, m2, p2) in &types[i + 1..] {
            // x·(c1,m1) + y·(c2,m2) = (c,m), x,y ≥ 0.
            let det = c1 * m2 - c2 * m1;
            if det.abs() < 1e-12 {
                continue;
            }
            let x = (c * m2 - c2 * m) / det;
            let y = (c1 * m - c * m1) / det;
            if x >= 0.0 && y >= 0.0 {
                best = best.min(x * p1 + y * p2);
            }
        }
    }
    best
}

#[test]
fn bitbrains_lower_bound_matches_an_independent_computation() {
    let paths: Vec<PathBuf> = (1..=3).filter_map(bitbrains).collect();
    assert_eq!(
        paths.len(),
        3,
        "Bitbrains sample missing; set TAILOR_SHARED_DATA"
    );
    let mut yaml = String::from("name: bb\nduration: 3d\nstep: 5m\nworkloads:\n");
    for (i, p) in paths.iter().enumerate() {
        yaml.push_str(&format!(
            "  - name: vm{i}\n    trace: {{path: {}, format: bitbrains}}\n    requests: {{cpu: \"1\", memory: 2Gi}}\n    replicas: 1\n",
            p.display()
        ));
    }
    yaml.push_str(
        "nodeGroups:
  - name: m
    instanceType: m6i.xlarge
    maxSize: 10
    cpu: \"4\"
    memory: 16Gi
    pricePerHour: 0.192
  - name: c
    instanceType: c6i.xlarge
    maxSize: 10
    cpu: \"4\"
    memory: 8Gi
    pricePerHour: 0.17
  - name: r
    instanceType: r6i.large
    maxSize: 10
    cpu: \"2\"
    memory: 16Gi
    pricePerHour: 0.126
",
    );
    let s = scenario(&yaml);
    let o = checked(&s);
    let demand = demand::build(&s, Path::new(".")).unwrap();
    // Allocatable = capacity less the default 100m / 600Mi reservation.
    let gi = 1024.0 * 1024.0 * 1024.0;
    let res_m = 600.0 * 1024.0 * 1024.0;
    let types = [
        (3900.0, 16.0 * gi - res_m, 0.192),
        (3900.0, 8.0 * gi - res_m, 0.17),
        (1900.0, 16.0 * gi - res_m, 0.126),
    ];
    let hours = 300.0 / 3600.0;
    let mut want = 0.0;
    for k in 0..demand::step_count(&s) {
        #[allow(clippy::cast_precision_loss)]
        let c: f64 = demand.iter().map(|d| d.cpu_millis[k] as f64).sum();
        #[allow(clippy::cast_precision_loss)]
        let m: f64 = demand.iter().map(|d| d.memory_bytes[k] as f64).sum();
        want += independent_bound(&types, c, m) * hours;
    }
    let got = o.report.summary.lower_bound_usage_usd;
    assert!(want > 0.0);
    assert!((got - want).abs() < 1e-6 * want, "{got} vs {want}");
    assert!(o.report.summary.total_cost_usd >= got);
    // Fixed requests of 1 core / 2 GiB per VM: the request bound is constant per step.
    let per_step = independent_bound(&types, 3000.0, 6.0 * gi) * hours;
    #[allow(clippy::cast_precision_loss)]
    let want_r = per_step * demand::step_count(&s) as f64;
    assert!((o.report.summary.lower_bound_requests_usd - want_r).abs() < 1e-6 * want_r);
}

fn arb_scenario() -> impl Strategy<Value = String> {
    let workload = (
        0usize..4,
        1u32..6,
        100i64..2000,
        256i64..3000,
        prop::bool::ANY,
        prop::bool::ANY,
        0usize..3,
    );
    (
        prop::collection::vec(workload, 1..4),
        0u32..3,
        1u32..8,
        0u64..1000,
        0.0f64..5.0,
        prop::bool::ANY,
    )
        .prop_map(|(ws, min_od, max_spot, seed, intr, outage)| {
            let kinds = ["diurnal-web", "bursty-batch", "memory-leak", "idle-heavy"];
            let modes = ["Recreate", "InPlaceOrRecreate", "Initial"];
            let mut y = format!("name: p\nseed: {seed}\nduration: 12h\nstep: 5m\nworkloads:\n");
            for (i, (kind, replicas, cpu, mem, hpa, tolerant, mode)) in ws.into_iter().enumerate() {
                y.push_str(&format!(
                    "  - name: w{i}\n    synthetic: {{kind: {}, peakCores: 3, baseMemory: 1Gi}}\n    requests: {{cpu: {cpu}m, memory: {mem}Mi}}\n    limits: {{cpu: \"2\", memory: 3Gi}}\n    replicas: {replicas}\n    interruptionTolerant: {tolerant}\n",
                    kinds[kind]
                ));
                if hpa {
                    y.push_str("    hpa: {minReplicas: 1, maxReplicas: 12, metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}]}\n");
                } else {
                    y.push_str(&format!("    vpa: {{updateMode: {}}}\n", modes[mode]));
                }
            }
            y.push_str(&format!(
                "nodeGroups:
  - name: od
    instanceType: m6i.xlarge
    minSize: {min_od}
    maxSize: 12
    cpu: \"4\"
    memory: 16Gi
    pricePerHour: 0.192
  - name: spot
    instanceType: m6i.large
    capacityType: spot
    maxSize: {max_spot}
    cpu: \"2\"
    memory: 8Gi
    pricePerHour: 0.04
expander: price
spot:
  interruptionsPerNodeDay: {intr}
  outagesPerDay: {}
  outageDuration: 2h
scaleDown: {{unneededTime: 10m, delayAfterAdd: 5m}}
",
                if outage { 2 } else { 0 }
            ));
            y
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_scenarios_keep_invariants(yaml in arb_scenario()) {
        let s = scenario(&yaml);
        // check_invariants: no node over allocatable, pods only on live ready
        // nodes, per-step demand = served + unserved.
        let o = checked(&s);
        let want = ledger_cost(&o, end_of(&s));
        let got = o.report.summary.total_cost_usd;
        prop_assert!((got - want).abs() < 1e-9 * want.max(1.0), "cost {} vs ledger {}", got, want);
        let sm = &o.report.summary;
        let w = &sm.waste;
        prop_assert!((w.sizing_slack_usd + w.packing_loss_usd + w.scale_down_lag_usd
            - (sm.total_cost_usd - sm.lower_bound_usage_usd)).abs() < 1e-9);
        prop_assert!(sm.unserved_cpu_fraction >= 0.0 && sm.unserved_cpu_fraction <= 1.0 + 1e-12);
        for st in &o.report.steps {
            prop_assert!(st.used_cpu_cores <= st.demanded_cpu_cores + 1e-9);
        }
    }
}
