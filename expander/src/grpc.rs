//! Cluster Autoscaler's gRPC expander: `grpcplugin.Expander/BestOptions`.
//!
//! The reply carries the options the chain keeps, copied byte for byte from
//! the request. Whatever goes wrong inside (a pod that does not decode, a
//! group without a template, no price), the reply is every option: CA then
//! picks among them itself, so a broken expander never stalls a scale-up. A
//! request that cannot be read at all has no options to echo; it is answered
//! with `INVALID_ARGUMENT`, after which CA also keeps all its options.
//!
//! The request is not decoded with prost: [`outer`](crate::outer) reads it in
//! place and writes the reply from its bytes.

use crate::engine::Expander;
use crate::outer::RequestView;
use crate::request::{self, RequestError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use prost::bytes::{Buf, BufMut, Bytes};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Service, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

/// Messages and the client generated from `proto/expander.proto` (the server
/// is [`ExpanderServer`]).
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::nursery)]
pub mod proto {
    tonic::include_proto!("grpcplugin");
}

/// Labels of the outcome counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `decided`, or the error label when all options were returned.
    pub outcome: String,
}

/// The server's counters.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Requests by outcome.
    pub requests: Family<OutcomeLabels, Counter>,
}

impl Metrics {
    /// Registers the counters under `registry` (prefix it with `tailor_expander`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "grpc_requests",
            "BestOptions requests by outcome; anything but \"decided\" returned all options",
            self.requests.clone(),
        );
    }

    /// How many requests ended with `outcome`.
    #[must_use]
    pub fn count(&self, outcome: &str) -> u64 {
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .get()
    }

    fn inc(&self, outcome: &str) {
        self.requests
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

/// Why a request fell back to all options.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The request could not be read or decided.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The chain kept nothing (e.g. no option could be priced); an empty reply
    /// would tell CA not to scale up at all.
    #[error("no option survived the chain ({0})")]
    NoSurvivors(String),
}

impl AnswerError {
    /// A stable label for metrics.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            AnswerError::Request(e) => e.label(),
            AnswerError::NoSurvivors(_) => "no_survivors",
        }
    }
}

/// The largest request accepted, encoded. tonic's default of 4 MiB would
/// refuse Cluster Autoscaler's requests well before 100 options × 1,000
/// pods (32.5 MB); a request is held whole in memory while it is decided.
pub const MAX_REQUEST_BYTES: usize = 256 << 20;

/// The `Expander` gRPC service.
#[derive(Clone, Debug)]
pub struct ExpanderService {
    expander: Arc<Expander>,
    metrics: Metrics,
}

impl ExpanderService {
    /// A service deciding with `expander` and counting into `metrics`.
    #[must_use]
    pub fn new(expander: Arc<Expander>, metrics: Metrics) -> Self {
        ExpanderService { expander, metrics }
    }

    /// Indices of the options to return.
    pub fn decide(&self, request: &RequestView) -> Result<Vec<usize>, AnswerError> {
        let converted = request::from_view(request)?;
        let explanation = self
            .expander
            .decide(&converted)
            .map_err(RequestError::from)?;
        if explanation.best.is_empty() {
            let reasons: Vec<String> = explanation
                .steps
                .iter()
                .flat_map(|s| s.dropped.iter().map(|(id, why)| format!("{id}: {why}")))
                .collect();
            return Err(AnswerError::NoSurvivors(reasons.join("; ")));
        }
        Ok(explanation.best)
    }

    /// The encoded reply to the encoded `request`: the surviving options, or
    /// all of them when deciding failed. A request that is not a
    /// `BestOptionsRequest` at all has no options to return; it gets
    /// `INVALID_ARGUMENT`, on which Cluster Autoscaler keeps all its options.
    pub fn answer(&self, request: Bytes) -> Result<Bytes, Status> {
        let request = RequestView::parse(request).map_err(|error| {
            self.metrics.inc("malformed");
            tracing::warn!(%error, "rejecting the request");
            Status::invalid_argument(error.to_string())
        })?;
        match self.decide(&request) {
            Ok(best) => {
                self.metrics.inc("decided");
                let chosen: Vec<&str> = best
                    .iter()
                    .map(|&i| request.options()[i].node_group_id.as_str())
                    .collect();
                tracing::debug!(chain = self.expander.spec(), ?chosen, "decided");
                Ok(request.reply(best))
            }
            Err(error) => {
                self.metrics.inc(error.label());
                tracing::warn!(%error, options = request.options().len(), "returning all options");
                Ok(request.reply_all())
            }
        }
    }

    /// The tonic service answering `grpcplugin.Expander/BestOptions`.
    #[must_use]
    pub fn into_server(self) -> ExpanderServer {
        ExpanderServer(self)
    }
}

/// The gRPC service. Written by hand rather than generated so the request
/// reaches [`ExpanderService::answer`] as the received bytes ([`RawCodec`])
/// instead of a prost-decoded message.
#[derive(Clone, Debug)]
pub struct ExpanderServer(ExpanderService);

impl NamedService for ExpanderServer {
    const NAME: &'static str = "grpcplugin.Expander";
}

impl Service<http::Request<Body>> for ExpanderServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != "/grpcplugin.Expander/BestOptions" {
            let status = Status::unimplemented(format!("no method {}", request.uri().path()));
            return Box::pin(std::future::ready(Ok(status.into_http())));
        }
        let method = BestOptions(self.0.clone());
        Box::pin(async move {
            let mut grpc =
                Grpc::new(RawCodec).apply_max_message_size_config(Some(MAX_REQUEST_BYTES), None);
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// The one method.
struct BestOptions(ExpanderService);

impl UnaryService<Bytes> for BestOptions {
    type Response = Bytes;
    type Future = std::future::Ready<Result<Response<Bytes>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        std::future::ready(self.0.answer(request.into_inner()).map(Response::new))
    }
}

/// Passes messages through as bytes: the request as received (a view of
/// tonic's buffer, not a copy), the reply as [`RequestView::reply`] wrote it.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// PEM certificate chain and key for the server.
#[derive(Clone, Debug)]
pub struct TlsPem {
    /// Certificate chain, PEM.
    pub cert: Vec<u8>,
    /// Private key, PEM.
    pub key: Vec<u8>,
}

/// Serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The TLS certificate or key was rejected.
    #[error("TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    /// The server stopped with an error.
    #[error("gRPC server: {0}")]
    Transport(tonic::transport::Error),
}

/// Serves `service` on `listener` (TLS when `tls` is given) until `shutdown`
/// resolves, then drains in-flight calls.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsPem>,
    service: ExpanderService,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(tls.cert, tls.key)))
            .map_err(ServeError::Tls)?;
    }
    builder
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
        .map_err(ServeError::Transport)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::DecideRequest;
    use crate::wire::request_to_proto;
    use prost::Message;
    use proto::{BestOptionsRequest, BestOptionsResponse};
    use tailor_core::expander::ChainConfig;

    fn fixture(name: &str) -> BestOptionsRequest {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        request_to_proto(
            &DecideRequest::from_json(&std::fs::read_to_string(path).unwrap()).unwrap(),
        )
    }

    fn service(spec: &str) -> ExpanderService {
        let expander = Expander::new(spec, &ChainConfig::default(), 0, 0).unwrap();
        ExpanderService::new(Arc::new(expander), Metrics::default())
    }

    /// The reply as the client decodes it.
    fn answer(s: &ExpanderService, request: &BestOptionsRequest) -> BestOptionsResponse {
        BestOptionsResponse::decode(s.answer(request.encode_to_vec().into()).unwrap()).unwrap()
    }

    fn view(request: &BestOptionsRequest) -> RequestView {
        RequestView::parse(request.encode_to_vec().into()).unwrap()
    }

    fn ids(r: &BestOptionsResponse) -> Vec<&str> {
        r.options.iter().map(|o| o.node_group_id.as_str()).collect()
    }

    #[test]
    fn returns_survivors_byte_for_byte() {
        let s = service("least-waste");
        let request = fixture("least-waste.json");
        let reply = answer(&s, &request);
        assert_eq!(ids(&reply), vec!["b"]);
        assert_eq!(reply.options[0], request.options[1]);
        assert_eq!(s.metrics.count("decided"), 1);
    }

    #[test]
    fn internal_errors_return_all_options() {
        let s = service("least-waste");
        let mut bad_pod = fixture("least-waste.json");
        bad_pod.options[0].pod[0] = Bytes::from_static(b"\xff\xff");
        assert_eq!(ids(&answer(&s, &bad_pod)), vec!["a", "b", "c"]);
        assert_eq!(answer(&s, &bad_pod).options, bad_pod.options);

        let mut no_template = fixture("least-waste.json");
        no_template.node_map.remove("c");
        assert_eq!(ids(&answer(&s, &no_template)), vec!["a", "b", "c"]);

        assert_eq!(s.metrics.count("protobuf"), 2);
        assert_eq!(s.metrics.count("unknown_group"), 1);
        assert_eq!(s.metrics.count("decided"), 0);
        let mut registry = Registry::with_prefix("tailor_expander");
        s.metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("tailor_expander_grpc_requests_total{outcome=\"protobuf\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn nothing_priceable_returns_all_options() {
        // No instance type in any template and no explicit price: `price`
        // drops every option, which must not turn into "do not scale up".
        let catalog = tailor_core::catalog::Catalog::from_csv(
            "instance_type,vcpu,memory_mib,gpus,architectures,current_generation,burstable,bare_metal,on_demand_usd_per_hour\nm5.large,2,8192,0,x86_64,true,false,false,0.096\n",
        )
        .unwrap();
        let config = ChainConfig {
            pricing: Some(Arc::new(catalog)),
            ..ChainConfig::default()
        };
        let s = ExpanderService::new(
            Arc::new(Expander::new("price", &config, 0, 0).unwrap()),
            Metrics::default(),
        );
        let reply = answer(&s, &fixture("least-waste.json"));
        assert_eq!(ids(&reply), vec!["a", "b", "c"]);
        assert_eq!(s.metrics.count("no_survivors"), 1);
        let err = s.decide(&view(&fixture("least-waste.json"))).unwrap_err();
        assert!(
            err.to_string()
                .contains("a: no price for a: instance type \"m5.xlarge\" is not in the catalog"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn other_methods_are_unimplemented() {
        let mut server = service("least-waste").into_server();
        let request = http::Request::builder()
            .method("POST")
            .uri("/grpcplugin.Expander/WorstOptions")
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap();
        let response = server.call(request).await.unwrap();
        let status = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status.code(), tonic::Code::Unimplemented);
        assert!(status.message().contains("WorstOptions"), "{status:?}");
    }

    #[test]
    fn empty_request_gets_empty_reply() {
        let s = service("least-waste");
        let reply = answer(&s, &BestOptionsRequest::default());
        assert!(reply.options.is_empty());
        assert_eq!(s.metrics.count("no_options"), 1);
    }

    #[test]
    fn unreadable_requests_are_invalid_arguments() {
        let s = service("least-waste");
        let mut bytes = fixture("least-waste.json").encode_to_vec();
        bytes.truncate(bytes.len() - 1);
        let status = s.answer(bytes.into()).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("BestOptionsRequest is malformed: "),
            "{status:?}"
        );
        assert_eq!(s.metrics.count("malformed"), 1);
    }
}
