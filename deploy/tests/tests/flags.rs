//! The `command` and `args` of every rendered Deployment parse with the
//! binary's own clap definition, so a renamed or removed flag fails here
//! rather than in a crash-looping pod.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use clap::Parser as _;
use serde_json::Value;
use std::collections::BTreeSet;
use tailor_deploy_tests::kustomize::{self, str_at};
use tailor_deploy_tests::repo_root;

/// The binary (and subcommand, when it has one) a container runs.
fn invocation(container: &Value) -> (String, Vec<String>) {
    let command: Vec<&str> = container["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let [binary] = command.as_slice() else {
        panic!("command must be the binary alone: {command:?}");
    };
    let args = container["args"]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    (binary.rsplit('/').next().unwrap().to_owned(), args)
}

/// Parses `args` with the binary's clap definition; `None` for an invocation
/// this test does not know (a new binary or subcommand must be added here).
fn parse(binary: &str, args: &[String]) -> Option<Result<(), clap::Error>> {
    let argv = std::iter::once(binary.to_owned()).chain(args.iter().cloned());
    match (binary, args.first().map(String::as_str)) {
        ("tailor-admission-webhook", _) => {
            Some(tailor_admission_webhook::run::Cli::try_parse_from(argv).map(drop))
        }
        ("tailor-expander", Some("serve" | "aws")) => {
            Some(tailor_expander::cli::Cli::try_parse_from(argv).map(drop))
        }
        ("tailor-recommender", Some("run")) => {
            Some(tailor_recommender::cli::Cli::try_parse_from(argv).map(drop))
        }
        ("tailor-updater", _) => Some(tailor_updater::run::Cli::try_parse_from(argv).map(drop)),
        ("tailor-metrics-adapter", _) => {
            Some(tailor_metrics_adapter::run::Cli::try_parse_from(argv).map(drop))
        }
        _ => None,
    }
}

#[test]
fn deployment_args_parse_with_each_binarys_clap() {
    let mut unchecked = BTreeSet::new();
    let mut checked = 0;
    for overlay in std::fs::read_dir(repo_root().join("deploy/overlays")).unwrap() {
        let objects = kustomize::build(&overlay.unwrap().path()).unwrap();
        for d in objects
            .iter()
            .filter(|o| str_at(o, &["kind"]) == "Deployment")
        {
            for container in d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
            {
                let (binary, args) = invocation(container);
                match parse(&binary, &args) {
                    Some(Ok(())) => checked += 1,
                    Some(Err(err)) => panic!(
                        "{}: `{binary} {}` does not parse:\n{err}",
                        str_at(d, &["metadata", "name"]),
                        args.join(" ")
                    ),
                    None => {
                        let subcommand = args.first().filter(|a| !a.starts_with('-'));
                        unchecked.insert(match subcommand {
                            Some(sub) => format!("{binary} {sub}"),
                            None => binary,
                        });
                    }
                }
            }
        }
    }
    // Every component's Deployment is rendered by at least one overlay.
    assert!(checked >= 6, "only {checked} invocations checked");
    assert!(
        unchecked.is_empty(),
        "invocations no clap definition checks (add them to `parse`): {unchecked:?}"
    );
}

#[test]
fn a_wrong_flag_is_caught() {
    let args = ["--webhook-adress=0.0.0.0:8443".to_owned()];
    assert!(matches!(
        parse("tailor-admission-webhook", &args),
        Some(Err(_))
    ));
    let args = ["serve".to_owned(), "--listen=0.0.0.0:7000".to_owned()];
    // `serve` without the required --expander chain.
    assert!(matches!(parse("tailor-expander", &args), Some(Err(_))));
}
