//! Command line: `tailor-recommender recommend …`, the one-shot report, and
//! `tailor-recommender run …`, the controller.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tailor_core::catalog::{Catalog, Rates};
use tailor_core::recommender::cost::{
    DEFAULT_COST_AWARE_MAX_QUANTILE, DEFAULT_COST_AWARE_MIN_QUANTILE,
};
use tailor_core::recommender::options::{
    DEFAULT_CPU_HISTOGRAM_DECAY_HALF_LIFE_SECS, DEFAULT_LOWER_BOUND_CONFIDENCE_EXPONENT,
    DEFAULT_LOWER_BOUND_CONFIDENCE_MULTIPLIER, DEFAULT_LOWER_BOUND_CPU_PERCENTILE,
    DEFAULT_LOWER_BOUND_MEMORY_PERCENTILE, DEFAULT_MEMORY_AGGREGATION_INTERVAL_COUNT,
    DEFAULT_MEMORY_AGGREGATION_INTERVAL_SECS, DEFAULT_MEMORY_HISTOGRAM_DECAY_HALF_LIFE_SECS,
    DEFAULT_MIN_SAMPLE_WEIGHT, DEFAULT_OOM_BUMP_UP_RATIO, DEFAULT_OOM_MIN_BUMP_UP_BYTES,
    DEFAULT_POD_MIN_CPU_MILLICORES, DEFAULT_POD_MIN_MEMORY_MB, DEFAULT_ROUND_CPU_MILLICORES,
    DEFAULT_SAFETY_MARGIN_FRACTION, DEFAULT_TARGET_CPU_PERCENTILE,
    DEFAULT_TARGET_MEMORY_PERCENTILE, DEFAULT_UPPER_BOUND_CONFIDENCE_EXPONENT,
    DEFAULT_UPPER_BOUND_CONFIDENCE_MULTIPLIER, DEFAULT_UPPER_BOUND_CPU_PERCENTILE,
    DEFAULT_UPPER_BOUND_MEMORY_PERCENTILE,
};
use tailor_core::recommender::{
    AggregationOptions, CostAwareQuantile, EstimationOptions, RecommenderOptions, Timestamp,
    parse_rfc3339,
};

use crate::prom::{self, PromClient, SeriesConfig};
use crate::report::{self, Format};

/// Default $ per vCPU-hour without `--catalog`: the rate fitted by
/// `Catalog::rates` to `aws-ec2-us-east-1.csv` (current-generation,
/// non-burstable, non-GPU on-demand types, mid-2026).
pub const DEFAULT_USD_PER_VCPU_HOUR: f64 = 0.0373;
/// Default $ per GiB-hour without `--catalog` (same fit).
pub const DEFAULT_USD_PER_GIB_HOUR: f64 = 0.0048;

/// VPA-compatible, cost-aware resource recommender.
#[derive(Debug, Parser)]
#[command(name = "tailor-recommender", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// One-shot report from Prometheus alone: current requests vs. recommendations and their cost.
    Recommend(Box<RecommendArgs>),
    /// The controller: watch VPAs, recommend every interval, write their status and checkpoints.
    Run(Box<crate::controller::run::RunArgs>),
}

/// The cost policy for the CPU target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CostPolicy {
    /// Upstream's fixed target percentile.
    Off,
    /// Newsvendor critical fractile p/(p+c), clamped.
    Newsvendor,
}

/// `recommend` flags.
#[derive(Debug, Args)]
pub struct RecommendArgs {
    /// Prometheus base URL.
    #[arg(long, env = "TAILOR_PROMETHEUS_URL")]
    pub prometheus_url: String,
    /// Only this namespace.
    #[arg(long, env = "TAILOR_NAMESPACE")]
    pub namespace: Option<String>,
    /// Pod label selector (`app=web,tier!=db`), matched on kube_pod_labels.
    #[arg(long, env = "TAILOR_SELECTOR")]
    pub selector: Option<String>,
    /// History length (`8d`, `36h`, `90m`, `600s`, `1w`).
    #[arg(long, default_value = "8d", value_parser = parse_duration_secs, env = "TAILOR_HISTORY")]
    pub history: i64,
    /// Range query step.
    #[arg(long, default_value = "1h", value_parser = parse_duration_secs, env = "TAILOR_STEP")]
    pub step: i64,
    /// End of the history window (RFC 3339); default now.
    #[arg(long, value_parser = parse_time, env = "TAILOR_AT")]
    pub at: Option<Timestamp>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table", env = "TAILOR_FORMAT")]
    pub format: Format,
    /// Per-query timeout.
    #[arg(long, default_value = "60s", value_parser = parse_duration_secs, env = "TAILOR_QUERY_TIMEOUT")]
    pub query_timeout: i64,
    /// No progress lines on stderr.
    #[arg(long, short)]
    pub quiet: bool,

    /// Series names and labels.
    #[command(flatten)]
    pub series: SeriesArgs,
    /// Prices.
    #[command(flatten)]
    pub cost: CostArgs,
    /// Recommender options (defaults as upstream).
    #[command(flatten)]
    pub options: OptionArgs,
}

/// Where usage lives in Prometheus.
#[derive(Debug, Args)]
pub struct SeriesArgs {
    /// `job` label value of the cAdvisor scrape.
    #[arg(long, default_value = prom::DEFAULT_CADVISOR_JOB, env = "TAILOR_CADVISOR_JOB")]
    pub cadvisor_job: String,
    /// Label holding the scrape job.
    #[arg(long, default_value = "job", env = "TAILOR_JOB_LABEL")]
    pub job_label: String,
    /// Label holding the namespace on cAdvisor series.
    #[arg(long, default_value = "namespace", env = "TAILOR_NAMESPACE_LABEL")]
    pub namespace_label: String,
    /// Label holding the pod name on cAdvisor series.
    #[arg(long, default_value = "pod", env = "TAILOR_POD_LABEL")]
    pub pod_label: String,
    /// Label holding the container name on cAdvisor series.
    #[arg(long, default_value = "container", env = "TAILOR_CONTAINER_LABEL")]
    pub container_label: String,
    /// CPU usage counter.
    #[arg(long, default_value = prom::DEFAULT_CPU_METRIC, env = "TAILOR_CPU_METRIC")]
    pub cpu_metric: String,
    /// Memory usage gauge.
    #[arg(long, default_value = prom::DEFAULT_MEMORY_METRIC, env = "TAILOR_MEMORY_METRIC")]
    pub memory_metric: String,
    /// `rate()` window for CPU.
    #[arg(long, default_value = "1h", value_parser = parse_duration_secs, env = "TAILOR_RATE_WINDOW")]
    pub rate_window: i64,
}

/// Prices and the cost policy.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Instance catalog CSV (aws-ec2-us-east-1.csv format); its fitted rates replace the flags below.
    #[arg(long, env = "TAILOR_CATALOG")]
    pub catalog: Option<PathBuf>,
    /// $ per vCPU-hour when no catalog is given.
    #[arg(long, default_value_t = DEFAULT_USD_PER_VCPU_HOUR, env = "TAILOR_USD_PER_VCPU_HOUR")]
    pub usd_per_vcpu_hour: f64,
    /// $ per GiB-hour when no catalog is given.
    #[arg(long, default_value_t = DEFAULT_USD_PER_GIB_HOUR, env = "TAILOR_USD_PER_GIB_HOUR")]
    pub usd_per_gib_hour: f64,
    /// CPU target policy.
    #[arg(long, value_enum, default_value = "off", env = "TAILOR_COST_POLICY")]
    pub cost_policy: CostPolicy,
    /// $ per core-hour of usage above the request (newsvendor only).
    #[arg(long, env = "TAILOR_UNDER_PROVISIONING_PENALTY")]
    pub under_provisioning_penalty: Option<f64>,
    /// Lowest quantile the newsvendor policy may pick.
    #[arg(long, default_value_t = DEFAULT_COST_AWARE_MIN_QUANTILE)]
    pub cost_min_quantile: f64,
    /// Highest quantile the newsvendor policy may pick.
    #[arg(long, default_value_t = DEFAULT_COST_AWARE_MAX_QUANTILE)]
    pub cost_max_quantile: f64,
}

/// Every recommender option, defaults from `tailor_core::recommender::options`.
#[derive(Debug, Args)]
pub struct OptionArgs {
    /// CPU target percentile.
    #[arg(long, default_value_t = DEFAULT_TARGET_CPU_PERCENTILE)]
    pub target_cpu_percentile: f64,
    /// CPU lower-bound percentile.
    #[arg(long, default_value_t = DEFAULT_LOWER_BOUND_CPU_PERCENTILE)]
    pub lower_bound_cpu_percentile: f64,
    /// CPU upper-bound percentile.
    #[arg(long, default_value_t = DEFAULT_UPPER_BOUND_CPU_PERCENTILE)]
    pub upper_bound_cpu_percentile: f64,
    /// Memory target percentile.
    #[arg(long, default_value_t = DEFAULT_TARGET_MEMORY_PERCENTILE)]
    pub target_memory_percentile: f64,
    /// Memory lower-bound percentile.
    #[arg(long, default_value_t = DEFAULT_LOWER_BOUND_MEMORY_PERCENTILE)]
    pub lower_bound_memory_percentile: f64,
    /// Memory upper-bound percentile.
    #[arg(long, default_value_t = DEFAULT_UPPER_BOUND_MEMORY_PERCENTILE)]
    pub upper_bound_memory_percentile: f64,
    /// Safety margin fraction.
    #[arg(long, default_value_t = DEFAULT_SAFETY_MARGIN_FRACTION)]
    pub recommendation_margin_fraction: f64,
    /// Upper-bound confidence multiplier.
    #[arg(long, default_value_t = DEFAULT_UPPER_BOUND_CONFIDENCE_MULTIPLIER)]
    pub upper_bound_confidence_multiplier: f64,
    /// Upper-bound confidence exponent.
    #[arg(long, default_value_t = DEFAULT_UPPER_BOUND_CONFIDENCE_EXPONENT)]
    pub upper_bound_confidence_exponent: f64,
    /// Lower-bound confidence multiplier.
    #[arg(long, default_value_t = DEFAULT_LOWER_BOUND_CONFIDENCE_MULTIPLIER)]
    pub lower_bound_confidence_multiplier: f64,
    /// Lower-bound confidence exponent.
    #[arg(long, default_value_t = DEFAULT_LOWER_BOUND_CONFIDENCE_EXPONENT, allow_negative_numbers = true)]
    pub lower_bound_confidence_exponent: f64,
    /// Per-pod minimum CPU, millicores.
    #[arg(long, default_value_t = DEFAULT_POD_MIN_CPU_MILLICORES)]
    pub pod_recommendation_min_cpu_millicores: f64,
    /// Per-pod minimum memory, MiB.
    #[arg(long, default_value_t = DEFAULT_POD_MIN_MEMORY_MB)]
    pub pod_recommendation_min_memory_mb: f64,
    /// Round CPU up to a multiple of this many millicores.
    #[arg(long, default_value_t = DEFAULT_ROUND_CPU_MILLICORES)]
    pub round_cpu_millicores: i64,
    /// CPU histogram half-life (seconds, or with a unit: 24h).
    #[arg(long, default_value_t = DEFAULT_CPU_HISTOGRAM_DECAY_HALF_LIFE_SECS, value_parser = parse_duration_secs)]
    pub cpu_histogram_decay_half_life: i64,
    /// Memory histogram half-life (seconds, or with a unit).
    #[arg(long, default_value_t = DEFAULT_MEMORY_HISTOGRAM_DECAY_HALF_LIFE_SECS, value_parser = parse_duration_secs)]
    pub memory_histogram_decay_half_life: i64,
    /// Memory aggregation interval (seconds, or with a unit).
    #[arg(long, default_value_t = DEFAULT_MEMORY_AGGREGATION_INTERVAL_SECS, value_parser = parse_duration_secs)]
    pub memory_aggregation_interval: i64,
    /// Memory aggregation interval (seconds, or with a unit).count.
    #[arg(long, default_value_t = DEFAULT_MEMORY_AGGREGATION_INTERVAL_COUNT)]
    pub memory_aggregation_interval_count: i64,
    /// Minimum CPU sample weight (cores).
    #[arg(long, default_value_t = DEFAULT_MIN_SAMPLE_WEIGHT)]
    pub min_sample_weight: f64,
    /// OOM bump-up ratio.
    #[arg(long, default_value_t = DEFAULT_OOM_BUMP_UP_RATIO)]
    pub oom_bump_up_ratio: f64,
    /// OOM minimum bump-up, bytes.
    #[arg(long, default_value_t = DEFAULT_OOM_MIN_BUMP_UP_BYTES)]
    pub oom_min_bump_up_bytes: f64,
}

/// Parses `90s`, `15m`, `1h`, `8d`, `1w` (or plain seconds) into seconds.
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 15m, 1h, 8d or 1w"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            ));
        }
    };
    let secs = n
        .checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too long"))?;
    if secs <= 0 {
        return Err(format!("{s:?} must be positive"));
    }
    Ok(secs)
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    parse_rfc3339(s).map_err(|e| e.to_string())
}

impl OptionArgs {
    /// The recommender options these flags describe.
    #[must_use]
    pub fn to_options(&self, cost_aware: Option<CostAwareQuantile>) -> RecommenderOptions {
        RecommenderOptions {
            aggregation: AggregationOptions {
                min_sample_weight: self.min_sample_weight,
                cpu_half_life_secs: self.cpu_histogram_decay_half_life,
                memory_half_life_secs: self.memory_histogram_decay_half_life,
                memory_aggregation_interval_secs: self.memory_aggregation_interval,
                memory_aggregation_interval_count: self.memory_aggregation_interval_count,
                oom_bump_up_ratio: self.oom_bump_up_ratio,
                oom_min_bump_up_bytes: self.oom_min_bump_up_bytes,
                ..AggregationOptions::default()
            },
            estimation: EstimationOptions {
                target_cpu_percentile: self.target_cpu_percentile,
                lower_bound_cpu_percentile: self.lower_bound_cpu_percentile,
                upper_bound_cpu_percentile: self.upper_bound_cpu_percentile,
                target_memory_percentile: self.target_memory_percentile,
                lower_bound_memory_percentile: self.lower_bound_memory_percentile,
                upper_bound_memory_percentile: self.upper_bound_memory_percentile,
                safety_margin_fraction: self.recommendation_margin_fraction,
                upper_bound_confidence_multiplier: self.upper_bound_confidence_multiplier,
                upper_bound_confidence_exponent: self.upper_bound_confidence_exponent,
                lower_bound_confidence_multiplier: self.lower_bound_confidence_multiplier,
                lower_bound_confidence_exponent: self.lower_bound_confidence_exponent,
                pod_min_cpu_millicores: self.pod_recommendation_min_cpu_millicores,
                pod_min_memory_mb: self.pod_recommendation_min_memory_mb,
                round_cpu_millicores: self.round_cpu_millicores,
                cost_aware,
                ..EstimationOptions::default()
            },
        }
    }
}

impl CostArgs {
    /// Rates from the catalog when given, else from the flags.
    pub fn rates(&self) -> anyhow::Result<Rates> {
        if let Some(path) = &self.catalog {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read catalog {}", path.display()))?;
            let catalog = Catalog::from_csv(&text)
                .with_context(|| format!("invalid catalog {}", path.display()))?;
            return catalog
                .rates()
                .with_context(|| format!("no rates from catalog {}", path.display()));
        }
        for (flag, v) in [
            ("--usd-per-vcpu-hour", self.usd_per_vcpu_hour),
            ("--usd-per-gib-hour", self.usd_per_gib_hour),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                bail!("{flag} must be a finite, non-negative number, got {v}");
            }
        }
        Ok(Rates {
            usd_per_vcpu_hour: self.usd_per_vcpu_hour,
            usd_per_gib_hour: self.usd_per_gib_hour,
        })
    }

    /// The cost-aware CPU quantile for the policy (`None` when off).
    pub fn cost_aware(&self, rates: Rates) -> anyhow::Result<Option<CostAwareQuantile>> {
        match (self.cost_policy, self.under_provisioning_penalty) {
            (CostPolicy::Off, None) => Ok(None),
            (CostPolicy::Off, Some(_)) => {
                bail!("--under-provisioning-penalty needs --cost-policy newsvendor")
            }
            (CostPolicy::Newsvendor, None) => {
                bail!(
                    "--cost-policy newsvendor needs --under-provisioning-penalty ($ per core-hour)"
                )
            }
            (CostPolicy::Newsvendor, Some(p)) => {
                let q = CostAwareQuantile {
                    over_provision_cost_per_core_hour: rates.usd_per_vcpu_hour,
                    under_provision_penalty_per_core_hour: p,
                    min_quantile: self.cost_min_quantile,
                    max_quantile: self.cost_max_quantile,
                };
                q.validate().context("invalid cost policy")?;
                Ok(Some(q))
            }
        }
    }
}

fn now_secs() -> Timestamp {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Runs `recommend`: returns the rendered report; progress goes to stderr.
pub async fn recommend(args: &RecommendArgs) -> anyhow::Result<String> {
    let started = Instant::now();
    let progress = |msg: &str| {
        if !args.quiet {
            eprintln!("[{:>6.1}s] {msg}", started.elapsed().as_secs_f64());
        }
    };
    let rates = args.cost.rates()?;
    let cost_aware = args.cost.cost_aware(rates)?;
    let options = args.options.to_options(cost_aware);
    options.validate().context("invalid recommender options")?;
    let series = SeriesConfig {
        cadvisor_job: args.series.cadvisor_job.clone(),
        job_label: args.series.job_label.clone(),
        namespace_label: args.series.namespace_label.clone(),
        pod_label: args.series.pod_label.clone(),
        container_label: args.series.container_label.clone(),
        cpu_metric: args.series.cpu_metric.clone(),
        memory_metric: args.series.memory_metric.clone(),
        rate_window_secs: args.series.rate_window,
    };
    series.validate()?;
    let selector = args
        .selector
        .as_deref()
        .map(prom::parse_selector)
        .transpose()?;
    let timeout = Duration::from_secs(u64::try_from(args.query_timeout).unwrap_or(60));
    let client = PromClient::new(&args.prometheus_url, timeout)?;
    let end = args.at.unwrap_or_else(now_secs);
    let start = end - args.history;
    progress(&format!(
        "loading {}s of usage history from {} (step {}s)",
        args.history,
        client.url(),
        args.step
    ));
    let history = client
        .load_history(&series, args.namespace.as_deref(), start, end, args.step)
        .await?;
    progress(&format!(
        "loaded {} samples for {} CPU and {} memory series",
        history.sample_count(),
        history.cpu.len(),
        history.memory.len()
    ));
    let inventory = client
        .load_inventory(
            args.namespace.as_deref(),
            selector.as_deref(),
            args.history,
            end,
        )
        .await?;
    progress(&format!(
        "kube-state-metrics: {} pods with owners, {} running containers, {} HPAs on CPU/memory",
        inventory.owners.pods.len(),
        inventory.live_requests.len(),
        inventory.hpas.len()
    ));
    let (report, stats) = report::build(&history, &inventory, &options, rates, start)?;
    progress(&format!(
        "aggregated {} CPU and {} memory samples from {} containers; skipped {} NaN/negative/infinite, dropped {} out-of-order; {} containers without history, {} outside the selector",
        stats.cpu_samples,
        stats.memory_samples,
        stats.container_instances,
        stats.invalid_samples,
        stats.dropped_samples,
        stats.without_history,
        stats.unselected_instances
    ));
    progress(&format!(
        "{} recommendations (rates ${}/vCPU-h, ${}/GiB-h{})",
        report.recommendations.len(),
        rates.usd_per_vcpu_hour,
        rates.usd_per_gib_hour,
        options
            .estimation
            .cost_aware
            .map(|c| format!(
                ", newsvendor CPU target p{:.1}",
                c.target_quantile() * 100.0
            ))
            .unwrap_or_default()
    ));
    Ok(report::render(&report, args.format)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use rstest::rstest;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_equal_core_defaults() {
        let cli = Cli::try_parse_from([
            "tailor-recommender",
            "recommend",
            "--prometheus-url",
            "http://x",
        ])
        .unwrap();
        let Command::Recommend(args) = cli.command else {
            panic!("parsed as another command")
        };
        assert_eq!(args.options.to_options(None), RecommenderOptions::default());
        assert_eq!(args.history, 8 * 86_400);
        assert_eq!(args.step, 3600);
        assert_eq!(args.format, Format::Table);
    }

    #[rstest]
    #[case("8d", Ok(691_200))]
    #[case("90m", Ok(5400))]
    #[case("1w", Ok(604_800))]
    #[case("30", Ok(30))]
    #[case("0s", Err(()))]
    #[case("1y", Err(()))]
    #[case("h", Err(()))]
    fn durations(#[case] s: &str, #[case] want: Result<i64, ()>) {
        assert_eq!(parse_duration_secs(s).map_err(|_| ()), want);
    }

    fn cost(policy: CostPolicy, penalty: Option<f64>) -> CostArgs {
        CostArgs {
            catalog: None,
            usd_per_vcpu_hour: 0.04,
            usd_per_gib_hour: 0.005,
            cost_policy: policy,
            under_provisioning_penalty: penalty,
            cost_min_quantile: DEFAULT_COST_AWARE_MIN_QUANTILE,
            cost_max_quantile: DEFAULT_COST_AWARE_MAX_QUANTILE,
        }
    }

    #[rstest]
    #[case(0.36, 0.9)]
    #[case(0.04, 0.5)]
    #[case(0.0, 0.5)]
    #[case(100.0, 0.99)]
    fn newsvendor_quantile(#[case] penalty: f64, #[case] want: f64) {
        let c = cost(CostPolicy::Newsvendor, Some(penalty));
        let q = c.cost_aware(c.rates().unwrap()).unwrap().unwrap();
        assert!(
            (q.target_quantile() - want).abs() < 1e-9,
            "{}",
            q.target_quantile()
        );
    }

    #[rstest]
    #[case(CostPolicy::Newsvendor, None)]
    #[case(CostPolicy::Off, Some(1.0))]
    #[case(CostPolicy::Newsvendor, Some(-1.0))]
    fn inconsistent_cost_flags_are_errors(#[case] p: CostPolicy, #[case] penalty: Option<f64>) {
        let c = cost(p, penalty);
        assert!(c.cost_aware(c.rates().unwrap()).is_err());
    }

    #[test]
    fn default_rates_are_the_shared_catalog_fit() {
        let dir =
            std::env::var("TAILOR_SHARED_DATA").unwrap_or_else(|_| "/work/shared/data".into());
        let text = std::fs::read_to_string(format!("{dir}/aws/aws-ec2-us-east-1.csv")).unwrap();
        let r = Catalog::from_csv(&text).unwrap().rates().unwrap();
        assert!(
            (r.usd_per_vcpu_hour - DEFAULT_USD_PER_VCPU_HOUR).abs() < 5e-5,
            "{r:?}"
        );
        assert!(
            (r.usd_per_gib_hour - DEFAULT_USD_PER_GIB_HOUR).abs() < 5e-5,
            "{r:?}"
        );
    }

    #[test]
    fn off_policy_keeps_upstream() {
        let c = cost(CostPolicy::Off, None);
        assert_eq!(c.cost_aware(c.rates().unwrap()).unwrap(), None);
    }
}
