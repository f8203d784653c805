//! From discovered series to API metrics: resource names, label ↔ resource
//! association, series filters, metric naming, and series selectors.

use crate::promql;
use crate::template::{Field, Kind, ResourceArgs, Template};
use regex::Regex;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

/// A Kubernetes group-resource; `resource` is plural and lower-case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group; empty for the core group.
    pub group: String,
    /// Plural resource name, e.g. `pods`.
    pub resource: String,
}

impl GroupResource {
    /// A group-resource from its parts.
    #[must_use]
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// The `namespaces` resource.
    #[must_use]
    pub fn namespaces() -> Self {
        GroupResource::new("", "namespaces")
    }

    /// The `nodes` resource.
    #[must_use]
    pub fn nodes() -> Self {
        GroupResource::new("", "nodes")
    }

    /// The `pods` resource.
    #[must_use]
    pub fn pods() -> Self {
        GroupResource::new("", "pods")
    }

    /// Parses the API path form `resource` or `resource.group`.
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s.split_once('.') {
            Some((resource, group)) => GroupResource::new(group, resource),
            None => GroupResource::new("", s),
        }
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            f.write_str(&self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// A resource the adapter knows without asking the Kubernetes API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuiltinResource {
    /// API group.
    pub group: &'static str,
    /// Preferred version.
    pub version: &'static str,
    /// Plural name.
    pub plural: &'static str,
    /// Singular name.
    pub singular: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Short names (`po`, `svc`, …).
    pub short_names: &'static [&'static str],
    /// True for namespaced resources.
    pub namespaced: bool,
}

impl BuiltinResource {
    /// Its group-resource.
    #[must_use]
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group, self.plural)
    }

    /// `apiVersion` for `describedObject`.
    #[must_use]
    pub fn api_version(&self) -> String {
        ResourceInfo::from(self).api_version()
    }
}

const fn builtin(
    group: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
) -> BuiltinResource {
    BuiltinResource {
        group,
        version: "v1",
        plural,
        singular,
        kind,
        short_names,
        namespaced,
    }
}

/// The resources served with no Kubernetes API access: core pods, nodes,
/// namespaces, services, and the apps/batch workload kinds.
pub const BUILTIN_RESOURCES: &[BuiltinResource] = &[
    builtin("", "pods", "pod", "Pod", &["po"], true),
    builtin("", "nodes", "node", "Node", &["no"], false),
    builtin("", "namespaces", "namespace", "Namespace", &["ns"], false),
    builtin("", "services", "service", "Service", &["svc"], true),
    builtin(
        "apps",
        "deployments",
        "deployment",
        "Deployment",
        &["deploy"],
        true,
    ),
    builtin(
        "apps",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        &["sts"],
        true,
    ),
    builtin(
        "apps",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        &["ds"],
        true,
    ),
    builtin(
        "apps",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        &["rs"],
        true,
    ),
    builtin("batch", "jobs", "job", "Job", &[], true),
    builtin("batch", "cronjobs", "cronjob", "CronJob", &["cj"], true),
];

/// Finds a built-in resource by plural, singular or short name (any case);
/// an empty group matches any group, as the RESTMapper guesses it.
#[must_use]
pub fn builtin_resource(group: &str, resource: &str) -> Option<&'static BuiltinResource> {
    let resource = resource.to_ascii_lowercase();
    BUILTIN_RESOURCES.iter().find(|b| {
        (group.is_empty() || b.group == group)
            && (b.plural == resource
                || b.singular == resource
                || b.short_names.contains(&resource.as_str()))
    })
}

/// The normalized group-resource: built-in names resolved to their plural
/// and group; anything else kept as written (lower-cased), for the
/// discovery-backed mapper to resolve later.
#[must_use]
pub fn normalize(group: &str, resource: &str) -> GroupResource {
    match builtin_resource(group, resource) {
        Some(b) => b.group_resource(),
        None => GroupResource::new(&group.to_ascii_lowercase(), &resource.to_ascii_lowercase()),
    }
}

/// A resource the Kubernetes API serves: what it takes to name, list and
/// describe its objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: String,
    /// Preferred version.
    pub version: String,
    /// Plural name (`ingresses`).
    pub plural: String,
    /// Singular name (`ingress`).
    pub singular: String,
    /// Kind (`Ingress`).
    pub kind: String,
    /// Short names accepted as labels (built-in resources only, as before
    /// discovery existed; upstream's RESTMapper accepts none).
    pub short_names: Vec<String>,
    /// True for namespaced resources.
    pub namespaced: bool,
}

impl ResourceInfo {
    /// A resource in version `v1` of `group`, without short names.
    #[must_use]
    pub fn v1(group: &str, plural: &str, singular: &str, kind: &str, namespaced: bool) -> Self {
        ResourceInfo {
            group: group.to_owned(),
            version: "v1".to_owned(),
            plural: plural.to_owned(),
            singular: singular.to_owned(),
            kind: kind.to_owned(),
            short_names: Vec::new(),
            namespaced,
        }
    }

    /// Its group-resource.
    #[must_use]
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    /// `apiVersion` of its objects.
    #[must_use]
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn names(&self, resource: &str) -> bool {
        self.plural == resource || self.singular == resource
    }
}

impl From<&BuiltinResource> for ResourceInfo {
    fn from(b: &BuiltinResource) -> Self {
        ResourceInfo {
            group: b.group.to_owned(),
            version: b.version.to_owned(),
            plural: b.plural.to_owned(),
            singular: b.singular.to_owned(),
            kind: b.kind.to_owned(),
            short_names: b.short_names.iter().map(|s| (*s).to_owned()).collect(),
            namespaced: b.namespaced,
        }
    }
}

/// The resources labels and request paths can name, in priority order
/// (the core group first, then groups as API discovery lists them): the
/// built-in set without API access, everything discovery lists with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceIndex {
    resources: Vec<ResourceInfo>,
}

impl Default for ResourceIndex {
    fn default() -> Self {
        ResourceIndex::builtin()
    }
}

impl ResourceIndex {
    /// The built-in resources only.
    #[must_use]
    pub fn builtin() -> Self {
        ResourceIndex {
            resources: BUILTIN_RESOURCES.iter().map(ResourceInfo::from).collect(),
        }
    }

    /// Discovered resources, in priority order. Built-in resources keep
    /// their short names; any built-in discovery did not list is appended,
    /// so what works without API access keeps working with it.
    #[must_use]
    pub fn with_discovered(discovered: Vec<ResourceInfo>) -> Self {
        let mut resources = discovered;
        for r in &mut resources {
            if let Some(b) = BUILTIN_RESOURCES
                .iter()
                .find(|b| b.group == r.group && b.plural == r.plural)
            {
                r.short_names = ResourceInfo::from(b).short_names;
            }
        }
        for b in BUILTIN_RESOURCES {
            if !resources
                .iter()
                .any(|r| r.group == b.group && r.plural == b.plural)
            {
                resources.push(ResourceInfo::from(b));
            }
        }
        ResourceIndex { resources }
    }

    /// Every resource, in priority order.
    #[must_use]
    pub fn resources(&self) -> &[ResourceInfo] {
        &self.resources
    }

    /// The resource `group` and `resource` name, as upstream's RESTMapper
    /// resolves a partial group-resource: the resource by plural or
    /// singular name, any case (plus built-in short names); an empty group
    /// takes the first match in priority order; a group is matched exactly,
    /// then in its label-sanitized form (`networking_k8s_io`), then as a
    /// prefix (`networking` → `networking.k8s.io`).
    #[must_use]
    pub fn find(&self, group: &str, resource: &str) -> Option<&ResourceInfo> {
        let resource = resource.to_ascii_lowercase();
        let named = |r: &&ResourceInfo| r.names(&resource) || r.short_names.contains(&resource);
        if group.is_empty() {
            return self.resources.iter().find(named);
        }
        let group = group.to_ascii_lowercase();
        let in_group = |pred: &dyn Fn(&str) -> bool| {
            self.resources.iter().filter(|r| pred(&r.group)).find(named)
        };
        in_group(&|g| g == group)
            .or_else(|| in_group(&|g| g.replace(['.', '-'], "_") == group))
            .or_else(|| in_group(&|g| g.starts_with(group.as_str())))
    }

    /// The normalized group-resource: known names resolved to their plural
    /// and group; anything else kept as written (lower-cased).
    #[must_use]
    pub fn normalize(&self, group: &str, resource: &str) -> GroupResource {
        match self.find(group, resource) {
            Some(r) => r.group_resource(),
            None => GroupResource::new(&group.to_ascii_lowercase(), &resource.to_ascii_lowercase()),
        }
    }

    /// Kind and apiVersion of a resource's objects, when known.
    #[must_use]
    pub fn kind_of(&self, resource: &GroupResource) -> Option<(String, String)> {
        self.find(&resource.group, &resource.resource)
            .map(|r| (r.kind.clone(), r.api_version()))
    }

    /// True when the resource is known and cluster-scoped.
    #[must_use]
    pub fn is_cluster_scoped(&self, resource: &GroupResource) -> bool {
        self.find(&resource.group, &resource.resource)
            .is_some_and(|r| !r.namespaced)
    }
}

/// The current [`ResourceIndex`], shared by the relist, the request path
/// and the object cache, and replaced whole by each API discovery. Cheap to
/// clone; starts with the built-in resources.
#[derive(Clone, Debug, Default)]
pub struct KnownResources {
    current: Arc<RwLock<Arc<ResourceIndex>>>,
}

impl KnownResources {
    /// The index now (one `Arc` clone under a read lock).
    #[must_use]
    pub fn current(&self) -> Arc<ResourceIndex> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the index; returns true when it changed.
    pub fn replace(&self, index: ResourceIndex) -> bool {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if **current == index {
            return false;
        }
        *current = Arc::new(index);
        true
    }
}

/// The singular form used in resource-label templates.
#[must_use]
pub fn singular(resource: &GroupResource) -> String {
    if let Some(b) = builtin_resource(&resource.group, &resource.resource) {
        return b.singular.to_owned();
    }
    let r = &resource.resource;
    if let Some(stem) = r.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = r.strip_suffix("ses") {
        format!("{stem}s")
    } else if let Some(stem) = r.strip_suffix('s') {
        stem.to_owned()
    } else {
        r.clone()
    }
}

/// A naming or association problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NamingError {
    /// A regex did not compile.
    #[error("invalid regex {regex:?}: {reason}")]
    Regex {
        /// The regex.
        regex: String,
        /// Compiler message.
        reason: String,
    },
    /// `name.as` left empty with several capture groups in `name.matches`.
    #[error("name.matches {0:?} has more than one capture group; name.as is required")]
    AmbiguousAs(String),
    /// A series filter with both or neither of `is` and `isNot`.
    #[error("a series filter needs exactly one of `is` and `isNot`")]
    Filter,
    /// A resource template without `.Resource`.
    #[error("resources.template {0:?} must use <<.Resource>>")]
    TemplateWithoutResource(String),
    /// An override label that is not a Prometheus label name.
    #[error("override label {0:?} is not a valid Prometheus label name")]
    OverrideLabel(String),
    /// No override or template names the label for a resource.
    #[error(
        "no label for resource {0}: no override names it and the rule has no resources.template"
    )]
    NoLabelForResource(GroupResource),
    /// The template produced an invalid label name for a resource.
    #[error("resources.template gives {label:?} for {resource}, which is not a valid label name")]
    BadLabel {
        /// The resource.
        resource: GroupResource,
        /// The label produced.
        label: String,
    },
    /// A series name did not match `name.matches`.
    #[error("series {series:?} does not match name.matches {matches:?}")]
    NoMatch {
        /// The series name.
        series: String,
        /// The regex.
        matches: String,
    },
    /// `name.as` expanded to an empty metric name.
    #[error("series {0:?} is named \"\" by name.as")]
    EmptyName(String),
}

fn compile(regex: &str) -> Result<Regex, NamingError> {
    Regex::new(regex).map_err(|e| NamingError::Regex {
        regex: regex.to_owned(),
        reason: e.to_string(),
    })
}

/// One `seriesFilters` entry.
#[derive(Clone, Debug)]
pub enum SeriesFilter {
    /// Keep series whose name matches.
    Is(Regex),
    /// Keep series whose name does not match.
    IsNot(Regex),
}

impl SeriesFilter {
    /// Builds a filter from the config's `is`/`isNot` pair.
    ///
    /// # Errors
    /// Both or neither set; an invalid regex.
    pub fn new(is: Option<&str>, is_not: Option<&str>) -> Result<Self, NamingError> {
        let is = is.filter(|s| !s.is_empty());
        let is_not = is_not.filter(|s| !s.is_empty());
        match (is, is_not) {
            (Some(re), None) => Ok(SeriesFilter::Is(compile(re)?)),
            (None, Some(re)) => Ok(SeriesFilter::IsNot(compile(re)?)),
            _ => Err(NamingError::Filter),
        }
    }

    /// True when the series name passes (unanchored, as Go's `MatchString`).
    #[must_use]
    pub fn keeps(&self, series: &str) -> bool {
        match self {
            SeriesFilter::Is(re) => re.is_match(series),
            SeriesFilter::IsNot(re) => !re.is_match(series),
        }
    }
}

/// `name.matches` / `name.as`.
#[derive(Clone, Debug)]
pub struct NameMapping {
    matches: Regex,
    as_: String,
}

impl NameMapping {
    /// Builds the mapping; `matches` defaults to `.*`, `as` to `$0` without
    /// capture groups or `$1` with one.
    ///
    /// # Errors
    /// An invalid regex; several groups and no `as`.
    pub fn new(matches: &str, as_: &str) -> Result<Self, NamingError> {
        let matches = if matches.is_empty() { ".*" } else { matches };
        let re = compile(matches)?;
        let as_ = if as_.is_empty() {
            match re.captures_len() {
                1 => "$0".to_owned(),
                2 => "$1".to_owned(),
                _ => return Err(NamingError::AmbiguousAs(matches.to_owned())),
            }
        } else {
            as_.to_owned()
        };
        Ok(NameMapping { matches: re, as_ })
    }

    /// The regex, which also filters series.
    #[must_use]
    pub fn matches(&self) -> &Regex {
        &self.matches
    }

    /// The API name for a series (Go `Regexp.Expand` semantics for `$n`,
    /// `${n}`, `$name`, `$$`).
    ///
    /// # Errors
    /// The series does not match, or the name comes out empty.
    pub fn metric_name(&self, series: &str) -> Result<String, NamingError> {
        let caps = self
            .matches
            .captures(series)
            .ok_or_else(|| NamingError::NoMatch {
                series: series.to_owned(),
                matches: self.matches.as_str().to_owned(),
            })?;
        let mut out = String::new();
        caps.expand(&self.as_, &mut out);
        if out.is_empty() {
            return Err(NamingError::EmptyName(series.to_owned()));
        }
        Ok(out)
    }
}

/// `resources`: label ↔ group-resource association for one rule.
#[derive(Clone, Debug)]
pub struct ResourceMapper {
    overrides: BTreeMap<String, GroupResource>,
    by_resource: BTreeMap<GroupResource, String>,
    template: Option<Template>,
    template_regex: Option<(Regex, bool)>,
    /// Labels the template matched, by the resource discovery resolved them
    /// to: the template's singular comes from the heuristic in
    /// [`singular`], which discovery's names can defeat (`leases` → `lease`).
    learned: Arc<RwLock<BTreeMap<GroupResource, String>>>,
}

impl ResourceMapper {
    /// Builds the mapper from `resources.template` and `resources.overrides`
    /// (label → group-resource as written).
    ///
    /// # Errors
    /// A template without `.Resource`, or override labels that are not labels.
    pub fn new(
        template: Option<Template>,
        overrides: &BTreeMap<String, (String, String)>,
    ) -> Result<Self, NamingError> {
        let mut by_label = BTreeMap::new();
        let mut by_resource = BTreeMap::new();
        for (label, (group, resource)) in overrides {
            if !promql::is_label_name(label) {
                return Err(NamingError::OverrideLabel(label.clone()));
            }
            let gr = normalize(group, resource);
            by_resource.insert(gr.clone(), label.clone());
            by_label.insert(label.clone(), gr);
        }
        let template_regex = match &template {
            None => None,
            Some(t) => Some(label_regex(t)?),
        };
        Ok(ResourceMapper {
            overrides: by_label,
            by_resource,
            template,
            template_regex,
            learned: Arc::default(),
        })
    }

    /// True when neither a template nor an override is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.overrides.is_empty() && self.template.is_none()
    }

    /// The Prometheus label holding names of `resource` (overrides first,
    /// then the template with the sanitized group and singular resource).
    ///
    /// # Errors
    /// No override and no template, or a template result that is not a label.
    pub fn label_for(&self, resource: &GroupResource) -> Result<String, NamingError> {
        if let Some(label) = self.by_resource.get(resource) {
            return Ok(label.clone());
        }
        // An override naming a resource only discovery resolves is keyed as
        // written (`ingress` in `networking.k8s.io`): match its singular.
        let one = singular(resource);
        if let Some((_, label)) = self.by_resource.iter().find(|(gr, _)| {
            (gr.group == resource.group || gr.group.is_empty()) && gr.resource == one
        }) {
            return Ok(label.clone());
        }
        if let Some(label) = self
            .learned
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(resource)
        {
            return Ok(label.clone());
        }
        let Some(template) = &self.template else {
            return Err(NamingError::NoLabelForResource(resource.clone()));
        };
        let args = ResourceArgs {
            group: resource.group.replace(['.', '-'], "_"),
            resource: singular(resource),
        };
        let label = template
            .render_resource(&args)
            .map_err(|_| NamingError::NoLabelForResource(resource.clone()))?;
        if !promql::is_label_name(&label) {
            return Err(NamingError::BadLabel {
                resource: resource.clone(),
                label,
            });
        }
        Ok(label)
    }

    /// The resource a label stands for, if any, resolved through `known`
    /// (built-in resources, or everything API discovery lists). Template
    /// matches count only when they name a known resource, as upstream
    /// skips labels its RESTMapper cannot resolve. A template match is
    /// remembered for [`ResourceMapper::label_for`] when the label is not
    /// what the singular heuristic would render (upstream caches the same).
    #[must_use]
    pub fn resource_for(&self, label: &str, known: &ResourceIndex) -> Option<GroupResource> {
        if let Some(gr) = self.overrides.get(label) {
            return Some(known.normalize(&gr.group, &gr.resource));
        }
        let (re, has_group) = self.template_regex.as_ref()?;
        let caps = re.captures(label)?;
        let resource = caps.name("resource")?.as_str();
        let group = if *has_group {
            caps.name("group").map_or("", |m| m.as_str())
        } else {
            ""
        };
        let gr = known.find(group, resource)?.group_resource();
        if singular(&gr) != resource {
            self.learned
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(gr.clone(), label.to_owned());
        }
        Some(gr)
    }

    /// The resources a series' labels stand for, and whether one of them is
    /// the namespace.
    #[must_use]
    pub fn resources_for_series<'a>(
        &self,
        labels: impl IntoIterator<Item = &'a str>,
        known: &ResourceIndex,
    ) -> (BTreeSet<GroupResource>, bool) {
        let mut out = BTreeSet::new();
        for label in labels {
            if let Some(gr) = self.resource_for(label, known) {
                out.insert(gr);
            }
        }
        let namespaced = out.contains(&GroupResource::namespaces());
        (out, namespaced)
    }
}

/// A regex recognizing labels the template produces, with `group` and
/// `resource` capture groups; literal text is escaped.
fn label_regex(template: &Template) -> Result<(Regex, bool), NamingError> {
    let mut re = String::from("^");
    let (mut has_group, mut has_resource) = (false, false);
    for part in template.resource_parts() {
        match part {
            Ok(text) => re.push_str(&promql::regex_escape(text)),
            Err(Field::Group) if !has_group => {
                has_group = true;
                re.push_str("(?P<group>.+?)");
            }
            Err(Field::Resource) if !has_resource => {
                has_resource = true;
                re.push_str("(?P<resource>.+?)");
            }
            Err(Field::Group) => re.push_str(".+?"),
            Err(_) => re.push_str(".+?"),
        }
    }
    re.push('$');
    if !has_resource {
        return Err(NamingError::TemplateWithoutResource(
            template.source().to_owned(),
        ));
    }
    Ok((compile(&re)?, has_group))
}

/// Parses a resource template (`kube_<<.Group>>_<<.Resource>>`).
///
/// # Errors
/// Template syntax errors.
pub fn parse_resource_template(source: &str) -> Result<Template, crate::template::ParseError> {
    Template::parse(source, Kind::ResourceLabel)
}

/// A discovered series: its name and label names (values are not kept).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Series {
    /// The metric name.
    pub name: String,
    /// Label names other than `__name__`.
    pub labels: BTreeSet<String>,
}

impl Series {
    /// A series from its name and label names.
    #[must_use]
    pub fn new<I, S>(name: &str, labels: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Series {
            name: name.to_owned(),
            labels: labels
                .into_iter()
                .map(Into::into)
                .filter(|l: &String| l != "__name__")
                .collect(),
        }
    }
}

/// One matcher of a series selector.
#[derive(Clone, Debug)]
pub struct Matcher {
    /// The label (`__name__` for the metric name).
    pub label: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or regex as written.
    pub value: String,
    regex: Option<Regex>,
}

/// A label matcher operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

impl Matcher {
    fn matches(&self, value: Option<&str>) -> bool {
        // An absent label is the empty string in PromQL.
        let v = value.unwrap_or("");
        match self.op {
            MatchOp::Eq => v == self.value,
            MatchOp::Ne => v != self.value,
            MatchOp::Re => self.regex.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::NotRe => !self.regex.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }
}

/// A parsed PromQL series selector (`seriesQuery`): `name{l="v",…}`.
#[derive(Clone, Debug)]
pub struct SeriesSelector {
    source: String,
    matchers: Vec<Matcher>,
}

/// A series selector that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("series selector {input:?} at byte {offset}: {reason}")]
pub struct SelectorSyntaxError {
    /// The selector.
    pub input: String,
    /// Byte offset of the problem.
    pub offset: usize,
    /// What was wrong.
    pub reason: String,
}

impl SeriesSelector {
    /// Parses a series selector as Prometheus' `/api/v1/series` accepts it.
    ///
    /// # Errors
    /// Anything but a metric name and/or a brace list of matchers.
    pub fn parse(input: &str) -> Result<Self, SelectorSyntaxError> {
        let fail = |offset: usize, reason: &str| SelectorSyntaxError {
            input: input.to_owned(),
            offset,
            reason: reason.to_owned(),
        };
        let s = input.trim();
        let lead = input.len() - input.trim_start().len();
        let mut matchers = Vec::new();
        let brace = s.find('{');
        let name = brace.map_or(s, |b| &s[..b]).trim();
        if !name.is_empty() {
            if !promql::is_metric_name(name) {
                return Err(fail(lead, "invalid metric name"));
            }
            matchers.push(Matcher {
                label: "__name__".into(),
                op: MatchOp::Eq,
                value: name.into(),
                regex: None,
            });
        }
        if let Some(b) = brace {
            let body_start = b + 1;
            if !s.ends_with('}') {
                return Err(fail(lead + s.len(), "missing closing }"));
            }
            let body = &s[body_start..s.len() - 1];
            let mut i = 0;
            let bytes = body.as_bytes();
            let skip_ws = |i: &mut usize| {
                while *i < bytes.len() && bytes[*i].is_ascii_whitespace() {
                    *i += 1;
                }
            };
            loop {
                skip_ws(&mut i);
                if i >= bytes.len() {
                    break;
                }
                let at = lead + body_start + i;
                let (label, op) = if matches!(bytes[i], b'"' | b'\'' | b'`') {
                    // `{"name"}`: a quoted metric name (Prometheus 3).
                    ("__name__".to_owned(), MatchOp::Eq)
                } else {
                    let start = i;
                    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_')
                    {
                        i += 1;
                    }
                    let label = &body[start..i];
                    if !promql::is_label_name(label) {
                        return Err(fail(at, "expected a label name"));
                    }
                    skip_ws(&mut i);
                    let rest = &body[i..];
                    let op = if rest.starts_with("=~") {
                        MatchOp::Re
                    } else if rest.starts_with("!~") {
                        MatchOp::NotRe
                    } else if rest.starts_with("!=") {
                        MatchOp::Ne
                    } else if rest.starts_with('=') {
                        MatchOp::Eq
                    } else {
                        return Err(fail(lead + body_start + i, "expected =, !=, =~ or !~"));
                    };
                    i += if op == MatchOp::Eq { 1 } else { 2 };
                    skip_ws(&mut i);
                    (label.to_owned(), op)
                };
                let (value, next) =
                    read_literal(body, i).map_err(|r| fail(lead + body_start + i, &r))?;
                i = next;
                let regex = match op {
                    MatchOp::Re | MatchOp::NotRe => Some(
                        Regex::new(&format!("^(?:{value})$"))
                            .map_err(|e| fail(at, &format!("invalid regex: {e}")))?,
                    ),
                    _ => None,
                };
                matchers.push(Matcher {
                    label,
                    op,
                    value,
                    regex,
                });
                skip_ws(&mut i);
                if i < bytes.len() {
                    if bytes[i] != b',' {
                        return Err(fail(lead + body_start + i, "expected , or }"));
                    }
                    i += 1;
                }
            }
        }
        if matchers.is_empty() {
            return Err(fail(lead, "empty selector"));
        }
        Ok(SeriesSelector {
            source: input.to_owned(),
            matchers,
        })
    }

    /// The selector as written.
    #[must_use]
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The parsed matchers.
    #[must_use]
    pub fn matchers(&self) -> &[Matcher] {
        &self.matchers
    }

    /// True when a series with these label values is selected.
    #[must_use]
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers
            .iter()
            .all(|m| m.matches(labels.get(&m.label).map(String::as_str)))
    }
}

/// Reads a PromQL string literal at byte `start` of `s`: its value and the
/// offset past it.
fn read_literal(s: &str, start: usize) -> Result<(String, usize), String> {
    let mut chars = s[start..].char_indices();
    let Some((_, open)) = chars.next() else {
        return Err("expected a quoted value".into());
    };
    if !matches!(open, '"' | '\'' | '`') {
        return Err("expected a quoted value".into());
    }
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if c == open {
            return Ok((out, start + i + 1));
        }
        if c == '\\' && open != '`' {
            let Some((_, e)) = chars.next() else {
                return Err("unterminated escape".into());
            };
            out.push(match e {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'a' => '\x07',
                'b' => '\x08',
                'f' => '\x0c',
                'v' => '\x0b',
                '\\' => '\\',
                e if e == open => e,
                e => return Err(format!("unsupported escape \\{e}")),
            });
            continue;
        }
        out.push(c);
    }
    Err("unterminated string".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    #[rstest]
    #[case("", "pod", Some("pods"))]
    #[case("", "pods", Some("pods"))]
    #[case("", "po", Some("pods"))]
    #[case("", "Namespace", Some("namespaces"))]
    #[case("", "deployment", Some("deployments.apps"))]
    #[case("apps", "statefulset", Some("statefulsets.apps"))]
    #[case("batch", "cronjobs", Some("cronjobs.batch"))]
    #[case("", "job", Some("jobs.batch"))]
    #[case("apps", "pods", None)]
    #[case("", "brand", None)]
    fn builtin_lookup(#[case] group: &str, #[case] resource: &str, #[case] want: Option<&str>) {
        assert_eq!(
            builtin_resource(group, resource).map(|b| b.group_resource().to_string()),
            want.map(str::to_owned)
        );
    }

    #[rstest]
    #[case(GroupResource::new("", "pods"), "pod")]
    #[case(GroupResource::new("cheese.io", "brands"), "brand")]
    #[case(GroupResource::new("x", "policies"), "policy")]
    #[case(GroupResource::new("x", "classes"), "class")]
    #[case(GroupResource::new("x", "sheep"), "sheep")]
    fn singulars(#[case] gr: GroupResource, #[case] want: &str) {
        assert_eq!(singular(&gr), want);
    }

    #[rstest]
    #[case("", "", "http_requests_total", Ok("http_requests_total"))]
    #[case("^(.*)_total$", "", "http_requests_total", Ok("http_requests"))]
    #[case(
        "^(.*)_total$",
        "${1}_per_second",
        "http_requests_total",
        Ok("http_requests_per_second")
    )]
    #[case(
        "^container_(.*)_seconds_total$",
        "",
        "container_cpu_usage_seconds_total",
        Ok("cpu_usage")
    )]
    #[case("^(?P<base>.*)_total$", "$base", "x_total", Ok("x"))]
    #[case("^(.*)_total$", "", "x_bytes", Err(()))]
    #[case("", "cheesy_goodness", "cheddar", Ok("cheesy_goodness"))]
    fn metric_names(
        #[case] matches: &str,
        #[case] as_: &str,
        #[case] series: &str,
        #[case] want: Result<&str, ()>,
    ) {
        let n = NameMapping::new(matches, as_).unwrap();
        assert_eq!(
            n.metric_name(series).map_err(|_| ()),
            want.map(str::to_owned)
        );
    }

    #[test]
    fn several_groups_need_as() {
        assert_eq!(
            NameMapping::new("^(a)(b)$", "").unwrap_err(),
            NamingError::AmbiguousAs("^(a)(b)$".into())
        );
        assert!(NameMapping::new("^(a)(b)$", "$2$1").is_ok());
        assert!(matches!(
            NameMapping::new("(", ""),
            Err(NamingError::Regex { .. })
        ));
    }

    #[rstest]
    #[case(Some("^container_.*_total$"), None, "container_x_total", true)]
    #[case(Some("^container_.*_total$"), None, "node_x_total", false)]
    #[case(None, Some(".*_seconds_total"), "a_seconds_total", false)]
    #[case(None, Some(".*_seconds_total"), "a_total", true)]
    fn filters(
        #[case] is: Option<&str>,
        #[case] is_not: Option<&str>,
        #[case] series: &str,
        #[case] keep: bool,
    ) {
        assert_eq!(SeriesFilter::new(is, is_not).unwrap().keeps(series), keep);
    }

    #[test]
    fn filters_need_exactly_one() {
        assert!(matches!(
            SeriesFilter::new(Some("a"), Some("b")),
            Err(NamingError::Filter)
        ));
        assert!(matches!(
            SeriesFilter::new(None, None),
            Err(NamingError::Filter)
        ));
        assert!(matches!(
            SeriesFilter::new(Some(""), Some("")),
            Err(NamingError::Filter)
        ));
    }

    fn overrides(pairs: &[(&str, &str, &str)]) -> BTreeMap<String, (String, String)> {
        pairs
            .iter()
            .map(|(l, g, r)| ((*l).to_owned(), ((*g).to_owned(), (*r).to_owned())))
            .collect()
    }

    #[rstest]
    #[case("<<.Resource>>", "pod", Some("pods"))]
    #[case("<<.Resource>>", "namespace", Some("namespaces"))]
    #[case("<<.Resource>>", "instance", None)]
    #[case("<<.Resource>>", "job", Some("jobs.batch"))]
    #[case(
        "kube_<<.Group>>_<<.Resource>>",
        "kube_apps_deployment",
        Some("deployments.apps")
    )]
    #[case("kube_<<.Group>>_<<.Resource>>", "kube__pod", None)]
    #[case("kube_<<.Group>>_<<.Resource>>", "deployment", None)]
    #[case("k8s.<<.Resource>>", "k8sXpod", None)]
    fn template_association(
        #[case] template: &str,
        #[case] label: &str,
        #[case] want: Option<&str>,
    ) {
        let m = ResourceMapper::new(
            Some(parse_resource_template(template).unwrap()),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            m.resource_for(label, &ResourceIndex::builtin())
                .map(|g| g.to_string()),
            want.map(str::to_owned)
        );
    }

    #[test]
    fn overrides_win_and_map_back() {
        let m = ResourceMapper::new(
            Some(parse_resource_template("kube_<<.Group>>_<<.Resource>>").unwrap()),
            &overrides(&[
                ("microservice", "apps", "deployment"),
                ("team", "", "namespace"),
            ]),
        )
        .unwrap();
        assert_eq!(
            m.resource_for("microservice", &ResourceIndex::builtin()),
            Some(GroupResource::new("apps", "deployments"))
        );
        assert_eq!(
            m.label_for(&GroupResource::new("apps", "deployments"))
                .unwrap(),
            "microservice"
        );
        assert_eq!(m.label_for(&GroupResource::namespaces()).unwrap(), "team");
        assert_eq!(m.label_for(&GroupResource::pods()).unwrap(), "kube__pod");
        assert_eq!(
            m.label_for(&GroupResource::new("networking.k8s.io", "ingresses"))
                .unwrap(),
            "kube_networking_k8s_io_ingress"
        );
        let (res, ns) = m.resources_for_series(
            ["microservice", "team", "kube_apps_statefulset", "other"],
            &ResourceIndex::builtin(),
        );
        assert!(ns);
        assert_eq!(res.len(), 3);
    }

    fn widgets_index() -> ResourceIndex {
        ResourceIndex::with_discovered(vec![
            ResourceInfo::v1("", "pods", "pod", "Pod", true),
            ResourceInfo::v1("events.k8s.io", "events", "event", "Event", true),
            ResourceInfo::v1("example.com", "widgets", "widget", "Widget", true),
            ResourceInfo::v1("other.example.com", "widgets", "widget", "Widget", true),
        ])
    }

    #[rstest]
    #[case("", "widget", Some("widgets.example.com"))]
    #[case("", "WIDGETS", Some("widgets.example.com"))]
    #[case("other.example.com", "widget", Some("widgets.other.example.com"))]
    #[case("other_example_com", "widget", Some("widgets.other.example.com"))]
    #[case("other", "widgets", Some("widgets.other.example.com"))]
    #[case("", "po", Some("pods"))]
    #[case("", "deployment", Some("deployments.apps"))]
    #[case("", "event", Some("events.events.k8s.io"))]
    #[case("example.com", "gadget", None)]
    #[case("", "Widget.example.com", None)]
    fn discovered_lookup(#[case] group: &str, #[case] resource: &str, #[case] want: Option<&str>) {
        assert_eq!(
            widgets_index()
                .find(group, resource)
                .map(|r| r.group_resource().to_string()),
            want.map(str::to_owned)
        );
    }

    #[test]
    fn overrides_and_templates_resolve_through_the_index() {
        let m = ResourceMapper::new(
            Some(parse_resource_template("<<.Resource>>").unwrap()),
            &overrides(&[("w", "example.com", "widget")]),
        )
        .unwrap();
        let index = widgets_index();
        let builtin = ResourceIndex::builtin();
        let widgets = GroupResource::new("example.com", "widgets");
        assert_eq!(m.resource_for("w", &index), Some(widgets.clone()));
        assert_eq!(m.resource_for("widget", &index), Some(widgets.clone()));
        assert_eq!(m.resource_for("widget", &builtin), None);
        // Back from the plural the request path names to the override label.
        assert_eq!(m.label_for(&widgets).unwrap(), "w");
        // The heuristic singular of `leases` is wrong; the label the
        // template matched is used instead.
        let leases = GroupResource::new("coordination.k8s.io", "leases");
        let coordination = ResourceIndex::with_discovered(vec![ResourceInfo::v1(
            "coordination.k8s.io",
            "leases",
            "lease",
            "Lease",
            true,
        )]);
        assert_eq!(m.label_for(&leases).unwrap(), "leas");
        assert_eq!(m.resource_for("lease", &coordination), Some(leases.clone()));
        assert_eq!(m.label_for(&leases).unwrap(), "lease");
        let known = KnownResources::default();
        assert_eq!(*known.current(), builtin);
        assert!(known.replace(index.clone()));
        assert!(!known.replace(index), "unchanged");
        assert_eq!(
            known.current().normalize("", "Widget"),
            GroupResource::new("example.com", "widgets")
        );
        assert_eq!(
            known.current().normalize("x.io", "Things"),
            GroupResource::new("x.io", "things")
        );
    }

    #[test]
    fn label_for_without_template_or_override_fails() {
        let m = ResourceMapper::new(None, &overrides(&[("pod", "", "pod")])).unwrap();
        assert_eq!(m.label_for(&GroupResource::pods()).unwrap(), "pod");
        assert_eq!(
            m.label_for(&GroupResource::namespaces()),
            Err(NamingError::NoLabelForResource(GroupResource::namespaces()))
        );
    }

    #[test]
    fn mapper_rejects_bad_inputs() {
        assert!(matches!(
            ResourceMapper::new(
                Some(parse_resource_template("kube_<<.Group>>").unwrap()),
                &BTreeMap::new()
            ),
            Err(NamingError::TemplateWithoutResource(_))
        ));
        assert!(matches!(
            ResourceMapper::new(None, &overrides(&[("a-b", "", "pod")])),
            Err(NamingError::OverrideLabel(_))
        ));
        let m = ResourceMapper::new(
            Some(parse_resource_template("x-<<.Resource>>").unwrap()),
            &BTreeMap::new(),
        )
        .unwrap();
        assert!(matches!(
            m.label_for(&GroupResource::pods()),
            Err(NamingError::BadLabel { .. })
        ));
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[rstest]
    #[case("{__name__=~\"^container_.*\",container!=\"POD\",namespace!=\"\",pod!=\"\"}", &[("__name__", "container_cpu"), ("namespace", "a"), ("pod", "p"), ("container", "c")], true)]
    #[case("{__name__=~\"^container_.*\",container!=\"POD\",namespace!=\"\",pod!=\"\"}", &[("__name__", "container_cpu"), ("namespace", "a"), ("pod", "p"), ("container", "POD")], false)]
    #[case("{__name__=~\"^container_.*\",container!=\"POD\",namespace!=\"\",pod!=\"\"}", &[("__name__", "container_cpu"), ("pod", "p")], false)]
    #[case("{namespace!=\"\",__name__!~\"^container_.*\"}", &[("__name__", "http_total"), ("namespace", "a")], true)]
    #[case("{namespace!=\"\",__name__!~\"^container_.*\"}", &[("__name__", "container_x"), ("namespace", "a")], false)]
    #[case("cheddar{sharp='true'}", &[("__name__", "cheddar"), ("sharp", "true")], true)]
    #[case("cheddar{sharp='true'}", &[("__name__", "cheddar"), ("sharp", "false")], false)]
    #[case("up", &[("__name__", "up")], true)]
    #[case("{\"my.metric\", a=\"b\"}", &[("__name__", "my.metric"), ("a", "b")], true)]
    #[case("{a=~\"b|c\"}", &[("a", "bc")], false)]
    fn series_selectors(
        #[case] selector: &str,
        #[case] series: &[(&str, &str)],
        #[case] want: bool,
    ) {
        let s = SeriesSelector::parse(selector).unwrap();
        assert_eq!(s.matches(&labels(series)), want);
    }

    #[rstest]
    #[case("")]
    #[case("{}")]
    #[case("{a=b}")]
    #[case("{a=\"b\"")]
    #[case("{a~\"b\"}")]
    #[case("{a=\"b\" b=\"c\"}")]
    #[case("{a=~\"(\"}")]
    #[case("x y{}")]
    #[case("{a=\"\\q\"}")]
    fn bad_series_selectors(#[case] selector: &str) {
        assert!(SeriesSelector::parse(selector).is_err(), "{selector}");
    }

    proptest! {
        #[test]
        fn series_selector_parse_never_panics(s in "\\PC{0,40}") {
            let _ = SeriesSelector::parse(&s);
        }

        #[test]
        fn series_selector_values_round_trip(v in any::<String>()) {
            let s = SeriesSelector::parse(&format!("{{a={}}}", promql::quote(&v))).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&s.matchers()[0].value, &v);
        }
    }
}
