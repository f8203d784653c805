//! The AWS mode when AWS rate-limits it: a real moto behind testkit's
//! `ThrottlingProxy`, which answers chosen actions with AWS's own throttling
//! error. Throttled calls are retried with exponential backoff and the
//! scale-up is written exactly once; throttling that outlasts the retries
//! ends the loop with an error naming the call, and nothing is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_autoscaling::types::Tag;
use clap::Parser as _;
use std::path::PathBuf;
use std::time::Duration;
use tailor_core::resources::Resources;
use tailor_core::scheduling::PodRequest;
use tailor_expander::asg::{AsgClient, AwsError, retry_config};
use tailor_expander::aws::{AwsArgs, AwsMetrics, Controller};
use tailor_expander::cli::{Cli, Command};
use tailor_expander::cluster::Snapshot;
use tailor_testkit::{Call, Moto, ThrottlingProxy};

const CLUSTER: &str = "prod";
const GIB: i64 = 1 << 30;
const DESCRIBE: &str = "DescribeAutoScalingGroups";
const SET: &str = "SetDesiredCapacity";

/// At least the backoff schedule, attempt after attempt: with the retry
/// configuration's jitter off the SDK sleeps exactly 100 ms, 200 ms, 400 ms…
/// before each retry, so the gaps between the calls the proxy sees are at
/// least that (and more by however long a call takes).
fn assert_backed_off(gaps: &[Duration], schedule_ms: &[u64]) {
    assert_eq!(gaps.len(), schedule_ms.len(), "{gaps:?}");
    for (gap, &ms) in gaps.iter().zip(schedule_ms) {
        assert!(
            *gap >= Duration::from_millis(ms),
            "{gaps:?} vs {schedule_ms:?} ms"
        );
    }
}

struct Setup {
    moto: Moto,
    proxy: ThrottlingProxy,
    metrics: AwsMetrics,
    controller: Controller,
}

/// moto with one tagged group (4-core nodes), the proxy in front, and a
/// controller whose client goes through the proxy with the production retry
/// configuration (`--aws-max-attempts`), jitter off.
async fn setup(max_attempts: u32) -> Setup {
    let moto = Moto::start().await.unwrap();
    let asg = moto.autoscaling_client();
    asg.create_launch_configuration()
        .launch_configuration_name("general-lc")
        .image_id("ami-12c6146b")
        .instance_type("m5.xlarge")
        .send()
        .await
        .unwrap();
    let tag = |k: &str, v: &str| {
        Tag::builder()
            .key(k)
            .value(v)
            .propagate_at_launch(false)
            .build()
    };
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("prod-general")
        .launch_configuration_name("general-lc")
        .min_size(0)
        .max_size(10)
        .desired_capacity(0)
        .availability_zones("us-east-1a")
        .tags(tag("k8s.io/cluster-autoscaler/enabled", "true"))
        .tags(tag("k8s.io/cluster-autoscaler/prod", "owned"))
        .send()
        .await
        .unwrap();
    let proxy = ThrottlingProxy::start(moto.endpoint()).await.unwrap();
    let config = aws_sdk_autoscaling::config::Builder::from(&moto.sdk_config())
        .endpoint_url(proxy.endpoint())
        .retry_config(retry_config(max_attempts).with_use_static_exponential_base(true))
        .build();
    let catalog = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catalog.csv");
    let args: AwsArgs = match Cli::try_parse_from([
        "tailor-expander",
        "aws",
        "--cluster-name",
        CLUSTER,
        "--expander",
        "least-waste",
        "--catalog",
        catalog.to_str().unwrap(),
    ])
    .unwrap()
    .command
    {
        Command::Aws(a) => *a,
        other => panic!("{other:?}"),
    };
    let metrics = AwsMetrics::default();
    let controller = Controller::new(
        &args,
        AsgClient::from_clients(
            aws_sdk_autoscaling::Client::from_conf(config),
            aws_sdk_ec2::Client::new(&moto.sdk_config()),
        ),
        metrics.clone(),
    )
    .unwrap();
    Setup {
        moto,
        proxy,
        metrics,
        controller,
    }
}

/// Three pending 3-core pods: three 4-core nodes.
fn pending() -> Snapshot {
    Snapshot {
        pending: (0..3)
            .map(|i| PodRequest::new(format!("shop/web-{i}"), Resources::new(3000, GIB)))
            .collect(),
        ..Snapshot::default()
    }
}

async fn desired(moto: &Moto) -> i32 {
    moto.autoscaling_client()
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("prod-general")
        .send()
        .await
        .unwrap()
        .auto_scaling_groups()[0]
        .desired_capacity()
        .unwrap()
}

fn calls(attempts: &[(u32, bool)]) -> Vec<Call> {
    attempts
        .iter()
        .map(|&(attempt, throttled)| Call {
            attempt: Some(attempt),
            throttled,
        })
        .collect()
}

fn aws_errors(metrics: &AwsMetrics, operation: &str) -> u64 {
    metrics
        .aws_errors
        .get_or_create(&vec![
            ("operation".to_owned(), operation.to_owned()),
            ("error".to_owned(), "throttled".to_owned()),
        ])
        .get()
}

#[tokio::test]
async fn throttled_calls_are_retried_with_backoff_and_applied_once() {
    let mut s = setup(5).await;
    s.proxy.throttle(DESCRIBE, 2);
    s.proxy.throttle(SET, 3);
    let report = s.controller.iteration(&pending(), 0).await.unwrap();
    let applied = report.applied.expect("scaled up");
    assert_eq!((applied.from, applied.to), (0, 3));
    assert_eq!(desired(&s.moto).await, 3);
    // Each throttled attempt was retried, as a retry of the same call
    // (the SDK numbers its attempts), after an exponentially growing wait.
    assert_eq!(
        s.proxy.calls(DESCRIBE),
        calls(&[(1, true), (2, true), (3, false)])
    );
    assert_eq!(
        s.proxy.calls(SET),
        calls(&[(1, true), (2, true), (3, true), (4, false)])
    );
    assert_eq!(s.proxy.forwarded(SET), 1, "written exactly once");
    assert_backed_off(&s.proxy.gaps(DESCRIBE), &[100, 200]);
    assert_backed_off(&s.proxy.gaps(SET), &[100, 200, 400]);
    assert_eq!(aws_errors(&s.metrics, SET), 0);

    // The next loop sees the nodes on their way and writes nothing.
    let again = s.controller.iteration(&pending(), 10).await.unwrap();
    assert_eq!(again.applied, None);
    assert_eq!(s.proxy.calls(SET).len(), 4);
    assert_eq!(desired(&s.moto).await, 3);
}

#[tokio::test]
async fn persistent_throttling_is_a_clear_error_and_writes_nothing() {
    let mut s = setup(3).await;
    s.proxy.throttle_always(SET);
    let err = s.controller.iteration(&pending(), 0).await.unwrap_err();
    assert!(matches!(err, AwsError::Throttled { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "SetDesiredCapacity: throttled by AWS through every retry (Throttling: Rate exceeded); \
         lower the loop frequency or raise --aws-max-attempts"
    );
    assert_eq!(err.label(), "throttled");
    assert_eq!(
        s.proxy.calls(SET),
        calls(&[(1, true), (2, true), (3, true)])
    );
    assert_eq!(s.proxy.forwarded(SET), 0);
    assert_backed_off(&s.proxy.gaps(SET), &[100, 200]);
    assert_eq!(desired(&s.moto).await, 0, "no partial write");
    assert_eq!(aws_errors(&s.metrics, SET), 1);

    // Throttled discovery: the loop stops before deciding anything.
    let mut s = setup(2).await;
    s.proxy.throttle_always(DESCRIBE);
    let err = s.controller.iteration(&pending(), 0).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("DescribeAutoScalingGroups: throttled by AWS through every retry"),
        "{err}"
    );
    assert!(s.proxy.calls(SET).is_empty());
    assert_eq!(desired(&s.moto).await, 0);
    assert_eq!(aws_errors(&s.metrics, DESCRIBE), 1);
}
