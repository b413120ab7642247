//! The per-tenant tantivy indexes and search.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, STORED, STRING,
};
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument,
    TantivyError, Term,
};

use crate::analysis::{
    analyze, analyzer, cjk_bigrams, CjkBigramTokenizer, Synonyms, ANALYZER_NAME, BIGRAMS_NAME,
};
use crate::error::KnowledgeError;
use crate::record::FaqRecord;

/// Bumped when the schema or the analysis changes: an index built by another version reads as
/// stale (`revision` is `None`) so the gateway rebuilds it from the store.
pub const SCHEMA_VERSION: u32 = 1;
/// Query text beyond this many characters is ignored (bounds analysis time).
pub const MAX_QUERY_CHARS: usize = 2_000;
/// At most this many distinct query tokens are searched (bounds query cost).
pub const MAX_QUERY_TOKENS: usize = 64;
/// A rebuild, or an upsert of at least this many records and at least a tenth of the index,
/// merges the index into one segment: a merge rewrites the whole index, so only writes large
/// against it pay for one (a script writing 1,000 records at a time into a large index would
/// otherwise rewrite the index on every call; tantivy's own merge policy handles the small
/// segments).
const BULK_WRITE: usize = 1_000;
/// At most this many candidates are returned by one search.
pub const MAX_K: usize = 100;

/// One search hit: what the bot shows, and what a reranker needs (the texts to embed and the
/// lexical score to blend with).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub id: String,
    pub question: String,
    pub answer: String,
    /// Other phrasings: a reranker compares the query with these too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternates: Vec<String>,
    /// BM25 score (summed over fields with their boosts); higher is better, not normalised.
    pub score: f32,
}

/// The bot's rerank step: reorders lexical candidates, e.g. by embedding similarity between the
/// query and each candidate's question and alternates. Used by [`KnowledgeIndex::search_reranked`].
pub trait Reranker: Send + Sync {
    /// Returns the candidates best first; may drop some and may rewrite `score`.
    fn rerank(&self, query: &str, candidates: Vec<Candidate>) -> Vec<Candidate>;
}

/// Weights of the query clauses. Field boosts were chosen on the StackFAQ dev split
/// (`examples/stackfaq_eval.rs -- --sweep`; only the question:answer ratio matters, 1.5:1 was
/// best); the CJK bigram weight on the demo shop's Chinese paraphrases.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchTuning {
    pub question_boost: f32,
    pub alternates_boost: f32,
    pub answer_boost: f32,
    /// Weight of tokens added by synonym expansion, relative to the user's own tokens.
    pub synonym_weight: f32,
    /// Weight of CJK character bigrams matched against question and alternates (0 disables).
    pub cjk_bigram_boost: f32,
    /// A query term found in more than this fraction of the documents (in the field it is
    /// searched in) is *common*, unless its token is among the [`SearchTuning::keep_rarest`]
    /// rarest of the query. When the common terms' posting lists outweigh the others', the others
    /// must match and the common ones only add to the scores of those documents (the "common
    /// terms" query of Lucene): scores are unchanged, the long lists are skipped through, and only
    /// documents that match nothing but common terms drop out. 1.0 or more disables the gate.
    pub common_fraction: f32,
    /// The gate applies only to indexes of at least this many documents (small ones are cheap).
    pub common_min_docs: u64,
    /// Tokens (and, separately, CJK bigrams) of each query that are never common, rarest first.
    pub keep_rarest: usize,
}

impl Default for SearchTuning {
    fn default() -> Self {
        SearchTuning {
            question_boost: 1.5,
            alternates_boost: 1.5,
            answer_boost: 1.0,
            synonym_weight: 0.8,
            cjk_bigram_boost: 1.0,
            common_fraction: 0.02,
            common_min_docs: 10_000,
            keep_rarest: 2,
        }
    }
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    question: Field,
    alternates: Field,
    answer: Field,
    /// CJK bigrams of question and alternates: recall where jieba segments two phrasings differently.
    bigrams: Field,
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let analyzed = TextOptions::default().set_stored().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER_NAME)
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        question: builder.add_text_field("question", analyzed.clone()),
        alternates: builder.add_text_field("alternates", analyzed.clone()),
        answer: builder.add_text_field("answer", analyzed),
        bigrams: builder.add_text_field(
            "bigrams",
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(BIGRAMS_NAME)
                    .set_index_option(IndexRecordOption::WithFreqs),
            ),
        ),
    };
    (builder.build(), fields)
}

/// Stored in the commit payload (meta.json of the index directory), so it changes atomically with
/// the documents it describes.
#[derive(Serialize, Deserialize)]
struct Marker {
    schema: u32,
    revision: u64,
}

struct TenantIndex {
    index: Index,
    reader: IndexReader,
    /// Created on the first write and kept, so tantivy's merges of small segments can run.
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
    /// Set when an index of another schema (or a damaged one) was replaced by an empty one: until
    /// a rebuild, writes keep the marker stale, so an upsert into the empty index cannot make it
    /// read as fresh while it lacks the tenant's other records.
    replaced: AtomicBool,
}

/// Per-tenant FAQ indexes under one root directory (`<root>/<tenant>/`). Cheap to share in an
/// `Arc`; all methods take `&self` and are safe to call from many threads. Writes to one tenant are
/// serialised; searches never wait for writes.
pub struct KnowledgeIndex {
    root: PathBuf,
    tenants: RwLock<HashMap<String, Arc<TenantIndex>>>,
    writer_memory_bytes: usize,
    tuning: SearchTuning,
}

/// Tenant ids become directory names: 1-64 characters of `a-z A-Z 0-9 _ -`.
pub fn validate_tenant(tenant: &str) -> Result<(), KnowledgeError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(KnowledgeError::BadTenant(tenant.to_string()))
    }
}

fn map_writer_error(err: TantivyError) -> KnowledgeError {
    match err {
        TantivyError::LockFailure(lock, _) => KnowledgeError::Locked(lock.to_string()),
        other => KnowledgeError::Index(other),
    }
}

impl KnowledgeIndex {
    /// Opens (creating if needed) the root directory. Tenant indexes open lazily.
    pub fn open(root: impl AsRef<Path>) -> Result<KnowledgeIndex, KnowledgeError> {
        let root = root.as_ref().to_path_buf();
        std::fs::create_dir_all(&root)?;
        Ok(KnowledgeIndex {
            root,
            tenants: RwLock::new(HashMap::new()),
            writer_memory_bytes: 32 * 1024 * 1024,
            tuning: SearchTuning::default(),
        })
    }

    /// Memory budget of each tenant's writer (at least 15 MB; more makes large imports faster).
    pub fn with_writer_memory(mut self, bytes: usize) -> KnowledgeIndex {
        self.writer_memory_bytes = bytes.max(15_000_000);
        self
    }

    /// Replaces the query weights (for evaluation; the defaults suit FAQ data).
    pub fn with_tuning(mut self, tuning: SearchTuning) -> KnowledgeIndex {
        self.tuning = tuning;
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tenant_dir(&self, tenant: &str) -> PathBuf {
        self.root.join(tenant)
    }

    /// The tenant's open index; `None` when it has none on disk and `create` is false.
    fn tenant(
        &self,
        tenant: &str,
        create: bool,
    ) -> Result<Option<Arc<TenantIndex>>, KnowledgeError> {
        validate_tenant(tenant)?;
        if let Some(found) = self
            .tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
        {
            return Ok(Some(found.clone()));
        }
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = tenants.get(tenant) {
            return Ok(Some(found.clone()));
        }
        let dir = self.tenant_dir(tenant);
        let (schema, fields) = schema();
        let existing = dir.join("meta.json").exists();
        let mut replaced = false;
        let index = if existing {
            match Index::open_in_dir(&dir) {
                Ok(index) if index.schema() == schema => index,
                // Another schema or a damaged index: it is derived data, start over.
                _ if create => {
                    std::fs::remove_dir_all(&dir)?;
                    std::fs::create_dir_all(&dir)?;
                    replaced = true;
                    Index::create_in_dir(&dir, schema)?
                }
                _ => return Ok(None),
            }
        } else if create {
            std::fs::create_dir_all(&dir)?;
            Index::create_in_dir(&dir, schema)?
        } else {
            return Ok(None);
        };
        index.tokenizers().register(ANALYZER_NAME, analyzer());
        index
            .tokenizers()
            .register(BIGRAMS_NAME, CjkBigramTokenizer);
        // Manual reload: every write reloads the reader right after its commit, so a change is
        // searchable as soon as the write call returns.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let opened = Arc::new(TenantIndex {
            index,
            reader,
            writer: Mutex::new(None),
            fields,
            replaced: AtomicBool::new(replaced),
        });
        tenants.insert(tenant.to_string(), opened.clone());
        Ok(Some(opened))
    }

    /// Runs `apply` with the tenant's writer, then commits with the new revision and reloads.
    /// `full` is true for a rebuild (the whole record list), false for an upsert or delete;
    /// `added` is the number of records written (for an upsert).
    fn write<F>(
        &self,
        tenant: &str,
        revision: u64,
        full: bool,
        added: usize,
        apply: F,
    ) -> Result<(), KnowledgeError>
    where
        F: FnOnce(&IndexWriter, Fields) -> Result<(), KnowledgeError>,
    {
        let Some(tenant_index) = self.tenant(tenant, true)? else {
            return Err(KnowledgeError::BadTenant(tenant.to_string()));
        };
        let mut slot = tenant_index
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let options = tantivy::indexer::IndexWriterOptions::builder()
                .num_worker_threads(1)
                .num_merge_threads(1)
                .memory_budget_per_thread(self.writer_memory_bytes)
                .build();
            *slot = Some(
                tenant_index
                    .index
                    .writer_with_options(options)
                    .map_err(map_writer_error)?,
            );
        }
        let Some(writer) = slot.as_mut() else {
            return Err(KnowledgeError::BadTenant(tenant.to_string()));
        };
        if let Err(err) = apply(writer, tenant_index.fields) {
            writer.rollback()?;
            return Err(err);
        }
        let payload = serde_json::to_string(&Marker {
            // Schema 0 reads as stale: see `TenantIndex::replaced`.
            schema: if full || !tenant_index.replaced.load(Ordering::Relaxed) {
                SCHEMA_VERSION
            } else {
                0
            },
            revision,
        })
        .map_err(|e| KnowledgeError::Io(std::io::Error::other(e)))?;
        let mut commit = writer.prepare_commit()?;
        commit.set_payload(&payload);
        commit.commit()?;
        if full {
            tenant_index.replaced.store(false, Ordering::Relaxed);
        }
        let indexed = tenant_index.reader.searcher().num_docs() as usize;
        if full || added >= BULK_WRITE.max(indexed / 10) {
            // A bulk write leaves several segments, and every search works through each of them
            // separately: merge them into one before the write returns. Best effort: the index
            // is correct either way (the merge keeps the commit's payload).
            let segments = tenant_index.index.searchable_segment_ids()?;
            if segments.len() > 1 {
                if let Err(error) = writer.merge(&segments).wait() {
                    tracing::debug!(%error, "knowledge index: merge after a bulk write skipped");
                }
            }
        }
        tenant_index.reader.reload()?;
        Ok(())
    }

    /// Inserts or replaces records by id and records `revision` as the index's freshness marker.
    /// Disabled records are removed from the index. Every record is validated first; one invalid
    /// record fails the whole call and nothing is written.
    pub fn upsert(
        &self,
        tenant: &str,
        records: &[FaqRecord],
        revision: u64,
    ) -> Result<(), KnowledgeError> {
        for record in records {
            record
                .validate()
                .map_err(|source| KnowledgeError::BadRecord {
                    id: record.id.clone(),
                    source,
                })?;
        }
        self.write(tenant, revision, false, records.len(), |writer, fields| {
            for record in records {
                writer.delete_term(Term::from_field_text(fields.id, &record.id));
                if record.enabled {
                    writer.add_document(document(fields, record))?;
                }
            }
            Ok(())
        })
    }

    /// Removes records by id (unknown ids are ignored) and records `revision`.
    pub fn delete(&self, tenant: &str, ids: &[&str], revision: u64) -> Result<(), KnowledgeError> {
        self.write(tenant, revision, false, 0, |writer, fields| {
            for id in ids {
                writer.delete_term(Term::from_field_text(fields.id, id));
            }
            Ok(())
        })
    }

    /// Replaces the tenant's whole index with `records` (the store's full list) at `revision`.
    /// Use when [`KnowledgeIndex::revision`] differs from the store's revision.
    pub fn rebuild<'a, I>(
        &self,
        tenant: &str,
        records: I,
        revision: u64,
    ) -> Result<(), KnowledgeError>
    where
        I: IntoIterator<Item = &'a FaqRecord>,
    {
        self.write(tenant, revision, true, 0, |writer, fields| {
            writer.delete_all_documents()?;
            for record in records {
                record
                    .validate()
                    .map_err(|source| KnowledgeError::BadRecord {
                        id: record.id.clone(),
                        source,
                    })?;
                if record.enabled {
                    writer.add_document(document(fields, record))?;
                }
            }
            Ok(())
        })
    }

    /// How many searchable segments the tenant's index has (0 without an index): what bulk
    /// writes merge (see `BULK_WRITE`).
    #[doc(hidden)]
    pub fn segment_count(&self, tenant: &str) -> Result<usize, KnowledgeError> {
        Ok(match self.tenant(tenant, false)? {
            Some(tenant_index) => tenant_index.index.searchable_segment_ids()?.len(),
            None => 0,
        })
    }

    /// The revision recorded by the last write, or `None` when the tenant has no index, or one
    /// built by another schema version: in both cases the gateway should [`KnowledgeIndex::rebuild`].
    pub fn revision(&self, tenant: &str) -> Result<Option<u64>, KnowledgeError> {
        let Some(tenant_index) = self.tenant(tenant, false)? else {
            return Ok(None);
        };
        let metas = tenant_index.index.load_metas()?;
        let marker = metas
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str::<Marker>(p).ok());
        Ok(marker
            .filter(|m| m.schema == SCHEMA_VERSION)
            .map(|m| m.revision))
    }

    /// True when the index exists and was last written at `revision`.
    pub fn is_fresh(&self, tenant: &str, revision: u64) -> Result<bool, KnowledgeError> {
        Ok(self.revision(tenant)? == Some(revision))
    }

    /// Number of searchable (enabled) records.
    pub fn doc_count(&self, tenant: &str) -> Result<u64, KnowledgeError> {
        Ok(match self.tenant(tenant, false)? {
            Some(t) => t.reader.searcher().num_docs(),
            None => 0,
        })
    }

    /// Closes and deletes the tenant's index directory (a later write recreates it).
    pub fn remove_tenant(&self, tenant: &str) -> Result<(), KnowledgeError> {
        validate_tenant(tenant)?;
        let removed = self
            .tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tenant);
        if let Some(tenant_index) = removed {
            let writer = tenant_index
                .writer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(writer) = writer {
                writer.wait_merging_threads()?;
            }
        }
        let dir = self.tenant_dir(tenant);
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        Ok(())
    }

    /// Lexical search in one tenant's index: at most `k` candidates, best first.
    ///
    /// `text` is analyzed like the documents and the query is built from its tokens, so nothing in
    /// it is query syntax; text that analyzes to nothing gives an empty list. Synonyms add tokens
    /// at [`SearchTuning::synonym_weight`]. The bot calls this with a larger `k` and reorders the
    /// result with its [`Reranker`] (see [`KnowledgeIndex::search_reranked`]).
    pub fn search(
        &self,
        tenant: &str,
        text: &str,
        k: usize,
        synonyms: &Synonyms,
    ) -> Result<Vec<Candidate>, KnowledgeError> {
        let k = k.min(MAX_K);
        let Some(tenant_index) = self.tenant(tenant, false)? else {
            return Ok(Vec::new());
        };
        if k == 0 {
            return Ok(Vec::new());
        }
        let searcher = tenant_index.reader.searcher();
        let weighted = self.query_terms(tenant_index.fields, &searcher, text, synonyms)?;
        if weighted.is_empty() {
            return Ok(Vec::new());
        }
        let query = build_query(&weighted);
        let hits = searcher.search(&query, &TopDocs::with_limit(k).order_by_score())?;
        fetch(&searcher, tenant_index.fields, hits)
    }

    /// The weighted term clauses of a query text: analyzed tokens (and their synonym expansions)
    /// in the question, alternates and answer fields, then CJK bigrams; in a large index each
    /// carries its doc count and whether it is common (see [`SearchTuning::common_fraction`]).
    /// Empty when the text has no word token.
    fn query_terms(
        &self,
        fields: Fields,
        searcher: &Searcher,
        text: &str,
        synonyms: &Synonyms,
    ) -> Result<Vec<Clause>, KnowledgeError> {
        let text = match text.char_indices().nth(MAX_QUERY_CHARS) {
            Some((cut, _)) => &text[..cut],
            None => text,
        };
        let mut tokens: Vec<String> = Vec::new();
        for token in analyze(text) {
            if !tokens.contains(&token) {
                tokens.push(token);
                if tokens.len() == MAX_QUERY_TOKENS {
                    break;
                }
            }
        }
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let mut bigrams: Vec<String> = Vec::new();
        if self.tuning.cjk_bigram_boost > 0.0 {
            for gram in cjk_bigrams(text) {
                if bigrams.len() < MAX_QUERY_TOKENS && !bigrams.contains(&gram) {
                    bigrams.push(gram);
                }
            }
        }
        let expansions = synonyms.expand(&tokens);
        let tuning = self.tuning;
        let num_docs = searcher.num_docs();
        let gate = tuning.common_fraction < 1.0 && num_docs >= tuning.common_min_docs;
        let limit = (f64::from(tuning.common_fraction) * num_docs as f64) as u64;
        // One group of clauses per token or bigram; commonness is per clause, but the groups among
        // the rarest `keep_rarest` (by their doc counts summed over their fields) are never common.
        let word_fields = [
            (fields.question, tuning.question_boost),
            (fields.alternates, tuning.alternates_boost),
            (fields.answer, tuning.answer_boost),
        ];
        let words = tokens
            .iter()
            .map(|t| (t, 1.0))
            .chain(expansions.iter().map(|t| (t, tuning.synonym_weight)))
            .map(|(token, weight)| {
                word_fields
                    .iter()
                    .filter(|(_, boost)| *boost > 0.0)
                    .map(|(field, boost)| (Term::from_field_text(*field, token), boost * weight))
                    .collect::<Vec<_>>()
            });
        let grams = bigrams.iter().map(|gram| {
            vec![(
                Term::from_field_text(fields.bigrams, gram),
                tuning.cjk_bigram_boost,
            )]
        });
        let mut terms = Vec::new();
        for groups in [words.collect::<Vec<_>>(), grams.collect::<Vec<_>>()] {
            if !gate {
                terms.extend(groups.into_iter().flatten().map(|(term, weight)| Clause {
                    term,
                    weight,
                    doc_freq: 0,
                    common: false,
                }));
                continue;
            }
            let mut counted = Vec::with_capacity(groups.len());
            for group in groups {
                let mut clauses = Vec::with_capacity(group.len());
                for (term, weight) in group {
                    let doc_freq = searcher.doc_freq(&term)?;
                    clauses.push((term, weight, doc_freq));
                }
                // A token found nowhere matches nothing: it is never one of the rarest.
                let total = match clauses.iter().map(|c| c.2).sum::<u64>() {
                    0 => u64::MAX,
                    total => total,
                };
                counted.push((total, clauses));
            }
            // The `keep_rarest` rarest groups (ties in query order) are never common.
            let mut order: Vec<usize> = (0..counted.len()).collect();
            order.sort_by_key(|&at| counted[at].0);
            let mut keep_all = vec![false; counted.len()];
            for &at in order.iter().take(tuning.keep_rarest) {
                keep_all[at] = true;
            }
            for ((_, clauses), keep_all) in counted.into_iter().zip(keep_all) {
                terms.extend(clauses.into_iter().map(|c| {
                    let common = !keep_all && c.2 > limit;
                    Clause {
                        term: c.0,
                        weight: c.1,
                        doc_freq: c.2,
                        common,
                    }
                }));
            }
        }
        Ok(terms)
    }

    /// Profiling aid for the bench: runs one search like [`KnowledgeIndex::search`] and reports
    /// where its time went and what the query looked like.
    #[doc(hidden)]
    pub fn profile_search(
        &self,
        tenant: &str,
        text: &str,
        k: usize,
        synonyms: &Synonyms,
    ) -> Result<SearchProfile, KnowledgeError> {
        let Some(tenant_index) = self.tenant(tenant, false)? else {
            return Err(KnowledgeError::BadTenant(tenant.to_string()));
        };
        let started = Instant::now();
        let searcher = tenant_index.reader.searcher();
        let weighted = self.query_terms(tenant_index.fields, &searcher, text, synonyms)?;
        let analysis = started.elapsed();
        let started = Instant::now();
        let query = build_query(&weighted);
        let hits = searcher.search(&query, &TopDocs::with_limit(k).order_by_score())?;
        let scoring = started.elapsed();
        let started = Instant::now();
        let found = fetch(&searcher, tenant_index.fields, hits)?.len();
        let fetching = started.elapsed();
        let schema = tenant_index.index.schema();
        let mut terms = Vec::new();
        for clause in &weighted {
            let doc_freq = searcher.doc_freq(&clause.term)?;
            let text = clause.term.value().as_str().unwrap_or_default().to_string();
            terms.push((
                schema.get_field_name(clause.term.field()).to_string(),
                text,
                clause.weight,
                doc_freq,
                clause.common,
            ));
        }
        Ok(SearchProfile {
            analysis,
            scoring,
            fetching,
            hits: found,
            segments: searcher.segment_readers().len(),
            num_docs: searcher.num_docs(),
            terms,
        })
    }

    /// The bot's entry point: fetches a wider pool of lexical candidates (4 × k, at least 20),
    /// lets `reranker` reorder them, and keeps the first `k`.
    pub fn search_reranked(
        &self,
        tenant: &str,
        text: &str,
        k: usize,
        synonyms: &Synonyms,
        reranker: &dyn Reranker,
    ) -> Result<Vec<Candidate>, KnowledgeError> {
        let pool = self.search(tenant, text, (k * 4).max(20), synonyms)?;
        let mut ranked = reranker.rerank(text, pool);
        ranked.truncate(k);
        Ok(ranked)
    }
}

fn document(fields: Fields, record: &FaqRecord) -> TantivyDocument {
    let mut doc = TantivyDocument::new();
    doc.add_text(fields.id, &record.id);
    doc.add_text(fields.question, &record.question);
    doc.add_text(fields.bigrams, &record.question);
    for alternate in &record.alternates {
        doc.add_text(fields.alternates, alternate);
        doc.add_text(fields.bigrams, alternate);
    }
    doc.add_text(fields.answer, &record.answer);
    doc
}

/// One weighted term clause of a query.
struct Clause {
    term: Term,
    weight: f32,
    /// Documents holding the term (only looked up in indexes large enough for the gate).
    doc_freq: u64,
    /// In more than [`SearchTuning::common_fraction`] of the documents, and not protected by
    /// [`SearchTuning::keep_rarest`].
    common: bool,
}

/// One disjunction of all clauses (tantivy scores it with block-max WAND), unless the common
/// clauses (flagged `true`) hold more postings than the others: then the others must match and the
/// common ones only add their scores to those documents, so their long posting lists are skipped
/// through instead of read. Scores are unchanged for every document that matches an uncommon
/// clause; only documents matching common terms alone are no longer found.
fn build_query(weighted: &[Clause]) -> BooleanQuery {
    let clause = |term: &Term, weight: f32| -> Box<dyn Query> {
        Box::new(BoostQuery::new(
            Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)),
            weight,
        ))
    };
    let (mut common, mut rare) = (0u64, 0u64);
    for c in weighted {
        if c.common {
            common += c.doc_freq;
        } else {
            rare += c.doc_freq;
        }
    }
    if rare > 0 && common > rare {
        let rare: Vec<(Occur, Box<dyn Query>)> = weighted
            .iter()
            .filter(|c| !c.common)
            .map(|c| (Occur::Should, clause(&c.term, c.weight)))
            .collect();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(BooleanQuery::new(rare)))];
        clauses.extend(
            weighted
                .iter()
                .filter(|c| c.common)
                .map(|c| (Occur::Should, clause(&c.term, c.weight))),
        );
        return BooleanQuery::new(clauses);
    }
    let clauses: Vec<(Occur, Box<dyn Query>)> = weighted
        .iter()
        .map(|c| (Occur::Should, clause(&c.term, c.weight)))
        .collect();
    BooleanQuery::new(clauses)
}

fn fetch(
    searcher: &Searcher,
    fields: Fields,
    hits: Vec<(f32, DocAddress)>,
) -> Result<Vec<Candidate>, KnowledgeError> {
    let mut out = Vec::with_capacity(hits.len());
    for (score, address) in hits {
        let doc: TantivyDocument = searcher.doc(address)?;
        let text_of = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        out.push(Candidate {
            id: text_of(fields.id),
            question: text_of(fields.question),
            answer: text_of(fields.answer),
            alternates: doc
                .get_all(fields.alternates)
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            score,
        });
    }
    Ok(out)
}

/// What [`KnowledgeIndex::profile_search`] measured.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct SearchProfile {
    pub analysis: Duration,
    pub scoring: Duration,
    pub fetching: Duration,
    pub hits: usize,
    pub segments: usize,
    pub num_docs: u64,
    /// (field, token, weight, doc frequency, common) of every clause.
    pub terms: Vec<(String, String, f32, u64, bool)>,
}
