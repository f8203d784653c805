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

/// JSON pointers of every object member in `value`.
fn member_pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                member_pointers(v, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                member_pointers(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn without(value: &Value, pointer: &str) -> Value {
    let mut v = value.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let key = key.replace("~1", "/").replace("~0", "~");
    v.pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(&key);
    v
}

/// Removing any one member that upstream does not require still round-trips
/// unchanged: absent stays absent, nothing is defaulted in.
fn every_member_is_optional_or_required<T: DeserializeOwned + Serialize>(
    name: &str,
    required: &[&str],
) {
    let full: Value = serde_yaml::from_str(&fixture(name)).unwrap();
    let mut pointers = Vec::new();
    member_pointers(&full, "", &mut pointers);
    assert!(
        pointers.len() > 25,
        "{name}: only {} members",
        pointers.len()
    );
    // kube's root types always write apiVersion and kind (the API server
    // always sends them), so those two are not optional on the way out.
    for p in pointers
        .into_iter()
        .filter(|p| p != "/apiVersion" && p != "/kind")
    {
        let reduced = without(&full, &p);
        let shape: Vec<&str> = p
            .split('/')
            .map(|seg| {
                if seg.parse::<usize>().is_ok() {
                    "*"
                } else {
                    seg
                }
            })
            .collect();
        if required.contains(&shape.join("/").as_str()) {
            // Upstream's CRD requires it, so the API server never sends an
            // object without it (k8s-openapi fills some with "").
            continue;
        }
        let typed: T = serde_json::from_value(reduced.clone())
            .unwrap_or_else(|e| panic!("{name} without {p}: {e}"));
        assert_eq!(
            serde_json::to_value(&typed).unwrap(),
            reduced,
            "{name} without {p}"
        );
    }
}

#[test]
fn vpa_members_round_trip_one_removed_at_a_time() {
    every_member_is_optional_or_required::<VerticalPodAutoscaler>(
        "vpa-full.yaml",
        &[
            "/metadata",
            "/spec",
            "/spec/targetRef",
            "/spec/targetRef/kind",
            "/spec/targetRef/name",
            "/spec/recommenders/*/name",
            "/spec/updatePolicy/evictionRequirements/*/resources",
            "/spec/updatePolicy/evictionRequirements/*/changeRequirement",
            "/spec/startupBoost/cpu/type",
            "/spec/resourcePolicy/containerPolicies/*/startupBoost/cpu/type",
            "/status/recommendation/containerRecommendations/*/target",
            "/status/conditions/*/type",
            "/status/conditions/*/status",
        ],
    );
}

#[test]
fn checkpoint_members_round_trip_one_removed_at_a_time() {
    every_member_is_optional_or_required::<VerticalPodAutoscalerCheckpoint>(
        "checkpoint-full.yaml",
        &["/metadata", "/spec"],
    );
}
