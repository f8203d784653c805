//! The Horizontal Pod Autoscaler's decision, as kube-controller-manager makes it.
//!
//! [`reconcile`] is one sync of one HPA: per-metric proposals
//! ([`replicas_for_metric`]), the largest valid one wins, then stabilisation and
//! rate limits ([`behavior`]) over a caller-kept [`HpaState`]. Time is plain
//! seconds passed in; nothing here reads a clock.
//!
//! Conventions: per-pod observations are slices aligned with [`HpaInput::pods`]
//! (`None` = no sample / no request); values and targets are integers in one
//! unit per metric (upstream uses milli-units). Known differences from
//! upstream: metrics for pods outside the pod list cannot be expressed (upstream
//! counts them in plain-metric averages), and events and conditions are reported
//! as [`HpaDecision`] fields rather than written anywhere.

pub mod behavior;
mod controller;
pub mod replicas;
pub mod spec;

pub use behavior::{HpaState, Limit, Recommendation, ScaleEvent};
pub use controller::{DecisionReason, HpaDecision, HpaError, HpaInput, reconcile};
pub use replicas::{
    MetricContext, MetricError, MetricObservation, MetricProposal, Pod, PodPhase, PodSample,
    ReadyCondition, replicas_for_metric,
};
pub use spec::*;
