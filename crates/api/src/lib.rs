//! Kubernetes types for Tailor and conversions between them and `tailor-core`.
//!
//! - [`vpa`] and [`checkpoint`]: the upstream `autoscaling.k8s.io/v1` custom
//!   resources, read and written without changing a field;
//! - [`crd`]: the `CustomResourceDefinition`s generated from them;
//! - [`selector`]: label selectors (object and string forms) and matching;
//! - [`target`]: a VPA `targetRef` → the label selector of its pods;
//! - [`owner`]: a pod's owner references → its top-most controller;
//! - [`convert`]: VPA spec/status ↔ `tailor_core::policy`, with errors naming
//!   the VPA and the field;
//! - [`limit_range`]: LimitRanges → per-namespace limits in core units.
//!
//! Everything here is pure: no I/O, callers pass in the objects they fetched.

pub mod checkpoint;
pub mod convert;
pub mod crd;
pub mod limit_range;
pub mod owner;
pub mod selector;
pub mod target;
pub mod vpa;
mod wire;

pub use checkpoint::{
    HistogramCheckpoint, VerticalPodAutoscalerCheckpoint, VerticalPodAutoscalerCheckpointSpec,
    VerticalPodAutoscalerCheckpointStatus,
};
pub use vpa::{VerticalPodAutoscaler, VerticalPodAutoscalerSpec, VerticalPodAutoscalerStatus};
