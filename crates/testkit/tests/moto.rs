#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Real moto_server: an Auto Scaling group created and described back.

use std::path::Path;

use aws_sdk_autoscaling::types::Tag;
use tailor_testkit::{Moto, REGION};

#[tokio::test]
async fn asg_round_trips_through_moto() {
    let moto = Moto::start().await.unwrap();
    let config = moto.sdk_config();
    assert_eq!(config.region().map(|r| r.as_ref()), Some(REGION));
    let asg = moto.autoscaling_client();

    asg.create_launch_configuration()
        .launch_configuration_name("tailor-lc")
        .image_id("ami-12c6146b")
        .instance_type("m5.large")
        .send()
        .await
        .unwrap();
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("tailor-workers")
        .launch_configuration_name("tailor-lc")
        .min_size(1)
        .max_size(5)
        .desired_capacity(2)
        .availability_zones("us-east-1a")
        .tags(
            Tag::builder()
                .key("k8s.io/cluster-autoscaler/enabled")
                .value("true")
                .propagate_at_launch(true)
                .build(),
        )
        .tags(
            Tag::builder()
                .key("k8s.io/cluster-autoscaler/node-template/label/pool")
                .value("workers")
                .propagate_at_launch(false)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let described = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("tailor-workers")
        .send()
        .await
        .unwrap();
    let groups = described.auto_scaling_groups();
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(group.auto_scaling_group_name(), Some("tailor-workers"));
    assert_eq!(group.launch_configuration_name(), Some("tailor-lc"));
    assert_eq!(
        (group.min_size(), group.max_size(), group.desired_capacity()),
        (Some(1), Some(5), Some(2))
    );
    let mut tags: Vec<(&str, &str)> = group
        .tags()
        .iter()
        .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()))
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        vec![
            ("k8s.io/cluster-autoscaler/enabled", "true"),
            (
                "k8s.io/cluster-autoscaler/node-template/label/pool",
                "workers"
            ),
        ]
    );

    // Desired capacity changes are visible too (moto enforces no bounds; callers must).
    asg.set_desired_capacity()
        .auto_scaling_group_name("tailor-workers")
        .desired_capacity(4)
        .send()
        .await
        .unwrap();
    let described = asg
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("tailor-workers")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.auto_scaling_groups()[0].desired_capacity(),
        Some(4)
    );
}

#[tokio::test]
async fn drop_stops_moto() {
    let moto = Moto::start().await.unwrap();
    let pid = moto.pid();
    let endpoint = moto.endpoint().to_owned();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(moto);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still present"
    );
    assert!(
        reqwest::get(format!("{endpoint}/moto-api/data.json"))
            .await
            .is_err()
    );
}
