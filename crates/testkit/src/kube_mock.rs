//! A scripted Kubernetes API for tests of the code that calls it.
//!
//! The API server cannot run here, so the thin kube-calling code of each binary is
//! tested against a script: every request the code should make, in order, with
//! its method, path, query parameters and (optionally) its exact JSON body, and
//! the response the API server would give. Anything else — a request out of
//! order, a different body, a request after the script ends, a scripted request
//! that never came — fails the test with both sides printed.
//!
//! ```no_run
//! # async fn example() {
//! use serde_json::json;
//! use tailor_testkit::kube_mock::{Exchange, KubeMock};
//!
//! let (client, mock) = KubeMock::pair();
//! let api = mock.run(vec![
//!     Exchange::post("/api/v1/namespaces/shop/pods/web-0/eviction")
//!         .body(json!({"apiVersion": "policy/v1", "kind": "Eviction",
//!                      "metadata": {"name": "web-0", "namespace": "shop"}}))
//!         .respond_status(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget."),
//! ]);
//! // ... run the code under test with `client` ...
//! # drop(client);
//! api.verify().await; // panics naming every difference
//! # }
//! ```
//!
//! Query parameters are compared as a multiset of decoded `key=value` pairs, so
//! their order does not matter; the path is compared exactly.

#![allow(clippy::panic)]

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

/// How long [`ScriptHandle::verify`] and [`ScriptHandle::wait_consumed`] wait for
/// scripted requests that have not arrived yet, so a broken test fails instead of
/// hanging. Generous because CI machines are slow; a passing test never waits it out.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// One expected request and the response to give it.
#[derive(Clone, Debug)]
pub struct Exchange {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    body: BodyExpectation,
    content_type: Option<String>,
    status: u16,
    response: String,
}

#[derive(Clone, Debug)]
enum BodyExpectation {
    /// Anything (or nothing).
    Any,
    /// No body at all.
    Empty,
    /// Exactly this JSON document.
    Json(Value),
}

impl Exchange {
    /// Expects `method` on `path_and_query` (e.g. `/api/v1/pods?labelSelector=app%3Dweb`),
    /// with any body, and answers `200 {}` unless told otherwise.
    pub fn new(method: Method, path_and_query: &str) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path.to_owned(), parse_query(query)),
            None => (path_and_query.to_owned(), Vec::new()),
        };
        Self {
            method,
            path,
            query,
            body: BodyExpectation::Any,
            content_type: None,
            status: 200,
            response: "{}".to_owned(),
        }
    }

    /// Expects a GET (list, get or watch).
    pub fn get(path_and_query: &str) -> Self {
        Self::new(Method::GET, path_and_query).empty_body()
    }

    /// Expects a POST (create, or a subresource such as an eviction).
    pub fn post(path_and_query: &str) -> Self {
        Self::new(Method::POST, path_and_query)
    }

    /// Expects a PATCH (including server-side apply).
    pub fn patch(path_and_query: &str) -> Self {
        Self::new(Method::PATCH, path_and_query)
    }

    /// Expects a PUT (replace).
    pub fn put(path_and_query: &str) -> Self {
        Self::new(Method::PUT, path_and_query)
    }

    /// Expects a DELETE.
    pub fn delete(path_and_query: &str) -> Self {
        Self::new(Method::DELETE, path_and_query)
    }

    /// The request body must be exactly this JSON document.
    pub fn body(mut self, body: Value) -> Self {
        self.body = BodyExpectation::Json(body);
        self
    }

    /// The request must carry no body.
    pub fn empty_body(mut self) -> Self {
        self.body = BodyExpectation::Empty;
        self
    }

    /// The request body is not checked.
    pub fn any_body(mut self) -> Self {
        self.body = BodyExpectation::Any;
        self
    }

    /// The request's `Content-Type` must be this (e.g. `application/apply-patch+yaml`).
    pub fn content_type(mut self, content_type: &str) -> Self {
        self.content_type = Some(content_type.to_owned());
        self
    }

    /// Answers with `status` and this JSON body.
    pub fn respond(mut self, status: u16, body: Value) -> Self {
        self.status = status;
        self.response = body.to_string();
        self
    }

    /// Answers with `status` and this raw body (e.g. a watch stream).
    pub fn respond_raw(mut self, status: u16, body: impl Into<String>) -> Self {
        self.status = status;
        self.response = body.into();
        self
    }

    /// Answers a watch with these events (`{"type": ..., "object": ...}`), one per
    /// line, then ends the stream as the API server does when a watch times out.
    pub fn respond_watch(self, events: &[Value]) -> Self {
        let mut lines = String::new();
        for event in events {
            lines.push_str(&event.to_string());
            lines.push('\n');
        }
        self.respond_raw(200, lines)
    }

    /// Answers with a Kubernetes `Status` failure, as the API server does.
    pub fn respond_status(self, code: u16, reason: &str, message: &str) -> Self {
        self.respond(code, status_body(code, reason, message))
    }

    fn describe(&self) -> String {
        let mut out = format!("{} {}", self.method, self.path);
        if !self.query.is_empty() {
            out.push('?');
            out.push_str(&render_query(&self.query));
        }
        out
    }
}

/// A Kubernetes `Status` failure body.
pub fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

/// A request the code under test made, as the mock received it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The HTTP method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// Decoded query parameters, in the order sent.
    pub query: Vec<(String, String)>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, parsed as JSON when it is JSON, else as a string.
    pub body: Option<Value>,
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)?;
        if !self.query.is_empty() {
            write!(f, "?{}", render_query(&self.query))?;
        }
        if let Some(body) = &self.body {
            let pretty = serde_json::to_string_pretty(body).unwrap_or_default();
            write!(f, "\n  body: {pretty}")?;
        }
        Ok(())
    }
}

/// The mock API server's side of a [`kube::Client`].
pub struct KubeMock {
    handle: Handle<Request<Body>, Response<Body>>,
}

impl KubeMock {
    /// A client whose every request goes to the returned mock (default namespace `default`).
    pub fn pair() -> (kube::Client, KubeMock) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        (kube::Client::new(service, "default"), KubeMock { handle })
    }

    /// Serves `script` in the background; call [`ScriptHandle::verify`] at the end.
    pub fn run(self, script: Vec<Exchange>) -> ScriptHandle {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (consumed_tx, consumed_rx) = watch::channel(0usize);
        let total = script.len();
        let task = tokio::spawn(serve(self.handle, script, stop_rx, consumed_tx));
        ScriptHandle {
            task,
            stop: Some(stop_tx),
            consumed: consumed_rx,
            total,
        }
    }
}

/// What the background server found.
#[derive(Debug, Default)]
struct Outcome {
    failures: Vec<String>,
    received: Vec<Received>,
    pending: Vec<String>,
}

/// The running script.
pub struct ScriptHandle {
    task: JoinHandle<Outcome>,
    stop: Option<oneshot::Sender<()>>,
    consumed: watch::Receiver<usize>,
    total: usize,
}

impl ScriptHandle {
    /// Waits until every scripted request has arrived (for code that runs in the
    /// background); panics after [`DEFAULT_WAIT`] naming how many are missing.
    pub async fn wait_consumed(&mut self) {
        let total = self.total;
        let timed_out = {
            let arrived = self.consumed.wait_for(|n| *n >= total);
            tokio::time::timeout(DEFAULT_WAIT, arrived).await.is_err()
        };
        // A closed channel means the server stopped; verify() reports why.
        if timed_out {
            let seen = *self.consumed.borrow();
            panic!("kube mock: only {seen} of {total} scripted requests arrived");
        }
    }

    /// Stops the mock and panics unless every scripted request arrived, in order,
    /// as scripted, and nothing else did. Returns what was received.
    pub async fn verify(mut self) -> Vec<Received> {
        self.wait_consumed().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let outcome = match self.task.await {
            Ok(outcome) => outcome,
            Err(error) => panic!("kube mock: server task failed: {error}"),
        };
        let mut problems = outcome.failures;
        for pending in &outcome.pending {
            problems.push(format!("scripted but never received: {pending}"));
        }
        if !problems.is_empty() {
            let received: Vec<String> = outcome.received.iter().map(|r| r.to_string()).collect();
            panic!(
                "kube mock: {} problem(s):\n- {}\nreceived, in order:\n{}",
                problems.len(),
                problems.join("\n- "),
                received.join("\n")
            );
        }
        outcome.received
    }
}

async fn serve(
    mut handle: Handle<Request<Body>, Response<Body>>,
    script: Vec<Exchange>,
    mut stop: oneshot::Receiver<()>,
    consumed: watch::Sender<usize>,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut script = script.into_iter().enumerate();
    loop {
        let next = tokio::select! {
            biased;
            next = handle.next_request() => next,
            _ = &mut stop => break,
        };
        let Some((request, send)) = next else { break };
        let received = read_request(request).await;
        outcome.received.push(received.clone());
        let response = match script.next() {
            Some((index, expected)) => {
                let differences = compare(&expected, &received);
                if !differences.is_empty() {
                    outcome.failures.push(format!(
                        "request #{} differs from the script ({}):\n    {}\n  received: {received}",
                        index + 1,
                        expected.describe(),
                        differences.join("\n    ")
                    ));
                }
                consumed.send_replace(index + 1);
                (expected.status, expected.response)
            }
            None => {
                outcome
                    .failures
                    .push(format!("request after the script ended: {received}"));
                let body = status_body(500, "InternalError", "kube mock: unscripted request");
                (500, body.to_string())
            }
        };
        send.send_response(build_response(response.0, response.1));
    }
    outcome.pending = script.map(|(_, e)| e.describe()).collect();
    outcome
}

fn build_response(status: u16, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body.into_bytes()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn read_request(request: Request<Body>) -> Received {
    let (parts, body) = request.into_parts();
    let bytes = body.collect_bytes().await.unwrap_or_default();
    let body = if bytes.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice::<Value>(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        )
    };
    Received {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(parse_query).unwrap_or_default(),
        content_type: parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    }
}

fn compare(expected: &Exchange, received: &Received) -> Vec<String> {
    let mut differences = Vec::new();
    if expected.method != received.method {
        differences.push(format!(
            "method: expected {}, got {}",
            expected.method, received.method
        ));
    }
    if expected.path != received.path {
        differences.push(format!(
            "path: expected {}, got {}",
            expected.path, received.path
        ));
    }
    if multiset(&expected.query) != multiset(&received.query) {
        differences.push(format!(
            "query: expected {:?}, got {:?}",
            render_query(&expected.query),
            render_query(&received.query)
        ));
    }
    if let Some(content_type) = &expected.content_type
        && received.content_type.as_deref() != Some(content_type.as_str())
    {
        differences.push(format!(
            "content-type: expected {content_type}, got {:?}",
            received.content_type
        ));
    }
    match (&expected.body, &received.body) {
        (BodyExpectation::Any, _) | (BodyExpectation::Empty, None) => {}
        (BodyExpectation::Empty, Some(body)) => {
            differences.push(format!("body: expected none, got {body}"));
        }
        (BodyExpectation::Json(want), got) if got.as_ref() != Some(want) => {
            let want = serde_json::to_string_pretty(want).unwrap_or_default();
            let got = got
                .as_ref()
                .map(|g| serde_json::to_string_pretty(g).unwrap_or_default())
                .unwrap_or_else(|| "(none)".to_owned());
            differences.push(format!("body: expected\n{want}\n  got\n{got}"));
        }
        (BodyExpectation::Json(_), _) => {}
    }
    differences
}

fn multiset(query: &[(String, String)]) -> BTreeMap<&(String, String), usize> {
    let mut counts = BTreeMap::new();
    for pair in query {
        *counts.entry(pair).or_insert(0) += 1;
    }
    counts
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// Percent-decodes a query component (`+` is a space, as form encoding says).
fn decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

fn render_query(query: &[(String, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
    use rstest::rstest;

    fn configmap(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "shop"}, "data": {"a": "1"}})
    }

    #[rstest]
    #[case("a=1&b=2", "b=2&a=1", true)]
    #[case("labelSelector=app%3Dweb", "labelSelector=app=web", true)]
    #[case("a=1&a=1", "a=1", false)]
    #[case("a=1", "a=2", false)]
    #[case("x=a+b", "x=a%20b", true)]
    fn queries_compare_as_decoded_multisets(
        #[case] left: &str,
        #[case] right: &str,
        #[case] equal: bool,
    ) {
        let l = parse_query(left);
        let r = parse_query(right);
        assert_eq!(multiset(&l) == multiset(&r), equal);
    }

    #[rstest]
    #[case("%", "%")]
    #[case("%4", "%4")]
    #[case("%41", "A")]
    #[case("%zz", "%zz")]
    #[case("a%2Fb", "a/b")]
    #[case("%é", "%é")]
    fn decoding_never_panics_on_truncated_escapes(#[case] input: &str, #[case] want: &str) {
        assert_eq!(decode(input), want);
    }

    #[tokio::test]
    async fn a_script_followed_exactly_passes_and_returns_the_requests() {
        let (client, mock) = KubeMock::pair();
        let api = mock.run(vec![
            Exchange::get("/api/v1/namespaces/shop/configmaps/a").respond(200, configmap("a")),
            Exchange::patch("/api/v1/namespaces/shop/configmaps/a?fieldManager=tailor&force=true")
                .content_type("application/apply-patch+yaml")
                .body(json!({"data": {"a": "2"}}))
                .respond(200, configmap("a")),
        ]);
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "shop");
        let got = cms.get("a").await.unwrap();
        assert_eq!(got.metadata.name.as_deref(), Some("a"));
        cms.patch(
            "a",
            &PatchParams::apply("tailor").force(),
            &Patch::Apply(json!({"data": {"a": "2"}})),
        )
        .await
        .unwrap();
        let received = api.verify().await;
        assert_eq!(received.len(), 2);
    }

    #[tokio::test]
    async fn status_responses_reach_the_client_as_api_errors() {
        let (client, mock) = KubeMock::pair();
        let api = mock.run(vec![
            Exchange::delete("/api/v1/namespaces/shop/configmaps/a")
                .any_body()
                .respond_status(429, "TooManyRequests", "slow down"),
        ]);
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "shop");
        let error = cms.delete("a", &DeleteParams::default()).await.unwrap_err();
        match error {
            kube::Error::Api(status) => {
                assert_eq!(status.code, 429);
                assert_eq!(status.reason, "TooManyRequests");
            }
            other => panic!("expected an API error, got {other:?}"),
        }
        api.verify().await;
    }

    #[tokio::test]
    #[should_panic(expected = "body: expected")]
    async fn a_different_body_fails_verification() {
        let (client, mock) = KubeMock::pair();
        let api = mock.run(vec![
            Exchange::post("/api/v1/namespaces/shop/configmaps")
                .body(configmap("a"))
                .respond(201, configmap("a")),
        ]);
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "shop");
        let other: k8s_openapi::api::core::v1::ConfigMap =
            serde_json::from_value(configmap("b")).unwrap();
        let _ = cms.create(&PostParams::default(), &other).await;
        api.verify().await;
    }

    #[tokio::test]
    #[should_panic(expected = "request after the script ended")]
    async fn an_unscripted_request_fails_verification() {
        let (client, mock) = KubeMock::pair();
        let api = mock.run(vec![]);
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "shop");
        let result = cms.get("a").await;
        assert!(result.is_err(), "an unscripted request answers 500");
        api.verify().await;
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "only 0 of 1 scripted requests arrived")]
    async fn a_scripted_request_that_never_comes_fails_verification() {
        let (_client, mock) = KubeMock::pair();
        let api = mock.run(vec![Exchange::get("/api/v1/namespaces/shop/configmaps/a")]);
        api.verify().await;
    }

    #[tokio::test]
    #[should_panic(expected = "query: expected")]
    async fn a_different_query_fails_verification() {
        let (client, mock) = KubeMock::pair();
        let api = mock.run(vec![
            Exchange::get("/api/v1/namespaces/shop/configmaps?labelSelector=app%3Dweb").respond(
                200,
                json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {}, "items": []}),
            ),
        ]);
        let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "shop");
        let _ = cms
            .list(&kube::api::ListParams::default().labels("app=db"))
            .await;
        api.verify().await;
    }
}
