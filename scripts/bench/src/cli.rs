//! Command-line flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// The HTTP version spoken on every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HttpVersion {
    /// HTTP/1.1 with keep-alive (ALPN `http/1.1` over TLS).
    #[value(name = "1.1")]
    Http1,
    /// HTTP/2 (ALPN `h2` over TLS; prior knowledge over plain HTTP), as
    /// kube-apiserver speaks to webhooks and aggregated APIs.
    #[value(name = "2")]
    Http2,
}

impl HttpVersion {
    /// `"1.1"` or `"2"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http1 => "1.1",
            Self::Http2 => "2",
        }
    }
}

fn duration(input: &str) -> Result<Duration, String> {
    tailor_runtime::args::parse_duration(input).map_err(|e| e.to_string())
}

/// Drives an HTTP/1.1 or HTTP/2 server over TLS on loopback and reports
/// throughput, latency percentiles and status codes.
///
/// Each connection sends one request at a time and the next as soon as the
/// answer is read (a closed loop): throughput is what the server sustains at
/// that concurrency, and latency is measured from sending to the last byte of
/// the body. A request that has to (re)connect includes the TCP and TLS
/// handshakes in its latency. Requests during the warm-up are sent but not
/// counted.
#[derive(Clone, Debug, Parser)]
#[command(name = "tailor-load", version, args_override_self = true)]
pub struct Cli {
    /// The URL: https://HOST:PORT/PATH (http:// for plain HTTP). HOST must be
    /// a loopback address (127.0.0.0/8, ::1) or localhost unless
    /// --allow-non-loopback is given.
    pub url: String,

    /// Request method [default: POST with --body, else GET].
    #[arg(short = 'X', long)]
    pub method: Option<String>,

    /// File whose content is sent as the body of every request.
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,

    /// Extra request header, repeatable: -H 'Content-Type: application/json'.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// PEM file with the CA certificate(s) that signed the server's
    /// certificate; required for https://.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// PEM client certificate to present (servers that authenticate callers by
    /// certificate, such as the metrics adapter); needs --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,

    /// PEM private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Name to verify the server's certificate against, when it differs from
    /// the URL's host (e.g. a Service DNS name while connecting to 127.0.0.1).
    #[arg(long, value_name = "NAME")]
    pub server_name: Option<String>,

    /// HTTP version.
    #[arg(long = "http", value_enum, default_value = "1.1")]
    pub http: HttpVersion,

    /// Connections, each with one request in flight.
    #[arg(short = 'c', long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,

    /// How long to measure after the warm-up (e.g. 10s, 1m) [default: 10s
    /// unless --requests is given].
    #[arg(short = 'd', long, value_parser = duration)]
    pub duration: Option<Duration>,

    /// Stop after this many measured requests (whichever of --duration and
    /// --requests comes first).
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Load sent before measuring, to open connections and warm caches.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub warmup: Duration,

    /// Per-request timeout; a request that takes longer counts as an error
    /// and its connection is replaced.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub timeout: Duration,

    /// Worker threads of the load generator [default: one per CPU]. On a
    /// machine shared with the server, fewer threads leave it more CPU.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,

    /// Also report the CPU time this process (the server) used while
    /// measuring, and requests per server CPU-second (Linux /proc).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// Exit with status 1 if any measured request failed or answered another
    /// status than this one.
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(100..=599))]
    pub expect_status: Option<u16>,

    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Allow a host that is not loopback. Only for machines where loading that
    /// host is allowed.
    #[arg(long)]
    pub allow_non_loopback: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_and_values() {
        let cli = Cli::try_parse_from(["tailor-load", "https://127.0.0.1:1/"]).unwrap();
        assert_eq!(cli.concurrency, 8);
        assert_eq!(cli.http, HttpVersion::Http1);
        assert_eq!(cli.warmup, Duration::from_secs(1));
        assert_eq!(cli.duration, None);
        let cli = Cli::try_parse_from([
            "tailor-load",
            "--http",
            "2",
            "-c",
            "3",
            "-d",
            "500ms",
            "-n",
            "7",
            "-H",
            "A: b",
            "-H",
            "C: d",
            "https://127.0.0.1:1/",
        ])
        .unwrap();
        assert_eq!(cli.http, HttpVersion::Http2);
        assert_eq!(cli.concurrency, 3);
        assert_eq!(cli.duration, Some(Duration::from_millis(500)));
        assert_eq!(cli.requests, Some(7));
        assert_eq!(cli.headers, ["A: b", "C: d"]);
    }

    #[test]
    fn rejects_bad_flags() {
        for args in [
            &["tailor-load", "-c", "0", "https://127.0.0.1/"][..],
            &["tailor-load", "-d", "ten", "https://127.0.0.1/"],
            &["tailor-load", "--cert", "c.pem", "https://127.0.0.1/"],
            &["tailor-load", "--http", "3", "https://127.0.0.1/"],
            &["tailor-load", "-n", "0", "https://127.0.0.1/"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
