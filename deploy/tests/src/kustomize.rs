//! The subset of kustomize that `deploy/` uses, so manifests are rendered and
//! checked without `kubectl` or network.
//!
//! Supported in a `kustomization.yaml`: `resources` (files and directories),
//! `patches` with a `path` to a strategic-merge patch, and `images` (`name`,
//! `newName`, `newTag`, `digest`). Any other field is an error, so the
//! manifests stay within what this renderer and `kubectl kustomize` agree on.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The file kustomize looks for in a directory.
pub const KUSTOMIZATION: &str = "kustomization.yaml";

/// Fields of a kustomization this renderer understands.
const KNOWN_FIELDS: [&str; 5] = ["apiVersion", "kind", "resources", "patches", "images"];

/// Why an overlay could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not valid YAML.
    #[error("{path}: invalid YAML: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_yaml::Error,
    },
    /// A kustomization uses something this renderer does not implement.
    #[error("{path}: unsupported {what}")]
    Unsupported {
        /// The kustomization file.
        path: PathBuf,
        /// The field or form.
        what: String,
    },
    /// A field has the wrong shape.
    #[error("{path}: {field}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Two resources with the same kind, namespace and name.
    #[error("{path}: {id} is defined twice")]
    Duplicate {
        /// The kustomization that brought in the second copy.
        path: PathBuf,
        /// `apiVersion/kind namespace/name`.
        id: String,
    },
    /// A patch matched no resource.
    #[error("{path}: patch for {id} matches no resource")]
    UnmatchedPatch {
        /// The patch file.
        path: PathBuf,
        /// `apiVersion/kind namespace/name` of the patch.
        id: String,
    },
}

/// Renders the kustomization in `dir`: its resources, patched, with images set,
/// in kustomize's default ("legacy") kind order.
///
/// # Errors
/// Unreadable or invalid files, unsupported fields, duplicates, unmatched patches.
pub fn build(dir: &Path) -> Result<Vec<Value>, KustomizeError> {
    let mut objects = build_unsorted(dir)?;
    objects.sort_by_key(order_key);
    Ok(objects)
}

/// The rendered objects as one multi-document stream of JSON objects (valid
/// YAML; JSON keeps `Off`, `on`, `no` strings from turning into booleans in
/// YAML 1.1 readers).
///
/// # Errors
/// Never in practice; serialization of plain JSON values.
pub fn to_stream(objects: &[Value]) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_json::to_string_pretty(object)?);
        out.push('\n');
    }
    Ok(out)
}

fn build_unsorted(dir: &Path) -> Result<Vec<Value>, KustomizeError> {
    let path = dir.join(KUSTOMIZATION);
    let docs = read_yaml(&path)?;
    let [kustomization] = docs.as_slice() else {
        return Err(invalid(
            &path,
            "(document)",
            "expected exactly one document",
        ));
    };
    let Some(fields) = kustomization.as_object() else {
        return Err(invalid(&path, "(document)", "expected a mapping"));
    };
    if let Some(unknown) = fields.keys().find(|k| !KNOWN_FIELDS.contains(&k.as_str())) {
        return Err(KustomizeError::Unsupported {
            path,
            what: format!("field `{unknown}`"),
        });
    }

    let mut objects: Vec<Value> = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in string_list(&path, fields, "resources")? {
        let target = dir.join(&entry);
        let loaded = if target.is_dir() {
            build_unsorted(&target)?
        } else {
            read_yaml(&target)?
        };
        for object in loaded {
            check_object(&target, &object)?;
            if !seen.insert(id(&object)) {
                return Err(KustomizeError::Duplicate {
                    path: path.clone(),
                    id: id(&object),
                });
            }
            objects.push(object);
        }
    }

    for patch in list(&path, fields, "patches")? {
        let Some(entry) = patch.as_object() else {
            return Err(invalid(&path, "patches", "each entry must be a mapping"));
        };
        if entry.keys().any(|k| k != "path") {
            return Err(KustomizeError::Unsupported {
                path,
                what: "patch form (only `path:` to a strategic-merge patch)".to_owned(),
            });
        }
        let Some(file) = entry.get("path").and_then(Value::as_str) else {
            return Err(invalid(&path, "patches[].path", "must be a string"));
        };
        apply_patch_file(&dir.join(file), &mut objects)?;
    }

    for image in list(&path, fields, "images")? {
        set_image(&path, image, &mut objects)?;
    }
    Ok(objects)
}

fn apply_patch_file(path: &Path, objects: &mut [Value]) -> Result<(), KustomizeError> {
    for patch in read_yaml(path)? {
        check_object(path, &patch)?;
        let (api_version, kind, name) = (
            str_at(&patch, &["apiVersion"]),
            str_at(&patch, &["kind"]),
            str_at(&patch, &["metadata", "name"]),
        );
        let namespace = patch.pointer("/metadata/namespace").and_then(Value::as_str);
        let target = objects.iter_mut().find(|o| {
            str_at(o, &["apiVersion"]) == api_version
                && str_at(o, &["kind"]) == kind
                && str_at(o, &["metadata", "name"]) == name
                && namespace.is_none_or(|ns| str_at(o, &["metadata", "namespace"]) == ns)
        });
        let Some(target) = target else {
            return Err(KustomizeError::UnmatchedPatch {
                path: path.to_owned(),
                id: id(&patch),
            });
        };
        strategic_merge(target, &patch, path)?;
    }
    Ok(())
}

/// The merge key of the lists a strategic-merge patch merges item by item
/// (from the Kubernetes types' `patchMergeKey`); other lists are replaced.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "env" | "volumes" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ports" => Some("containerPort"),
        _ => None,
    }
}

/// Merges `patch` into `target` the way a strategic-merge patch does for the
/// fields above: maps recursively, `null` deletes, keyed lists by key, other
/// lists and scalars replace. `$patch`-style directives are rejected.
fn strategic_merge(target: &mut Value, patch: &Value, path: &Path) -> Result<(), KustomizeError> {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (field, value) in patch {
                if field.starts_with('$') {
                    return Err(KustomizeError::Unsupported {
                        path: path.to_owned(),
                        what: format!("directive `{field}`"),
                    });
                }
                match value {
                    Value::Null => {
                        target.remove(field);
                    }
                    Value::Array(items) => match (merge_key(field), target.get_mut(field)) {
                        (Some(key), Some(Value::Array(existing))) => {
                            merge_list(existing, items, key, path)?;
                        }
                        _ => {
                            target.insert(field.clone(), value.clone());
                        }
                    },
                    Value::Object(_) => match target.get_mut(field) {
                        Some(existing @ Value::Object(_)) => {
                            strategic_merge(existing, value, path)?;
                        }
                        _ => {
                            target.insert(field.clone(), value.clone());
                        }
                    },
                    _ => {
                        target.insert(field.clone(), value.clone());
                    }
                }
            }
            Ok(())
        }
        (target, patch) => {
            *target = patch.clone();
            Ok(())
        }
    }
}

fn merge_list(
    existing: &mut Vec<Value>,
    items: &[Value],
    key: &str,
    path: &Path,
) -> Result<(), KustomizeError> {
    for item in items {
        let Some(wanted) = item.get(key) else {
            return Err(invalid(
                path,
                key,
                "every item of a merged list needs its merge key",
            ));
        };
        match existing.iter_mut().find(|e| e.get(key) == Some(wanted)) {
            Some(found) => strategic_merge(found, item, path)?,
            None => existing.push(item.clone()),
        }
    }
    Ok(())
}

/// The kustomize `images` transformer over every container of a workload.
fn set_image(path: &Path, image: &Value, objects: &mut [Value]) -> Result<(), KustomizeError> {
    let Some(spec) = image.as_object() else {
        return Err(invalid(path, "images", "each entry must be a mapping"));
    };
    if let Some(unknown) = spec
        .keys()
        .find(|k| !["name", "newName", "newTag", "digest"].contains(&k.as_str()))
    {
        return Err(KustomizeError::Unsupported {
            path: path.to_owned(),
            what: format!("images field `{unknown}`"),
        });
    }
    let field = |name: &str| spec.get(name).and_then(Value::as_str);
    let Some(name) = field("name") else {
        return Err(invalid(path, "images[].name", "must be a string"));
    };
    for object in objects.iter_mut() {
        for pod_spec in [
            "/spec/template/spec",
            "/spec/jobTemplate/spec/template/spec",
        ] {
            let Some(pod) = object.pointer_mut(pod_spec) else {
                continue;
            };
            for list in ["containers", "initContainers"] {
                for container in pod
                    .get_mut(list)
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    let Some(current) = container.get("image").and_then(Value::as_str) else {
                        continue;
                    };
                    let (repo, tag, digest) = split_image(current);
                    if repo != name {
                        continue;
                    }
                    let repo = field("newName").unwrap_or(repo);
                    let new = match (field("digest"), field("newTag")) {
                        (Some(d), _) => format!("{repo}@{d}"),
                        (None, Some(t)) => format!("{repo}:{t}"),
                        (None, None) => match (tag, digest) {
                            (_, Some(d)) => format!("{repo}@{d}"),
                            (Some(t), None) => format!("{repo}:{t}"),
                            (None, None) => repo.to_owned(),
                        },
                    };
                    container["image"] = Value::String(new);
                }
            }
        }
    }
    Ok(())
}

/// `registry:5000/repo:tag@digest` → (`registry:5000/repo`, tag, digest).
pub fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    // A ':' after the last '/' starts the tag; one before it is a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].find(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(&rest[last_slash + i + 1..]),
            digest,
        ),
        None => (rest, None, digest),
    }
}

/// Every object needs apiVersion, kind and metadata.name to be addressed.
fn check_object(path: &Path, object: &Value) -> Result<(), KustomizeError> {
    for field in [&["apiVersion"][..], &["kind"], &["metadata", "name"]] {
        if str_at(object, field).is_empty() {
            return Err(invalid(path, &field.join("."), "missing or not a string"));
        }
    }
    Ok(())
}

/// `apiVersion/kind namespace/name`, the identity kustomize keys on.
#[must_use]
pub fn id(object: &Value) -> String {
    format!(
        "{}/{} {}/{}",
        str_at(object, &["apiVersion"]),
        str_at(object, &["kind"]),
        str_at(object, &["metadata", "namespace"]),
        str_at(object, &["metadata", "name"]),
    )
}

/// The string at `path`, or "" when absent or not a string.
#[must_use]
pub fn str_at<'a>(value: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// kustomize's default ("legacy") output order: these kinds first, in this
/// order, webhooks last, every other kind in between sorted by
/// `group_version_kind`; then by namespace and name.
fn order_key(object: &Value) -> (usize, String, String, String) {
    const FIRST: [&str; 22] = [
        "Namespace",
        "ResourceQuota",
        "StorageClass",
        "CustomResourceDefinition",
        "ServiceAccount",
        "PodSecurityPolicy",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Endpoints",
        "Service",
        "LimitRange",
        "PriorityClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "CronJob",
        "PodDisruptionBudget",
    ];
    const LAST: [&str; 2] = [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    let kind = str_at(object, &["kind"]);
    let (group, version) = match str_at(object, &["apiVersion"]).rsplit_once('/') {
        Some((group, version)) => (group, version),
        None => ("", str_at(object, &["apiVersion"])),
    };
    let gvk = format!(
        "{}_{}_{}",
        if group.is_empty() { "~G" } else { group },
        version,
        kind
    );
    let rank = if let Some(i) = FIRST.iter().position(|k| *k == kind) {
        i
    } else if let Some(i) = LAST.iter().position(|k| *k == kind) {
        FIRST.len() + 1 + i
    } else {
        FIRST.len()
    };
    (
        rank,
        gvk,
        str_at(object, &["metadata", "namespace"]).to_owned(),
        str_at(object, &["metadata", "name"]).to_owned(),
    )
}

fn read_yaml(path: &Path) -> Result<Vec<Value>, KustomizeError> {
    let text = std::fs::read_to_string(path).map_err(|source| KustomizeError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value: Value =
            serde::Deserialize::deserialize(doc).map_err(|source| KustomizeError::Yaml {
                path: path.to_owned(),
                source,
            })?;
        // A stream that starts with `---` yields an empty first document.
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

fn list<'a>(
    path: &Path,
    fields: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a [Value], KustomizeError> {
    match fields.get(name) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid(path, name, "must be a list")),
    }
}

fn string_list(
    path: &Path,
    fields: &Map<String, Value>,
    name: &str,
) -> Result<Vec<String>, KustomizeError> {
    list(path, fields, name)?
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid(path, name, "every entry must be a string"))
        })
        .collect()
}

fn invalid(path: &Path, field: &str, reason: &str) -> KustomizeError {
    KustomizeError::Invalid {
        path: path.to_owned(),
        field: field.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use serde_json::json;

    #[rstest]
    #[case("ghcr.io/a/b:1.0", "ghcr.io/a/b", Some("1.0"), None)]
    #[case("ghcr.io/a/b", "ghcr.io/a/b", None, None)]
    #[case("localhost:5000/b:2", "localhost:5000/b", Some("2"), None)]
    #[case("localhost:5000/b", "localhost:5000/b", None, None)]
    #[case("b@sha256:ab", "b", None, Some("sha256:ab"))]
    #[case("r:1/b:t@sha256:ab", "r:1/b", Some("t"), Some("sha256:ab"))]
    fn splits_images(
        #[case] image: &str,
        #[case] repo: &str,
        #[case] tag: Option<&str>,
        #[case] digest: Option<&str>,
    ) {
        assert_eq!(split_image(image), (repo, tag, digest));
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", "labels": {"a": "1"}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "img:1", "args": ["x"],
                 "env": [{"name": "A", "value": "1"}]},
                {"name": "side", "image": "other:1"}
            ]}}}
        })
    }

    #[rstest]
    // A keyed list merges by name; the args list inside is replaced.
    #[case(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "args": ["y", "z"]}]}}}}),
        json!({"name": "c", "image": "img:1", "args": ["y", "z"], "env": [{"name": "A", "value": "1"}]})
    )]
    // env merges by name: one added, one changed.
    #[case(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}]}}}}),
        json!({"name": "c", "image": "img:1", "args": ["x"], "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]})
    )]
    // null deletes a field.
    #[case(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "args": null}]}}}}),
        json!({"name": "c", "image": "img:1", "env": [{"name": "A", "value": "1"}]})
    )]
    fn strategic_merge_patches_containers(#[case] patch: Value, #[case] first: Value) {
        let mut target = deployment();
        strategic_merge(&mut target, &patch, Path::new("p.yaml")).unwrap();
        assert_eq!(target["spec"]["template"]["spec"]["containers"][0], first);
        assert_eq!(
            target["spec"]["template"]["spec"]["containers"][1]["name"], "side",
            "the other container stays"
        );
        assert_eq!(target["metadata"]["labels"]["a"], "1");
    }

    #[test]
    fn strategic_merge_rejects_directives() {
        let mut target = deployment();
        let patch = json!({"spec": {"$patch": "replace"}});
        let err = strategic_merge(&mut target, &patch, Path::new("p.yaml")).unwrap_err();
        assert!(err.to_string().contains("$patch"), "{err}");
    }

    #[rstest]
    #[case(json!({"name": "img", "newTag": "2"}), "img:2")]
    #[case(json!({"name": "img", "newName": "reg/img"}), "reg/img:1")]
    #[case(json!({"name": "img", "newName": "reg/img", "newTag": "3"}), "reg/img:3")]
    #[case(json!({"name": "img", "digest": "sha256:ff"}), "img@sha256:ff")]
    #[case(json!({"name": "im", "newTag": "2"}), "img:1")]
    fn images_transformer(#[case] image: Value, #[case] expected: &str) {
        let mut objects = vec![deployment()];
        set_image(Path::new("k.yaml"), &image, &mut objects).unwrap();
        let containers = &objects[0]["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[0]["image"], expected);
        assert_eq!(containers[1]["image"], "other:1", "other images untouched");
    }

    #[test]
    fn images_transformer_rejects_unknown_fields() {
        let mut objects = vec![deployment()];
        let err = set_image(
            Path::new("k.yaml"),
            &json!({"name": "img", "newTagg": "2"}),
            &mut objects,
        )
        .unwrap_err();
        assert!(err.to_string().contains("newTagg"), "{err}");
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir.join(name).parent().unwrap()).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    const SA: &str = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s, namespace: n}\n";
    const NS: &str = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n";

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tailor-kustomize-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn builds_nested_directories_in_kind_order() {
        let dir = scratch("nested");
        write(
            &dir,
            "base/kustomization.yaml",
            "resources: [sa.yaml, ns.yaml]\n",
        );
        write(&dir, "base/sa.yaml", SA);
        write(&dir, "base/ns.yaml", NS);
        write(&dir, "overlay/kustomization.yaml", "resources: [../base]\n");
        let objects = build(&dir.join("overlay")).unwrap();
        let kinds: Vec<_> = objects.iter().map(|o| str_at(o, &["kind"])).collect();
        assert_eq!(kinds, ["Namespace", "ServiceAccount"]);
        let stream = to_stream(&objects).unwrap();
        assert_eq!(stream.matches("---\n").count(), 2);
    }

    #[test]
    fn orders_like_kustomize_legacy() {
        let object = |api: &str, kind: &str, ns: &str, name: &str| json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns}});
        let mut objects = [
            object(
                "admissionregistration.k8s.io/v1",
                "MutatingWebhookConfiguration",
                "",
                "w",
            ),
            object("networking.k8s.io/v1", "NetworkPolicy", "n", "p"),
            object("apiregistration.k8s.io/v1", "APIService", "", "a"),
            object("policy/v1", "PodDisruptionBudget", "n", "b"),
            object("apps/v1", "Deployment", "n", "d"),
            object("rbac.authorization.k8s.io/v1", "RoleBinding", "n", "r"),
            object(
                "rbac.authorization.k8s.io/v1",
                "RoleBinding",
                "kube-system",
                "z",
            ),
            object("v1", "Namespace", "", "n"),
        ];
        objects.sort_by_key(order_key);
        let names: Vec<_> = objects
            .iter()
            .map(|o| str_at(o, &["metadata", "name"]))
            .collect();
        assert_eq!(names, ["n", "z", "r", "d", "b", "a", "p", "w"]);
    }

    #[rstest]
    #[case(
        "namespace: x\nresources: [sa.yaml]\n",
        "unsupported field `namespace`"
    )]
    #[case("resources: [sa.yaml, sa.yaml]\n", "defined twice")]
    #[case("resources: [missing.yaml]\n", "cannot read")]
    #[case("resources: sa.yaml\n", "must be a list")]
    #[case(
        "resources: [sa.yaml]\npatches: [{path: p.yaml, target: {kind: X}}]\n",
        "unsupported patch form"
    )]
    #[case(
        "resources: [sa.yaml]\npatches: [{path: p.yaml}]\n",
        "matches no resource"
    )]
    fn rejects_what_it_does_not_implement(#[case] kustomization: &str, #[case] message: &str) {
        let dir = scratch(&format!("bad-{}", message.len()));
        write(&dir, "kustomization.yaml", kustomization);
        write(&dir, "sa.yaml", SA);
        write(
            &dir,
            "p.yaml",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: other}\n",
        );
        let err = build(&dir).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
}
