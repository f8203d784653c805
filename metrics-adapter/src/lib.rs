//! `tailor-metrics-adapter`: serves the custom and external metrics APIs from
//! Prometheus, as a drop-in for kubernetes-sigs/prometheus-adapter.
//!
//! The request-independent core: the config file ([`config`]), the `<< >>`
//! template language ([`template`]), series naming and resource association
//! ([`naming`]), served-metric discovery and the `--check-config` listing
//! ([`discovery`]), PromQL building with escaping ([`query`], [`promql`]),
//! request selectors ([`selector`]) and API paths ([`request`]).
//!
//! The server: the Prometheus client ([`prom`]), the per-rule relist
//! ([`relist`]) into the registry ([`registry`]), the value cache with
//! coalescing ([`cache`]), response bodies ([`api`]), authentication
//! ([`auth`]), resource metrics for `metrics.k8s.io` ([`resource`]), the
//! HTTPS router ([`server`]), self-metrics ([`metrics`]),
//! the HPA preview ([`preview`]) and the binary's flags ([`run`]). With
//! Kubernetes API access: API discovery of every resource
//! ([`apidiscovery`]) and the `labelSelector` object cache ([`objects`]).
//! See docs/metrics-adapter.md.

#![warn(missing_docs)]

pub mod api;
pub mod apidiscovery;
pub mod auth;
pub mod cache;
pub mod config;
pub mod discovery;
pub mod metrics;
pub mod naming;
pub mod objects;
pub mod preview;
pub mod prom;
pub mod promql;
pub mod query;
pub mod registry;
pub mod relist;
pub mod request;
pub mod resource;
pub mod run;
pub mod selector;
pub mod server;
pub mod template;
