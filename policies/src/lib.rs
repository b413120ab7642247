//! # switchboard-policies
//!
//! (crate docs are written below in full once the API settles)

pub mod builtin;
mod convert;
pub mod error;
mod host;
pub mod metrics;
pub mod sensitive;
pub mod types;
mod validate;

pub use builtin::{BuiltinQuality, BuiltinRouting};
pub use error::{FailureKind, PolicyError, PolicyKind};
pub use host::{
    route_handoff, sample_closed_conversation, sample_handoff, score_conversation, DecidedBy, PolicyEngine,
    PolicyEngineConfig, PolicyFailure, PolicyId, PolicyLimits, QualityOutcome, QualityPolicy, RoutingOutcome,
    RoutingPolicy,
};
pub use metrics::{KindSnapshot, MetricsSnapshot, PolicyMetrics};
