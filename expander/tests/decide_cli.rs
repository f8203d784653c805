//! `tailor-expander decide` end to end: the real binary on request files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rstest::rstest;
use std::path::PathBuf;
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn decide(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tailor-expander"))
        .arg("decide")
        .args(args)
        .current_dir(fixture(""))
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

const PRICED: &[&str] = &["--catalog", "catalog.csv", "--overrides", "overrides.yaml"];

#[rstest]
#[case::least_waste("least-waste.json", "least-waste", &[], "least-waste.expected.json")]
#[case::priority_price(
    "price.json",
    "priority,price,least-waste",
    &["--priorities", "priorities.yaml", "--cluster-node-count", "10"],
    "price.expected.json"
)]
#[case::cost("cost.json", "cost", &[], "cost.expected.json")]
fn golden_json(
    #[case] request: &str,
    #[case] chain: &str,
    #[case] extra: &[&str],
    #[case] expected: &str,
) {
    let mut args = vec!["--options", request, "--expander", chain];
    args.extend_from_slice(PRICED);
    args.extend_from_slice(extra);
    let got = stdout(&decide(&args));
    let want = std::fs::read_to_string(fixture(expected)).unwrap();
    assert_eq!(got, want);
}

#[test]
fn golden_table() {
    let mut args = vec![
        "--options",
        "price.json",
        "--expander",
        "priority,price,least-waste",
        "--priorities",
        "priorities.yaml",
        "--cluster-node-count",
        "10",
        "--format",
        "table",
    ];
    args.extend_from_slice(PRICED);
    let got = stdout(&decide(&args));
    assert_eq!(
        got,
        std::fs::read_to_string(fixture("price.expected.txt")).unwrap()
    );
    assert!(
        got.contains("legacy                        0  dropped"),
        "{got}"
    );
}

#[test]
fn golden_scores_follow_the_formulas() {
    // The cost example of docs/expander.md: $/h of the nodes per $/h of requests.
    let mut args = vec!["--options", "cost.json", "--expander", "cost"];
    args.extend_from_slice(PRICED);
    let v: serde_json::Value = serde_json::from_str(&stdout(&decide(&args))).unwrap();
    let pods = 4.0 * (1.2 * 0.04 + 2.0 * 0.005);
    let small = v["steps"][0]["scores"]["small"].as_f64().unwrap();
    let large = v["steps"][0]["scores"]["large"].as_f64().unwrap();
    assert!((small - 4.0 * 0.096 / pods).abs() < 1e-12, "{small}");
    assert!((large - 2.0 * 0.17 / pods).abs() < 1e-12, "{large}");
    assert_eq!(v["best"], serde_json::json!(["large"]));

    // least-waste over capacity: (4-2)/4 + (16-2)/16 for b.
    let v: serde_json::Value = serde_json::from_str(&stdout(&decide(&[
        "--options",
        "least-waste.json",
        "--expander",
        "least-waste",
    ])))
    .unwrap();
    assert_eq!(v["steps"][0]["scores"]["b"], 0.5 + 0.875);
}

#[test]
fn the_real_catalog_prices_the_request() {
    let data = std::env::var("TAILOR_SHARED_DATA")
        .unwrap_or_else(|_| format!("{}/../../../shared/data", env!("CARGO_MANIFEST_DIR")));
    let csv = format!("{data}/aws/aws-ec2-us-east-1.csv");
    assert!(
        std::path::Path::new(&csv).exists(),
        "{csv} is missing; set TAILOR_SHARED_DATA"
    );
    let out = decide(&[
        "--options",
        "price.json",
        "--expander",
        "price,least-waste",
        "--catalog",
        &csv,
        "--cluster-node-count",
        "10",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    // c6i.xlarge ($0.17) beats two-CPU m6i.large nodes and m6i.xlarge ($0.192).
    assert_eq!(v["best"], serde_json::json!(["pool-c6i-xlarge"]));
    assert_eq!(v["steps"][0]["scores"].as_object().unwrap().len(), 4);
}

#[test]
fn random_last_returns_one_reproducibly() {
    let run = |seed: &str| {
        stdout(&decide(&[
            "--options",
            "least-waste.json",
            "--expander",
            "least-nodes,random",
            "--seed",
            seed,
        ]))
    };
    let v: serde_json::Value = serde_json::from_str(&run("5")).unwrap();
    assert_eq!(v["best"].as_array().unwrap().len(), 1);
    assert_eq!(v["steps"][1]["strategy"], "random");
    assert_eq!(run("5"), run("5"));
}

#[rstest]
#[case::empty_options(&["--options", "empty.json", "--expander", "least-waste"], "empty.json: the request has no options")]
#[case::unknown_group(
    &["--options", "unknown-group.json", "--expander", "least-waste"],
    "unknown-group.json: option 2 names node group \"c\", which has no node in nodeMap"
)]
#[case::malformed_catalog(
    &["--options", "least-waste.json", "--expander", "price", "--catalog", "bad-catalog.csv"],
    "bad-catalog.csv: catalog CSV line 3, field \"vcpu\": \"four\" is not a whole number"
)]
#[case::bad_chain(
    &["--options", "least-waste.json", "--expander", "random,price"],
    "--expander: expander \"random\" must be last, but is entry 1 of 2"
)]
#[case::unknown_strategy(
    &["--options", "least-waste.json", "--expander", "least-waste,cheapest"],
    "--expander: unknown expander \"cheapest\" at entry 2"
)]
#[case::price_without_catalog(
    &["--options", "least-waste.json", "--expander", "price"],
    "needs a pricing model (a price catalog), and none is configured"
)]
#[case::bad_priorities(
    &["--options", "least-waste.json", "--expander", "priority", "--priorities", "catalog.csv"],
    "catalog.csv: priority expander configuration is not a map"
)]
#[case::missing_file(&["--options", "nope.json", "--expander", "least-waste"], "reading nope.json: ")]
#[case::not_a_request(
    &["--options", "priorities.yaml", "--expander", "least-waste"],
    "priorities.yaml: request is not a BestOptionsRequest: "
)]
#[case::bad_spot_discount(
    &["--options", "cost.json", "--expander", "cost", "--spot-discount", "1.5"],
    "--spot-discount: must be a fraction in [0, 1)"
)]
fn bad_input_fails_clearly(#[case] args: &[&str], #[case] message: &str) {
    let out = decide(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
}

#[test]
fn command_line_is_consistent() {
    use clap::CommandFactory as _;
    tailor_expander::Cli::command().debug_assert();
}
