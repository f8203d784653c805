//! The writer: carries out a step's actions against the API server — an
//! in-place resize through `pods/resize`, an eviction through `policy/v1`
//! Eviction (so PodDisruptionBudgets hold) — rate-limited, within the loop's
//! time, with an Event on the pod and on its VPA saying what was done and why.
//! In dry-run mode it logs and emits the Events, and changes nothing.

use crate::ratelimit::RateLimiter;
use crate::step::{ActionKind, PlannedAction, ResizeTracker};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tailor_core::update::ResizeState;

/// Events' `note` is limited to 1 KiB by the API server.
const MAX_NOTE: usize = 1024;

/// Event reasons, as upstream's updater names them where it has one.
pub mod reason {
    /// On the pod: evicted.
    pub const EVICTED: &str = "EvictedByVPA";
    /// On the VPA: one of its pods was evicted.
    pub const EVICTED_POD: &str = "EvictedPod";
    /// On the pod: resized in place.
    pub const RESIZED: &str = "InPlaceResizedByVPA";
    /// On the VPA: one of its pods was resized in place.
    pub const RESIZED_POD: &str = "InPlaceResizedPod";
    /// Dry run, on the pod and the VPA: would have evicted.
    pub const WOULD_EVICT: &str = "WouldEvictByVPA";
    /// Dry run, on the pod and the VPA: would have resized.
    pub const WOULD_RESIZE: &str = "WouldResizeByVPA";
}

/// What the actions did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ActReport {
    /// Pods resized (dry run: would have been).
    pub resized: u64,
    /// Pods evicted (dry run: would have been).
    pub evicted: u64,
    /// Evictions refused with 429.
    pub refused: u64,
    /// Resizes given up for eviction, by resize state (`api_error` when the
    /// resize call itself failed).
    pub fallbacks: BTreeMap<String, u64>,
    /// Failed calls by `eviction`, `resize`, `event`.
    pub failures: BTreeMap<&'static str, u64>,
    /// Actions not taken this loop, by `rate_limited`, `loop_deadline`, `pod_gone`.
    pub skipped: BTreeMap<&'static str, u64>,
}

/// Why an eviction did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EvictError {
    /// 429: a PodDisruptionBudget (or the API server) said "not now".
    #[error("eviction refused for now: {0}")]
    TooManyRequests(String),
    /// 404: the pod is already gone.
    #[error("pod not found")]
    NotFound,
    /// Anything else.
    #[error(transparent)]
    Other(#[from] CallError),
}

/// A failed API call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The API server answered with an error, or could not be reached.
    #[error(transparent)]
    Kube(#[from] kube::Error),
    /// No answer within the per-call timeout.
    #[error("no answer from the API server within {0:?}")]
    Timeout(Duration),
    /// The request could not be built (a name that is not a valid path).
    #[error("cannot build the request: {0}")]
    Build(String),
}

/// The path of a pod subresource.
fn pod_path(namespace: &str, name: &str, subresource: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{name}/{subresource}")
}

async fn send(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
    timeout: Duration,
) -> Result<String, CallError> {
    match tokio::time::timeout(timeout, client.request_text(request)).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(CallError::Timeout(timeout)),
    }
}

/// Evicts a pod through the `policy/v1` Eviction subresource.
///
/// # Errors
/// 429 and 404 as their own variants; any other failure.
pub async fn evict(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<(), EvictError> {
    let body = serde_json::json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
    });
    let request = http::Request::post(pod_path(namespace, name, "eviction"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body.to_string().into_bytes())
        .map_err(|e| CallError::Build(e.to_string()))?;
    match send(client, request, timeout).await {
        Ok(_) => Ok(()),
        Err(CallError::Kube(kube::Error::Api(status))) if status.code == 429 => {
            Err(EvictError::TooManyRequests(status.message.clone()))
        }
        Err(CallError::Kube(kube::Error::Api(status))) if status.code == 404 => {
            Err(EvictError::NotFound)
        }
        Err(e) => Err(e.into()),
    }
}

/// Resizes a pod in place: a JSON Patch on its `resize` subresource.
///
/// # Errors
/// The API server refused the patch, or did not answer.
pub async fn resize(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    patch: &[tailor_core::admission::PatchOperation],
    timeout: Duration,
) -> Result<(), CallError> {
    let body = serde_json::to_vec(patch).map_err(|e| CallError::Build(e.to_string()))?;
    let request = http::Request::patch(pod_path(namespace, name, "resize"))
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(body)
        .map_err(|e| CallError::Build(e.to_string()))?;
    send(client, request, timeout).await.map(|_| ())
}

fn state_label(state: ResizeState) -> &'static str {
    match state {
        ResizeState::None => "none",
        ResizeState::Deferred => "deferred",
        ResizeState::Infeasible => "infeasible",
        ResizeState::InProgress => "in_progress",
        ResizeState::Error => "error",
        ResizeState::Unknown => "unknown",
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_NOTE {
        let mut end = MAX_NOTE - 3;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// Carries out actions; holds the rate limiters across loops.
pub struct Actor {
    client: kube::Client,
    recorder: Recorder,
    dry_run: bool,
    evictions: RateLimiter,
    resizes: RateLimiter,
    call_timeout: Duration,
}

impl std::fmt::Debug for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actor")
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// How the actor behaves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActorConfig {
    /// Log and emit Events only.
    pub dry_run: bool,
    /// Evictions (and, separately, resizes) per second; `<= 0`: unlimited.
    pub rate_limit: f64,
    /// Burst of the rate limit.
    pub rate_burst: u32,
    /// Timeout of each API call.
    pub call_timeout: Duration,
}

impl Actor {
    /// An actor writing through `client`; Events are reported as `recorder`'s.
    #[must_use]
    pub fn new(client: kube::Client, recorder: Recorder, config: ActorConfig) -> Self {
        Actor {
            client,
            recorder,
            dry_run: config.dry_run,
            // Upstream limits evictions and in-place resizes separately, with the same settings.
            evictions: RateLimiter::new(config.rate_limit, config.rate_burst),
            resizes: RateLimiter::new(config.rate_limit, config.rate_burst),
            call_timeout: config.call_timeout,
        }
    }

    async fn event(
        &self,
        report: &mut ActReport,
        object: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
        action: &str,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note)),
            action: action.to_owned(),
            secondary: None,
        };
        let publish = self.recorder.publish(&event, object);
        match tokio::time::timeout(self.call_timeout, publish).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                *report.failures.entry("event").or_default() += 1;
                tracing::warn!(object = ?object.name, error = %e, "event not published");
            }
            Err(_) => {
                *report.failures.entry("event").or_default() += 1;
                tracing::warn!(object = ?object.name, "event not published: timeout");
            }
        }
    }

    /// Waits for a token unless that would pass `deadline`.
    async fn token(&mut self, evict: bool, deadline: Instant) -> bool {
        loop {
            let limiter = if evict {
                &mut self.evictions
            } else {
                &mut self.resizes
            };
            let now = Instant::now();
            match limiter.try_acquire(now) {
                Ok(()) => return true,
                Err(wait) if now + wait <= deadline => tokio::time::sleep(wait).await,
                Err(_) => return false,
            }
        }
    }

    /// Carries out `actions` in order until `deadline`, while `leading`
    /// says this process still holds the lease; what is left waits for the
    /// next loop (which decides afresh). One failure does not stop the others.
    pub async fn apply(
        &mut self,
        actions: &[PlannedAction],
        tracker: &mut ResizeTracker,
        now_secs: i64,
        deadline: Instant,
        leading: &(dyn Fn() -> bool + Sync),
    ) -> ActReport {
        let mut report = ActReport::default();
        for (i, a) in actions.iter().enumerate() {
            if !leading() {
                tracing::warn!("lease lost; no more actions");
                break;
            }
            if Instant::now() >= deadline {
                let left = (actions.len() - i) as u64;
                *report.skipped.entry("loop_deadline").or_default() += left;
                tracing::info!(
                    left,
                    "loop interval used up; the rest waits for the next loop"
                );
                break;
            }
            let evict = matches!(a.kind, ActionKind::Evict { .. });
            if !self.token(evict, deadline).await {
                *report.skipped.entry("rate_limited").or_default() += 1;
                tracing::debug!(pod = %format!("{}/{}", a.namespace, a.pod), "rate limit: waits for the next loop");
                continue;
            }
            match &a.kind {
                ActionKind::Resize { patch } => {
                    self.do_resize(a, patch, tracker, now_secs, &mut report)
                        .await;
                }
                ActionKind::Evict { fallback_from } => {
                    let why = fallback_from.map(|s| {
                        *report
                            .fallbacks
                            .entry(state_label(s).to_owned())
                            .or_default() += 1;
                        format!("in-place resize {s:?} past its time; evicting instead")
                    });
                    self.do_evict(a, why, &mut report).await;
                }
            }
        }
        report
    }

    fn refs(a: &PlannedAction) -> (ObjectReference, ObjectReference) {
        let pod = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(a.pod.clone()),
            namespace: Some(a.namespace.clone()),
            uid: Some(a.pod_uid.clone()).filter(|u| !u.is_empty()),
            ..ObjectReference::default()
        };
        let vpa = ObjectReference {
            api_version: Some("autoscaling.k8s.io/v1".into()),
            kind: Some("VerticalPodAutoscaler".into()),
            name: Some(a.vpa.clone()),
            namespace: Some(a.namespace.clone()),
            uid: Some(a.vpa_uid.clone()).filter(|u| !u.is_empty()),
            ..ObjectReference::default()
        };
        (pod, vpa)
    }

    async fn do_resize(
        &mut self,
        a: &PlannedAction,
        patch: &[tailor_core::admission::PatchOperation],
        tracker: &mut ResizeTracker,
        now_secs: i64,
        report: &mut ActReport,
    ) {
        let id = format!("{}/{}", a.namespace, a.pod);
        let (pod_ref, vpa_ref) = Self::refs(a);
        if self.dry_run {
            tracing::info!(pod = %id, vpa = %a.vpa, reason = %a.message, "dry run: would resize in place");
            report.resized += 1;
            let note = format!(
                "Dry run: would resize in place to apply VPA {}'s recommendation: {}",
                a.vpa, a.message
            );
            self.event(
                report,
                &pod_ref,
                EventType::Normal,
                reason::WOULD_RESIZE,
                note,
                "Resize",
            )
            .await;
            let note = format!(
                "Dry run: would resize pod {} in place: {}",
                a.pod, a.message
            );
            self.event(
                report,
                &vpa_ref,
                EventType::Normal,
                reason::WOULD_RESIZE,
                note,
                "Resize",
            )
            .await;
            return;
        }
        match resize(&self.client, &a.namespace, &a.pod, patch, self.call_timeout).await {
            Ok(()) => {
                tracker.record(&a.pod_uid, now_secs);
                report.resized += 1;
                tracing::info!(pod = %id, vpa = %a.vpa, reason = %a.message, "resized in place");
                let note = format!(
                    "Resized in place by tailor-updater to apply VPA {}'s recommendation: {}",
                    a.vpa, a.message
                );
                self.event(
                    report,
                    &pod_ref,
                    EventType::Normal,
                    reason::RESIZED,
                    note,
                    "Resize",
                )
                .await;
                let note = format!("Resized pod {} in place: {}", a.pod, a.message);
                self.event(
                    report,
                    &vpa_ref,
                    EventType::Normal,
                    reason::RESIZED_POD,
                    note,
                    "Resize",
                )
                .await;
            }
            Err(e) => {
                *report.failures.entry("resize").or_default() += 1;
                *report.fallbacks.entry("api_error".into()).or_default() += 1;
                tracing::warn!(pod = %id, error = %e, "in-place resize failed; evicting instead");
                let why = format!("in-place resize failed ({e}); evicting instead");
                self.do_evict(a, Some(why), report).await;
            }
        }
    }

    async fn do_evict(&mut self, a: &PlannedAction, why: Option<String>, report: &mut ActReport) {
        let id = format!("{}/{}", a.namespace, a.pod);
        let (pod_ref, vpa_ref) = Self::refs(a);
        let because = match &why {
            Some(w) => format!("{} ({w})", a.message),
            None => a.message.clone(),
        };
        if self.dry_run {
            tracing::info!(pod = %id, vpa = %a.vpa, reason = %because, "dry run: would evict");
            report.evicted += 1;
            let note = format!(
                "Dry run: would evict to apply VPA {}'s recommendation: {because}",
                a.vpa
            );
            self.event(
                report,
                &pod_ref,
                EventType::Normal,
                reason::WOULD_EVICT,
                note,
                "Evict",
            )
            .await;
            let note = format!("Dry run: would evict pod {}: {because}", a.pod);
            self.event(
                report,
                &vpa_ref,
                EventType::Normal,
                reason::WOULD_EVICT,
                note,
                "Evict",
            )
            .await;
            return;
        }
        match evict(&self.client, &a.namespace, &a.pod, self.call_timeout).await {
            Ok(()) => {
                report.evicted += 1;
                tracing::info!(pod = %id, vpa = %a.vpa, reason = %because, "evicted");
                let note = format!(
                    "Evicted by tailor-updater to apply VPA {}'s recommendation: {because}",
                    a.vpa
                );
                self.event(
                    report,
                    &pod_ref,
                    EventType::Normal,
                    reason::EVICTED,
                    note,
                    "Evict",
                )
                .await;
                let note = format!("Evicted pod {}: {because}", a.pod);
                self.event(
                    report,
                    &vpa_ref,
                    EventType::Normal,
                    reason::EVICTED_POD,
                    note,
                    "Evict",
                )
                .await;
            }
            Err(EvictError::TooManyRequests(message)) => {
                report.refused += 1;
                tracing::info!(pod = %id, %message, "eviction refused for now (disruption budget); retried next loop");
            }
            Err(EvictError::NotFound) => {
                *report.skipped.entry("pod_gone").or_default() += 1;
                tracing::debug!(pod = %id, "pod already gone");
            }
            Err(EvictError::Other(e)) => {
                *report.failures.entry("eviction").or_default() += 1;
                tracing::warn!(pod = %id, error = %e, "eviction failed");
            }
        }
    }
}
