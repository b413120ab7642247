//! Background jobs' rows: what a console polls while long work runs (intent training,
//! knowledge-base imports).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::{Store, StoreError, StoreResult};
use crate::model::Job;
use crate::util::{new_id, now_ms};

const JOB_COLUMNS: &str =
    "id, tenant_id, kind, state, progress, result, error_code, error_message, \
    started_by, created_at, updated_at";

/// A job still `running` whose row was not touched for this long died with its node.
pub const JOB_LOST_AFTER_MS: i64 = 120_000;

fn job_from_row(row: &AnyRow) -> StoreResult<Job> {
    let json = |column: &str| -> StoreResult<Option<serde_json::Value>> {
        let text: Option<String> = row.try_get(column)?;
        Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
    };
    let mut job = Job {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        kind: row.try_get("kind")?,
        state: row.try_get("state")?,
        progress: json("progress")?.unwrap_or(serde_json::Value::Null),
        result: json("result")?,
        error_code: row.try_get("error_code")?,
        error_message: row.try_get("error_message")?,
        started_by: row.try_get("started_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    };
    if job.state == "running" && now_ms() - job.updated_at > JOB_LOST_AFTER_MS {
        job.state = "failed".into();
        job.error_code = Some("job_lost".into());
        job.error_message = Some("the node running this job stopped; start it again".into());
    }
    Ok(job)
}

impl Store {
    pub async fn create_job(&self, tenant: &str, kind: &str, started_by: &str) -> StoreResult<Job> {
        let id = new_id("job_");
        let now = now_ms();
        sqlx::query(
            "INSERT INTO jobs (id, tenant_id, kind, state, progress, started_by, created_at, updated_at) \
             VALUES ($1, $2, $3, 'running', '{}', $4, $5, $5)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(kind)
        .bind(started_by)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.job(tenant, &id)
            .await?
            .ok_or(StoreError::NotFound("job"))
    }

    pub async fn job(&self, tenant: &str, id: &str) -> StoreResult<Option<Job>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// A tenant's newest jobs of a kind.
    pub async fn jobs(&self, tenant: &str, kind: &str, limit: i64) -> StoreResult<Vec<Job>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE tenant_id = $1 AND kind = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3"
        )))
        .bind(tenant)
        .bind(kind)
        .bind(limit.clamp(1, 100))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Records progress of a running job (also what keeps it from being taken for lost).
    pub async fn job_progress(&self, id: &str, progress: &serde_json::Value) -> StoreResult<()> {
        sqlx::query(
            "UPDATE jobs SET progress = $1, updated_at = $2 WHERE id = $3 AND state = 'running'",
        )
        .bind(progress.to_string())
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends a job: its result, or its error.
    pub async fn finish_job(
        &self,
        id: &str,
        outcome: Result<&serde_json::Value, (&str, &str)>,
    ) -> StoreResult<()> {
        let (state, result, code, message) = match outcome {
            Ok(result) => ("done", Some(result.to_string()), None, None),
            Err((code, message)) => ("failed", None, Some(code), Some(message)),
        };
        sqlx::query(
            "UPDATE jobs SET state = $1, result = $2, error_code = $3, error_message = $4, \
             updated_at = $5 WHERE id = $6",
        )
        .bind(state)
        .bind(result)
        .bind(code)
        .bind(message)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
