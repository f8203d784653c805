//! Kubernetes API discovery for the resource mapper: with API access, every
//! resource the API serves can be named by series labels and request paths
//! (`ingress` → `ingresses.networking.k8s.io`), as upstream's RESTMapper
//! does; without it, only the built-in resources.
//!
//! Runs once at startup (before the first relist, bounded) and then in the
//! background every relist interval — never on the request path. It reads
//! the legacy discovery documents (`/api`, `/api/v1`, `/apis`, then each
//! group's preferred version), which every API server serves and which need
//! no RBAC beyond `system:discovery`. A group version that fails (an
//! aggregated API that is down, say) keeps the resources it had; `/api` or
//! `/apis` failing keeps the whole previous index.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use tokio_util::sync::CancellationToken;

use crate::naming::{KnownResources, ResourceIndex, ResourceInfo};

/// The resources of one discovery document (`/api/v1`, `/apis/<g>/<v>`),
/// without subresources; an empty `singularName` (old servers) becomes
/// the lower-cased kind, as upstream guesses it.
#[must_use]
pub fn resources_of(list: &APIResourceList) -> Vec<ResourceInfo> {
    let (group, version) = match list.group_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", list.group_version.as_str()),
    };
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ResourceInfo {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: r.name.to_ascii_lowercase(),
            singular: if r.singular_name.is_empty() {
                r.kind.to_ascii_lowercase()
            } else {
                r.singular_name.to_ascii_lowercase()
            },
            kind: r.kind.clone(),
            short_names: Vec::new(),
            namespaced: r.namespaced,
        })
        .collect()
}

/// What one discovery round found.
#[derive(Debug)]
pub struct Discovered {
    /// The new index.
    pub index: ResourceIndex,
    /// Group versions that could not be read (they kept their resources).
    pub failed: Vec<String>,
}

/// Reads every group's preferred version, core first, then groups in the
/// order `/apis` lists them (kube-apiserver's priority order). Resources of
/// a group version that fails are taken from `previous`.
///
/// # Errors
/// `/api` or `/apis` could not be read.
pub async fn discover(
    client: &kube::Client,
    previous: &ResourceIndex,
) -> Result<Discovered, kube::Error> {
    let core = client.list_core_api_versions().await?;
    let groups = client.list_api_groups().await?;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    let mut keep_previous = |group: &str, gv: String, found: &mut Vec<ResourceInfo>| {
        found.extend(
            previous
                .resources()
                .iter()
                .filter(|r| r.group == group)
                .cloned(),
        );
        failed.push(gv);
    };
    let core_version = if core.versions.iter().any(|v| v == "v1") {
        Some("v1".to_owned())
    } else {
        core.versions.first().cloned()
    };
    if let Some(v) = core_version {
        match client.list_core_api_resources(&v).await {
            Ok(list) => found.extend(resources_of(&list)),
            Err(e) => {
                tracing::warn!(group_version = %v, error = %e, "API discovery failed for the core group; keeping its previous resources");
                keep_previous("", v, &mut found);
            }
        }
    }
    for g in groups.groups {
        let Some(gv) = g
            .preferred_version
            .or_else(|| g.versions.into_iter().next())
            .map(|v| v.group_version)
        else {
            continue;
        };
        match client.list_api_group_resources(&gv).await {
            Ok(list) => found.extend(resources_of(&list)),
            Err(e) => {
                tracing::warn!(group_version = %gv, error = %e, "API discovery failed for a group; keeping its previous resources");
                keep_previous(&g.name, gv, &mut found);
            }
        }
    }
    Ok(Discovered {
        index: ResourceIndex::with_discovered(found),
        failed,
    })
}

/// One discovery round into `known`; failures are logged and keep the
/// previous index. Returns true when the index changed.
pub async fn refresh(client: &kube::Client, known: &KnownResources) -> bool {
    match discover(client, &known.current()).await {
        Ok(d) => {
            let n = d.index.resources().len();
            let changed = known.replace(d.index);
            if changed {
                tracing::info!(
                    resources = n,
                    failed = ?d.failed,
                    "API discovery: resources series labels and paths can name"
                );
            }
            changed
        }
        Err(e) => {
            tracing::warn!(error = %e, "API discovery failed; keeping the resources known so far");
            false
        }
    }
}

/// The first round, bounded by `deadline` so startup never waits on a slow
/// API server (the built-in resources work meanwhile).
pub async fn first(client: &kube::Client, known: &KnownResources, deadline: Duration) {
    if tokio::time::timeout(deadline, refresh(client, known))
        .await
        .is_err()
    {
        tracing::warn!(
            ?deadline,
            "API discovery did not finish in time; serving built-in resources until it does"
        );
    }
}

/// Refreshes every `interval` until `shutdown` (the first round is
/// [`first`]'s).
pub async fn run(
    client: kube::Client,
    known: KnownResources,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = refresh(&client, &known) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subresources_are_skipped_and_missing_singulars_guessed() {
        let list: APIResourceList = serde_json::from_value(serde_json::json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "example.com/v1",
            "resources": [
                {"name": "widgets", "singularName": "widget", "namespaced": true, "kind": "Widget",
                 "verbs": ["get", "list", "watch"], "shortNames": ["wd"]},
                {"name": "widgets/status", "singularName": "", "namespaced": true, "kind": "Widget", "verbs": ["get"]},
                {"name": "gizmos", "singularName": "", "namespaced": false, "kind": "Gizmo", "verbs": ["get"]}
            ]
        }))
        .unwrap();
        let r = resources_of(&list);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (
                r[0].group.as_str(),
                r[0].version.as_str(),
                r[0].singular.as_str()
            ),
            ("example.com", "v1", "widget")
        );
        assert!(
            r[0].short_names.is_empty(),
            "discovered short names are not labels"
        );
        assert_eq!((r[1].singular.as_str(), r[1].namespaced), ("gizmo", false));
    }
}
