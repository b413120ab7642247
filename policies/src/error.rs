use std::fmt;

use serde::{Deserialize, Serialize};

/// Which of the two policy worlds a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Routing,
    Quality,
}

impl PolicyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Routing => "routing",
            PolicyKind::Quality => "quality",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a policy call did not produce a usable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The guest trapped (`unreachable`, a panic, out-of-bounds access, stack overflow, ...).
    Trap,
    /// The guest used up its fuel (CPU budget).
    OutOfFuel,
    /// The guest ran past the wall-time deadline (epoch interruption).
    Timeout,
    /// The guest tried to grow its memory past the cap.
    MemoryLimit,
    /// The guest answered, but the answer breaks the contract (priority over 9, empty group, ...).
    InvalidAnswer,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Trap,
        FailureKind::OutOfFuel,
        FailureKind::Timeout,
        FailureKind::MemoryLimit,
        FailureKind::InvalidAnswer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Trap => "trap",
            FailureKind::OutOfFuel => "out_of_fuel",
            FailureKind::Timeout => "timeout",
            FailureKind::MemoryLimit => "memory_limit",
            FailureKind::InvalidAnswer => "invalid_answer",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors of loading and validating a policy component. Calls never return these: a failing
/// call falls back to the built-in strategy and reports a [`crate::PolicyFailure`].
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy component is empty")]
    Empty,
    #[error("policy component is {size} bytes, the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("not a webassembly component: {0}")]
    NotAComponent(String),
    #[error("policy component does not compile: {0}")]
    Compile(String),
    #[error("policy component imports {0}, but policies may import nothing")]
    ForbiddenImport(String),
    #[error("policy component does not implement the {expected} world: {detail}")]
    WrongWorld {
        expected: PolicyKind,
        detail: String,
    },
    #[error("policy component implements neither the routing nor the quality world")]
    UnknownWorld,
    #[error("policy failed its sample call ({kind}): {detail}")]
    SampleFailed { kind: FailureKind, detail: String },
    #[error("policy engine could not start: {0}")]
    Engine(String),
}

impl PolicyError {
    /// A stable machine-readable code for API responses.
    pub fn code(&self) -> &'static str {
        match self {
            PolicyError::Empty => "empty_component",
            PolicyError::TooLarge { .. } => "component_too_large",
            PolicyError::NotAComponent(_) => "not_a_component",
            PolicyError::Compile(_) => "compile_failed",
            PolicyError::ForbiddenImport(_) => "forbidden_import",
            PolicyError::WrongWorld { .. } => "wrong_world",
            PolicyError::UnknownWorld => "unknown_world",
            PolicyError::SampleFailed { .. } => "sample_call_failed",
            PolicyError::Engine(_) => "engine_failed",
        }
    }
}
