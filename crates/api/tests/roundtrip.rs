#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Upstream-shaped objects pass through our types unchanged.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tailor_api::vpa::{ContainerScalingMode, UpdateMode};
use tailor_api::{VerticalPodAutoscaler, VerticalPodAutoscalerCheckpoint};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses YAML the way the API server sees it (as JSON), through `T`, and
/// back; returns the JSON before and after.
fn round_trip<T: DeserializeOwned + Serialize>(yaml: &str) -> (Value, Value, T) {
    let before: Value = serde_yaml::from_str(yaml).unwrap();
    let typed: T = serde_json::from_value(before.clone()).unwrap();
    let after = serde_json::to_value(&typed).unwrap();
    (before, after, typed)
}

#[rstest::rstest]
#[case("vpa-full.yaml")]
#[case("vpa-minimal.yaml")]
fn vpa_round_trips_unchanged(#[case] name: &str) {
    let (before, after, _) = round_trip::<VerticalPodAutoscaler>(&fixture(name));
    assert_eq!(after, before);
    // The typed YAML reader agrees with the JSON one.
    let direct: VerticalPodAutoscaler = serde_yaml::from_str(&fixture(name)).unwrap();
    assert_eq!(serde_json::to_value(&direct).unwrap(), before);
}

#[rstest::rstest]
#[case("checkpoint-full.yaml")]
#[case("checkpoint-empty.yaml")]
fn checkpoint_round_trips_unchanged(#[case] name: &str) {
    let (before, after, _) = round_trip::<VerticalPodAutoscalerCheckpoint>(&fixture(name));
    assert_eq!(after, before);
    let direct: VerticalPodAutoscalerCheckpoint = serde_yaml::from_str(&fixture(name)).unwrap();
    assert_eq!(serde_json::to_value(&direct).unwrap(), before);
}

#[test]
fn full_vpa_fields_are_read() {
    let (_, _, vpa) = round_trip::<VerticalPodAutoscaler>(&fixture("vpa-full.yaml"));
    let spec = &vpa.spec;
    assert_eq!(spec.target_ref.kind, "Deployment");
    assert_eq!(spec.effective_update_mode(), UpdateMode::InPlaceOrRecreate);
    assert!(spec.handled_by("tailor") && !spec.handled_by("default"));
    let policies = spec
        .resource_policy
        .as_ref()
        .unwrap()
        .container_policies
        .as_ref()
        .unwrap();
    assert_eq!(policies.len(), 3);
    assert_eq!(policies[2].mode, Some(ContainerScalingMode::Off));
    assert_eq!(
        policies[1].min_allowed.as_ref().unwrap()["cpu"].0,
        "100m".to_owned()
    );
    let status = vpa.status.as_ref().unwrap();
    let recs = status
        .recommendation
        .as_ref()
        .unwrap()
        .container_recommendations
        .as_ref()
        .unwrap();
    assert_eq!(recs[0].target["memory"].0, "262144k");
    assert_eq!(
        status.conditions.as_ref().unwrap()[1].reason.as_deref(),
        Some("EnoughHistory")
    );
}

#[test]
fn minimal_vpa_defaults() {
    let (_, after, vpa) = round_trip::<VerticalPodAutoscaler>(&fixture("vpa-minimal.yaml"));
    assert_eq!(vpa.spec.effective_update_mode(), UpdateMode::Recreate);
    assert!(vpa.spec.handled_by("default"));
    assert!(vpa.status.is_none());
    // Absent stays absent: nothing was added.
    assert_eq!(
        after["spec"],
        json!({"targetRef": {"kind": "StatefulSet", "name": "web"}})
    );
    assert!(after.get("status").is_none());
}

#[test]
fn checkpoint_fields_are_read() {
    let (_, after, cp) =
        round_trip::<VerticalPodAutoscalerCheckpoint>(&fixture("checkpoint-full.yaml"));
    let status = cp.status.as_ref().unwrap();
    let cpu = status.cpu_histogram.as_ref().unwrap();
    assert_eq!(cpu.bucket_weights.as_ref().unwrap()[&11], 10000);
    assert_eq!(cpu.total_weight, Some(18.36243852198));
    assert_eq!(status.total_samples_count, Some(72411));
    // Go writes integral floats without a fraction; so do we.
    assert_eq!(after["status"]["memoryHistogram"]["totalWeight"], json!(4));

    let (_, after, cp) =
        round_trip::<VerticalPodAutoscalerCheckpoint>(&fixture("checkpoint-empty.yaml"));
    let status = cp.status.as_ref().unwrap();
    assert_eq!(status.first_sample_start, Some(None));
    assert_eq!(
        status.cpu_histogram.as_ref().unwrap().reference_timestamp,
        Some(None)
    );
    assert!(status.total_samples_count.is_none());
    assert_eq!(after["status"]["firstSampleStart"], Value::Null);
}

#[test]
fn unknown_enum_values_are_kept_not_fatal() {
    let mut obj: Value = serde_yaml::from_str(&fixture("vpa-full.yaml")).unwrap();
    obj["spec"]["updatePolicy"]["updateMode"] = json!("Sometimes");
    obj["spec"]["resourcePolicy"]["containerPolicies"][1]["controlledValues"] = json!("LimitsOnly");
    let vpa: VerticalPodAutoscaler = serde_json::from_value(obj.clone()).unwrap();
    assert_eq!(
        vpa.spec.effective_update_mode(),
        UpdateMode::Unknown("Sometimes".into())
    );
    assert_eq!(serde_json::to_value(&vpa).unwrap(), obj);
}

#[test]
fn numeric_quantities_become_strings_as_upstream() {
    // The only normalisation: a bare-number quantity is written as a string,
    // exactly as upstream's Go types re-marshal it.
    let mut obj: Value = serde_yaml::from_str(&fixture("vpa-minimal.yaml")).unwrap();
    obj["spec"]["resourcePolicy"] =
        json!({"containerPolicies": [{"containerName": "*", "maxAllowed": {"cpu": 2}}]});
    let vpa: VerticalPodAutoscaler = serde_json::from_value(obj).unwrap();
    let after = serde_json::to_value(&vpa).unwrap();
    assert_eq!(
        after["spec"]["resourcePolicy"]["containerPolicies"][0]["maxAllowed"]["cpu"],
        json!("2")
    );
}

#[test]
fn explicit_empty_lists_are_kept() {
    let mut obj: Value = serde_yaml::from_str(&fixture("vpa-minimal.yaml")).unwrap();
    obj["spec"]["recommenders"] = json!([]);
    obj["spec"]["resourcePolicy"] = json!({"containerPolicies": []});
    obj["status"] = json!({});
    let vpa: VerticalPodAutoscaler = serde_json::from_value(obj.clone()).unwrap();
    assert!(vpa.spec.handled_by("default"));
    assert_eq!(serde_json::to_value(&vpa).unwrap(), obj);
}
