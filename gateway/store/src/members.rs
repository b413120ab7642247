//! The operator console's people (members with a role and a password hash), their signed-in
//! sessions, and the audit log of every change made through the admin API or the console.

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Dialect, Store, StoreError, StoreResult};
use crate::model::{AuditEntry, AuditFilter, Member, MemberRole, MemberUpdate, NewAuditEntry};
use crate::util::{new_id, now_ms};

const MEMBER_COLUMNS: &str =
    "id, tenant_id, email, name, role, agent_id, disabled, created_at, updated_at";

/// The most entries one audit page holds.
pub const AUDIT_PAGE_MAX: i64 = 200;

fn member_from_row(row: &AnyRow) -> StoreResult<Member> {
    let role: String = row.try_get("role")?;
    let agent_id: String = row.try_get("agent_id")?;
    Ok(Member {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        role: MemberRole::parse(&role)
            .ok_or_else(|| StoreError::Corrupt(format!("member role {role}")))?,
        agent_id: (!agent_id.is_empty()).then_some(agent_id),
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Emails are compared trimmed and in lower case.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// How often a console session's last use is written (at most), in milliseconds.
pub const SESSION_SEEN_EVERY_MS: i64 = 60_000;

impl Store {
    /// Adds a member; an email already used in the tenant is a conflict.
    pub async fn create_member(
        &self,
        tenant: &str,
        email: &str,
        name: &str,
        role: MemberRole,
        password_hash: &str,
    ) -> StoreResult<Member> {
        let now = now_ms();
        let id = new_id("m_");
        let result = sqlx::query(
            "INSERT INTO members (id, tenant_id, email, name, role, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (tenant_id, email) DO NOTHING",
        )
        .bind(&id)
        .bind(tenant)
        .bind(normalize_email(email))
        .bind(name)
        .bind(role.as_str())
        .bind(password_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "a member with email {} exists",
                normalize_email(email)
            )));
        }
        self.member(tenant, &id)
            .await?
            .ok_or(StoreError::NotFound("member"))
    }

    pub async fn members(&self, tenant: &str) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 ORDER BY created_at, id"
        )))
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    pub async fn member(&self, tenant: &str, id: &str) -> StoreResult<Option<Member>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(member_from_row).transpose()
    }

    /// A member and their password hash, by email (for signing in).
    pub async fn member_credentials(
        &self,
        tenant: &str,
        email: &str,
    ) -> StoreResult<Option<(Member, String)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS}, password_hash FROM members WHERE tenant_id = $1 AND email = $2"
        )))
        .bind(tenant)
        .bind(normalize_email(email))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((member_from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    /// Changes a member. Disabling a member or changing their password or role ends their
    /// sessions and revokes the token of the agent they answer chats as. The last enabled admin can be neither disabled nor given another role.
    pub async fn update_member(
        &self,
        tenant: &str,
        id: &str,
        update: &MemberUpdate,
    ) -> StoreResult<Member> {
        let (_guard, mut tx) = self.write().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MEMBER_COLUMNS} FROM members WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("member"))?;
        let current = member_from_row(&row)?;
        let role = update.role.unwrap_or(current.role);
        let disabled = update.disabled.unwrap_or(current.disabled);
        let stops_being_admin = current.role == MemberRole::Admin
            && !current.disabled
            && (role != MemberRole::Admin || disabled);
        if stops_being_admin {
            let row = sqlx::query(
                "SELECT COUNT(*) AS admins FROM members \
                 WHERE tenant_id = $1 AND role = 'admin' AND disabled = 0 AND id <> $2",
            )
            .bind(tenant)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            if row.try_get::<i64, _>("admins")? == 0 {
                return Err(StoreError::Conflict(
                    "the last enabled admin cannot be disabled or given another role".into(),
                ));
            }
        }
        let now = now_ms();
        sqlx::query(
            "UPDATE members SET name = $1, role = $2, disabled = $3, agent_id = $4, \
             password_hash = COALESCE($5, password_hash), updated_at = $6 \
             WHERE tenant_id = $7 AND id = $8",
        )
        .bind(update.name.as_deref().unwrap_or(&current.name))
        .bind(role.as_str())
        .bind(i64::from(disabled))
        .bind(
            update
                .agent_id
                .as_deref()
                .or(current.agent_id.as_deref())
                .unwrap_or(""),
        )
        .bind(update.password_hash.as_deref())
        .bind(now)
        .bind(tenant)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if disabled || update.password_hash.is_some() || role != current.role {
            sqlx::query("DELETE FROM member_sessions WHERE member_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // The agent the member answers chats as (a take-over) holds a token of its own:
            // it stops working too.
            if let Some(agent) = current.agent_id.as_deref().filter(|a| !a.is_empty()) {
                sqlx::query(
                    "UPDATE agents SET token_version = token_version + 1 \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(tenant)
                .bind(agent)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.member(tenant, id)
            .await?
            .ok_or(StoreError::NotFound("member"))
    }

    /// Records a session whose cookie value hashes to `id_hash`; forgets the member's expired ones.
    pub async fn create_member_session(
        &self,
        member: &Member,
        id_hash: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query("DELETE FROM member_sessions WHERE member_id = $1 AND expires_at <= $2")
            .bind(&member.id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO member_sessions (id_hash, tenant_id, member_id, created_at, expires_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5, $4)",
        )
        .bind(id_hash)
        .bind(&member.tenant_id)
        .bind(&member.id)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The enabled member a live session belongs to, and when the session expires: a session
    /// past its lifetime, or last used `idle_ms` or longer ago (when `idle_ms` is not 0), is
    /// not live. A use is recorded at most once a minute ([`SESSION_SEEN_EVERY_MS`]), so a
    /// session in use costs a write a minute, not one per request.
    pub async fn session_member(
        &self,
        id_hash: &str,
        idle_ms: i64,
    ) -> StoreResult<Option<(Member, i64)>> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT m.id, m.tenant_id, m.email, m.name, m.role, m.agent_id, m.disabled, \
             m.created_at, m.updated_at, s.expires_at, s.last_seen_at FROM member_sessions s \
             JOIN members m ON m.id = s.member_id \
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND m.disabled = 0",
        )
        .bind(id_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let last_seen_at: i64 = row.try_get("last_seen_at")?;
        if idle_ms > 0 && last_seen_at > 0 && now.saturating_sub(last_seen_at) >= idle_ms {
            return Ok(None);
        }
        // Written at most once a minute, and often enough that a use is never missed by more
        // than half the idle limit.
        let seen_every = match idle_ms {
            0 => SESSION_SEEN_EVERY_MS,
            idle => SESSION_SEEN_EVERY_MS.min(idle / 2),
        };
        if now.saturating_sub(last_seen_at) >= seen_every {
            sqlx::query("UPDATE member_sessions SET last_seen_at = $2 WHERE id_hash = $1")
                .bind(id_hash)
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some((member_from_row(&row)?, row.try_get("expires_at")?)))
    }

    pub async fn delete_member_session(&self, id_hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM member_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn add_audit_entry(&self, entry: &NewAuditEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit_log (tenant_id, at, actor_kind, actor, action, target, status, summary) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&entry.tenant_id)
        .bind(now_ms())
        .bind(&entry.actor_kind)
        .bind(&entry.actor)
        .bind(&entry.action)
        .bind(&entry.target)
        .bind(i64::from(entry.status))
        .bind(entry.summary.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The newest entries first, filtered by actor and action (substrings; the case of ASCII
    /// letters ignored, other characters as written, the same on both backends: SQLite's `LOWER`
    /// knows ASCII only), older than `before` (an entry id) when given.
    pub async fn audit_entries(
        &self,
        tenant: &str,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEntry>> {
        let limit = filter.limit.unwrap_or(50).clamp(1, AUDIT_PAGE_MAX);
        let pattern = |text: &Option<String>| {
            text.as_deref()
                .filter(|text| !text.trim().is_empty())
                .map(|text| format!("%{}%", escape_like(&text.trim().to_ascii_lowercase())))
                .unwrap_or_else(|| "%".into())
        };
        // PostgreSQL's `LOWER` follows the database's locale: the "C" collation keeps it to ASCII.
        let collate = match self.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " COLLATE \"C\"",
        };
        let sql = format!(
            "SELECT id, at, actor_kind, actor, action, target, status, summary FROM audit_log \
             WHERE tenant_id = $1 AND id < $2 \
             AND LOWER(actor{collate}) LIKE $3 ESCAPE '\\' \
             AND LOWER(action{collate}) LIKE $4 ESCAPE '\\' \
             ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant)
            .bind(filter.before.unwrap_or(i64::MAX))
            .bind(pattern(&filter.actor))
            .bind(pattern(&filter.action))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let summary: String = row.try_get("summary")?;
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    at: row.try_get("at")?,
                    actor_kind: row.try_get("actor_kind")?,
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    status: row.try_get("status")?,
                    summary: serde_json::from_str(&summary).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}

/// `%`, `_` and the escape character itself match literally.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}
