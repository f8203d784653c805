//! `tailor-load`: the project's HTTPS load tool. See `README.md`.

pub mod cli;
pub mod histogram;
pub mod load;
pub mod report;
pub mod target;

use std::path::PathBuf;

pub use cli::Cli;
pub use load::run;
pub use report::Report;

/// Why a run could not start; each names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL does not parse or is not http(s).
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The host is not loopback and `--allow-non-loopback` was not given.
    #[error(
        "refusing to load {host}: only 127.0.0.0/8, ::1 and localhost are allowed without --allow-non-loopback"
    )]
    NotLoopback {
        /// The host.
        host: String,
    },
    /// The host name did not resolve (to a loopback address).
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A file given on the command line could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which flag's file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A PEM file held nothing usable.
    #[error("{what} {path}: {detail}")]
    Pem {
        /// Which flag's file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A flag's value is invalid or flags do not fit together.
    #[error("{0}")]
    Usage(String),
    /// rustls rejected the client configuration.
    #[error("TLS client configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}
