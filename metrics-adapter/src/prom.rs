//! The Prometheus HTTP API client: instant queries and series discovery.
//!
//! Requests are form-encoded `POST`s by default, which keeps long queries
//! out of URLs (upstream's default `GET` fails with 414 on big queries);
//! when Prometheus (or a proxy in front of it) answers 405 to a `POST`, the
//! client switches to `GET` for good. Every request has a deadline, so an
//! unreachable or slow Prometheus is an error, never a hang.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::naming::Series;

/// Deadline of a series listing (relist, `--check-config`): listing many
/// series takes longer than a metric query, and runs in the background.
pub const SERIES_TIMEOUT: Duration = Duration::from_secs(60);

/// How requests are sent to Prometheus (`--prometheus-verb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Verb {
    /// Form-encoded POST, falling back to GET when Prometheus answers 405.
    #[value(name = "POST", alias = "post")]
    Post,
    /// Query string GET (upstream's default).
    #[value(name = "GET", alias = "get")]
    Get,
}

/// Errors talking to Prometheus; messages name the URL and what failed.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// Connection refused, DNS, TLS: no HTTP answer at all.
    #[error("Prometheus at {url} is unreachable: {detail}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// The transport error.
        detail: String,
    },
    /// No answer within the per-query timeout.
    #[error("Prometheus at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The base URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Prometheus answered with an error status.
    #[error("Prometheus at {url} answered HTTP {status} ({error_type}): {error}")]
    Api {
        /// The base URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// Prometheus' `errorType`, or `http`.
        error_type: String,
        /// Prometheus' `error`, or the start of the body.
        error: String,
    },
    /// The answer was not what the API documents.
    #[error("Prometheus at {url} sent an answer that cannot be read: {detail}")]
    Decode {
        /// The base URL.
        url: String,
        /// What was wrong.
        detail: String,
    },
}

impl PromError {
    /// A stable label for metrics.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            PromError::Unreachable { .. } => "unreachable",
            PromError::Timeout { .. } => "timeout",
            PromError::Api { .. } => "api_error",
            PromError::Decode { .. } => "decode_error",
        }
    }
}

/// Errors setting up the client from flags; each names the flag or file.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// `--prometheus-url` is not an http(s) URL.
    #[error("--prometheus-url {0:?} is not an http:// or https:// URL")]
    Url(String),
    /// A file could not be read.
    #[error("cannot read {flag} file {path}: {source}")]
    Read {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate or key did not parse.
    #[error("{flag} file {path}: {detail}")]
    Pem {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A `--prometheus-header` that is not `Name=value` or `Name: value`.
    #[error(
        "--prometheus-header {0:?}: expected Name=value (or Name: value) with a valid header name and value"
    )]
    Header(String),
    /// Only one of the client certificate and key was given.
    #[error(
        "--prometheus-client-tls-cert-file and --prometheus-client-tls-key-file must be given together"
    )]
    HalfPair,
    /// The auth config file is unusable.
    #[error("--prometheus-auth-config {path}: {detail}")]
    AuthConfig {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// reqwest refused the combination.
    #[error("cannot build the Prometheus client: {0}")]
    Build(String),
}

/// How to reach Prometheus, from the flags.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// Base URL (`http://prometheus:9090`, maybe with a path prefix).
    pub url: String,
    /// PEM CA bundle that signs Prometheus' certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate presented to Prometheus.
    pub client_cert_file: Option<PathBuf>,
    /// PEM key of the client certificate.
    pub client_key_file: Option<PathBuf>,
    /// File holding a bearer token (re-read on every request, so a rotated
    /// projected token is used at once).
    pub token_file: Option<PathBuf>,
    /// Extra headers, `Name=value`.
    pub headers: Vec<String>,
    /// A kubeconfig-format file with the server's CA and the credentials.
    pub auth_config: Option<PathBuf>,
    /// GET or POST.
    pub verb: Option<Verb>,
    /// Per-request deadline.
    pub timeout: Duration,
}

/// A sample of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels (`__name__` removed by most queries).
    pub labels: BTreeMap<String, String>,
    /// Evaluation time, Unix seconds.
    pub timestamp: f64,
    /// The value.
    pub value: f64,
}

/// A Prometheus client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    /// The URL with any user:password replaced, for messages and logs.
    shown: String,
    http: reqwest::Client,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    token_file: Option<PathBuf>,
    static_token: Option<String>,
    /// `true` once POST was refused with 405 (or GET was asked for).
    use_get: AtomicBool,
    timeout: Duration,
}

impl fmt::Debug for Client {
    // Headers and tokens may hold credentials: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.shown)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

fn read_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, ClientSetupError> {
    std::fs::read(path).map_err(|source| ClientSetupError::Read {
        flag,
        path: path.to_owned(),
        source,
    })
}

/// Splits `Name=value` or `Name: value` at the first `=` or `:` (header
/// names contain neither).
pub fn parse_header(h: &str) -> Result<(http::HeaderName, http::HeaderValue), ClientSetupError> {
    let bad = || ClientSetupError::Header(h.to_owned());
    let at = h.find(['=', ':']).ok_or_else(bad)?;
    let name = http::HeaderName::from_bytes(h[..at].trim().as_bytes()).map_err(|_| bad())?;
    let mut value = http::HeaderValue::from_str(h[at + 1..].trim()).map_err(|_| bad())?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// The parts of a kubeconfig `--prometheus-auth-config` may carry.
#[derive(Debug, Default, Deserialize)]
struct KubeConfigFile {
    #[serde(default)]
    clusters: Vec<Named<ClusterEntry>>,
    #[serde(default)]
    users: Vec<Named<UserEntry>>,
}

#[derive(Debug, Deserialize)]
struct Named<T> {
    #[serde(flatten)]
    inner: T,
}

#[derive(Debug, Default, Deserialize)]
struct ClusterEntry {
    #[serde(default)]
    cluster: ClusterFields,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ClusterFields {
    certificate_authority: Option<PathBuf>,
    certificate_authority_data: Option<String>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Default, Deserialize)]
struct UserEntry {
    #[serde(default)]
    user: UserFields,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct UserFields {
    client_certificate: Option<PathBuf>,
    client_certificate_data: Option<String>,
    client_key: Option<PathBuf>,
    client_key_data: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
}

fn b64(path: &Path, field: &str, data: &str) -> Result<Vec<u8>, ClientSetupError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| ClientSetupError::AuthConfig {
            path: path.to_owned(),
            detail: format!("{field} is not base64: {e}"),
        })
}

impl Client {
    /// Builds a client from the flags, reading every file now so a typo
    /// fails at startup.
    ///
    /// # Errors
    /// An unusable URL, file, certificate or header.
    pub fn new(opts: &ClientOptions) -> Result<Self, ClientSetupError> {
        // Kept as given: a path prefix and a query string survive into every
        // request (`tailor_runtime::url::join`).
        let url = opts.url.clone();
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || reqwest::Url::parse(&url).is_err()
        {
            // Shown redacted: a URL that fails to parse may still carry a
            // password or a token.
            return Err(ClientSetupError::Url(tailor_runtime::redact::url(
                &opts.url,
            )));
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true);
        let mut cas: Vec<(&'static str, PathBuf, Vec<u8>)> = Vec::new();
        let mut identity: Option<(&'static str, PathBuf, Vec<u8>, Vec<u8>)> = None;
        let mut token_file = opts.token_file.clone();
        let mut static_token = None;
        if let Some(path) = &opts.auth_config {
            let text = read_file("--prometheus-auth-config", path)?;
            let kc: KubeConfigFile =
                serde_yaml::from_slice(&text).map_err(|e| ClientSetupError::AuthConfig {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            let dir = path.parent().unwrap_or(Path::new("."));
            if let Some(c) = kc.clusters.first().map(|c| &c.inner.cluster) {
                if let Some(ca) = &c.certificate_authority {
                    cas.push((
                        "--prometheus-auth-config",
                        dir.join(ca),
                        read_file("--prometheus-auth-config", &dir.join(ca))?,
                    ));
                }
                if let Some(data) = &c.certificate_authority_data {
                    cas.push((
                        "--prometheus-auth-config",
                        path.clone(),
                        b64(path, "certificate-authority-data", data)?,
                    ));
                }
                if c.insecure_skip_tls_verify {
                    builder = builder.danger_accept_invalid_certs(true);
                }
            }
            if let Some(u) = kc.users.first().map(|u| &u.inner.user) {
                let cert = match (&u.client_certificate, &u.client_certificate_data) {
                    (_, Some(d)) => Some(b64(path, "client-certificate-data", d)?),
                    (Some(f), None) => Some(read_file("--prometheus-auth-config", &dir.join(f))?),
                    _ => None,
                };
                let key = match (&u.client_key, &u.client_key_data) {
                    (_, Some(d)) => Some(b64(path, "client-key-data", d)?),
                    (Some(f), None) => Some(read_file("--prometheus-auth-config", &dir.join(f))?),
                    _ => None,
                };
                match (cert, key) {
                    (Some(c), Some(k)) => {
                        identity = Some(("--prometheus-auth-config", path.clone(), c, k))
                    }
                    (None, None) => {}
                    _ => {
                        return Err(ClientSetupError::AuthConfig {
                            path: path.clone(),
                            detail: "the user needs both a client certificate and a client key"
                                .into(),
                        });
                    }
                }
                if let Some(t) = &u.token {
                    static_token = Some(t.trim().to_owned());
                }
                if let Some(f) = &u.token_file {
                    token_file = Some(dir.join(f));
                }
            }
        }
        if let Some(path) = &opts.ca_file {
            cas.push((
                "--prometheus-ca-file",
                path.clone(),
                read_file("--prometheus-ca-file", path)?,
            ));
        }
        match (&opts.client_cert_file, &opts.client_key_file) {
            (Some(c), Some(k)) => {
                identity = Some((
                    "--prometheus-client-tls-cert-file",
                    c.clone(),
                    read_file("--prometheus-client-tls-cert-file", c)?,
                    read_file("--prometheus-client-tls-key-file", k)?,
                ));
            }
            (None, None) => {}
            _ => return Err(ClientSetupError::HalfPair),
        }
        for (flag, path, pem) in cas {
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientSetupError::Pem {
                    flag,
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(ClientSetupError::Pem {
                    flag,
                    path,
                    detail: "no PEM certificate in it".into(),
                });
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        if let Some((flag, path, mut cert, key)) = identity {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            let id = reqwest::Identity::from_pem(&cert).map_err(|e| ClientSetupError::Pem {
                flag,
                path,
                detail: e.to_string(),
            })?;
            builder = builder.identity(id);
        }
        if let Some(path) = &token_file {
            // Read once now so a wrong path fails at startup.
            read_file("--prometheus-token-file", path)?;
        }
        let headers = opts
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        let http = builder
            .build()
            .map_err(|e| ClientSetupError::Build(e.to_string()))?;
        let shown = tailor_runtime::redact::url(&url);
        Ok(Client {
            inner: Arc::new(Inner {
                url,
                shown,
                http,
                headers,
                token_file,
                static_token,
                use_get: AtomicBool::new(opts.verb == Some(Verb::Get)),
                timeout: opts.timeout,
            }),
        })
    }

    /// The base URL, without credentials.
    #[must_use]
    pub fn shown_url(&self) -> &str {
        &self.inner.shown
    }

    /// The per-request timeout.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    fn transport(&self, e: &reqwest::Error, timeout: Duration) -> PromError {
        if e.is_timeout() {
            PromError::Timeout {
                url: self.inner.shown.clone(),
                timeout,
            }
        } else {
            // The error's chain names the cause (refused, DNS, certificate).
            // reqwest names the full request URL, credentials and token
            // parameters included: show it redacted.
            let mut detail = e.to_string();
            if let Some(u) = e.url() {
                detail = detail.replace(u.as_str(), &tailor_runtime::redact::url(u.as_str()));
            }
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                detail.push_str(": ");
                detail.push_str(&s.to_string());
                src = s.source();
            }
            PromError::Unreachable {
                url: self.inner.shown.clone(),
                detail,
            }
        }
    }

    /// Sends one API call and returns the body of a 2xx answer.
    async fn call(
        &self,
        path: &str,
        params: &[(&str, String)],
        timeout: Duration,
    ) -> Result<axum::body::Bytes, PromError> {
        let url = tailor_runtime::url::join(&self.inner.url, path);
        loop {
            let get = self.inner.use_get.load(Ordering::Relaxed);
            let mut req = if get {
                self.inner.http.get(&url).query(params)
            } else {
                self.inner.http.post(&url).form(params)
            }
            .timeout(timeout);
            for (k, v) in &self.inner.headers {
                req = req.header(k, v);
            }
            let token = match &self.inner.token_file {
                Some(path) => tokio::fs::read_to_string(path)
                    .await
                    .ok()
                    .map(|t| t.trim().to_owned()),
                None => self.inner.static_token.clone(),
            };
            if let Some(t) = token.filter(|t| !t.is_empty()) {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.map_err(|e| self.transport(&e, timeout))?;
            let status = resp.status();
            if !get && status == reqwest::StatusCode::METHOD_NOT_ALLOWED {
                tracing::warn!(url = %self.inner.shown, "Prometheus refused POST (405); using GET from now on");
                self.inner.use_get.store(true, Ordering::Relaxed);
                continue;
            }
            let body = resp
                .bytes()
                .await
                .map_err(|e| self.transport(&e, timeout))?;
            if status.is_success() {
                return Ok(body);
            }
            #[derive(Deserialize)]
            struct ErrorBody {
                #[serde(rename = "errorType", default)]
                error_type: String,
                #[serde(default)]
                error: String,
            }
            let (error_type, error) = match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(b) => (b.error_type, b.error),
                Err(_) => (
                    "http".to_owned(),
                    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                ),
            };
            return Err(PromError::Api {
                url: self.inner.shown.clone(),
                status: status.as_u16(),
                error_type,
                error,
            });
        }
    }

    fn decode_err(&self, detail: impl ToString) -> PromError {
        PromError::Decode {
            url: self.inner.shown.clone(),
            detail: detail.to_string(),
        }
    }

    /// Evaluates an instant query now.
    ///
    /// # Errors
    /// See [`PromError`]; a result that is not an instant vector is a decode error.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, PromError> {
        let timeout = format!("{}ms", self.inner.timeout.as_millis().max(1));
        let body = self
            .call(
                "/api/v1/query",
                &[("query", promql.to_owned()), ("timeout", timeout)],
                self.inner.timeout,
            )
            .await?;
        parse_query_response(&body).map_err(|e| self.decode_err(e))
    }

    /// The distinct (name, label names) of the series matching `selector`
    /// that had samples in the last `max_age`. Label values are dropped as
    /// they are read, so memory follows the distinct label sets, not the
    /// series count.
    ///
    /// # Errors
    /// See [`PromError`].
    pub async fn series(&self, selector: &str, max_age: Duration) -> Result<SeriesList, PromError> {
        let body = self.series_body(selector, max_age).await?;
        parse_series_list(&body).map_err(|e| self.decode_err(e))
    }

    /// The series matching `selector` in the last `max_age`, with their
    /// label values (for `--check-config`, which matches rules locally).
    ///
    /// # Errors
    /// See [`PromError`].
    pub async fn series_with_values(
        &self,
        selector: &str,
        max_age: Duration,
    ) -> Result<Vec<BTreeMap<String, String>>, PromError> {
        let body = self.series_body(selector, max_age).await?;
        let env: Envelope<Vec<BTreeMap<String, String>>> =
            serde_json::from_slice(&body).map_err(|e| self.decode_err(e))?;
        if env.status != "success" {
            return Err(self.decode_err(format!("status {:?}: {}", env.status, env.error)));
        }
        Ok(env.data.unwrap_or_default())
    }

    async fn series_body(
        &self,
        selector: &str,
        max_age: Duration,
    ) -> Result<axum::body::Bytes, PromError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let start = now - max_age.as_secs_f64();
        self.call(
            "/api/v1/series",
            &[
                ("match[]", selector.to_owned()),
                ("start", format!("{start:.3}")),
                ("end", format!("{now:.3}")),
            ],
            SERIES_TIMEOUT.max(self.inner.timeout),
        )
        .await
    }
}

#[derive(Deserialize)]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    #[serde(default)]
    error: String,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum QueryData {
    Vector(Vec<VectorSample>),
    Scalar((f64, String)),
    Matrix(IgnoredAny),
    String(IgnoredAny),
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Prometheus' float text (`"1.5"`, `"NaN"`, `"+Inf"`).
fn parse_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        s => s.parse().ok(),
    }
}

/// Reads a `/api/v1/query` answer; a scalar becomes one sample without labels.
///
/// # Errors
/// Not JSON, not success, or a matrix/string result.
pub fn parse_query_response(body: &[u8]) -> Result<Vec<Sample>, String> {
    let env: Envelope<QueryData> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if env.status != "success" {
        return Err(format!("status {:?}: {}", env.status, env.error));
    }
    let sample = |metric, (ts, v): (f64, String)| {
        parse_float(&v)
            .map(|value| Sample {
                labels: metric,
                timestamp: ts,
                value,
            })
            .ok_or_else(|| format!("value {v:?} is not a number"))
    };
    match env.data {
        Some(QueryData::Vector(v)) => v.into_iter().map(|s| sample(s.metric, s.value)).collect(),
        Some(QueryData::Scalar(s)) => Ok(vec![sample(BTreeMap::new(), s)?]),
        Some(QueryData::Matrix(_)) => {
            Err("the query returned a range vector; metrics need an instant vector".into())
        }
        Some(QueryData::String(_)) => {
            Err("the query returned a string; metrics need an instant vector".into())
        }
        None => Err("no data".into()),
    }
}

/// Series (name + label names), deduplicated while reading.
/// Distinct series, and how many label sets were read.
struct SeriesSet(BTreeSet<Series>, usize);

impl<'de> Deserialize<'de> for SeriesSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SeqV;
        impl<'de> Visitor<'de> for SeqV {
            type Value = SeriesSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of label sets")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SeriesSet, A::Error> {
                let mut set = BTreeSet::new();
                let mut listed = 0;
                while let Some(LabelNames(s)) = seq.next_element()? {
                    listed += 1;
                    if let Some(s) = s {
                        set.insert(s);
                    }
                }
                Ok(SeriesSet(set, listed))
            }
        }
        d.deserialize_seq(SeqV)
    }
}

/// One series' `__name__` and label names; other values are skipped unread.
struct LabelNames(Option<Series>);

impl<'de> Deserialize<'de> for LabelNames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapV;
        impl<'de> Visitor<'de> for MapV {
            type Value = LabelNames;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a label set")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelNames, A::Error> {
                let mut name = None;
                let mut labels = BTreeSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "__name__" {
                        name = Some(map.next_value::<String>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        labels.insert(key);
                    }
                }
                Ok(LabelNames(name.map(|name| Series { name, labels })))
            }
        }
        d.deserialize_map(MapV)
    }
}

/// Reads a `/api/v1/series` answer into distinct (name, label names).
///
/// # Errors
/// Not JSON or not success.
pub fn parse_series_response(body: &[u8]) -> Result<Vec<Series>, String> {
    parse_series_list(body).map(|l| l.series)
}

/// A series listing: the distinct (name, label names), and how many series
/// Prometheus listed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeriesList {
    /// Distinct name + label-name sets.
    pub series: Vec<Series>,
    /// Series Prometheus returned.
    pub listed: usize,
}

/// Reads a `/api/v1/series` answer into a [`SeriesList`].
///
/// # Errors
/// Not JSON or not success.
pub fn parse_series_list(body: &[u8]) -> Result<SeriesList, String> {
    let env: Envelope<SeriesSet> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if env.status != "success" {
        return Err(format!("status {:?}: {}", env.status, env.error));
    }
    let set = env.data.ok_or_else(|| "no data".to_owned())?;
    Ok(SeriesList {
        series: set.0.into_iter().collect(),
        listed: set.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_answers_parse_vectors_scalars_and_special_floats() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1700000000.5,"1.5"]},
            {"metric":{"pod":"b"},"value":[1700000000.5,"+Inf"]}]}}"#;
        let s = parse_query_response(body).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels["pod"], "a");
        assert_eq!(s[0].value, 1.5);
        assert_eq!(s[0].timestamp, 1_700_000_000.5);
        assert!(s[1].value.is_infinite());
        let body = br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#;
        assert_eq!(parse_query_response(body).unwrap()[0].value, 2.0);
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(
            parse_query_response(body)
                .unwrap_err()
                .contains("range vector")
        );
        assert!(parse_query_response(b"<html>").is_err());
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#;
        assert!(parse_query_response(body).unwrap_err().contains("\"x\""));
    }

    #[test]
    fn series_answers_keep_names_and_label_names_only() {
        let body = br#"{"status":"success","data":[
            {"__name__":"http_requests_total","pod":"a","namespace":"x"},
            {"__name__":"http_requests_total","pod":"b","namespace":"y"},
            {"__name__":"up","job":"j"},
            {"pod":"nameless"}]}"#;
        let s = parse_series_response(body).unwrap();
        assert_eq!(
            s,
            vec![
                Series::new("http_requests_total", ["namespace", "pod"]),
                Series::new("up", ["job"]),
            ]
        );
        assert_eq!(parse_series_list(body).unwrap().listed, 4);
        assert!(
            parse_series_response(br#"{"status":"error","error":"bad"}"#)
                .unwrap_err()
                .contains("bad")
        );
    }

    #[test]
    fn headers_split_at_the_first_separator() {
        let (n, v) = parse_header("X-Scope-OrgID=tenant=a").unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("x-scope-orgid", "tenant=a")
        );
        let (n, v) = parse_header("Authorization: Basic YWJj").unwrap();
        assert_eq!(
            (n.as_str(), v.to_str().unwrap()),
            ("authorization", "Basic YWJj")
        );
        assert!(parse_header("novalue").is_err());
        assert!(parse_header("bad name=x").is_err());
        assert!(parse_header("X=line\nbreak").is_err());
    }

    #[tokio::test]
    async fn transport_errors_never_show_credentials() {
        // Port 1 on loopback refuses the connection: reqwest's error names
        // the request URL, which must come out redacted.
        let c = Client::new(&ClientOptions {
            url: "http://admin:s3cret@127.0.0.1:1/prom?token=t0ken".into(),
            timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        })
        .unwrap();
        let e = c.query("up").await.unwrap_err();
        let shown = format!("{e} {e:?}");
        assert!(shown.contains("127.0.0.1:1"), "{shown}");
        for secret in ["admin", "s3cret", "t0ken"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn bad_urls_and_half_pairs_are_refused_naming_the_flag() {
        let opts = |url: &str| ClientOptions {
            url: url.into(),
            timeout: Duration::from_secs(1),
            ..ClientOptions::default()
        };
        assert!(Client::new(&opts("http://localhost:9090/")).is_ok());
        let c = Client::new(&opts("http://admin:s3cret@p:9090")).unwrap();
        assert_eq!(c.shown_url(), "http://***@p:9090");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(matches!(
            Client::new(&opts("localhost:9090")),
            Err(ClientSetupError::Url(_))
        ));
        let err = Client::new(&opts("http://admin:s3cret@bad host:9090/?token=t0ken"))
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("s3cret") && !err.contains("t0ken"), "{err}");
        assert!(err.contains("bad host:9090"), "{err}");
        let mut o = opts("http://p");
        o.client_cert_file = Some("/x".into());
        assert!(matches!(Client::new(&o), Err(ClientSetupError::HalfPair)));
        let mut o = opts("http://p");
        o.ca_file = Some("/nonexistent/ca.crt".into());
        let e = Client::new(&o).unwrap_err().to_string();
        assert!(
            e.contains("--prometheus-ca-file") && e.contains("/nonexistent/ca.crt"),
            "{e}"
        );
    }
}
