//! Cost placement (beyond upstream): pods that say they tolerate
//! interruption (annotation `tailor.dev/interruption-tolerant: "true"` on
//! the pod or on a controller in its owner chain) get tolerations for spot
//! taints and a *preferred* node affinity for spot capacity, so the
//! scheduler picks spot nodes when there are any and falls back to
//! on-demand otherwise. Off by default. A pod that already says something
//! about a key (a toleration, a node affinity term or a nodeSelector entry
//! on it) keeps what it says.

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, PreferredSchedulingTerm, Toleration,
};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tailor_core::admission::PatchOperation;

/// The annotation that opts a pod (or its owner) in.
pub const INTERRUPTION_TOLERANT_ANNOTATION: &str = "tailor.dev/interruption-tolerant";

/// One preferred node affinity term: `key In values`, with a weight.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preference {
    /// Node label key (`karpenter.sh/capacity-type`).
    pub key: String,
    /// Accepted values (`["spot"]`).
    pub values: Vec<String>,
    /// Scheduler weight, 1–100.
    pub weight: i32,
}

/// The cost placement configuration (YAML, camelCase).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlacementConfig {
    /// Off unless set.
    #[serde(default)]
    pub enabled: bool,
    /// The opt-in annotation; its value must be `"true"`.
    #[serde(default = "default_annotation")]
    pub annotation: String,
    /// Tolerations added (Kubernetes `Toleration` objects; each needs a key).
    #[serde(default = "default_tolerations")]
    pub tolerations: Vec<Toleration>,
    /// Preferred node affinity terms added.
    #[serde(default = "default_preferences")]
    pub preferences: Vec<Preference>,
}

fn default_annotation() -> String {
    INTERRUPTION_TOLERANT_ANNOTATION.to_owned()
}

fn spot_toleration(key: &str, value: &str) -> Toleration {
    Toleration {
        key: Some(key.to_owned()),
        operator: Some("Equal".to_owned()),
        value: Some(value.to_owned()),
        effect: Some("NoSchedule".to_owned()),
        toleration_seconds: None,
    }
}

/// Tolerations for spot taints on Karpenter and EKS managed node groups.
fn default_tolerations() -> Vec<Toleration> {
    vec![
        spot_toleration("karpenter.sh/capacity-type", "spot"),
        spot_toleration("eks.amazonaws.com/capacityType", "SPOT"),
    ]
}

/// Prefer the spot capacity labels of Karpenter and EKS managed node groups.
fn default_preferences() -> Vec<Preference> {
    vec![
        Preference {
            key: "karpenter.sh/capacity-type".to_owned(),
            values: vec!["spot".to_owned()],
            weight: 100,
        },
        Preference {
            key: "eks.amazonaws.com/capacityType".to_owned(),
            values: vec!["SPOT".to_owned()],
            weight: 100,
        },
    ]
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig {
            enabled: false,
            annotation: default_annotation(),
            tolerations: default_tolerations(),
            preferences: default_preferences(),
        }
    }
}

/// A placement configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlacementConfigError {
    /// The file could not be read.
    #[error("cannot read placement config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The YAML is malformed or has unknown fields.
    #[error("placement config {source_name}: {source}")]
    Yaml {
        /// Where the text came from.
        source_name: String,
        /// The parser's message (with line and column).
        source: serde_yaml::Error,
    },
    /// A field has a value that cannot work.
    #[error("placement config {source_name}: {field}: {reason}")]
    Invalid {
        /// Where the text came from.
        source_name: String,
        /// The field (`preferences[1].weight`).
        field: String,
        /// Why.
        reason: String,
    },
}

impl PlacementConfig {
    /// Parses and validates YAML text; `source_name` names it in errors.
    ///
    /// # Errors
    /// Malformed YAML, unknown fields, or invalid values (see [`Self::validate`]).
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Self, PlacementConfigError> {
        let config: PlacementConfig =
            serde_yaml::from_str(text).map_err(|source| PlacementConfigError::Yaml {
                source_name: source_name.to_owned(),
                source,
            })?;
        config.validate(source_name)?;
        Ok(config)
    }

    /// Reads, parses and validates a YAML file.
    ///
    /// # Errors
    /// As [`Self::from_yaml`], or the file cannot be read.
    pub fn from_file(path: &Path) -> Result<Self, PlacementConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlacementConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Checks values: a non-empty annotation; every toleration has a key
    /// (needed to respect the pod's own); `Exists` tolerations carry no
    /// value; preferences have a key, values and a weight in 1–100.
    ///
    /// # Errors
    /// The first invalid field.
    pub fn validate(&self, source_name: &str) -> Result<(), PlacementConfigError> {
        let invalid = |field: String, reason: &str| {
            Err(PlacementConfigError::Invalid {
                source_name: source_name.to_owned(),
                field,
                reason: reason.to_owned(),
            })
        };
        if self.annotation.is_empty() {
            return invalid("annotation".to_owned(), "must not be empty");
        }
        for (i, t) in self.tolerations.iter().enumerate() {
            if t.key.as_deref().unwrap_or_default().is_empty() {
                return invalid(format!("tolerations[{i}].key"), "must not be empty");
            }
            match t.operator.as_deref() {
                None | Some("Equal") => {}
                Some("Exists") if t.value.as_deref().unwrap_or_default().is_empty() => {}
                Some("Exists") => {
                    return invalid(
                        format!("tolerations[{i}].value"),
                        "must be empty when operator is Exists",
                    );
                }
                Some(_) => {
                    return invalid(
                        format!("tolerations[{i}].operator"),
                        "must be Equal or Exists",
                    );
                }
            }
        }
        for (i, p) in self.preferences.iter().enumerate() {
            if p.key.is_empty() {
                return invalid(format!("preferences[{i}].key"), "must not be empty");
            }
            if p.values.is_empty() {
                return invalid(format!("preferences[{i}].values"), "must not be empty");
            }
            if !(1..=100).contains(&p.weight) {
                return invalid(format!("preferences[{i}].weight"), "must be within 1..=100");
            }
        }
        Ok(())
    }
}

/// True when the pod (or its owner) opted in: `annotation_value` is the
/// nearest value of the configured annotation.
#[must_use]
pub fn opted_in(config: &PlacementConfig, annotation_value: Option<&str>) -> bool {
    config.enabled && annotation_value == Some("true")
}

fn node_affinity_keys(spec: &PodSpec) -> Vec<&str> {
    let mut keys = Vec::new();
    if let Some(selector) = &spec.node_selector {
        keys.extend(selector.keys().map(String::as_str));
    }
    let Some(node) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
    else {
        return keys;
    };
    let mut terms: Vec<&NodeSelectorTerm> = Vec::new();
    if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
        terms.extend(required.node_selector_terms.iter());
    }
    if let Some(preferred) = &node.preferred_during_scheduling_ignored_during_execution {
        terms.extend(preferred.iter().map(|p| &p.preference));
    }
    for term in terms {
        for list in [&term.match_expressions, &term.match_fields] {
            keys.extend(list.iter().flatten().map(|e| e.key.as_str()));
        }
    }
    keys
}

fn add(path: &str, value: serde_json::Value) -> PatchOperation {
    PatchOperation {
        op: "add".to_owned(),
        path: path.to_owned(),
        value,
    }
}

/// The JSON patch operations that place an opted-in pod: tolerations and
/// preferred node affinity terms for every configured key the pod does
/// not already mention. Empty when the pod has no spec or says everything.
///
/// # Errors
/// Serialising a configured toleration or term failed (not expected).
pub fn placement_patch(
    config: &PlacementConfig,
    pod: &Pod,
) -> Result<Vec<PatchOperation>, serde_json::Error> {
    let Some(spec) = &pod.spec else {
        return Ok(Vec::new());
    };
    let mut ops = Vec::new();

    let existing = spec.tolerations.as_deref().unwrap_or_default();
    // A key-less `Exists` toleration already tolerates every taint.
    let tolerates_all = existing.iter().any(|t| {
        t.key.as_deref().unwrap_or_default().is_empty() && t.operator.as_deref() == Some("Exists")
    });
    if !tolerates_all {
        let new: Vec<&Toleration> = config
            .tolerations
            .iter()
            .filter(|t| !existing.iter().any(|e| e.key == t.key))
            .collect();
        if spec.tolerations.is_none() && !new.is_empty() {
            ops.push(add("/spec/tolerations", serde_json::to_value(&new)?));
        } else {
            for t in new {
                ops.push(add("/spec/tolerations/-", serde_json::to_value(t)?));
            }
        }
    }

    let said = node_affinity_keys(spec);
    let terms = config
        .preferences
        .iter()
        .filter(|p| !said.contains(&p.key.as_str()))
        .map(|p| PreferredSchedulingTerm {
            weight: p.weight,
            preference: NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: p.key.clone(),
                    operator: "In".to_owned(),
                    values: Some(p.values.clone()),
                }]),
                match_fields: None,
            },
        })
        .collect::<Vec<_>>();
    if terms.is_empty() {
        return Ok(ops);
    }
    let node_affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref());
    let preferred = node_affinity.and_then(|n| {
        n.preferred_during_scheduling_ignored_during_execution
            .as_ref()
    });
    const PREFERRED: &str = "preferredDuringSchedulingIgnoredDuringExecution";
    if spec.affinity.is_none() {
        let value = serde_json::json!({"nodeAffinity": {PREFERRED: terms}});
        ops.push(add("/spec/affinity", value));
    } else if node_affinity.is_none() {
        let value = serde_json::json!({PREFERRED: terms});
        ops.push(add("/spec/affinity/nodeAffinity", value));
    } else if preferred.is_none() {
        let path = format!("/spec/affinity/nodeAffinity/{PREFERRED}");
        ops.push(add(&path, serde_json::to_value(&terms)?));
    } else {
        let path = format!("/spec/affinity/nodeAffinity/{PREFERRED}/-");
        for term in &terms {
            ops.push(add(&path, serde_json::to_value(term)?));
        }
    }
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
            .unwrap()
    }

    fn enabled() -> PlacementConfig {
        PlacementConfig {
            enabled: true,
            ..PlacementConfig::default()
        }
    }

    fn ops_json(ops: &[PatchOperation]) -> serde_json::Value {
        serde_json::to_value(ops).unwrap()
    }

    /// Applies `ops` to the pod JSON (add only), as the API server would.
    fn apply(mut doc: serde_json::Value, ops: &[PatchOperation]) -> serde_json::Value {
        for op in ops {
            assert_eq!(op.op, "add");
            let (parent, last) = op.path.rsplit_once('/').unwrap();
            let target = doc.pointer_mut(parent).unwrap();
            if last == "-" {
                target.as_array_mut().unwrap().push(op.value.clone());
            } else {
                target[last] = op.value.clone();
            }
        }
        doc
    }

    #[test]
    fn off_by_default() {
        let config = PlacementConfig::default();
        assert!(!config.enabled);
        assert!(!opted_in(&config, Some("true")));
        assert!(opted_in(&enabled(), Some("true")));
        assert!(!opted_in(&enabled(), Some("True ")));
        assert!(!opted_in(&enabled(), Some("false")));
        assert!(!opted_in(&enabled(), None));
    }

    #[test]
    fn bare_pod_gets_both_tolerations_and_both_preferences() {
        let ops = placement_patch(&enabled(), &pod(serde_json::json!({"containers": []}))).unwrap();
        assert_eq!(
            ops_json(&ops),
            serde_json::json!([
                {"op": "add", "path": "/spec/tolerations", "value": [
                    {"key": "karpenter.sh/capacity-type", "operator": "Equal", "value": "spot", "effect": "NoSchedule"},
                    {"key": "eks.amazonaws.com/capacityType", "operator": "Equal", "value": "SPOT", "effect": "NoSchedule"}
                ]},
                {"op": "add", "path": "/spec/affinity", "value": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                    {"weight": 100, "preference": {"matchExpressions": [{"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]}]}},
                    {"weight": 100, "preference": {"matchExpressions": [{"key": "eks.amazonaws.com/capacityType", "operator": "In", "values": ["SPOT"]}]}}
                ]}}}
            ])
        );
    }

    #[rstest]
    #[case::appends_to_existing_tolerations(
        serde_json::json!({"containers": [], "tolerations": [{"key": "dedicated", "operator": "Exists"}]}),
        2, 2
    )]
    #[case::keeps_own_toleration_on_same_key(
        serde_json::json!({"containers": [], "tolerations": [{"key": "karpenter.sh/capacity-type", "operator": "Equal", "value": "on-demand"}]}),
        1, 2
    )]
    #[case::tolerate_everything_adds_none(
        serde_json::json!({"containers": [], "tolerations": [{"operator": "Exists"}]}),
        0, 2
    )]
    #[case::node_selector_says_otherwise(
        serde_json::json!({"containers": [], "nodeSelector": {"karpenter.sh/capacity-type": "on-demand"}}),
        2, 1
    )]
    #[case::required_affinity_says_otherwise(
        serde_json::json!({"containers": [], "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "eks.amazonaws.com/capacityType", "operator": "In", "values": ["ON_DEMAND"]}]}]}}}}),
        2, 1
    )]
    #[case::preferred_affinity_says_otherwise(
        serde_json::json!({"containers": [], "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "preference": {"matchExpressions": [{"key": "karpenter.sh/capacity-type", "operator": "NotIn", "values": ["spot"]}]}}]}}}),
        2, 1
    )]
    #[case::pod_affinity_only(
        serde_json::json!({"containers": [], "affinity": {"podAntiAffinity": {}}}),
        2, 2
    )]
    #[case::everything_said(
        serde_json::json!({"containers": [], "tolerations": [{"operator": "Exists"}],
            "nodeSelector": {"karpenter.sh/capacity-type": "on-demand", "eks.amazonaws.com/capacityType": "ON_DEMAND"}}),
        0, 0
    )]
    fn respects_what_the_pod_already_says(
        #[case] spec: serde_json::Value,
        #[case] tolerations_added: usize,
        #[case] preferences_added: usize,
    ) {
        let before_doc = serde_json::json!({"metadata": {"name": "p"}, "spec": spec.clone()});
        let p = pod(spec);
        let before: Pod = p.clone();
        let ops = placement_patch(&enabled(), &p).unwrap();
        let after: Pod = serde_json::from_value(apply(before_doc, &ops)).unwrap();
        let count = |p: &Pod| {
            let s = p.spec.as_ref().unwrap();
            let tolerations = s.tolerations.as_ref().map_or(0, Vec::len);
            let preferred = s
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|n| {
                    n.preferred_during_scheduling_ignored_during_execution
                        .as_ref()
                })
                .map_or(0, Vec::len);
            (tolerations, preferred)
        };
        let (t0, p0) = count(&before);
        let (t1, p1) = count(&after);
        assert_eq!(t1 - t0, tolerations_added, "{ops:?}");
        assert_eq!(p1 - p0, preferences_added, "{ops:?}");
        // What the pod had is still there, unchanged and first.
        let spec_before = before.spec.unwrap();
        let spec_after = after.spec.unwrap();
        for (i, t) in spec_before.tolerations.iter().flatten().enumerate() {
            assert_eq!(&spec_after.tolerations.as_ref().unwrap()[i], t);
        }
        assert_eq!(spec_before.node_selector, spec_after.node_selector);
        assert_eq!(
            spec_before
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|n| n
                    .required_during_scheduling_ignored_during_execution
                    .clone()),
            spec_after
                .affinity
                .as_ref()
                .and_then(|a| a.node_affinity.as_ref())
                .and_then(|n| n
                    .required_during_scheduling_ignored_during_execution
                    .clone()),
        );
    }

    #[test]
    fn yaml_config_overrides_defaults() {
        let config = PlacementConfig::from_yaml(
            "enabled: true\ntolerations:\n- key: spot\n  operator: Exists\n  effect: NoSchedule\npreferences:\n- key: node.kubernetes.io/lifecycle\n  values: [spot]\n  weight: 50\n",
            "test.yaml",
        )
        .unwrap();
        assert!(config.enabled);
        assert_eq!(config.annotation, INTERRUPTION_TOLERANT_ANNOTATION);
        assert_eq!(config.tolerations.len(), 1);
        assert_eq!(config.preferences[0].weight, 50);
        let empty = PlacementConfig::from_yaml("{}", "empty.yaml").unwrap();
        assert_eq!(empty, PlacementConfig::default());
    }

    #[rstest]
    #[case::unknown_field("enabeld: true", "unknown field `enabeld`")]
    #[case::not_yaml("enabled: [", "bad.yaml")]
    #[case::weight(
        "preferences:\n- {key: a, values: [b], weight: 0}",
        "preferences[0].weight"
    )]
    #[case::no_values(
        "preferences:\n- {key: a, values: [], weight: 1}",
        "preferences[0].values"
    )]
    #[case::no_key("tolerations:\n- {operator: Exists}", "tolerations[0].key")]
    #[case::exists_with_value(
        "tolerations:\n- {key: a, operator: Exists, value: b}",
        "tolerations[0].value"
    )]
    #[case::bad_operator("tolerations:\n- {key: a, operator: In}", "tolerations[0].operator")]
    #[case::empty_annotation("annotation: ''", "annotation")]
    fn invalid_config_names_the_field(#[case] yaml: &str, #[case] part: &str) {
        let err = PlacementConfig::from_yaml(yaml, "bad.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bad.yaml"), "{text}");
        assert!(text.contains(part), "{text} should mention {part}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = PlacementConfig::from_file(Path::new("/nonexistent/placement.yaml")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/placement.yaml"),
            "{err}"
        );
    }
}
