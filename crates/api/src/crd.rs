//! The `CustomResourceDefinition`s generated from our types.
//!
//! They match upstream's names (group `autoscaling.k8s.io`, version `v1`,
//! plurals, short names `vpa` and `vpacheckpoint`), scope (`Namespaced`) and
//! subresources: the VPA has a status subresource, the checkpoint has none
//! (upstream's recommender writes whole checkpoints, status included). Only
//! `v1` is generated; upstream still lists a deprecated, unserved `v1beta2`.

use crate::checkpoint::VerticalPodAutoscalerCheckpoint;
use crate::vpa::VerticalPodAutoscaler;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

/// The checkpoint fields upstream declares `nullable` (zero `metav1.Time`s,
/// which Go writes as `null`).
const CHECKPOINT_NULLABLE: [&str; 5] = [
    ".status.lastUpdateTime",
    ".status.firstSampleStart",
    ".status.lastSampleStart",
    ".status.cpuHistogram.referenceTimestamp",
    ".status.memoryHistogram.referenceTimestamp",
];

/// The `VerticalPodAutoscaler` CRD (with the status subresource and
/// upstream's printer columns).
#[must_use]
pub fn vpa_crd() -> CustomResourceDefinition {
    let mut crd = VerticalPodAutoscaler::crd();
    tidy_schema(&mut crd, &[]);
    crd
}

/// The `VerticalPodAutoscalerCheckpoint` CRD (no subresources, as upstream).
#[must_use]
pub fn checkpoint_crd() -> CustomResourceDefinition {
    let mut crd = VerticalPodAutoscalerCheckpoint::crd();
    // The derive enables a status subresource whenever the type has a status;
    // upstream's checkpoint CRD has none, and with one the status written by a
    // whole-object update would be silently dropped.
    for version in &mut crd.spec.versions {
        version.subresources = None;
    }
    tidy_schema(&mut crd, &CHECKPOINT_NULLABLE);
    crd
}

/// Removes the `nullable: true` (and `null` enum entries) that the derive
/// puts on every `Option` field, except at the paths in `keep`, and the
/// quantity descriptions inside resource lists.
///
/// Upstream's schemas are not nullable there, so the API server prunes an
/// explicit `null` instead of storing it; ours must behave the same.
fn tidy_schema(crd: &mut CustomResourceDefinition, keep: &[&str]) {
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            strip_props(schema, "", keep);
        }
    }
}

fn strip_props(props: &mut JSONSchemaProps, path: &str, keep: &[&str]) {
    if path.ends_with(".*") && props.x_kubernetes_int_or_string == Some(true) {
        // The k8s-openapi Quantity essay, repeated in every ResourceList;
        // the field itself is described one level up, as upstream does.
        props.description = None;
    }
    if !keep.contains(&path) {
        props.nullable = None;
        if let Some(values) = props.enum_.as_mut() {
            values.retain(|v| !v.0.is_null());
        }
    }
    for (name, child) in props.properties.iter_mut().flatten() {
        strip_props(child, &format!("{path}.{name}"), keep);
    }
    match props.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => strip_props(item, &format!("{path}[]"), keep),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            for item in items {
                strip_props(item, &format!("{path}[]"), keep);
            }
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = props.additional_properties.as_mut() {
        strip_props(values, &format!("{path}.*"), keep);
    }
    for branch in [&mut props.any_of, &mut props.all_of, &mut props.one_of]
        .into_iter()
        .flatten()
        .flatten()
    {
        strip_props(branch, path, keep);
    }
}

/// Both CRDs as one multi-document YAML stream, VPA first.
///
/// # Errors
/// When YAML serialization fails.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in [vpa_crd(), checkpoint_crd()] {
        out.push_str("---\n");
        for line in serde_yaml::to_string(&crd)?.lines() {
            out.push_str(&quote_yaml11_bool(line));
            out.push('\n');
        }
    }
    Ok(out)
}

/// Words that YAML 1.2 (serde_yaml) leaves bare as strings but YAML 1.1
/// readers, kubectl's among them, take as booleans.
const YAML11_BOOLS: [&str; 16] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// Quotes a bare YAML 1.1 boolean word ending a line (`- Off` → `- "Off"`),
/// so the enum value `Off` is not read as `false` by `kubectl apply`.
fn quote_yaml11_bool(line: &str) -> String {
    // Only whole values: a list item (`  - Off`) or a simple key (`  k: Off`),
    // never words inside longer text.
    if let Some((head, word)) = line.rsplit_once("- ")
        && head.trim().is_empty()
        && YAML11_BOOLS.contains(&word)
    {
        return format!("{head}- \"{word}\"");
    }
    if let Some((head, word)) = line.rsplit_once(": ")
        && !head.trim().contains([' ', '"', '\'', '#', ':'])
        && YAML11_BOOLS.contains(&word)
    {
        return format!("{head}: \"{word}\"");
    }
    line.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn schema_at<'a>(crd: &'a Value, pointer: &str) -> &'a Value {
        let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        root.pointer(pointer)
            .unwrap_or_else(|| panic!("no schema at {pointer}"))
    }

    #[test]
    fn vpa_crd_names_scope_and_subresources_match_upstream() {
        let crd = serde_json::to_value(vpa_crd()).unwrap();
        assert_eq!(
            crd["metadata"]["name"],
            "verticalpodautoscalers.autoscaling.k8s.io"
        );
        assert_eq!(
            crd["metadata"]["annotations"]["api-approved.kubernetes.io"],
            "https://github.com/kubernetes/kubernetes/pull/63797"
        );
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "autoscaling.k8s.io");
        assert_eq!(spec["scope"], "Namespaced");
        assert_eq!(spec["names"]["kind"], "VerticalPodAutoscaler");
        assert_eq!(spec["names"]["plural"], "verticalpodautoscalers");
        assert_eq!(spec["names"]["singular"], "verticalpodautoscaler");
        assert_eq!(spec["names"]["shortNames"], json!(["vpa"]));
        let versions = spec["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1);
        assert_eq!(versions[0]["name"], "v1");
        assert_eq!(versions[0]["served"], true);
        assert_eq!(versions[0]["storage"], true);
        assert_eq!(versions[0]["subresources"], json!({"status": {}}));
        let columns: Vec<&str> = versions[0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            columns,
            [
                "Mode",
                "CPU",
                "Mem",
                "Provided",
                "Age",
                "MinReplicas",
                "OOMSeconds"
            ]
        );
    }

    #[test]
    fn vpa_schema_carries_upstream_validation() {
        let crd = serde_json::to_value(vpa_crd()).unwrap();
        assert_eq!(
            schema_at(&crd, "/properties/spec/required"),
            &json!(["targetRef"])
        );
        assert_eq!(
            schema_at(
                &crd,
                "/properties/spec/properties/updatePolicy/properties/updateMode/enum"
            ),
            &json!([
                "Off",
                "Initial",
                "Recreate",
                "InPlaceOrRecreate",
                "InPlace",
                "Auto"
            ])
        );
        let policy = schema_at(
            &crd,
            "/properties/spec/properties/resourcePolicy/properties/containerPolicies/items/properties",
        );
        assert_eq!(
            policy["controlledValues"]["enum"],
            json!(["RequestsAndLimits", "RequestsOnly"])
        );
        assert_eq!(policy["mode"]["enum"], json!(["Auto", "Off"]));
        assert_eq!(
            policy["minAllowed"]["additionalProperties"]["x-kubernetes-int-or-string"],
            true
        );
        let requirement = schema_at(
            &crd,
            "/properties/spec/properties/updatePolicy/properties/evictionRequirements/items",
        );
        assert_eq!(
            requirement["properties"]["changeRequirement"]["enum"],
            json!(["TargetHigherThanRequests", "TargetLowerThanRequests"])
        );
        let rec = schema_at(
            &crd,
            "/properties/status/properties/recommendation/properties/containerRecommendations/items",
        );
        assert_eq!(rec["required"], json!(["target"]));
    }

    #[test]
    fn checkpoint_crd_matches_upstream_and_has_no_subresources() {
        let crd = serde_json::to_value(checkpoint_crd()).unwrap();
        assert_eq!(
            crd["metadata"]["name"],
            "verticalpodautoscalercheckpoints.autoscaling.k8s.io"
        );
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "autoscaling.k8s.io");
        assert_eq!(spec["scope"], "Namespaced");
        assert_eq!(spec["names"]["kind"], "VerticalPodAutoscalerCheckpoint");
        assert_eq!(spec["names"]["plural"], "verticalpodautoscalercheckpoints");
        assert_eq!(spec["names"]["shortNames"], json!(["vpacheckpoint"]));
        assert_eq!(spec["versions"][0]["name"], "v1");
        assert!(spec["versions"][0].get("subresources").is_none());
        let hist = schema_at(
            &crd,
            "/properties/status/properties/cpuHistogram/properties",
        );
        assert_eq!(hist["bucketWeights"]["type"], "object");
        assert_eq!(
            hist["bucketWeights"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert_eq!(hist["referenceTimestamp"]["nullable"], true);
        assert_eq!(hist["totalWeight"]["type"], "number");
        let status = schema_at(&crd, "/properties/status/properties");
        assert_eq!(status["lastUpdateTime"]["nullable"], true);
        assert_eq!(status["totalSamplesCount"]["type"], "integer");
    }

    /// Every `nullable` in a schema, as JSON-pointer-like paths.
    fn nullable_paths(schema: &Value, path: String, out: &mut Vec<String>) {
        if let Some(items) = schema.as_array() {
            for (i, v) in items.iter().enumerate() {
                nullable_paths(v, format!("{path}/{i}"), out);
            }
        }
        if let Some(map) = schema.as_object() {
            if map.get("nullable") == Some(&json!(true)) {
                out.push(path.clone());
            }
            if let Some(enum_) = map.get("enum") {
                assert!(!enum_.as_array().unwrap().contains(&Value::Null), "{path}");
            }
            for (k, v) in map {
                nullable_paths(v, format!("{path}/{k}"), out);
            }
        }
    }

    #[test]
    fn only_upstreams_nullable_fields_are_nullable() {
        let vpa = serde_json::to_value(vpa_crd()).unwrap();
        let mut found = Vec::new();
        nullable_paths(&vpa, String::new(), &mut found);
        assert!(found.is_empty(), "{found:?}");

        let cp = serde_json::to_value(checkpoint_crd()).unwrap();
        let mut found = Vec::new();
        nullable_paths(&cp, String::new(), &mut found);
        let prefix = "/spec/versions/0/schema/openAPIV3Schema/properties/status/properties";
        let mut expected: Vec<String> = [
            "/cpuHistogram/properties/referenceTimestamp",
            "/firstSampleStart",
            "/lastSampleStart",
            "/lastUpdateTime",
            "/memoryHistogram/properties/referenceTimestamp",
        ]
        .iter()
        .map(|p| format!("{prefix}{p}"))
        .collect();
        expected.sort();
        found.sort();
        assert_eq!(found, expected);
    }

    #[rstest::rstest]
    #[case("  - Off", "  - \"Off\"")]
    #[case("    mode: off", "    mode: \"off\"")]
    #[case("  - Auto", "  - Auto")]
    #[case("  description: turn it - Off", "  description: turn it - Off")]
    #[case("  description: a b: no", "  description: a b: no")]
    #[case("  - true", "  - true")]
    fn yaml11_booleans_are_quoted(#[case] line: &str, #[case] expected: &str) {
        assert_eq!(quote_yaml11_bool(line), expected);
    }

    #[test]
    fn generated_yaml_keeps_off_a_string_for_yaml11_readers() {
        let yaml = crds_yaml().unwrap();
        assert!(yaml.contains("- \"Off\"\n"), "Off must be quoted");
        assert!(!yaml.lines().any(|l| l.trim_end().ends_with("- Off")));
    }

    #[test]
    fn vpa_schema_has_upstream_bounds_and_cel_rules() {
        let crd = serde_json::to_value(vpa_crd()).unwrap();
        let spec = schema_at(&crd, "/properties/spec/properties");
        assert_eq!(spec["targetRef"]["x-kubernetes-map-type"], "atomic");
        assert_eq!(
            spec["updatePolicy"]["properties"]["evictAfterOOMSeconds"]["minimum"],
            1.0
        );
        let policy =
            &spec["resourcePolicy"]["properties"]["containerPolicies"]["items"]["properties"];
        assert_eq!(policy["memoryAggregationIntervalCount"]["minimum"], 1.0);
        assert_eq!(policy["memoryAggregationIntervalSeconds"]["minimum"], 1.0);
        assert!(
            policy["minAllowed"]["additionalProperties"]
                .get("description")
                .is_none()
        );
        let rules = &spec["startupBoost"]["properties"]["cpu"]["x-kubernetes-validations"];
        assert_eq!(
            rules[0]["rule"],
            "(self.type == 'Factor') == has(self.factor)"
        );
        assert_eq!(
            rules[1]["rule"],
            "(self.type == 'Quantity') == has(self.quantity)"
        );
        let status = schema_at(&crd, "/properties/status/properties");
        assert_eq!(status["observedGeneration"]["minimum"], 0.0);
        assert_eq!(
            status["conditions"]["items"]["properties"]["observedGeneration"]["minimum"],
            0.0
        );
    }

    #[test]
    fn crds_serialize_to_yaml_and_back() {
        let yaml = crds_yaml().unwrap();
        let docs: Vec<CustomResourceDefinition> = yaml
            .split("---\n")
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_yaml::from_str(d).unwrap())
            .collect();
        assert_eq!(docs, vec![vpa_crd(), checkpoint_crd()]);
    }
}
