//! The `tailor-sim` binary end to end: run, compare, shard + merge, errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tailor-sim"))
        .args(args)
        .output()
        .expect("run tailor-sim")
}

fn ok(args: &[&str]) -> String {
    let out = sim(args);
    assert!(
        out.status.success(),
        "tailor-sim {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

const SMALL: &str = "name: small
seed: 5
duration: 1d
step: 5m
workloads:
  - name: web
    synthetic: {kind: diurnal-web, peakCores: 4, baseMemory: 2Gi}
    requests: {cpu: 500m, memory: 1Gi}
    replicas: 2
    hpa:
      minReplicas: 1
      maxReplicas: 10
      metrics:
        - type: Resource
          resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
nodeGroups:
  - name: od
    instanceType: m6i.xlarge
    minSize: 1
    maxSize: 10
    cpu: \"4\"
    memory: 16Gi
    pricePerHour: 0.192
strategies:
  - name: hot
    workloads:
      web:
        hpa:
          minReplicas: 1
          maxReplicas: 10
          metrics:
            - type: Resource
              resource: {name: cpu, target: {type: Utilization, averageUtilization: 90}}
  - name: fixed
    workloads:
      web: {replicas: 6, hpa: null}
";

#[test]
fn run_builtin_writes_outputs_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let table = ok(&["run", "--out", a.to_str().unwrap()]);
    assert!(table.contains("total cost"), "{table}");
    ok(&["run", "--out", b.to_str().unwrap()]);
    for f in ["timeseries.csv", "summary.json", "report.html"] {
        assert_eq!(
            read(&a.join(f)),
            read(&b.join(f)),
            "{f} differs between runs"
        );
    }
    let summary: serde_json::Value =
        serde_json::from_slice(&read(&a.join("summary.json"))).unwrap();
    assert_eq!(summary["scenario"], "builtin");
    assert!(summary["total_cost_usd"].as_f64().unwrap() > 0.0);
}

#[test]
fn seed_changes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    ok(&["run", "--out", a.to_str().unwrap(), "--seed", "1"]);
    ok(&["run", "--out", b.to_str().unwrap(), "--seed", "2"]);
    assert_ne!(
        read(&a.join("timeseries.csv")),
        read(&b.join("timeseries.csv"))
    );
}

#[test]
fn compare_shard_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("small.yaml");
    std::fs::write(&file, SMALL).unwrap();
    let f = file.to_str().unwrap();
    let full = dir.path().join("full");
    let table = ok(&["compare", "--scenario", f, "--out", full.to_str().unwrap()]);
    for name in ["baseline", "hot", "fixed"] {
        assert!(table.contains(name), "{table}");
    }
    assert!(table.contains('*'));
    let csv = String::from_utf8(read(&full.join("compare.csv"))).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let mut shard_dirs = Vec::new();
    for i in 0..2 {
        let d = dir.path().join(format!("shard{i}"));
        let shard = format!("{i}/2");
        ok(&[
            "compare",
            "--scenario",
            f,
            "--shard",
            &shard,
            "--out",
            d.to_str().unwrap(),
        ]);
        shard_dirs.push(d);
    }
    let merged = dir.path().join("merged");
    ok(&[
        "merge",
        shard_dirs[0].to_str().unwrap(),
        shard_dirs[1].to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    // JSON floats re-parsed by merge may differ in the last bit; the CSV
    // (fixed precision) must match byte for byte, the JSON to 1e-12.
    let a: serde_json::Value = serde_json::from_slice(&read(&merged.join("compare.json"))).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&read(&full.join("compare.json"))).unwrap();
    assert_json_close(&a, &b);
    assert_eq!(
        read(&merged.join("compare.csv")),
        read(&full.join("compare.csv"))
    );
    // The same shard twice is a duplicate.
    let out = sim(&[
        "merge",
        shard_dirs[0].to_str().unwrap(),
        shard_dirs[0].to_str().unwrap(),
        "--out",
        dir.path().join("dup").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("appears in two inputs"));
}

fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-12 * x.abs().max(1.0), "{x} vs {y}");
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).for_each(|(x, y)| assert_json_close(x, y));
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
            x.iter().for_each(|(k, v)| assert_json_close(v, &y[k]));
        }
        _ => assert_eq!(a, b),
    }
}

#[test]
fn bad_scenario_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        SMALL.replace("maxSize: 10\n    cpu", "maxSize: 0\n    cpu"),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = sim(&[
        "run",
        "--scenario",
        file.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:"), "{err}");
    assert!(err.contains("nodeGroups[od].maxSize"), "{err}");
    assert!(!out_dir.exists(), "a failed run left an output directory");
}

#[test]
fn unknown_strategy_and_missing_file_fail() {
    let dir = tempfile::tempdir().unwrap();
    let out = sim(&[
        "run",
        "--strategy",
        "nope",
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no strategy named \"nope\""));
    let out = sim(&[
        "run",
        "--scenario",
        "/nonexistent/s.yaml",
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/s.yaml"));
}
