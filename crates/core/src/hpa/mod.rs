//! The Horizontal Pod Autoscaler's decision, as kube-controller-manager makes it.
//!
//! [`reconcile`] is one sync of one HPA: per-metric proposals
//! ([`replicas_for_metric`]), the largest valid one wins, then stabilisation and
//! rate limits ([`behavior`]) over a caller-kept [`HpaState`]. Time is plain
//! seconds passed in; nothing here reads a clock.

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
