//! The webhook's in-memory view of the cluster: VPAs, the controllers needed
//! to walk a pod's owner chain (with their pod selectors and annotations),
//! and LimitRanges. Watch events update it; requests only read it, so the
//! request path never calls the API server. Everything here is pure.

use k8s_openapi::api::autoscaling::v1::{CrossVersionObjectReference, Scale};
use k8s_openapi::api::core::v1::{LimitRange, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tailor_api::convert::{self, ConversionError};
use tailor_api::owner::{self, ControllerLinks, MAX_OWNER_DEPTH, OwnerError};
use tailor_api::selector::Selector;
use tailor_api::target::{self, TargetError, TargetObject, WellKnownKind};
use tailor_api::vpa::{UpdateMode as ApiUpdateMode, VerticalPodAutoscaler};
// LimitRanges are read in `tailor-api`, shared with the updater.
pub use tailor_api::limit_range::{LimitRangeError, LimitRanges};
use tailor_core::admission::NamespaceLimits;
use tailor_core::policy::{PodRecommendation, ResourcePolicy, UpdateMode};
use tailor_runtime::scale::{CrossVersionObjectReferenceKey, ScaleTargets};

/// Which VPAs this webhook applies, by their `spec.recommenders`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RecommenderFilter {
    /// Every VPA, whoever recommends for it (upstream's admission
    /// controller: it applies whatever recommendation the status holds).
    #[default]
    Any,
    /// Only VPAs handled by the recommender of this name: the first entry of
    /// `spec.recommenders`, or no entry and the name `default`.
    Named(String),
}

impl RecommenderFilter {
    /// True when VPAs with this spec are applied.
    #[must_use]
    pub fn accepts(&self, vpa: &VerticalPodAutoscaler) -> bool {
        match self {
            RecommenderFilter::Any => true,
            RecommenderFilter::Named(name) => vpa.spec.handled_by(name),
        }
    }
}

/// A VPA with its spec and status already in core terms.
#[derive(Clone, Debug)]
pub struct IndexedVpa {
    /// The object as watched.
    pub vpa: VerticalPodAutoscaler,
    /// Mode, policy and recommendation, or why they could not be read.
    pub converted: Result<ConvertedVpa, ConversionError>,
}

/// What the patch computation needs from a VPA.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertedVpa {
    /// `spec.updatePolicy.updateMode`.
    pub mode: UpdateMode,
    /// `spec.resourcePolicy`.
    pub policy: ResourcePolicy,
    /// `status.recommendation`, if any.
    pub recommendation: Option<PodRecommendation>,
}

impl IndexedVpa {
    /// Converts once, when the watch delivers the object.
    #[must_use]
    pub fn new(vpa: VerticalPodAutoscaler) -> Self {
        let converted = (|| {
            Ok(ConvertedVpa {
                mode: convert::update_mode(&vpa)?,
                policy: convert::resource_policy(&vpa)?,
                recommendation: convert::recommendation(&vpa)?,
            })
        })();
        IndexedVpa { vpa, converted }
    }

    /// `metadata.name`.
    #[must_use]
    pub fn name(&self) -> &str {
        self.vpa.metadata.name.as_deref().unwrap_or_default()
    }
}

/// A controller that can appear in an owner chain.
#[derive(Clone, Debug)]
struct Controller {
    owner_references: Vec<OwnerReference>,
    has_scale: bool,
    annotations: BTreeMap<String, String>,
    /// The pods it manages, as a VPA targeting it selects them.
    selector: Result<Selector, TargetError>,
}

/// Why no VPA could be chosen for a pod (the pod is then admitted unchanged).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    /// The owner chain could not be followed from the caches.
    #[error(transparent)]
    Owner(#[from] OwnerError),
}

type NsName = (String, String);
type ControllerKey = (String, String, String);

/// The caches one request reads. Keys are `(namespace, name)` and
/// `(namespace, kind, name)`.
#[derive(Clone, Debug, Default)]
pub struct Index {
    recommenders: RecommenderFilter,
    vpas: BTreeMap<NsName, IndexedVpa>,
    controllers: HashMap<ControllerKey, Controller>,
    limit_ranges: LimitRanges,
}

fn ns_name(meta: &ObjectMeta) -> NsName {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Index {
    /// An empty index applying the VPAs `recommenders` accepts.
    #[must_use]
    pub fn new(recommenders: RecommenderFilter) -> Self {
        Index {
            recommenders,
            ..Index::default()
        }
    }

    /// Adds or replaces a VPA.
    pub fn apply_vpa(&mut self, vpa: VerticalPodAutoscaler) {
        let key = ns_name(&vpa.metadata);
        self.vpas.insert(key, IndexedVpa::new(vpa));
    }

    /// Removes a VPA.
    pub fn delete_vpa(&mut self, namespace: &str, name: &str) {
        self.vpas.remove(&(namespace.to_owned(), name.to_owned()));
    }

    /// Forgets every VPA (before a relist replaces them).
    pub fn clear_vpas(&mut self) {
        self.vpas.clear();
    }

    /// Forgets every controller of `kind` (before a relist replaces them).
    pub fn clear_controllers(&mut self, kind: &str) {
        self.controllers.retain(|(_, k, _), _| k != kind);
    }

    /// Forgets every LimitRange (before a relist replaces them).
    pub fn clear_limit_ranges(&mut self) {
        self.limit_ranges.clear();
    }

    /// How many VPAs are cached.
    #[must_use]
    pub fn vpa_count(&self) -> usize {
        self.vpas.len()
    }

    /// Adds or replaces a well-known controller (Deployment, ReplicaSet,
    /// StatefulSet, DaemonSet, Job, CronJob, ReplicationController). A
    /// `TargetObject::Scale` carries no metadata; use [`Index::apply_scalable`].
    pub fn apply_controller(&mut self, object: TargetObject<'_>) {
        let meta = match object {
            TargetObject::Deployment(o) => &o.metadata,
            TargetObject::StatefulSet(o) => &o.metadata,
            TargetObject::DaemonSet(o) => &o.metadata,
            TargetObject::ReplicaSet(o) => &o.metadata,
            TargetObject::Job(o) => &o.metadata,
            TargetObject::CronJob(o) => &o.metadata,
            TargetObject::ReplicationController(o) => &o.metadata,
            TargetObject::Scale(_) => return,
        };
        let kind = object.kind().map_or("", WellKnownKind::as_str);
        self.insert_controller(kind, meta, false, object);
    }

    /// Adds or replaces an object of another kind that has a `/scale`
    /// subresource (its selector is read from `scale.status.selector`).
    pub fn apply_scalable(&mut self, kind: &str, meta: &ObjectMeta, scale: &Scale) {
        self.insert_controller(kind, meta, true, TargetObject::Scale(scale));
    }

    fn insert_controller(
        &mut self,
        kind: &str,
        meta: &ObjectMeta,
        has_scale: bool,
        object: TargetObject<'_>,
    ) {
        let (namespace, name) = ns_name(meta);
        let target_ref = CrossVersionObjectReference {
            api_version: None,
            kind: kind.to_owned(),
            name: name.clone(),
        };
        let controller = Controller {
            owner_references: meta.owner_references.clone().unwrap_or_default(),
            has_scale,
            annotations: meta.annotations.clone().unwrap_or_default(),
            selector: target::target_selector(&target_ref, Some(object)),
        };
        self.controllers
            .insert((namespace, kind.to_owned(), name), controller);
    }

    /// The custom `targetRef`s (kinds that are not well-known controllers)
    /// of the VPAs this webhook may apply: what [`crate::scale`] reads
    /// through `/scale`. VPAs in mode `Off` never match, so are left out.
    #[must_use]
    pub fn custom_targets(&self) -> BTreeSet<(String, CrossVersionObjectReferenceKey)> {
        ScaleTargets::custom_targets(
            self.vpas
                .iter()
                .filter(|(_, v)| v.vpa.spec.effective_update_mode() != ApiUpdateMode::Off)
                .filter(|(_, v)| self.recommenders.accepts(&v.vpa))
                .map(|((ns, _), v)| (ns.as_str(), &v.vpa.spec.target_ref)),
        )
    }

    /// Replaces every custom scalable controller with `targets`
    /// (namespace, kind, name and the selector its `/scale` gave). Scale
    /// objects carry no owner references or annotations, so none are kept:
    /// such a target is the top of its pods' owner chain, as upstream reads it.
    pub fn set_scale_targets(
        &mut self,
        targets: impl IntoIterator<Item = (String, String, String, Selector)>,
    ) {
        self.controllers.retain(|_, c| !c.has_scale);
        for (namespace, kind, name, selector) in targets {
            self.controllers.insert(
                (namespace, kind, name),
                Controller {
                    owner_references: Vec::new(),
                    has_scale: true,
                    annotations: BTreeMap::new(),
                    selector: Ok(selector),
                },
            );
        }
    }

    /// Removes a controller.
    pub fn delete_controller(&mut self, namespace: &str, kind: &str, name: &str) {
        self.controllers
            .remove(&(namespace.to_owned(), kind.to_owned(), name.to_owned()));
    }

    /// Applies one object given as JSON, by its `kind`, as the watches would.
    /// For indexes built from files (test fixtures, the load benchmark);
    /// the running webhook is fed by its watches. An unknown kind or an object
    /// that does not decode is an error naming it, and changes nothing.
    pub fn apply_object(&mut self, value: serde_json::Value) -> Result<(), String> {
        use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
        use k8s_openapi::api::batch::v1::{CronJob, Job};
        fn decode<T: serde::de::DeserializeOwned>(
            kind: &str,
            value: serde_json::Value,
        ) -> Result<T, String> {
            serde_json::from_value(value).map_err(|err| format!("{kind}: {err}"))
        }
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "Deployment" => {
                let o: Deployment = decode(&kind, value)?;
                self.apply_controller(TargetObject::Deployment(&o));
            }
            "ReplicaSet" => {
                let o: ReplicaSet = decode(&kind, value)?;
                self.apply_controller(TargetObject::ReplicaSet(&o));
            }
            "CronJob" => {
                let o: CronJob = decode(&kind, value)?;
                self.apply_controller(TargetObject::CronJob(&o));
            }
            "Job" => {
                let o: Job = decode(&kind, value)?;
                self.apply_controller(TargetObject::Job(&o));
            }
            "VerticalPodAutoscaler" => self.apply_vpa(decode(&kind, value)?),
            "LimitRange" => self.apply_limit_range(&decode::<LimitRange>(&kind, value)?),
            other => return Err(format!("unexpected kind {other:?}")),
        }
        Ok(())
    }

    /// Adds or replaces a LimitRange.
    pub fn apply_limit_range(&mut self, limit_range: &LimitRange) {
        self.limit_ranges.apply(limit_range);
    }

    /// Removes a LimitRange.
    pub fn delete_limit_range(&mut self, namespace: &str, name: &str) {
        self.limit_ranges.delete(namespace, name);
    }

    /// The namespace's container and pod limits, merged as upstream does
    /// ([`LimitRanges::limits`]).
    ///
    /// # Errors
    /// A LimitRange in the namespace has an invalid quantity.
    pub fn limits(&self, namespace: &str) -> Result<NamespaceLimits, LimitRangeError> {
        self.limit_ranges.limits(namespace)
    }

    fn lookup(&self, namespace: &str, controller: &OwnerReference) -> Option<ControllerLinks<'_>> {
        let key = (
            namespace.to_owned(),
            controller.kind.clone(),
            controller.name.clone(),
        );
        match self.controllers.get(&key) {
            Some(c) => Some(ControllerLinks {
                owner_references: &c.owner_references,
                has_scale: c.has_scale,
            }),
            // Unknown custom kinds are taken to exist, unscalable and
            // ownerless, as `tailor_api::owner::OwnerIndex` does.
            None if WellKnownKind::from_kind(&controller.kind).is_some() => None,
            None => Some(ControllerLinks::default()),
        }
    }

    /// The VPA that controls this pod, as upstream chooses it: among the
    /// VPAs of the pod's namespace whose mode is not `Off` (and whose
    /// recommender is accepted), those whose `targetRef` names the pod's
    /// top-most well-known or scalable controller and whose target's
    /// selector matches the pod's labels; the oldest wins (then the
    /// smallest name).
    ///
    /// # Errors
    /// The owner chain names a controller missing from the cache, or is too
    /// deep.
    pub fn match_vpa(&self, pod: &Pod) -> Result<Option<&IndexedVpa>, MatchError> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let candidates: Vec<&IndexedVpa> = self
            .vpas
            .range((namespace.to_owned(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, v)| v)
            .filter(|v| v.vpa.spec.effective_update_mode() != ApiUpdateMode::Off)
            .filter(|v| self.recommenders.accepts(&v.vpa))
            .collect();
        // No VPA here: skip the owner walk, which may fail on a cold cache.
        if candidates.is_empty() {
            return Ok(None);
        }
        let Some(top) = owner::top_controller(&pod.metadata, |c| self.lookup(namespace, c))? else {
            return Ok(None);
        };
        let key = (namespace.to_owned(), top.kind.clone(), top.name.clone());
        // Upstream skips a VPA whose target selector cannot be fetched.
        let Some(Ok(selector)) = self.controllers.get(&key).map(|c| &c.selector) else {
            return Ok(None);
        };
        let empty = BTreeMap::new();
        if !selector.matches(pod.metadata.labels.as_ref().unwrap_or(&empty)) {
            return Ok(None);
        }
        Ok(candidates
            .into_iter()
            .filter(|v| top.is_target_of(&v.vpa.spec.target_ref))
            .min_by(|a, b| {
                let age = |v: &IndexedVpa| v.vpa.metadata.creation_timestamp.clone();
                age(a).cmp(&age(b)).then_with(|| a.name().cmp(b.name()))
            }))
    }

    /// The value of annotation `key` on the pod, or else on the nearest
    /// controller in its owner chain that has it (ReplicaSet, then
    /// Deployment, ...). Stops at a controller missing from the cache.
    #[must_use]
    pub fn annotation<'a>(&'a self, pod: &'a Pod, key: &str) -> Option<&'a str> {
        if let Some(v) = pod.metadata.annotations.as_ref().and_then(|a| a.get(key)) {
            return Some(v);
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let mut owner = owner::controller_of(pod.metadata.owner_references.as_deref());
        for _ in 0..MAX_OWNER_DEPTH {
            let current = owner?;
            let controller = self.controllers.get(&(
                namespace.to_owned(),
                current.kind.clone(),
                current.name.clone(),
            ))?;
            if let Some(v) = controller.annotations.get(key) {
                return Some(v);
            }
            owner = owner::controller_of(Some(&controller.owner_references));
        }
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};

    pub(crate) fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    pub(crate) fn deployment(name: &str, app: &str, annotations: serde_json::Value) -> Deployment {
        from_json(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
            "spec": {
                "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app}}, "spec": {"containers": []}}
            }
        }))
    }

    pub(crate) fn replica_set(name: &str, deployment: &str, app: &str) -> ReplicaSet {
        from_json(serde_json::json!({
            "metadata": {
                "name": name, "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment, "uid": "d1", "controller": true}]
            },
            "spec": {"selector": {"matchLabels": {"app": app}}}
        }))
    }

    pub(crate) fn vpa(
        name: &str,
        kind: &str,
        target: &str,
        extra: serde_json::Value,
    ) -> VerticalPodAutoscaler {
        let mut v = serde_json::json!({
            "apiVersion": "autoscaling.k8s.io/v1",
            "kind": "VerticalPodAutoscaler",
            "metadata": {"name": name, "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target}}
        });
        if let serde_json::Value::Object(extra) = extra {
            for (k, val) in extra {
                match k.as_str() {
                    "creationTimestamp" => v["metadata"][k] = val,
                    "status" => v["status"] = val,
                    _ => v["spec"][k] = val,
                }
            }
        }
        from_json(v)
    }

    pub(crate) fn pod(owner_kind: &str, owner: &str, labels: serde_json::Value) -> Pod {
        from_json(serde_json::json!({
            "metadata": {
                "generateName": "web-", "namespace": "shop", "labels": labels,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner, "uid": "r1", "controller": true}]
            },
            "spec": {"containers": [{"name": "app"}]}
        }))
    }

    /// Deployment `web` → ReplicaSet `web-7d9f` (app=web), and `api` alone.
    pub(crate) fn index_with_web() -> Index {
        let mut index = Index::new(RecommenderFilter::Any);
        index.apply_controller(TargetObject::Deployment(&deployment(
            "web",
            "web",
            serde_json::json!({"tailor.dev/interruption-tolerant": "true"}),
        )));
        index.apply_controller(TargetObject::ReplicaSet(&replica_set(
            "web-7d9f", "web", "web",
        )));
        index.apply_controller(TargetObject::Deployment(&deployment(
            "api",
            "api",
            serde_json::json!({}),
        )));
        index
    }

    fn web_pod() -> Pod {
        pod("ReplicaSet", "web-7d9f", serde_json::json!({"app": "web"}))
    }

    fn matched(index: &Index, pod: &Pod) -> Option<String> {
        index.match_vpa(pod).unwrap().map(|v| v.name().to_owned())
    }

    #[test]
    fn pod_matches_the_vpa_of_its_deployment() {
        let mut index = index_with_web();
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        index.apply_vpa(vpa("api-vpa", "Deployment", "api", serde_json::json!({})));
        assert_eq!(matched(&index, &web_pod()).as_deref(), Some("web-vpa"));
    }

    #[rstest::rstest]
    #[case::older_wins("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "a-vpa")]
    #[case::older_wins_whatever_the_name("2026-03-01T00:00:00Z", "2026-02-01T00:00:00Z", "b-vpa")]
    #[case::tie_smaller_name("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "a-vpa")]
    fn oldest_vpa_wins(#[case] a_created: &str, #[case] b_created: &str, #[case] expected: &str) {
        let mut index = index_with_web();
        index.apply_vpa(vpa(
            "a-vpa",
            "Deployment",
            "web",
            serde_json::json!({"creationTimestamp": a_created}),
        ));
        index.apply_vpa(vpa(
            "b-vpa",
            "Deployment",
            "web",
            serde_json::json!({"creationTimestamp": b_created}),
        ));
        assert_eq!(matched(&index, &web_pod()).as_deref(), Some(expected));
    }

    #[test]
    fn mode_off_is_skipped_and_the_next_one_wins() {
        let mut index = index_with_web();
        index.apply_vpa(vpa(
            "a-vpa",
            "Deployment",
            "web",
            serde_json::json!({"updatePolicy": {"updateMode": "Off"}}),
        ));
        assert_eq!(matched(&index, &web_pod()), None);
        index.apply_vpa(vpa(
            "b-vpa",
            "Deployment",
            "web",
            serde_json::json!({"updatePolicy": {"updateMode": "Initial"}, "creationTimestamp": "2026-05-01T00:00:00Z"}),
        ));
        assert_eq!(matched(&index, &web_pod()).as_deref(), Some("b-vpa"));
    }

    #[rstest::rstest]
    #[case::any_takes_all(RecommenderFilter::Any, serde_json::json!([{"name": "other"}]), true)]
    #[case::default_takes_unnamed(RecommenderFilter::Named("default".into()), serde_json::Value::Null, true)]
    #[case::default_skips_other(RecommenderFilter::Named("default".into()), serde_json::json!([{"name": "other"}]), false)]
    #[case::named_takes_first(RecommenderFilter::Named("tailor".into()), serde_json::json!([{"name": "tailor"}, {"name": "x"}]), true)]
    #[case::named_ignores_second(RecommenderFilter::Named("tailor".into()), serde_json::json!([{"name": "x"}, {"name": "tailor"}]), false)]
    #[case::named_skips_unnamed(RecommenderFilter::Named("tailor".into()), serde_json::Value::Null, false)]
    fn recommender_selection(
        #[case] filter: RecommenderFilter,
        #[case] recommenders: serde_json::Value,
        #[case] applies: bool,
    ) {
        let mut index = index_with_web();
        index.recommenders = filter;
        let extra = if recommenders.is_null() {
            serde_json::json!({})
        } else {
            serde_json::json!({"recommenders": recommenders})
        };
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", extra));
        assert_eq!(matched(&index, &web_pod()).is_some(), applies);
    }

    #[rstest::rstest]
    #[case::labels_do_not_match(serde_json::json!({"app": "other"}))]
    #[case::no_labels(serde_json::json!({}))]
    fn selector_must_match_the_pod(#[case] labels: serde_json::Value) {
        let mut index = index_with_web();
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        let pod = pod("ReplicaSet", "web-7d9f", labels);
        assert_eq!(matched(&index, &pod), None);
    }

    #[test]
    fn vpa_naming_the_replicaset_does_not_match_a_deployment_pod() {
        // As upstream: only the top-most controller counts.
        let mut index = index_with_web();
        index.apply_vpa(vpa(
            "rs-vpa",
            "ReplicaSet",
            "web-7d9f",
            serde_json::json!({}),
        ));
        assert_eq!(matched(&index, &web_pod()), None);
    }

    #[test]
    fn other_namespace_does_not_match() {
        let mut index = index_with_web();
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        let mut pod = web_pod();
        pod.metadata.namespace = Some("other".to_owned());
        assert_eq!(index.match_vpa(&pod).unwrap().map(IndexedVpa::name), None);
    }

    #[test]
    fn missing_replicaset_is_an_error_only_when_a_vpa_could_apply() {
        let mut index = index_with_web();
        let pod = pod("ReplicaSet", "web-new", serde_json::json!({"app": "web"}));
        assert_eq!(index.match_vpa(&pod).unwrap().map(IndexedVpa::name), None);
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        let err = index.match_vpa(&pod).unwrap_err();
        assert!(err.to_string().contains("web-new"), "{err}");
    }

    #[test]
    fn deleted_vpa_and_controller_stop_matching() {
        let mut index = index_with_web();
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        index.delete_vpa("shop", "web-vpa");
        assert_eq!(matched(&index, &web_pod()), None);
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        index.delete_controller("shop", "ReplicaSet", "web-7d9f");
        assert!(index.match_vpa(&web_pod()).is_err());
    }

    #[test]
    fn clearing_forgets_only_what_was_asked() {
        let mut index = index_with_web();
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        index.clear_controllers("Deployment");
        assert!(
            index.match_vpa(&web_pod()).is_err(),
            "the Deployment is gone"
        );
        let mut index = index_with_web();
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        index.clear_controllers("StatefulSet");
        assert_eq!(matched(&index, &web_pod()).as_deref(), Some("web-vpa"));
        index.clear_vpas();
        assert_eq!(index.vpa_count(), 0);
        assert_eq!(matched(&index, &web_pod()), None);
        index.apply_limit_range(&from_json(serde_json::json!({
            "metadata": {"name": "a", "namespace": "shop"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "1"}}]}
        })));
        assert!(index.limits("shop").unwrap().container.is_some());
        index.clear_limit_ranges();
        assert_eq!(index.limits("shop").unwrap(), NamespaceLimits::default());
    }

    #[test]
    fn cronjob_pods_match_through_the_job() {
        let mut index = Index::new(RecommenderFilter::Any);
        let cron: CronJob = from_json(serde_json::json!({
            "metadata": {"name": "nightly", "namespace": "shop"},
            "spec": {"schedule": "0 0 * * *", "jobTemplate": {"spec": {"template": {
                "metadata": {"labels": {"job": "nightly"}}, "spec": {"containers": []}}}}}
        }));
        let job: Job = from_json(serde_json::json!({
            "metadata": {"name": "nightly-1", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "c", "controller": true}]},
            "spec": {"template": {"spec": {"containers": []}}}
        }));
        index.apply_controller(TargetObject::CronJob(&cron));
        index.apply_controller(TargetObject::Job(&job));
        index.apply_vpa(vpa("cron-vpa", "CronJob", "nightly", serde_json::json!({})));
        let p = pod("Job", "nightly-1", serde_json::json!({"job": "nightly"}));
        assert_eq!(matched(&index, &p).as_deref(), Some("cron-vpa"));
    }

    #[test]
    fn scalable_custom_resource_matches_through_its_scale_selector() {
        let mut index = Index::new(RecommenderFilter::Any);
        let meta: ObjectMeta = from_json(serde_json::json!({"name": "db", "namespace": "shop"}));
        let scale: Scale = from_json(serde_json::json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "status": {"replicas": 3, "selector": "app=db"}
        }));
        index.apply_scalable("Database", &meta, &scale);
        index.apply_vpa(vpa("db-vpa", "Database", "db", serde_json::json!({})));
        let p = pod("Database", "db", serde_json::json!({"app": "db"}));
        assert_eq!(matched(&index, &p).as_deref(), Some("db-vpa"));
    }

    #[test]
    fn custom_targets_feed_scale_selectors_that_a_refresh_replaces() {
        let mut index = Index::new(RecommenderFilter::Any);
        index.apply_vpa(vpa("db-vpa", "Database", "db", serde_json::json!({})));
        index.apply_vpa(vpa(
            "off-vpa",
            "Database",
            "old",
            serde_json::json!({"updatePolicy": {"updateMode": "Off"}}),
        ));
        index.apply_vpa(vpa("web-vpa", "Deployment", "web", serde_json::json!({})));
        let names: Vec<String> = index
            .custom_targets()
            .into_iter()
            .map(|(ns, t)| format!("{ns}/{}/{}", t.kind, t.name))
            .collect();
        // Mode Off never matches and Deployments are watched: neither is read.
        assert_eq!(names, ["shop/Database/db"]);
        let p = pod("Database", "db", serde_json::json!({"app": "db"}));
        assert_eq!(matched(&index, &p), None);
        let selector = Selector::parse("app=db").unwrap();
        index.set_scale_targets([("shop".into(), "Database".into(), "db".into(), selector)]);
        assert_eq!(matched(&index, &p).as_deref(), Some("db-vpa"));
        // A refresh that no longer knows it drops it.
        index.set_scale_targets([]);
        assert_eq!(matched(&index, &p), None);
    }

    #[test]
    fn annotation_comes_from_the_pod_first_then_the_nearest_owner() {
        let index = index_with_web();
        let key = "tailor.dev/interruption-tolerant";
        let mut p = web_pod();
        assert_eq!(index.annotation(&p, key), Some("true"));
        p.metadata.annotations = Some(BTreeMap::from([(key.to_owned(), "false".to_owned())]));
        assert_eq!(index.annotation(&p, key), Some("false"));
        let lone = pod("ReplicaSet", "unknown", serde_json::json!({}));
        assert_eq!(index.annotation(&lone, key), None);
    }

    #[test]
    fn vpa_with_unknown_mode_keeps_its_conversion_error() {
        let v = IndexedVpa::new(vpa(
            "web-vpa",
            "Deployment",
            "web",
            serde_json::json!({"updatePolicy": {"updateMode": "Sometimes"}}),
        ));
        let err = v.converted.unwrap_err();
        assert!(err.to_string().contains("Sometimes"), "{err}");
    }
}
