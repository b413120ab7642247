//! Errors at the crate boundary: lowercase messages without a trailing period.

/// Errors of building the bot and of maintaining its dense side. [`crate::Bot::decide`] never
/// fails: it hands off instead.
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error("model failed: {0}")]
    Model(#[from] switchboard_models::ModelError),
    #[error("knowledge index failed: {0}")]
    Knowledge(#[from] switchboard_knowledge::KnowledgeError),
}

/// A labelled evaluation line that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EvalLineError {
    pub line: usize,
    pub message: String,
}
