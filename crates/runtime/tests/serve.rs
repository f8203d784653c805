//! Servers over real sockets: the admin server, plain-HTTP drain, and HTTPS
//! with certificate rotation and client-certificate authentication.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use axum::{Extension, Router, routing::get};
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _};
use tailor_runtime::{
    admin::{self, AdminState, Liveness, Readiness},
    args::TlsArgs,
    serve::{self, ServeError},
    tls::{self, ClientAuth, PeerCertificate},
};
use tokio::{net::TcpStream, sync::oneshot};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        Self(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn pem(&self) -> String {
        self.0.pem()
    }

    /// A leaf certificate: (cert PEM, key PEM, cert DER).
    fn leaf(&self, cn: &str, org: Option<&str>, server: bool) -> (String, String, Vec<u8>) {
        let sans = if server {
            vec!["localhost".to_owned()]
        } else {
            vec![]
        };
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(org) = org {
            params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }
}

fn write_pair(dir: &Path, (cert, key, _): &(String, String, Vec<u8>)) -> TlsArgs {
    let args = TlsArgs {
        tls_cert_file: dir.join("tls.crt"),
        tls_private_key_file: dir.join("tls.key"),
    };
    std::fs::write(&args.tls_cert_file, cert).unwrap();
    std::fs::write(&args.tls_private_key_file, key).unwrap();
    args
}

/// Says who the client certificate named, or "anonymous".
fn whoami_router() -> Router {
    Router::new().route(
        "/whoami",
        get(|peer: Option<Extension<PeerCertificate>>| async move {
            match peer {
                Some(Extension(peer)) => format!(
                    "{}|{}",
                    peer.common_name.unwrap_or_default(),
                    peer.organisations.join(",")
                ),
                None => "anonymous".to_owned(),
            }
        }),
    )
}

struct Response {
    server_cert: Vec<u8>,
    status: StatusCode,
    body: String,
}

/// One HTTPS GET on a new connection, trusting `server_ca`, optionally with a client cert.
async fn https_get(
    addr: SocketAddr,
    server_ca: &Ca,
    client: Option<&(String, String, Vec<u8>)>,
    path: &str,
) -> Result<Response, BoxError> {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(server_ca.pem().as_bytes())?)?;
    let builder = ClientConfig::builder_with_provider(tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key, _)) => builder.with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes())?],
            PrivateKeyDer::from_pem_slice(key.as_bytes())?,
        )?,
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let server_cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let response = sender
        .send_request(
            Request::get(path)
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())?,
        )
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(Response {
        server_cert,
        status,
        body: String::from_utf8(body.to_vec())?,
    })
}

/// One plain-HTTP GET on a new connection.
async fn http_get(addr: SocketAddr, path: &str) -> Result<(StatusCode, String), BoxError> {
    let tcp = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let response = sender
        .send_request(
            Request::get(path)
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())?,
        )
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(body.to_vec())?))
}

async fn start_tls(
    args: &TlsArgs,
    client_auth: Option<&ClientAuth>,
) -> (
    SocketAddr,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), ServeError>>,
) {
    let config = tls::server_config(args, client_auth).unwrap();
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve::serve_tls(
        listener,
        config,
        whoami_router(),
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    (addr, shutdown, server)
}

#[tokio::test]
async fn admin_server_answers_probes_over_a_real_socket() {
    let mut registry = admin::component_registry("updater");
    let evictions = prometheus_client::metrics::counter::Counter::<u64>::default();
    registry.register("evictions", "Pods evicted", evictions.clone());
    let readiness = Readiness::new();
    let state = AdminState::new(registry, readiness.clone(), Liveness::new());
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve::serve(
        listener,
        admin::router(state),
        shutdown.clone(),
        Duration::from_secs(5),
    ));

    assert_eq!(http_get(addr, "/livez").await.unwrap().0, StatusCode::OK);
    assert_eq!(
        http_get(addr, "/readyz").await.unwrap().0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    readiness.set_ready(true);
    assert_eq!(http_get(addr, "/readyz").await.unwrap().0, StatusCode::OK);
    evictions.inc();
    let (status, body) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("tailor_updater_evictions_total 1"), "{body}");

    shutdown.cancel();
    server.await.unwrap().unwrap();
    assert!(http_get(addr, "/livez").await.is_err(), "listener closed");
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let slots = Arc::new(std::sync::Mutex::new(Some((started_tx, release_rx))));
    let router = Router::new().route(
        "/slow",
        get(move || {
            let slot = slots.lock().unwrap().take();
            async move {
                let (started, release) = slot.unwrap();
                started.send(()).unwrap();
                release.await.unwrap();
                "finished"
            }
        }),
    );
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve::serve(
        listener,
        router,
        shutdown.clone(),
        Duration::from_secs(30),
    ));
    let client = tokio::spawn(http_get(addr, "/slow"));
    started_rx.await.unwrap();
    shutdown.cancel();
    // The server must still be draining: it cannot finish while the handler waits.
    tokio::task::yield_now().await;
    assert!(!server.is_finished());
    release_tx.send(()).unwrap();
    let (status, body) = client.await.unwrap().unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "finished"));
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn drain_gives_up_on_a_request_that_never_ends() {
    let (started_tx, started_rx) = oneshot::channel::<()>();
    let slot = Arc::new(std::sync::Mutex::new(Some(started_tx)));
    let router = Router::new().route(
        "/stuck",
        get(move || {
            let started = slot.lock().unwrap().take();
            async move {
                started.unwrap().send(()).unwrap();
                std::future::pending::<()>().await;
                "never"
            }
        }),
    );
    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve::serve(
        listener,
        router,
        shutdown.clone(),
        Duration::from_millis(200),
    ));
    let _client = tokio::spawn(http_get(addr, "/stuck"));
    started_rx.await.unwrap();
    shutdown.cancel();
    let err = server.await.unwrap().unwrap_err();
    assert!(
        matches!(err, ServeError::DrainTimeout { open: 1, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn rotated_certificate_is_served_to_new_connections_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server-ca");
    let cert_a = server_ca.leaf("serving-a", None, true);
    let cert_b = server_ca.leaf("serving-b", None, true);
    let args = write_pair(dir.path(), &cert_a);
    let (addr, shutdown, server) = start_tls(&args, None).await;

    let first = https_get(addr, &server_ca, None, "/whoami").await.unwrap();
    assert_eq!(first.server_cert, cert_a.2);
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "anonymous");

    // Rotate both files, the way a Secret volume update does.
    write_pair(dir.path(), &cert_b);
    let second = https_get(addr, &server_ca, None, "/whoami").await.unwrap();
    assert_eq!(second.server_cert, cert_b.2);

    // A broken key file keeps B in service.
    std::fs::write(&args.tls_private_key_file, "garbage").unwrap();
    let third = https_get(addr, &server_ca, None, "/whoami").await.unwrap();
    assert_eq!(third.server_cert, cert_b.2);

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn required_client_certificates_are_verified_against_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server-ca");
    let client_ca = Ca::new("front-proxy-ca");
    let other_ca = Ca::new("other-ca");
    let args = write_pair(dir.path(), &server_ca.leaf("serving", None, true));
    let ca_file = dir.path().join("client-ca.crt");
    std::fs::write(&ca_file, client_ca.pem()).unwrap();
    let auth = ClientAuth {
        ca_file,
        required: true,
    };
    let (addr, shutdown, server) = start_tls(&args, Some(&auth)).await;

    assert!(
        https_get(addr, &server_ca, None, "/whoami").await.is_err(),
        "no client certificate"
    );
    let stranger = other_ca.leaf("front-proxy-client", Some("system:masters"), false);
    assert!(
        https_get(addr, &server_ca, Some(&stranger), "/whoami")
            .await
            .is_err(),
        "certificate from another CA"
    );
    let good = client_ca.leaf("front-proxy-client", Some("system:auth"), false);
    let response = https_get(addr, &server_ca, Some(&good), "/whoami")
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body, "front-proxy-client|system:auth");

    shutdown.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn optional_client_certificates_admit_anonymous_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = Ca::new("server-ca");
    let client_ca = Ca::new("client-ca");
    let args = write_pair(dir.path(), &server_ca.leaf("serving", None, true));
    let ca_file = dir.path().join("client-ca.crt");
    std::fs::write(&ca_file, client_ca.pem()).unwrap();
    let auth = ClientAuth {
        ca_file,
        required: false,
    };
    let (addr, shutdown, server) = start_tls(&args, Some(&auth)).await;

    let anonymous = https_get(addr, &server_ca, None, "/whoami").await.unwrap();
    assert_eq!(anonymous.body, "anonymous");
    let user = client_ca.leaf("jane", None, false);
    let named = https_get(addr, &server_ca, Some(&user), "/whoami")
        .await
        .unwrap();
    assert_eq!(named.body, "jane|");
    let stranger = Ca::new("other").leaf("mallory", None, false);
    assert!(
        https_get(addr, &server_ca, Some(&stranger), "/whoami")
            .await
            .is_err(),
        "a certificate that fails verification is still rejected"
    );

    shutdown.cancel();
    server.await.unwrap().unwrap();
}
