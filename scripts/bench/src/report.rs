//! The report: a table for people, JSON for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::cli::Cli;
use crate::load::Tally;

/// Linux reports process CPU time in clock ticks of this many per second
/// (`USER_HZ`, 100 on every mainstream architecture).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU seconds used so far by a process (all its threads),
/// from `/proc/PID/stat`; this process when `pid` is `None`. `None` where
/// there is no such file.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; fields after it are plain.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Latency percentiles of answered requests, in milliseconds.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest (exact).
    pub max: f64,
    /// The mean (exact).
    pub mean: f64,
}

/// What a run measured (warm-up excluded).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The URL loaded.
    pub url: String,
    /// `"1.1"` or `"2"`.
    pub http: &'static str,
    /// Concurrent connections.
    pub connections: u32,
    /// Warm-up before measuring, seconds.
    pub warmup_seconds: f64,
    /// From the end of the warm-up to the last measured completion, seconds.
    pub elapsed_seconds: f64,
    /// Measured requests: answered plus failed.
    pub requests: u64,
    /// Requests answered with any status.
    pub responses: u64,
    /// Answered requests per second of `elapsed_seconds`.
    pub requests_per_second: f64,
    /// Latency of answered requests (bucketed within 0.8 %; max and mean exact).
    pub latency_ms: Latency,
    /// Answers per HTTP status code.
    pub status: BTreeMap<String, u64>,
    /// Failed requests per kind: `connect`, `tls`, `http`, `body`, `timeout`.
    pub errors: BTreeMap<String, u64>,
    /// The first message seen for each kind of error.
    pub error_examples: BTreeMap<String, String>,
    /// Connections opened, warm-up included.
    pub connections_opened: u64,
    /// Response body bytes received while measuring.
    pub bytes_received: u64,
    /// CPU seconds this load generator used while measuring.
    pub client_cpu_seconds: Option<f64>,
    /// CPU seconds the `--server-pid` process used while measuring.
    pub server_cpu_seconds: Option<f64>,
    /// Answered requests per server CPU-second: throughput with the CPU the
    /// server actually got, fair on a shared machine.
    pub requests_per_server_cpu_second: Option<f64>,
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

impl Report {
    pub(crate) fn new(
        cli: &Cli,
        elapsed: Duration,
        tally: &Tally,
        client_cpu: Option<f64>,
        server_cpu: Option<f64>,
    ) -> Self {
        let responses = tally.latency.len();
        let failed: u64 = tally.errors.values().sum();
        let seconds = elapsed.as_secs_f64();
        let per_second = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        Self {
            url: cli.url.clone(),
            http: cli.http.as_str(),
            connections: cli.concurrency,
            warmup_seconds: cli.warmup.as_secs_f64(),
            elapsed_seconds: seconds,
            requests: responses + failed,
            responses,
            requests_per_second: per_second(responses, seconds),
            latency_ms: Latency {
                p50: ms(tally.latency.quantile(0.50)),
                p90: ms(tally.latency.quantile(0.90)),
                p99: ms(tally.latency.quantile(0.99)),
                max: ms(tally.latency.max()),
                mean: tally.latency.mean() / 1e6,
            },
            status: tally
                .statuses
                .iter()
                .map(|(code, n)| (code.to_string(), *n))
                .collect(),
            errors: tally
                .errors
                .iter()
                .map(|(kind, n)| ((*kind).to_owned(), *n))
                .collect(),
            error_examples: tally
                .first_errors
                .iter()
                .map(|(kind, m)| ((*kind).to_owned(), m.clone()))
                .collect(),
            connections_opened: tally.connections,
            bytes_received: tally.bytes,
            client_cpu_seconds: client_cpu,
            server_cpu_seconds: server_cpu,
            requests_per_server_cpu_second: server_cpu
                .filter(|s| *s > 0.0)
                .map(|s| responses as f64 / s),
        }
    }

    /// Whether every measured request was answered with `status`, and there
    /// was at least one.
    pub fn all_answered_with(&self, status: u16) -> bool {
        self.responses > 0
            && self.errors.is_empty()
            && self.status.len() == 1
            && self.status.contains_key(&status.to_string())
    }

    /// The report as an aligned table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: String| {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "{label:<13}{value}");
        };
        line(
            "target",
            format!(
                "{} (HTTP/{}, {} connection{})",
                self.url,
                self.http,
                self.connections,
                if self.connections == 1 { "" } else { "s" }
            ),
        );
        line(
            "requests",
            format!(
                "{} in {:.2} s after a {:.1} s warm-up; {} answered",
                self.requests, self.elapsed_seconds, self.warmup_seconds, self.responses
            ),
        );
        line(
            "throughput",
            format!("{:.1} requests/s", self.requests_per_second),
        );
        let l = &self.latency_ms;
        line(
            "latency",
            format!(
                "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  mean {:.3} ms",
                l.p50, l.p90, l.p99, l.max, l.mean
            ),
        );
        let join = |map: &BTreeMap<String, u64>| {
            map.iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        line(
            "status",
            if self.status.is_empty() {
                "none".to_owned()
            } else {
                join(&self.status)
            },
        );
        line(
            "errors",
            if self.errors.is_empty() {
                "none".to_owned()
            } else {
                join(&self.errors)
            },
        );
        for (kind, message) in &self.error_examples {
            line("", format!("first {kind} error: {message}"));
        }
        line(
            "connections",
            format!("{} opened (warm-up included)", self.connections_opened),
        );
        if let Some(cpu) = self.client_cpu_seconds {
            line("client CPU", format!("{cpu:.2} s"));
        }
        if let Some(cpu) = self.server_cpu_seconds {
            let per = self
                .requests_per_server_cpu_second
                .map(|r| format!(" ({r:.0} requests per server CPU-second)"))
                .unwrap_or_default();
            line("server CPU", format!("{cpu:.2} s{per}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn own_cpu_time_is_readable_and_grows() {
        let before = cpu_seconds(None).unwrap();
        // Burn a little CPU; the counter has a 10 ms resolution.
        let mut x = 0u64;
        let end = std::time::Instant::now() + Duration::from_millis(60);
        while std::time::Instant::now() < end {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let after = cpu_seconds(None).unwrap();
        assert!(after > before, "{before} -> {after}");
        assert_eq!(cpu_seconds(Some(u32::MAX)), None);
    }
}
