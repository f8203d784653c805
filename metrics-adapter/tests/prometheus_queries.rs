#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Built queries against a real Prometheus: hostile names and namespaces
//! select exactly their own series, and nothing is injected.

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use tailor_metrics_adapter::config::Config;
use tailor_metrics_adapter::naming::GroupResource;
use tailor_metrics_adapter::query::{
    BuiltQuery, CustomRequest, Objects, QueryOptions, build_custom,
};
use tailor_metrics_adapter::selector::MetricSelector;
use tailor_testkit::{OpenMetrics, Prometheus};

const DEFAULT: &str = include_str!("../src/testdata/default-config.yaml");
const STEP_SECS: i64 = 300;
const COUNT: i64 = 24;

/// Names that would break out of a naively built query.
const HOSTILE: &[&str] = &[
    "quote\"inside",
    "back\\slash",
    "new\nline",
    "x\"} or vector(1) #",
    "\"} or vector(1) or x{a=\"",
    ".*",
    "a|b",
    "it's",
    "back`tick",
    "$1",
    "{}",
    "web-0",
    "web.0",
];

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

async fn run(prometheus: &Prometheus, q: &BuiltQuery, at: i64) -> Vec<(String, f64)> {
    let client = prometheus.client().unwrap();
    let result = client
        .query(q.promql.as_str())
        .at(at)
        .get()
        .await
        .unwrap_or_else(|e| panic!("{:?} failed: {e}", q.promql));
    let mut out: Vec<(String, f64)> = result
        .data()
        .as_vector()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s.metric()
                    .get(&q.resource_label)
                    .cloned()
                    .unwrap_or_default(),
                s.sample().value(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[tokio::test]
async fn hostile_names_select_exactly_their_own_series() {
    let start = (now_secs() - 3 * 3600) / STEP_SECS * STEP_SECS;
    let at = start + 10 * STEP_SECS;
    let mut data = OpenMetrics::new();
    // Pod i in every hostile namespace has value 10·i + namespace index; a
    // decoy namespace holds the same pod names with large values.
    for (n, ns) in HOSTILE.iter().chain(["decoy"].iter()).enumerate() {
        for (i, pod) in HOSTILE.iter().enumerate() {
            let value = if *ns == "decoy" {
                1e6
            } else {
                (10 * i + n) as f64
            };
            data.gauge(
                "tailor_queue_length",
                &[("namespace", ns), ("pod", pod)],
                (0..COUNT).map(|k| ((start + k * STEP_SECS) * 1000, value)),
            )
            .unwrap();
        }
    }
    let prometheus = Prometheus::builder().backfill(data).start().await.unwrap();

    let config = Config::from_yaml(DEFAULT, "default-config.yaml").unwrap();
    // `sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)`, labels by template.
    let rule = &config.rules[3];
    let pods = GroupResource::pods();
    let everything = MetricSelector::everything();
    let build = |ns: &str, objects: Objects<'_>, max: usize| {
        build_custom(
            rule,
            &CustomRequest {
                series: "tailor_queue_length",
                resource: &pods,
                namespace: Some(ns),
                objects,
                metric_selector: &everything,
            },
            QueryOptions {
                max_regex_names: max,
            },
        )
        .unwrap()
    };

    for (n, ns) in HOSTILE.iter().enumerate() {
        // One object at a time: exactly that series.
        for (i, pod) in HOSTILE.iter().enumerate() {
            let one = vec![(*pod).to_owned()];
            let q = build(ns, Objects::Named(&one), 20);
            assert_eq!(
                run(&prometheus, &q, at).await,
                vec![((*pod).to_owned(), (10 * i + n) as f64)],
                "{}",
                q.promql
            );
        }
        // Several objects in one escaped regex: exactly those.
        let pair = vec![HOSTILE[0].to_owned(), HOSTILE[5].to_owned()];
        let q = build(ns, Objects::Named(&pair), 20);
        assert!(q.keep.is_none());
        let got = run(&prometheus, &q, at).await;
        let names: BTreeSet<_> = got.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(names, pair.iter().cloned().collect(), "{}", q.promql);
        // Past the regex limit: the namespace's objects, and the keep set.
        let q = build(ns, Objects::Named(&pair), 1);
        assert_eq!(q.keep.as_ref().unwrap().len(), 2);
        let got = run(&prometheus, &q, at).await;
        assert_eq!(got.len(), HOSTILE.len(), "{}", q.promql);
        assert!(got.iter().all(|(_, v)| *v < 1e6));
    }

    // A name that exists nowhere selects nothing: no `or vector(1)` leaks in.
    let ghost = vec!["ghost\"} or vector(1) or up{x=\"".to_owned()];
    let q = build("decoy", Objects::Named(&ghost), 20);
    assert_eq!(run(&prometheus, &q, at).await, vec![], "{}", q.promql);
}
