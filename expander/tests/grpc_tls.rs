//! The gRPC expander over real TLS, called by a tonic client generated from
//! the same proto, with requests encoded as Cluster Autoscaler encodes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use prost::bytes::Bytes;
use std::sync::Arc;
use tailor_core::catalog::Catalog;
use tailor_core::expander::{ChainConfig, PriorityFilter};
use tailor_expander::Expander;
use tailor_expander::grpc::proto::expander_client::ExpanderClient;
use tailor_expander::grpc::proto::{BestOptionsRequest, BestOptionsResponse};
use tailor_expander::grpc::{ExpanderService, Metrics, TlsPem, serve};
use tailor_expander::request::DecideRequest;
use tailor_expander::wire::request_to_proto;
use tailor_testkit::Pki;
use tokio::sync::oneshot;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn proto_request(name: &str) -> BestOptionsRequest {
    request_to_proto(&DecideRequest::from_json(&fixture(name)).unwrap())
}

struct Running {
    port: u16,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), tailor_expander::grpc::ServeError>>,
    metrics: Metrics,
}

async fn start(pki: &Pki, expander: Expander) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = TlsPem {
        cert: pki.server().cert_pem.clone().into_bytes(),
        key: pki.server().key_pem.clone().into_bytes(),
    };
    let metrics = Metrics::default();
    let service = ExpanderService::new(Arc::new(expander), metrics.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, Some(tls), service, async {
        let _ = stopped.await;
    }));
    Running {
        port,
        stop,
        task,
        metrics,
    }
}

async fn client(pki: &Pki, port: u16) -> ExpanderClient<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca().cert_pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    ExpanderClient::new(channel)
}

fn ids(r: &BestOptionsResponse) -> Vec<&str> {
    r.options.iter().map(|o| o.node_group_id.as_str()).collect()
}

#[tokio::test]
async fn best_options_round_trip_over_tls() {
    let pki = Pki::generate("cluster-autoscaler", None).unwrap();
    let catalog = Catalog::from_csv(&fixture("catalog.csv"))
        .unwrap()
        .with_overrides_yaml(&fixture("overrides.yaml"))
        .unwrap();
    let config = ChainConfig {
        pricing: Some(Arc::new(catalog)),
        priorities: Some(PriorityFilter::from_yaml("10: [\"^pool-\"]\n0: [\".*\"]").unwrap()),
        ..ChainConfig::default()
    };
    let server = start(
        &pki,
        Expander::new("priority,price,least-waste", &config, 0, 10).unwrap(),
    )
    .await;
    let mut client = client(&pki, server.port).await;

    let request = proto_request("price.json");
    let reply = client
        .best_options(request.clone())
        .await
        .unwrap()
        .into_inner();
    // The same answer as `decide` gives for this file (price.expected.json).
    assert_eq!(ids(&reply), vec!["pool-c6i-xlarge"]);
    // The option comes back exactly as sent, pods' bytes included.
    assert_eq!(reply.options[0], request.options[2]);
    assert_eq!(reply.options[0].pod.len(), 4);

    // An internal error (a pod that is not a Pod) returns every option.
    let mut broken = request.clone();
    broken.options[1].pod[0] = Bytes::from_static(b"\x0a\x05abc");
    let reply = client
        .best_options(broken.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ids(&reply),
        vec![
            "pool-m6i-large",
            "pool-m6i-xlarge",
            "pool-c6i-xlarge",
            "legacy"
        ]
    );
    assert_eq!(reply.options, broken.options);

    // So does an option whose group has no template node.
    let mut orphan = request.clone();
    orphan.node_map.remove("legacy");
    let reply = client.best_options(orphan).await.unwrap().into_inner();
    assert_eq!(reply.options.len(), 4);

    assert_eq!(server.metrics.count("decided"), 1);
    assert_eq!(server.metrics.count("protobuf"), 1);
    assert_eq!(server.metrics.count("unknown_group"), 1);

    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn ties_come_back_for_cluster_autoscaler_to_pick() {
    let pki = Pki::generate("cluster-autoscaler", None).unwrap();
    let server = start(
        &pki,
        Expander::new("least-nodes", &ChainConfig::default(), 0, 0).unwrap(),
    )
    .await;
    let mut client = client(&pki, server.port).await;
    let reply = client
        .best_options(proto_request("least-waste.json"))
        .await
        .unwrap()
        .into_inner();
    // One node each: all three tie and all three are returned, in order.
    assert_eq!(ids(&reply), vec!["a", "b", "c"]);
    let _ = server.stop.send(());
}

#[tokio::test]
async fn requests_past_tonics_default_size_limit_are_answered() {
    // tonic refuses messages over 4 MiB unless told otherwise; Cluster
    // Autoscaler's requests with thousands of pending pods are larger.
    let pki = Pki::generate("cluster-autoscaler", None).unwrap();
    let server = start(
        &pki,
        Expander::new("least-waste", &ChainConfig::default(), 0, 0).unwrap(),
    )
    .await;
    let mut client = client(&pki, server.port).await;
    let mut request = proto_request("least-waste.json");
    for option in &mut request.options {
        let pods = option.pod.clone();
        while option.pod.len() < 30_000 {
            option.pod.extend(pods.iter().cloned());
        }
    }
    let size = prost::Message::encoded_len(&request);
    assert!(size > 5 << 20, "{size} bytes");
    let reply = client
        .best_options(request.clone())
        .await
        .unwrap()
        .into_inner();
    // The same answer as the service gives in process, every option echoed
    // byte for byte.
    let local = ExpanderService::new(
        Arc::new(Expander::new("least-waste", &ChainConfig::default(), 0, 0).unwrap()),
        Metrics::default(),
    );
    let want = local
        .answer(prost::Message::encode_to_vec(&request).into())
        .unwrap();
    let want: BestOptionsResponse = prost::Message::decode(want).unwrap();
    assert!(!want.options.is_empty() && want.options.len() < request.options.len());
    assert_eq!(reply, want);
    assert_eq!(server.metrics.count("decided"), 1);
    let _ = server.stop.send(());
}

#[tokio::test]
async fn plaintext_clients_are_refused() {
    let pki = Pki::generate("cluster-autoscaler", None).unwrap();
    let server = start(
        &pki,
        Expander::new("least-waste", &ChainConfig::default(), 0, 0).unwrap(),
    )
    .await;
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", server.port))
        .unwrap()
        .connect_lazy();
    let result = ExpanderClient::new(channel)
        .best_options(proto_request("least-waste.json"))
        .await;
    assert!(result.is_err(), "a plaintext call got an answer");
    assert_eq!(server.metrics.count("decided"), 0);
    let _ = server.stop.send(());
}

#[tokio::test]
async fn untrusted_servers_are_refused() {
    // A client trusting another CA must not talk to this server.
    let pki = Pki::generate("cluster-autoscaler", None).unwrap();
    let other = Pki::generate("cluster-autoscaler", None).unwrap();
    let server = start(
        &pki,
        Expander::new("least-waste", &ChainConfig::default(), 0, 0).unwrap(),
    )
    .await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&other.ca().cert_pem))
        .domain_name("localhost");
    let connected = Channel::from_shared(format!("https://127.0.0.1:{}", server.port))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await;
    assert!(
        connected.is_err(),
        "connected to a server signed by an unknown CA"
    );
    let _ = server.stop.send(());
}

#[tokio::test]
async fn the_serve_command_answers_and_stops_on_sigterm() {
    let pki = Pki::generate("cluster-autoscaler", None).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tailor-expander"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--expander",
        ])
        .arg("least-waste")
        .arg("--tls-cert-file")
        .arg(&pki.server().cert_path)
        .arg("--tls-private-key-file")
        .arg(&pki.server().key_path)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Wait for the listener: up to 200 attempts, 50 ms apart.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&pki.ca().cert_pem))
        .domain_name("localhost");
    let mut channel = None;
    for _ in 0..200 {
        let endpoint = Channel::from_shared(format!("https://127.0.0.1:{port}"))
            .unwrap()
            .tls_config(tls.clone())
            .unwrap();
        if let Ok(c) = endpoint.connect().await {
            channel = Some(c);
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "serve exited early");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut client = ExpanderClient::new(channel.expect("serve never listened"));
    let reply = client
        .best_options(proto_request("least-waste.json"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&reply), vec!["b"]);

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().await.unwrap();
    assert!(status.success(), "serve exited with {status}");
}

#[test]
fn serve_refuses_to_run_without_tls() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tailor-expander"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--expander",
            "least-waste",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("serve needs --tls-cert-file and --tls-private-key-file (or --plaintext)"),
        "{stderr}"
    );
}
