//! The admin server: liveness, readiness and Prometheus metrics on their own port.
//!
//! Probes are answered without tracing so kubelet traffic does not flood logs.

use std::{
    fmt::Write as _,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use prometheus_client::registry::Registry;
use tokio::time::Instant;

/// Content type of the OpenMetrics text that prometheus-client writes.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A metrics registry whose metric names all start with `tailor_<component>_`.
///
/// Dashes in `component` become underscores (`admission-webhook` →
/// `tailor_admission_webhook_`). Register everything before building [`AdminState`].
pub fn component_registry(component: &str) -> Registry {
    Registry::with_prefix(format!("tailor_{}", component.replace('-', "_")))
}

/// Whether the component is ready for traffic. Starts not ready; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A new handle, not ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the component ready (`true`) or not ready (`false`).
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the component is currently ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Debug)]
struct HeartbeatInner {
    name: String,
    max_age: Duration,
    last: Mutex<Instant>,
}

/// A liveness check that fails when [`Heartbeat::beat`] was not called within
/// its maximum age ("the loop ran recently"). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Heartbeat(Arc<HeartbeatInner>);

impl Heartbeat {
    /// Records that the watched loop just made progress.
    pub fn beat(&self) {
        *self.0.last.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    /// Beats every `every` until `stop` is cancelled or the task is aborted.
    /// A loop waiting for its caches or for the Lease is not stalled, so it
    /// stays live with this until its first real iteration.
    pub fn keep_beating(
        &self,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let heartbeat = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => heartbeat.beat(),
                }
            }
        })
    }

    /// Time since the last beat (or since registration, before the first beat).
    pub fn age(&self) -> Duration {
        self.0
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    /// The check's name as shown by `/livez`.
    pub fn name(&self) -> &str {
        &self.0.name
    }
}

/// The set of liveness checks `/livez` evaluates. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Liveness(Arc<Mutex<Vec<Heartbeat>>>);

impl Liveness {
    /// An empty set: `/livez` is healthy while the process answers at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a heartbeat that must beat at least every `max_age`.
    /// Registration counts as the first beat, so startup gets one `max_age` of grace.
    pub fn heartbeat(&self, name: impl Into<String>, max_age: Duration) -> Heartbeat {
        let heartbeat = Heartbeat(Arc::new(HeartbeatInner {
            name: name.into(),
            max_age,
            last: Mutex::new(Instant::now()),
        }));
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(heartbeat.clone());
        heartbeat
    }

    /// One line per stale check: name, age and limit. Empty when all are fresh.
    pub fn stale(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|h| {
                let age = h.age();
                (age > h.0.max_age).then(|| {
                    format!(
                        "{}: last beat {}s ago, limit {}s",
                        h.0.name,
                        age.as_secs(),
                        h.0.max_age.as_secs()
                    )
                })
            })
            .collect()
    }
}

/// Everything the admin router serves.
#[derive(Clone, Debug)]
pub struct AdminState {
    registry: Arc<Registry>,
    readiness: Readiness,
    liveness: Liveness,
}

impl AdminState {
    /// Serves `registry` on `/metrics` and the two handles on the probes.
    pub fn new(registry: Registry, readiness: Readiness, liveness: Liveness) -> Self {
        Self {
            registry: Arc::new(registry),
            readiness,
            liveness,
        }
    }
}

/// The admin routes: `GET /livez`, `GET /readyz`, `GET /metrics`.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Binds `addr` and serves [`router`] until `shutdown` is cancelled, draining
/// for at most `drain`.
pub async fn serve(
    addr: std::net::SocketAddr,
    state: AdminState,
    shutdown: tokio_util::sync::CancellationToken,
    drain: Duration,
) -> Result<(), crate::serve::ServeError> {
    let listener = crate::serve::bind(addr).await?;
    tracing::info!(%addr, "admin server listening");
    crate::serve::serve(listener, router(state), shutdown, drain).await
}

async fn livez(State(state): State<AdminState>) -> Response {
    let stale = state.liveness.stale();
    if stale.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let mut body = String::from("not live:\n");
        for line in stale {
            let _ = writeln!(body, "{line}");
        }
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
    }
}

async fn readyz(State(state): State<AdminState>) -> Response {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Size of the pieces `/metrics` is sent in.
const METRICS_CHUNK: usize = 64 * 1024;

/// How long encoding waits for the scraper to take a piece. The encoder
/// holds the metric families' read locks meanwhile, and a controller adding
/// a series waits for them: a stuck scraper must not stall a loop.
const METRICS_SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// `/metrics`, encoded on a blocking thread and sent in [`METRICS_CHUNK`]
/// pieces as it is encoded: a controller with per-object series (the
/// recommender's per-VPA rows: ~8 MB of text for 10,000 VPAs) would
/// otherwise hold the whole text, and twice that while the string grows,
/// on every scrape.
async fn metrics(State(state): State<AdminState>) -> Response {
    // Two pieces in flight at most: encoding waits for a slow scraper.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Piece>(2);
    let registry = Arc::clone(&state.registry);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx,
            runtime,
            buf: String::with_capacity(METRICS_CHUNK),
        };
        let result = prometheus_client::encoding::text::encode(&mut out, &registry);
        let last = match result {
            Ok(()) => Piece::Last(std::mem::take(&mut out.buf).into_bytes()),
            Err(err) => {
                tracing::warn!(error = %err, "metrics not sent: encoding failed or the scraper stopped reading");
                Piece::Failed
            }
        };
        // The scraper may have gone; nothing to tell it then.
        let _ = out.send(last);
    });
    // The status depends on whether encoding fails before the first piece
    // is ready. A later failure (or an encoder that stopped) ends the body
    // with an error, so the scraper sees a broken response rather than a
    // page that parses but lacks series.
    let first = match rx.recv().await {
        Some(Piece::More(bytes)) => bytes,
        Some(Piece::Last(bytes)) => {
            return ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], bytes).into_response();
        }
        Some(Piece::Failed) | None => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response();
        }
    };
    let rest = futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Piece::More(bytes)) => Some((Ok(bytes), Some(rx))),
            Some(Piece::Last(bytes)) => Some((Ok(bytes), None)),
            Some(Piece::Failed) | None => {
                Some((Err(std::io::Error::other("metrics encoding stopped")), None))
            }
        }
    });
    let body = futures::StreamExt::chain(futures::stream::iter([Ok(first)]), rest);
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// What the encoder hands the response body.
enum Piece {
    More(Vec<u8>),
    /// The end of the text; nothing follows.
    Last(Vec<u8>),
    Failed,
}

/// Collects the encoder's output and hands it on every [`METRICS_CHUNK`]
/// bytes. Runs on a blocking thread, so it may wait for the channel.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Piece>,
    runtime: tokio::runtime::Handle,
    buf: String,
}

impl ChunkWriter {
    /// Waits at most [`METRICS_SEND_TIMEOUT`] for room; false when the
    /// scraper has gone or is not reading.
    fn send(&self, piece: Piece) -> bool {
        self.runtime
            .block_on(tokio::time::timeout(
                METRICS_SEND_TIMEOUT,
                self.tx.send(piece),
            ))
            .is_ok_and(|sent| sent.is_ok())
    }
}

impl std::fmt::Write for ChunkWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= METRICS_CHUNK {
            let full = std::mem::replace(&mut self.buf, String::with_capacity(METRICS_CHUNK));
            if !self.send(Piece::More(full.into_bytes())) {
                return Err(std::fmt::Error);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use http_body_util::BodyExt as _;
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt as _;

    async fn get_path(router: Router, path: &str) -> (StatusCode, String, Option<String>) {
        let response = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            String::from_utf8(body.to_vec()).unwrap(),
            content_type,
        )
    }

    fn state() -> (AdminState, Readiness, Liveness, Counter) {
        let mut registry = component_registry("admission-webhook");
        let counter = Counter::<u64>::default();
        registry.register("reviews", "Admission reviews answered", counter.clone());
        let readiness = Readiness::new();
        let liveness = Liveness::new();
        (
            AdminState::new(registry, readiness.clone(), liveness.clone()),
            readiness,
            liveness,
            counter,
        )
    }

    #[tokio::test]
    async fn readyz_starts_unready_and_follows_the_handle() {
        let (state, readiness, _, _) = state();
        let app = router(state);
        assert_eq!(
            get_path(app.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        readiness.clone().set_ready(true);
        assert_eq!(get_path(app.clone(), "/readyz").await.0, StatusCode::OK);
        readiness.set_ready(false);
        assert_eq!(
            get_path(app, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test(start_paused = true)]
    async fn livez_fails_when_a_heartbeat_is_stale() {
        let (state, _, liveness, _) = state();
        let app = router(state);
        assert_eq!(get_path(app.clone(), "/livez").await.0, StatusCode::OK);
        let heartbeat = liveness.heartbeat("recommender_loop", Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(get_path(app.clone(), "/livez").await.0, StatusCode::OK);
        tokio::time::advance(Duration::from_secs(2)).await;
        let (status, body, _) = get_path(app.clone(), "/livez").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            body.contains("recommender_loop: last beat 61s ago, limit 60s"),
            "{body}"
        );
        heartbeat.beat();
        assert_eq!(get_path(app, "/livez").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_use_the_component_prefix() {
        let (state, _, _, counter) = state();
        counter.inc_by(3);
        let (status, body, content_type) = get_path(router(state), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(
            body.contains("tailor_admission_webhook_reviews_total 3"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"), "{body}");
    }

    #[tokio::test]
    async fn large_metrics_arrive_whole_in_pieces() {
        use prometheus_client::encoding::EncodeLabelSet;
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::gauge::Gauge;
        #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct Labels {
            vpa: String,
        }
        let mut registry = component_registry("recommender");
        let family = Family::<Labels, Gauge>::default();
        registry.register("target", "Per-VPA target", family.clone());
        for i in 0..5_000 {
            family
                .get_or_create(&Labels {
                    vpa: format!("vpa-{i}"),
                })
                .set(i);
        }
        let mut whole = String::new();
        prometheus_client::encoding::text::encode(&mut whole, &registry).unwrap();
        assert!(whole.len() > 3 * METRICS_CHUNK, "{}", whole.len());
        let state = AdminState::new(registry, Readiness::new(), Liveness::new());
        let response = router(state.clone())
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = response.into_body();
        let mut pieces = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                pieces.push(data);
            }
        }
        assert!(pieces.len() > 3, "{} pieces", pieces.len());
        assert!(pieces.iter().all(|p| p.len() < 2 * METRICS_CHUNK));
        assert_eq!(pieces.concat(), whole.as_bytes());

        // A scraper that goes away after the first piece stops the encoder
        // (it would otherwise wait on the full channel), and the next
        // scrape is whole.
        let app = router(state);
        let response = app
            .clone()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let mut body = response.into_body();
        assert!(body.frame().await.is_some());
        drop(body);
        let (status, text, _) = get_path(app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text, whole);
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let (state, _, _, _) = state();
        assert_eq!(
            get_path(router(state), "/debug").await.0,
            StatusCode::NOT_FOUND
        );
    }
}
