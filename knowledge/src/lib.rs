//! # switchboard-knowledge
//!
//! Owns FAQ records and their tantivy index (Chinese and English analysis), import formats,
//! search, and the place where the bot reranks candidates by embedding similarity.
//! It knows nothing about channels.
