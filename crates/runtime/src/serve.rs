//! Serving an axum [`Router`] over plain TCP or TLS, with graceful drain.
//!
//! Any tower service can be served by wrapping it first:
//! `Router::new().fallback_service(service)`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use crate::tls::PeerCertificate;

/// How long a client may take to finish the TLS handshake before it is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors from binding or draining a server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Connections were still open when the drain timeout passed; they were dropped.
    #[error("{open} connection(s) still open after the {timeout:?} drain timeout")]
    DrainTimeout {
        /// Connections still open.
        open: usize,
        /// The timeout that passed.
        timeout: Duration,
    },
}

/// Binds a TCP listener on `addr`, naming the address on failure.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves `router` over plain HTTP/1.1 and h2c until `shutdown` is cancelled,
/// then lets open requests finish for at most `drain`.
///
/// Requests carry the client address as an extension (`ConnectInfo<SocketAddr>`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<(), ServeError> {
    accept_loop(listener, router, shutdown, drain, |tcp| async move {
        Some((tcp, None))
    })
    .await
}

/// Serves `router` over TLS (HTTP/1.1 and h2 by ALPN) with `config` until
/// `shutdown` is cancelled, then drains for at most `drain`.
///
/// When the config verifies client certificates, requests on a connection that
/// presented one carry a [`PeerCertificate`] extension.
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: CancellationToken,
    drain: Duration,
) -> Result<(), ServeError> {
    let acceptor = TlsAcceptor::from(config);
    accept_loop(listener, router, shutdown, drain, move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "TLS handshake failed");
                    return None;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return None;
                }
            };
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|der| PeerCertificate::from_der(der.clone().into_owned()));
            Some((stream, peer))
        }
    })
    .await
}

async fn accept_loop<A, F, IO>(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    drain: Duration,
    accept: A,
) -> Result<(), ServeError>
where
    A: Fn(TcpStream) -> F + Clone + Send + 'static,
    F: Future<Output = Option<(IO, Option<PeerCertificate>)>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, remote) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Small responses must not wait for the peer's delayed ACK (Nagle's
        // algorithm): that put a ~40 ms tail on otherwise sub-millisecond
        // answers. Failing to set it only costs latency, so it is not fatal.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let watcher = graceful.watcher();
        let router = router.clone();
        let accept = accept.clone();
        tokio::spawn(async move {
            let Some((io, peer)) = accept(tcp).await else {
                return;
            };
            let service = router.map_request(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(remote));
                if let Some(peer) = &peer {
                    req.extensions_mut().insert(peer.clone());
                }
                req
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn =
                builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
            if let Err(err) = watcher.watch(conn).await {
                tracing::debug!(error = %err, %remote, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    match tokio::time::timeout(drain, graceful.shutdown()).await {
        Ok(()) => Ok(()),
        Err(_) => Err(ServeError::DrainTimeout {
            open,
            timeout: drain,
        }),
    }
}
