//! The start and end every long-running Tailor binary shares.
//!
//! Each binary used to spell out the same sequence: one [`Shutdown`] listening
//! for signals, readiness and liveness, the admin server on its own port, and
//! at the end a bounded drain. A loop that acts only as leader added the
//! Lease, the wait for its caches and the lease while staying live, and an
//! Event recorder. [`Process`] is that sequence once, so the binaries differ
//! only in what they serve or decide.

use std::future::Future;
use std::time::Duration;

use kube::runtime::events::{Recorder, Reporter};
use prometheus_client::registry::Registry;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Heartbeat, Liveness, Readiness};
use crate::args::{AdminArgs, LeaderElectionArgs};
use crate::lease::{self, LeaderState, LeaseError};
use crate::serve::{self, ServeError};
use crate::shutdown::{Shutdown, ShutdownError};

/// How long open requests and loops may finish after a shutdown signal.
pub const DRAIN: Duration = Duration::from_secs(10);
/// Beyond [`DRAIN`], the time tracked tasks get to notice the signal.
const DRAIN_SLACK: Duration = Duration::from_secs(5);

/// Errors starting or ending a [`Process`].
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// Signal handlers, or a drain that ran out of time.
    #[error(transparent)]
    Shutdown(#[from] ShutdownError),
    /// The admin server stopped with an error (its port could not be bound, say).
    #[error("admin server: {0}")]
    Admin(#[from] ServeError),
    /// A task panicked or was aborted.
    #[error("task did not finish: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The Lease flags are unusable.
    #[error(transparent)]
    Lease(#[from] LeaseError),
}

/// A running binary's shutdown, probes and admin server.
#[derive(Debug)]
pub struct Process {
    shutdown: Shutdown,
    readiness: Readiness,
    liveness: Liveness,
    admin_task: JoinHandle<Result<(), ServeError>>,
}

impl Process {
    /// Listens for SIGTERM/SIGINT and serves `/livez`, `/readyz` and
    /// `/metrics` (from `registry`, complete by now) on `--admin-addr`.
    /// Starts not ready, with no liveness checks. The admin port is bound
    /// before this returns, so a port in use stops the binary at start rather
    /// than leaving it running without probes.
    ///
    /// # Errors
    /// The signal handlers cannot be installed, or the admin address cannot be bound.
    pub async fn start(admin_args: &AdminArgs, registry: Registry) -> Result<Self, ProcessError> {
        let listener = serve::bind(admin_args.admin_addr).await?;
        let shutdown = Shutdown::new();
        shutdown.listen_for_signals()?;
        let readiness = Readiness::new();
        let liveness = Liveness::new();
        let state = admin::AdminState::new(registry, readiness.clone(), liveness.clone());
        tracing::info!(addr = %admin_args.admin_addr, "admin server listening");
        let admin_task = shutdown.spawn(serve::serve(
            listener,
            admin::router(state),
            shutdown.token(),
            DRAIN,
        ));
        Ok(Self {
            shutdown,
            readiness,
            liveness,
            admin_task,
        })
    }

    /// The process's shutdown, to spawn tracked tasks on.
    pub fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    /// A clone of the token every task watches.
    pub fn token(&self) -> CancellationToken {
        self.shutdown.token()
    }

    /// What `/readyz` answers.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// Adds a `/livez` check that fails when `name` has not beaten within `max_age`.
    pub fn heartbeat(&self, name: &str, max_age: Duration) -> Heartbeat {
        self.liveness.heartbeat(name, max_age)
    }

    /// Joins the election for `component`'s Lease (or always leads with
    /// `--leader-elect=false`).
    ///
    /// # Errors
    /// Unusable Lease flags.
    pub fn lease(
        &self,
        kube: &kube::Client,
        args: &LeaderElectionArgs,
        component: &str,
    ) -> Result<LeaderState, ProcessError> {
        Ok(lease::start(
            kube,
            args,
            component,
            "default",
            &self.shutdown,
        )?)
    }

    /// Waits for `caches` to sync, marks the process ready, then waits to
    /// lead. A replica that waits is not stalled, so `heartbeat` beats every
    /// `every` meanwhile; it keeps beating until the returned guard drops,
    /// which lets a loop cover work before its first iteration too.
    ///
    /// `Ok(None)` when the process is shutting down or the election stopped
    /// before this replica led.
    ///
    /// # Errors
    /// Whatever `caches` fails with.
    pub async fn wait_to_lead<E>(
        &self,
        caches: impl Future<Output = Result<(), E>>,
        leader: &mut LeaderState,
        heartbeat: &Heartbeat,
        every: Duration,
    ) -> Result<Option<Beating>, E> {
        let token = self.token();
        let beating = Beating(heartbeat.keep_beating(every, token.clone()));
        let elected = tokio::select! {
            () = token.cancelled() => false,
            r = async {
                caches.await?;
                self.readiness.set_ready(true);
                tracing::info!("caches synced; waiting for leadership");
                Ok(leader.wait_until_leader().await)
            } => r?,
        };
        Ok(elected.then_some(beating))
    }

    /// Stops every task (the loop ended: the lease was lost, say) and waits
    /// for them as [`Process::finish`] does.
    ///
    /// # Errors
    /// As [`Process::finish`].
    pub async fn stop(self) -> Result<(), ProcessError> {
        self.shutdown.trigger();
        self.finish().await
    }

    /// Waits for a shutdown signal, then at most [`DRAIN`] (plus a little
    /// slack) for the tracked tasks, and reports how the admin server ended.
    ///
    /// # Errors
    /// Tasks still running after the drain, or a failed admin server.
    pub async fn finish(self) -> Result<(), ProcessError> {
        self.shutdown.drain(DRAIN + DRAIN_SLACK).await?;
        self.admin_task.await??;
        Ok(())
    }
}

/// Keeps a heartbeat beating until dropped (see [`Process::wait_to_lead`]).
#[derive(Debug)]
#[must_use = "dropping it stops the beating at once"]
pub struct Beating(JoinHandle<()>);

impl Drop for Beating {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An Event recorder reporting as `component`, with this pod's name (the
/// `POD_NAME` variable the manifests set from the downward API) as instance.
pub fn event_recorder(kube: &kube::Client, component: &str) -> Recorder {
    Recorder::new(
        kube.clone(),
        Reporter {
            controller: component.to_owned(),
            instance: std::env::var("POD_NAME").ok(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin_args() -> AdminArgs {
        AdminArgs {
            admin_addr: "127.0.0.1:0".parse().unwrap(),
        }
    }

    // Paused time: the heartbeat's clock is tokio's, so "stays live" is exact.
    #[tokio::test(start_paused = true)]
    async fn waits_for_caches_then_lead_and_stays_live_meanwhile() {
        let process = Process::start(&admin_args(), Registry::default())
            .await
            .unwrap();
        let heartbeat = process.heartbeat("loop", Duration::from_secs(60));
        let mut leader = LeaderState::always();
        let (synced_tx, synced_rx) = tokio::sync::oneshot::channel::<()>();
        let readiness = process.readiness().clone();
        {
            let waiting = process.wait_to_lead(
                async {
                    synced_rx.await.unwrap();
                    Ok::<_, std::convert::Infallible>(())
                },
                &mut leader,
                &heartbeat,
                Duration::from_millis(5),
            );
            tokio::pin!(waiting);
            // Not ready while the caches sync, yet live.
            tokio::select! {
                _ = &mut waiting => panic!("returned before the caches synced"),
                () = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
            assert!(!readiness.is_ready());
            assert!(heartbeat.age() <= Duration::from_millis(5));
            synced_tx.send(()).unwrap();
            let beating = waiting.await.unwrap();
            assert!(beating.is_some(), "LeaderState::always leads");
            assert!(readiness.is_ready());
        }
        process.stop().await.unwrap();
    }

    #[tokio::test]
    async fn a_failing_cache_sync_is_returned_and_nothing_is_ready() {
        let process = Process::start(&admin_args(), Registry::default())
            .await
            .unwrap();
        let heartbeat = process.heartbeat("loop", Duration::from_secs(60));
        let mut leader = LeaderState::always();
        let err = process
            .wait_to_lead(
                async { Err::<(), _>("VPA CRD missing") },
                &mut leader,
                &heartbeat,
                Duration::from_secs(1),
            )
            .await
            .unwrap_err();
        assert_eq!(err, "VPA CRD missing");
        assert!(!process.readiness().is_ready());
        process.stop().await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_while_waiting_returns_none() {
        let process = Process::start(&admin_args(), Registry::default())
            .await
            .unwrap();
        let heartbeat = process.heartbeat("loop", Duration::from_secs(60));
        let mut leader = LeaderState::always();
        process.shutdown().trigger();
        let outcome = process
            .wait_to_lead(
                std::future::pending::<Result<(), std::convert::Infallible>>(),
                &mut leader,
                &heartbeat,
                Duration::from_secs(1),
            )
            .await
            .unwrap();
        assert!(outcome.is_none());
        process.finish().await.unwrap();
    }

    #[tokio::test]
    async fn an_admin_port_in_use_fails_the_start() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = Process::start(&AdminArgs { admin_addr: addr }, Registry::default())
            .await
            .unwrap_err();
        assert!(matches!(err, ProcessError::Admin(_)), "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
