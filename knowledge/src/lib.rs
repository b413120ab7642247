//! # switchboard-knowledge
//!
//! Owns FAQ records and their tantivy index (Chinese and English analysis), import formats,
//! search, and the place where the bot reranks candidates by embedding similarity.
//! It knows nothing about channels.

mod analysis;
mod error;
mod index;
mod record;

pub use analysis::{analyze, Synonyms};
pub use error::{ImportError, KnowledgeError, RecordError};
pub use index::{Candidate, KnowledgeIndex, Reranker, SearchTuning, MAX_K, MAX_QUERY_CHARS, SCHEMA_VERSION};
pub use record::{derived_id, guess_locale, validate_id, FaqRecord};
