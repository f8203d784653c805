#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Real Prometheus: backfilled history and a live scrape target.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tailor_testkit::{OpenMetrics, Prometheus, ScrapeTarget};

const WAIT: Duration = Duration::from_secs(30);
/// 2013-08-01T00:00:00Z, the start of the Bitbrains trace month.
const OLD_SECS: i64 = 1_375_315_200;
const STEP_SECS: i64 = 300;
const DAYS: i64 = 3;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn labels(vector_labels: &HashMap<String, String>) -> Vec<(String, String)> {
    let mut pairs: Vec<_> = vector_labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test]
async fn backfilled_history_is_queryable_at_once() {
    // Five-minute samples over the last three days, aligned so queries hit them exactly.
    let start = (now_secs() - DAYS * 86_400) / STEP_SECS * STEP_SECS;
    let count = DAYS * 86_400 / STEP_SECS - 2; // the last sample is ≥ 10 minutes old
    let value_at = |i: i64| i as f64 * 0.5 + 0.125;
    let tricky = "quote\" back\\slash\nnewline";
    let mut data = OpenMetrics::new();
    data.gauge(
        "tailor_test_cpu_cores",
        &[("pod", "web-0"), ("note", tricky)],
        (0..count).map(|i| ((start + i * STEP_SECS) * 1000, value_at(i))),
    )
    .unwrap()
    .counter(
        "tailor_test_requests_total",
        &[("pod", "web-0")],
        (0..count).map(|i| ((start + i * STEP_SECS) * 1000, (i * 10) as f64)),
    )
    .unwrap()
    .gauge(
        "tailor_test_old",
        &[("trace", "bitbrains")],
        [(OLD_SECS * 1000, 42.5), ((OLD_SECS + 60) * 1000, 43.25)],
    )
    .unwrap();

    let prometheus = Prometheus::builder().backfill(data).start().await.unwrap();
    let client = prometheus.client().unwrap();

    // Instant query at a past sample time, by the escaped label value.
    let k = 400;
    let at = start + k * STEP_SECS;
    let selector = r#"tailor_test_cpu_cores{note="quote\" back\\slash\nnewline"}"#;
    let result = client.query(selector).at(at).get().await.unwrap();
    let vector = result.data().as_vector().unwrap();
    assert_eq!(vector.len(), 1, "{vector:?}");
    assert_eq!(vector[0].sample().value(), value_at(k));
    assert_eq!(vector[0].sample().timestamp(), at as f64);
    assert_eq!(
        labels(vector[0].metric()),
        vec![
            ("__name__".to_owned(), "tailor_test_cpu_cores".to_owned()),
            ("note".to_owned(), tricky.to_owned()),
            ("pod".to_owned(), "web-0".to_owned()),
        ]
    );

    // Counter: rate over the backfilled range is exact (10 per 300 s).
    let rate = client
        .query("rate(tailor_test_requests_total[30m])")
        .at(at)
        .get()
        .await
        .unwrap();
    let rate = rate.data().as_vector().unwrap()[0].sample().value();
    assert!((rate - 10.0 / 300.0).abs() < 1e-12, "rate {rate}");

    // The series at a fixed 2013 timestamp survives retention and answers.
    let old = client
        .query("tailor_test_old")
        .at(OLD_SECS + 30)
        .get()
        .await
        .unwrap();
    let old = old.data().as_vector().unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].sample().value(), 42.5);

    // Range query across a day boundary returns every sample in order.
    let (from, to) = (start + 100 * STEP_SECS, start + 400 * STEP_SECS);
    let range = client
        .query_range("tailor_test_cpu_cores", from, to, STEP_SECS as f64)
        .get()
        .await
        .unwrap();
    let matrix = range.data().as_matrix().unwrap();
    assert_eq!(matrix.len(), 1);
    let got: Vec<(f64, f64)> = matrix[0]
        .samples()
        .iter()
        .map(|s| (s.timestamp(), s.value()))
        .collect();
    let want: Vec<(f64, f64)> = (100..=400)
        .map(|i| ((start + i * STEP_SECS) as f64, value_at(i)))
        .collect();
    assert_eq!(got, want);

    // Range query over the old series.
    let old_range = client
        .query_range("tailor_test_old", OLD_SECS, OLD_SECS + 60, 60.0)
        .get()
        .await
        .unwrap();
    let old_samples: Vec<(f64, f64)> = old_range.data().as_matrix().unwrap()[0]
        .samples()
        .iter()
        .map(|s| (s.timestamp(), s.value()))
        .collect();
    assert_eq!(
        old_samples,
        vec![(OLD_SECS as f64, 42.5), ((OLD_SECS + 60) as f64, 43.25)]
    );
}

#[tokio::test]
async fn live_target_changes_are_scraped() {
    let target = ScrapeTarget::start().await.unwrap();
    target
        .set_gauge("tailor_test_queue_depth", &[("queue", "jobs")], 3.0)
        .unwrap();
    let prometheus = Prometheus::builder()
        .scrape_interval(Duration::from_millis(500))
        .scrape_target("live", target.address())
        .start()
        .await
        .unwrap();

    let query = r#"tailor_test_queue_depth{job="live",queue="jobs"}"#;
    let first = prometheus.wait_for_series(query, WAIT).await.unwrap();
    assert_eq!(first, 3.0);

    target
        .set_gauge("tailor_test_queue_depth", &[("queue", "jobs")], 17.5)
        .unwrap();
    prometheus.wait_for_value(query, 17.5, WAIT).await.unwrap();
}

#[tokio::test]
async fn waiting_for_a_missing_series_times_out_with_the_query() {
    let prometheus = Prometheus::builder().start().await.unwrap();
    let err = prometheus
        .wait_for_series("tailor_test_never_there", Duration::from_millis(500))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("tailor_test_never_there did not return a sample at http://127.0.0.1:"),
        "{err}"
    );
    assert!(err.contains("last answer: vector []"), "{err}");
}

#[tokio::test]
async fn drop_stops_prometheus_and_removes_its_data() {
    let prometheus = Prometheus::builder().start().await.unwrap();
    let pid = prometheus.pid();
    let data = prometheus.data_dir();
    let url = prometheus.url().to_owned();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(data.exists());
    drop(prometheus);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still present"
    );
    assert!(!data.exists());
    assert!(reqwest::get(format!("{url}/-/ready")).await.is_err());
}
