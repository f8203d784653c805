//! A live `/metrics` endpoint whose values the test changes while Prometheus scrapes it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::task::JoinHandle;

use crate::openmetrics::{checked_labels, format_value, series_text};
use crate::{Error, MetricKind, Result};

type Labels = Vec<(String, String)>;
type Families = BTreeMap<String, (MetricKind, BTreeMap<Labels, f64>)>;

/// An HTTP server on loopback serving `/metrics` (Prometheus text format 0.0.4).
///
/// Runs on the current tokio runtime; the server task is aborted on drop.
#[derive(Debug)]
pub struct ScrapeTarget {
    address: SocketAddr,
    families: Arc<Mutex<Families>>,
    task: JoinHandle<()>,
}

fn lock(families: &Mutex<Families>) -> MutexGuard<'_, Families> {
    // A panic while holding the lock cannot leave the map half-written; keep serving.
    families
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn render(families: &Families) -> String {
    let mut out = String::new();
    for (name, (kind, series)) in families {
        let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
        for (labels, value) in series {
            let _ = writeln!(
                out,
                "{} {}",
                series_text(name, labels),
                format_value(*value)
            );
        }
    }
    out
}

async fn metrics(State(families): State<Arc<Mutex<Families>>>) -> impl IntoResponse {
    let body = render(&lock(&families));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

impl ScrapeTarget {
    /// Binds `127.0.0.1:0` and starts serving an empty `/metrics`.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::Port)?;
        let address = listener.local_addr().map_err(Error::Port)?;
        let families = Arc::new(Mutex::new(Families::new()));
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(families.clone());
        let task = tokio::spawn(async move {
            // Only ends on abort (drop) or if accepting fails for good; tests then
            // see the missing series in the awaited query's error.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            address,
            families,
            task,
        })
    }

    /// The `host:port` to scrape.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Sets gauge `name{labels}` to `value` (creating it if needed).
    pub fn set_gauge(&self, name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
        self.set(MetricKind::Gauge, name, labels, value)
    }

    /// Sets counter `name{labels}` (name ending in `_total`) to `value`.
    pub fn set_counter(&self, name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
        if !name.ends_with("_total") {
            return Err(Error::CounterName(name.to_owned()));
        }
        self.set(MetricKind::Counter, name, labels, value)
    }

    fn set(&self, kind: MetricKind, name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
        let labels = checked_labels(name, labels)?;
        let mut families = lock(&self.families);
        let (existing, series) = families
            .entry(name.to_owned())
            .or_insert_with(|| (kind, BTreeMap::new()));
        if *existing != kind {
            return Err(Error::KindConflict {
                name: name.to_owned(),
                first: existing.as_str(),
                second: kind.as_str(),
            });
        }
        series.insert(labels, value);
        Ok(())
    }

    /// The exposition currently served.
    pub fn body(&self) -> String {
        render(&lock(&self.families))
    }
}

impl Drop for ScrapeTarget {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_and_rejects_kind_changes() {
        let target = ScrapeTarget::start().await.unwrap();
        target.set_gauge("queue", &[("q", "a\"b")], 2.5).unwrap();
        target.set_counter("jobs_total", &[], 7.0).unwrap();
        target.set_gauge("queue", &[("q", "a\"b")], 3.0).unwrap();
        assert_eq!(
            target.body(),
            "# TYPE jobs_total counter\njobs_total 7.0\n# TYPE queue gauge\nqueue{q=\"a\\\"b\"} 3.0\n"
        );
        assert!(matches!(
            target
                .set_counter("queue_total", &[], 1.0)
                .and(target.set_gauge("queue_total", &[], 1.0)),
            Err(Error::KindConflict { .. })
        ));
        assert!(matches!(
            target.set_counter("jobs", &[], 1.0),
            Err(Error::CounterName(_))
        ));
    }
}
