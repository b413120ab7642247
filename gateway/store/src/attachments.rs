//! Attachment rows: what was uploaded, by whom, of which kind and size. The bytes are in a
//! [`crate::blobs::BlobStore`] under [`AttachmentRecord::blob_key`] (and the thumbnail's key).

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use crate::util::now_ms;
use crate::{Store, StoreError, StoreResult};

/// An image or another file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    Image,
    File,
}

impl AttachmentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Image => "image",
            AttachmentKind::File => "file",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "image" => Some(AttachmentKind::Image),
            "file" => Some(AttachmentKind::File),
            _ => None,
        }
    }
}

/// One uploaded attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRecord {
    pub id: String,
    #[serde(skip)]
    pub tenant_id: String,
    /// `customer` or `agent`: who uploaded it (and may send it).
    #[serde(skip)]
    pub uploader_kind: String,
    #[serde(skip)]
    pub uploader_id: String,
    pub kind: AttachmentKind,
    /// The file name as given (cleaned), for display and downloads.
    pub name: String,
    /// Decided from the content, never from the name.
    pub media_type: String,
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// A thumbnail was made (images).
    #[serde(default)]
    pub thumbnail: bool,
    #[serde(skip)]
    pub sha256: String,
    #[serde(skip)]
    pub created_at: i64,
}

impl AttachmentRecord {
    /// Where the bytes are.
    pub fn blob_key(&self) -> String {
        blob_key(&self.tenant_id, &self.id, false)
    }

    /// Where the thumbnail's bytes are.
    pub fn thumbnail_key(&self) -> String {
        blob_key(&self.tenant_id, &self.id, true)
    }
}

/// The blob key of an attachment (or of its thumbnail).
pub fn blob_key(tenant: &str, id: &str, thumbnail: bool) -> String {
    if thumbnail {
        format!("{tenant}/{id}.thumb")
    } else {
        format!("{tenant}/{id}")
    }
}

const COLUMNS: &str = "id, tenant_id, uploader_kind, uploader_id, kind, name, media_type, size, \
    width, height, thumbnail, sha256, created_at";

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<AttachmentRecord> {
    let kind: String = row.try_get("kind")?;
    Ok(AttachmentRecord {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        uploader_kind: row.try_get("uploader_kind")?,
        uploader_id: row.try_get("uploader_id")?,
        kind: AttachmentKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("attachment kind `{kind}`")))?,
        name: row.try_get("name")?,
        media_type: row.try_get("media_type")?,
        size: row.try_get("size")?,
        width: row.try_get("width")?,
        height: row.try_get("height")?,
        thumbnail: row.try_get::<i64, _>("thumbnail")? != 0,
        sha256: row.try_get("sha256")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    /// Records an uploaded attachment (its blobs are stored already).
    pub async fn insert_attachment(&self, record: &AttachmentRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO attachments (id, tenant_id, uploader_kind, uploader_id, kind, name, media_type, \
             size, width, height, thumbnail, sha256, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&record.id)
        .bind(&record.tenant_id)
        .bind(&record.uploader_kind)
        .bind(&record.uploader_id)
        .bind(record.kind.as_str())
        .bind(&record.name)
        .bind(&record.media_type)
        .bind(record.size)
        .bind(record.width)
        .bind(record.height)
        .bind(i64::from(record.thumbnail))
        .bind(&record.sha256)
        .bind(if record.created_at > 0 {
            record.created_at
        } else {
            now_ms()
        })
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One of the tenant's attachments.
    pub async fn attachment(
        &self,
        tenant: &str,
        id: &str,
    ) -> StoreResult<Option<AttachmentRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM attachments WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// An attachment by its id alone (ids are random and unique across tenants).
    pub async fn attachment_by_id(&self, id: &str) -> StoreResult<Option<AttachmentRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM attachments WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The attachments `ids` as uploaded by this uploader, in the order asked. An id that is not
    /// theirs (another tenant's, another customer's, or none) is `NotFound`.
    pub async fn uploaded_attachments(
        &self,
        tenant: &str,
        uploader_kind: &str,
        uploader_id: &str,
        ids: &[String],
    ) -> StoreResult<Vec<AttachmentRecord>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            match self.attachment(tenant, id).await? {
                Some(record)
                    if record.uploader_kind == uploader_kind
                        && record.uploader_id == uploader_id =>
                {
                    found.push(record)
                }
                _ => return Err(StoreError::NotFound("attachment")),
            }
        }
        Ok(found)
    }

    /// Attachments created before `before` (ms), oldest first, at most `limit`, across tenants
    /// when `tenant` is `None`.
    pub async fn attachments_before(
        &self,
        tenant: Option<&str>,
        before: i64,
        limit: i64,
    ) -> StoreResult<Vec<AttachmentRecord>> {
        let rows = match tenant {
            Some(tenant) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM attachments WHERE tenant_id = $1 AND created_at < $2 \
                     ORDER BY created_at LIMIT $3"
                )))
                .bind(tenant)
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM attachments WHERE created_at < $1 ORDER BY created_at LIMIT $2"
                )))
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(from_row).collect()
    }

    /// Bytes of the tenant's attachments uploaded by `uploader_kind` since `since` (ms).
    pub async fn attachment_bytes_since(
        &self,
        tenant: &str,
        uploader_kind: &str,
        since: i64,
    ) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(size), 0) AS bytes FROM attachments \
             WHERE tenant_id = $1 AND created_at >= $2 AND uploader_kind = $3",
        )
        .bind(tenant)
        .bind(since)
        .bind(uploader_kind)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("bytes")?)
    }

    /// Tenants with attachments.
    pub async fn attachment_tenants(&self) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT tenant_id FROM attachments")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| row.try_get("tenant_id").map_err(StoreError::from))
            .collect()
    }

    /// Forgets attachment rows (their blobs are deleted first by the caller).
    pub async fn delete_attachment_rows(&self, tenant: &str, ids: &[String]) -> StoreResult<u64> {
        let mut deleted = 0;
        for id in ids {
            deleted += sqlx::query("DELETE FROM attachments WHERE tenant_id = $1 AND id = $2")
                .bind(tenant)
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(deleted)
    }
}
