//! The admission webhook's HTTPS server for benchmarks, without a cluster:
//! the index the watches would build from a manifest file (e.g.
//! `admission-webhook/tests/fixtures/cluster.yaml`), a self-issued certificate
//! for `localhost` (the webhook's `--self-signed` code), and the production
//! router and TLS serving path. `scripts/bench/webhook.sh` drives it with
//! `tailor-load`.
//!
//! `webhook-bench-server CLUSTER.yaml DIR [ADDR]` writes `DIR/ca.crt`,
//! `DIR/tls.crt` and `DIR/tls.key`, prints `listening on ADDR`, serves until
//! SIGTERM/SIGINT, then prints the request counts by outcome on stderr.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use prometheus_client::registry::Registry;
use serde::Deserialize as _;
use tailor_admission_webhook::index::{Index, RecommenderFilter};
use tailor_admission_webhook::placement::PlacementConfig;
use tailor_admission_webhook::self_signed::SelfSigned;
use tailor_admission_webhook::server::{AppState, DEFAULT_DEADLINE, Metrics, router};
use tailor_runtime::args::TlsArgs;
use tailor_runtime::{Shutdown, serve, tls};

/// The index the watches would build from the objects in `yaml`.
fn index_from(yaml: &str) -> Index {
    let mut index = Index::new(RecommenderFilter::Any);
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        index.apply_object(value).unwrap();
    }
    index
}

#[tokio::main]
async fn main() {
    tls::install_crypto_provider();
    let mut args = std::env::args().skip(1);
    let usage = "usage: webhook-bench-server CLUSTER.yaml DIR [ADDR]";
    let cluster = std::fs::read_to_string(args.next().expect(usage)).unwrap();
    let dir = PathBuf::from(args.next().expect(usage));
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".to_owned());

    let certs = SelfSigned::new(vec!["localhost".to_owned()], SystemTime::now()).unwrap();
    let tls_args = TlsArgs {
        tls_cert_file: dir.join("tls.crt"),
        tls_private_key_file: dir.join("tls.key"),
    };
    certs.write(&tls_args).unwrap();
    std::fs::write(dir.join("ca.crt"), certs.ca_bundle()).unwrap();
    let config = tls::server_config(&tls_args, None).unwrap();

    let mut registry = Registry::with_prefix("tailor_webhook");
    let state = AppState {
        index: Arc::new(RwLock::new(index_from(&cluster))),
        placement: PlacementConfig::default(),
        metrics: Metrics::register(&mut registry),
        deadline: DEFAULT_DEADLINE,
    };
    let listener = serve::bind(addr.parse().unwrap()).await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap());

    let shutdown = Shutdown::new();
    shutdown.listen_for_signals().unwrap();
    let server = shutdown.spawn(serve::serve_tls(
        listener,
        config,
        router(Arc::new(state)),
        shutdown.token(),
        Duration::from_secs(2),
    ));
    shutdown.drain(Duration::from_secs(5)).await.unwrap();
    server.await.unwrap().unwrap();

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in text
        .lines()
        .filter(|l| l.starts_with("tailor_webhook_admission_requests_total"))
    {
        eprintln!("{line}");
    }
}
