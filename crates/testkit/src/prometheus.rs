//! A real Prometheus on a loopback port, optionally with backfilled history.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{self, OwnedChild, PROMETHEUS, PROMTOOL};
use crate::{Error, OpenMetrics, Result};

/// How often a port collision (another process grabbed the picked port) is retried.
const START_ATTEMPTS: usize = 3;

/// Settings for a test Prometheus; [`PrometheusBuilder::start`] runs it.
#[derive(Debug, Clone)]
pub struct PrometheusBuilder {
    scrape_interval: Duration,
    targets: Vec<(String, String)>,
    retention: String,
    lookback_delta: Duration,
    backfill: Option<OpenMetrics>,
    ready_timeout: Duration,
}

impl Default for PrometheusBuilder {
    fn default() -> Self {
        Self {
            scrape_interval: Duration::from_secs(1),
            targets: Vec::new(),
            // Retention counts back from the newest block, and backfilled data may be
            // years old: keep everything.
            retention: "100y".to_owned(),
            lookback_delta: Duration::from_secs(5 * 60),
            backfill: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// Prometheus duration syntax, in milliseconds so nothing is rounded.
fn prom_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

impl PrometheusBuilder {
    /// The global scrape interval (default 1s); the scrape timeout equals it.
    pub fn scrape_interval(mut self, interval: Duration) -> Self {
        self.scrape_interval = interval;
        self
    }

    /// Scrapes `address` (`host:port`, path `/metrics`) under job `job`.
    pub fn scrape_target(mut self, job: &str, address: impl ToString) -> Self {
        self.targets.push((job.to_owned(), address.to_string()));
        self
    }

    /// `--storage.tsdb.retention.time` (default `100y`, so old backfills survive).
    pub fn retention(mut self, retention: &str) -> Self {
        self.retention = retention.to_owned();
        self
    }

    /// `--query.lookback-delta`: how far back an instant query looks (default 5m).
    pub fn lookback_delta(mut self, delta: Duration) -> Self {
        self.lookback_delta = delta;
        self
    }

    /// Series written into TSDB blocks with `promtool` before Prometheus starts.
    ///
    /// Samples must lie in the past: Prometheus rejects later scrapes older than the
    /// newest backfilled block.
    pub fn backfill(mut self, data: OpenMetrics) -> Self {
        self.backfill = Some(data);
        self
    }

    /// How long to wait for `/-/ready` (default 30s).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    fn config(&self) -> String {
        let interval = prom_duration(self.scrape_interval);
        let mut config = format!(
            "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n"
        );
        let mut jobs: Vec<&str> = self.targets.iter().map(|(job, _)| job.as_str()).collect();
        jobs.sort_unstable();
        jobs.dedup();
        for job in jobs {
            // JSON strings are YAML strings, and Debug quoting matches JSON for these.
            let _ = writeln!(
                config,
                "  - job_name: {job:?}\n    static_configs:\n      - targets:"
            );
            for (_, address) in self.targets.iter().filter(|(j, _)| j == job) {
                let _ = writeln!(config, "          - {address:?}");
            }
        }
        config
    }

    /// Backfills (if asked), starts Prometheus and waits until it is ready.
    pub async fn start(self) -> Result<Prometheus> {
        let binary = PROMETHEUS.locate()?;
        let dir = tempfile::Builder::new()
            .prefix("tailor-prometheus-")
            .tempdir()
            .map_err(Error::io(std::env::temp_dir()))?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).map_err(Error::io(&data))?;
        if let Some(backfill) = self.backfill.as_ref().filter(|b| !b.is_empty()) {
            backfill_blocks(backfill, &dir, &data)?;
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, self.config()).map_err(Error::io(&config_path))?;

        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = process::free_port()?;
            let args = vec![
                format!("--config.file={}", config_path.display()),
                format!("--storage.tsdb.path={}", data.display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                format!("--storage.tsdb.retention.time={}", self.retention),
                format!(
                    "--query.lookback-delta={}",
                    prom_duration(self.lookback_delta)
                ),
            ];
            let log = dir.path().join(format!("prometheus-{attempt}.log"));
            let mut child = OwnedChild::spawn(&binary, &args, log)?;
            let url = format!("http://127.0.0.1:{port}");
            match child
                .wait_ready(&format!("{url}/-/ready"), port, self.ready_timeout)
                .await
            {
                Ok(()) => {
                    return Ok(Prometheus { child, url, dir });
                }
                Err(Error::EarlyExit { ref stderr, .. })
                    if attempt < START_ATTEMPTS && stderr.contains("address already in use") => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Writes `data` as OpenMetrics and turns it into TSDB blocks in `data_dir`.
fn backfill_blocks(data: &OpenMetrics, dir: &TempDir, data_dir: &std::path::Path) -> Result<()> {
    let promtool = PROMTOOL.locate()?;
    let input = dir.path().join("backfill.om");
    std::fs::write(&input, data.render()).map_err(Error::io(&input))?;
    let mut args = vec!["tsdb".to_owned(), "create-blocks-from".to_owned()];
    // promtool 2.42 cuts 2h blocks; newer ones (2.45+) can cut larger blocks, which
    // suits multi-day data better. The flag belongs to `create-blocks-from`.
    let help = process::output(&promtool, &["tsdb", "create-blocks-from", "--help"])?;
    if help.contains("--max-block-duration") {
        args.push("--max-block-duration=744h".to_owned());
    }
    args.push("openmetrics".to_owned());
    args.push("--quiet".to_owned());
    args.push(input.display().to_string());
    args.push(data_dir.display().to_string());
    process::run(&promtool, &args, dir.path().join("promtool.log"))
}

/// A running Prometheus, killed (and its data dir removed) on drop.
#[derive(Debug)]
pub struct Prometheus {
    child: OwnedChild,
    url: String,
    dir: TempDir,
}

impl Prometheus {
    /// Settings with test defaults: 1s scrapes, 100y retention, 5m look-back.
    pub fn builder() -> PrometheusBuilder {
        PrometheusBuilder::default()
    }

    /// Base URL, e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Process id of the Prometheus server (to check it is gone after drop).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// A `prometheus-http-query` client for this server.
    pub fn client(&self) -> Result<prometheus_http_query::Client> {
        prometheus_http_query::Client::try_from(self.url.as_str()).map_err(|e| Error::Http {
            url: self.url.clone(),
            message: e.to_string(),
        })
    }

    /// Waits until the instant query `query` returns a sample; returns its value.
    pub async fn wait_for_series(&self, query: &str, timeout: Duration) -> Result<f64> {
        self.wait_until(query, "return a sample", timeout, |_| true)
            .await
    }

    /// Waits until the instant query `query` returns a sample equal to `expected`.
    pub async fn wait_for_value(
        &self,
        query: &str,
        expected: f64,
        timeout: Duration,
    ) -> Result<()> {
        let wanted = format!("return {expected}");
        self.wait_until(query, &wanted, timeout, |v| v == expected)
            .await
            .map(|_| ())
    }

    async fn wait_until(
        &self,
        query: &str,
        wanted: &str,
        timeout: Duration,
        accept: impl Fn(f64) -> bool,
    ) -> Result<f64> {
        let client = self.client()?;
        let started = Instant::now();
        loop {
            let last = match client.query(query).get().await {
                Ok(result) => match result.data().as_vector() {
                    Some(vector) => {
                        if let Some(value) = vector
                            .iter()
                            .map(|s| s.sample().value())
                            .find(|v| accept(*v))
                        {
                            return Ok(value);
                        }
                        let values: Vec<String> = vector
                            .iter()
                            .map(|s| format!("{:?}={}", s.metric(), s.sample().value()))
                            .collect();
                        format!("vector [{}]", values.join(", "))
                    }
                    None => format!("not an instant vector: {:?}", result.data()),
                },
                Err(e) => format!("error: {e}"),
            };
            if started.elapsed() >= timeout {
                return Err(Error::WaitTimeout {
                    query: query.to_owned(),
                    wanted: wanted.to_owned(),
                    url: self.url.clone(),
                    waited: started.elapsed(),
                    last,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Where the data lives (the temp dir is removed on drop).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_groups_targets_by_job() {
        let config = Prometheus::builder()
            .scrape_interval(Duration::from_millis(1500))
            .scrape_target("b", "127.0.0.1:2")
            .scrape_target("a", "127.0.0.1:1")
            .scrape_target("b", "127.0.0.1:3")
            .config();
        assert_eq!(
            config,
            "global:\n  scrape_interval: 1500ms\n  scrape_timeout: 1500ms\n  evaluation_interval: 1500ms\n\
             scrape_configs:\n\
             \x20 - job_name: \"a\"\n    static_configs:\n      - targets:\n          - \"127.0.0.1:1\"\n\
             \x20 - job_name: \"b\"\n    static_configs:\n      - targets:\n          - \"127.0.0.1:2\"\n          - \"127.0.0.1:3\"\n"
        );
    }
}
