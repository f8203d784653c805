//! `admission.k8s.io/v1` AdmissionReview: the request kube-apiserver sends and
//! the response it expects. Only the fields the webhook reads are typed;
//! everything else is ignored, so newer API servers keep working.

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};
use tailor_core::admission::PatchOperation;

/// The only AdmissionReview version served (`admissionReviewVersions: ["v1"]`).
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// The kind of both the request and the response object.
pub const KIND: &str = "AdmissionReview";

/// The parts of an incoming AdmissionReview the webhook reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingReview {
    api_version: Option<String>,
    kind: Option<String>,
    request: Option<IncomingRequest>,
}

/// `request` of an incoming AdmissionReview.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IncomingRequest {
    uid: Option<String>,
    kind: Option<GroupVersionKind>,
    sub_resource: Option<String>,
    namespace: Option<String>,
    operation: Option<String>,
    object: Option<serde_json::Value>,
}

/// `request.kind`.
#[derive(Debug, Default, Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    kind: String,
}

/// Why a request body is not an AdmissionReview the webhook can answer; the
/// server turns it into a 400 whose message is this error's text.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The body is not JSON, or its fields have the wrong JSON types.
    #[error("request body is not a valid AdmissionReview JSON document: {0}")]
    NotJson(String),
    /// `apiVersion` is not `admission.k8s.io/v1`.
    #[error("apiVersion is {found:?}, expected \"{API_VERSION}\"")]
    WrongApiVersion {
        /// What the body said (empty when absent).
        found: String,
    },
    /// `kind` is not `AdmissionReview`.
    #[error("kind is {found:?}, expected \"{KIND}\"")]
    WrongKind {
        /// What the body said (empty when absent).
        found: String,
    },
    /// The review has no `request`.
    #[error("AdmissionReview has no request")]
    MissingRequest,
    /// `request.uid` is absent or empty, so no response could be matched.
    #[error("request.uid is missing or empty")]
    MissingUid,
    /// A pod CREATE without `request.object`.
    #[error("request {uid}: pod CREATE has no request.object")]
    MissingObject {
        /// The request's uid.
        uid: String,
    },
    /// `request.object` could not be read as a Pod.
    #[error("request {uid}: request.object is not a valid Pod: {reason}")]
    InvalidPod {
        /// The request's uid.
        uid: String,
        /// The decoder's message (names the field and position).
        reason: String,
    },
}

impl ReviewError {
    /// A short stable label for metrics and logs.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            ReviewError::NotJson(_) => "not_json",
            ReviewError::WrongApiVersion { .. } => "wrong_api_version",
            ReviewError::WrongKind { .. } => "wrong_kind",
            ReviewError::MissingRequest => "missing_request",
            ReviewError::MissingUid => "missing_uid",
            ReviewError::MissingObject { .. } => "missing_object",
            ReviewError::InvalidPod { .. } => "invalid_pod",
        }
    }
}

/// A pod being created, as the webhook needs it.
#[derive(Clone, Debug)]
pub struct PodCreate {
    /// `request.uid`, echoed in the response.
    pub uid: String,
    /// The pod's namespace: `request.namespace`, since a pod being created
    /// often has none in its metadata.
    pub namespace: String,
    /// `request.object`, with `metadata.namespace` filled in.
    pub pod: Pod,
}

/// What an AdmissionReview asks for.
#[derive(Clone, Debug)]
pub enum Review {
    /// A pod CREATE: look for a VPA and patch.
    PodCreate(Box<PodCreate>),
    /// Anything else (another resource, a subresource, UPDATE, DELETE,
    /// CONNECT): allowed unchanged.
    Ignored {
        /// `request.uid`, echoed in the response.
        uid: String,
        /// Why it is not handled (for logs).
        reason: String,
    },
}

impl Review {
    /// The request's uid.
    #[must_use]
    pub fn uid(&self) -> &str {
        match self {
            Review::PodCreate(p) => &p.uid,
            Review::Ignored { uid, .. } => uid,
        }
    }
}

/// Reads an AdmissionReview request body.
///
/// # Errors
/// A body that is not an `admission.k8s.io/v1` AdmissionReview with a
/// request and a uid, or a pod CREATE whose object is missing or not a Pod.
pub fn parse(body: &[u8]) -> Result<Review, ReviewError> {
    let review: IncomingReview =
        serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    let api_version = review.api_version.unwrap_or_default();
    if api_version != API_VERSION {
        return Err(ReviewError::WrongApiVersion { found: api_version });
    }
    let kind = review.kind.unwrap_or_default();
    if kind != KIND {
        return Err(ReviewError::WrongKind { found: kind });
    }
    let request = review.request.ok_or(ReviewError::MissingRequest)?;
    let uid = request
        .uid
        .filter(|u| !u.is_empty())
        .ok_or(ReviewError::MissingUid)?;
    let gvk = request.kind.unwrap_or_default();
    if !(gvk.group.is_empty() && gvk.version == "v1" && gvk.kind == "Pod") {
        let reason = format!(
            "not a core/v1 Pod (group {:?}, version {:?}, kind {:?})",
            gvk.group, gvk.version, gvk.kind
        );
        return Ok(Review::Ignored { uid, reason });
    }
    if let Some(sub) = request.sub_resource.filter(|s| !s.is_empty()) {
        let reason = format!("subresource {sub:?}");
        return Ok(Review::Ignored { uid, reason });
    }
    let operation = request.operation.unwrap_or_default();
    if operation != "CREATE" {
        let reason = format!("operation {operation:?}");
        return Ok(Review::Ignored { uid, reason });
    }
    let object = request
        .object
        .ok_or_else(|| ReviewError::MissingObject { uid: uid.clone() })?;
    let mut pod: Pod = serde_json::from_value(object).map_err(|e| ReviewError::InvalidPod {
        uid: uid.clone(),
        reason: e.to_string(),
    })?;
    let namespace = request
        .namespace
        .filter(|n| !n.is_empty())
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_default();
    pod.metadata.namespace = Some(namespace.clone());
    Ok(Review::PodCreate(Box::new(PodCreate {
        uid,
        namespace,
        pod,
    })))
}

/// The AdmissionReview sent back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResponseReview {
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Always [`KIND`].
    pub kind: String,
    /// The answer.
    pub response: AdmissionResponse,
}

/// `response` of an AdmissionReview.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    /// The request's uid.
    pub uid: String,
    /// Always true: Tailor never rejects a pod.
    pub allowed: bool,
    /// `JSONPatch` when a patch is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch_type: Option<String>,
    /// The base64-encoded RFC 6902 JSON patch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
}

impl ResponseReview {
    /// Allows the request unchanged.
    #[must_use]
    pub fn allow(uid: &str) -> Self {
        ResponseReview {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            response: AdmissionResponse {
                uid: uid.to_owned(),
                allowed: true,
                patch_type: None,
                patch: None,
            },
        }
    }

    /// Allows the request with `operations` applied; unchanged when empty.
    ///
    /// # Errors
    /// The operations could not be serialised (not expected for
    /// `serde_json::Value`s, but never a panic).
    pub fn allow_with_patch(
        uid: &str,
        operations: &[PatchOperation],
    ) -> Result<Self, serde_json::Error> {
        let mut out = ResponseReview::allow(uid);
        if operations.is_empty() {
            return Ok(out);
        }
        let json = serde_json::to_vec(operations)?;
        out.response.patch_type = Some("JSONPatch".to_owned());
        out.response.patch = Some(base64::engine::general_purpose::STANDARD.encode(json));
        Ok(out)
    }

    /// The decoded patch operations (empty without a patch); for tests and
    /// tools that inspect responses.
    ///
    /// # Errors
    /// The patch is not base64 or not a JSON patch.
    pub fn operations(&self) -> Result<Vec<PatchOperation>, String> {
        let Some(patch) = &self.response.patch else {
            return Ok(Vec::new());
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .map_err(|e| format!("patch is not base64: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("patch is not a JSON patch: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn review(request: &serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "request": request,
        }))
        .unwrap()
    }

    fn pod_request(operation: &str) -> serde_json::Value {
        serde_json::json!({
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"generateName": "web-7d9f-", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "nginx"}]}
            },
            "dryRun": false
        })
    }

    #[test]
    fn pod_create_takes_namespace_from_the_request() {
        let parsed = parse(&review(&pod_request("CREATE"))).unwrap();
        let Review::PodCreate(p) = parsed else {
            panic!("expected a pod create, got {parsed:?}");
        };
        assert_eq!(p.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(p.namespace, "shop");
        assert_eq!(p.pod.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(p.pod.spec.unwrap().containers[0].name, "app");
    }

    #[rstest]
    #[case::update("UPDATE")]
    #[case::delete("DELETE")]
    #[case::connect("CONNECT")]
    #[case::empty("")]
    fn other_operations_are_ignored(#[case] operation: &str) {
        let parsed = parse(&review(&pod_request(operation))).unwrap();
        assert!(matches!(parsed, Review::Ignored { .. }), "{parsed:?}");
        assert_eq!(parsed.uid(), "705ab4f5-6393-11e8-b7cc-42010a800002");
    }

    #[rstest]
    #[case::deployment(serde_json::json!({"group": "apps", "version": "v1", "kind": "Deployment"}))]
    #[case::pod_other_group(serde_json::json!({"group": "example.com", "version": "v1", "kind": "Pod"}))]
    #[case::binding(serde_json::json!({"group": "", "version": "v1", "kind": "Binding"}))]
    fn other_kinds_are_ignored(#[case] kind: serde_json::Value) {
        let mut request = pod_request("CREATE");
        request["kind"] = kind;
        let parsed = parse(&review(&request)).unwrap();
        assert!(matches!(parsed, Review::Ignored { .. }), "{parsed:?}");
    }

    #[test]
    fn subresources_are_ignored() {
        let mut request = pod_request("CREATE");
        request["subResource"] = serde_json::json!("eviction");
        let parsed = parse(&review(&request)).unwrap();
        assert!(matches!(parsed, Review::Ignored { .. }), "{parsed:?}");
    }

    #[rstest]
    #[case::not_json(b"{not json".to_vec(), "not_json", "not a valid AdmissionReview")]
    #[case::empty(Vec::new(), "not_json", "EOF")]
    #[case::array(b"[1,2]".to_vec(), "not_json", "invalid type")]
    #[case::v1beta1(
        br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"a"}}"#.to_vec(),
        "wrong_api_version",
        "admission.k8s.io/v1beta1"
    )]
    #[case::no_api_version(br#"{"kind":"AdmissionReview"}"#.to_vec(), "wrong_api_version", "\"\"")]
    #[case::wrong_kind(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"a"}}"#.to_vec(),
        "wrong_kind",
        "\"Pod\""
    )]
    #[case::no_request(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
        "missing_request",
        "no request"
    )]
    #[case::no_uid(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"operation":"CREATE"}}"#.to_vec(),
        "missing_uid",
        "uid"
    )]
    #[case::empty_uid(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#.to_vec(),
        "missing_uid",
        "uid"
    )]
    #[case::uid_not_string(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":7}}"#.to_vec(),
        "not_json",
        "invalid type"
    )]
    #[case::no_object(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE"}}"#.to_vec(),
        "missing_object",
        "request.object"
    )]
    #[case::containers_not_a_list(
        br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"a","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":{"name":"x"}}}}}"#.to_vec(),
        "invalid_pod",
        "not a valid Pod"
    )]
    fn malformed_bodies_are_rejected_with_a_clear_message(
        #[case] body: Vec<u8>,
        #[case] label: &str,
        #[case] message_part: &str,
    ) {
        let err = parse(&body).unwrap_err();
        assert_eq!(err.label(), label, "{err}");
        assert!(
            err.to_string().contains(message_part),
            "{err} should mention {message_part}"
        );
    }

    #[test]
    fn response_carries_uid_and_base64_patch() {
        let ops = vec![PatchOperation {
            op: "add".to_owned(),
            path: "/spec/containers/0/resources/requests/cpu".to_owned(),
            value: serde_json::json!("250m"),
        }];
        let response = ResponseReview::allow_with_patch("abc", &ops).unwrap();
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["apiVersion"], API_VERSION);
        assert_eq!(json["kind"], KIND);
        assert_eq!(json["response"]["uid"], "abc");
        assert_eq!(json["response"]["allowed"], true);
        assert_eq!(json["response"]["patchType"], "JSONPatch");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(json["response"]["patch"].as_str().unwrap())
            .unwrap();
        let patch: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
        assert_eq!(
            patch,
            serde_json::json!([{"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "250m"}])
        );
        assert_eq!(response.operations().unwrap(), ops);
    }

    #[test]
    fn empty_patch_sends_no_patch_fields() {
        let response = ResponseReview::allow_with_patch("abc", &[]).unwrap();
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"apiVersion": API_VERSION, "kind": KIND, "response": {"uid": "abc", "allowed": true}})
        );
    }

    fn arb_json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            prop_oneof![
                Just("CREATE".to_owned()),
                Just("Pod".to_owned()),
                Just("v1".to_owned()),
                Just(API_VERSION.to_owned()),
                Just(KIND.to_owned()),
                ".{0,8}",
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            let keys = prop_oneof![
                Just("apiVersion".to_owned()),
                Just("kind".to_owned()),
                Just("request".to_owned()),
                Just("uid".to_owned()),
                Just("operation".to_owned()),
                Just("object".to_owned()),
                Just("spec".to_owned()),
                Just("containers".to_owned()),
                Just("metadata".to_owned()),
                Just("resources".to_owned()),
                "[a-z]{1,6}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(keys, inner, 0..5)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            match parse(&body) {
                Ok(review) => prop_assert!(!review.uid().is_empty()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn arbitrary_requests_never_panic(request in arb_json(), api_version_ok in any::<bool>()) {
            let body = serde_json::to_vec(&serde_json::json!({
                "apiVersion": if api_version_ok { API_VERSION } else { "v1" },
                "kind": KIND,
                "request": request,
            })).unwrap();
            match parse(&body) {
                Ok(review) => {
                    prop_assert!(api_version_ok);
                    prop_assert!(!review.uid().is_empty());
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
