//! An HTTP proxy in front of an AWS endpoint (moto) that answers chosen API
//! actions with AWS's throttling error, then forwards them.
//!
//! moto never throttles, so retry and backoff code would otherwise go
//! untested. The proxy reads the `Action` of each Query-protocol request (the
//! form body the SDK POSTs for Auto Scaling and EC2), answers the next N calls
//! of an action as AWS does when it rate-limits — Auto Scaling (awsQuery):
//! HTTP 400 with `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>…`;
//! EC2 (ec2Query): HTTP 503 with `<Response><Errors><Error><Code>RequestLimitExceeded</Code>…`
//! — and forwards everything else unchanged. Every call is recorded with the
//! attempt number the SDK puts in its `amz-sdk-request` header.
//!
//! ```no_run
//! # async fn example() -> tailor_testkit::Result<()> {
//! use tailor_testkit::{Moto, ThrottlingProxy};
//! let moto = Moto::start().await?;
//! let proxy = ThrottlingProxy::start(moto.endpoint()).await?;
//! proxy.throttle("SetDesiredCapacity", 2);
//! // point the SDK at proxy.endpoint() …
//! assert_eq!(proxy.calls("SetDesiredCapacity").len(), 3);
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// One call the proxy received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// The SDK's attempt number (`amz-sdk-request: attempt=N; max=M`), 1 for
    /// the first try; `None` when the header is missing.
    pub attempt: Option<u32>,
    /// Answered with the throttling error (else forwarded).
    pub throttled: bool,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Action → how many more calls to throttle (`None`: every call).
    throttle: HashMap<String, Option<u32>>,
    /// Action → calls in arrival order, with their arrival time.
    calls: HashMap<String, Vec<(Call, Instant)>>,
}

#[derive(Clone, Debug)]
struct Shared {
    upstream: String,
    client: reqwest::Client,
    ledger: Arc<Mutex<Ledger>>,
}

fn lock(ledger: &Mutex<Ledger>) -> MutexGuard<'_, Ledger> {
    // Nothing is left half-written under the lock; keep serving after a panic.
    ledger.lock().unwrap_or_else(|p| p.into_inner())
}

/// An HTTP proxy on loopback in front of an AWS endpoint; the server task is
/// aborted on drop.
#[derive(Debug)]
pub struct ThrottlingProxy {
    address: SocketAddr,
    ledger: Arc<Mutex<Ledger>>,
    task: JoinHandle<()>,
}

impl ThrottlingProxy {
    /// Binds `127.0.0.1:0` and forwards to `upstream` (e.g. [`crate::Moto::endpoint`]).
    pub async fn start(upstream: &str) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::Port)?;
        let address = listener.local_addr().map_err(Error::Port)?;
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            // No system proxy: the upstream is on loopback.
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| Error::Http {
                    url: upstream.to_owned(),
                    message: e.to_string(),
                })?,
            ledger: ledger.clone(),
        };
        let app = Router::new().fallback(handle).with_state(shared);
        let task = tokio::spawn(async move {
            // Ends only on abort (drop); a failing accept shows up as the
            // test's AWS calls failing with a transport error.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            ledger,
            task,
        })
    }

    /// The URL to give the SDK as its endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Answers the next `times` calls of `action` (e.g. `SetDesiredCapacity`)
    /// with the throttling error. Replaces an earlier setting for the action.
    pub fn throttle(&self, action: &str, times: u32) {
        lock(&self.ledger)
            .throttle
            .insert(action.to_owned(), Some(times));
    }

    /// Answers every call of `action` with the throttling error.
    pub fn throttle_always(&self, action: &str) {
        lock(&self.ledger).throttle.insert(action.to_owned(), None);
    }

    /// The calls of `action` so far, in arrival order.
    pub fn calls(&self, action: &str) -> Vec<Call> {
        lock(&self.ledger)
            .calls
            .get(action)
            .map(|calls| calls.iter().map(|(c, _)| c.clone()).collect())
            .unwrap_or_default()
    }

    /// The time between consecutive calls of `action` as they arrived: a
    /// client backing off waits at least its backoff between them.
    pub fn gaps(&self, action: &str) -> Vec<Duration> {
        lock(&self.ledger)
            .calls
            .get(action)
            .map(|calls| {
                calls
                    .windows(2)
                    .map(|w| w[1].1.duration_since(w[0].1))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many calls of `action` reached the upstream.
    pub fn forwarded(&self, action: &str) -> usize {
        self.calls(action).iter().filter(|c| !c.throttled).count()
    }
}

impl Drop for ThrottlingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A form-encoded Query-protocol body's value for `key` (`Action`, `Version`).
fn form_value<'a>(body: &'a [u8], key: &str) -> Option<&'a str> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// `amz-sdk-request: attempt=2; max=5` → 2.
fn attempt(headers: &HeaderMap) -> Option<u32> {
    headers
        .get("amz-sdk-request")?
        .to_str()
        .ok()?
        .split(';')
        .find_map(|part| part.trim().strip_prefix("attempt=")?.parse().ok())
}

/// EC2's API version; its Query dialect has its own error shape.
const EC2_VERSION: &str = "2016-11-15";

fn throttled(version: Option<&str>) -> Response {
    let (status, body) = if version == Some(EC2_VERSION) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
             <Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>\
             </Error></Errors><RequestID>tailor-testkit-throttle</RequestID></Response>",
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">\
             <Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>\
             <RequestId>tailor-testkit-throttle</RequestId></ErrorResponse>",
        )
    };
    (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response()
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let action = form_value(&body, "Action")
        .or_else(|| uri.query().and_then(|q| form_value(q.as_bytes(), "Action")))
        .unwrap_or("")
        .to_owned();
    let throttle = {
        let mut ledger = lock(&shared.ledger);
        let throttle = match ledger.throttle.get_mut(&action) {
            Some(None) => true,
            Some(Some(n)) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        ledger.calls.entry(action).or_default().push((
            Call {
                attempt: attempt(&headers),
                throttled: throttle,
            },
            Instant::now(),
        ));
        throttle
    };
    if throttle {
        return throttled(form_value(&body, "Version"));
    }
    forward(&shared, method, &uri, &headers, body).await
}

async fn forward(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = shared
        .client
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in headers {
        // reqwest sets these for the upstream connection.
        if name != header::HOST && name != header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(upstream) => {
            let status = upstream.status();
            let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
            match upstream.bytes().await {
                Ok(bytes) => {
                    let mut response = (status, bytes).into_response();
                    if let Some(ct) = content_type {
                        response.headers_mut().insert(header::CONTENT_TYPE, ct);
                    }
                    response
                }
                Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
            }
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_action_and_the_attempt() {
        let body = b"Action=SetDesiredCapacity&Version=2011-01-01&AutoScalingGroupName=a";
        assert_eq!(form_value(body, "Action"), Some("SetDesiredCapacity"));
        assert_eq!(form_value(body, "Version"), Some("2011-01-01"));
        assert_eq!(form_value(body, "Missing"), None);
        let mut headers = HeaderMap::new();
        headers.insert("amz-sdk-request", "attempt=3; max=5".parse().unwrap());
        assert_eq!(attempt(&headers), Some(3));
    }
}
