//! The knowledge base as the gateway runs it: FAQ records in the store (the truth) and the
//! tantivy index on this node (derived). Every write goes to the store first, then to the index
//! with the store's new revision. A sync loop compares revisions and rebuilds any tenant whose
//! index is missing or behind — which also picks up changes made by another node or the CLI.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Serialize;
use switchboard_knowledge::{
    parse_import, Candidate, FaqRecord, ImportFormat, KnowledgeError, KnowledgeIndex, RowError,
    Synonyms,
};

use crate::error::{blocking, ServiceError, ServiceResult};
use store::{Store, UpsertCounts};

/// Records are written to the store in batches of this size (progress is reported per batch).
const IMPORT_BATCH: usize = 1_000;
/// Records written to the index at once during an import (see [`Knowledge::import`]).
const IMPORT_INDEX_BATCH: usize = 50_000;

#[derive(Debug, Serialize)]
pub struct ImportReport {
    #[serde(flatten)]
    pub counts: UpsertCounts,
    /// The first rejected rows (`knowledge::MAX_ROW_ERRORS`).
    pub errors: Vec<RowError>,
    /// Rejected rows beyond those listed.
    #[serde(skip_serializing_if = "is_zero")]
    pub errors_dropped: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// A change applied to this node's index, for whoever follows it (the bot's dense side).
#[derive(Debug, Clone)]
pub enum KbChange {
    Written(String, Vec<FaqRecord>),
    Deleted(String, Vec<String>),
    Rebuilt(String, Vec<FaqRecord>),
}

pub struct Knowledge {
    store: Store,
    index: Arc<KnowledgeIndex>,
    /// Each tenant's parsed synonyms, with the knowledge revision they were read at.
    synonyms: RwLock<HashMap<String, (u64, Arc<Synonyms>)>>,
    changes: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<KbChange>>,
    changes_sent: std::sync::atomic::AtomicU64,
}

fn index_error(error: KnowledgeError) -> ServiceError {
    ServiceError::Internal(anyhow::Error::new(error).context("knowledge index"))
}

/// Runs index work (CPU and disk) off the async executor; an index error is internal.
async fn index_work<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KnowledgeError> + Send + 'static,
) -> ServiceResult<T> {
    blocking("index", work).await?.map_err(index_error)
}

impl Knowledge {
    pub fn open(store: Store, dir: &Path) -> anyhow::Result<Arc<Knowledge>> {
        let index = KnowledgeIndex::open(dir).map_err(|error| {
            anyhow::anyhow!(
                "cannot open the knowledge index in {}: {error}",
                dir.display()
            )
        })?;
        Ok(Arc::new(Knowledge {
            store,
            index: Arc::new(index),
            synonyms: RwLock::new(HashMap::new()),
            changes: std::sync::OnceLock::new(),
            changes_sent: std::sync::atomic::AtomicU64::new(0),
        }))
    }

    /// Every later change to this node's index, in order (one follower).
    pub fn follow_changes(&self) -> tokio::sync::mpsc::UnboundedReceiver<KbChange> {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let _ = self.changes.set(sender);
        receiver
    }

    fn changed(&self, change: KbChange) {
        if let Some(sender) = self.changes.get() {
            if sender.send(change).is_ok() {
                self.changes_sent
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// How many changes went to the follower so far.
    pub fn changes_sent(&self) -> u64 {
        self.changes_sent.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn index(&self) -> &Arc<KnowledgeIndex> {
        &self.index
    }

    /// Rebuilds every tenant index that is missing or behind the store, and refreshes synonyms.
    pub async fn sync(&self) -> ServiceResult<()> {
        for (tenant, revision) in self.store.kb_revisions().await? {
            // Synonyms are read and parsed again only when the revision moved.
            let parsed_at = self
                .synonyms
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(&tenant)
                .map(|(revision, _)| *revision);
            if parsed_at != Some(revision) {
                let text = self.store.kb_synonyms(&tenant).await?;
                let synonyms = blocking("synonyms", move || Synonyms::parse(&text)).await?;
                self.synonyms
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(tenant.clone(), (revision, Arc::new(synonyms)));
            }
            let index = self.index.clone();
            let name = tenant.clone();
            if index_work(move || index.is_fresh(&name, revision)).await? {
                continue;
            }
            let (records, revision) = self.store.all_faqs(&tenant).await?;
            let index = self.index.clone();
            let name = tenant.clone();
            let count = records.len();
            let followed = records.clone();
            index_work(move || index.rebuild(&name, &records, revision)).await?;
            self.changed(KbChange::Rebuilt(tenant.clone(), followed));
            tracing::info!(tenant = %tenant, revision, records = count, "knowledge index rebuilt from the store");
        }
        Ok(())
    }

    /// Keeps this node's indexes in step with the store.
    pub fn start_sync_loop(self: &Arc<Self>, every: Duration) {
        let knowledge = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(knowledge) = knowledge.upgrade() else {
                    break;
                };
                if let Err(error) = knowledge.sync().await {
                    tracing::warn!(error = %error, "knowledge sync failed");
                }
            }
        });
    }

    /// Parses a file and upserts its good rows; bad rows are reported, a bad file is a 400.
    pub async fn import(
        &self,
        tenant: &str,
        bytes: Vec<u8>,
        format: Option<ImportFormat>,
        progress: &(dyn Fn(usize, usize) + Send + Sync),
    ) -> ServiceResult<ImportReport> {
        let parsed = blocking("import", move || parse_import(&bytes, format))
            .await?
            .map_err(|error| ServiceError::invalid("bad_file", error.to_string()))?;
        let records: Vec<FaqRecord> = parsed
            .records
            .into_iter()
            .map(|imported| imported.record)
            .collect();
        let mut counts = UpsertCounts::default();
        let total = records.len();
        // The index takes what the store wrote in few large writes: a large write merges the
        // tenant's index into one segment (see the knowledge crate's `BULK_WRITE`), and a write
        // per store batch made an import of 100,000 merge the growing index again and again.
        let mut unindexed = Vec::new();
        for (done, batch) in records.chunks(IMPORT_BATCH).enumerate() {
            let (batch_counts, written, revision) = self.store.upsert_faqs(tenant, batch).await?;
            counts.inserted += batch_counts.inserted;
            counts.updated += batch_counts.updated;
            counts.unchanged += batch_counts.unchanged;
            unindexed.extend(written);
            if unindexed.len() >= IMPORT_INDEX_BATCH || (done + 1) * IMPORT_BATCH >= total {
                self.index_written(tenant, std::mem::take(&mut unindexed), revision)
                    .await?;
            }
            progress(((done + 1) * IMPORT_BATCH).min(total), total);
        }
        tracing::info!(
            tenant,
            inserted = counts.inserted,
            updated = counts.updated,
            errors = parsed.errors.len() + parsed.errors_dropped,
            "knowledge import"
        );
        Ok(ImportReport {
            counts,
            errors: parsed.errors,
            errors_dropped: parsed.errors_dropped,
        })
    }

    async fn index_written(
        &self,
        tenant: &str,
        written: Vec<FaqRecord>,
        revision: u64,
    ) -> ServiceResult<()> {
        if written.is_empty() {
            return Ok(());
        }
        let index = self.index.clone();
        self.changed(KbChange::Written(tenant.to_owned(), written.clone()));
        let tenant = tenant.to_owned();
        match blocking("index", move || index.upsert(&tenant, &written, revision)).await? {
            Ok(()) => Ok(()),
            // Another process holds the index (the CLI next to a running server): the store has the
            // change, and the node that owns the index rebuilds from it.
            Err(KnowledgeError::Locked(path)) => {
                tracing::info!(path = %path, "knowledge index is held by another process; it will sync from the store");
                Ok(())
            }
            Err(error) => Err(index_error(error)),
        }
    }

    /// Creates or replaces one record; `true` when it was new.
    pub async fn put(&self, tenant: &str, record: FaqRecord) -> ServiceResult<(FaqRecord, bool)> {
        let mut record = record;
        record.normalize();
        record
            .validate()
            .map_err(|error| ServiceError::invalid("bad_faq", error.to_string()))?;
        let (counts, written, revision) = self
            .store
            .upsert_faqs(tenant, std::slice::from_ref(&record))
            .await?;
        self.index_written(tenant, written, revision).await?;
        let stored = self
            .store
            .faq(tenant, &record.id)
            .await?
            .ok_or(ServiceError::NotFound("faq"))?;
        Ok((stored, counts.inserted == 1))
    }

    pub async fn delete(&self, tenant: &str, id: &str) -> ServiceResult<()> {
        let revision = self.store.delete_faq(tenant, id).await?;
        let index = self.index.clone();
        self.changed(KbChange::Deleted(tenant.to_owned(), vec![id.to_owned()]));
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        index_work(move || index.delete(&tenant, &[id.as_str()], revision)).await
    }

    /// Replaces the tenant's synonyms (one group a line); over the limits
    /// ([`Synonyms::check`]) it is `bad_synonyms` and nothing changes.
    pub async fn set_synonyms(&self, tenant: &str, text: &str) -> ServiceResult<()> {
        Synonyms::check(text).map_err(|message| ServiceError::invalid("bad_synonyms", message))?;
        let owned = text.to_owned();
        let synonyms = blocking("synonyms", move || Synonyms::parse(&owned)).await?;
        let revision = self.store.set_kb_synonyms(tenant, text).await?;
        self.synonyms
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_owned(), (revision, Arc::new(synonyms)));
        // The index content did not change, only its revision: record that without a rebuild.
        let index = self.index.clone();
        let tenant = tenant.to_owned();
        index_work(move || index.upsert(&tenant, &[], revision)).await
    }

    pub fn synonyms(&self, tenant: &str) -> Arc<Synonyms> {
        self.synonyms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .map(|(_, synonyms)| synonyms.clone())
            .unwrap_or_else(|| Arc::new(Synonyms::none()))
    }

    pub async fn search(
        &self,
        tenant: &str,
        text: &str,
        k: usize,
    ) -> ServiceResult<Vec<Candidate>> {
        let index = self.index.clone();
        let synonyms = self.synonyms(tenant);
        let (tenant, text) = (tenant.to_owned(), text.to_owned());
        index_work(move || index.search(&tenant, &text, k, &synonyms)).await
    }
}
