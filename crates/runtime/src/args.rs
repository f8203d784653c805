//! Command-line argument groups shared by every Tailor binary.
//!
//! Each group derives [`clap::Args`] so a binary `#[command(flatten)]`s the ones
//! it needs. Every flag has an environment fallback with the `TAILOR_` prefix;
//! an explicit flag wins over the environment, which wins over the default.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

/// Where the admin server (probes and metrics) listens.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct AdminArgs {
    /// Address for the admin HTTP server that serves /livez, /readyz and /metrics.
    /// Keep it reachable by the kubelet and by Prometheus, and off the public ingress.
    #[arg(long, env = "TAILOR_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    pub admin_addr: SocketAddr,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable single lines, for terminals.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Log verbosity and format.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct LogArgs {
    /// Which log lines to keep, as a tracing EnvFilter directive: a level
    /// (error, warn, info, debug, trace) optionally followed by per-module
    /// overrides, e.g. "info,tailor_recommender=debug,kube=warn".
    #[arg(long, env = "TAILOR_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log line format: "text" for people, "json" for log collectors.
    #[arg(long, env = "TAILOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Client-side rate limits for calls to the Kubernetes API server.
///
/// The defaults (50 requests per second, bursts of 100) match the current VPA
/// components. client-go's own defaults (5/10) are too low for a controller that
/// writes one status per object; long-running watches count as one request each.
#[derive(Clone, Debug, Args, PartialEq)]
pub struct KubeClientArgs {
    /// Sustained rate of requests per second this process may send to the
    /// Kubernetes API server. Must be greater than zero.
    #[arg(long, env = "TAILOR_KUBE_API_QPS", default_value_t = 50.0, value_parser = parse_positive_f64)]
    pub kube_api_qps: f64,

    /// Number of requests that may be sent at once above the sustained rate,
    /// after a quiet period. Must be at least 1.
    #[arg(long, env = "TAILOR_KUBE_API_BURST", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub kube_api_burst: u32,
}

/// The certificate and key an HTTPS server presents.
///
/// Both files are PEM and are re-read when they change on disk, so a rotated
/// Secret or cert-manager renewal is picked up without a restart.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct TlsArgs {
    /// PEM file with the serving certificate, followed by any intermediate
    /// certificates.
    #[arg(
        long,
        env = "TAILOR_TLS_CERT_FILE",
        default_value = "/etc/tailor/tls/tls.crt"
    )]
    pub tls_cert_file: PathBuf,

    /// PEM file with the private key matching --tls-cert-file (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "TAILOR_TLS_PRIVATE_KEY_FILE",
        default_value = "/etc/tailor/tls/tls.key"
    )]
    pub tls_private_key_file: PathBuf,
}

/// Leader election through a `coordination.k8s.io/v1` Lease.
///
/// Only processes that write (recommender, updater, expander in apply mode) use
/// it; losing the lease ends the process so a fresh replica takes over cleanly.
#[derive(Clone, Debug, Args, PartialEq, Eq)]
pub struct LeaderElectionArgs {
    /// Run only while holding the lease, so that of several replicas exactly one
    /// acts at a time. Turn off only when running a single replica.
    #[arg(
        long,
        env = "TAILOR_LEADER_ELECT",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub leader_elect: bool,

    /// How long other replicas wait after the last renewal before they may take
    /// the lease over from a leader that stopped renewing.
    #[arg(long, env = "TAILOR_LEADER_ELECT_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,

    /// How long the leader keeps retrying a failed renewal before it gives up
    /// leadership and exits. Must be shorter than the lease duration.
    #[arg(long, env = "TAILOR_LEADER_ELECT_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,

    /// How long to wait between attempts to acquire or renew the lease.
    #[arg(long, env = "TAILOR_LEADER_ELECT_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,

    /// Name of the Lease object. Defaults to the binary's component name
    /// (for example "tailor-recommender") when left empty.
    #[arg(long, env = "TAILOR_LEADER_ELECT_RESOURCE_NAME", default_value = "")]
    pub leader_elect_resource_name: String,

    /// Namespace of the Lease object. Defaults to the pod's own namespace
    /// (POD_NAMESPACE or the service-account namespace file) when left empty.
    #[arg(
        long,
        env = "TAILOR_LEADER_ELECT_RESOURCE_NAMESPACE",
        default_value = ""
    )]
    pub leader_elect_resource_namespace: String,
}

impl LeaderElectionArgs {
    /// The Lease name to use: the flag, or `component` when the flag is empty.
    pub fn resource_name(&self, component: &str) -> String {
        if self.leader_elect_resource_name.is_empty() {
            component.to_owned()
        } else {
            self.leader_elect_resource_name.clone()
        }
    }

    /// Checks the timing relations client-go also requires: retry < renew deadline < lease duration.
    pub fn validate(&self) -> Result<(), ArgsError> {
        if self.leader_elect_renew_deadline >= self.leader_elect_lease_duration {
            return Err(ArgsError::Inconsistent(format!(
                "--leader-elect-renew-deadline ({:?}) must be shorter than --leader-elect-lease-duration ({:?})",
                self.leader_elect_renew_deadline, self.leader_elect_lease_duration
            )));
        }
        if self.leader_elect_retry_period.is_zero()
            || self.leader_elect_retry_period >= self.leader_elect_renew_deadline
        {
            return Err(ArgsError::Inconsistent(format!(
                "--leader-elect-retry-period ({:?}) must be above zero and shorter than --leader-elect-renew-deadline ({:?})",
                self.leader_elect_retry_period, self.leader_elect_renew_deadline
            )));
        }
        Ok(())
    }
}

/// A flag value, or a combination of flag values, that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgsError {
    /// A duration did not parse; the message names the text and the expected form.
    #[error("invalid duration {input:?}: expected a number followed by ms, s, m or h (e.g. 15s)")]
    Duration {
        /// The text that was given.
        input: String,
    },
    /// A number was not a finite value above zero.
    #[error("invalid value {input:?}: expected a number greater than zero")]
    NotPositive {
        /// The text that was given.
        input: String,
    },
    /// Flags that each parse but contradict each other.
    #[error("{0}")]
    Inconsistent(String),
}

/// Parses a duration such as `15s`, `500ms`, `2m`, `1h` or `1.5s`.
pub fn parse_duration(input: &str) -> Result<Duration, ArgsError> {
    let err = || ArgsError::Duration {
        input: input.to_owned(),
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(err)?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| err())?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| err())
}

fn parse_positive_f64(input: &str) -> Result<f64, ArgsError> {
    match input.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(ArgsError::NotPositive {
            input: input.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};
    use rstest::rstest;

    /// A binary-like parser that flattens every group, as the real binaries do.
    #[derive(Debug, Parser)]
    #[command(name = "tailor-test")]
    struct TestCli {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(flatten)]
        log: LogArgs,
        #[command(flatten)]
        kube: KubeClientArgs,
        #[command(flatten)]
        tls: TlsArgs,
        #[command(flatten)]
        lease: LeaderElectionArgs,
    }

    // Every env variable the groups read; the parser tests below pass an explicit
    // environment through `parse_with_env` so they never race on process env.
    const ENV_VARS: &[&str] = &[
        "TAILOR_ADMIN_ADDR",
        "TAILOR_LOG_LEVEL",
        "TAILOR_LOG_FORMAT",
        "TAILOR_KUBE_API_QPS",
        "TAILOR_KUBE_API_BURST",
        "TAILOR_TLS_CERT_FILE",
        "TAILOR_TLS_PRIVATE_KEY_FILE",
        "TAILOR_LEADER_ELECT",
        "TAILOR_LEADER_ELECT_LEASE_DURATION",
        "TAILOR_LEADER_ELECT_RENEW_DEADLINE",
        "TAILOR_LEADER_ELECT_RETRY_PERIOD",
        "TAILOR_LEADER_ELECT_RESOURCE_NAME",
        "TAILOR_LEADER_ELECT_RESOURCE_NAMESPACE",
    ];

    /// Parses `args` with exactly the `env` pairs visible: clap reads env through
    /// `Arg::env`, so this rewrites each env-backed arg to a value-free command
    /// and feeds the env values in as defaults via `Command::mut_arg`.
    fn parse_with_env(args: &[&str], env: &[(&str, &'static str)]) -> Result<TestCli, clap::Error> {
        use clap::FromArgMatches;
        let mut cmd = TestCli::command();
        for id in cmd
            .get_arguments()
            .map(|a| a.get_id().clone())
            .collect::<Vec<_>>()
        {
            cmd = cmd.mut_arg(id, |arg| {
                let var = arg.get_env().and_then(|v| v.to_str()).map(str::to_owned);
                // Drop the real-environment lookup; substitute the test's value.
                let arg = arg.env(None::<&str>);
                match var.and_then(|v| env.iter().find(|(k, _)| *k == v)) {
                    Some((_, value)) => arg.default_value(*value),
                    None => arg,
                }
            });
        }
        let mut argv = vec!["tailor-test"];
        argv.extend_from_slice(args);
        let matches = cmd.try_get_matches_from(argv)?;
        TestCli::from_arg_matches(&matches)
    }

    #[test]
    fn command_is_well_formed() {
        TestCli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_an_env_fallback_and_help() {
        let cmd = TestCli::command();
        let mut seen = Vec::new();
        for arg in cmd.get_arguments() {
            if arg.get_id() == "help" || arg.get_id() == "version" {
                continue;
            }
            let env = arg
                .get_env()
                .and_then(|v| v.to_str())
                .unwrap_or_else(|| panic!("--{} has no env fallback", arg.get_id()));
            assert!(env.starts_with("TAILOR_"), "{env}");
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_id());
            seen.push(env.to_owned());
        }
        seen.sort();
        let mut expected: Vec<String> = ENV_VARS.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(seen, expected);
    }

    #[test]
    fn defaults() {
        let cli = parse_with_env(&[], &[]).unwrap();
        assert_eq!(cli.admin.admin_addr, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(cli.log.log_level, "info");
        assert_eq!(cli.log.log_format, LogFormat::Text);
        assert_eq!(cli.kube.kube_api_qps, 50.0);
        assert_eq!(cli.kube.kube_api_burst, 100);
        assert!(cli.lease.leader_elect);
        assert_eq!(
            cli.lease.leader_elect_lease_duration,
            Duration::from_secs(15)
        );
        assert_eq!(
            cli.lease.leader_elect_renew_deadline,
            Duration::from_secs(10)
        );
        assert_eq!(cli.lease.leader_elect_retry_period, Duration::from_secs(2));
        assert_eq!(cli.lease.resource_name("tailor-updater"), "tailor-updater");
        cli.lease.validate().unwrap();
    }

    #[test]
    fn env_fallbacks_apply_and_flags_win() {
        let env = [
            ("TAILOR_ADMIN_ADDR", "127.0.0.1:9999"),
            ("TAILOR_LOG_LEVEL", "debug,kube=warn"),
            ("TAILOR_LOG_FORMAT", "json"),
            ("TAILOR_KUBE_API_QPS", "7.5"),
            ("TAILOR_KUBE_API_BURST", "3"),
            ("TAILOR_TLS_CERT_FILE", "/certs/a.crt"),
            ("TAILOR_TLS_PRIVATE_KEY_FILE", "/certs/a.key"),
            ("TAILOR_LEADER_ELECT", "false"),
            ("TAILOR_LEADER_ELECT_LEASE_DURATION", "30s"),
            ("TAILOR_LEADER_ELECT_RESOURCE_NAME", "my-lease"),
            ("TAILOR_LEADER_ELECT_RESOURCE_NAMESPACE", "ops"),
        ];
        let cli = parse_with_env(&["--kube-api-burst", "9"], &env).unwrap();
        assert_eq!(cli.admin.admin_addr, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(cli.log.log_level, "debug,kube=warn");
        assert_eq!(cli.log.log_format, LogFormat::Json);
        assert_eq!(cli.kube.kube_api_qps, 7.5);
        assert_eq!(cli.kube.kube_api_burst, 9, "the flag wins over the env");
        assert_eq!(cli.tls.tls_cert_file, PathBuf::from("/certs/a.crt"));
        assert_eq!(cli.tls.tls_private_key_file, PathBuf::from("/certs/a.key"));
        assert!(!cli.lease.leader_elect);
        assert_eq!(
            cli.lease.leader_elect_lease_duration,
            Duration::from_secs(30)
        );
        assert_eq!(cli.lease.resource_name("x"), "my-lease");
        assert_eq!(cli.lease.leader_elect_resource_namespace, "ops");
    }

    #[test]
    fn real_environment_is_read_by_clap() {
        // Edition 2024 makes `set_var` unsafe (and unsafe is forbidden here), so
        // re-run this test binary as a child with the variables set, and let the
        // child parse its real environment.
        if std::env::var_os("TAILOR_ARGS_ENV_CHILD").is_some() {
            let cli = TestCli::try_parse_from(["tailor-test", "--log-format", "text"]).unwrap();
            assert_eq!(cli.log.log_level, "warn");
            assert_eq!(cli.log.log_format, LogFormat::Text, "the flag wins");
            assert_eq!(cli.kube.kube_api_burst, 42);
            assert_eq!(
                cli.lease.leader_elect_retry_period,
                Duration::from_millis(1500)
            );
            return;
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "args::tests::real_environment_is_read_by_clap",
                "--nocapture",
            ])
            .env("TAILOR_ARGS_ENV_CHILD", "1")
            .env("TAILOR_LOG_LEVEL", "warn")
            .env("TAILOR_LOG_FORMAT", "json")
            .env("TAILOR_KUBE_API_BURST", "42")
            .env("TAILOR_LEADER_ELECT_RETRY_PERIOD", "1.5s")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "child parse failed: {stdout}");
        assert!(
            stdout.contains("1 passed"),
            "the child ran no test: {stdout}"
        );
    }

    #[rstest]
    #[case(&["--leader-elect"], true)]
    #[case(&["--leader-elect=false"], false)]
    #[case(&["--leader-elect", "false"], false)]
    #[case(&["--leader-elect=true"], true)]
    fn leader_elect_switch(#[case] args: &[&str], #[case] expected: bool) {
        assert_eq!(
            parse_with_env(args, &[]).unwrap().lease.leader_elect,
            expected
        );
    }

    #[rstest]
    #[case(&["--admin-addr", "nope"])]
    #[case(&["--log-format", "xml"])]
    #[case(&["--kube-api-qps", "0"])]
    #[case(&["--kube-api-qps", "-3"])]
    #[case(&["--kube-api-burst", "0"])]
    #[case(&["--leader-elect-lease-duration", "15"])]
    #[case(&["--leader-elect-retry-period", "fast"])]
    fn bad_values_are_rejected(#[case] args: &[&str]) {
        assert!(parse_with_env(args, &[]).is_err(), "{args:?}");
    }

    #[rstest]
    #[case("15s", Duration::from_secs(15))]
    #[case("500ms", Duration::from_millis(500))]
    #[case("2m", Duration::from_secs(120))]
    #[case("1h", Duration::from_secs(3600))]
    #[case("1.5s", Duration::from_millis(1500))]
    #[case(" 3s ", Duration::from_secs(3))]
    fn durations_parse(#[case] input: &str, #[case] expected: Duration) {
        assert_eq!(parse_duration(input), Ok(expected));
    }

    #[rstest]
    #[case("")]
    #[case("s")]
    #[case("10")]
    #[case("10d")]
    #[case("1.2.3s")]
    #[case("-1s")]
    fn bad_durations_name_the_input(#[case] input: &str) {
        assert_eq!(
            parse_duration(input),
            Err(ArgsError::Duration {
                input: input.to_owned()
            })
        );
    }

    #[rstest]
    #[case("15s", "10s", "2s", true)]
    #[case("15s", "15s", "2s", false)]
    #[case("15s", "10s", "10s", false)]
    #[case("15s", "10s", "0s", false)]
    fn lease_timings_are_validated(
        #[case] lease: &str,
        #[case] renew: &str,
        #[case] retry: &str,
        #[case] ok: bool,
    ) {
        let cli = parse_with_env(
            &[
                "--leader-elect-lease-duration",
                lease,
                "--leader-elect-renew-deadline",
                renew,
                "--leader-elect-retry-period",
                retry,
            ],
            &[],
        )
        .unwrap();
        assert_eq!(cli.lease.validate().is_ok(), ok);
    }
}
