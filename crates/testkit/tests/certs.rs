#![allow(clippy::unwrap_used, clippy::expect_used)]
//! rcgen certificates: real rustls handshakes and client-certificate verification.

use std::sync::Arc;

use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use tailor_testkit::{Pki, ring_provider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Serves one TLS connection that echoes a line; returns the client cert's DER if any.
async fn serve_once(
    config: rustls::ServerConfig,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<Option<Vec<u8>>, std::io::Error>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec());
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).await?;
        tls.write_all(&buf).await?;
        tls.shutdown().await?;
        Ok(peer)
    });
    (addr, task)
}

async fn talk(
    config: rustls::ClientConfig,
    addr: std::net::SocketAddr,
    name: &'static str,
) -> std::io::Result<Vec<u8>> {
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::try_from(name).unwrap(), tcp)
        .await?;
    tls.write_all(b"hello").await?;
    let mut buf = Vec::new();
    tls.read_to_end(&mut buf).await?;
    Ok(buf)
}

#[tokio::test]
async fn handshake_with_server_cert_for_localhost_and_ip() {
    let pki = Pki::generate("front-proxy-client", None).unwrap();
    for name in ["localhost", "127.0.0.1"] {
        let (addr, server) = serve_once(pki.server_config().unwrap()).await;
        let echoed = talk(pki.client_config().unwrap(), addr, name)
            .await
            .unwrap();
        assert_eq!(echoed, b"hello");
        assert_eq!(server.await.unwrap().unwrap(), None);
    }
}

#[tokio::test]
async fn client_trusting_another_ca_rejects_the_server() {
    let pki = Pki::generate("c", None).unwrap();
    let other = Pki::generate("c", None).unwrap();
    let (addr, _server) = serve_once(pki.server_config().unwrap()).await;
    let err = talk(other.client_config().unwrap(), addr, "localhost")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn mutual_tls_presents_the_client_cert() {
    let pki = Pki::generate("front-proxy-client", Some("system:masters")).unwrap();
    let (addr, server) = serve_once(pki.server_config_requiring_client_cert().unwrap()).await;
    let echoed = talk(pki.client_config_with_cert().unwrap(), addr, "localhost")
        .await
        .unwrap();
    assert_eq!(echoed, b"hello");
    let peer = server.await.unwrap().unwrap();
    assert_eq!(peer, Some(pki.client().cert_der().to_vec()));

    // Without a client certificate the server refuses the connection.
    let (addr, server) = serve_once(pki.server_config_requiring_client_cert().unwrap()).await;
    let _ = talk(pki.client_config().unwrap(), addr, "localhost").await;
    assert!(server.await.unwrap().is_err());
}

#[test]
fn client_cert_verifies_against_its_ca_only() {
    let pki = Pki::generate("front-proxy-client", Some("system:masters")).unwrap();
    let other = Pki::generate("front-proxy-client", Some("system:masters")).unwrap();
    let verifier = |ca: &Pki| {
        WebPkiClientVerifier::builder_with_provider(Arc::new(ca.roots().unwrap()), ring_provider())
            .build()
            .unwrap()
    };
    let cert = pki.client().cert_der();
    verifier(&pki)
        .verify_client_cert(&cert, &[], UnixTime::now())
        .unwrap();
    let err = verifier(&other)
        .verify_client_cert(&cert, &[], UnixTime::now())
        .unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");

    // The subject carries the CN and organisation the front proxy will be matched on.
    let pem = std::fs::read_to_string(&pki.client().cert_path).unwrap();
    assert_eq!(pem, pki.client().cert_pem);
    // (Subject strings are stored verbatim in DER.)
    assert!(cert.windows(18).any(|w| w == b"front-proxy-client"));
    assert!(cert.windows(14).any(|w| w == b"system:masters"));
}
