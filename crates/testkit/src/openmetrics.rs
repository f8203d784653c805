//! Series written as OpenMetrics text, the input `promtool` backfills from.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{Error, Result};

/// The OpenMetrics type of a backfilled metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing total; its series name ends in `_total`.
    Counter,
}

impl MetricKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
        }
    }
}

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct Family {
    kind: MetricKind,
    sample_name: String,
    series: BTreeMap<Labels, Vec<(i64, f64)>>,
}

/// A builder of OpenMetrics text: metric families, their series and timestamped samples.
///
/// Timestamps are milliseconds since the Unix epoch (Prometheus' own unit). Samples of
/// one series must be added in strictly increasing time order.
#[derive(Debug, Clone, Default)]
pub struct OpenMetrics {
    families: BTreeMap<String, Family>,
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    !name.starts_with("__")
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Escapes a label value for the text formats: backslash, double quote and newline.
pub(crate) fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Formats a sample value the way the text formats spell infinities and NaN.
pub(crate) fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        // Debug prints the shortest string that parses back to the same f64.
        format!("{value:?}")
    }
}

/// Renders `name{a="x",b="y"}` (no braces when there are no labels).
pub(crate) fn series_text(name: &str, labels: &[(String, String)]) -> String {
    let mut out = name.to_owned();
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
        }
        out.push('}');
    }
    out
}

/// Validates and sorts labels of metric `name`.
pub(crate) fn checked_labels(name: &str, labels: &[(&str, &str)]) -> Result<Labels> {
    if !valid_metric_name(name) {
        return Err(Error::InvalidMetricName(name.to_owned()));
    }
    let mut sorted: Labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    sorted.sort();
    for (i, (k, _)) in sorted.iter().enumerate() {
        let duplicate = i > 0 && sorted[i - 1].0 == *k;
        if duplicate || !valid_label_name(k) {
            return Err(Error::InvalidLabelName {
                metric: name.to_owned(),
                label: k.clone(),
            });
        }
    }
    Ok(sorted)
}

impl OpenMetrics {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds gauge samples `(timestamp_ms, value)` to the series `name{labels}`.
    pub fn gauge(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        samples: impl IntoIterator<Item = (i64, f64)>,
    ) -> Result<&mut Self> {
        self.add(MetricKind::Gauge, name, labels, samples)
    }

    /// Adds counter samples to `name{labels}`; `name` is the queried name ending in `_total`.
    pub fn counter(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        samples: impl IntoIterator<Item = (i64, f64)>,
    ) -> Result<&mut Self> {
        self.add(MetricKind::Counter, name, labels, samples)
    }

    /// Adds samples of the given kind to the series `name{labels}`.
    pub fn add(
        &mut self,
        kind: MetricKind,
        name: &str,
        labels: &[(&str, &str)],
        samples: impl IntoIterator<Item = (i64, f64)>,
    ) -> Result<&mut Self> {
        let labels = checked_labels(name, labels)?;
        let described = series_text(name, &labels);
        let family_name = match kind {
            MetricKind::Gauge => name,
            MetricKind::Counter => name
                .strip_suffix("_total")
                .filter(|family| !family.is_empty())
                .ok_or_else(|| Error::CounterName(name.to_owned()))?,
        };
        let family = self
            .families
            .entry(family_name.to_owned())
            .or_insert_with(|| Family {
                kind,
                sample_name: name.to_owned(),
                series: BTreeMap::new(),
            });
        if family.kind != kind {
            return Err(Error::KindConflict {
                name: name.to_owned(),
                first: family.kind.as_str(),
                second: kind.as_str(),
            });
        }
        let series = family.series.entry(labels).or_default();
        for (timestamp_ms, value) in samples {
            if timestamp_ms < 0 {
                return Err(Error::NegativeTimestamp {
                    series: described.clone(),
                    timestamp_ms,
                });
            }
            if series.last().is_some_and(|(last, _)| *last >= timestamp_ms) {
                return Err(Error::Unordered {
                    series: described.clone(),
                    timestamp_ms,
                });
            }
            series.push((timestamp_ms, value));
        }
        Ok(self)
    }

    /// Whether no sample has been added.
    pub fn is_empty(&self) -> bool {
        self.families
            .values()
            .all(|f| f.series.values().all(Vec::is_empty))
    }

    /// The OpenMetrics text, ending in `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (family_name, family) in &self.families {
            let _ = writeln!(out, "# TYPE {family_name} {}", family.kind.as_str());
            for (labels, samples) in &family.series {
                let series = series_text(&family.sample_name, labels);
                for (timestamp_ms, value) in samples {
                    let secs = timestamp_ms / 1000;
                    let millis = timestamp_ms % 1000;
                    let _ = writeln!(out, "{series} {} {secs}.{millis:03}", format_value(*value));
                }
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("plain", "plain")]
    #[case("a\"b", "a\\\"b")]
    #[case("back\\slash", "back\\\\slash")]
    #[case("two\nlines", "two\\nlines")]
    #[case("ünï{,}=", "ünï{,}=")]
    fn label_values_are_escaped(#[case] raw: &str, #[case] escaped: &str) {
        assert_eq!(escape_label_value(raw), escaped);
    }

    #[rstest]
    #[case(1.0, "1.0")]
    #[case(0.25, "0.25")]
    #[case(-3.5e-9, "-3.5e-9")]
    #[case(f64::INFINITY, "+Inf")]
    #[case(f64::NEG_INFINITY, "-Inf")]
    #[case(f64::NAN, "NaN")]
    fn values_are_formatted(#[case] value: f64, #[case] text: &str) {
        assert_eq!(format_value(value), text);
    }

    #[test]
    fn renders_families_series_and_eof() {
        let mut doc = OpenMetrics::new();
        doc.gauge(
            "cpu",
            &[("pod", "a\"b"), ("ns", "x")],
            [(1_000, 0.5), (61_500, 1.0)],
        )
        .unwrap()
        .counter("req_total", &[], [(5, 3.0)])
        .unwrap();
        assert_eq!(
            doc.render(),
            "# TYPE cpu gauge\n\
             cpu{ns=\"x\",pod=\"a\\\"b\"} 0.5 1.000\n\
             cpu{ns=\"x\",pod=\"a\\\"b\"} 1.0 61.500\n\
             # TYPE req counter\n\
             req_total 3.0 0.005\n\
             # EOF\n"
        );
    }

    #[rstest]
    #[case::bad_metric("1cpu", &[("a", "b")], "invalid metric name \"1cpu\"")]
    #[case::bad_label("cpu", &[("a-b", "x")], "invalid label name \"a-b\" on metric \"cpu\"")]
    #[case::reserved_label("cpu", &[("__name__", "x")], "invalid label name \"__name__\" on metric \"cpu\"")]
    #[case::duplicate_label("cpu", &[("a", "x"), ("a", "y")], "invalid label name \"a\" on metric \"cpu\"")]
    fn rejects_invalid_names(
        #[case] name: &str,
        #[case] labels: &[(&str, &str)],
        #[case] message: &str,
    ) {
        let err = OpenMetrics::new()
            .gauge(name, labels, [(1, 1.0)])
            .unwrap_err();
        assert_eq!(err.to_string(), message);
    }

    #[test]
    fn rejects_bad_counters_and_order() {
        let mut doc = OpenMetrics::new();
        assert!(matches!(
            doc.counter("requests", &[], [(1, 1.0)]),
            Err(Error::CounterName(_))
        ));
        assert!(matches!(
            doc.gauge("g", &[], [(2, 1.0), (2, 1.0)]),
            Err(Error::Unordered {
                timestamp_ms: 2,
                ..
            })
        ));
        assert!(matches!(
            doc.gauge("h", &[], [(-1, 1.0)]),
            Err(Error::NegativeTimestamp { .. })
        ));
        doc.gauge("x_total", &[], [(1, 1.0)]).unwrap();
        doc.gauge("x", &[], [(1, 1.0)]).unwrap();
        assert!(matches!(
            doc.counter("x_total", &[], [(2, 1.0)]),
            Err(Error::KindConflict { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn escaped_values_unescape_back(raw in "(?s).*") {
            let escaped = escape_label_value(&raw);
            let mut unescaped = String::new();
            let mut chars = escaped.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => unescaped.push('\n'),
                        Some(other) => unescaped.push(other),
                        None => proptest::prop_assert!(false, "dangling backslash"),
                    }
                } else {
                    proptest::prop_assert!(c != '"' && c != '\n');
                    unescaped.push(c);
                }
            }
            proptest::prop_assert_eq!(unescaped, raw);
        }
    }
}
