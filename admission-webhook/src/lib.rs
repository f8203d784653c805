//! `tailor-admission-webhook`: rewrites pod resources at creation from the
//! matching VPA's recommendation, and optionally steers interruption-tolerant
//! pods to spot capacity. A pod is never blocked: every failure admits it
//! unchanged.
//!
//! - [`review`]: AdmissionReview v1 parsing and responses;
//! - [`index`]: the caches requests read (VPAs, controllers, LimitRanges);
//! - [`placement`]: the cost placement patch (toleration + node affinity);
//! - [`mutate`]: one pod → its JSON patch (pure);
//! - [`server`]: the axum router, deadline and metrics;
//! - [`watch`]: the watches that keep the index current;
//! - [`scale`]: custom `targetRef` kinds, read through `/scale` in the background;
//! - [`register`]: `--register-webhook` (the MutatingWebhookConfiguration);
//! - [`self_signed`]: `--self-signed` (its own CA and serving certificate);
//! - [`run`]: flags and the process (HTTPS with certificate reload).

pub mod index;
pub mod mutate;
pub mod placement;
pub mod register;
pub mod review;
pub mod run;
pub mod scale;
pub mod self_signed;
pub mod server;
pub mod watch;
