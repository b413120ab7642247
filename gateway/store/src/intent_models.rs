//! Tenants' own intent classifiers.

use sqlx::Row;

use super::{parse_json_column, Store, StoreResult};
use crate::model::IntentModelRecord;

impl Store {
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
}
