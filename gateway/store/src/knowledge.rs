//! FAQ records and each tenant's knowledge-base revision.

use sqlx::any::AnyRow;
use sqlx::Row;
use switchboard_knowledge::FaqRecord;

use super::{Store, StoreError, StoreResult, Tx};
use crate::model::UpsertCounts;
use crate::util::now_ms;

const FAQ_COLUMNS: &str = "id, question, answer, alternates, tags, locale, enabled, updated_at";

impl Store {
    /// Inserts or replaces records by id. Records equal to the stored ones are left alone.
    /// Returns the counts, the records actually written (with their new times) and the revision.
    pub async fn upsert_faqs(
        &self,
        tenant: &str,
        records: &[FaqRecord],
    ) -> StoreResult<(UpsertCounts, Vec<FaqRecord>, u64)> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let mut counts = UpsertCounts::default();
        let mut written = Vec::new();
        for record in records {
            let sql = format!("SELECT {FAQ_COLUMNS} FROM faqs WHERE tenant_id = $1 AND id = $2");
            let existing = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(tenant)
                .bind(&record.id)
                .fetch_optional(&mut *tx)
                .await?;
            let existing = existing.map(|row| faq_from_row(&row)).transpose()?;
            match existing {
                Some(old) if same_content(&old, record) => {
                    counts.unchanged += 1;
                    continue;
                }
                Some(_) => counts.updated += 1,
                None => counts.inserted += 1,
            }
            let mut record = record.clone();
            record.updated_at_ms = now;
            sqlx::query(
                "INSERT INTO faqs (tenant_id, id, question, answer, alternates, tags, locale, enabled, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, id) DO UPDATE SET \
                 question = excluded.question, answer = excluded.answer, alternates = excluded.alternates, \
                 tags = excluded.tags, locale = excluded.locale, enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(&record.id)
            .bind(&record.question)
            .bind(&record.answer)
            .bind(json_list(&record.alternates))
            .bind(json_list(&record.tags))
            .bind(&record.locale)
            .bind(i64::from(record.enabled))
            .bind(now)
            .execute(&mut *tx)
            .await?;
            written.push(record);
        }
        let revision = if written.is_empty() {
            current_revision(&mut tx, tenant).await?
        } else {
            bump_revision(&mut tx, tenant).await?
        };
        tx.commit().await?;
        Ok((counts, written, revision))
    }

    /// Deletes one record; returns the new revision.
    pub async fn delete_faq(&self, tenant: &str, id: &str) -> StoreResult<u64> {
        let (_guard, mut tx) = self.write().await?;
        let done = sqlx::query("DELETE FROM faqs WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("faq"));
        }
        let revision = bump_revision(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(revision)
    }

    pub async fn faq(&self, tenant: &str, id: &str) -> StoreResult<Option<FaqRecord>> {
        let sql = format!("SELECT {FAQ_COLUMNS} FROM faqs WHERE tenant_id = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| faq_from_row(&row)).transpose()
    }

    /// A page of records ordered by id, after `after` (exclusive).
    pub async fn list_faqs(
        &self,
        tenant: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<FaqRecord>> {
        let sql = format!(
            "SELECT {FAQ_COLUMNS} FROM faqs WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(faq_from_row).collect()
    }

    /// Every record of a tenant with the revision they make up (one consistent read).
    pub async fn all_faqs(&self, tenant: &str) -> StoreResult<(Vec<FaqRecord>, u64)> {
        let mut tx = self.pool.begin().await?;
        let revision = current_revision(&mut tx, tenant).await?;
        let sql = format!("SELECT {FAQ_COLUMNS} FROM faqs WHERE tenant_id = $1 ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((
            rows.iter().map(faq_from_row).collect::<StoreResult<_>>()?,
            revision,
        ))
    }

    /// Every tenant's knowledge-base revision and synonyms.
    /// Every tenant's knowledge revision (it moves with each change of FAQs or synonyms).
    pub async fn kb_revisions(&self) -> StoreResult<Vec<(String, u64)>> {
        let rows = sqlx::query("SELECT tenant_id, revision FROM kb_state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("tenant_id")?,
                    row.try_get::<i64, _>("revision")? as u64,
                ))
            })
            .collect()
    }

    pub async fn kb_synonyms(&self, tenant: &str) -> StoreResult<String> {
        let row = sqlx::query("SELECT synonyms FROM kb_state WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|row| row.try_get("synonyms"))
            .transpose()?
            .unwrap_or_default())
    }

    /// Replaces the tenant's synonym groups (one group a line, members joined by `=`).
    pub async fn set_kb_synonyms(&self, tenant: &str, synonyms: &str) -> StoreResult<u64> {
        let (_guard, mut tx) = self.write().await?;
        let revision = bump_revision(&mut tx, tenant).await?;
        sqlx::query("UPDATE kb_state SET synonyms = $1 WHERE tenant_id = $2")
            .bind(synonyms)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(revision)
    }
}

fn same_content(a: &FaqRecord, b: &FaqRecord) -> bool {
    a.question == b.question
        && a.answer == b.answer
        && a.alternates == b.alternates
        && a.tags == b.tags
        && a.locale == b.locale
        && a.enabled == b.enabled
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

async fn current_revision(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<u64> {
    let row = sqlx::query("SELECT revision FROM kb_state WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row
        .map(|row| row.try_get::<i64, _>("revision"))
        .transpose()?
        .unwrap_or(0) as u64)
}

async fn bump_revision(tx: &mut Tx<'_>, tenant: &str) -> StoreResult<u64> {
    let row = sqlx::query(
        "INSERT INTO kb_state (tenant_id, revision, synonyms) VALUES ($1, 1, '') \
         ON CONFLICT (tenant_id) DO UPDATE SET revision = kb_state.revision + 1 RETURNING revision",
    )
    .bind(tenant)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get::<i64, _>("revision")? as u64)
}

fn faq_from_row(row: &AnyRow) -> StoreResult<FaqRecord> {
    let list = |column: &str| -> StoreResult<Vec<String>> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|error| StoreError::Corrupt(error.to_string()))
    };
    Ok(FaqRecord {
        id: row.try_get("id")?,
        question: row.try_get("question")?,
        answer: row.try_get("answer")?,
        alternates: list("alternates")?,
        tags: list("tags")?,
        locale: row.try_get("locale")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
        updated_at_ms: row.try_get("updated_at")?,
    })
}
