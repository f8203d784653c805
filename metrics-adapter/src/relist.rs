//! The background relist: every interval, each rule's `seriesQuery` is
//! sent to Prometheus' series API and the registry updated, rule by rule.
//!
//! Never on the request path. A failing query only marks its own rules
//! failed (they keep their last good metrics). Rules sharing the same
//! `seriesQuery` (the stock config has three of each) share one call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, RuleLabels};
use crate::prom::Client;
use crate::registry::{Registry, RuleId};

fn rule_label(id: RuleId) -> RuleLabels {
    RuleLabels {
        rule: format!("{}[{}]", id.section, id.index),
    }
}

/// Relists every rule once.
pub async fn relist_once(
    registry: &Registry,
    client: &Client,
    max_age: Duration,
    metrics: &Metrics,
) {
    let mut by_query: BTreeMap<String, Vec<RuleId>> = BTreeMap::new();
    for id in registry.rule_ids() {
        if let Some(rule) = registry.rule(id) {
            by_query
                .entry(rule.series_query.source().to_owned())
                .or_default()
                .push(id);
        }
    }
    let calls = by_query.into_iter().map(|(query, ids)| async move {
        let started = Instant::now();
        let result = client.series(&query, max_age).await;
        let elapsed = started.elapsed().as_secs_f64();
        metrics.prometheus_call(result.as_ref().map_or_else(|e| e.label(), |_| "ok"));
        match result {
            Ok(list) => {
                for id in ids {
                    registry.update(id, &list.series, list.listed);
                    metrics.relist_duration.get_or_create(&rule_label(id)).observe(elapsed);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, series_query = %query, "relist failed; the rule keeps its previous metrics");
                for id in ids {
                    registry.failed(id, e.to_string());
                    metrics.relist_failures.get_or_create(&rule_label(id)).inc();
                }
            }
        }
    });
    join_all(calls).await;
    publish(registry, metrics);
}

/// Updates the gauges that describe the registry.
pub fn publish(registry: &Registry, metrics: &Metrics) {
    let (series, custom, external) = registry.counts();
    metrics
        .series
        .set(i64::try_from(series).unwrap_or(i64::MAX));
    metrics
        .series_listed
        .set(i64::try_from(registry.listed()).unwrap_or(i64::MAX));
    for (api, n) in [("custom", custom), ("external", external)] {
        metrics
            .metrics
            .get_or_create(&crate::metrics::ApiLabels { api: api.into() })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    for (id, age) in registry.rule_ids().into_iter().zip(registry.ages()) {
        let secs = age.map_or(-1, |a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX));
        metrics.relist_age.get_or_create(&rule_label(id)).set(secs);
    }
}

/// Relists at once, then every `interval`, until `shutdown`; `beat` is
/// called after each round (liveness). Ages are refreshed every few
/// seconds in between.
pub async fn run(
    registry: Arc<Registry>,
    client: Client,
    interval: Duration,
    max_age: Duration,
    metrics: Metrics,
    shutdown: CancellationToken,
    beat: impl Fn() + Send + 'static,
) {
    let mut next = Instant::now();
    loop {
        if Instant::now() >= next {
            relist_once(&registry, &client, max_age, &metrics).await;
            beat();
            next = Instant::now() + interval;
        }
        let tick = (next - Instant::now()).min(Duration::from_secs(5));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(tick) => publish(&registry, &metrics),
        }
    }
}
