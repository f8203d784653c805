//! `tailor-metrics-adapter`: serves the custom and external metrics APIs from
//! Prometheus, as a drop-in for kubernetes-sigs/prometheus-adapter.
//!
//! This crate holds the request-independent core so far: the config file
//! ([`config`]), the `<< >>` template language ([`template`]), series naming
//! and resource association ([`naming`]), served-metric discovery and the
//! `--check-config` listing ([`discovery`]), PromQL building with escaping
//! ([`query`], [`promql`]), request selectors ([`selector`]) and API paths
//! ([`request`]). See docs/metrics-adapter.md.

#![warn(missing_docs)]

pub mod config;
pub mod discovery;
pub mod naming;
pub mod promql;
pub mod query;
pub mod request;
pub mod selector;
pub mod template;
