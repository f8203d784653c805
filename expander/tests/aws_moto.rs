//! The AWS mode against a real `moto_server`: discovery by CA's tags, bounds
//! (MaxSize, cluster caps) enforced by us, scale-ups applied once, errors
//! named; and `tailor-expander aws --dry-run` end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_autoscaling::types::{
    LaunchTemplate, LaunchTemplateSpecification, MixedInstancesPolicy, Tag,
};
use aws_sdk_ec2::types::{InstanceType, RequestLaunchTemplateData};
use clap::Parser as _;
use serde_json::{Value, json};
use std::path::PathBuf;
use tailor_core::resources::Resources;
use tailor_core::scheduling::PodRequest;
use tailor_expander::asg::{AsgClient, AwsError};
use tailor_expander::aws::{AwsArgs, AwsMetrics, Controller};
use tailor_expander::cli::{Cli, Command};
use tailor_expander::cluster::{NodeInfo, Snapshot};
use tailor_testkit::Moto;

const CLUSTER: &str = "prod";
const GIB: i64 = 1 << 30;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder()
        .key(key)
        .value(value)
        .propagate_at_launch(false)
        .build()
}

/// A group launched from a launch configuration of `instance_type`.
async fn group(
    asg: &aws_sdk_autoscaling::Client,
    name: &str,
    instance_type: &str,
    (min, desired, max): (i32, i32, i32),
    tags: &[(&str, &str)],
) {
    let lc = format!("{name}-lc");
    asg.create_launch_configuration()
        .launch_configuration_name(&lc)
        .image_id("ami-12c6146b")
        .instance_type(instance_type)
        .send()
        .await
        .unwrap();
    let mut create = asg
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_configuration_name(&lc)
        .min_size(min)
        .max_size(max)
        .desired_capacity(desired)
        .availability_zones("us-east-1a");
    for (k, v) in tags {
        create = create.tags(tag(k, v));
    }
    create.send().await.unwrap();
}

const ENABLED: (&str, &str) = ("k8s.io/cluster-autoscaler/enabled", "true");
const OWNED: (&str, &str) = ("k8s.io/cluster-autoscaler/prod", "owned");

/// A group carrying both of cluster "prod"'s discovery tags.
async fn cluster_group(
    asg: &aws_sdk_autoscaling::Client,
    name: &str,
    instance_type: &str,
    bounds: (i32, i32, i32),
) {
    group(asg, name, instance_type, bounds, &[ENABLED, OWNED]).await;
}

async fn desired(asg: &aws_sdk_autoscaling::Client, name: &str) -> i32 {
    let out = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .unwrap();
    out.auto_scaling_groups()[0].desired_capacity().unwrap()
}

fn args(extra: &[&str]) -> AwsArgs {
    let catalog = fixture("catalog.csv");
    let mut argv = vec!["tailor-expander", "aws", "--cluster-name", CLUSTER];
    if !extra.contains(&"--catalog") {
        argv.extend_from_slice(&["--catalog", catalog.to_str().unwrap()]);
    }
    argv.extend_from_slice(extra);
    if !extra.contains(&"--expander") {
        argv.extend_from_slice(&["--expander", "least-waste"]);
    }
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Aws(a) => *a,
        other => panic!("{other:?}"),
    }
}

fn controller(moto: &Moto, extra: &[&str]) -> Controller {
    Controller::new(
        &args(extra),
        AsgClient::new(&moto.sdk_config()),
        AwsMetrics::default(),
    )
    .unwrap()
}

/// A cluster with only these pending pods.
fn pending(pods: Vec<PodRequest>) -> Snapshot {
    Snapshot {
        pending: pods,
        ..Snapshot::default()
    }
}

fn pods(n: usize, cpu_millis: i64) -> Vec<PodRequest> {
    (0..n)
        .map(|i| PodRequest::new(format!("shop/web-{i}"), Resources::new(cpu_millis, GIB)))
        .collect()
}

#[tokio::test]
async fn discovers_groups_by_both_tags_with_their_templates() {
    let moto = Moto::start().await.unwrap();
    let asg = moto.autoscaling_client();
    group(
        &asg,
        "prod-general",
        "m5.xlarge",
        (0, 0, 10),
        &[
            ENABLED,
            OWNED,
            (
                "k8s.io/cluster-autoscaler/node-template/label/pool",
                "general",
            ),
            (
                "k8s.io/cluster-autoscaler/node-template/taint/dedicated",
                "web:NoSchedule",
            ),
        ],
    )
    .await;
    cluster_group(&asg, "prod-big", "m5.2xlarge", (0, 1, 4)).await;
    // Another cluster's group, a disabled one, and an untagged one.
    group(
        &asg,
        "staging",
        "m5.xlarge",
        (0, 0, 10),
        &[ENABLED, ("k8s.io/cluster-autoscaler/staging", "owned")],
    )
    .await;
    group(&asg, "prod-manual", "m5.xlarge", (0, 0, 10), &[OWNED]).await;
    group(&asg, "untagged", "m5.xlarge", (0, 0, 10), &[]).await;

    let found = AsgClient::new(&moto.sdk_config())
        .discover(CLUSTER)
        .await
        .unwrap();
    let names: Vec<&str> = found.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["prod-big", "prod-general"]);
    let big = &found[0];
    assert_eq!((big.min_size, big.desired, big.max_size), (0, 1, 4));
    assert_eq!(big.instance_types, ["m5.2xlarge"]);
    assert_eq!(
        big.instance_ids.len(),
        1,
        "moto launched the desired instance"
    );
    assert_eq!(big.zones, ["us-east-1a"]);
    assert_eq!(found[1].instance_types, ["m5.xlarge"]);

    // One loop with no pending pods: the report shows both templates.
    let mut c = controller(&moto, &["--dry-run"]);
    let report = c.iteration(&Snapshot::default(), 0).await.unwrap();
    assert!(report.template_errors.is_empty(), "{report:?}");
    assert_eq!(report.groups.len(), 2);
    assert_eq!(report.groups[1].instance_type.as_deref(), Some("m5.xlarge"));
    assert_eq!(report.plan.scale_up, None);
}

/// A launch template with `instance_type`; returns its id.
async fn launch_template(ec2: &aws_sdk_ec2::Client, name: &str, instance_type: &str) -> String {
    let out = ec2
        .create_launch_template()
        .launch_template_name(name)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .image_id("ami-12c6146b")
                .instance_type(InstanceType::from(instance_type))
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.launch_template()
        .unwrap()
        .launch_template_id()
        .unwrap()
        .to_owned()
}

/// A group launched from a launch template at `version`, no instances.
async fn template_group(
    asg: &aws_sdk_autoscaling::Client,
    name: &str,
    template: LaunchTemplateSpecification,
) {
    asg.create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(template)
        .min_size(0)
        .max_size(10)
        .desired_capacity(0)
        .availability_zones("us-east-1a")
        .tags(tag(ENABLED.0, ENABLED.1))
        .tags(tag(OWNED.0, OWNED.1))
        .send()
        .await
        .unwrap();
}

/// Groups launched from plain launch templates (no overrides, no instances
/// yet) get the type of the template version they name, read from EC2 as CA
/// reads it, and are priced from it.
#[tokio::test]
async fn launch_templates_without_overrides_give_the_instance_type() {
    let moto = Moto::start().await.unwrap();
    let asg = moto.autoscaling_client();
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
    let id = launch_template(&ec2, "nodes", "m5.xlarge").await;
    // Version 2 launches another type; the default stays version 1.
    ec2.create_launch_template_version()
        .launch_template_id(&id)
        .launch_template_data(
            RequestLaunchTemplateData::builder()
                .instance_type(InstanceType::from("c6i.xlarge"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let spec = |version: Option<&str>| {
        LaunchTemplateSpecification::builder()
            .launch_template_name("nodes")
            .set_version(version.map(str::to_owned))
            .build()
    };
    template_group(&asg, "prod-default", spec(None)).await;
    template_group(&asg, "prod-latest", spec(Some("$Latest"))).await;
    template_group(&asg, "prod-v1", spec(Some("1"))).await;
    // The same template through a mixed-instances policy without overrides.
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("prod-mixed")
        .mixed_instances_policy(
            MixedInstancesPolicy::builder()
                .launch_template(
                    LaunchTemplate::builder()
                        .launch_template_specification(spec(Some("2")))
                        .build(),
                )
                .build(),
        )
        .min_size(0)
        .max_size(10)
        .desired_capacity(0)
        .availability_zones("us-east-1a")
        .tags(tag(ENABLED.0, ENABLED.1))
        .tags(tag(OWNED.0, OWNED.1))
        .send()
        .await
        .unwrap();
    let found = AsgClient::new(&moto.sdk_config())
        .discover(CLUSTER)
        .await
        .unwrap();
    let types: Vec<(&str, &[String])> = found
        .iter()
        .map(|g| (g.name.as_str(), g.instance_types.as_slice()))
        .collect();
    assert_eq!(
        types,
        [
            ("prod-default", &["m5.xlarge".to_owned()][..]),
            ("prod-latest", &["c6i.xlarge".to_owned()][..]),
            ("prod-mixed", &["c6i.xlarge".to_owned()][..]),
            ("prod-v1", &["m5.xlarge".to_owned()][..]),
        ]
    );
    assert!(found.iter().all(|g| g.launch_template_error.is_none()));

    // Priced and shaped from those types: `price` picks a group, and the
    // report names each group's type.
    let mut c = controller(&moto, &["--dry-run", "--expander", "price"]);
    let report = c.iteration(&pending(pods(2, 3000)), 0).await.unwrap();
    assert!(report.template_errors.is_empty(), "{report:?}");
    let reported: Vec<Option<&str>> = report
        .groups
        .iter()
        .map(|g| g.instance_type.as_deref())
        .collect();
    assert_eq!(
        reported,
        [
            Some("m5.xlarge"),
            Some("c6i.xlarge"),
            Some("c6i.xlarge"),
            Some("m5.xlarge")
        ]
    );
    let up = report.plan.scale_up.expect("a scale-up");
    assert!(
        ["prod-latest", "prod-mixed"].contains(&up.group.as_str()),
        "c6i.xlarge is cheaper than m5.xlarge: {up:?}"
    );
}

/// A template EC2 does not know: the group is left out, and its error says
/// which template and what EC2 answered.
#[tokio::test]
async fn a_missing_launch_template_is_named() {
    let moto = Moto::start().await.unwrap();
    let asg = moto.autoscaling_client();
    let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config());
    launch_template(&ec2, "gone", "m5.xlarge").await;
    template_group(
        &asg,
        "prod-gone",
        LaunchTemplateSpecification::builder()
            .launch_template_name("gone")
            .version("$Latest")
            .build(),
    )
    .await;
    ec2.delete_launch_template()
        .launch_template_name("gone")
        .send()
        .await
        .unwrap();
    let mut c = controller(&moto, &["--dry-run"]);
    let report = c.iteration(&Snapshot::default(), 0).await.unwrap();
    assert!(report.groups.is_empty(), "{report:?}");
    let [error] = report.template_errors.as_slice() else {
        panic!("{report:?}");
    };
    assert!(
        error.starts_with("Auto Scaling group \"prod-gone\": no instance type found"),
        "{error}"
    );
    assert!(
        error.contains("launch template lt-")
            && error.contains("version $Latest: DescribeLaunchTemplateVersions: AWS answered"),
        "{error}"
    );
}

#[tokio::test]
async fn scale_up_is_applied_once_and_bounded_by_max_size() {
    let moto = Moto::start().await.unwrap();
    let asg = moto.autoscaling_client();
    // 4-core nodes, MaxSize 3; 3-core pods: one per node.
    cluster_group(&asg, "prod-general", "m5.xlarge", (0, 1, 3)).await;
    let mut c = controller(&moto, &[]);
    let registered = asg
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .instances()[0]
        .instance_id()
        .unwrap()
        .to_owned();
    let snapshot = Snapshot {
        pending: pods(5, 3000),
        unreadable: vec![],
        nodes: vec![NodeInfo {
            name: "ip-10-0-0-1".into(),
            instance_id: Some(registered),
            capacity: Resources::new(4000, 16 * GIB),
        }],
    };
    let report = c.iteration(&snapshot, 0).await.unwrap();
    let applied = report.applied.expect("scaled up");
    // Five pods want five nodes; MaxSize leaves two (moto would accept more).
    assert_eq!((applied.from, applied.to), (1, 3));
    assert_eq!(applied.pods.len(), 2);
    assert_eq!(report.plan.unhelped.len(), 3);
    assert_eq!(desired(&asg, "prod-general").await, 3);

    // The same state again: the new nodes are on their way and the group is
    // at MaxSize, so nothing is written.
    let again = c.iteration(&snapshot, 60).await.unwrap();
    assert_eq!(again.applied, None);
    assert_eq!(again.plan.on_upcoming, 2);
    assert_eq!(desired(&asg, "prod-general").await, 3);
}

#[tokio::test]
async fn cluster_caps_and_idempotence() {
    let moto = Moto::start().await.unwrap();
    let asg = moto.autoscaling_client();
    cluster_group(&asg, "prod-general", "m5.xlarge", (0, 0, 20)).await;
    // 12 cores allowed: three 4-core nodes, whatever the pods want.
    let mut c = controller(&moto, &["--max-cores-total", "12"]);
    let snapshot = Snapshot {
        pending: pods(6, 3000),
        ..Snapshot::default()
    };
    let first = c.iteration(&snapshot, 0).await.unwrap();
    assert_eq!(first.applied.map(|u| (u.from, u.to)), Some((0, 3)));
    assert_eq!(desired(&asg, "prod-general").await, 3);
    let second = c.iteration(&snapshot, 30).await.unwrap();
    assert_eq!(second.applied, None);
    assert_eq!(
        serde_json::to_value(&second.plan.skipped["prod-general"]).unwrap(),
        json!({"reason": "clusterCap", "flag": "--max-cores-total"})
    );
    assert_eq!(desired(&asg, "prod-general").await, 3);

    // Expendable pods alone never scale up.
    let mut low = pods(3, 1000);
    for p in &mut low {
        p.priority = -11;
    }
    let mut fresh = controller(&moto, &[]);
    let report = fresh
        .iteration(
            &Snapshot {
                pending: low,
                ..Snapshot::default()
            },
            0,
        )
        .await
        .unwrap();
    assert_eq!((report.plan.expendable, report.applied), (3, None));
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let moto = Moto::start().await.unwrap();
    let asg = moto.autoscaling_client();
    cluster_group(&asg, "prod-general", "m5.xlarge", (0, 0, 10)).await;
    let mut c = controller(&moto, &["--dry-run"]);
    let report = c.iteration(&pending(pods(2, 1000)), 0).await.unwrap();
    assert_eq!(report.plan.scale_up.as_ref().map(|u| u.to), Some(1));
    assert_eq!(report.applied, None);
    assert!(report.dry_run);
    assert_eq!(desired(&asg, "prod-general").await, 0);
}

#[tokio::test]
async fn aws_errors_name_the_call() {
    let moto = Moto::start().await.unwrap();
    let client = AsgClient::new(&moto.sdk_config());
    let err = client.set_desired("no-such-group", 3).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("SetDesiredCapacity: "), "{text}");
    assert!(matches!(err, AwsError::Service { .. }), "{err:?}");
    assert_eq!(err.label(), "service");

    // Nothing listens there: a transport error, after the retries.
    let dead = aws_sdk_autoscaling::config::Builder::from(&moto.sdk_config())
        .endpoint_url("http://127.0.0.1:9")
        .retry_config(tailor_expander::asg::retry_config(2))
        .build();
    let err = AsgClient::from_clients(
        aws_sdk_autoscaling::Client::from_conf(dead),
        aws_sdk_ec2::Client::new(&moto.sdk_config()),
    )
    .discover(CLUSTER)
    .await
    .unwrap_err();
    assert_eq!(err.label(), "transport");
    assert!(
        err.to_string().starts_with("DescribeAutoScalingGroups: "),
        "{err}"
    );
}

#[tokio::test]
async fn bad_configuration_is_named() {
    let bad = fixture("bad-catalog.csv");
    let a = args(&["--catalog", bad.to_str().unwrap()]);
    let config = tailor_expander::asg::sdk_config(&tailor_expander::asg::AwsOptions {
        endpoint_url: Some("http://127.0.0.1:9".into()),
        region: Some("us-east-1".into()),
        max_attempts: 1,
        operation_timeout: std::time::Duration::from_secs(5),
    })
    .await;
    let err = Controller::new(&a, AsgClient::new(&config), AwsMetrics::default()).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("bad-catalog.csv"), "{text}");
    assert!(text.contains("line"), "{text}");
    let err = Controller::new(
        &args(&["--expander", "least-waste,bogus"]),
        AsgClient::new(&config),
        AwsMetrics::default(),
    )
    .unwrap_err();
    assert!(format!("{err:#}").starts_with("--expander: "), "{err:#}");
    let no_catalog = match Cli::try_parse_from([
        "tailor-expander",
        "aws",
        "--cluster-name",
        "x",
        "--expander",
        "price",
    ])
    .unwrap()
    .command
    {
        Command::Aws(a) => *a,
        other => panic!("{other:?}"),
    };
    let err =
        Controller::new(&no_catalog, AsgClient::new(&config), AwsMetrics::default()).unwrap_err();
    assert!(
        format!("{err:#}").starts_with("--catalog: is required"),
        "{err:#}"
    );
}

fn write(dir: &tempfile::TempDir, name: &str, value: &Value) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path
}

/// The binary with files for pods and nodes: `--dry-run` prints the decision
/// and leaves the group alone; without it the group grows.
#[tokio::test]
async fn binary_dry_run_then_apply() {
    let moto = Moto::start().await.unwrap();
    let asg = moto.autoscaling_client();
    cluster_group(&asg, "prod-general", "m5.xlarge", (0, 0, 10)).await;
    cluster_group(&asg, "prod-compute", "c6i.xlarge", (0, 0, 10)).await;
    let dir = tempfile::tempdir().unwrap();
    let unschedulable =
        json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"});
    let pod = |name: &str| {
        json!({
            "metadata": {"name": name, "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "6Gi"}}}]},
            "status": {"phase": "Pending", "conditions": [unschedulable]}
        })
    };
    let pods = write(
        &dir,
        "pods.json",
        &json!({"kind": "PodList", "items": [pod("a"), pod("b")]}),
    );
    let nodes = write(
        &dir,
        "nodes.json",
        &json!({"kind": "NodeList", "items": []}),
    );
    let run = |dry: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tailor-expander"));
        cmd.args([
            "aws",
            "--cluster-name",
            CLUSTER,
            "--expander",
            "least-waste",
        ])
        .arg("--catalog")
        .arg(fixture("catalog.csv"))
        .arg("--pods")
        .arg(&pods)
        .arg("--nodes")
        .arg(&nodes)
        .args([
            "--aws-endpoint-url",
            moto.endpoint(),
            "--aws-region",
            "us-east-1",
        ])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE");
        if dry {
            cmd.arg("--dry-run");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("testing"),
            "credentials never logged"
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let report = run(true);
    // Two 3-core, 6 GiB pods, one per node either way: c6i.xlarge (4 cores,
    // 8 GiB) wastes 0.25 + 0.25, m5.xlarge (4 cores, 16 GiB) 0.25 + 0.625.
    assert_eq!(
        report["plan"]["scaleUp"],
        json!({"group": "prod-compute", "from": 0, "to": 2, "pods": ["shop/a", "shop/b"]})
    );
    assert_eq!(report["applied"], Value::Null);
    assert_eq!(report["dryRun"], json!(true));
    assert_eq!(desired(&asg, "prod-compute").await, 0);
    let report = run(false);
    assert_eq!(report["applied"]["to"], json!(2));
    assert_eq!(desired(&asg, "prod-compute").await, 2);
    assert_eq!(desired(&asg, "prod-general").await, 0);
}
