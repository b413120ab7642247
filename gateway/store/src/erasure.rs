//! Erasing a customer (a data subject's request, or a tenant cleaning up): the person, that is
//! the customer and every channel identity linked to them by a CRM id ([`Store::person_of`]),
//! with their links and conversations, every message, event, delivery, rating, score, episode
//! and unanswered-question record. The attachments are listed first
//! ([`Store::customer_attachments`]) so the caller deletes their blobs before the rows that name
//! them go.

use sqlx::{AssertSqlSafe, Row};

use crate::attachments::AttachmentRecord;
use crate::{Store, StoreError, StoreResult};

/// Tables keyed by the conversation, emptied of it before the conversation row goes.
const CONVERSATION_TABLES: [&str; 8] = [
    "messages",
    "conversation_events",
    "conversation_routes",
    "outbox",
    "quality_scores",
    "ratings",
    "episodes",
    "gap_questions",
];

/// What an erasure removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    /// The customer and the identities linked to them.
    pub customers: u64,
    pub conversations: u64,
    pub messages: u64,
}

impl Store {
    /// The customer and every identity linked to them by their CRM id (the web visitor, the app
    /// user and the WeChat follower the tenant knows as one person), the customer first.
    pub async fn person_of(&self, tenant: &str, customer_id: &str) -> StoreResult<Vec<String>> {
        let linked: Vec<String> = sqlx::query(
            "SELECT other.customer_id FROM customer_links mine              JOIN customer_links other ON other.tenant_id = mine.tenant_id AND other.crm_id = mine.crm_id              WHERE mine.tenant_id = $1 AND mine.customer_id = $2 ORDER BY other.customer_id",
        )
        .bind(tenant)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| row.try_get("customer_id"))
        .collect::<Result<_, _>>()?;
        let mut person = vec![customer_id.to_owned()];
        person.extend(linked.into_iter().filter(|id| id != customer_id));
        Ok(person)
    }

    /// Every attachment of the customer's: those they uploaded (sent or not) and those sent in
    /// their conversation by anyone (an agent's label or manual).
    pub async fn customer_attachments(
        &self,
        tenant: &str,
        customer_id: &str,
    ) -> StoreResult<Vec<AttachmentRecord>> {
        let mut ids: Vec<String> = sqlx::query(
            "SELECT id FROM attachments WHERE tenant_id = $1 AND uploader_kind = 'customer' \
             AND uploader_id = $2",
        )
        .bind(tenant)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()?;
        let metas = sqlx::query(
            "SELECT m.meta FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.tenant_id = $1 AND c.customer_id = $2 AND m.meta IS NOT NULL",
        )
        .bind(tenant)
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        for row in &metas {
            let meta: Option<String> = row.try_get("meta")?;
            let Some(meta) =
                meta.and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            else {
                continue;
            };
            for attachment in meta["attachments"].as_array().into_iter().flatten() {
                if let Some(id) = attachment["id"].as_str() {
                    ids.push(id.to_owned());
                }
            }
        }
        ids.sort();
        ids.dedup();
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = self.attachment(tenant, &id).await? {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Erases the customers of `person` (see [`Store::person_of`]) and their conversations, in
    /// one transaction; `None` when the tenant has no customer `person[0]`. A conversation that
    /// is not closed is a [`StoreError::Conflict`]: someone is still talking to the person.
    pub async fn erase_customers(
        &self,
        tenant: &str,
        person: &[String],
    ) -> StoreResult<Option<Erased>> {
        let Some(first) = person.first() else {
            return Ok(None);
        };
        let (_guard, mut tx) = self.write().await?;
        let exists = sqlx::query("SELECT id FROM customers WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(first)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let mut erased = Erased::default();
        for customer_id in person {
            erase_one(&mut tx, tenant, customer_id, &mut erased).await?;
        }
        tx.commit().await?;
        Ok(Some(erased))
    }
}

/// One customer's rows, inside the erasure's transaction.
async fn erase_one(
    tx: &mut crate::Tx<'_>,
    tenant: &str,
    customer_id: &str,
    erased: &mut Erased,
) -> StoreResult<()> {
    let conversations = sqlx::query(
        "SELECT id, state FROM conversations WHERE tenant_id = $1 AND customer_id = $2",
    )
    .bind(tenant)
    .bind(customer_id)
    .fetch_all(&mut **tx)
    .await?;
    for row in &conversations {
        let id: String = row.try_get("id")?;
        let state: String = row.try_get("state")?;
        if state != "closed" {
            return Err(StoreError::Conflict(format!(
                "the customer's conversation is {state}: close it first"
            )));
        }
        for table in CONVERSATION_TABLES {
            let done = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE conversation_id = $1 AND tenant_id = $2"
            )))
            .bind(&id)
            .bind(tenant)
            .execute(&mut **tx)
            .await?;
            if table == "messages" {
                erased.messages += done.rows_affected();
            }
        }
        erased.conversations += sqlx::query(
            "DELETE FROM conversations WHERE id = $1 AND tenant_id = $2 AND state = 'closed'",
        )
        .bind(&id)
        .bind(tenant)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    for sql in [
        "DELETE FROM customer_links WHERE customer_id = $1 AND tenant_id = $2",
        "DELETE FROM crm_links WHERE primary_customer_id = $1 AND tenant_id = $2",
        "DELETE FROM customers WHERE id = $1 AND tenant_id = $2",
    ] {
        sqlx::query(sql)
            .bind(customer_id)
            .bind(tenant)
            .execute(&mut **tx)
            .await?;
    }
    erased.customers += 1;
    Ok(())
}
