//! The knowledge-gap loop's rows: customer questions the bot could not answer (`gap_questions`,
//! the newest [`GAP_QUESTIONS_KEPT`] per tenant, each with its cached embedding once clustered)
//! and the groups they were clustered into (`gap_groups`: a stable id, a centroid, a label, the
//! dismissed flag and the FAQ drafted from it). A question keeps its group once it has one, so
//! a group's identity and its dismissed state survive every later clustering. The clustering
//! itself is the engine's (`engine::gaps`).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError, StoreResult};
use crate::util::{new_id, now_ms};

/// How many unanswered questions a tenant keeps (the newest): an abusive visitor cannot grow
/// the table without bound.
pub const GAP_QUESTIONS_KEPT: i64 = 20_000;

/// After how many of its own inserts (on average) a tenant's rows beyond the cap are deleted;
/// clustering prunes too.
const PRUNE_EVERY: i64 = 64;

/// One unanswered question as the bot-turn path records it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGapQuestion {
    pub tenant: String,
    pub conversation_id: String,
    /// The customer message's seq in its conversation.
    pub seq: i64,
    pub text: String,
    /// The bot's decision kind (`out_of_scope`, `clarify`, `handoff`).
    pub decision: String,
    /// The decision's reason (`no_match`, `low_confidence`, `unsure_twice`).
    pub reason: String,
    pub confidence: f32,
    /// A clarify's buttons: a later click on one means the question was answered after all.
    pub suggestions: Vec<String>,
}

/// A stored unanswered question.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GapQuestion {
    pub id: i64,
    pub conversation_id: String,
    pub seq: i64,
    pub text: String,
    pub decision: String,
    pub reason: String,
    pub confidence: f32,
    #[serde(skip)]
    pub suggestions: Vec<String>,
    /// The cached sentence embedding (L2-normalized), once computed.
    #[serde(skip)]
    pub embedding: Option<Vec<f32>>,
    pub group_id: Option<String>,
    pub created_at: i64,
}

/// A group of unanswered questions as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct GapGroup {
    pub id: String,
    /// The sum of the members' embeddings when they joined (its direction is the centroid).
    pub centroid: Vec<f32>,
    /// The most central question.
    pub label: String,
    pub dismissed: bool,
    /// The FAQ drafted from this group (it exists once published).
    pub faq_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A group's size and activity.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GapGroupStats {
    pub count: i64,
    pub last_at: i64,
    /// Questions per day, oldest first, over the days asked for.
    pub per_day: Vec<i64>,
}

/// One clustering's outcome, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct GapClustering {
    /// Groups created or changed (centroid and label); others are left alone.
    pub groups: Vec<GapGroup>,
    /// (question id, group id)
    pub assignments: Vec<(i64, String)>,
    /// (question id, embedding) for questions given their embedding.
    pub embeddings: Vec<(i64, Vec<f32>)>,
    /// Questions no longer unanswered (a clarify whose button was clicked).
    pub answered: Vec<i64>,
}

const QUESTION_COLUMNS: &str = "id, conversation_id, seq, text, decision, reason, confidence, \
    suggestions, embedding, group_id, created_at";

impl Store {
    /// Keeps one unanswered question; now and then deletes the tenant's rows beyond the cap.
    pub async fn record_gap_question(&self, question: &NewGapQuestion) -> StoreResult<i64> {
        let (_guard, mut tx) = self.write().await?;
        let row = sqlx::query(
            "INSERT INTO gap_questions (tenant_id, conversation_id, seq, text, decision, reason, \
             confidence, suggestions, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&question.tenant)
        .bind(&question.conversation_id)
        .bind(question.seq)
        .bind(&question.text)
        .bind(&question.decision)
        .bind(&question.reason)
        .bind(f64::from(question.confidence))
        .bind(serde_json::to_string(&question.suggestions).unwrap_or_else(|_| "[]".into()))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        if id % PRUNE_EVERY == 0 {
            prune(&mut tx, &question.tenant, GAP_QUESTIONS_KEPT).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Deletes the tenant's questions beyond the newest `keep`; returns how many went.
    pub async fn prune_gap_questions(&self, tenant: &str, keep: i64) -> StoreResult<u64> {
        let (_guard, mut tx) = self.write().await?;
        let deleted = prune(&mut tx, tenant, keep).await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// The tenant's questions not in a group yet, oldest first, at most `limit` (the newest ones
    /// when there are more).
    pub async fn unclustered_gap_questions(
        &self,
        tenant: &str,
        limit: i64,
    ) -> StoreResult<Vec<GapQuestion>> {
        let sql = format!(
            "SELECT {QUESTION_COLUMNS} FROM gap_questions WHERE tenant_id = $1 AND group_id IS NULL \
             ORDER BY id DESC LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut questions = rows
            .iter()
            .map(question_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        questions.reverse();
        Ok(questions)
    }

    /// A group's questions, newest first, at most `limit`.
    pub async fn gap_group_questions(
        &self,
        tenant: &str,
        group: &str,
        limit: i64,
    ) -> StoreResult<Vec<GapQuestion>> {
        let sql = format!(
            "SELECT {QUESTION_COLUMNS} FROM gap_questions WHERE tenant_id = $1 AND group_id = $2 \
             ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(group)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(question_from_row).collect()
    }

    /// Every group of the tenant.
    pub async fn gap_groups(&self, tenant: &str) -> StoreResult<Vec<GapGroup>> {
        let rows = sqlx::query(
            "SELECT id, centroid, label, dismissed, faq_id, created_at, updated_at FROM gap_groups \
             WHERE tenant_id = $1 ORDER BY id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(group_from_row).collect()
    }

    pub async fn gap_group(&self, tenant: &str, id: &str) -> StoreResult<Option<GapGroup>> {
        let row = sqlx::query(
            "SELECT id, centroid, label, dismissed, faq_id, created_at, updated_at FROM gap_groups \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| group_from_row(&row)).transpose()
    }

    /// A fresh group id.
    pub fn new_gap_group_id(&self) -> String {
        new_id("gap_")
    }

    /// Writes one clustering: groups, memberships, embeddings and questions answered after all.
    /// A question already in a group keeps it; a group's dismissed flag and FAQ are kept.
    pub async fn save_gap_clustering(
        &self,
        tenant: &str,
        clustering: &GapClustering,
    ) -> StoreResult<()> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        for group in &clustering.groups {
            sqlx::query(
                "INSERT INTO gap_groups (tenant_id, id, centroid, label, dismissed, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, 0, $5, $5) ON CONFLICT (tenant_id, id) DO UPDATE SET \
                 centroid = excluded.centroid, label = excluded.label, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(&group.id)
            .bind(vector_bytes(&group.centroid))
            .bind(&group.label)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for (id, embedding) in &clustering.embeddings {
            sqlx::query("UPDATE gap_questions SET embedding = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(vector_bytes(embedding))
                .bind(tenant)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        for (id, group) in &clustering.assignments {
            sqlx::query(
                "UPDATE gap_questions SET group_id = $1 WHERE tenant_id = $2 AND id = $3 AND group_id IS NULL",
            )
            .bind(group)
            .bind(tenant)
            .bind(*id)
            .execute(&mut *tx)
            .await?;
        }
        for id in &clustering.answered {
            sqlx::query("DELETE FROM gap_questions WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        if !clustering.answered.is_empty() {
            prune_empty_groups(&mut tx, tenant).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Each group's question count, newest question and per-day counts over the `days` days
    /// ending with the one that holds `now` (UTC days).
    pub async fn gap_group_stats(
        &self,
        tenant: &str,
        days: usize,
        now: i64,
    ) -> StoreResult<std::collections::HashMap<String, GapGroupStats>> {
        let mut stats = std::collections::HashMap::<String, GapGroupStats>::new();
        let rows = sqlx::query(
            "SELECT group_id, COUNT(*) AS n, MAX(created_at) AS last_at FROM gap_questions \
             WHERE tenant_id = $1 AND group_id IS NOT NULL GROUP BY group_id",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            stats.insert(
                row.try_get("group_id")?,
                GapGroupStats {
                    count: row.try_get("n")?,
                    last_at: row.try_get("last_at")?,
                    per_day: vec![0; days],
                },
            );
        }
        const DAY: i64 = 86_400_000;
        let today = now.div_euclid(DAY);
        let first_day = today - days as i64 + 1;
        let rows = sqlx::query(
            "SELECT group_id, created_at FROM gap_questions \
             WHERE tenant_id = $1 AND group_id IS NOT NULL AND created_at >= $2",
        )
        .bind(tenant)
        .bind(first_day * DAY)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let group: String = row.try_get("group_id")?;
            let at: i64 = row.try_get("created_at")?;
            let day = at.div_euclid(DAY) - first_day;
            if let (Some(entry), Ok(day)) = (stats.get_mut(&group), usize::try_from(day)) {
                if let Some(slot) = entry.per_day.get_mut(day) {
                    *slot += 1;
                }
            }
        }
        Ok(stats)
    }

    /// Dismisses or restores a group.
    pub async fn set_gap_group_dismissed(
        &self,
        tenant: &str,
        id: &str,
        dismissed: bool,
    ) -> StoreResult<()> {
        let (_guard, mut tx) = self.write().await?;
        let done = sqlx::query(
            "UPDATE gap_groups SET dismissed = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(i64::from(dismissed))
        .bind(now_ms())
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("gap group"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Notes the FAQ drafted from a group.
    pub async fn set_gap_group_faq(&self, tenant: &str, id: &str, faq_id: &str) -> StoreResult<()> {
        let (_guard, mut tx) = self.write().await?;
        let done = sqlx::query(
            "UPDATE gap_groups SET faq_id = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(faq_id)
        .bind(now_ms())
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound("gap group"));
        }
        tx.commit().await?;
        Ok(())
    }

    /// The first message `sender_kind` sent in a conversation after `seq`, if any.
    pub async fn first_message_after(
        &self,
        conversation_id: &str,
        seq: i64,
        sender_kind: &str,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT text FROM messages WHERE conversation_id = $1 AND seq > $2 AND sender_kind = $3 \
             ORDER BY seq LIMIT 1",
        )
        .bind(conversation_id)
        .bind(seq)
        .bind(sender_kind)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get("text")).transpose()?)
    }
}

async fn prune(tx: &mut super::Tx<'_>, tenant: &str, keep: i64) -> StoreResult<u64> {
    let boundary = sqlx::query(
        "SELECT id FROM gap_questions WHERE tenant_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
    )
    .bind(tenant)
    .bind(keep.max(0))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(boundary) = boundary else {
        return Ok(0);
    };
    let boundary: i64 = boundary.try_get("id")?;
    let done = sqlx::query("DELETE FROM gap_questions WHERE tenant_id = $1 AND id <= $2")
        .bind(tenant)
        .bind(boundary)
        .execute(&mut **tx)
        .await?;
    prune_empty_groups(tx, tenant).await?;
    Ok(done.rows_affected())
}

/// Deletes the tenant's groups left without questions, unless someone dismissed them or drafted
/// a FAQ from them: the groups stay as few as the questions kept, and every clustering compares
/// new questions with fewer centroids.
async fn prune_empty_groups(tx: &mut super::Tx<'_>, tenant: &str) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM gap_groups WHERE tenant_id = $1 AND dismissed = 0 AND faq_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM gap_questions q \
         WHERE q.tenant_id = gap_groups.tenant_id AND q.group_id = gap_groups.id)",
    )
    .bind(tenant)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A vector as little-endian f32 bytes.
pub fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

fn vector_from_bytes(bytes: &[u8]) -> StoreResult<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        return Err(StoreError::Corrupt("a vector of odd length".into()));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect())
}

fn question_from_row(row: &AnyRow) -> StoreResult<GapQuestion> {
    let suggestions: String = row.try_get("suggestions")?;
    let embedding: Option<Vec<u8>> = row.try_get("embedding")?;
    Ok(GapQuestion {
        id: row.try_get("id")?,
        conversation_id: row.try_get("conversation_id")?,
        seq: row.try_get("seq")?,
        text: row.try_get("text")?,
        decision: row.try_get("decision")?,
        reason: row.try_get("reason")?,
        confidence: row.try_get::<f64, _>("confidence")? as f32,
        suggestions: serde_json::from_str(&suggestions)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?,
        embedding: embedding.as_deref().map(vector_from_bytes).transpose()?,
        group_id: row.try_get("group_id")?,
        created_at: row.try_get("created_at")?,
    })
}

fn group_from_row(row: &AnyRow) -> StoreResult<GapGroup> {
    let centroid: Vec<u8> = row.try_get("centroid")?;
    Ok(GapGroup {
        id: row.try_get("id")?,
        centroid: vector_from_bytes(&centroid)?,
        label: row.try_get("label")?,
        dismissed: row.try_get::<i64, _>("dismissed")? != 0,
        faq_id: row.try_get("faq_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}
