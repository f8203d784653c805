//! Kubernetes client setup, with the `--kube-api-qps`/`--kube-api-burst` limits
//! enforced by a token-bucket tower layer on the client's service stack.
//!
//! The layer sits outermost (added with `ClientBuilder::with_layer`), so every
//! request the client starts, including each new watch, takes one token;
//! a long-running watch stream costs one token, not one per event.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::args::KubeClientArgs;

/// Errors building a Kubernetes client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither in-cluster configuration nor a kubeconfig could be loaded.
    #[error("cannot find Kubernetes client configuration (in-cluster or kubeconfig): {0}")]
    Config(#[from] kube::config::InferConfigError),
    /// The configuration loaded but the client could not be built from it (TLS, proxy, auth).
    #[error("cannot build Kubernetes client: {0}")]
    Build(#[from] kube::Error),
}

/// Infers the configuration (in-cluster, else `$KUBECONFIG`/`~/.kube/config`)
/// and builds a client limited to `args`' QPS and burst.
pub async fn kube_client(args: &KubeClientArgs) -> Result<kube::Client, ClientError> {
    let config = kube::Config::infer().await?;
    client_from_config(config, args)
}

/// Builds a client from `config`, limited to `args`' QPS and burst.
pub fn client_from_config(
    config: kube::Config,
    args: &KubeClientArgs,
) -> Result<kube::Client, ClientError> {
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(builder
        .with_layer(&RateLimitLayer::new(args.kube_api_qps, args.kube_api_burst))
        .build())
}

/// A tower layer that lets requests through at `qps` per second on average,
/// with up to `burst` at once after a quiet period (client-go's token bucket).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimitLayer {
    qps: f64,
    burst: u32,
}

impl RateLimitLayer {
    /// A limiter of `qps` requests per second and bursts of `burst`.
    /// Non-positive or non-finite `qps` and a zero `burst` are raised to the
    /// smallest workable values rather than blocking forever.
    pub fn new(qps: f64, burst: u32) -> Self {
        let qps = if qps.is_finite() && qps > 0.0 {
            qps
        } else {
            0.001
        };
        Self {
            qps,
            burst: burst.max(1),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            inner,
            bucket: TokenBucket::new(self.qps, self.burst),
            sleep: None,
            permit: false,
        }
    }
}

/// The service made by [`RateLimitLayer`]: waits in `poll_ready` for a token.
///
/// Deliberately not `Clone`: clones would each get a full bucket. kube's client
/// already shares one instance behind a buffer.
#[derive(Debug)]
pub struct RateLimit<S> {
    inner: S,
    bucket: TokenBucket,
    sleep: Option<Pin<Box<Sleep>>>,
    /// A token has been taken for the next `call`.
    permit: bool,
}

#[derive(Debug)]
struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(qps: f64, burst: u32) -> Self {
        Self {
            qps,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is available.
    fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        self.last = now;
        // The epsilon absorbs float error so a timer that fired on time is enough.
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            Ok(())
        } else {
            let wait = (1.0 - self.tokens) / self.qps;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(1)))
        }
    }
}

impl<S, Req> Service<Req> for RateLimit<S>
where
    S: Service<Req>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        loop {
            if self.permit {
                return self.inner.poll_ready(cx);
            }
            if let Some(sleep) = self.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            match self.bucket.try_take(Instant::now()) {
                Ok(()) => self.permit = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.permit = false;
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::{Api, client::Body};
    use tower::ServiceExt as _;
    use tower_test::mock;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_a_burst_then_the_sustained_rate() {
        let start = Instant::now();
        let mut service =
            RateLimitLayer::new(5.0, 2).layer(tower::service_fn(|(): ()| async move {
                Ok::<_, std::convert::Infallible>(Instant::now())
            }));
        let mut times = Vec::new();
        for _ in 0..5 {
            let at = service.ready().await.unwrap().call(()).await.unwrap();
            times.push(at.duration_since(start).as_millis());
        }
        assert_eq!(times, vec![0, 0, 200, 400, 600]);

        // A quiet second refills the bucket up to the burst, not beyond.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let quiet = Instant::now();
        let mut after = Vec::new();
        for _ in 0..3 {
            let at = service.ready().await.unwrap().call(()).await.unwrap();
            after.push(at.duration_since(quiet).as_millis());
        }
        assert_eq!(after, vec![0, 0, 200]);
    }

    #[tokio::test(start_paused = true)]
    async fn kube_client_requests_are_limited() {
        let (mock_service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::client::ClientBuilder::new(mock_service, "default")
            .with_layer(&RateLimitLayer::new(2.0, 1))
            .build();
        let start = Instant::now();
        let server = tokio::spawn(async move {
            let mut times = Vec::new();
            for _ in 0..3 {
                let (request, send) = handle.next_request().await.unwrap();
                assert_eq!(
                    request.uri().path(),
                    "/api/v1/namespaces/default/configmaps/c"
                );
                times.push(Instant::now().duration_since(start).as_millis());
                let body = serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "namespace": "default"}
                });
                send.send_response(
                    Response::builder()
                        .body(Body::from(serde_json::to_vec(&body).unwrap()))
                        .unwrap(),
                );
            }
            times
        });
        let api: Api<ConfigMap> = Api::default_namespaced(client);
        for _ in 0..3 {
            api.get("c").await.unwrap();
        }
        assert_eq!(server.await.unwrap(), vec![0, 500, 1000]);
    }

    #[test]
    fn nonsense_limits_are_raised_to_workable_ones() {
        let layer = RateLimitLayer::new(0.0, 0);
        assert!(layer.qps > 0.0);
        assert_eq!(layer.burst, 1);
        let layer = RateLimitLayer::new(f64::NAN, 3);
        assert!(layer.qps > 0.0);
    }
}
