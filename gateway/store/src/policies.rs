//! Tenants' WASM policies (versions, the active one), sensitive-word lists and the quality
//! scores of closed conversations.

use sqlx::any::AnyRow;
use sqlx::FromRow;
use sqlx::Row;

use super::{parse_json_column, Store, StoreError, StoreResult};
use crate::model::{PolicyVersion, QualityRecord, SensitiveListRecord};
use crate::util::now_ms;

/// Versions of one kind of policy a tenant keeps: the newest, so uploads (up to 8 MiB each,
/// cheap when the compiled component is cached) cannot grow the database without bound, and a
/// rollback still has the last twenty to go back to.
pub const POLICY_VERSIONS_KEPT: i64 = 20;

impl Store {
    /// Stores a validated component as the next version of `kind` and makes it active; versions
    /// older than the newest [`POLICY_VERSIONS_KEPT`] are deleted.
    pub async fn add_policy_version(
        &self,
        tenant: &str,
        kind: &str,
        wasm: &[u8],
        sha256: &str,
        uploaded_by: &str,
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
            "INSERT INTO policy_versions (tenant_id, kind, version, wasm, sha256, size, created_at, uploaded_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(tenant)
        .bind(kind)
        .bind(version)
        .bind(wasm.to_vec())
        .bind(sha256)
        .bind(wasm.len() as i64)
        .bind(now)
        .bind(uploaded_by)
        .execute(&mut *tx)
        .await?;
        set_active(&mut tx, tenant, kind, version, now).await?;
        sqlx::query(
            "DELETE FROM policy_versions WHERE tenant_id = $1 AND kind = $2 AND version <= $3",
        )
        .bind(tenant)
        .bind(kind)
        .bind(version - POLICY_VERSIONS_KEPT)
        .execute(&mut *tx)
        .await?;
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
            "SELECT version, sha256, size, created_at, uploaded_by FROM policy_versions \
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
                    uploaded_by: row.try_get("uploaded_by")?,
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
        Ok(rows
            .iter()
            .map(SensitiveListRecord::from_row)
            .collect::<Result<_, _>>()?)
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
