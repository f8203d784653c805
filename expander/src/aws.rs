//! `tailor-expander aws`: grow AWS Auto Scaling groups directly.
//!
//! Each loop: list unschedulable pods and nodes (Kubernetes), discover the
//! cluster's groups by Cluster Autoscaler's tags (AWS), build their templates
//! from the catalog and the node-template tags, feed the provisioning
//! tracker, plan one scale-up (`tailor_core::expander::scaleup`) and apply it
//! with `SetDesiredCapacity` — only as the leader, never in `--dry-run`.

use crate::asg::{AsgClient, AwsError, AwsOptions};
use crate::cli::{ChainArgs, ConfigError, read};
use crate::cluster::{self, Snapshot};
use anyhow::Context as _;
use clap::Args;
use k8s_openapi::api::core::v1::{Node, Pod};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tailor_core::catalog::Catalog;
use tailor_core::expander::Chain;
use tailor_core::expander::asg::{AsgDescription, node_template};
use tailor_core::expander::scaleup::{
    self, BackoffConfig, ClusterCaps, GroupState, Observation, Plan, PlanInput, Provisioning,
    ScaleUp,
};
use tailor_runtime::args::{
    AdminArgs, KubeClientArgs, LeaderElectionArgs, LogArgs, parse_duration,
};
use tailor_runtime::process::Process;
use tailor_runtime::{admin, client, telemetry};

/// The component name: Lease name and metric prefix.
pub const COMPONENT: &str = "tailor-expander";

/// `aws` flags (Cluster Autoscaler's names where CA has the flag).
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// Cluster name: groups tagged `k8s.io/cluster-autoscaler/enabled` and
    /// `k8s.io/cluster-autoscaler/<cluster-name>` are managed.
    #[arg(long, env = "TAILOR_CLUSTER_NAME")]
    pub cluster_name: String,
    /// The chain and its inputs (`--catalog` shapes and prices the groups).
    #[command(flatten)]
    pub chain: ChainArgs,
    /// Most CPU cores in the cluster, registered and requested nodes together
    /// (the maximum of CA's `--cores-total`).
    #[arg(long, env = "TAILOR_MAX_CORES_TOTAL", default_value_t = 320_000)]
    pub max_cores_total: u64,
    /// Most memory in the cluster, GiB (the maximum of CA's `--memory-total`).
    #[arg(long, env = "TAILOR_MAX_MEMORY_TOTAL", default_value_t = 6_400_000)]
    pub max_memory_total: u64,
    /// Pods with a priority below this never trigger a scale-up.
    #[arg(
        long,
        env = "TAILOR_EXPENDABLE_PODS_PRIORITY_CUTOFF",
        default_value_t = scaleup::DEFAULT_EXPENDABLE_CUTOFF,
        allow_hyphen_values = true
    )]
    pub expendable_pods_priority_cutoff: i32,
    /// Requested nodes that have not registered after this long are given up
    /// on and their group is backed off.
    #[arg(long, env = "TAILOR_MAX_NODE_PROVISION_TIME", default_value = "15m", value_parser = parse_duration)]
    pub max_node_provision_time: Duration,
    /// First backoff of a group whose nodes did not arrive; doubles per failure.
    #[arg(long, env = "TAILOR_INITIAL_NODE_GROUP_BACKOFF_DURATION", default_value = "5m", value_parser = parse_duration)]
    pub initial_node_group_backoff_duration: Duration,
    /// Longest backoff of a group.
    #[arg(long, env = "TAILOR_MAX_NODE_GROUP_BACKOFF_DURATION", default_value = "30m", value_parser = parse_duration)]
    pub max_node_group_backoff_duration: Duration,
    /// A group's failures are forgotten this long after the last one.
    #[arg(long, env = "TAILOR_NODE_GROUP_BACKOFF_RESET_TIMEOUT", default_value = "3h", value_parser = parse_duration)]
    pub node_group_backoff_reset_timeout: Duration,
    /// Time between loops.
    #[arg(long, env = "TAILOR_SCAN_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub scan_interval: Duration,
    /// Decide and print each decision (one JSON document per loop), change nothing.
    #[arg(long, env = "TAILOR_DRY_RUN")]
    pub dry_run: bool,
    /// Run one loop, print its decision and exit (no leader election).
    #[arg(long)]
    pub once: bool,
    /// Pending pods from this file (a PodList or an array of Pods) instead of
    /// the Kubernetes API; implies --once.
    #[arg(long, requires = "nodes")]
    pub pods: Option<PathBuf>,
    /// Registered nodes from this file (a NodeList or an array of Nodes); with --pods.
    #[arg(long, requires = "pods")]
    pub nodes: Option<PathBuf>,
    /// AWS endpoint override (e.g. a VPC endpoint); `AWS_ENDPOINT_URL` works too.
    #[arg(long, env = "TAILOR_AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,
    /// AWS region; else the standard chain (`AWS_REGION`, profile, instance metadata).
    #[arg(long, env = "TAILOR_AWS_REGION")]
    pub aws_region: Option<String>,
    /// Attempts per AWS call; throttling and transient errors are retried
    /// with exponential backoff.
    #[arg(long, env = "TAILOR_AWS_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub aws_max_attempts: u32,
    /// Limit on one AWS call, retries included.
    #[arg(long, env = "TAILOR_AWS_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub aws_timeout: Duration,
    /// Admin server (probes and metrics).
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Kubernetes client.
    #[command(flatten)]
    pub kube: KubeClientArgs,
    /// Leader election.
    #[command(flatten)]
    pub leader: LeaderElectionArgs,
}

impl AwsArgs {
    fn backoff(&self) -> BackoffConfig {
        BackoffConfig {
            max_provision_secs: self.max_node_provision_time.as_secs(),
            initial_secs: self.initial_node_group_backoff_duration.as_secs(),
            max_secs: self.max_node_group_backoff_duration.as_secs(),
            reset_secs: self.node_group_backoff_reset_timeout.as_secs(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let flag = |flag, reason| Err(ConfigError::Flag { flag, reason });
        if self.cluster_name.trim().is_empty() {
            return flag("--cluster-name", "must not be empty");
        }
        if self.scan_interval.is_zero() {
            return flag("--scan-interval", "must be above zero");
        }
        if self.initial_node_group_backoff_duration > self.max_node_group_backoff_duration {
            return flag(
                "--initial-node-group-backoff-duration",
                "must not exceed --max-node-group-backoff-duration",
            );
        }
        if self.chain.catalog.is_none() && self.chain.overrides.is_none() {
            return flag(
                "--catalog",
                "is required in AWS mode: it gives each instance type's CPU and memory",
            );
        }
        Ok(())
    }
}

/// The AWS mode's counters.
#[derive(Clone, Debug, Default)]
pub struct AwsMetrics {
    /// Loops by outcome: `scale_up`, `dry_run`, `nothing`, `error`.
    pub decisions: Family<Vec<(String, String)>, Counter>,
    /// Scale-ups applied, by group.
    pub scale_ups: Family<Vec<(String, String)>, Counter>,
    /// Nodes requested, by group.
    pub nodes_requested: Family<Vec<(String, String)>, Counter>,
    /// Groups backed off because their nodes did not arrive, by group.
    pub backoffs: Family<Vec<(String, String)>, Counter>,
    /// Failed AWS calls, by operation and error.
    pub aws_errors: Family<Vec<(String, String)>, Counter>,
    /// Failed Kubernetes list calls.
    pub kube_errors: Counter,
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl AwsMetrics {
    /// Registers under `registry` (prefixed `tailor_expander`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "aws_decisions",
            "AWS-mode loops by outcome (scale_up, dry_run, nothing, error)",
            self.decisions.clone(),
        );
        registry.register(
            "aws_scale_ups",
            "SetDesiredCapacity scale-ups applied, by group",
            self.scale_ups.clone(),
        );
        registry.register(
            "aws_nodes_requested",
            "Nodes requested by scale-ups, by group",
            self.nodes_requested.clone(),
        );
        registry.register(
            "aws_backoffs",
            "Groups backed off because requested nodes did not register in time",
            self.backoffs.clone(),
        );
        registry.register(
            "aws_errors",
            "Failed AWS calls (after retries), by operation and error",
            self.aws_errors.clone(),
        );
        registry.register(
            "kube_errors",
            "Failed Kubernetes list calls",
            self.kube_errors.clone(),
        );
    }

    fn decision(&self, outcome: &str) {
        self.decisions
            .get_or_create(&labels(&[("outcome", outcome)]))
            .inc();
    }

    fn aws_error(&self, e: &AwsError) {
        self.aws_errors
            .get_or_create(&labels(&[
                ("operation", e.operation()),
                ("error", e.label()),
            ]))
            .inc();
    }
}

/// One group as a loop saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupReport {
    /// Group name.
    pub id: String,
    /// MinSize.
    pub min: u32,
    /// MaxSize.
    pub max: u32,
    /// DesiredCapacity.
    pub desired: u32,
    /// Instances registered as nodes.
    pub registered: u32,
    /// The instance type the template uses.
    pub instance_type: Option<String>,
    /// Requested nodes timed out now or earlier.
    pub given_up: bool,
    /// In backoff.
    pub backed_off: bool,
    /// Recent provisioning failures.
    pub failures: u32,
}

/// What one loop saw, decided and did; `--dry-run` and `--once` print it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Nothing was changed on purpose.
    pub dry_run: bool,
    /// The discovered groups.
    pub groups: Vec<GroupReport>,
    /// Groups left out because their template could not be built.
    pub template_errors: Vec<String>,
    /// Pending pods that could not be read.
    pub unreadable_pods: Vec<String>,
    /// The plan.
    pub plan: Plan,
    /// The scale-up applied (absent in dry runs and when there is none).
    pub applied: Option<ScaleUp>,
}

/// Turns discovered groups and the cluster into the planner's groups, feeding
/// the provisioning tracker. Returns the groups, template errors and the
/// groups that just timed out.
pub fn group_states(
    descriptions: &[AsgDescription],
    snapshot: &Snapshot,
    catalog: &Catalog,
    tracker: &mut Provisioning,
    now: u64,
) -> (Vec<GroupState>, Vec<String>, Vec<String>) {
    let by_instance = snapshot.by_instance();
    let mut groups = Vec::with_capacity(descriptions.len());
    let mut errors = Vec::new();
    let mut timed_out = Vec::new();
    tracker.retain(|id| descriptions.iter().any(|d| d.name == id));
    for d in descriptions {
        let registered = d
            .instance_ids
            .iter()
            .filter(|id| by_instance.contains_key(id.as_str()))
            .count();
        let registered = u32::try_from(registered).unwrap_or(u32::MAX);
        if let Observation::TimedOut { failures, until } =
            tracker.observe(&d.name, d.desired, registered, now)
        {
            tracing::warn!(
                group = %d.name,
                desired = d.desired,
                registered,
                failures,
                backoff_secs = until.saturating_sub(now),
                "requested nodes did not register in time; backing the group off"
            );
            timed_out.push(d.name.clone());
        }
        match node_template(d, catalog) {
            Ok(template) => groups.push(GroupState {
                id: d.name.clone(),
                min: d.min_size,
                max: d.max_size,
                desired: d.desired,
                registered,
                template,
                health: tracker.health(&d.name, now),
            }),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (groups, errors, timed_out)
}

/// The leader's loop state.
pub struct Controller {
    asg: AsgClient,
    cluster: String,
    catalog: Arc<Catalog>,
    chain: Chain,
    caps: ClusterCaps,
    cutoff: i32,
    seed: u64,
    dry_run: bool,
    tracker: Provisioning,
    metrics: AwsMetrics,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("cluster", &self.cluster)
            .field("chain", &self.chain.names())
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// Reads the catalog and priorities, builds the chain; `asg` is the AWS client.
    pub fn new(args: &AwsArgs, asg: AsgClient, metrics: AwsMetrics) -> anyhow::Result<Self> {
        args.validate()?;
        let catalog = Arc::new(args.chain.load_catalog()?.unwrap_or_default());
        let config = args.chain.chain_config(Some(catalog.clone()))?;
        let chain = Chain::build(&args.chain.expander, &config).map_err(ConfigError::Chain)?;
        Ok(Controller {
            asg,
            cluster: args.cluster_name.trim().to_owned(),
            catalog,
            chain,
            caps: ClusterCaps {
                max_cores: args.max_cores_total,
                max_memory_gib: args.max_memory_total,
            },
            cutoff: args.expendable_pods_priority_cutoff,
            seed: args.chain.seed,
            dry_run: args.dry_run,
            tracker: Provisioning::new(args.backoff()),
            metrics,
        })
    }

    /// One loop over `snapshot` at `now` (seconds on a monotonic clock).
    pub async fn iteration(&mut self, snapshot: &Snapshot, now: u64) -> Result<Report, AwsError> {
        let descriptions = match self.asg.discover(&self.cluster).await {
            Ok(d) => d,
            Err(e) => {
                self.metrics.aws_error(&e);
                self.metrics.decision("error");
                return Err(e);
            }
        };
        let (groups, template_errors, timed_out) = group_states(
            &descriptions,
            snapshot,
            &self.catalog,
            &mut self.tracker,
            now,
        );
        for g in &timed_out {
            self.metrics
                .backoffs
                .get_or_create(&labels(&[("group", g)]))
                .inc();
        }
        for e in &template_errors {
            tracing::warn!(error = %e, "group left out");
        }
        let input = PlanInput {
            groups: &groups,
            pending: &snapshot.pending,
            registered_capacity: snapshot.capacity(),
            registered_nodes: snapshot.nodes.len(),
            caps: self.caps,
            expendable_cutoff: self.cutoff,
            seed: self.seed,
        };
        let plan = scaleup::plan(&input, &self.chain);
        let mut report = Report {
            dry_run: self.dry_run,
            groups: groups
                .iter()
                .map(|g| GroupReport {
                    id: g.id.clone(),
                    min: g.min,
                    max: g.max,
                    desired: g.desired,
                    registered: g.registered,
                    instance_type: g.template.price.instance_types.first().cloned(),
                    given_up: g.health.given_up,
                    backed_off: g.health.backed_off,
                    failures: g.health.failures,
                })
                .collect(),
            template_errors,
            unreadable_pods: snapshot
                .unreadable
                .iter()
                .map(ToString::to_string)
                .collect(),
            applied: None,
            plan,
        };
        let Some(up) = report.plan.scale_up.clone() else {
            self.metrics.decision("nothing");
            return Ok(report);
        };
        // The plan never exceeds MaxSize; checked again right before the write.
        let max = groups
            .iter()
            .find(|g| g.id == up.group)
            .map_or(0, |g| g.max);
        if up.to > max || up.to <= up.from {
            tracing::error!(group = %up.group, from = up.from, to = up.to, max, "refusing a scale-up outside the group's bounds");
            self.metrics.decision("error");
            return Ok(report);
        }
        if self.dry_run {
            tracing::info!(group = %up.group, from = up.from, to = up.to, pods = up.pods.len(), "dry run: would set desired capacity");
            self.metrics.decision("dry_run");
            return Ok(report);
        }
        if let Err(e) = self.asg.set_desired(&up.group, up.to).await {
            self.metrics.aws_error(&e);
            self.metrics.decision("error");
            return Err(e);
        }
        tracing::info!(group = %up.group, from = up.from, to = up.to, pods = up.pods.len(), "scaled up");
        self.tracker.scaled_up(&up.group, up.to, now);
        let group = labels(&[("group", &up.group)]);
        self.metrics.scale_ups.get_or_create(&group).inc();
        self.metrics
            .nodes_requested
            .get_or_create(&group)
            .inc_by(u64::from(up.to - up.from));
        self.metrics.decision("scale_up");
        report.applied = Some(up);
        Ok(report)
    }
}

/// Items of a `List` document, or of a bare JSON array.
fn read_items<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Vec<T>> {
    let text = read(path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut map) => match map.remove("items") {
            Some(serde_json::Value::Array(items)) => items,
            _ => anyhow::bail!(
                "{}: expected a List with \"items\" or an array",
                path.display()
            ),
        },
        _ => anyhow::bail!(
            "{}: expected a List with \"items\" or an array",
            path.display()
        ),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value(v).with_context(|| format!("{}: item {i}", path.display()))
        })
        .collect()
}

fn aws_options(args: &AwsArgs) -> AwsOptions {
    AwsOptions {
        endpoint_url: args.aws_endpoint_url.clone(),
        region: args.aws_region.clone(),
        max_attempts: args.aws_max_attempts,
        operation_timeout: args.aws_timeout,
    }
}

fn to_json(report: &Report) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(report)? + "\n")
}

/// Runs `aws`: one loop (`--once`, `--pods`) returning what to print, or the
/// leader-elected loop until SIGTERM/SIGINT or the lease is lost.
pub async fn run(args: AwsArgs) -> anyhow::Result<Option<String>> {
    telemetry::init(&args.log)?;
    args.validate()?;
    let config = crate::asg::sdk_config(&aws_options(&args)).await;
    let metrics = AwsMetrics::default();
    let mut controller = Controller::new(&args, AsgClient::new(&config), metrics.clone())?;
    let started = Instant::now();
    if let (Some(pods), Some(nodes)) = (&args.pods, &args.nodes) {
        let pods: Vec<Pod> = read_items(pods)?;
        let nodes: Vec<Node> = read_items(nodes)?;
        let report = controller
            .iteration(&cluster::snapshot(&pods, &nodes), 0)
            .await?;
        return to_json(&report).map(Some);
    }
    let kube = client::kube_client(&args.kube).await?;
    if args.once {
        let snapshot = cluster::list(&kube)
            .await
            .context("listing pending pods and nodes")?;
        let report = controller.iteration(&snapshot, 0).await?;
        return to_json(&report).map(Some);
    }

    let mut registry = admin::component_registry("expander");
    metrics.register(&mut registry);
    let process = Process::start(&args.admin, registry).await?;
    // A loop may wait out AWS retries: allow for that before /livez fails.
    let heartbeat = process.heartbeat(
        "aws-loop",
        args.scan_interval * 3 + args.aws_timeout * 2 + Duration::from_secs(30),
    );
    let leader = process.lease(&kube, &args.leader, COMPONENT)?;
    // No caches: every loop lists what it needs, and followers wait in the loop.
    process.readiness().set_ready(true);
    tracing::info!(
        cluster = %controller.cluster,
        chain = %args.chain.expander,
        dry_run = args.dry_run,
        "AWS mode started"
    );
    let token = process.token();
    let mut tick = tokio::time::interval(args.scan_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => break,
            _ = tick.tick() => {}
        }
        // Only the leader acts; a follower stays live and waits.
        if leader.is_leader() {
            let now = started.elapsed().as_secs();
            let outcome = tokio::select! {
                () = token.cancelled() => break,
                r = loop_once(&kube, &mut controller, now) => r,
            };
            match outcome {
                Ok(report) if args.dry_run => {
                    if let Ok(line) = serde_json::to_string(&report) {
                        println!("{line}");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "loop failed; retrying next interval")
                }
            }
        }
        heartbeat.beat();
    }
    process.stop().await?;
    Ok(None)
}

async fn loop_once(
    kube: &kube::Client,
    controller: &mut Controller,
    now: u64,
) -> anyhow::Result<Report> {
    let snapshot = match cluster::list(kube).await {
        Ok(s) => s,
        Err(e) => {
            controller.metrics.kube_errors.inc();
            controller.metrics.decision("error");
            return Err(anyhow::Error::new(e).context("listing pending pods and nodes"));
        }
    };
    Ok(controller.iteration(&snapshot, now).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::{CommandFactory as _, Parser as _};
    use std::collections::BTreeMap;
    use tailor_core::resources::Resources;

    fn parse(argv: &[&str]) -> AwsArgs {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Aws(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn command_is_well_formed_and_the_overlay_args_parse() {
        Cli::command().debug_assert();
        // deploy/overlays/expander-aws/aws-mode.yaml
        let a = parse(&[
            "tailor-expander",
            "aws",
            "--cluster-name=my-cluster",
            "--expander=price,least-waste",
            "--catalog=/etc/tailor/catalog/catalog.csv",
        ]);
        assert_eq!(a.cluster_name, "my-cluster");
        assert_eq!(a.expendable_pods_priority_cutoff, -10);
        assert_eq!(a.max_node_provision_time, Duration::from_secs(900));
        assert_eq!(a.scan_interval, Duration::from_secs(10));
        assert_eq!(
            (a.max_cores_total, a.max_memory_total),
            (320_000, 6_400_000)
        );
        assert!(a.leader.leader_elect && !a.dry_run);
        let a = parse(&[
            "tailor-expander",
            "aws",
            "--cluster-name=c",
            "--expander=least-waste",
            "--catalog=x.csv",
            "--expendable-pods-priority-cutoff",
            "-100",
            "--max-node-provision-time=5m",
        ]);
        assert_eq!(a.expendable_pods_priority_cutoff, -100);
        assert_eq!(a.backoff().max_provision_secs, 300);
        // deploy/base/expander/deployment.yaml
        let serve = Cli::try_parse_from([
            "tailor-expander",
            "serve",
            "--listen=0.0.0.0:7000",
            "--tls-cert-file=/etc/tailor/tls/tls.crt",
            "--tls-private-key-file=/etc/tailor/tls/tls.key",
            "--expander=price,least-waste",
            "--catalog=/etc/tailor/catalog/catalog.csv",
        ]);
        assert!(serve.is_ok());
        assert!(
            Cli::try_parse_from([
                "tailor-expander",
                "aws",
                "--cluster-name=c",
                "--expander=x",
                "--pods=p"
            ])
            .is_err(),
            "--pods needs --nodes"
        );
    }

    #[test]
    fn flags_are_checked() {
        let base = [
            "tailor-expander",
            "aws",
            "--expander=least-waste",
            "--catalog=x.csv",
        ];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            parse(&v).validate().unwrap_err().to_string()
        };
        assert_eq!(
            with(&["--cluster-name= "]),
            "--cluster-name: must not be empty"
        );
        assert_eq!(
            with(&["--cluster-name=c", "--scan-interval=0s"]),
            "--scan-interval: must be above zero"
        );
        assert_eq!(
            with(&[
                "--cluster-name=c",
                "--initial-node-group-backoff-duration=1h"
            ]),
            "--initial-node-group-backoff-duration: must not exceed --max-node-group-backoff-duration"
        );
    }

    fn description(name: &str, desired: u32, ids: &[&str]) -> AsgDescription {
        AsgDescription {
            name: name.into(),
            min_size: 0,
            max_size: 10,
            desired,
            instance_types: vec!["m6i.large".into()],
            spot: false,
            tags: BTreeMap::new(),
            instance_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            zones: vec![],
            launch_template_error: None,
        }
    }

    #[test]
    fn group_states_count_registered_instances_and_time_out() {
        let catalog = Catalog::from_csv(
            "instance_type,vcpu,memory_mib,gpus,architectures,current_generation,burstable,bare_metal,on_demand_usd_per_hour\n\
             m6i.large,2,8192,0,x86_64,true,false,false,0.096\n",
        )
        .unwrap();
        let snapshot = Snapshot {
            nodes: vec![cluster::NodeInfo {
                name: "n".into(),
                instance_id: Some("i-1".into()),
                capacity: Resources::new(2000, 8 << 30),
            }],
            ..Snapshot::default()
        };
        let mut unknown = description("bad", 0, &[]);
        unknown.instance_types = vec!["x9.huge".into()];
        let descriptions = [description("a", 2, &["i-1", "i-2"]), unknown];
        let mut tracker = Provisioning::new(BackoffConfig::default());
        let (groups, errors, timed_out) =
            group_states(&descriptions, &snapshot, &catalog, &mut tracker, 0);
        assert_eq!(groups.len(), 1);
        assert_eq!((groups[0].registered, groups[0].upcoming()), (1, 1));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("\"bad\""), "{}", errors[0]);
        assert!(timed_out.is_empty());
        let (groups, _, timed_out) =
            group_states(&descriptions, &snapshot, &catalog, &mut tracker, 15 * 60);
        assert_eq!(timed_out, ["a"]);
        assert!(groups[0].health.backed_off && groups[0].health.given_up);
    }
}
