//! Selectors of `targetRef` kinds that are not well-known controllers (and
//! of custom controllers that own pods), read as upstream's VPA reads them: API discovery maps the kind to its resource
//! (`GET /apis/<group>/<version>`, or `/api/v1`), then
//! `GET …/namespaces/<ns>/<resource>/<name>/scale` gives `status.selector`.
//!
//! Shared by the recommender, the updater and the admission webhook. Their
//! decisions are synchronous and read caches only, so each refreshes this
//! cache before it needs it ([`ScaleTargets::refresh`]): an entry is
//! fetched when first needed and again once older than its maximum age
//! (upstream re-reads a scale subresource every 10 minutes too); entries no
//! VPA names any more are dropped.

use k8s_openapi::api::autoscaling::v1::CrossVersionObjectReference;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersion;
use kube::discovery::{ApiCapabilities, ApiResource};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use tailor_api::selector::Selector;
use tailor_api::target::{TargetError, TargetObject, WellKnownKind, target_selector};

/// Seconds since the Unix epoch.
pub type Timestamp = i64;

/// How long a fetched selector or discovery answer is used before it is read
/// again (upstream's scale cache freshness).
pub const DEFAULT_MAX_AGE_SECS: i64 = 600;

/// Why a custom target's selector is not known.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The object or its kind does not give a selector (see [`TargetError`]).
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The API server could not be asked (network, RBAC, server error).
    #[error("{what}: {reason}")]
    Api {
        /// What was being read.
        what: String,
        /// The error.
        reason: String,
    },
    /// Not read yet (a VPA created since the last refresh).
    #[error("the /scale subresource of {kind} {name:?} has not been read yet")]
    Pending {
        /// `targetRef.kind`.
        kind: String,
        /// `targetRef.name`.
        name: String,
    },
}

/// What a target's `/scale` gave: its pod selector and `spec.replicas`.
type ScaleRead = (Selector, Option<i32>);

/// A custom target: namespace, apiVersion, kind, name.
type TargetKey = (String, String, String, String);

#[derive(Debug, Default)]
struct Entries {
    /// By apiVersion.
    served: BTreeMap<String, (Timestamp, Result<Served, LookupError>)>,
    selectors: BTreeMap<TargetKey, (Timestamp, Result<ScaleRead, LookupError>)>,
}

/// The cache of custom targets' selectors (cheap to clone: shared).
#[derive(Clone, Debug, Default)]
pub struct ScaleTargets {
    entries: Arc<RwLock<Entries>>,
}

fn target_key(namespace: &str, target: &CrossVersionObjectReference) -> TargetKey {
    (
        namespace.to_owned(),
        target.api_version.clone().unwrap_or_default(),
        target.kind.clone(),
        target.name.clone(),
    )
}

fn unsupported(target: &CrossVersionObjectReference) -> LookupError {
    // `target_selector` with nothing found gives the error naming the kind.
    match target_selector(target, None) {
        Err(e) => LookupError::Target(e),
        Ok(_) => LookupError::Api {
            what: target.kind.clone(),
            reason: "unexpected selector".to_owned(),
        },
    }
}

fn group_version(api_version: &str) -> GroupVersion {
    // `v1` is the core group; an absent apiVersion is read as `v1` too.
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None if api_version.is_empty() => ("", "v1"),
        None => ("", api_version),
    };
    GroupVersion::gv(group, version)
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The kinds one group/version serves: the resource of each kind that has a
/// `/scale` subresource, `None` for kinds without one.
type Served = BTreeMap<String, Option<ApiResource>>;

async fn discover(client: &kube::Client, api_version: &str) -> Result<Served, LookupError> {
    let gv = group_version(api_version);
    match kube::discovery::pinned_group(client, &gv).await {
        Ok(group) => {
            let version = group.preferred_version_or_latest().to_owned();
            Ok(group
                .versioned_resources(&version)
                .into_iter()
                .map(|(resource, caps): (ApiResource, ApiCapabilities)| {
                    let scalable = caps.subresources.iter().any(|(r, _)| r.plural == "scale");
                    (resource.kind.clone(), scalable.then_some(resource))
                })
                .collect())
        }
        // The group/version is not served: no kind of it has /scale.
        Err(e) if is_not_found(&e) => Ok(Served::new()),
        Err(e) => Err(LookupError::Api {
            what: format!("discovery of {api_version:?}"),
            reason: e.to_string(),
        }),
    }
}

async fn fetch_selector(
    client: &kube::Client,
    resource: &ApiResource,
    namespace: &str,
    target: &CrossVersionObjectReference,
) -> Result<ScaleRead, LookupError> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    match api.get_scale(&target.name).await {
        Ok(scale) => Ok((
            target_selector(target, Some(TargetObject::Scale(&scale)))?,
            scale.spec.as_ref().and_then(|s| s.replicas),
        )),
        Err(e) if is_not_found(&e) => Err(LookupError::Target(TargetError::NotFound {
            kind: target.kind.clone(),
            name: target.name.clone(),
        })),
        Err(e) => Err(LookupError::Api {
            what: format!(
                "GET {}/{} {:?} /scale in {namespace}",
                resource.api_version, resource.plural, target.name
            ),
            reason: e.to_string(),
        }),
    }
}

impl ScaleTargets {
    /// The custom targets among `targets` (namespace, `targetRef`): kinds
    /// that are not well-known controllers, deduplicated.
    #[must_use]
    pub fn custom_targets<'a>(
        targets: impl IntoIterator<Item = (&'a str, &'a CrossVersionObjectReference)>,
    ) -> BTreeSet<(String, CrossVersionObjectReferenceKey)> {
        targets
            .into_iter()
            .filter(|(_, t)| WellKnownKind::from_kind(&t.kind).is_none())
            .map(|(ns, t)| (ns.to_owned(), CrossVersionObjectReferenceKey::from(t)))
            .collect()
    }

    /// Reads what is missing or older than `max_age_secs` for `targets`, and
    /// forgets the targets no longer named. A group/version is discovered
    /// once per `max_age_secs` however many objects of its kinds are named. Failures are kept
    /// as the entry's result (the VPA reports them) and read again next time.
    pub async fn refresh(
        &self,
        client: &kube::Client,
        targets: &BTreeSet<(String, CrossVersionObjectReferenceKey)>,
        now: Timestamp,
        max_age_secs: i64,
    ) {
        let fresh = |at: Timestamp| now.saturating_sub(at) < max_age_secs;
        let wanted: BTreeSet<TargetKey> = targets
            .iter()
            .map(|(ns, t)| target_key(ns, &t.to_ref()))
            .collect();
        {
            let mut e = self.write();
            e.selectors.retain(|k, _| wanted.contains(k));
            let versions: BTreeSet<&String> = wanted.iter().map(|k| &k.1).collect();
            e.served.retain(|v, _| versions.contains(v));
        }
        for (namespace, t) in targets {
            let target = t.to_ref();
            let key = target_key(namespace, &target);
            if self
                .read()
                .selectors
                .get(&key)
                .is_some_and(|(at, _)| fresh(*at))
            {
                continue;
            }
            let known = self
                .read()
                .served
                .get(&key.1)
                .filter(|(at, _)| fresh(*at))
                .map(|(_, r)| r.clone());
            let served = match known {
                Some(r) => r,
                None => {
                    let r = discover(client, &key.1).await;
                    self.write().served.insert(key.1.clone(), (now, r.clone()));
                    r
                }
            };
            let selector = match served.map(|s| s.get(&target.kind).cloned().flatten()) {
                Ok(Some(resource)) => fetch_selector(client, &resource, namespace, &target).await,
                Ok(None) => Err(unsupported(&target)),
                Err(e) => Err(e),
            };
            self.write().selectors.insert(key, (now, selector));
        }
    }

    /// The selector of a custom target, as last read.
    ///
    /// # Errors
    /// What the last read found wrong, or [`LookupError::Pending`].
    pub fn selector(
        &self,
        namespace: &str,
        target: &CrossVersionObjectReference,
    ) -> Result<Selector, LookupError> {
        self.scale(namespace, target).map(|(selector, _)| selector)
    }

    /// The desired replica count (`spec.replicas` of `/scale`) of a custom
    /// target, as last read; `None` when the subresource leaves it unset.
    ///
    /// # Errors
    /// What the last read found wrong, or [`LookupError::Pending`].
    pub fn replicas(
        &self,
        namespace: &str,
        target: &CrossVersionObjectReference,
    ) -> Result<Option<i32>, LookupError> {
        self.scale(namespace, target).map(|(_, replicas)| replicas)
    }

    fn scale(
        &self,
        namespace: &str,
        target: &CrossVersionObjectReference,
    ) -> Result<ScaleRead, LookupError> {
        match self.read().selectors.get(&target_key(namespace, target)) {
            Some((_, r)) => r.clone(),
            None => Err(LookupError::Pending {
                kind: target.kind.clone(),
                name: target.name.clone(),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.entries
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.entries
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A `targetRef` as an ordered key (`CrossVersionObjectReference` is not `Ord`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CrossVersionObjectReferenceKey {
    /// `apiVersion`.
    pub api_version: Option<String>,
    /// `kind`.
    pub kind: String,
    /// `name`.
    pub name: String,
}

impl From<&CrossVersionObjectReference> for CrossVersionObjectReferenceKey {
    fn from(r: &CrossVersionObjectReference) -> Self {
        CrossVersionObjectReferenceKey {
            api_version: r.api_version.clone(),
            kind: r.kind.clone(),
            name: r.name.clone(),
        }
    }
}

impl CrossVersionObjectReferenceKey {
    fn to_ref(&self) -> CrossVersionObjectReference {
        CrossVersionObjectReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
        }
    }
}
