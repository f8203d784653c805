//! One shutdown signal, fanned out to every task, with a bounded drain.
//!
//! The first SIGTERM or SIGINT cancels a shared [`CancellationToken`]; every
//! server and loop watches a clone and finishes its current work. A second
//! signal exits the process at once, for an operator who does not want to wait.

use std::{future::Future, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Exit code used when a second signal aborts the drain (128 + SIGINT).
pub const ABORT_EXIT_CODE: i32 = 130;

/// Errors from shutdown handling.
#[derive(Debug, thiserror::Error)]
pub enum ShutdownError {
    /// The OS signal handlers could not be installed.
    #[error("cannot listen for {signal}: {source}")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Tasks were still running when the drain timeout passed.
    #[error("{remaining} task(s) still running after the {timeout:?} drain timeout")]
    DrainTimeout {
        /// How many tracked tasks had not finished.
        remaining: usize,
        /// The timeout that passed.
        timeout: Duration,
    },
}

/// The process-wide shutdown: a cancellation token plus a tracker of the tasks
/// that must finish before the process exits. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    /// A shutdown that has not been triggered, with no tasks.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clone of the token every task should watch.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Starts the shutdown (what the first signal does); idempotent.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once shutdown has started.
    pub async fn triggered(&self) {
        self.token.cancelled().await;
    }

    /// Spawns `task` and tracks it, so [`Shutdown::drain`] waits for it.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Waits for shutdown to start, then for every tracked task, at most `timeout`.
    pub async fn drain(&self, timeout: Duration) -> Result<(), ShutdownError> {
        self.triggered().await;
        self.tracker.close();
        match tokio::time::timeout(timeout, self.tracker.wait()).await {
            Ok(()) => Ok(()),
            Err(_) => Err(ShutdownError::DrainTimeout {
                remaining: self.tracker.len(),
                timeout,
            }),
        }
    }

    /// Installs SIGTERM and SIGINT handlers: the first triggers this shutdown,
    /// the second exits the process with [`ABORT_EXIT_CODE`].
    pub fn listen_for_signals(&self) -> Result<JoinHandle<()>, ShutdownError> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).map_err(|source| ShutdownError::Signal {
            signal: "SIGTERM",
            source,
        })?;
        let int = signal(SignalKind::interrupt()).map_err(|source| ShutdownError::Signal {
            signal: "SIGINT",
            source,
        })?;
        let token = self.token.clone();
        Ok(tokio::spawn(async move {
            let mut signals = SignalPair { term, int };
            handle_signals(token, &mut signals, || std::process::exit(ABORT_EXIT_CODE)).await;
        }))
    }
}

/// A source of named signals, so the escalation logic is testable without
/// sending real signals.
pub trait SignalSource: Send {
    /// The next signal's name, or `None` when no more can arrive.
    fn next(&mut self) -> impl Future<Output = Option<&'static str>> + Send;
}

struct SignalPair {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl SignalSource for SignalPair {
    async fn next(&mut self) -> Option<&'static str> {
        tokio::select! {
            got = self.term.recv() => got.map(|()| "SIGTERM"),
            got = self.int.recv() => got.map(|()| "SIGINT"),
        }
    }
}

/// Cancels `token` on the first signal from `signals` and calls `abort` on the second.
pub async fn handle_signals<S: SignalSource>(
    token: CancellationToken,
    signals: &mut S,
    abort: impl FnOnce(),
) {
    let Some(first) = signals.next().await else {
        return;
    };
    tracing::info!(
        signal = first,
        "shutting down; send the signal again to exit at once"
    );
    token.cancel();
    if let Some(second) = signals.next().await {
        tracing::warn!(signal = second, "second signal: exiting without draining");
        abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };
    use tokio::sync::mpsc;

    struct Channel(mpsc::UnboundedReceiver<&'static str>);

    impl SignalSource for Channel {
        async fn next(&mut self) -> Option<&'static str> {
            self.0.recv().await
        }
    }

    #[tokio::test]
    async fn trigger_reaches_every_task_and_drain_waits_for_them() {
        let shutdown = Shutdown::new();
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let token = shutdown.token();
            let finished = finished.clone();
            shutdown.spawn(async move {
                token.cancelled().await;
                // Cleanup that takes a little while must still complete.
                tokio::task::yield_now().await;
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        shutdown.trigger();
        shutdown.drain(Duration::from_secs(5)).await.unwrap();
        assert_eq!(finished.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_the_timeout() {
        let shutdown = Shutdown::new();
        shutdown.spawn(async {
            // Ignores the token entirely.
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let quick = shutdown.spawn(async {});
        quick.await.unwrap();
        shutdown.trigger();
        let err = shutdown.drain(Duration::from_secs(10)).await.unwrap_err();
        assert!(
            matches!(err, ShutdownError::DrainTimeout { remaining: 1, .. }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn first_signal_cancels_second_aborts() {
        let shutdown = Shutdown::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let aborted = Arc::new(AtomicBool::new(false));
        let flag = aborted.clone();
        let token = shutdown.token();
        let handler = tokio::spawn(async move {
            let mut source = Channel(rx);
            handle_signals(token, &mut source, move || {
                flag.store(true, Ordering::SeqCst)
            })
            .await;
        });
        tx.send("SIGTERM").unwrap();
        shutdown.triggered().await;
        assert!(shutdown.is_triggered());
        assert!(!aborted.load(Ordering::SeqCst), "one signal only drains");
        tx.send("SIGINT").unwrap();
        handler.await.unwrap();
        assert!(aborted.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn closed_source_neither_cancels_nor_aborts() {
        let shutdown = Shutdown::new();
        let (tx, rx) = mpsc::unbounded_channel::<&'static str>();
        drop(tx);
        let mut source = Channel(rx);
        let mut aborted = false;
        handle_signals(shutdown.token(), &mut source, || aborted = true).await;
        assert!(!shutdown.is_triggered());
        assert!(!aborted);
    }
}
