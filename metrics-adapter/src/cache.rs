//! Query results cached by PromQL text, with request coalescing and
//! stale-while-revalidate.
//!
//! - A result younger than the TTL is served from memory.
//! - Concurrent requests for the same query share one Prometheus call.
//! - An older result is still served at once while one background refresh
//!   runs, until it is older than the staleness limit; after that, callers
//!   wait for Prometheus, and if it fails they get the error (a 503).
//! - moka bounds the number of entries and drops them at the staleness limit.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::prom::{PromError, Sample};

/// A fetched result and when it was fetched.
#[derive(Debug)]
pub struct Entry {
    /// The samples.
    pub samples: Vec<Sample>,
    /// When Prometheus answered.
    pub fetched: Instant,
}

type Fetch = Shared<BoxFuture<'static, Result<Arc<Entry>, Arc<PromError>>>>;

/// How a result was obtained (for self-metrics and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Fresh from the cache.
    Hit,
    /// Older than the TTL, served while a refresh runs.
    Stale,
    /// Waited for a Prometheus call this request started.
    Miss,
    /// Waited for a Prometheus call another request had started.
    Coalesced,
}

/// Cache settings.
#[derive(Clone, Copy, Debug)]
pub struct CacheOptions {
    /// How long a result is fresh.
    pub ttl: Duration,
    /// How old a result may be and still be served when refreshing fails.
    pub max_staleness: Duration,
    /// At most this many cached queries.
    pub max_entries: u64,
}

/// The value cache. Cheap to clone.
#[derive(Clone)]
pub struct ValueCache {
    entries: moka::future::Cache<Arc<str>, Arc<Entry>>,
    inflight: Arc<Mutex<HashMap<Arc<str>, Fetch>>>,
    options: CacheOptions,
    metrics: Metrics,
    bodies: BodyCache,
}

impl std::fmt::Debug for ValueCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueCache")
            .field("options", &self.options)
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl ValueCache {
    /// An empty cache.
    #[must_use]
    pub fn new(options: CacheOptions, metrics: Metrics) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(options.max_entries)
            .time_to_live(options.max_staleness.max(options.ttl))
            .build();
        ValueCache {
            entries,
            inflight: Arc::default(),
            options,
            metrics,
            bodies: BodyCache::new(options.max_entries),
        }
    }

    /// The rendered answers made from this cache's values.
    #[must_use]
    pub fn bodies(&self) -> &BodyCache {
        &self.bodies
    }

    /// How long a value is fresh.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.options.ttl
    }

    /// The result of `promql`, from the cache or from `fetch` (called at most
    /// once at a time per query).
    ///
    /// # Errors
    /// The fetch error, when no result within the staleness limit exists.
    pub async fn get<F, Fut>(
        &self,
        promql: &str,
        fetch: F,
    ) -> Result<(Arc<Entry>, Outcome), Arc<PromError>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Sample>, PromError>> + Send + 'static,
    {
        let key: Arc<str> = Arc::from(promql);
        if let Some(entry) = self.entries.get(&key).await {
            let age = entry.fetched.elapsed();
            if age < self.options.ttl {
                self.metrics.cache(Outcome::Hit);
                return Ok((entry, Outcome::Hit));
            }
            if age < self.options.max_staleness {
                let (fut, _) = self.join(key, fetch);
                // The refresh runs on its own; errors are counted there.
                tokio::spawn(async move {
                    let _ = fut.await;
                });
                self.metrics.cache(Outcome::Stale);
                return Ok((entry, Outcome::Stale));
            }
        }
        let (fut, started) = self.join(key, fetch);
        let outcome = if started {
            Outcome::Miss
        } else {
            Outcome::Coalesced
        };
        self.metrics.cache(outcome);
        fut.await.map(|e| (e, outcome))
    }

    /// The in-flight fetch of `key`, starting it if there is none; `true`
    /// when this call started it.
    fn join<F, Fut>(&self, key: Arc<str>, fetch: F) -> (Fetch, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Vec<Sample>, PromError>> + Send + 'static,
    {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = inflight.get(&key) {
            return (f.clone(), false);
        }
        let request = fetch();
        let entries = self.entries.clone();
        let map = self.inflight.clone();
        let k = key.clone();
        let fut = async move {
            let result = request.await;
            let out = match result {
                Ok(samples) => {
                    let entry = Arc::new(Entry {
                        samples,
                        fetched: Instant::now(),
                    });
                    entries.insert(k.clone(), entry.clone()).await;
                    Ok(entry)
                }
                Err(e) => Err(Arc::new(e)),
            };
            map.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&k);
            out
        }
        .boxed()
        .shared();
        inflight.insert(key, fut.clone());
        (fut, true)
    }

    /// Cached queries (approximate, as moka counts).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.entries.entry_count()
    }

    /// True when nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rendered answer kept for as long as the values behind it are fresh.
#[derive(Clone, Debug)]
pub struct Body {
    /// The serialized 200 body.
    pub bytes: axum::body::Bytes,
    /// When the values behind it stop being fresh (their fetch time + TTL).
    pub fresh_until: Instant,
    /// The request counter to bump on each answer from here (its labels
    /// resolved once, not per request).
    pub requests: prometheus_client::metrics::counter::Counter,
}

/// Rendered answers by request URI (path and query), so a repeated request
/// for fresh values skips parsing, query building, the value cache and JSON
/// rendering: one map lookup with the borrowed URI, no allocation.
///
/// Only successful answers are kept, and only until the values they were
/// rendered from pass the TTL; after that the request takes the full path,
/// where the value cache serves stale values, coalesces and refreshes. A
/// relist that changes the served metrics is seen at the latest one TTL later,
/// as for cached values.
#[derive(Clone, Debug)]
pub struct BodyCache {
    entries: Arc<std::sync::RwLock<HashMap<Box<str>, Body>>>,
    max_entries: usize,
}

impl BodyCache {
    /// An empty cache of at most `max_entries` bodies.
    #[must_use]
    pub fn new(max_entries: u64) -> Self {
        BodyCache {
            entries: Arc::default(),
            max_entries: usize::try_from(max_entries).unwrap_or(usize::MAX),
        }
    }

    /// The fresh body for `uri`, if there is one.
    #[must_use]
    pub fn get(&self, uri: &str) -> Option<Body> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let body = entries.get(uri)?;
        (Instant::now() < body.fresh_until).then(|| body.clone())
    }

    /// Keeps `body` for `uri` (ignored when it is not fresh any more).
    pub fn insert(&self, uri: &str, body: Body) {
        let now = Instant::now();
        if body.fresh_until <= now || self.max_entries == 0 {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.max_entries && !entries.contains_key(uri) {
            // Bounded: drop what is no longer fresh, and everything if that
            // is not enough (the values stay in the value cache).
            entries.retain(|_, b| b.fresh_until > now);
            if entries.len() >= self.max_entries {
                entries.clear();
            }
        }
        entries.insert(uri.into(), body);
    }

    /// Bodies held (fresh or not).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when no body is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache(ttl: u64, stale: u64) -> ValueCache {
        ValueCache::new(
            CacheOptions {
                ttl: Duration::from_secs(ttl),
                max_staleness: Duration::from_secs(stale),
                max_entries: 100,
            },
            Metrics::default(),
        )
    }

    fn sample(v: f64) -> Vec<Sample> {
        vec![Sample {
            labels: Default::default(),
            timestamp: 0.0,
            value: v,
        }]
    }

    fn down() -> PromError {
        PromError::Unreachable {
            url: "http://p".into(),
            detail: "refused".into(),
        }
    }

    #[tokio::test]
    async fn concurrent_identical_requests_share_one_fetch() {
        let c = cache(10, 60);
        let calls = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = rx.shared();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let c = c.clone();
            let calls = calls.clone();
            let rx = rx.clone();
            tasks.push(tokio::spawn(async move {
                c.get("q", move || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async move {
                        let _ = rx.await;
                        Ok(sample(1.0))
                    }
                })
                .await
                .map(|(_, o)| o)
            }));
        }
        // Let every task reach the cache before the fetch completes.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        tx.send(()).unwrap();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap().unwrap());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Miss).count(), 1);
        let (e, o) = c.get("q", || async { Ok(sample(2.0)) }).await.unwrap();
        assert_eq!((e.samples[0].value, o), (1.0, Outcome::Hit));
    }

    #[tokio::test(start_paused = true)]
    async fn stale_results_are_served_until_the_limit_then_errors_surface() {
        let c = cache(10, 60);
        c.get("q", || async { Ok(sample(1.0)) }).await.unwrap();
        tokio::time::advance(Duration::from_secs(11)).await;
        // Past the TTL, Prometheus down: the old value, refresh in background.
        let (e, o) = c.get("q", || async { Err(down()) }).await.unwrap();
        assert_eq!((e.samples[0].value, o), (1.0, Outcome::Stale));
        tokio::task::yield_now().await;
        // A successful refresh replaces it.
        let (e, _) = c.get("q", || async { Ok(sample(2.0)) }).await.unwrap();
        assert_eq!(e.samples[0].value, 1.0);
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(1)).await;
        let (e, o) = c.get("q", || async { Ok(sample(3.0)) }).await.unwrap();
        assert_eq!((e.samples[0].value, o), (2.0, Outcome::Hit));
        // Past the staleness limit with Prometheus down: the error.
        tokio::time::advance(Duration::from_secs(61)).await;
        let err = c.get("q", || async { Err(down()) }).await.unwrap_err();
        assert_eq!(err.label(), "unreachable");
    }

    fn body(fresh_for: Duration) -> Body {
        Body {
            bytes: axum::body::Bytes::from_static(b"{}"),
            fresh_until: Instant::now() + fresh_for,
            requests: prometheus_client::metrics::counter::Counter::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_are_served_while_fresh_and_bounded() {
        let c = BodyCache::new(2);
        c.insert("/a", body(Duration::from_secs(10)));
        assert_eq!(c.get("/a").unwrap().bytes, "{}");
        assert!(c.get("/b").is_none());
        // Not fresh any more: not kept.
        c.insert("/stale", body(Duration::ZERO));
        assert!(c.get("/stale").is_none());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(c.get("/a").is_none());
        // Full: the expired entry makes room.
        c.insert("/b", body(Duration::from_secs(10)));
        c.insert("/c", body(Duration::from_secs(10)));
        assert_eq!(c.len(), 2);
        assert!(c.get("/b").is_some() && c.get("/c").is_some());
        // Full of fresh entries: cleared rather than grown.
        c.insert("/d", body(Duration::from_secs(10)));
        assert_eq!(c.len(), 1);
        assert!(c.get("/d").is_some());
        assert!(BodyCache::new(0).get("/d").is_none());
    }
}
