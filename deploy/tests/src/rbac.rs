//! What a ServiceAccount may do, from rendered RBAC objects, and what a binary
//! says it calls (`<crate>/kube-api-calls.yaml`), as comparable sets.

use crate::kustomize::str_at;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// One verb on one resource of one API group (`""` is the core group;
/// subresources are spelled `resource/subresource`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Permission {
    /// API group.
    pub group: String,
    /// Resource, or `resource/subresource`.
    pub resource: String,
    /// RBAC verb.
    pub verb: String,
}

impl Permission {
    /// A permission from its three parts.
    #[must_use]
    pub fn new(group: &str, resource: &str, verb: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: resource.to_owned(),
            verb: verb.to_owned(),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let group = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        write!(f, "{} {}/{}", self.verb, group, self.resource)
    }
}

/// Why permissions could not be worked out.
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    /// The calls file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The calls file is not a list of `{group, resource, verbs}`.
    #[error("{path}: {source}")]
    Yaml {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: serde_yaml::Error,
    },
    /// A binding names a role that is neither rendered nor a known built-in.
    #[error("binding {binding} refers to {kind} {name}, which is not defined")]
    UnknownRole {
        /// The binding.
        binding: String,
        /// `Role` or `ClusterRole`.
        kind: String,
        /// The role's name.
        name: String,
    },
    /// A rule uses a wildcard or non-resource URLs, which least privilege rules out.
    #[error("{role}: {reason}")]
    Broad {
        /// The role.
        role: String,
        /// What is too broad.
        reason: String,
    },
}

/// One entry of a `kube-api-calls.yaml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallEntry {
    group: String,
    resource: String,
    verbs: Vec<String>,
}

/// The permissions a `kube-api-calls.yaml` file lists.
///
/// # Errors
/// Unreadable file, or not a list of `{group, resource, verbs}`.
pub fn load_calls(path: &Path) -> Result<BTreeSet<Permission>, RbacError> {
    let text = std::fs::read_to_string(path).map_err(|source| RbacError::Read {
        path: path.to_owned(),
        source,
    })?;
    let entries: Vec<CallEntry> =
        serde_yaml::from_str(&text).map_err(|source| RbacError::Yaml {
            path: path.to_owned(),
            source,
        })?;
    Ok(entries
        .iter()
        .flat_map(|e| {
            e.verbs
                .iter()
                .map(|v| Permission::new(&e.group, &e.resource, v))
        })
        .collect())
}

/// The rules of roles every cluster has (bootstrap RBAC) that our bindings
/// refer to, as `(kind, namespace, name) → [(group, resource, verbs)]`.
fn builtin_role(kind: &str, namespace: &str, name: &str) -> Option<Vec<Permission>> {
    match (kind, namespace, name) {
        ("ClusterRole", _, "system:auth-delegator") => Some(vec![
            Permission::new("authentication.k8s.io", "tokenreviews", "create"),
            Permission::new("authorization.k8s.io", "subjectaccessreviews", "create"),
        ]),
        ("Role", "kube-system", "extension-apiserver-authentication-reader") => Some(
            ["get", "list", "watch"]
                .iter()
                .map(|v| Permission::new("", "configmaps", v))
                .collect(),
        ),
        _ => None,
    }
}

/// Everything the ServiceAccount `namespace/name` is granted by the
/// (Cluster)RoleBindings among `objects`.
///
/// # Errors
/// A binding to an unknown role, or a role with a wildcard or non-resource URLs.
pub fn grants(
    objects: &[Value],
    namespace: &str,
    name: &str,
) -> Result<BTreeSet<Permission>, RbacError> {
    let mut granted = BTreeSet::new();
    for binding in objects.iter().filter(|o| {
        matches!(str_at(o, &["kind"]), "RoleBinding" | "ClusterRoleBinding")
            && binds(o, namespace, name)
    }) {
        let binding_kind = str_at(binding, &["kind"]);
        let binding_ns = str_at(binding, &["metadata", "namespace"]);
        let role_kind = str_at(binding, &["roleRef", "kind"]);
        let role_name = str_at(binding, &["roleRef", "name"]);
        // A RoleBinding's Role lives in the binding's namespace.
        let role_ns = if role_kind == "Role" { binding_ns } else { "" };
        let rendered = objects.iter().find(|o| {
            str_at(o, &["kind"]) == role_kind
                && str_at(o, &["metadata", "name"]) == role_name
                && str_at(o, &["metadata", "namespace"]) == role_ns
        });
        match (rendered, builtin_role(role_kind, role_ns, role_name)) {
            (Some(role), _) => granted.extend(role_rules(role)?),
            (None, Some(builtin)) => granted.extend(builtin),
            (None, None) => {
                return Err(RbacError::UnknownRole {
                    binding: format!(
                        "{binding_kind} {binding_ns}/{}",
                        str_at(binding, &["metadata", "name"])
                    ),
                    kind: role_kind.to_owned(),
                    name: role_name.to_owned(),
                });
            }
        }
    }
    Ok(granted)
}

fn binds(binding: &Value, namespace: &str, name: &str) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| {
            str_at(s, &["kind"]) == "ServiceAccount"
                && str_at(s, &["name"]) == name
                && str_at(s, &["namespace"]) == namespace
        })
}

fn strings<'a>(rule: &'a Value, field: &str) -> Vec<&'a str> {
    rule.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The one wildcard rule allowed: `get` on `*/scale` in every group. A VPA's
/// `targetRef` may name any kind with a `/scale` subresource, in groups nobody
/// knows in advance, and upstream's VPA components hold the same grant. It
/// reads only replica counts and selectors, never objects, and writes nothing.
fn is_scale_reader(groups: &[&str], resources: &[&str], verbs: &[&str]) -> bool {
    groups == ["*"] && resources == ["*/scale"] && verbs == ["get"]
}

/// The permissions of one role's rules; wildcards and non-resource URLs are
/// errors (nothing Tailor runs needs them), except `get` on `*/scale`
/// ([`is_scale_reader`]).
fn role_rules(role: &Value) -> Result<Vec<Permission>, RbacError> {
    let role_name = format!(
        "{} {}",
        str_at(role, &["kind"]),
        str_at(role, &["metadata", "name"])
    );
    let mut out = Vec::new();
    for rule in role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if rule.get("nonResourceURLs").is_some() {
            return Err(RbacError::Broad {
                role: role_name,
                reason: "grants nonResourceURLs".to_owned(),
            });
        }
        let (groups, resources, verbs) = (
            strings(rule, "apiGroups"),
            strings(rule, "resources"),
            strings(rule, "verbs"),
        );
        if [&groups, &resources, &verbs]
            .iter()
            .any(|list| list.contains(&"*"))
            && !is_scale_reader(&groups, &resources, &verbs)
        {
            return Err(RbacError::Broad {
                role: role_name,
                reason: "uses a `*` wildcard".to_owned(),
            });
        }
        for group in &groups {
            for resource in &resources {
                for verb in &verbs {
                    out.push(Permission::new(group, resource, verb));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects() -> Vec<Value> {
        vec![
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": "r"},
                "rules": [{"apiGroups": ["", "apps"], "resources": ["pods", "pods/eviction"], "verbs": ["list"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "r"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "b2", "namespace": "kube-system"},
                "roleRef": {"kind": "Role", "name": "extension-apiserver-authentication-reader"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]}),
            // Bound to another account: not counted.
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "b3"}, "roleRef": {"kind": "ClusterRole", "name": "system:auth-delegator"},
                "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "other"}]}),
        ]
    }

    #[test]
    fn expands_rules_and_builtin_roles_for_one_account() {
        let got = grants(&objects(), "ns", "sa").unwrap();
        let want: BTreeSet<_> = [
            ("", "pods", "list"),
            ("", "pods/eviction", "list"),
            ("apps", "pods", "list"),
            ("apps", "pods/eviction", "list"),
            ("", "configmaps", "get"),
            ("", "configmaps", "list"),
            ("", "configmaps", "watch"),
        ]
        .iter()
        .map(|(g, r, v)| Permission::new(g, r, v))
        .collect();
        assert_eq!(got, want);
        assert!(grants(&objects(), "ns", "nobody").unwrap().is_empty());
    }

    #[test]
    fn only_the_scale_reader_wildcard_is_allowed() {
        let mut objs = objects();
        objs[0]["rules"] =
            json!([{"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["get"]}]);
        let got = grants(&objs, "ns", "sa").unwrap();
        assert!(got.contains(&Permission::new("*", "*/scale", "get")));
        for (groups, resources, verbs) in [
            (json!(["*"]), json!(["*/scale"]), json!(["get", "update"])),
            (json!(["*"]), json!(["*/scale"]), json!(["*"])),
            (json!(["*"]), json!(["*"]), json!(["get"])),
            (json!(["*", "apps"]), json!(["*/scale"]), json!(["get"])),
        ] {
            objs[0]["rules"] =
                json!([{"apiGroups": groups, "resources": resources, "verbs": verbs}]);
            assert!(
                matches!(grants(&objs, "ns", "sa"), Err(RbacError::Broad { .. })),
                "{}",
                objs[0]["rules"]
            );
        }
    }

    #[test]
    fn wildcards_and_unknown_roles_are_errors() {
        let mut objs = objects();
        objs[0]["rules"][0]["verbs"] = json!(["*"]);
        assert!(matches!(
            grants(&objs, "ns", "sa"),
            Err(RbacError::Broad { .. })
        ));
        let mut objs = objects();
        objs[1]["roleRef"]["name"] = json!("missing");
        let err = grants(&objs, "ns", "sa").unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn calls_file_rejects_unknown_fields() {
        let dir = std::env::temp_dir().join(format!("tailor-calls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.yaml");
        std::fs::write(
            &good,
            "- group: \"\"\n  resource: pods\n  verbs: [get, list]\n",
        )
        .unwrap();
        let calls = load_calls(&good).unwrap();
        assert_eq!(calls.len(), 2);
        assert!(calls.contains(&Permission::new("", "pods", "get")));
        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "- group: \"\"\n  resource: pods\n  verb: [get]\n").unwrap();
        assert!(matches!(load_calls(&bad), Err(RbacError::Yaml { .. })));
    }
}
