//! The objects a wildcard request's `labelSelector` picks, listed from the
//! Kubernetes API (metadata only). Used only when the adapter has API
//! access; the list is one call per request, scoped to the namespace.

use kube::api::{Api, ApiResource, DynamicObject, ListParams};

use crate::naming::{GroupResource, builtin_resource};

/// Errors listing objects.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    /// The resource is not one the adapter knows how to list.
    #[error(
        "cannot list {0}: only the built-in resources (pods, nodes, namespaces, services, and the apps/batch workload kinds) can be listed for labelSelector"
    )]
    Unknown(String),
    /// The API call failed.
    #[error("cannot list {resource} from the Kubernetes API: {source}")]
    Api {
        /// The resource.
        resource: String,
        /// The error.
        source: kube::Error,
    },
}

/// Lists object names by label selector.
#[derive(Clone)]
pub struct ObjectLister {
    client: kube::Client,
}

impl std::fmt::Debug for ObjectLister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLister").finish_non_exhaustive()
    }
}

impl ObjectLister {
    /// A lister using `client`.
    #[must_use]
    pub fn new(client: kube::Client) -> Self {
        ObjectLister { client }
    }

    /// Names of the `resource` objects in `namespace` (all namespaces when
    /// `None` or cluster-scoped) matching `selector`, sorted.
    ///
    /// # Errors
    /// An unknown resource or a failed call.
    pub async fn names(
        &self,
        resource: &GroupResource,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Vec<String>, ListError> {
        let b = builtin_resource(&resource.group, &resource.resource)
            .ok_or_else(|| ListError::Unknown(resource.to_string()))?;
        let ar = ApiResource {
            group: b.group.to_owned(),
            version: b.version.to_owned(),
            api_version: b.api_version(),
            kind: b.kind.to_owned(),
            plural: b.plural.to_owned(),
        };
        let api: Api<DynamicObject> = match namespace {
            Some(ns) if b.namespaced => Api::namespaced_with(self.client.clone(), ns, &ar),
            _ => Api::all_with(self.client.clone(), &ar),
        };
        let list = api
            .list_metadata(&ListParams::default().labels(selector))
            .await
            .map_err(|source| ListError::Api {
                resource: resource.to_string(),
                source,
            })?;
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect();
        names.sort();
        Ok(names)
    }
}
