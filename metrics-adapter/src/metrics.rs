//! Self-metrics, all prefixed `tailor_metrics_adapter_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::cache::Outcome;

/// A rule label set (`rules[0]`, `externalRules[2]`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The rule.
    pub rule: String,
}

/// Requests by metric and outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `custom`, `external` or `discovery`.
    pub api: String,
    /// The served metric (`pods/http_requests`), or `unknown`.
    pub metric: String,
    /// HTTP code.
    pub code: String,
}

/// One-label sets.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// The result.
    pub result: String,
}

/// API label for metric counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// `custom` or `external`.
    pub api: String,
}

fn relist_histogram() -> Histogram {
    Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
}

/// Every self-metric. Cheap to clone; `Default` is unregistered (tests).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// 1 when the last Prometheus call succeeded.
    pub prometheus_up: Gauge,
    /// Prometheus calls by result (`ok` or an error label).
    pub prometheus_queries: Family<ResultLabels, Counter>,
    /// Relist duration per rule.
    pub relist_duration: Family<RuleLabels, Histogram, fn() -> Histogram>,
    /// Seconds since each rule's last good relist (-1: never).
    pub relist_age: Family<RuleLabels, Gauge>,
    /// Relist failures per rule.
    pub relist_failures: Family<RuleLabels, Counter>,
    /// Distinct series (name + label names) the rules discovered.
    pub series: Gauge,
    /// Series Prometheus listed for the rules' queries at the last relist.
    pub series_listed: Gauge,
    /// Served metrics by API.
    pub metrics: Family<ApiLabels, Gauge>,
    /// Requests by API, metric and code.
    pub requests: Family<RequestLabels, Counter>,
    /// Cache lookups by outcome (`hit`, `stale`, `miss`, `coalesced`).
    pub cache: Family<ResultLabels, Counter>,
    /// The `cache` counters of each outcome, resolved once: counting a
    /// lookup is then one atomic add, with no label allocation or map lookup.
    outcomes: [Counter; 4],
}

const OUTCOMES: [(Outcome, &str); 4] = [
    (Outcome::Hit, "hit"),
    (Outcome::Stale, "stale"),
    (Outcome::Miss, "miss"),
    (Outcome::Coalesced, "coalesced"),
];

impl Default for Metrics {
    fn default() -> Self {
        let cache: Family<ResultLabels, Counter> = Family::default();
        // Counters share their value with the family's series.
        let outcomes = OUTCOMES.map(|(_, result)| {
            cache
                .get_or_create(&ResultLabels {
                    result: result.to_owned(),
                })
                .clone()
        });
        Metrics {
            prometheus_up: Gauge::default(),
            prometheus_queries: Family::default(),
            relist_duration: Family::new_with_constructor(relist_histogram),
            relist_age: Family::default(),
            relist_failures: Family::default(),
            series: Gauge::default(),
            series_listed: Gauge::default(),
            metrics: Family::default(),
            requests: Family::default(),
            cache,
            outcomes,
        }
    }
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        registry.register(
            "prometheus_up",
            "1 when the last call to Prometheus succeeded, 0 when it failed",
            m.prometheus_up.clone(),
        );
        registry.register(
            "prometheus_queries",
            "Calls to Prometheus by result",
            m.prometheus_queries.clone(),
        );
        registry.register(
            "relist_duration_seconds",
            "Time to relist one rule's series",
            m.relist_duration.clone(),
        );
        registry.register(
            "relist_age_seconds",
            "Seconds since the rule's last successful relist (-1 before the first)",
            m.relist_age.clone(),
        );
        registry.register(
            "relist_failures",
            "Failed relists per rule (the rule keeps its previous metrics)",
            m.relist_failures.clone(),
        );
        registry.register(
            "series_discovered",
            "Distinct series (name and label names) the rules discovered",
            m.series.clone(),
        );
        registry.register(
            "series_listed",
            "Series Prometheus listed for the rules' seriesQuery at the last relist (kept only as distinct name and label names)",
            m.series_listed.clone(),
        );
        registry.register(
            "metrics_discovered",
            "Metrics served, by API",
            m.metrics.clone(),
        );
        registry.register(
            "requests",
            "API requests by API, metric and HTTP code",
            m.requests.clone(),
        );
        registry.register(
            "cache_lookups",
            "Value cache lookups: hit, stale (served while refreshing), miss, coalesced (waited for another request's query)",
            m.cache.clone(),
        );
        m
    }

    /// Counts a cache lookup.
    pub fn cache(&self, outcome: Outcome) {
        let i = OUTCOMES
            .iter()
            .position(|(o, _)| *o == outcome)
            .unwrap_or_default();
        self.outcomes[i].inc();
    }

    /// Counts a Prometheus call.
    pub fn prometheus_call(&self, result: &str) {
        self.prometheus_up.set(i64::from(result == "ok"));
        self.prometheus_queries
            .get_or_create(&ResultLabels {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts an API request.
    pub fn request(&self, api: &str, metric: &str, code: u16) {
        self.request_counter(api, metric, code).inc();
    }

    /// The request counter of these labels, to keep and bump without
    /// resolving the labels again.
    #[must_use]
    pub fn request_counter(&self, api: &str, metric: &str, code: u16) -> Counter {
        self.requests
            .get_or_create(&RequestLabels {
                api: api.to_owned(),
                metric: metric.to_owned(),
                code: code.to_string(),
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolved_counters_are_the_families_series() {
        let m = Metrics::default();
        m.cache(Outcome::Hit);
        m.cache(Outcome::Hit);
        m.cache(Outcome::Coalesced);
        let get = |r: &str| {
            m.cache
                .get_or_create(&ResultLabels {
                    result: r.to_owned(),
                })
                .get()
        };
        assert_eq!(
            (get("hit"), get("coalesced"), get("miss"), get("stale")),
            (2, 1, 0, 0)
        );
        let c = m.request_counter("custom", "pods/x", 200);
        c.inc();
        m.request("custom", "pods/x", 200);
        assert_eq!(m.request_counter("custom", "pods/x", 200).get(), 2);
    }
}
