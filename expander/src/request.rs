//! The `BestOptionsRequest`, in JSON (the `decide` file) and in protobuf (the
//! gRPC call), turned into a core [`Request`].

use crate::convert::{self, ConvertError};
use crate::engine::{DecideError, Request, node_count};
use crate::lean;
use crate::outer::RequestView;
use k8s_openapi::api::core::v1 as json;
use prost::Message;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasherDefault;
use tailor_core::expander::ExpansionOption;
use tailor_core::scheduling::PodRequest;

/// The `decide` request file: CA's `BestOptionsRequest` with ordinary
/// Kubernetes JSON objects.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecideRequest {
    /// The scale-up options.
    pub options: Vec<OptionIn>,
    /// Node group id → template node.
    #[serde(default)]
    pub node_map: BTreeMap<String, json::Node>,
}

/// One option of the `decide` request file.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OptionIn {
    /// Node group id.
    pub node_group_id: String,
    /// Nodes to add.
    #[serde(default)]
    pub node_count: i64,
    /// Pods that would schedule (`pod` as in the proto is accepted too).
    #[serde(default, alias = "pod")]
    pub pods: Vec<json::Pod>,
    /// Debug text.
    #[serde(default)]
    pub debug: String,
    /// Similar node groups (carried, not used).
    #[serde(default)]
    pub similar_node_group_ids: Vec<String>,
}

/// A request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The JSON does not have the request's shape.
    #[error("request is not a BestOptionsRequest: {0}")]
    Json(serde_json::Error),
    /// A pod of an option does not convert.
    #[error("option {option} ({id:?}), pod {index}: {error}")]
    Pod {
        /// 0-based option position.
        option: usize,
        /// The option's node group id.
        id: String,
        /// 0-based pod position in the option.
        index: usize,
        /// What was wrong.
        error: Box<ConvertError>,
    },
    /// A template node does not convert.
    #[error("nodeMap[{id:?}]: {error}")]
    Node {
        /// The node group id.
        id: String,
        /// What was wrong.
        error: Box<ConvertError>,
    },
    /// Protobuf bytes do not decode as the Kubernetes message.
    #[error("{what} is not a protobuf-encoded k8s.io.api.core.v1 object: {error}")]
    Decode {
        /// Which field, e.g. `options[2].pod[5]`.
        what: String,
        /// The decoder's message.
        error: prost::DecodeError,
    },
    /// The request is well-formed but cannot be decided.
    #[error(transparent)]
    Decide(#[from] DecideError),
}

impl RequestError {
    /// A stable label for metrics.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            RequestError::Json(_) => "json",
            RequestError::Pod { .. } => "pod",
            RequestError::Node { .. } => "node",
            RequestError::Decode { .. } => "protobuf",
            RequestError::Decide(e) => e.label(),
        }
    }
}

impl DecideRequest {
    /// Parses the request file.
    pub fn from_json(text: &str) -> Result<DecideRequest, RequestError> {
        serde_json::from_str(text).map_err(RequestError::Json)
    }

    /// Converts pods and nodes to the core's types.
    pub fn to_request(&self) -> Result<Request, RequestError> {
        let mut options = Vec::with_capacity(self.options.len());
        for (i, o) in self.options.iter().enumerate() {
            let pods = o
                .pods
                .iter()
                .enumerate()
                .map(|(index, p)| {
                    convert::pod_from_json(p).map_err(|error| RequestError::Pod {
                        option: i,
                        id: o.node_group_id.clone(),
                        index,
                        error: Box::new(error),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            options.push(ExpansionOption {
                node_group_id: o.node_group_id.clone(),
                node_count: node_count(i, &o.node_group_id, o.node_count)?,
                pods,
                debug: o.debug.clone(),
            });
        }
        let templates = self
            .node_map
            .iter()
            .map(|(id, node)| {
                convert::node_from_json(id, node)
                    .map(|t| (id.clone(), t))
                    .map_err(|error| RequestError::Node {
                        id: id.clone(),
                        error: Box::new(error),
                    })
            })
            .collect::<Result<HashMap<_, _>, _>>()?;
        Ok(Request { options, templates })
    }
}

/// A fast, non-cryptographic hash of whole pod encodings (FxHash's
/// rotate-xor-multiply over 8-byte words), for pods met out of order (see
/// [`Pods`]). Equal hashes are still confirmed by comparing the bytes.
/// Requests come from Cluster Autoscaler over mutually authenticated TLS, so
/// collision flooding is not a concern.
#[derive(Default)]
struct WordHasher(u64);

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut h = self.0;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut a = [0u8; 8];
            a.copy_from_slice(w);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(a)).wrapping_mul(K);
        }
        for &b in words.remainder() {
            h = (h.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What the chain reads of a pod: its requests and priority. The gRPC answer
/// is the options' own bytes, so names, selectors and tolerations (checked
/// when the pod is converted) need not be carried; without them a copy per
/// option allocates nothing.
fn chain_view(pod: &PodRequest) -> PodRequest {
    PodRequest {
        name: String::new(),
        requests: pod.requests,
        priority: pod.priority,
        ..PodRequest::default()
    }
}

/// The distinct pod encodings of one request, each decoded and converted once.
///
/// Cluster Autoscaler builds every option from the same list of pending
/// pods, so the options list the same pods in the same relative order (an
/// option leaves out the pods that do not fit its group). A repeat is
/// therefore found by comparing the bytes with one guess — the pod that
/// followed the previous pod where that one was last listed — which costs a
/// length check and a `memcmp` and no hashing; a pod met out of that order
/// is looked up in a map over whole encodings. Either way a pod is reused
/// only when its bytes are identical, so the answer is what decoding every
/// entry would give.
#[derive(Default)]
struct Pods<'a> {
    by_bytes: HashMap<&'a [u8], usize, BuildHasherDefault<WordHasher>>,
    /// The first encoding of each distinct pod.
    encodings: Vec<&'a [u8]>,
    /// What the chain reads of each distinct pod.
    views: Vec<PodRequest>,
    /// Distinct pod → the pod after it where it was last listed.
    next: Vec<Option<usize>>,
}

impl<'a> Pods<'a> {
    /// The distinct pod `bytes` encodes, decoding it if it is new; `guess`
    /// is tried first.
    fn find(
        &mut self,
        bytes: &'a [u8],
        guess: Option<usize>,
        what: impl FnOnce() -> (usize, usize),
        id: &str,
    ) -> Result<usize, RequestError> {
        if let Some(g) = guess
            && self.encodings[g] == bytes
        {
            return Ok(g);
        }
        if let Some(&k) = self.by_bytes.get(bytes) {
            return Ok(k);
        }
        let (option, index) = what();
        let pod = lean::Pod::decode(bytes).map_err(|error| RequestError::Decode {
            what: format!("options[{option}].pod[{index}]"),
            error,
        })?;
        let p = convert::pod_from_pb(&pod).map_err(|error| RequestError::Pod {
            option,
            id: id.to_owned(),
            index,
            error: Box::new(error),
        })?;
        let k = self.views.len();
        self.by_bytes.insert(bytes, k);
        self.encodings.push(bytes);
        self.views.push(chain_view(&p));
        self.next.push(None);
        Ok(k)
    }
}

/// Converts a gRPC request read in place ([`RequestView`]). Pods are decoded
/// (with the lean messages of [`lean`]) and converted once per distinct
/// encoding ([`Pods`]), and each option carries only what the chain reads of
/// them ([`chain_view`]).
pub fn from_view(request: &RequestView) -> Result<Request, RequestError> {
    let mut distinct = Pods::default();
    let mut options: Vec<ExpansionOption> = Vec::with_capacity(request.options().len());
    // The first pod of the previous option: the guess for this one's first.
    let mut first = None;
    // The distinct pod of each entry of the previous option.
    let mut previous_keys: Vec<usize> = Vec::new();
    for (i, o) in request.options().iter().enumerate() {
        let mut pods = Vec::with_capacity(request.pods(o).len());
        let mut keys = Vec::with_capacity(request.pods(o).len());
        let mut previous: Option<usize> = None;
        // Leading entries the reader found identical to the previous
        // option's are that option's pods again.
        let shared = o.shared_pods();
        if shared > 0
            && let Some(last) = options.last()
        {
            pods.extend_from_slice(&last.pods[..shared]);
            keys.extend_from_slice(&previous_keys[..shared]);
            previous = keys.last().copied();
        }
        for (index, bytes) in request.pods(o).enumerate().skip(shared) {
            let guess = match previous {
                Some(p) => distinct.next[p],
                None => first,
            };
            let k = distinct.find(bytes, guess, || (i, index), &o.node_group_id)?;
            match previous {
                Some(p) => distinct.next[p] = Some(k),
                None => first = Some(k),
            }
            previous = Some(k);
            keys.push(k);
            pods.push(distinct.views[k].clone());
        }
        previous_keys = keys;
        options.push(ExpansionOption {
            node_group_id: o.node_group_id.clone(),
            node_count: node_count(i, &o.node_group_id, i64::from(o.node_count))?,
            pods,
            debug: o.debug.clone(),
        });
    }
    let mut templates = HashMap::with_capacity(request.node_map().len());
    for (id, bytes) in request.node_map() {
        let node =
            k8s_pb::api::core::v1::Node::decode(bytes).map_err(|error| RequestError::Decode {
                what: format!("nodeMap[{id:?}]"),
                error,
            })?;
        let t = convert::node_from_pb(id, &node).map_err(|error| RequestError::Node {
            id: id.to_owned(),
            error: Box::new(error),
        })?;
        templates.insert(id.to_owned(), t);
    }
    Ok(Request { options, templates })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grpc::proto;
    use crate::wire::request_to_proto;
    use prost::bytes::Bytes;

    /// The request as the server reads it off the wire.
    fn from_proto(request: &proto::BestOptionsRequest) -> Result<Request, RequestError> {
        from_view(&RequestView::parse(request.encode_to_vec().into()).unwrap())
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap()
    }

    #[test]
    fn protobuf_and_json_agree_on_fixtures() {
        for name in ["least-waste.json", "price.json", "cost.json"] {
            let file = DecideRequest::from_json(&fixture(name)).unwrap();
            let mut from_json = file.to_request().unwrap();
            let from_pb = from_proto(&request_to_proto(&file)).unwrap();
            // The gRPC path keeps what the chain reads of each pod.
            for o in &mut from_json.options {
                o.pods = o.pods.iter().map(chain_view).collect();
            }
            assert_eq!(from_json, from_pb, "{name}");
            assert!(from_json.options.iter().all(|o| !o.pods.is_empty()));
        }
    }

    /// Options listing the same pods (as Cluster Autoscaler sends them),
    /// then fewer, then more: the converter's reuse of the previous
    /// option's pods gives what converting every entry gives.
    #[test]
    fn options_sharing_pods_convert_as_each_entry_alone() {
        let (pods, node) = pool();
        let option = |id: &str, pods: &[json::Pod]| serde_json::json!({"nodeGroupId": id, "nodeCount": 1, "pods": pods});
        let file = serde_json::json!({
            "options": [
                option("a", &pods),
                option("b", &pods),
                option("c", &pods[..2]),
                option("d", &pods[..2]),
                option("e", &[pods.clone(), pods[..1].to_vec()].concat()),
            ],
            "nodeMap": {"a": node, "b": node, "c": node, "d": node, "e": node},
        });
        let file = DecideRequest::from_json(&file.to_string()).unwrap();
        let view = RequestView::parse(request_to_proto(&file).encode_to_vec().into()).unwrap();
        let shared: Vec<usize> = view.options().iter().map(|o| o.shared_pods()).collect();
        assert_eq!(shared, [0, 4, 0, 2, 2]);
        let got = from_view(&view).unwrap();
        assert_eq!(got, from_view(&view.without_sharing()).unwrap());
        assert_eq!(got.options[4].pods.len(), 5);
    }

    /// A pool of distinct pods and a template node, as JSON.
    fn pool() -> (Vec<json::Pod>, json::Node) {
        let pods = (0..4)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("p{i}"), "namespace": "ns"},
                    "spec": {"priority": i, "containers": [{"name": "c", "resources":
                        {"requests": {"cpu": format!("{}m", 100 * (i + 1)), "memory": "64Mi"}}}]}
                }))
                .unwrap()
            })
            .collect();
        let node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "t"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi"}}
        }))
        .unwrap();
        (pods, node)
    }

    proptest::proptest! {
        /// Whatever order and repeats the options list pods in, the gRPC
        /// path reads each entry as the JSON path does.
        #[test]
        fn pods_in_any_order_read_as_listed(
            lists in proptest::collection::vec(proptest::collection::vec(0..4usize, 0..7), 1..6)
        ) {
            let (pods, node) = pool();
            let file = DecideRequest {
                options: lists
                    .iter()
                    .enumerate()
                    .map(|(i, list)| OptionIn {
                        node_group_id: format!("g{i}"),
                        node_count: 1,
                        pods: list.iter().map(|&k| pods[k].clone()).collect(),
                        debug: String::new(),
                        similar_node_group_ids: Vec::new(),
                    })
                    .collect(),
                node_map: (0..lists.len()).map(|i| (format!("g{i}"), node.clone())).collect(),
            };
            let mut from_json = file.to_request().unwrap();
            for o in &mut from_json.options {
                o.pods = o.pods.iter().map(chain_view).collect();
            }
            proptest::prop_assert_eq!(from_json, from_proto(&request_to_proto(&file)).unwrap());
        }
    }

    #[test]
    fn json_errors_say_where() {
        let err = DecideRequest::from_json(r#"{"options": [], "nodes": {}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `nodes`"), "{err}");
        let err = DecideRequest::from_json(r#"{"options": [{"nodeCount": 1}]}"#).unwrap_err();
        assert!(
            err.to_string().contains("missing field `nodeGroupId`"),
            "{err}"
        );
        let file = DecideRequest::from_json(
            r#"{"options": [
                {"nodeGroupId": "a", "nodeCount": 1, "pod": [{"metadata": {"name": "ok"}}]},
                {"nodeGroupId": "b", "nodeCount": 1, "pods": [
                    {"metadata": {"name": "ok"}},
                    {"metadata": {"name": "bad", "namespace": "ns"},
                     "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "fast"}}}]}}]}],
                "nodeMap": {}}"#,
        )
        .unwrap();
        assert_eq!(
            file.options[0].pods.len(),
            1,
            "`pod` is accepted for `pods`"
        );
        let err = file.to_request().unwrap_err();
        assert!(
            err.to_string().starts_with(
                "option 1 (\"b\"), pod 1: Pod \"ns/bad\", field spec.containers[0].resources.requests.cpu: quantity \"fast\""
            ),
            "{err}"
        );
        assert_eq!(err.label(), "pod");
        let err = DecideRequest::from_json(
            r#"{"options": [{"nodeGroupId": "a", "nodeCount": -2}], "nodeMap": {}}"#,
        )
        .unwrap()
        .to_request()
        .unwrap_err();
        assert_eq!(err.label(), "negative_count");
    }

    #[test]
    fn protobuf_errors_say_where() {
        let file = DecideRequest::from_json(&fixture("least-waste.json")).unwrap();
        let mut request = request_to_proto(&file);
        request.options[2].pod[1] = Bytes::from_static(&[0x0a, 0xff]);
        let err = from_proto(&request).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "options[2].pod[1] is not a protobuf-encoded k8s.io.api.core.v1 object"
            ),
            "{err}"
        );
        let mut request = request_to_proto(&file);
        request
            .node_map
            .insert("c".into(), Bytes::from_static(&[0xff]));
        let err = from_proto(&request).unwrap_err();
        assert!(
            err.to_string().starts_with("nodeMap[\"c\"] is not"),
            "{err}"
        );
    }
}
