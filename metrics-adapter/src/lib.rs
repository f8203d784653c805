//! `tailor-metrics-adapter`: serves the custom and external metrics APIs from Prometheus. Not implemented yet (see the open issue).
