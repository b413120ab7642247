//! Channel apps: their configuration (secrets encrypted at rest), identity
//! links (one shared conversation per CRM id), reply routes, and the outbox of outbound
//! deliveries. The same SQL serves SQLite and PostgreSQL.
//!
//! Outbox rows are keyed by message and kind (`dl_<kind>_<conversation>_<seq>`), so enqueueing a
//! delivery twice (two nodes, a replayed bus event, the start-up scan) writes one row. A worker
//! claims a due row by moving its `next_attempt_at` forward by a lease (a conditional update), so
//! two workers never send one row at the same time, and a worker that dies mid-send leaves a row
//! that becomes due again when the lease ends.

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use super::{Customer, Store, StoreError, StoreResult};
use crate::util::now_ms;

/// One app of a tenant on a channel, as the API shows it: the public fields only.
#[derive(Debug, Clone, Serialize)]
pub struct ChannelApp {
    pub kind: String,
    pub app: String,
    /// Non-secret settings (WeChat `appid`, Douyin `client_key`).
    #[serde(flatten)]
    pub public: serde_json::Map<String, serde_json::Value>,
    /// The names of the secrets that are set (never their values).
    pub secrets_set: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An app with its decrypted secrets: for the gateway's own use, never serialized.
#[derive(Clone)]
pub struct ChannelAppSecrets {
    pub app: ChannelApp,
    pub secrets: serde_json::Map<String, serde_json::Value>,
}

impl std::fmt::Debug for ChannelAppSecrets {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ChannelAppSecrets")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl ChannelAppSecrets {
    /// A secret as text ("" when unset).
    pub fn secret(&self, name: &str) -> String {
        self.secrets
            .get(name)
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// A public field as text ("" when unset).
    pub fn field(&self, name: &str) -> String {
        self.app
            .public
            .get(name)
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_owned()
    }
}

/// A customer's link to a CRM id and the customer whose conversation the link shares.
#[derive(Debug, Clone, Serialize)]
pub struct CustomerLink {
    pub customer_id: String,
    pub crm_id: String,
    pub primary_customer_id: String,
}

/// Where replies in a conversation go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRoute {
    pub conversation_id: String,
    pub tenant_id: String,
    /// The channel identity (customer) that wrote last.
    pub customer_id: String,
    pub channel: String,
    pub app: String,
    /// The provider's id of the customer (openid, Douyin open id, app user id).
    pub external_user_id: String,
    /// The provider's reply context as JSON text, the latest one seen.
    pub reply_context: Option<String>,
}

/// A delivery to enqueue for one stored message.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub tenant_id: String,
    pub conversation_id: String,
    pub seq: i64,
    /// `send` (a provider's send API) or `push` (the tenant's push hook).
    pub kind: String,
    pub channel: String,
    pub app: String,
    pub recipient: String,
    pub reply_context: Option<String>,
    pub text: String,
    pub sender_kind: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: String,
    #[serde(skip)]
    pub tenant_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub kind: String,
    pub channel: String,
    pub app: String,
    #[serde(skip)]
    pub recipient: String,
    #[serde(skip)]
    pub reply_context: Option<String>,
    #[serde(skip)]
    pub text: String,
    #[sqlx(rename = "sender_kind")]
    pub sender: String,
    /// `pending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// The stable code of the last failure (`reply_window_expired`, `provider_unavailable`...).
    #[sqlx(rename = "last_code")]
    pub code: Option<String>,
    #[sqlx(rename = "last_error")]
    pub error: Option<String>,
    pub provider_message_id: Option<String>,
    /// Provider messages of this delivery already sent (a reply with attachments is several:
    /// each image, then the caption); a retry resumes after them.
    #[serde(skip)]
    pub parts_sent: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    Sent {
        provider_message_id: Option<String>,
    },
    Retry {
        code: String,
        error: String,
        next_attempt_at: i64,
    },
    Failed {
        code: String,
        error: String,
    },
}

const DELIVERY_COLUMNS: &str = "id, tenant_id, conversation_id, seq, kind, channel, app, recipient, reply_context, text, \
    sender_kind, state, attempts, next_attempt_at, last_code, last_error, provider_message_id, parts_sent, created_at, updated_at";

pub fn delivery_id(kind: &str, conversation_id: &str, seq: i64) -> String {
    format!("dl_{kind}_{conversation_id}_{seq}")
}

impl Store {
    /// True once the store was closed (the server stopped): background workers end then.
    pub fn is_closed(&self) -> bool {
        self.pool.is_closed()
    }

    // ---- channel apps -----------------------------------------------------------------------

    /// Creates or replaces an app's configuration; `secrets` is encrypted before it is stored.
    pub async fn put_channel_app(
        &self,
        tenant: &str,
        kind: &str,
        app: &str,
        public: &serde_json::Map<String, serde_json::Value>,
        secrets: &serde_json::Map<String, serde_json::Value>,
    ) -> StoreResult<ChannelApp> {
        let now = now_ms();
        let public_text = serde_json::Value::Object(public.clone()).to_string();
        let sealed = self
            .cipher
            .encrypt(&serde_json::Value::Object(secrets.clone()).to_string());
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO channel_apps (tenant_id, kind, app, public, secrets_enc, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (tenant_id, kind, app) \
             DO UPDATE SET public = excluded.public, secrets_enc = excluded.secrets_enc, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(kind)
        .bind(app)
        .bind(public_text)
        .bind(sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.channel_app(tenant, kind, app)
            .await?
            .map(|found| found.app)
            .ok_or(StoreError::NotFound("channel app"))
    }

    /// One app with its decrypted secrets.
    pub async fn channel_app(
        &self,
        tenant: &str,
        kind: &str,
        app: &str,
    ) -> StoreResult<Option<ChannelAppSecrets>> {
        let row = sqlx::query(
            "SELECT kind, app, public, secrets_enc, created_at, updated_at FROM channel_apps \
             WHERE tenant_id = $1 AND kind = $2 AND app = $3",
        )
        .bind(tenant)
        .bind(kind)
        .bind(app)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| self.channel_app_from_row(&row)).transpose()
    }

    /// A tenant's apps, optionally of one kind (public fields only).
    pub async fn channel_apps(
        &self,
        tenant: &str,
        kind: Option<&str>,
    ) -> StoreResult<Vec<ChannelApp>> {
        let rows = sqlx::query(
            "SELECT kind, app, public, secrets_enc, created_at, updated_at FROM channel_apps \
             WHERE tenant_id = $1 AND ($2 = '' OR kind = $2) ORDER BY kind, app",
        )
        .bind(tenant)
        .bind(kind.unwrap_or_default())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| self.channel_app_from_row(row).map(|found| found.app))
            .collect()
    }

    pub async fn delete_channel_app(&self, tenant: &str, kind: &str, app: &str) -> StoreResult<()> {
        let (_guard, mut tx) = self.write().await?;
        let result =
            sqlx::query("DELETE FROM channel_apps WHERE tenant_id = $1 AND kind = $2 AND app = $3")
                .bind(tenant)
                .bind(kind)
                .bind(app)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound("channel app"));
        }
        Ok(())
    }

    fn channel_app_from_row(&self, row: &AnyRow) -> StoreResult<ChannelAppSecrets> {
        let public: String = row.try_get("public")?;
        let sealed: String = row.try_get("secrets_enc")?;
        let public = match serde_json::from_str(&public) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(StoreError::Corrupt("channel app public fields".into())),
        };
        let opened = self
            .cipher
            .decrypt(&sealed)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        let secrets = match serde_json::from_str(&opened) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(StoreError::Corrupt("channel app secrets".into())),
        };
        let mut secrets_set: Vec<String> = secrets
            .iter()
            .filter(|(_, value)| value.as_str().is_some_and(|text| !text.is_empty()))
            .map(|(name, _)| name.clone())
            .collect();
        secrets_set.sort();
        Ok(ChannelAppSecrets {
            app: ChannelApp {
                kind: row.try_get("kind")?,
                app: row.try_get("app")?,
                public,
                secrets_set,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            },
            secrets,
        })
    }

    // ---- identity links ---------------------------------------------------------------------

    /// Links a customer to a CRM id. The first customer linked to a CRM id is its primary: every
    /// identity linked later writes into and reads from the primary's conversation. Linking again
    /// to the same CRM id changes nothing; to another one is a conflict.
    pub async fn link_customer(
        &self,
        tenant: &str,
        customer_id: &str,
        crm_id: &str,
    ) -> StoreResult<CustomerLink> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let exists = sqlx::query("SELECT id FROM customers WHERE tenant_id = $1 AND id = $2")
            .bind(tenant)
            .bind(customer_id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound("customer"));
        }
        let current = sqlx::query("SELECT crm_id FROM customer_links WHERE customer_id = $1")
            .bind(customer_id)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(row) = current {
            let linked: String = row.try_get("crm_id")?;
            if linked != crm_id {
                return Err(StoreError::Conflict(
                    "customer is already linked to another crm id".into(),
                ));
            }
        }
        sqlx::query(
            "INSERT INTO crm_links (tenant_id, crm_id, primary_customer_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, crm_id) DO NOTHING",
        )
        .bind(tenant)
        .bind(crm_id)
        .bind(customer_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO customer_links (customer_id, tenant_id, crm_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (customer_id) DO NOTHING",
        )
        .bind(customer_id)
        .bind(tenant)
        .bind(crm_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT primary_customer_id FROM crm_links WHERE tenant_id = $1 AND crm_id = $2",
        )
        .bind(tenant)
        .bind(crm_id)
        .fetch_one(&mut *tx)
        .await?;
        let primary_customer_id: String = row.try_get("primary_customer_id")?;
        tx.commit().await?;
        Ok(CustomerLink {
            customer_id: customer_id.to_owned(),
            crm_id: crm_id.to_owned(),
            primary_customer_id,
        })
    }

    /// The customer whose conversation this identity uses: the primary of its CRM id, or itself.
    pub async fn primary_customer(&self, customer: &Customer) -> StoreResult<Customer> {
        let row = sqlx::query(
            "SELECT c.primary_customer_id FROM customer_links l \
             JOIN crm_links c ON c.tenant_id = l.tenant_id AND c.crm_id = l.crm_id \
             WHERE l.customer_id = $1 AND l.tenant_id = $2",
        )
        .bind(&customer.id)
        .bind(&customer.tenant_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(customer.clone());
        };
        let primary: String = row.try_get("primary_customer_id")?;
        if primary == customer.id {
            return Ok(customer.clone());
        }
        Ok(self
            .customer(&customer.tenant_id, &primary)
            .await?
            .unwrap_or_else(|| customer.clone()))
    }

    // ---- reply routes -----------------------------------------------------------------------

    /// Records where replies in a conversation go; a `None` reply context keeps the stored one.
    pub async fn set_route(&self, route: &ConversationRoute) -> StoreResult<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO conversation_routes (conversation_id, tenant_id, customer_id, channel, app, external_user_id, \
             reply_context, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (conversation_id) DO UPDATE SET \
             customer_id = excluded.customer_id, channel = excluded.channel, app = excluded.app, \
             external_user_id = excluded.external_user_id, \
             reply_context = CASE WHEN excluded.channel = conversation_routes.channel AND excluded.app = conversation_routes.app \
                 AND excluded.external_user_id = conversation_routes.external_user_id \
                 THEN COALESCE(excluded.reply_context, conversation_routes.reply_context) ELSE excluded.reply_context END, \
             updated_at = excluded.updated_at",
        )
        .bind(&route.conversation_id)
        .bind(&route.tenant_id)
        .bind(&route.customer_id)
        .bind(&route.channel)
        .bind(&route.app)
        .bind(&route.external_user_id)
        .bind(route.reply_context.clone())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn route(&self, conversation_id: &str) -> StoreResult<Option<ConversationRoute>> {
        let row = sqlx::query(
            "SELECT conversation_id, tenant_id, customer_id, channel, app, external_user_id, reply_context \
             FROM conversation_routes WHERE conversation_id = $1",
        )
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(ConversationRoute {
                conversation_id: row.try_get("conversation_id")?,
                tenant_id: row.try_get("tenant_id")?,
                customer_id: row.try_get("customer_id")?,
                channel: row.try_get("channel")?,
                app: row.try_get("app")?,
                external_user_id: row.try_get("external_user_id")?,
                reply_context: row.try_get("reply_context")?,
            })
        })
        .transpose()
    }

    // ---- the outbox -------------------------------------------------------------------------

    /// Writes a pending delivery; `None` when this message already has one of this kind.
    pub async fn enqueue_delivery(&self, new: &NewDelivery) -> StoreResult<Option<Delivery>> {
        let now = now_ms();
        let id = delivery_id(&new.kind, &new.conversation_id, new.seq);
        let (_guard, mut tx) = self.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO outbox (id, tenant_id, conversation_id, seq, kind, channel, app, recipient, reply_context, text, \
             sender_kind, state, attempts, next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', 0, $12, $12, $12) ON CONFLICT DO NOTHING",
        )
        .bind(&id)
        .bind(&new.tenant_id)
        .bind(&new.conversation_id)
        .bind(new.seq)
        .bind(&new.kind)
        .bind(&new.channel)
        .bind(&new.app)
        .bind(&new.recipient)
        .bind(new.reply_context.clone())
        .bind(&new.text)
        .bind(&new.sender_kind)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        if !inserted {
            return Ok(None);
        }
        self.delivery(&id).await
    }

    /// Enqueues a provider send for every agent or bot message since `since` in a conversation
    /// routed to a webhook channel that has none yet (after a restart or a lagged bus).
    ///
    /// Only replies that came after the customer wrote through the route's channel in that
    /// conversation are the route's: a reply from before (the conversation's web or mobile-app
    /// part, already delivered there, or pushed with a `push` row) is never sent to a route that
    /// did not exist for it, however recent. A customer message counts as the channel's when its
    /// sender is a customer of that channel, or (a merged customer writing through it) when its
    /// `client_msg_id` carries the channel's prefix (`wechat:` or `douyin:`, set by the webhooks).
    /// One row per message (`dl_send_<conversation>_<seq>`) keeps the rest at most once.
    ///
    /// The scan starts from the routes (webhook conversations only) and reads each one's messages
    /// by its key; `CROSS JOIN` keeps SQLite from choosing to scan every message instead (on
    /// PostgreSQL it is an inner join, planned as usual).
    pub async fn enqueue_missing_sends(&self, since: i64) -> StoreResult<u64> {
        let now = now_ms();
        let (_guard, mut tx) = self.write().await?;
        let result = sqlx::query(
            "INSERT INTO outbox (id, tenant_id, conversation_id, seq, kind, channel, app, recipient, reply_context, text, \
             sender_kind, state, attempts, next_attempt_at, created_at, updated_at) \
             SELECT 'dl_send_' || m.conversation_id || '_' || CAST(m.seq AS TEXT), r.tenant_id, m.conversation_id, m.seq, \
             'send', r.channel, r.app, r.external_user_id, r.reply_context, m.text, m.sender_kind, 'pending', 0, $1, $1, $1 \
             FROM conversation_routes r CROSS JOIN messages m \
             WHERE m.conversation_id = r.conversation_id AND r.channel IN ('wechat', 'douyin') \
             AND m.sender_kind IN ('agent', 'bot') AND m.created_at >= $2 \
             AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.conversation_id = m.conversation_id AND o.seq = m.seq AND o.kind = 'send') \
             AND EXISTS (SELECT 1 FROM messages c LEFT JOIN customers k ON k.id = c.sender_id \
                 WHERE c.conversation_id = m.conversation_id AND c.seq < m.seq AND c.sender_kind = 'customer' \
                 AND (k.channel = r.channel OR c.client_msg_id LIKE r.channel || ':%')) \
             ON CONFLICT DO NOTHING",
        )
        .bind(now)
        .bind(since)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(result.rows_affected())
    }

    pub async fn delivery(&self, id: &str) -> StoreResult<Option<Delivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM outbox WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| Delivery::from_row(&row)).transpose()?)
    }

    /// Pending deliveries whose time has come, oldest first.
    pub async fn due_deliveries(&self, now: i64, limit: i64) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE state = 'pending' AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at, id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(Delivery::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Claims a due delivery until `lease_until`; false when another worker got it first.
    pub async fn claim_delivery(&self, id: &str, now: i64, lease_until: i64) -> StoreResult<bool> {
        let (_guard, mut tx) = self.write().await?;
        let claimed = sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id = $3 AND state = 'pending' AND next_attempt_at <= $2",
        )
        .bind(lease_until)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records that the first `parts` provider messages of a claimed delivery were sent, and
    /// extends the claim's lease to `lease_until` (a reply of many parts can outlast one lease;
    /// no other worker may claim it while it is still sending).
    pub async fn record_delivery_parts(
        &self,
        id: &str,
        parts: i64,
        lease_until: i64,
    ) -> StoreResult<()> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "UPDATE outbox SET parts_sent = $1, next_attempt_at = $2, updated_at = $3 \
             WHERE id = $4 AND state = 'pending'",
        )
        .bind(parts)
        .bind(lease_until)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the customer's conversation already holds their message `client_msg_id` (a
    /// provider's redelivered push, checked before its media is fetched again).
    pub async fn has_customer_message(
        &self,
        customer_id: &str,
        client_msg_id: &str,
    ) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT m.seq FROM messages m JOIN conversations c ON c.id = m.conversation_id \
             WHERE c.customer_id = $1 AND m.sender_kind = 'customer' AND m.client_msg_id = $2 LIMIT 1",
        )
        .bind(customer_id)
        .bind(client_msg_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Records how an attempt ended and answers the delivery as it now is.
    pub async fn finish_attempt(
        &self,
        id: &str,
        outcome: &AttemptOutcome,
    ) -> StoreResult<Option<Delivery>> {
        let now = now_ms();
        let (state, code, error, next, provider_id) = match outcome {
            AttemptOutcome::Sent {
                provider_message_id,
            } => ("sent", None, None, now, provider_message_id.clone()),
            AttemptOutcome::Retry {
                code,
                error,
                next_attempt_at,
            } => (
                "pending",
                Some(code.clone()),
                Some(error.clone()),
                *next_attempt_at,
                None,
            ),
            AttemptOutcome::Failed { code, error } => {
                ("failed", Some(code.clone()), Some(error.clone()), now, None)
            }
        };
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "UPDATE outbox SET state = $1, last_code = COALESCE($2, last_code), last_error = COALESCE($3, last_error), \
             next_attempt_at = $4, provider_message_id = COALESCE($5, provider_message_id), updated_at = $6 \
             WHERE id = $7 AND state = 'pending'",
        )
        .bind(state)
        .bind(code)
        .bind(error)
        .bind(next)
        .bind(provider_id)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.delivery(id).await
    }

    /// Every delivery of a conversation, in message order.
    /// A channel app's newest deliveries, and how many of the last day's ended in each state.
    pub async fn app_deliveries(
        &self,
        tenant: &str,
        channel: &str,
        app: &str,
        limit: i64,
    ) -> StoreResult<(Vec<Delivery>, Vec<(String, i64)>)> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE tenant_id = $1 AND channel = $2 AND app = $3 \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(channel)
            .bind(app)
            .bind(limit.clamp(1, 200))
            .fetch_all(&self.pool)
            .await?;
        let deliveries = rows
            .iter()
            .map(Delivery::from_row)
            .collect::<Result<_, _>>()?;
        let counts = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM outbox WHERE tenant_id = $1 AND channel = $2 AND app = $3 \
             AND created_at >= $4 GROUP BY state ORDER BY state",
        )
        .bind(tenant)
        .bind(channel)
        .bind(app)
        .bind(now_ms() - 24 * 3600 * 1000)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("state")?, row.try_get("n")?)))
        .collect::<StoreResult<_>>()?;
        Ok((deliveries, counts))
    }

    pub async fn deliveries(&self, conversation_id: &str) -> StoreResult<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE conversation_id = $1 ORDER BY seq, kind"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(conversation_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(Delivery::from_row)
            .collect::<Result<_, _>>()?)
    }
}
