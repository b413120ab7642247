//! What the bot, the intent models and the policies keep: tenant settings, customer routing
//! attributes, bot messages and handoffs, intent models, policy versions, sensitive-word lists
//! and quality scores.

use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use switchboard_channels::web::SenderKind;

use super::{
    append_system_tx, conversation_from_row, insert_event, insert_message, parse_json_column,
    Actor, Conversation, Customer, CustomerAttributes, MessageRecord, Store, StoreError,
    StoreResult, CONVERSATION_COLUMNS,
};
use crate::model::{
    IntentModelRecord, PolicyVersion, QualityRecord, SensitiveListRecord, UnsureStreak,
};
use crate::util::now_ms;

impl Store {
    // ---- tenant settings and customer attributes ---------------------------------------------

    pub async fn set_tenant_settings(
        &self,
        tenant: &str,
        settings: &serde_json::Value,
    ) -> StoreResult<()> {
        let result = sqlx::query("UPDATE tenants SET settings = $1 WHERE id = $2")
            .bind(settings.to_string())
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        Ok(())
    }

    pub async fn set_customer_attributes(
        &self,
        tenant: &str,
        id: &str,
        attributes: &CustomerAttributes,
    ) -> StoreResult<Customer> {
        let json = serde_json::to_string(attributes)
            .map_err(|error| StoreError::Invalid(error.to_string()))?;
        let result =
            sqlx::query("UPDATE customers SET attributes = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(json)
                .bind(tenant)
                .bind(id)
                .execute(&self.pool)
                .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound("customer"));
        }
        self.customer(tenant, id)
            .await?
            .ok_or(StoreError::NotFound("customer"))
    }

    // ---- the bot's part of a conversation ------------------------------------------------------

    /// Stores a bot message in a conversation that is still with the bot; `None` when a person
    /// took it over meanwhile (nothing is written). `streak` says what the message does to the
    /// conversation's unsure streak, in the same statement.
    pub async fn append_bot_message(
        &self,
        conversation_id: &str,
        text: &str,
        meta: serde_json::Value,
        streak: UnsureStreak,
    ) -> StoreResult<Option<MessageRecord>> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        // The conditional update also locks the row (PostgreSQL) until the message is in.
        let row = sqlx::query(
            "UPDATE conversations SET updated_at = $1, \
             bot_unsure_streak = CASE $2 WHEN 1 THEN bot_unsure_streak + 1 WHEN 0 THEN 0 \
             ELSE bot_unsure_streak END WHERE id = $3 AND state = 'bot' RETURNING tenant_id",
        )
        .bind(now)
        .bind(match streak {
            UnsureStreak::Lengthen => 1_i64,
            UnsureStreak::Reset => 0,
            UnsureStreak::Keep => 2,
        })
        .bind(conversation_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let tenant: String = row.try_get("tenant_id")?;
        let message = append_bot_tx(&mut tx, conversation_id, &tenant, text, meta, now).await?;
        tx.commit().await?;
        Ok(Some(message))
    }

    /// How many unsure bot decisions in a row the conversation has had (0 for an unknown one).
    pub async fn bot_unsure_streak(&self, conversation_id: &str) -> StoreResult<u32> {
        let row = sqlx::query("SELECT bot_unsure_streak FROM conversations WHERE id = $1")
            .bind(conversation_id)
            .fetch_optional(&self.pool)
            .await?;
        let streak: i64 = match row {
            Some(row) => row.try_get("bot_unsure_streak")?,
            None => 0,
        };
        Ok(u32::try_from(streak).unwrap_or(0))
    }

    /// Moves a conversation from the bot to a queue (`None` if it was no longer with the bot).
    /// The conversation's `handoff_reason` is `reason` (a stable code); the `queued` event
    /// carries `note` (the reason and what routed it). The bot's last words (`text`, `meta`),
    /// when given, are stored as a bot message in the same transaction.
    pub async fn hand_off(
        &self,
        conversation_id: &str,
        skill_group: &str,
        priority: i64,
        reason: &str,
        note: &str,
        bot_says: Option<(&str, serde_json::Value)>,
    ) -> StoreResult<Option<(Conversation, Option<MessageRecord>)>> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let sql = format!(
            "UPDATE conversations SET state = 'queued', skill_group = $1, priority = $2, queue_key = $3, \
             handoff_reason = $4, updated_at = $3 WHERE id = $5 AND state = 'bot' RETURNING {CONVERSATION_COLUMNS}"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(skill_group)
            .bind(priority)
            .bind(now)
            .bind(reason)
            .bind(conversation_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let conversation = conversation_from_row(&row)?;
        insert_event(
            &mut tx,
            &conversation,
            "queued",
            &Actor::system(),
            Some(note),
        )
        .await?;
        let message = match bot_says {
            Some((text, meta)) => Some(
                append_bot_tx(
                    &mut tx,
                    conversation_id,
                    &conversation.tenant_id,
                    text,
                    meta,
                    now,
                )
                .await?,
            ),
            None => None,
        };
        tx.commit().await?;
        Ok(Some((conversation, message)))
    }

    /// Stores a system message (for example a routing policy's rejection) in any conversation.
    pub async fn append_system_message(
        &self,
        conversation_id: &str,
        text: &str,
    ) -> StoreResult<MessageRecord> {
        let (_guard, mut tx) = self.write().await?;
        let conversation = self
            .conversation(conversation_id)
            .await?
            .ok_or(StoreError::NotFound("conversation"))?;
        let message = append_system_tx(&mut tx, &conversation, text, now_ms()).await?;
        tx.commit().await?;
        Ok(message)
    }

    // ---- intent models -----------------------------------------------------------------------

    pub async fn put_intent_model(&self, record: &IntentModelRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO intent_models (tenant_id, kind, head, model, tokenizer, labels, report, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant_id) DO UPDATE SET \
             kind = excluded.kind, head = excluded.head, model = excluded.model, tokenizer = excluded.tokenizer, \
             labels = excluded.labels, report = excluded.report, updated_at = excluded.updated_at",
        )
        .bind(&record.tenant_id)
        .bind(&record.kind)
        .bind(record.head.clone())
        .bind(record.model.clone())
        .bind(record.tokenizer.clone())
        .bind(record.labels.clone())
        .bind(record.report.to_string())
        .bind(record.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// When the tenant's intent model last changed (`None`: the built-in intents only).
    pub async fn intent_model_stamp(&self, tenant: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query("SELECT updated_at FROM intent_models WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.try_get("updated_at")).transpose()?)
    }

    pub async fn intent_model(&self, tenant: &str) -> StoreResult<Option<IntentModelRecord>> {
        let row = sqlx::query(
            "SELECT tenant_id, kind, head, model, tokenizer, labels, report, updated_at \
             FROM intent_models WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(IntentModelRecord {
                tenant_id: row.try_get("tenant_id")?,
                kind: row.try_get("kind")?,
                head: row.try_get("head")?,
                model: row.try_get("model")?,
                tokenizer: row.try_get("tokenizer")?,
                labels: row.try_get("labels")?,
                report: parse_json_column(&row, "report")?.unwrap_or_default(),
                updated_at: row.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    pub async fn delete_intent_model(&self, tenant: &str) -> StoreResult<bool> {
        let result = sqlx::query("DELETE FROM intent_models WHERE tenant_id = $1")
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    // ---- policies ----------------------------------------------------------------------------

    /// Stores a validated component as the next version of `kind` and makes it active.
    pub async fn add_policy_version(
        &self,
        tenant: &str,
        kind: &str,
        wasm: &[u8],
        sha256: &str,
    ) -> StoreResult<i64> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let row = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) AS latest FROM policy_versions WHERE tenant_id = $1 AND kind = $2",
        )
        .bind(tenant)
        .bind(kind)
        .fetch_one(&mut *tx)
        .await?;
        let version: i64 = row.try_get::<i64, _>("latest")? + 1;
        sqlx::query(
            "INSERT INTO policy_versions (tenant_id, kind, version, wasm, sha256, size, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(kind)
        .bind(version)
        .bind(wasm.to_vec())
        .bind(sha256)
        .bind(wasm.len() as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        set_active(&mut tx, tenant, kind, version, now).await?;
        tx.commit().await?;
        Ok(version)
    }

    pub async fn policy_versions(
        &self,
        tenant: &str,
        kind: &str,
    ) -> StoreResult<Vec<PolicyVersion>> {
        let active = self
            .active_policy(tenant, kind)
            .await?
            .map(|(version, _)| version);
        let rows = sqlx::query(
            "SELECT version, sha256, size, created_at FROM policy_versions \
             WHERE tenant_id = $1 AND kind = $2 ORDER BY version",
        )
        .bind(tenant)
        .bind(kind)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let version: i64 = row.try_get("version")?;
                Ok(PolicyVersion {
                    version,
                    sha256: row.try_get("sha256")?,
                    size: row.try_get("size")?,
                    created_at: row.try_get("created_at")?,
                    active: active == Some(version),
                })
            })
            .collect()
    }

    pub async fn policy_wasm(
        &self,
        tenant: &str,
        kind: &str,
        version: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        let row = sqlx::query(
            "SELECT wasm FROM policy_versions WHERE tenant_id = $1 AND kind = $2 AND version = $3",
        )
        .bind(tenant)
        .bind(kind)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| row.try_get("wasm")).transpose()?)
    }

    /// Makes a stored version active (a rollback is activating an older one).
    pub async fn activate_policy(&self, tenant: &str, kind: &str, version: i64) -> StoreResult<()> {
        let (_guard, mut tx) = self.write().await?;
        let exists = sqlx::query(
            "SELECT version FROM policy_versions WHERE tenant_id = $1 AND kind = $2 AND version = $3",
        )
        .bind(tenant)
        .bind(kind)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("policy version"));
        }
        set_active(&mut tx, tenant, kind, version, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The active version of a tenant's policy and when it was activated.
    pub async fn active_policy(&self, tenant: &str, kind: &str) -> StoreResult<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT version, updated_at FROM policy_active WHERE tenant_id = $1 AND kind = $2",
        )
        .bind(tenant)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((row.try_get("version")?, row.try_get("updated_at")?)))
            .transpose()
    }

    // ---- sensitive words -----------------------------------------------------------------------

    pub async fn put_sensitive_list(
        &self,
        tenant: &str,
        name: &str,
        action: &str,
        words: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sensitive_lists (tenant_id, name, action, words, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tenant_id, name) DO UPDATE SET action = excluded.action, words = excluded.words, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(name)
        .bind(action)
        .bind(words)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_sensitive_list(&self, tenant: &str, name: &str) -> StoreResult<()> {
        let result = sqlx::query("DELETE FROM sensitive_lists WHERE tenant_id = $1 AND name = $2")
            .bind(tenant)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound("word list"));
        }
        Ok(())
    }

    pub async fn sensitive_lists(&self, tenant: &str) -> StoreResult<Vec<SensitiveListRecord>> {
        let rows = sqlx::query(
            "SELECT name, action, words, updated_at FROM sensitive_lists WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SensitiveListRecord {
                    name: row.try_get("name")?,
                    action: row.try_get("action")?,
                    words: row.try_get("words")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Changes whenever a tenant's lists change: (number of lists, latest update).
    pub async fn sensitive_stamp(&self, tenant: &str) -> StoreResult<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS lists, COALESCE(MAX(updated_at), 0) AS latest FROM sensitive_lists WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("lists")?, row.try_get("latest")?))
    }

    // ---- quality -----------------------------------------------------------------------------

    pub async fn put_quality(&self, tenant: &str, record: &QualityRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO quality_scores (conversation_id, closed_at, tenant_id, score, findings, decided_by, \
             policy_version, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (conversation_id, closed_at) DO NOTHING",
        )
        .bind(&record.conversation_id)
        .bind(record.closed_at)
        .bind(tenant)
        .bind(record.score)
        .bind(record.findings.to_string())
        .bind(&record.decided_by)
        .bind(record.policy_version)
        .bind(record.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every assessment of a conversation, oldest close first.
    pub async fn quality_scores(&self, conversation_id: &str) -> StoreResult<Vec<QualityRecord>> {
        let rows = sqlx::query(
            "SELECT conversation_id, closed_at, score, findings, decided_by, policy_version, created_at \
             FROM quality_scores WHERE conversation_id = $1 ORDER BY closed_at",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(quality_from_row).collect()
    }
}

async fn set_active(
    tx: &mut super::Tx<'_>,
    tenant: &str,
    kind: &str,
    version: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO policy_active (tenant_id, kind, version, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, kind) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
    )
    .bind(tenant)
    .bind(kind)
    .bind(version)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Stores a bot message with the conversation's next seq, inside the caller's transaction.
async fn append_bot_tx(
    tx: &mut super::Tx<'_>,
    conversation_id: &str,
    tenant: &str,
    text: &str,
    meta: serde_json::Value,
    now: i64,
) -> StoreResult<MessageRecord> {
    let row = sqlx::query(
        "UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
    )
    .bind(conversation_id)
    .fetch_one(&mut **tx)
    .await?;
    let message = MessageRecord {
        conversation_id: conversation_id.to_owned(),
        seq: row.try_get("last_seq")?,
        sender: SenderKind::Bot,
        sender_id: None,
        text: text.to_owned(),
        client_msg_id: None,
        created_at: now,
        meta: Some(meta),
    };
    insert_message(tx, tenant, &message).await?;
    Ok(message)
}

fn quality_from_row(row: &AnyRow) -> StoreResult<QualityRecord> {
    Ok(QualityRecord {
        conversation_id: row.try_get("conversation_id")?,
        closed_at: row.try_get("closed_at")?,
        score: row.try_get("score")?,
        findings: parse_json_column(row, "findings")?.unwrap_or_default(),
        decided_by: row.try_get("decided_by")?,
        policy_version: row.try_get("policy_version")?,
        created_at: row.try_get("created_at")?,
    })
}
