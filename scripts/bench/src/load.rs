//! Connections sending requests in a closed loop, and the run that ties them
//! together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::Error;
use crate::cli::{Cli, HttpVersion};
use crate::histogram::Histogram;
use crate::report::{Report, cpu_seconds};
use crate::target::{self, Scheme, Target};

/// Measured for this long when neither `--duration` nor `--requests` is given.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

/// A pause after a failed connection attempt, so a server that is down is not
/// hammered by a spinning loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// Everything a connection needs, prepared once.
struct Plan {
    target: Target,
    version: HttpVersion,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    timeout: Duration,
}

impl Plan {
    async fn build(cli: &Cli) -> Result<Self, Error> {
        let target = target::resolve(&cli.url, cli.allow_non_loopback).await?;
        let body = match &cli.body {
            Some(path) => Bytes::from(read("--body", path)?),
            None => Bytes::new(),
        };
        let method = match &cli.method {
            Some(m) => Method::from_bytes(m.as_bytes())
                .map_err(|_| Error::Usage(format!("invalid --method {m:?}")))?,
            None if cli.body.is_some() => Method::POST,
            None => Method::GET,
        };
        let mut headers = parse_headers(&cli.headers)?;
        let tls = match target.scheme {
            Scheme::Https => Some(tls(cli, &target)?),
            Scheme::Http => {
                if cli.cacert.is_some() || cli.cert.is_some() || cli.server_name.is_some() {
                    return Err(Error::Usage(
                        "--cacert, --cert, --key and --server-name need an https:// URL".into(),
                    ));
                }
                None
            }
        };
        let uri = match cli.http {
            // HTTP/1.1 sends the origin form and a Host header.
            HttpVersion::Http1 => {
                if !headers.contains_key(header::HOST) {
                    let host = HeaderValue::from_str(&target.authority)
                        .map_err(|e| Error::Usage(format!("host {:?}: {e}", target.authority)))?;
                    headers.insert(header::HOST, host);
                }
                target.path_and_query.clone()
            }
            // HTTP/2 takes :scheme and :authority from an absolute URI.
            HttpVersion::Http2 => {
                let scheme = match target.scheme {
                    Scheme::Http => "http",
                    Scheme::Https => "https",
                };
                format!("{scheme}://{}{}", target.authority, target.path_and_query)
            }
        };
        let uri = uri.parse().map_err(|e: http::uri::InvalidUri| Error::Url {
            url: cli.url.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            target,
            version: cli.http,
            tls,
            method,
            uri,
            headers,
            body,
            timeout: cli.timeout,
        })
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(what, path)?;
    let pem_error = |detail: String| Error::Pem {
        what,
        path: path.to_owned(),
        detail,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

fn tls(cli: &Cli, target: &Target) -> Result<(TlsConnector, ServerName<'static>), Error> {
    let cacert = cli.cacert.as_deref().ok_or_else(|| {
        Error::Usage(
            "https:// needs --cacert FILE: the CA certificate that signed the server's certificate"
                .into(),
        )
    })?;
    let mut roots = RootCertStore::empty();
    for cert in read_certs("--cacert", cacert)? {
        roots.add(cert).map_err(|e| Error::Pem {
            what: "--cacert",
            path: cacert.to_owned(),
            detail: e.to_string(),
        })?;
    }
    let builder = ClientConfig::builder_with_provider(tailor_runtime::tls::crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match (&cli.cert, &cli.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs("--cert", cert)?;
            let key_der =
                PrivateKeyDer::from_pem_slice(&read("--key", key)?).map_err(|e| Error::Pem {
                    what: "--key",
                    path: key.clone(),
                    detail: format!("no usable PEM private key: {e}"),
                })?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| Error::Pem {
                    what: "--key",
                    path: key.clone(),
                    detail: format!("does not fit --cert {}: {e}", cert.display()),
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![match cli.http {
        HttpVersion::Http1 => b"http/1.1".to_vec(),
        HttpVersion::Http2 => b"h2".to_vec(),
    }];
    let name = cli
        .server_name
        .clone()
        .unwrap_or_else(|| target.host.clone());
    let server_name = ServerName::try_from(name.clone())
        .map_err(|_| Error::Usage(format!("invalid TLS server name {name:?}")))?;
    Ok((TlsConnector::from(Arc::new(config)), server_name))
}

fn parse_headers(raw: &[String]) -> Result<HeaderMap, Error> {
    let mut headers = HeaderMap::new();
    for line in raw {
        let bad = |why: String| Error::Usage(format!("header {line:?}: {why}"));
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad("write it as 'Name: value'".into()))?;
        let name =
            HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| bad(e.to_string()))?;
        let value = HeaderValue::from_str(value.trim()).map_err(|e| bad(e.to_string()))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Why one request got no answer; `kind` is the label in the report.
struct Failure {
    kind: &'static str,
    message: String,
}

impl Failure {
    fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

impl Conn {
    fn is_closed(&self) -> bool {
        match self {
            Self::H1(s) => s.is_closed(),
            Self::H2(s) => s.is_closed(),
        }
    }

    async fn send(
        &mut self,
        req: Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Self::H1(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
            Self::H2(s) => {
                s.ready().await?;
                s.send_request(req).await
            }
        }
    }
}

async fn handshake<IO>(io: IO, version: HttpVersion) -> Result<Conn, Failure>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let failed = |e: hyper::Error| Failure::new("http", format!("handshake: {e}"));
    match version {
        HttpVersion::Http1 => {
            let (sender, conn) = http1::handshake(io).await.map_err(failed)?;
            // Ends when the connection closes or the sender is dropped.
            tokio::spawn(async move { conn.await.ok() });
            Ok(Conn::H1(sender))
        }
        HttpVersion::Http2 => {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(failed)?;
            tokio::spawn(async move { conn.await.ok() });
            Ok(Conn::H2(sender))
        }
    }
}

async fn connect(plan: &Plan, addr: SocketAddr) -> Result<Conn, Failure> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| Failure::new("connect", format!("{addr}: {e}")))?;
    // Requests are small and latency is what is measured: no Nagle delay.
    tcp.set_nodelay(true).ok();
    match &plan.tls {
        Some((connector, name)) => {
            let tls = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| Failure::new("tls", format!("{addr}: {e}")))?;
            if plan.version == HttpVersion::Http2 && tls.get_ref().1.alpn_protocol() != Some(b"h2")
            {
                return Err(Failure::new(
                    "tls",
                    "the server did not agree to HTTP/2 (ALPN h2); use --http 1.1",
                ));
            }
            handshake(TokioIo::new(tls), plan.version).await
        }
        None => handshake(TokioIo::new(tcp), plan.version).await,
    }
}

/// One request on the connection, opening it first if needed; the status and
/// the body's length once the whole body is read.
async fn exchange(
    plan: &Plan,
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    opened: &mut u64,
) -> Result<(u16, u64), Failure> {
    let sender = match conn {
        Some(c) if !c.is_closed() => c,
        _ => {
            *opened += 1;
            conn.insert(connect(plan, addr).await?)
        }
    };
    let response = sender
        .send(plan.request())
        .await
        .map_err(|e| Failure::new("http", e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| Failure::new("body", e.to_string()))?
        .to_bytes();
    Ok((status, body.len() as u64))
}

/// When measuring starts and stops, and how many measured requests are left.
struct Clock {
    measure_from: Instant,
    deadline: Option<Instant>,
    budget: AtomicU64,
}

/// What one connection saw while measuring.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) latency: Histogram,
    pub(crate) statuses: BTreeMap<u16, u64>,
    pub(crate) errors: BTreeMap<&'static str, u64>,
    pub(crate) first_errors: BTreeMap<&'static str, String>,
    pub(crate) bytes: u64,
    pub(crate) connections: u64,
    pub(crate) last: Option<Instant>,
}

impl Tally {
    fn fail(&mut self, failure: Failure) {
        *self.errors.entry(failure.kind).or_default() += 1;
        self.first_errors
            .entry(failure.kind)
            .or_insert(failure.message);
    }

    pub(crate) fn merge(&mut self, other: Self) {
        self.latency.merge(&other.latency);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
        for (kind, message) in other.first_errors {
            self.first_errors.entry(kind).or_insert(message);
        }
        self.bytes += other.bytes;
        self.connections += other.connections;
        self.last = self.last.max(other.last);
    }
}

async fn connection(plan: Arc<Plan>, clock: Arc<Clock>, addr: SocketAddr) -> Tally {
    let mut tally = Tally::default();
    let mut conn = None;
    loop {
        let start = Instant::now();
        if clock.deadline.is_some_and(|deadline| start >= deadline) {
            break;
        }
        let measured = start >= clock.measure_from;
        if measured
            && clock
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_err()
        {
            break;
        }
        let outcome = tokio::time::timeout(
            plan.timeout,
            exchange(&plan, &mut conn, addr, &mut tally.connections),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Failure::new(
                "timeout",
                format!("no complete answer within {:?}", plan.timeout),
            ))
        });
        let done = Instant::now();
        match outcome {
            Ok((status, bytes)) if measured => {
                let nanos = u64::try_from((done - start).as_nanos()).unwrap_or(u64::MAX);
                tally.latency.record(nanos);
                *tally.statuses.entry(status).or_default() += 1;
                tally.bytes += bytes;
                tally.last = Some(done);
            }
            Ok(_) => {}
            Err(failure) => {
                // The connection may be half-used or gone: start afresh.
                conn = None;
                let pause = matches!(failure.kind, "connect" | "tls");
                if measured {
                    tally.fail(failure);
                    tally.last = Some(done);
                }
                if pause {
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                }
            }
        }
    }
    tally
}

/// Builds the runtime `cli` asks for (`--threads`).
pub fn runtime(cli: &Cli) -> Result<tokio::runtime::Runtime, Error> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = cli.threads {
        builder.worker_threads(threads as usize);
    }
    builder.build().map_err(Error::Runtime)
}

/// Runs the load `cli` describes and reports what was measured. Fails only if
/// the run cannot start (bad URL, unreadable file, bad flags); requests that
/// fail are counted in the report.
pub async fn run(cli: &Cli) -> Result<Report, Error> {
    let plan = Arc::new(Plan::build(cli).await?);
    let duration = match (cli.duration, cli.requests) {
        (None, None) => Some(DEFAULT_DURATION),
        (duration, _) => duration,
    };
    let measure_from = Instant::now() + cli.warmup;
    let clock = Arc::new(Clock {
        measure_from,
        deadline: duration.map(|d| measure_from + d),
        budget: AtomicU64::new(cli.requests.unwrap_or(u64::MAX)),
    });
    let workers: Vec<_> = (0..cli.concurrency as usize)
        .map(|i| {
            let addrs = &plan.target.addrs;
            let addr = addrs[i % addrs.len()];
            tokio::spawn(connection(plan.clone(), clock.clone(), addr))
        })
        .collect();

    tokio::time::sleep_until(measure_from).await;
    let cpu_before = (
        cpu_seconds(None),
        cli.server_pid.and_then(|p| cpu_seconds(Some(p))),
    );
    let mut total = Tally::default();
    for worker in workers {
        match worker.await {
            Ok(tally) => total.merge(tally),
            Err(e) => total.fail(Failure::new(
                "internal",
                format!("a connection task failed: {e}"),
            )),
        }
    }
    let cpu_after = (
        cpu_seconds(None),
        cli.server_pid.and_then(|p| cpu_seconds(Some(p))),
    );
    let elapsed = total
        .last
        .map(|last| last.saturating_duration_since(measure_from))
        .unwrap_or_default();
    let used = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
    Ok(Report::new(
        cli,
        elapsed,
        &total,
        used(cpu_before.0, cpu_after.0),
        used(cpu_before.1, cpu_after.1),
    ))
}
