//! The one error type of the harness; every variant names what failed.

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting or talking to a test component.
///
/// `Debug` prints the same message as `Display`, so a test's `.unwrap()` shows the
/// readable reason (e.g. how to install a missing binary).
#[derive(thiserror::Error)]
pub enum Error {
    /// A required binary is neither overridden by its env variable nor on `PATH`.
    #[error("{binary} not found: {hint}")]
    NotFound {
        /// The binary looked for.
        binary: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// The env override of a binary points at something that is not an executable file.
    #[error("{var}={path:?} is not an executable file")]
    BadOverride {
        /// The environment variable.
        var: &'static str,
        /// Its value.
        path: PathBuf,
    },
    /// A process could not be spawned.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A started process exited before it became ready.
    #[error(
        "`{command}` exited ({status}) before it was ready on port {port}; stderr tail:\n{stderr}"
    )]
    EarlyExit {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The port it was told to listen on.
        port: u16,
        /// The last lines it wrote to stderr.
        stderr: String,
    },
    /// A started process did not become ready in time.
    #[error("`{command}` not ready at {url} after {waited:?}; stderr tail:\n{stderr}")]
    NotReady {
        /// The command line.
        command: String,
        /// The URL polled.
        url: String,
        /// How long we waited.
        waited: Duration,
        /// The last lines it wrote to stderr.
        stderr: String,
    },
    /// A one-shot command (promtool) failed.
    #[error("`{command}` failed ({status}); stderr tail:\n{stderr}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines it wrote to stderr (and stdout).
        stderr: String,
    },
    /// File-system I/O failed.
    #[error("I/O on {path:?}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No free loopback port could be found, or a listener could not be bound.
    #[error("cannot bind a loopback port: {0}")]
    Port(std::io::Error),
    /// A metric name is not a valid Prometheus metric name.
    #[error("invalid metric name {0:?}")]
    InvalidMetricName(String),
    /// A label name is not a valid Prometheus label name.
    #[error("invalid label name {label:?} on metric {metric:?}")]
    InvalidLabelName {
        /// The metric.
        metric: String,
        /// The label name.
        label: String,
    },
    /// A counter's name does not end in `_total`, as OpenMetrics requires.
    #[error("counter {0:?} must be named `<family>_total`")]
    CounterName(String),
    /// The same metric name was declared as two kinds.
    #[error("metric {name:?} declared as both {first} and {second}")]
    KindConflict {
        /// The metric.
        name: String,
        /// The first kind.
        first: &'static str,
        /// The second kind.
        second: &'static str,
    },
    /// Samples of a series are not in strictly increasing timestamp order.
    #[error("series {series} has timestamp {timestamp_ms} ms not after the previous one")]
    Unordered {
        /// The series, as `name{labels}`.
        series: String,
        /// The offending timestamp.
        timestamp_ms: i64,
    },
    /// A timestamp before 1970 (promtool cannot take it in our encoding).
    #[error("series {series} has negative timestamp {timestamp_ms} ms")]
    NegativeTimestamp {
        /// The series.
        series: String,
        /// The offending timestamp.
        timestamp_ms: i64,
    },
    /// An HTTP request to a test component failed.
    #[error("request to {url} failed: {message}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A query did not return the awaited series or value in time.
    #[error("{query} did not {wanted} at {url} after {waited:?}; last answer: {last}")]
    WaitTimeout {
        /// The PromQL query.
        query: String,
        /// What was awaited.
        wanted: String,
        /// The Prometheus base URL.
        url: String,
        /// How long we waited.
        waited: Duration,
        /// The last answer (or error) seen.
        last: String,
    },
    /// Certificate generation failed.
    #[error("cannot generate the {what} certificate: {source}")]
    Cert {
        /// Which certificate.
        what: &'static str,
        /// The rcgen error.
        source: rcgen::Error,
    },
    /// A rustls configuration could not be built.
    #[error("cannot build the rustls {what}: {message}")]
    Tls {
        /// Which configuration.
        what: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
