//! The bot's part of a conversation: its messages, the unsure streak, handoffs to a queue and
//! system notes.

use sqlx::{AssertSqlSafe, Row};
use switchboard_channels::web::SenderKind;

use super::{
    append_system_tx, conversation_from_row, insert_event, insert_message, Actor, Conversation,
    MessageRecord, Store, StoreError, StoreResult, CONVERSATION_COLUMNS,
};
use crate::model::{TenantLlm, UnsureStreak};
use crate::util::now_ms;

impl Store {
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
}

/// Stores a bot message with the conversation's next seq, inside the caller's transaction.
pub(crate) async fn append_bot_tx(
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

impl Store {
    /// Sets the tenant's LLM endpoint. `api_key`: `None` keeps the stored key, `Some("")`
    /// removes it, anything else replaces it (encrypted at rest).
    pub async fn set_tenant_llm(
        &self,
        tenant: &str,
        base_url: &str,
        model: &str,
        api_key: Option<&str>,
        timeout_ms: i64,
    ) -> StoreResult<TenantLlm> {
        let key = match api_key {
            Some(key) => key.to_owned(),
            None => self
                .tenant_llm(tenant)
                .await?
                .map(|llm| llm.api_key)
                .unwrap_or_default(),
        };
        let sealed = if key.is_empty() {
            String::new()
        } else {
            self.cipher.encrypt(&key)
        };
        sqlx::query(
            "INSERT INTO tenant_llm (tenant_id, base_url, model, api_key, timeout_ms, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id) DO UPDATE SET \
             base_url = excluded.base_url, model = excluded.model, api_key = excluded.api_key, \
             timeout_ms = excluded.timeout_ms, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(base_url)
        .bind(model)
        .bind(&sealed)
        .bind(timeout_ms)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        self.tenant_llm(tenant)
            .await?
            .ok_or(StoreError::NotFound("llm"))
    }

    pub async fn tenant_llm(&self, tenant: &str) -> StoreResult<Option<TenantLlm>> {
        let row = sqlx::query(
            "SELECT base_url, model, api_key, timeout_ms, updated_at FROM tenant_llm WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let sealed: String = row.try_get("api_key")?;
        let api_key = if sealed.is_empty() {
            String::new()
        } else {
            self.cipher.decrypt(&sealed).map_err(|_| {
                StoreError::Corrupt("the LLM key does not decrypt with this node's key".into())
            })?
        };
        Ok(Some(TenantLlm {
            base_url: row.try_get("base_url")?,
            model: row.try_get("model")?,
            api_key,
            timeout_ms: row.try_get("timeout_ms")?,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    pub async fn delete_tenant_llm(&self, tenant: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM tenant_llm WHERE tenant_id = $1")
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
