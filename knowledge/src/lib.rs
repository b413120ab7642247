//! # switchboard-knowledge
//!
//! FAQ records, their per-tenant tantivy index with Chinese and English analysis, import and
//! export formats, and search. The store (in the gateway) is the source of truth; everything here
//! is derived from it and can be rebuilt. This crate knows nothing about channels, HTTP or SQL.
//!
//! ## Using it from the gateway
//! ```no_run
//! use switchboard_knowledge::{parse_import, FaqRecord, ImportFormat, KnowledgeIndex, Synonyms};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let index = std::sync::Arc::new(KnowledgeIndex::open("data/kb")?);
//! // At start-up (or on first use of a tenant): rebuild when missing or stale.
//! let (store_revision, all_records): (u64, Vec<FaqRecord>) = (7, vec![]);
//! if !index.is_fresh("acme", store_revision)? {
//!     index.rebuild("acme", &all_records, store_revision)?;
//! }
//! // Import: parse (400 on ImportError), upsert the good rows in the store, then in the index.
//! let parsed = parse_import(b"{\"question\":\"q\",\"answer\":\"a\"}\n", Some(ImportFormat::Jsonl))?;
//! let records: Vec<FaqRecord> = parsed.records.into_iter().map(|r| r.record).collect();
//! index.upsert("acme", &records, store_revision + 1)?;
//! // Search (CPU work: call it from a blocking pool).
//! let hits = index.search("acme", "我的快递到哪了", 5, &Synonyms::parse("快递=物流=包裹"))?;
//! # let _ = hits; Ok(()) }
//! ```
//!
//! ## Invariants
//! - One tantivy index per tenant in its own directory `<root>/<tenant>/`: a search opens only
//!   that tenant's index, so it cannot return another tenant's FAQ.
//! - Every write commits and reloads the reader before it returns: a change is searchable at once.
//! - Every commit carries `{schema, revision}` in its payload (meta.json), written atomically
//!   with the documents: [`KnowledgeIndex::revision`] is `None` or old after a crash, a lost
//!   directory or a schema change, and the gateway then rebuilds from the store.
//! - Disabled records are never indexed, so never returned.
//! - User text is analyzed into tokens and the query is built from them: no query syntax exists.
//!
//! ## Where the bot's rerank plugs in
//! [`KnowledgeIndex::search`] returns lexical (BM25) [`Candidate`]s carrying the question,
//! alternates and answer; the bot implements [`Reranker`] (embedding similarity from the models
//! crate) and calls [`KnowledgeIndex::search_reranked`], which widens the pool and reorders it.
//!
//! ## Layout
//! - `record.rs`: [`FaqRecord`], validation, derived ids.
//! - `analysis.rs`: the mixed Chinese/English analyzer ([`analyze`]) and [`Synonyms`].
//! - `index.rs`: [`KnowledgeIndex`] (per-tenant indexes, writes, freshness, search).
//! - `import.rs`: [`parse_import`] for JSONL, CSV and XLSX; [`write_jsonl`], [`write_csv`].
//! - `error.rs`: [`RecordError`], [`ImportError`] (a 400), [`KnowledgeError`].
//! - `demo/`: the bundled bilingual shop knowledge base and Chinese paraphrases for its test.
//! - `examples/`: `stackfaq_eval` (quality on StackFAQ) and `bench` (100k import and latency).

mod analysis;
mod error;
mod import;
mod index;
mod record;
#[doc(hidden)]
pub mod testing;

pub use analysis::{analyze, Synonyms};
pub use error::{ImportError, KnowledgeError, RecordError};
pub use import::{
    join_list, parse_import, split_list, write_csv, write_jsonl, ImportFormat, ImportedRecord,
    ParsedImport, RowError, CSV_COLUMNS, MAX_IMPORT_ROWS, MAX_ROW_ERRORS, MAX_XLSX_CELLS,
    MAX_XLSX_COLUMNS, MAX_XLSX_ENTRIES, MAX_XLSX_ENTRY_BYTES, MAX_XLSX_RATIO, MAX_XLSX_TEXT_BYTES,
    MAX_XLSX_TOTAL_BYTES,
};
pub use index::{
    validate_tenant, Candidate, KnowledgeIndex, Reranker, SearchProfile, SearchTuning, MAX_K,
    MAX_QUERY_CHARS, MAX_QUERY_TOKENS, SCHEMA_VERSION,
};
pub use record::{derived_id, guess_locale, validate_id, FaqRecord};
