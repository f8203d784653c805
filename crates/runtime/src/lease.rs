//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` package does it.
//!
//! A candidate acquires the Lease when it is absent, released or expired
//! (`renewTime + leaseDurationSeconds` in the past), then renews it every retry
//! period. Leadership is lost, and the shutdown token cancelled, when a renewal
//! hits a conflict (someone else wrote the Lease) or when renewals keep failing
//! for longer than the renew deadline. On a clean shutdown the leader releases
//! the Lease so the next replica does not wait for it to expire.

use std::{path::Path, sync::Arc, time::Duration};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::args::LeaderElectionArgs;

/// Where the namespace of a pod's service account is mounted.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Errors from leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Leadership was held and then lost; the process should exit.
    #[error("lost leadership of Lease {namespace}/{name}: {reason}")]
    Lost {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// Why it was lost.
        reason: String,
    },
    /// A Kubernetes API call failed.
    #[error("Lease {namespace}/{name}: {action} failed: {source}")]
    Api {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// What was being done (get, create, update).
        action: &'static str,
        /// The client error (boxed: it is large).
        source: Box<kube::Error>,
    },
    /// The election settings are unusable.
    #[error("invalid leader election settings: {0}")]
    Config(String),
}

/// A source of wall-clock time for Lease timestamps; injectable for tests.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// Which Lease to contend for, as whom, and with what timing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This candidate's identity, written to `holderIdentity`.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying failed renewals before giving up.
    pub renew_deadline: Duration,
    /// Pause between acquire or renew attempts.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Settings from the flags: the name defaults to `component`, the namespace
    /// to [`pod_namespace`] or else `fallback_namespace`, the identity to [`identity`].
    pub fn from_args(
        args: &LeaderElectionArgs,
        component: &str,
        fallback_namespace: &str,
    ) -> Result<Self, LeaseError> {
        args.validate()
            .map_err(|err| LeaseError::Config(err.to_string()))?;
        let namespace = if args.leader_elect_resource_namespace.is_empty() {
            pod_namespace().unwrap_or_else(|| fallback_namespace.to_owned())
        } else {
            args.leader_elect_resource_namespace.clone()
        };
        Ok(Self {
            name: args.resource_name(component),
            namespace,
            identity: identity(),
            lease_duration: args.leader_elect_lease_duration,
            renew_deadline: args.leader_elect_renew_deadline,
            retry_period: args.leader_elect_retry_period,
        })
    }
}

/// This process's identity: `POD_NAME`, else the host name, else `tailor-<pid>`.
pub fn identity() -> String {
    identity_from(
        std::env::var("POD_NAME").ok(),
        std::env::var("HOSTNAME").ok(),
        std::fs::read_to_string("/etc/hostname").ok(),
    )
}

fn identity_from(
    pod_name: Option<String>,
    hostname_env: Option<String>,
    hostname_file: Option<String>,
) -> String {
    [pod_name, hostname_env, hostname_file]
        .into_iter()
        .flatten()
        .map(|s| s.trim().to_owned())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| format!("tailor-{}", std::process::id()))
}

/// The pod's namespace: `POD_NAMESPACE`, else the service-account namespace file.
pub fn pod_namespace() -> Option<String> {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string(Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE)).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Whether this process currently leads; cheap to clone and watch.
#[derive(Clone, Debug)]
pub struct LeaderState {
    rx: watch::Receiver<bool>,
    /// Keeps the channel open for [`LeaderState::always`], which has no elector.
    _always: Option<Arc<watch::Sender<bool>>>,
}

impl LeaderState {
    /// A state that always leads, for `--leader-elect=false` (a single replica).
    pub fn always() -> Self {
        let (tx, rx) = watch::channel(true);
        Self {
            rx,
            _always: Some(Arc::new(tx)),
        }
    }

    /// Whether this process holds the Lease right now.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when this process becomes leader; `false` if the elector stopped first.
    pub async fn wait_until_leader(&mut self) -> bool {
        self.rx.wait_for(|leader| *leader).await.is_ok()
    }

    /// Resolves when leadership ends (or immediately if not leading).
    pub async fn wait_until_not_leader(&mut self) {
        let _ = self.rx.wait_for(|leader| !*leader).await;
    }
}

/// Outcome of one acquire-or-renew attempt.
enum Attempt {
    /// This process holds the Lease; the object as written.
    Held(Box<Lease>),
    /// Someone else holds it, or a racing writer won this round.
    NotHeld,
}

/// Contends for a Lease and keeps it; see the module docs.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    clock: Arc<dyn Clock>,
    state: watch::Sender<bool>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Starts leader election for `component` when `--leader-elect` is on (the
/// elector runs as a task of `shutdown`), or returns a state that always leads
/// when it is off. Every leader-elected binary starts the same way.
pub fn start(
    client: &Client,
    args: &LeaderElectionArgs,
    component: &str,
    fallback_namespace: &str,
    shutdown: &crate::Shutdown,
) -> Result<LeaderState, LeaseError> {
    if !args.leader_elect {
        return Ok(LeaderState::always());
    }
    let config = LeaseConfig::from_args(args, component, fallback_namespace)?;
    let elector = LeaderElector::new(client.clone(), config);
    let state = elector.state();
    shutdown.spawn(elector.run(shutdown.token()));
    Ok(state)
}

impl LeaderElector {
    /// An elector for `config` using `client` and the system clock.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            clock: Arc::new(SystemClock),
            state: watch::Sender::new(false),
        }
    }

    /// Replaces the wall clock used for Lease timestamps (for tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A handle that reports whether this process leads.
    pub fn state(&self) -> LeaderState {
        LeaderState {
            rx: self.state.subscribe(),
            _always: None,
        }
    }

    /// Acquires the Lease, then keeps renewing it until `shutdown` is cancelled
    /// (releases the Lease, returns `Ok`) or leadership is lost (cancels
    /// `shutdown` so every task stops, returns [`LeaseError::Lost`]).
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), LeaseError> {
        let Some(mut held) = self.acquire(&shutdown).await else {
            return Ok(());
        };
        self.state.send_replace(true);
        tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
        let mut last_renew = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.state.send_replace(false);
                    self.release(held).await;
                    return Ok(());
                }
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            let remaining = self
                .config
                .renew_deadline
                .saturating_sub(last_renew.elapsed());
            let reason = match tokio::time::timeout(remaining, self.renew(&held)).await {
                Ok(Ok(lease)) => {
                    held = lease;
                    last_renew = Instant::now();
                    continue;
                }
                Ok(Err(LeaseError::Api { source, .. })) if is_conflict(&source) => {
                    "the Lease was changed by someone else (409 Conflict)".to_owned()
                }
                Ok(Err(err)) => {
                    if last_renew.elapsed() < self.config.renew_deadline {
                        tracing::warn!(error = %err, "cannot renew Lease; will retry");
                        continue;
                    }
                    format!(
                        "renewals failed for {:?}: {err}",
                        self.config.renew_deadline
                    )
                }
                Err(_) => format!("no renewal within {:?}", self.config.renew_deadline),
            };
            self.state.send_replace(false);
            shutdown.cancel();
            let err = LeaseError::Lost {
                namespace: self.config.namespace.clone(),
                name: self.config.name.clone(),
                reason,
            };
            tracing::error!(error = %err, "stepping down");
            return Err(err);
        }
    }

    /// Tries every retry period until the Lease is held or shutdown starts.
    async fn acquire(&self, shutdown: &CancellationToken) -> Option<Lease> {
        loop {
            // A stuck API call must not delay shutdown.
            let attempt = tokio::select! {
                () = shutdown.cancelled() => return None,
                attempt = self.try_acquire() => attempt,
            };
            match attempt {
                Ok(Attempt::Held(lease)) => return Some(*lease),
                Ok(Attempt::NotHeld) => {}
                Err(err) => tracing::warn!(error = %err, "cannot acquire Lease; will retry"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
    }

    async fn try_acquire(&self) -> Result<Attempt, LeaseError> {
        let now = self.clock.now();
        let existing = match self.api.get(&self.config.name).await {
            Ok(lease) => lease,
            Err(err) if is_status(&err, 404) => {
                return match self
                    .api
                    .create(&PostParams::default(), &self.new_lease(now))
                    .await
                {
                    Ok(lease) => Ok(Attempt::Held(Box::new(lease))),
                    // Another candidate created it first.
                    Err(err) if is_status(&err, 409) => Ok(Attempt::NotHeld),
                    Err(err) => Err(self.api_error("create", err)),
                };
            }
            Err(err) => return Err(self.api_error("get", err)),
        };
        let spec = existing.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let ours = holder == self.config.identity;
        if !holder.is_empty() && !ours && !expired(&spec, now) {
            tracing::debug!(%holder, "Lease held by another candidate");
            return Ok(Attempt::NotHeld);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.duration_seconds()),
            acquire_time: if ours {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours { transitions } else { transitions + 1 }),
            ..spec
        };
        let lease = Lease {
            metadata: existing.metadata,
            spec: Some(new_spec),
        };
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(lease) => Ok(Attempt::Held(Box::new(lease))),
            Err(err) if is_status(&err, 409) => Ok(Attempt::NotHeld),
            Err(err) => Err(self.api_error("update", err)),
        }
    }

    /// Writes a new `renewTime` over the Lease as last written by us; the
    /// `resourceVersion` makes the write fail with 409 if anyone else wrote since.
    async fn renew(&self, held: &Lease) -> Result<Lease, LeaseError> {
        let mut lease = held.clone();
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.renew_time = Some(MicroTime(self.clock.now()));
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map_err(|err| self.api_error("update", err))
    }

    /// Best effort: empties the holder and shortens the Lease to one second.
    async fn release(&self, held: Lease) {
        let now = self.clock.now();
        let mut lease = held;
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
        spec.acquire_time = Some(MicroTime(now));
        spec.renew_time = Some(MicroTime(now));
        // Bounded, so a hung API server cannot hold up process exit.
        let params = PostParams::default();
        let write = self.api.replace(&self.config.name, &params, &lease);
        match tokio::time::timeout(self.config.renew_deadline, write).await {
            Ok(Ok(_)) => tracing::info!(lease = %self.config.name, "released Lease"),
            Ok(Err(err)) => {
                tracing::warn!(error = %self.api_error("release", err), "cannot release Lease");
            }
            Err(_) => tracing::warn!(lease = %self.config.name, "releasing the Lease timed out"),
        }
    }

    fn new_lease(&self, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.config.name.clone()),
                namespace: Some(self.config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX)
    }

    fn api_error(&self, action: &'static str, source: kube::Error) -> LeaseError {
        LeaseError::Api {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            action,
            source: Box::new(source),
        }
    }
}

/// Whether the Lease's last renewal is older than its duration. A Lease without
/// a renew time or duration counts as expired.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let (Some(renew), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    renew.0 + SignedDuration::from_secs(i64::from(seconds)) < now
}

fn is_status(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}

fn is_conflict(err: &kube::Error) -> bool {
    is_status(err, 409)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use rstest::rstest;
    use serde_json::{Value, json};
    use tower_test::mock::{self, Handle, SendResponse};

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/tailor/leases/tailor-recommender";
    const COLLECTION: &str = "/apis/coordination.k8s.io/v1/namespaces/tailor/leases";

    /// Wall time that follows tokio's (paused) clock from a fixed start.
    struct TestClock {
        base: Timestamp,
        start: Instant,
    }

    impl Clock for TestClock {
        fn now(&self) -> Timestamp {
            self.base + SignedDuration::try_from(self.start.elapsed()).unwrap()
        }
    }

    fn base() -> Timestamp {
        "2026-11-21T12:00:00Z".parse().unwrap()
    }

    /// `base` plus `secs`, as Kubernetes writes a MicroTime.
    fn at(secs: i64) -> String {
        let t = base() + SignedDuration::from_secs(secs);
        serde_json::to_value(MicroTime(t))
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    type ApiHandle = Handle<Request<Body>, Response<Body>>;

    fn elector() -> (LeaderElector, ApiHandle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let config = LeaseConfig {
            name: "tailor-recommender".to_owned(),
            namespace: "tailor".to_owned(),
            identity: "recommender-a".to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        let clock = Arc::new(TestClock {
            base: base(),
            start: Instant::now(),
        });
        (LeaderElector::new(client, config).with_clock(clock), handle)
    }

    /// Receives the next request, asserts method, path, query and JSON body.
    async fn expect(
        handle: &mut ApiHandle,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> SendResponse<Response<Body>> {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method().as_str(), method);
        assert_eq!(request.uri().path(), path);
        assert_eq!(request.uri().query().unwrap_or(""), "");
        let bytes = request.into_body().collect_bytes().await.unwrap();
        match body {
            None => assert!(bytes.is_empty(), "unexpected body {bytes:?}"),
            Some(expected) => {
                let got: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(got, expected);
            }
        }
        send
    }

    fn respond(send: SendResponse<Response<Body>>, status: StatusCode, body: &Value) {
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        );
    }

    fn status(code: u16, reason: &str) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure",
            "message": format!("leases.coordination.k8s.io \"tailor-recommender\": {reason}"),
            "reason": reason,
            "details": {"name": "tailor-recommender", "group": "coordination.k8s.io", "kind": "leases"},
            "code": code
        })
    }

    /// A Lease as the API server returns it (or as the client sends it: the
    /// metadata the test passes decides which).
    fn lease(
        metadata: Value,
        holder: &str,
        duration: i64,
        acquire: &str,
        renew: &str,
        transitions: i64,
    ) -> Value {
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "acquireTime": acquire,
                "renewTime": renew,
                "leaseTransitions": transitions
            }
        })
    }

    fn stored(rv: &str) -> Value {
        json!({"name": "tailor-recommender", "namespace": "tailor", "resourceVersion": rv, "uid": "0b7e"})
    }

    fn fresh() -> Value {
        json!({"name": "tailor-recommender", "namespace": "tailor"})
    }

    #[tokio::test(start_paused = true)]
    async fn creates_a_missing_lease_renews_it_and_releases_on_shutdown() {
        let (elector, mut api) = elector();
        let mut state = elector.state();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(elector.run(shutdown.clone()));

        let send = expect(&mut api, "GET", PATH, None).await;
        respond(send, StatusCode::NOT_FOUND, &status(404, "NotFound"));
        let send = expect(
            &mut api,
            "POST",
            COLLECTION,
            Some(lease(fresh(), "recommender-a", 15, &at(0), &at(0), 0)),
        )
        .await;
        assert!(!state.is_leader(), "not leader before the create succeeds");
        respond(
            send,
            StatusCode::CREATED,
            &lease(stored("100"), "recommender-a", 15, &at(0), &at(0), 0),
        );
        assert!(state.wait_until_leader().await);

        // Renewal after one retry period: only renewTime moves, on top of rv 100.
        let send = expect(
            &mut api,
            "PUT",
            PATH,
            Some(lease(stored("100"), "recommender-a", 15, &at(0), &at(2), 0)),
        )
        .await;
        respond(
            send,
            StatusCode::OK,
            &lease(stored("101"), "recommender-a", 15, &at(0), &at(2), 0),
        );
        let send = expect(
            &mut api,
            "PUT",
            PATH,
            Some(lease(stored("101"), "recommender-a", 15, &at(0), &at(4), 0)),
        )
        .await;
        respond(
            send,
            StatusCode::OK,
            &lease(stored("102"), "recommender-a", 15, &at(0), &at(4), 0),
        );

        // Shutdown releases: empty holder, one-second duration.
        tokio::task::yield_now().await;
        shutdown.cancel();
        let send = expect(
            &mut api,
            "PUT",
            PATH,
            Some(lease(stored("102"), "", 1, &at(4), &at(4), 0)),
        )
        .await;
        respond(
            send,
            StatusCode::OK,
            &lease(stored("103"), "", 1, &at(4), &at(4), 0),
        );
        run.await.unwrap().unwrap();
        assert!(!state.is_leader());
    }

    #[tokio::test(start_paused = true)]
    async fn an_unexpired_lease_of_another_holder_is_left_alone() {
        let (elector, mut api) = elector();
        let state = elector.state();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(elector.run(shutdown.clone()));

        // Renewed 5s before our start, 15s duration: valid for 10 more seconds.
        let other = lease(stored("7"), "recommender-b", 15, &at(-60), &at(-5), 2);
        for _ in 0..3 {
            let send = expect(&mut api, "GET", PATH, None).await;
            respond(send, StatusCode::OK, &other);
            assert!(!state.is_leader());
        }
        // The next GET (at +6s) is the fourth; stop while it is outstanding.
        let send = expect(&mut api, "GET", PATH, None).await;
        respond(send, StatusCode::OK, &other);
        shutdown.cancel();
        run.await.unwrap().unwrap();
        assert!(!state.is_leader());
        // No write was ever attempted: the mock saw only GETs, and nothing more is queued.
        drop(api);
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_lease_is_taken_over_with_one_more_transition() {
        let (elector, mut api) = elector();
        let mut state = elector.state();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(elector.run(shutdown.clone()));

        // Renewed 16s ago with a 15s duration: expired.
        let send = expect(&mut api, "GET", PATH, None).await;
        respond(
            send,
            StatusCode::OK,
            &lease(stored("7"), "recommender-b", 15, &at(-60), &at(-16), 2),
        );
        let send = expect(
            &mut api,
            "PUT",
            PATH,
            Some(lease(stored("7"), "recommender-a", 15, &at(0), &at(0), 3)),
        )
        .await;
        respond(
            send,
            StatusCode::OK,
            &lease(stored("8"), "recommender-a", 15, &at(0), &at(0), 3),
        );
        assert!(state.wait_until_leader().await);

        shutdown.cancel();
        let send = expect(
            &mut api,
            "PUT",
            PATH,
            Some(lease(stored("8"), "", 1, &at(0), &at(0), 3)),
        )
        .await;
        respond(
            send,
            StatusCode::OK,
            &lease(stored("9"), "", 1, &at(0), &at(0), 3),
        );
        run.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn our_own_lease_is_resumed_without_a_transition() {
        let (elector, mut api) = elector();
        let mut state = elector.state();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(elector.run(shutdown.clone()));

        // A restarted container keeps its pod name: the unexpired Lease is ours.
        let send = expect(&mut api, "GET", PATH, None).await;
        respond(
            send,
            StatusCode::OK,
            &lease(stored("7"), "recommender-a", 15, &at(-60), &at(-3), 2),
        );
        let send = expect(
            &mut api,
            "PUT",
            PATH,
            Some(lease(stored("7"), "recommender-a", 15, &at(-60), &at(0), 2)),
        )
        .await;
        respond(
            send,
            StatusCode::OK,
            &lease(stored("8"), "recommender-a", 15, &at(-60), &at(0), 2),
        );
        assert!(state.wait_until_leader().await);
        shutdown.cancel();
        let send = expect(
            &mut api,
            "PUT",
            PATH,
            Some(lease(stored("8"), "", 1, &at(0), &at(0), 2)),
        )
        .await;
        respond(
            send,
            StatusCode::OK,
            &lease(stored("9"), "", 1, &at(0), &at(0), 2),
        );
        run.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn losing_a_takeover_race_means_not_leader_and_retry() {
        let (elector, mut api) = elector();
        let state = elector.state();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(elector.run(shutdown.clone()));

        let send = expect(&mut api, "GET", PATH, None).await;
        respond(send, StatusCode::NOT_FOUND, &status(404, "NotFound"));
        let send = expect(
            &mut api,
            "POST",
            COLLECTION,
            Some(lease(fresh(), "recommender-a", 15, &at(0), &at(0), 0)),
        )
        .await;
        respond(send, StatusCode::CONFLICT, &status(409, "AlreadyExists"));
        // Retried after one period with a fresh GET.
        let send = expect(&mut api, "GET", PATH, None).await;
        assert!(!state.is_leader());
        respond(
            send,
            StatusCode::OK,
            &lease(stored("1"), "recommender-b", 15, &at(0), &at(0), 0),
        );
        let _pending = expect(&mut api, "GET", PATH, None).await;
        shutdown.cancel();
        run.await.unwrap().unwrap();
        assert!(!state.is_leader());
    }

    #[tokio::test(start_paused = true)]
    async fn a_conflict_on_renew_loses_leadership_and_cancels_shutdown() {
        let (elector, mut api) = elector();
        let mut state = elector.state();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(elector.run(shutdown.clone()));

        let send = expect(&mut api, "GET", PATH, None).await;
        respond(send, StatusCode::NOT_FOUND, &status(404, "NotFound"));
        let send = expect(
            &mut api,
            "POST",
            COLLECTION,
            Some(lease(fresh(), "recommender-a", 15, &at(0), &at(0), 0)),
        )
        .await;
        respond(
            send,
            StatusCode::CREATED,
            &lease(stored("100"), "recommender-a", 15, &at(0), &at(0), 0),
        );
        assert!(state.wait_until_leader().await);

        let send = expect(
            &mut api,
            "PUT",
            PATH,
            Some(lease(stored("100"), "recommender-a", 15, &at(0), &at(2), 0)),
        )
        .await;
        respond(send, StatusCode::CONFLICT, &status(409, "Conflict"));
        let err = run.await.unwrap().unwrap_err();
        assert!(
            matches!(&err, LeaseError::Lost { reason, .. } if reason.contains("409")),
            "{err}"
        );
        assert!(shutdown.is_cancelled(), "losing the lease ends the process");
        assert!(!state.is_leader());
    }

    #[tokio::test(start_paused = true)]
    async fn failing_renewals_give_up_at_the_renew_deadline() {
        let (elector, mut api) = elector();
        let mut state = elector.state();
        let shutdown = CancellationToken::new();
        let run = tokio::spawn(elector.run(shutdown.clone()));

        let send = expect(&mut api, "GET", PATH, None).await;
        respond(send, StatusCode::NOT_FOUND, &status(404, "NotFound"));
        let send = expect(
            &mut api,
            "POST",
            COLLECTION,
            Some(lease(fresh(), "recommender-a", 15, &at(0), &at(0), 0)),
        )
        .await;
        respond(
            send,
            StatusCode::CREATED,
            &lease(stored("100"), "recommender-a", 15, &at(0), &at(0), 0),
        );
        assert!(state.wait_until_leader().await);

        // Renewals at +2, +4, +6, +8 fail and are retried; at +10 the 10s
        // deadline since the last success has passed, so no further attempt.
        let start = Instant::now();
        for secs in [2, 4, 6, 8] {
            let send = expect(
                &mut api,
                "PUT",
                PATH,
                Some(lease(
                    stored("100"),
                    "recommender-a",
                    15,
                    &at(0),
                    &at(secs),
                    0,
                )),
            )
            .await;
            assert!(state.is_leader(), "still leader at +{secs}s");
            assert!(!shutdown.is_cancelled());
            respond(
                send,
                StatusCode::INTERNAL_SERVER_ERROR,
                &status(500, "InternalError"),
            );
        }
        let err = run.await.unwrap().unwrap_err();
        assert!(matches!(err, LeaseError::Lost { .. }), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert!(shutdown.is_cancelled());
        assert!(!state.is_leader());
    }

    #[rstest]
    #[case(Some("pod-1"), Some("host"), Some("file\n"), "pod-1")]
    #[case(None, Some("host"), Some("file\n"), "host")]
    #[case(Some(" "), None, Some("file\n"), "file")]
    fn identity_prefers_pod_name_then_hostname(
        #[case] pod: Option<&str>,
        #[case] host: Option<&str>,
        #[case] file: Option<&str>,
        #[case] expected: &str,
    ) {
        let id = identity_from(
            pod.map(str::to_owned),
            host.map(str::to_owned),
            file.map(str::to_owned),
        );
        assert_eq!(id, expected);
    }

    #[tokio::test]
    async fn always_leads_without_an_elector() {
        let mut state = LeaderState::always();
        assert!(state.is_leader());
        assert!(state.wait_until_leader().await);
    }

    #[test]
    fn from_args_fills_name_and_checks_timing() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            lease: LeaderElectionArgs,
        }
        let cli = Cli::try_parse_from(["x", "--leader-elect-resource-namespace", "ops"]).unwrap();
        let config = LeaseConfig::from_args(&cli.lease, "tailor-updater", "default").unwrap();
        assert_eq!(config.name, "tailor-updater");
        assert_eq!(config.namespace, "ops");
        assert_eq!(config.lease_duration, Duration::from_secs(15));
        assert!(!config.identity.is_empty());
        let bad = Cli::try_parse_from(["x", "--leader-elect-renew-deadline", "20s"]).unwrap();
        let err = LeaseConfig::from_args(&bad.lease, "tailor-updater", "default").unwrap_err();
        assert!(
            err.to_string().contains("--leader-elect-renew-deadline"),
            "{err}"
        );
    }

    #[test]
    fn identity_falls_back_to_the_pid() {
        assert_eq!(
            identity_from(None, None, None),
            format!("tailor-{}", std::process::id())
        );
    }

    #[rstest]
    #[case(-16, 15, true)]
    #[case(-15, 15, false)]
    #[case(-5, 15, false)]
    fn expiry_uses_renew_time_plus_duration(
        #[case] renewed: i64,
        #[case] duration: i32,
        #[case] is_expired: bool,
    ) {
        let spec = LeaseSpec {
            renew_time: Some(MicroTime(base() + SignedDuration::from_secs(renewed))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        };
        assert_eq!(expired(&spec, base()), is_expired);
        assert!(expired(&LeaseSpec::default(), base()));
    }
}
