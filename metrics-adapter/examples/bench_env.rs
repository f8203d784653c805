#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]
//! The benchmark environment for docs/benchmarks.md: a real Prometheus
//! holding `--series N` series of `http_requests{namespace, pod}` (constant
//! values over the last two hours, 100 pods per namespace), the adapter
//! config that serves them, and a PKI (server, front-proxy CA, client).
//! Prints the paths and URLs as shell variables, then keeps everything up
//! until stdin closes.
//!
//! ```sh
//! cargo run -p tailor-metrics-adapter --example bench_env -- --series 100000 > env.sh
//! ```

use std::io::Read as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tailor_testkit::{OpenMetrics, Pki, Prometheus};

const CONFIG: &str = r#"rules:
- seriesQuery: 'http_requests{namespace!="",pod!=""}'
  resources:
    overrides:
      namespace: {resource: namespace}
      pod: {resource: pod}
  name: {matches: "^(.*)$", as: "${1}_per_second"}
  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
"#;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let series: usize = args
        .iter()
        .position(|a| a == "--series")
        .and_then(|i| args.get(i + 1))
        .map_or(1000, |s| s.parse().unwrap());
    let end = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        / 60_000
        * 60_000;
    let mut data = OpenMetrics::new();
    for i in 0..series {
        let ns = format!("ns-{}", i / 100);
        let pod = format!("pod-{}", i % 100);
        #[allow(clippy::cast_precision_loss)]
        let v = (i % 1000) as f64 / 10.0;
        // Samples every 10 minutes over two hours keep the backfill small.
        data.gauge(
            "http_requests",
            &[("namespace", &ns), ("pod", &pod)],
            (0..12).map(|k| (end - (11 - k) * 600_000, v)),
        )
        .unwrap();
    }
    let prom = Prometheus::builder()
        .backfill(data)
        .lookback_delta(Duration::from_secs(3 * 3600))
        .ready_timeout(Duration::from_secs(300))
        .start()
        .await
        .unwrap();
    let pki = Pki::generate("front-proxy-client", None).unwrap();
    let config = pki.dir().join("adapter.yaml");
    std::fs::write(&config, CONFIG).unwrap();
    println!("PROM_URL={}", prom.url());
    println!("PROM_PID={}", prom.pid());
    println!("CONFIG={}", config.display());
    println!("CA={}", pki.ca().cert_path.display());
    println!("SERVER_CERT={}", pki.server().cert_path.display());
    println!("SERVER_KEY={}", pki.server().key_path.display());
    println!("CLIENT_CERT={}", pki.client().cert_path.display());
    println!("CLIENT_KEY={}", pki.client().key_path.display());
    println!("READY=1");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(prom);
}
