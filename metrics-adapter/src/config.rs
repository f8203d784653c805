//! prometheus-adapter's config file (`--config`): `rules`, `externalRules`
//! and `resourceRules`, parsed strictly into typed, validated rules.
//!
//! Everything that can be checked without Prometheus is checked at load
//! time: unknown fields, regexes, templates (and where their fields may sit),
//! series selectors, label names, and the labels each rule will need. Errors
//! name the file, the rule (section and index) and the field.

use crate::naming::{
    GroupResource, NameMapping, ResourceMapper, SeriesFilter, SeriesSelector,
    parse_resource_template,
};
use crate::promql;
use crate::template::{Kind, Template};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// The config section a rule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    /// `rules`: custom metrics.
    Rules,
    /// `externalRules`: external metrics.
    ExternalRules,
    /// `resourceRules`: `metrics.k8s.io`.
    ResourceRules,
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Section::Rules => "rules",
            Section::ExternalRules => "externalRules",
            Section::ResourceRules => "resourceRules",
        })
    }
}

/// Where in the config file something is: `rules[2].metricsQuery`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The section.
    pub section: Section,
    /// The rule's index in a list section; `None` for `resourceRules`.
    pub index: Option<usize>,
    /// The field path inside the rule.
    pub field: String,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.section)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        if !self.field.is_empty() {
            write!(f, ".{}", self.field)?;
        }
        Ok(())
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the metrics discovery config: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not YAML, or not the expected shape (unknown fields included).
    #[error("{file}: cannot parse the metrics discovery config: {message}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A rule that is invalid or uses something unsupported.
    #[error("{file}: {location}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// The rule and field.
        location: Location,
        /// What was wrong.
        reason: String,
    },
}

impl ConfigError {
    /// A stable label for metrics and logs.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "read",
            ConfigError::Parse { .. } => "parse",
            ConfigError::Invalid { .. } => "invalid",
        }
    }
}

// ---- The file as written (upstream decodes strictly: unknown fields fail). ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    #[serde(default)]
    rules: Option<Vec<RawRule>>,
    #[serde(default)]
    resource_rules: Option<RawResourceRules>,
    #[serde(default)]
    external_rules: Option<Vec<RawRule>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRule {
    #[serde(default)]
    series_query: Option<String>,
    #[serde(default)]
    series_filters: Option<Vec<RawFilter>>,
    #[serde(default)]
    resources: Option<RawResources>,
    #[serde(default)]
    name: Option<RawName>,
    #[serde(default)]
    metrics_query: Option<String>,
    #[serde(default)]
    label_value_replacements: Option<Vec<RawReplacement>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFilter {
    #[serde(default)]
    is: Option<String>,
    #[serde(default)]
    is_not: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResources {
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    overrides: Option<BTreeMap<String, RawGroupResource>>,
    #[serde(default)]
    namespaced: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroupResource {
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    resource: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawName {
    #[serde(default)]
    matches: Option<String>,
    #[serde(default, rename = "as")]
    as_: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplacement {
    #[serde(default)]
    find: Option<String>,
    #[serde(default)]
    replace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResourceRules {
    #[serde(default)]
    cpu: Option<RawResourceRule>,
    #[serde(default)]
    memory: Option<RawResourceRule>,
    #[serde(default)]
    window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawResourceRule {
    #[serde(default)]
    container_query: Option<String>,
    #[serde(default)]
    node_query: Option<String>,
    #[serde(default)]
    resources: Option<RawResources>,
    #[serde(default)]
    container_label: Option<String>,
}

// ---- The validated config. ----

/// A validated config file.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from (for messages).
    pub file: String,
    /// `rules`: custom metrics.
    pub rules: Vec<Rule>,
    /// `externalRules`: external metrics.
    pub external_rules: Vec<Rule>,
    /// `resourceRules`: CPU and memory for `metrics.k8s.io`.
    pub resource_rules: Option<ResourceRules>,
}

/// One discovery rule (custom or external).
#[derive(Clone, Debug)]
pub struct Rule {
    /// Its section.
    pub section: Section,
    /// Its index in that section.
    pub index: usize,
    /// `seriesQuery`, parsed.
    pub series_query: SeriesSelector,
    /// `seriesFilters`, then the implicit filter from `name.matches`.
    pub series_filters: Vec<SeriesFilter>,
    /// `resources`.
    pub resources: ResourceMapper,
    /// `resources.namespaced` (default true; meaningful for external rules).
    pub namespaced: bool,
    /// `name`.
    pub name: NameMapping,
    /// `metricsQuery`.
    pub metrics_query: Template,
    /// `labelValueReplacements` as (find, replace), applied to
    /// `.LabelValuesByName` for external rules, as upstream does.
    pub label_value_replacements: Vec<(String, String)>,
}

impl Rule {
    /// Where this rule sits in the file.
    #[must_use]
    pub fn location(&self, field: &str) -> Location {
        Location {
            section: self.section,
            index: Some(self.index),
            field: field.to_owned(),
        }
    }

    /// True when a series (by name) passes `seriesFilters` and `name.matches`.
    #[must_use]
    pub fn keeps(&self, series: &str) -> bool {
        self.series_filters.iter().all(|f| f.keeps(series))
    }
}

/// `resourceRules`.
#[derive(Clone, Debug)]
pub struct ResourceRules {
    /// `cpu`.
    pub cpu: ResourceRule,
    /// `memory`.
    pub memory: ResourceRule,
    /// `window`: the window reported by `metrics.k8s.io`.
    pub window: Duration,
}

/// `resourceRules.cpu` or `resourceRules.memory`.
#[derive(Clone, Debug)]
pub struct ResourceRule {
    /// `containerQuery`.
    pub container_query: Template,
    /// `nodeQuery`.
    pub node_query: Template,
    /// `resources`.
    pub resources: ResourceMapper,
    /// `containerLabel`.
    pub container_label: String,
}

impl Config {
    /// Reads and validates the config file at `path`.
    ///
    /// # Errors
    /// Unreadable file, YAML errors, unknown fields, invalid rules.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::from_yaml(&text, &file)
    }

    /// Parses and validates config text; `file` names it in errors.
    ///
    /// # Errors
    /// YAML errors, unknown fields, invalid rules.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, ConfigError> {
        // An empty file is an empty config, as in upstream.
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_yaml::from_str::<Option<RawConfig>>(text)
                .map_err(|e| ConfigError::Parse {
                    file: file.to_owned(),
                    message: e.to_string(),
                })?
                .unwrap_or_default()
        };
        let v = Validator { file };
        let rules = raw
            .rules
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| v.rule(Section::Rules, i, r))
            .collect::<Result<_, _>>()?;
        let external_rules = raw
            .external_rules
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| v.rule(Section::ExternalRules, i, r))
            .collect::<Result<_, _>>()?;
        let resource_rules = raw
            .resource_rules
            .map(|r| v.resource_rules(r))
            .transpose()?;
        Ok(Config {
            file: file.to_owned(),
            rules,
            external_rules,
            resource_rules,
        })
    }
}

struct Validator<'a> {
    file: &'a str,
}

impl Validator<'_> {
    fn fail(
        &self,
        section: Section,
        index: Option<usize>,
        field: &str,
        reason: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            location: Location {
                section,
                index,
                field: field.to_owned(),
            },
            reason: reason.to_string(),
        }
    }

    fn resources(
        &self,
        section: Section,
        index: Option<usize>,
        prefix: &str,
        raw: Option<RawResources>,
    ) -> Result<(ResourceMapper, bool), ConfigError> {
        let raw = raw.unwrap_or_default();
        let template = match raw.template.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(parse_resource_template(t).map_err(|e| {
                self.fail(section, index, &format!("{prefix}resources.template"), e)
            })?),
        };
        let mut overrides = BTreeMap::new();
        for (label, gr) in raw.overrides.unwrap_or_default() {
            let field = format!("{prefix}resources.overrides.{label}");
            let resource = gr.resource.unwrap_or_default();
            if resource.is_empty() {
                return Err(self.fail(section, index, &field, "resource is required"));
            }
            overrides.insert(label, (gr.group.unwrap_or_default(), resource));
        }
        let mapper = ResourceMapper::new(template, &overrides)
            .map_err(|e| self.fail(section, index, &format!("{prefix}resources"), e))?;
        Ok((mapper, raw.namespaced.unwrap_or(true)))
    }

    fn query_template(
        &self,
        section: Section,
        index: Option<usize>,
        field: &str,
        source: Option<String>,
    ) -> Result<Template, ConfigError> {
        let source = source.unwrap_or_default();
        if source.trim().is_empty() {
            return Err(self.fail(
                section,
                index,
                field,
                "is required (an empty query cannot be run)",
            ));
        }
        Template::parse(&source, Kind::Query).map_err(|e| self.fail(section, index, field, e))
    }

    fn rule(&self, section: Section, index: usize, raw: RawRule) -> Result<Rule, ConfigError> {
        let at = Some(index);
        let series_query = raw.series_query.unwrap_or_default();
        if series_query.trim().is_empty() {
            return Err(self.fail(section, at, "seriesQuery", "is required"));
        }
        let series_query = SeriesSelector::parse(&series_query)
            .map_err(|e| self.fail(section, at, "seriesQuery", e))?;
        let mut series_filters = Vec::new();
        for (i, f) in raw
            .series_filters
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            series_filters.push(
                SeriesFilter::new(f.is.as_deref(), f.is_not.as_deref())
                    .map_err(|e| self.fail(section, at, &format!("seriesFilters[{i}]"), e))?,
            );
        }
        let raw_name = raw.name.unwrap_or_default();
        let matches = raw_name.matches.unwrap_or_default();
        let name = NameMapping::new(&matches, raw_name.as_.as_deref().unwrap_or_default())
            .map_err(|e| self.fail(section, at, "name", e))?;
        if !matches.is_empty() {
            // `name.matches` doubles as a filter, as upstream appends it.
            series_filters.push(SeriesFilter::Is(name.matches().clone()));
        }
        let (resources, namespaced) = self.resources(section, at, "", raw.resources)?;
        if section == Section::ExternalRules && namespaced {
            resources
                .label_for(&GroupResource::namespaces())
                .map_err(|_| {
                    self.fail(
                    section,
                    at,
                    "resources",
                    "an external rule is namespaced by default and needs a label for namespaces: \
                     add resources.overrides (e.g. namespace: {resource: namespace}) or a \
                     resources.template, or set resources.namespaced: false",
                )
                })?;
        }
        let metrics_query = self.query_template(section, at, "metricsQuery", raw.metrics_query)?;
        let mut label_value_replacements = Vec::new();
        for (i, r) in raw
            .label_value_replacements
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let find = r.find.unwrap_or_default();
            if find.is_empty() {
                return Err(self.fail(
                    section,
                    at,
                    &format!("labelValueReplacements[{i}].find"),
                    "must not be empty",
                ));
            }
            label_value_replacements.push((find, r.replace.unwrap_or_default()));
        }
        Ok(Rule {
            section,
            index,
            series_query,
            series_filters,
            resources,
            namespaced,
            name,
            metrics_query,
            label_value_replacements,
        })
    }

    fn resource_rule(
        &self,
        field: &str,
        raw: Option<RawResourceRule>,
    ) -> Result<ResourceRule, ConfigError> {
        let s = Section::ResourceRules;
        let raw = raw.ok_or_else(|| self.fail(s, None, field, "is required"))?;
        let container_query = self.query_template(
            s,
            None,
            &format!("{field}.containerQuery"),
            raw.container_query,
        )?;
        let node_query =
            self.query_template(s, None, &format!("{field}.nodeQuery"), raw.node_query)?;
        let (resources, _) = self.resources(s, None, &format!("{field}."), raw.resources)?;
        for gr in [
            GroupResource::pods(),
            GroupResource::nodes(),
            GroupResource::namespaces(),
        ] {
            resources
                .label_for(&gr)
                .map_err(|e| self.fail(s, None, &format!("{field}.resources"), e))?;
        }
        let container_label = raw.container_label.unwrap_or_default();
        if !promql::is_label_name(&container_label) {
            return Err(self.fail(
                s,
                None,
                &format!("{field}.containerLabel"),
                format!("{container_label:?} is not a valid Prometheus label name"),
            ));
        }
        Ok(ResourceRule {
            container_query,
            node_query,
            resources,
            container_label,
        })
    }

    fn resource_rules(&self, raw: RawResourceRules) -> Result<ResourceRules, ConfigError> {
        let cpu = self.resource_rule("cpu", raw.cpu)?;
        let memory = self.resource_rule("memory", raw.memory)?;
        let window = match raw.window.as_deref() {
            // Upstream leaves a missing window at zero.
            None | Some("") => Duration::ZERO,
            Some(w) => parse_duration(w)
                .map_err(|e| self.fail(Section::ResourceRules, None, "window", e))?,
        };
        Ok(ResourceRules {
            cpu,
            memory,
            window,
        })
    }
}

/// A Prometheus duration that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected e.g. 30s, 5m, 1h30m (units ms, s, m, h, d, w, y)")]
pub struct DurationError(pub String);

/// Parses a Prometheus duration (`5m`, `1h30m`, `500ms`, `0`).
///
/// # Errors
/// Anything else, including units out of order or repeated.
pub fn parse_duration(s: &str) -> Result<Duration, DurationError> {
    let fail = || DurationError(s.to_owned());
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_unit = None;
    if rest.is_empty() {
        return Err(fail());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(fail());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| fail())?;
        rest = &rest[digits..];
        // `ms` before `m`, so try the longer unit first.
        let (pos, (unit, ms)) = UNITS
            .iter()
            .enumerate()
            .filter(|(_, (u, _))| rest.starts_with(u))
            .max_by_key(|(_, (u, _))| u.len())
            .ok_or_else(fail)?;
        if last_unit.is_some_and(|l| pos <= l) {
            return Err(fail());
        }
        last_unit = Some(pos);
        total = n
            .checked_mul(*ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(fail)?;
        rest = &rest[unit.len()..];
    }
    Ok(Duration::from_millis(total))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;

    pub(crate) const DEFAULT: &str = include_str!("testdata/default-config.yaml");
    pub(crate) const FULL: &str = include_str!("testdata/full-config.yaml");

    #[test]
    fn upstream_default_config_loads() {
        let c = Config::from_yaml(DEFAULT, "default-config.yaml").unwrap();
        assert_eq!(c.rules.len(), 6);
        assert!(c.external_rules.is_empty());
        let rr = c.resource_rules.unwrap();
        assert_eq!(rr.window, Duration::from_secs(300));
        assert_eq!(rr.cpu.container_label, "container");
        // `name.matches` became an implicit filter.
        assert!(c.rules[0].keeps("container_cpu_usage_seconds_total"));
        assert!(!c.rules[0].keeps("container_memory_usage_bytes"));
        assert!(c.rules[1].keeps("container_network_receive_bytes_total"));
        assert!(!c.rules[1].keeps("container_cpu_usage_seconds_total"));
    }

    #[test]
    fn full_config_loads_every_construct() {
        let c = Config::from_yaml(FULL, "full.yaml").unwrap();
        assert_eq!(c.rules.len(), 4);
        assert_eq!(c.external_rules.len(), 3);
        assert!(c.external_rules[0].namespaced);
        assert!(!c.external_rules[1].namespaced);
        assert_eq!(
            c.external_rules[2].label_value_replacements,
            vec![("_".to_owned(), "#".to_owned())]
        );
        assert!(c.resource_rules.is_some());
    }

    #[test]
    fn load_reads_files_and_names_them() {
        let dir = std::env::temp_dir().join(format!("tailor-ma-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        std::fs::write(&path, DEFAULT).unwrap();
        assert_eq!(Config::load(&path).unwrap().rules.len(), 6);
        let missing = dir.join("missing.yaml");
        let e = Config::load(&missing).unwrap_err();
        assert_eq!(e.label(), "read");
        assert!(e.to_string().contains("missing.yaml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[rstest]
    #[case("", 0)]
    #[case("rules: []\n", 0)]
    #[case("rules:\n", 0)]
    #[case("---\n", 0)]
    fn empty_configs(#[case] text: &str, #[case] rules: usize) {
        assert_eq!(
            Config::from_yaml(text, "c.yaml").unwrap().rules.len(),
            rules
        );
    }

    const OK_RULE: &str = "- seriesQuery: '{__name__=~\"^x_.*\",namespace!=\"\"}'\n  resources: {template: <<.Resource>>}\n  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)\n";

    #[rstest]
    // Strict decoding: upstream's sample typo `metricQuery` is an unknown field.
    #[case("rules:\n- seriesQuery: x\n  metricQuery: y\n", "parse", "metricQuery")]
    #[case("bogus: 1\n", "parse", "bogus")]
    #[case("rules: 3\n", "parse", "rules")]
    #[case(
        "rules:\n- metricsQuery: x\n",
        "invalid",
        "rules[0].seriesQuery: is required"
    )]
    #[case(
        "rules:\n- seriesQuery: 'x{'\n  metricsQuery: x\n",
        "invalid",
        "rules[0].seriesQuery"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n",
        "invalid",
        "rules[0].metricsQuery: is required"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: '<<.Nope>>'\n",
        "invalid",
        "rules[0].metricsQuery: template at byte 0: unknown field .Nope"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: '<<printf \"%s\" .Series>>'\n",
        "invalid",
        "rules[0].metricsQuery"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: x\n  seriesFilters: [{is: a, isNot: b}]\n",
        "invalid",
        "rules[0].seriesFilters[0]"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: x\n  seriesFilters: [{}]\n",
        "invalid",
        "rules[0].seriesFilters[0]"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: x\n  seriesFilters: [{is: '('}]\n",
        "invalid",
        "rules[0].seriesFilters[0]: invalid regex"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: x\n  name: {matches: '^(a)(b)$'}\n",
        "invalid",
        "rules[0].name: name.matches"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: x\n  resources: {template: 'kube_<<.Group>>'}\n",
        "invalid",
        "rules[0].resources: resources.template"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: x\n  resources: {template: '<<.Series>>'}\n",
        "invalid",
        "rules[0].resources.template"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: x\n  resources: {overrides: {pod: {group: ''}}}\n",
        "invalid",
        "rules[0].resources.overrides.pod: resource is required"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: x\n  resources: {overrides: {a-b: {resource: pod}}}\n",
        "invalid",
        "rules[0].resources: override label"
    )]
    #[case(
        "rules:\n- seriesQuery: x\n  metricsQuery: x\n  labelValueReplacements: [{replace: y}]\n",
        "invalid",
        "rules[0].labelValueReplacements[0].find"
    )]
    #[case(
        "externalRules:\n- seriesQuery: x\n  metricsQuery: x\n",
        "invalid",
        "externalRules[0].resources: an external rule is namespaced"
    )]
    #[case(
        "resourceRules:\n  memory: {}\n",
        "invalid",
        "resourceRules.cpu: is required"
    )]
    fn invalid_configs(#[case] text: &str, #[case] label: &str, #[case] needle: &str) {
        let e = Config::from_yaml(text, "bad.yaml").unwrap_err();
        assert_eq!(e.label(), label, "{e}");
        let msg = e.to_string();
        assert!(msg.starts_with("bad.yaml: "), "{msg}");
        assert!(msg.contains(needle), "{msg} should contain {needle:?}");
    }

    #[test]
    fn errors_name_the_right_index() {
        let text =
            format!("rules:\n{OK_RULE}{OK_RULE}- seriesQuery: x\n  metricsQuery: '<<.Bad>>'\n");
        let e = Config::from_yaml(&text, "c.yaml").unwrap_err();
        assert!(e.to_string().contains("rules[2].metricsQuery"), "{e}");
    }

    #[rstest]
    #[case(
        "'a-b'",
        "{template: '<<.Resource>>'}",
        "resourceRules.cpu.containerLabel"
    )]
    #[case(
        "''",
        "{template: '<<.Resource>>'}",
        "resourceRules.cpu.containerLabel"
    )]
    #[case(
        "container",
        "{overrides: {pod: {resource: pod}}}",
        "resourceRules.cpu.resources: no label for resource nodes"
    )]
    fn invalid_resource_rules(#[case] label: &str, #[case] resources: &str, #[case] needle: &str) {
        let rule = |label: &str, resources: &str| {
            format!(
                "\n    containerQuery: 'sum(x{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n    nodeQuery: 'sum(y{{<<.LabelMatchers>>}}) by (<<.GroupBy>>)'\n    resources: {resources}\n    containerLabel: {label}"
            )
        };
        let good = rule("container", "{template: '<<.Resource>>'}");
        let text = format!(
            "resourceRules:\n  cpu:{}\n  memory:{good}\n  window: 1m\n",
            rule(label, resources)
        );
        let msg = Config::from_yaml(&text, "r.yaml").unwrap_err().to_string();
        assert!(msg.contains(needle), "{msg} should contain {needle:?}");
        // The same rule with good values loads.
        let ok = format!("resourceRules:\n  cpu:{good}\n  memory:{good}\n  window: 1m\n");
        assert!(Config::from_yaml(&ok, "r.yaml").is_ok());
    }

    #[rstest]
    #[case("5m", Ok(300_000))]
    #[case("1h30m", Ok(5_400_000))]
    #[case("500ms", Ok(500))]
    #[case("1m500ms", Ok(60_500))]
    #[case("2d", Ok(172_800_000))]
    #[case("1w", Ok(604_800_000))]
    #[case("0", Ok(0))]
    #[case("", Err(()))]
    #[case("5", Err(()))]
    #[case("m5", Err(()))]
    #[case("5m1h", Err(()))]
    #[case("5m5m", Err(()))]
    #[case("1.5m", Err(()))]
    #[case("99999999999999999999y", Err(()))]
    fn durations(#[case] s: &str, #[case] want: Result<u64, ()>) {
        assert_eq!(
            parse_duration(s)
                .map(|d| u64::try_from(d.as_millis()).unwrap())
                .map_err(|_| ()),
            want
        );
    }

    proptest::proptest! {
        #[test]
        fn from_yaml_never_panics(text in "\\PC{0,200}") {
            let _ = Config::from_yaml(&text, "fuzz.yaml");
        }
    }
}
