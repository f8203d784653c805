//! Kubernetes types for Tailor and conversions between them and `tailor-core`.
