#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A test whose component is missing fails, and says how to install it.
//!
//! Each case re-runs one test of this binary in a child process with the binary
//! hidden (env cannot be changed safely inside a running test process).

use std::process::Command;

use tailor_testkit::{Moto, OpenMetrics, Prometheus};

/// Runs the test `name` of this binary with `env` and returns (success, output).
fn run_child(name: &str, env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", name, "--nocapture"])
        .env_remove("TAILOR_PROMETHEUS")
        .env_remove("TAILOR_PROMTOOL")
        .env_remove("TAILOR_MOTO_SERVER");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test]
async fn starts_prometheus() {
    Prometheus::builder().start().await.unwrap();
}

#[tokio::test]
async fn starts_prometheus_with_backfill() {
    let mut data = OpenMetrics::new();
    data.gauge("tailor_test_g", &[], [(1_000, 1.0)]).unwrap();
    Prometheus::builder().backfill(data).start().await.unwrap();
}

#[tokio::test]
async fn starts_moto() {
    Moto::start().await.unwrap();
}

#[test]
fn missing_prometheus_fails_with_install_hint() {
    let (ok, output) = run_child("starts_prometheus", &[("PATH", "/nonexistent")]);
    assert!(!ok, "{output}");
    assert!(
        output.contains(
            "prometheus not found: run scripts/test (it installs it) or `apt-get install prometheus`"
        ),
        "{output}"
    );
}

#[test]
fn missing_moto_fails_with_install_hint() {
    let (ok, output) = run_child("starts_moto", &[("PATH", "/nonexistent")]);
    assert!(!ok, "{output}");
    assert!(
        output.contains(
            "moto_server not found: run scripts/test (it installs it) or `pip install 'moto[server]'`"
        ),
        "{output}"
    );
}

#[test]
fn bad_override_fails_naming_the_variable() {
    let (ok, output) = run_child(
        "starts_prometheus",
        &[("TAILOR_PROMETHEUS", "/nonexistent/prometheus")],
    );
    assert!(!ok, "{output}");
    assert!(
        output.contains("TAILOR_PROMETHEUS=\"/nonexistent/prometheus\" is not an executable file"),
        "{output}"
    );
}

#[test]
fn override_is_used() {
    // An override that exists but is not Prometheus: it exits at once, and the
    // error names the command and shows its output.
    let (ok, output) = run_child("starts_prometheus", &[("TAILOR_PROMETHEUS", "/bin/false")]);
    assert!(!ok, "{output}");
    assert!(output.contains("`/bin/false --config.file="), "{output}");
    assert!(output.contains("before it was ready on port"), "{output}");
}

#[test]
fn failing_promtool_is_reported_with_its_command() {
    let (ok, output) = run_child(
        "starts_prometheus_with_backfill",
        &[("TAILOR_PROMTOOL", "/bin/false")],
    );
    assert!(!ok, "{output}");
    assert!(
        output.contains("`/bin/false tsdb create-blocks-from openmetrics --quiet "),
        "{output}"
    );
    assert!(output.contains("failed (exit status: 1)"), "{output}");
}
