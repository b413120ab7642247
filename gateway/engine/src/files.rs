//! Attachments: uploads streamed to disk and sniffed, thumbnails for images, blobs kept in the
//! node's [`BlobStore`], and short-lived signed download links.
//!
//! An upload never sits whole in memory: the body is written to a file under the incoming folder
//! as it arrives, with its size checked against the tenant's limit for its kind (known from the
//! first bytes) and its SHA-256 computed on the way. The content decides the type, never the
//! name: a handful of magic numbers and a UTF-8 check, then the tenant's allow-list. An image
//! is decoded (under dimension and allocation limits, a few at a time) to learn its size and to
//! make a JPEG thumbnail; an image that does not decode is refused. Only then are the blobs
//! stored and the row written, so a message can only ever refer to a complete attachment.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::attachments::{AttachmentKind, AttachmentRecord};
use store::blobs::{Blob, BlobStore};
use store::crypto::TokenSigner;
use store::util::{new_id, now_ms};
use store::Store;
use switchboard_channels::web::AttachmentView;
use tokio::io::AsyncWriteExt as _;

use crate::error::{ServiceError, ServiceResult};

/// How long a download link works.
pub const LINK_TTL: Duration = Duration::from_secs(3600);
/// The longest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// Images are refused past this many pixels a side (a decompression bomb is refused before it
/// is decoded).
pub const MAX_IMAGE_SIDE: u32 = 16_384;
/// Images are refused past this many pixels (64 megapixels: a 48 MP phone photo fits), checked
/// on the header before anything is decoded.
pub const MAX_IMAGE_PIXELS: u64 = 64 * 1024 * 1024;
/// Memory one image decode may allocate: the largest image allowed as 8-bit RGBA, and a little
/// more.
pub const MAX_DECODE_BYTES: u64 = MAX_IMAGE_PIXELS * 4 + 32 * 1024 * 1024;
/// Image decodes at once on a node.
const DECODES_AT_ONCE: usize = 2;
/// Uploads received at once on a node; more are refused with `busy`.
pub const UPLOADS_AT_ONCE: usize = 64;
/// Uploads one customer or agent may have in progress at once (a visitor with a script cannot
/// hold the node's upload slots with slow uploads).
pub const UPLOADS_PER_UPLOADER: usize = 4;
/// An upload must arrive within this time.
pub const UPLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// The most attachments on one message.
pub const MAX_PER_MESSAGE: usize = 10;
/// The longest file name kept (characters).
const MAX_NAME_CHARS: usize = 200;

/// Media types a tenant may allow (what sniffing can tell apart).
pub const KNOWN_TYPES: [&str; 12] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/octet-stream",
];

/// A tenant's attachment rules (`attachments` in the tenant's settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AttachmentSettings {
    /// Customers may send attachments (agents always may).
    pub customers: bool,
    /// The largest image, in MB.
    pub image_max_mb: u32,
    /// The largest other file, in MB.
    pub file_max_mb: u32,
    /// Media types accepted (from [`KNOWN_TYPES`]; `application/octet-stream` is anything
    /// unrecognized).
    pub allowed_types: Vec<String>,
    /// Attachments older than this many days are deleted (0: kept).
    pub retention_days: u32,
    /// What the tenant's customers may upload in all over the last 24 hours, in MB: anonymous
    /// visitors can make as many sessions as they like, so this, not a per-visitor budget, is
    /// what keeps them from filling the node's disk.
    pub customer_daily_mb: u32,
}

impl Default for AttachmentSettings {
    fn default() -> Self {
        AttachmentSettings {
            customers: true,
            image_max_mb: 10,
            file_max_mb: 20,
            allowed_types: KNOWN_TYPES[..11].iter().map(|t| (*t).to_owned()).collect(),
            retention_days: 0,
            customer_daily_mb: 2_048,
        }
    }
}

impl AttachmentSettings {
    /// The largest size a tenant may set, in MB.
    pub const MAX_MB: u32 = 100;
    /// The largest daily budget for customers' uploads a tenant may set, in MB.
    pub const MAX_DAILY_MB: u32 = 1_000_000;

    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("image_max_mb", self.image_max_mb),
            ("file_max_mb", self.file_max_mb),
        ] {
            if !(1..=Self::MAX_MB).contains(&value) {
                return Err(format!(
                    "attachments.{name} must be between 1 and {}",
                    Self::MAX_MB
                ));
            }
        }
        if !(1..=Self::MAX_DAILY_MB).contains(&self.customer_daily_mb) {
            return Err(format!(
                "attachments.customer_daily_mb must be between 1 and {}",
                Self::MAX_DAILY_MB
            ));
        }
        if let Some(unknown) = self
            .allowed_types
            .iter()
            .find(|t| !KNOWN_TYPES.contains(&t.as_str()))
        {
            return Err(format!(
                "attachments.allowed_types: `{unknown}` is not one of {}",
                KNOWN_TYPES.join(", ")
            ));
        }
        Ok(())
    }

    fn limit_for(&self, kind: AttachmentKind) -> u64 {
        let mb = match kind {
            AttachmentKind::Image => self.image_max_mb,
            AttachmentKind::File => self.file_max_mb,
        };
        u64::from(mb) * 1024 * 1024
    }
}

/// Who uploads (and may then send) an attachment.
#[derive(Debug, Clone)]
pub struct Uploader {
    pub tenant: String,
    /// `customer` or `agent`.
    pub kind: &'static str,
    pub id: String,
}

impl Uploader {
    pub fn customer(customer: &store::Customer) -> Self {
        Uploader {
            tenant: customer.tenant_id.clone(),
            kind: "customer",
            id: customer.id.clone(),
        }
    }

    pub fn agent(agent: &store::Agent) -> Self {
        Uploader {
            tenant: agent.tenant_id.clone(),
            kind: "agent",
            id: agent.id.clone(),
        }
    }
}

/// The attachments a stored message carries (from its meta).
pub fn attachments_of(message: &store::MessageRecord) -> Vec<AttachmentRecord> {
    message
        .meta
        .as_ref()
        .and_then(|meta| meta.get("attachments"))
        .and_then(|list| serde_json::from_value(list.clone()).ok())
        .unwrap_or_default()
}

/// The media type of content, from its first bytes (and, for zip containers and text, the
/// name's extension to tell office files and CSV apart).
pub fn sniff(head: &[u8], name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        "image/gif"
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        "image/webp"
    } else if head.starts_with(b"%PDF-") {
        "application/pdf"
    } else if head.starts_with(b"PK\x03\x04") {
        match extension.as_str() {
            "docx" => KNOWN_TYPES[8],
            "xlsx" => KNOWN_TYPES[9],
            "pptx" => KNOWN_TYPES[10],
            _ => "application/zip",
        }
    } else if looks_like_text(head) {
        if extension == "csv" {
            "text/csv"
        } else {
            "text/plain"
        }
    } else {
        "application/octet-stream"
    }
}

/// UTF-8 without NULs or other control bytes than whitespace (a character cut at the end of
/// the sample is fine).
fn looks_like_text(head: &[u8]) -> bool {
    if head.is_empty() {
        return false;
    }
    let valid = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(error) if error.error_len().is_none() => {
            // Cut inside a character at the end of the sample.
            std::str::from_utf8(&head[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

fn kind_of(media_type: &str) -> AttachmentKind {
    if media_type.starts_with("image/") {
        AttachmentKind::Image
    } else {
        AttachmentKind::File
    }
}

/// A file name safe to show and to put in a header: no path, no control characters, cut to
/// [`MAX_NAME_CHARS`]; empty becomes `file`.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '"' | '<' | '>'))
        .take(MAX_NAME_CHARS)
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

/// The attachment service of a node.
pub struct Files {
    store: Store,
    blobs: Arc<dyn BlobStore>,
    incoming: PathBuf,
    signer: TokenSigner,
    decodes: tokio::sync::Semaphore,
    uploads: Arc<tokio::sync::Semaphore>,
    /// Uploads in progress per uploader.
    in_progress: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// Per tenant, its customers' upload bytes over the last day as last read from the store
    /// (and when), plus what this node stored since: read at most every [`BUDGET_READ_EVERY`],
    /// so a flood of small uploads does not make each one sum a day of rows.
    customer_bytes: std::sync::Mutex<std::collections::HashMap<String, (Instant, i64)>>,
}

/// How long a tenant's summed customer upload bytes are used before they are read again.
const BUDGET_READ_EVERY: Duration = Duration::from_secs(10);

/// One uploader's place among their uploads in progress, given back on drop.
struct InProgress<'a> {
    files: &'a Files,
    key: String,
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        let mut map = self
            .files
            .in_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = map.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// A removed temporary file when dropped (an upload that failed half-way leaves nothing).
struct Incoming(PathBuf);

impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What an image decode found.
struct Decoded {
    width: u32,
    height: u32,
}

impl Files {
    /// `incoming`: a folder for uploads being received (on the same disk as file blobs).
    pub fn new(
        store: Store,
        blobs: Arc<dyn BlobStore>,
        incoming: PathBuf,
        signer: TokenSigner,
    ) -> Files {
        // Leftovers of a node that stopped mid-upload.
        if let Ok(entries) = std::fs::read_dir(&incoming) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Files {
            store,
            blobs,
            incoming,
            signer,
            decodes: tokio::sync::Semaphore::new(DECODES_AT_ONCE),
            uploads: Arc::new(tokio::sync::Semaphore::new(UPLOADS_AT_ONCE)),
            in_progress: Default::default(),
            customer_bytes: Default::default(),
        }
    }

    /// The blob store in use (`files` or `database`).
    pub fn blob_store(&self) -> &'static str {
        self.blobs.name()
    }

    /// Receives one upload: streamed to disk within the tenant's limits, sniffed, checked
    /// against the allow-list, thumbnailed if it is an image, stored; answers its row.
    pub async fn receive<S, E>(
        &self,
        uploader: &Uploader,
        name: &str,
        body: S,
        settings: &AttachmentSettings,
    ) -> ServiceResult<AttachmentRecord>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let _mine = self.start_upload(uploader)?;
        if uploader.kind == "customer" {
            self.within_customer_budget(&uploader.tenant, settings)
                .await?;
        }
        let _slot = self.uploads.clone().try_acquire_owned().map_err(|_| {
            ServiceError::unavailable("busy", "too many uploads at once; retry in a moment")
        })?;
        let name = clean_name(name);
        let id = new_id("f_");
        tokio::fs::create_dir_all(&self.incoming)
            .await
            .map_err(|e| internal(format!("incoming folder: {e}")))?;
        let path = self.incoming.join(&id);
        let incoming = Incoming(path.clone());
        let received = tokio::time::timeout(
            UPLOAD_TIMEOUT,
            receive_to_file(&path, &name, body, settings),
        )
        .await
        .map_err(|_| {
            ServiceError::invalid(
                "upload_timeout",
                format!(
                    "the file did not arrive within {} s",
                    UPLOAD_TIMEOUT.as_secs()
                ),
            )
        })??;
        let mut record = AttachmentRecord {
            id: id.clone(),
            tenant_id: uploader.tenant.clone(),
            uploader_kind: uploader.kind.into(),
            uploader_id: uploader.id.clone(),
            kind: kind_of(received.media_type),
            name,
            media_type: received.media_type.into(),
            size: received.size as i64,
            width: None,
            height: None,
            thumbnail: false,
            sha256: received.sha256,
            created_at: now_ms(),
        };
        let thumbnail = Incoming(self.incoming.join(format!("{id}.thumb")));
        if record.kind == AttachmentKind::Image {
            let _decode = self
                .decodes
                .acquire()
                .await
                .map_err(|_| internal("decoder closed".to_owned()))?;
            let (source, target) = (path.clone(), thumbnail.0.clone());
            let decoded =
                tokio::task::spawn_blocking(move || decode_and_thumbnail(&source, &target))
                    .await
                    .map_err(|e| internal(format!("image decode: {e}")))??;
            record.width = Some(i64::from(decoded.width));
            record.height = Some(i64::from(decoded.height));
            record.thumbnail = true;
        }
        if record.thumbnail {
            self.blobs
                .put(&record.thumbnail_key(), &thumbnail.0)
                .await?;
        }
        self.blobs.put(&record.blob_key(), &path).await?;
        drop(incoming);
        if let Err(error) = self.store.insert_attachment(&record).await {
            // No row, no blob.
            let _ = self.blobs.delete(&record.blob_key()).await;
            let _ = self.blobs.delete(&record.thumbnail_key()).await;
            return Err(error.into());
        }
        if uploader.kind == "customer" {
            if let Some((_, bytes)) = self
                .customer_bytes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&record.tenant_id)
            {
                *bytes += record.size;
            }
        }
        tracing::debug!(tenant = %record.tenant_id, id = %record.id, media_type = %record.media_type, size = record.size, "attachment stored");
        Ok(record)
    }

    /// Refuses a customer's upload once the tenant's customers have uploaded
    /// `customer_daily_mb` over the last 24 hours (an upload under way may pass it by its own
    /// size, at most the tenant's largest file).
    async fn within_customer_budget(
        &self,
        tenant: &str,
        settings: &AttachmentSettings,
    ) -> ServiceResult<()> {
        const DAY_MS: i64 = 86_400_000;
        let cached = self
            .customer_bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .filter(|(read_at, _)| read_at.elapsed() < BUDGET_READ_EVERY)
            .map(|&(_, bytes)| bytes);
        let used = match cached {
            Some(bytes) => bytes,
            None => {
                let bytes = self
                    .store
                    .attachment_bytes_since(tenant, "customer", now_ms() - DAY_MS)
                    .await?;
                self.customer_bytes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(tenant.to_owned(), (Instant::now(), bytes));
                bytes
            }
        };
        if used >= i64::from(settings.customer_daily_mb) << 20 {
            tracing::warn!(tenant, used, "customers' daily upload budget used up");
            // The budget frees as uploads age past a day: an hour is a fair time to come back.
            return Err(ServiceError::RateLimited {
                retry_after_ms: 3_600_000,
            });
        }
        Ok(())
    }

    fn start_upload(&self, uploader: &Uploader) -> ServiceResult<InProgress<'_>> {
        let key = format!("{}/{}/{}", uploader.tenant, uploader.kind, uploader.id);
        let mut map = self.in_progress.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(key.clone()).or_insert(0);
        if *count >= UPLOADS_PER_UPLOADER {
            return Err(ServiceError::unavailable(
                "busy",
                format!("at most {UPLOADS_PER_UPLOADER} of your uploads at once; retry when one is done"),
            ));
        }
        *count += 1;
        Ok(InProgress { files: self, key })
    }

    /// The attachments a message will carry: each uploaded by this uploader, at most
    /// [`MAX_PER_MESSAGE`], no id twice.
    pub async fn for_message(
        &self,
        uploader: &Uploader,
        ids: &[String],
    ) -> ServiceResult<Vec<AttachmentRecord>> {
        if ids.len() > MAX_PER_MESSAGE {
            return Err(ServiceError::invalid(
                "too_many_attachments",
                format!("a message carries at most {MAX_PER_MESSAGE} attachments"),
            ));
        }
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        if distinct.len() != ids.len() {
            return Err(ServiceError::invalid(
                "bad_attachment",
                "an attachment is listed twice",
            ));
        }
        self.store
            .uploaded_attachments(&uploader.tenant, uploader.kind, &uploader.id, ids)
            .await
            .map_err(|error| match error {
                store::StoreError::NotFound(_) => ServiceError::invalid(
                    "bad_attachment",
                    "an attachment is unknown or was not uploaded by you",
                ),
                other => other.into(),
            })
    }

    /// The views of a message's attachments.
    pub fn views(&self, message: &store::MessageRecord) -> Vec<AttachmentView> {
        attachments_of(message)
            .iter()
            .map(|a| self.view(a))
            .collect()
    }

    /// How a message's attachment is shown to a client: its description and signed links.
    pub fn view(&self, attachment: &AttachmentRecord) -> AttachmentView {
        let expires = (now_ms() / 1000) + LINK_TTL.as_secs() as i64;
        let link = |thumbnail: bool| {
            let variant = if thumbnail { "thumb" } else { "file" };
            let signature = self.signer.derive(
                "attachment-link",
                &link_data(&attachment.id, variant, expires),
            );
            format!(
                "/v1/files/{}?v={variant}&exp={expires}&sig={signature}",
                attachment.id
            )
        };
        AttachmentView {
            id: attachment.id.clone(),
            kind: attachment.kind.as_str().into(),
            name: attachment.name.clone(),
            media_type: attachment.media_type.clone(),
            size: attachment.size,
            width: attachment.width,
            height: attachment.height,
            url: link(false),
            thumbnail_url: attachment.thumbnail.then(|| link(true)),
        }
    }

    /// Opens the blob a signed link names, once the signature and expiry are checked: the
    /// attachment's row and the bytes (of the thumbnail with `thumbnail`).
    pub async fn open_link(
        &self,
        id: &str,
        variant: &str,
        expires: i64,
        signature: &str,
    ) -> ServiceResult<(AttachmentRecord, Blob)> {
        let thumbnail = match variant {
            "file" => false,
            "thumb" => true,
            _ => return Err(ServiceError::invalid("bad_link", "unknown variant")),
        };
        let expected = self
            .signer
            .derive("attachment-link", &link_data(id, variant, expires));
        if !constant_time_eq(expected.as_bytes(), signature.as_bytes()) {
            return Err(ServiceError::denied("bad_link", "this link is not valid"));
        }
        if expires < now_ms() / 1000 {
            return Err(ServiceError::denied(
                "link_expired",
                "this link has expired; reload the conversation for a new one",
            ));
        }
        let Some(record) = self.store.attachment_by_id(id).await? else {
            return Err(ServiceError::NotFound("attachment"));
        };
        let key = if thumbnail {
            record.thumbnail_key()
        } else {
            record.blob_key()
        };
        match self.blobs.open(&key).await? {
            Some(blob) => Ok((record, blob)),
            None => Err(ServiceError::NotFound("attachment")),
        }
    }

    /// The bytes of an attachment, for a provider's upload: at most `max_bytes` (a larger one is
    /// `too_large` before anything is read). `None` when its blob is gone.
    pub async fn read_all(
        &self,
        record: &AttachmentRecord,
        max_bytes: u64,
    ) -> ServiceResult<Option<Bytes>> {
        let too_large = || {
            ServiceError::TooLarge(format!(
                "the attachment is larger than {} MB",
                max_bytes / (1024 * 1024)
            ))
        };
        if u64::try_from(record.size).unwrap_or(u64::MAX) > max_bytes {
            return Err(too_large());
        }
        let Some(mut blob) = self.blobs.open(&record.blob_key()).await? else {
            return Ok(None);
        };
        if blob.size > max_bytes {
            return Err(too_large());
        }
        let mut bytes = bytes::BytesMut::with_capacity(usize::try_from(blob.size).unwrap_or(0));
        while let Some(chunk) = blob.chunks.next().await {
            let chunk = chunk.map_err(|e| internal(format!("attachment blob: {e}")))?;
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes.freeze()))
    }

    /// Deletes attachments (blobs, then rows).
    pub async fn delete(&self, records: &[AttachmentRecord]) -> ServiceResult<u64> {
        let mut deleted = 0;
        for record in records {
            self.blobs.delete(&record.thumbnail_key()).await?;
            self.blobs.delete(&record.blob_key()).await?;
            deleted += self
                .store
                .delete_attachment_rows(&record.tenant_id, std::slice::from_ref(&record.id))
                .await?;
        }
        Ok(deleted)
    }

    /// Deletes the tenant's attachments older than its retention; answers how many went.
    pub async fn apply_retention(&self, tenant: &str, days: u32) -> ServiceResult<u64> {
        if days == 0 {
            return Ok(0);
        }
        let before = now_ms() - i64::from(days) * 86_400_000;
        let mut deleted = 0;
        loop {
            let batch = self
                .store
                .attachments_before(Some(tenant), before, 500)
                .await?;
            if batch.is_empty() {
                break;
            }
            deleted += self.delete(&batch).await?;
        }
        if deleted > 0 {
            tracing::info!(tenant, deleted, days, "old attachments deleted");
        }
        Ok(deleted)
    }
}

fn internal(message: String) -> ServiceError {
    ServiceError::Internal(anyhow::anyhow!(message))
}

fn link_data(id: &str, variant: &str, expires: i64) -> String {
    format!("{id}/{variant}/{expires}")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What [`receive_to_file`] learned.
struct Received {
    media_type: &'static str,
    size: u64,
    sha256: String,
}

/// Bytes looked at before the type is decided.
const SNIFF_BYTES: usize = 4096;

/// Writes the body to `path`: the type is sniffed from the first [`SNIFF_BYTES`] (or all of a
/// smaller file), checked against the allow-list, and the size against the kind's limit as the
/// bytes arrive.
async fn receive_to_file<S, E>(
    path: &Path,
    name: &str,
    mut body: S,
    settings: &AttachmentSettings,
) -> ServiceResult<Received>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let io = |e: std::io::Error| internal(format!("upload file: {e}"));
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut decided: Option<(&'static str, u64)> = None;
    let mut size: u64 = 0;
    let decide = |head: &[u8]| -> ServiceResult<(&'static str, u64)> {
        let media_type = sniff(head, name);
        if !settings.allowed_types.iter().any(|t| t == media_type) {
            return Err(ServiceError::invalid(
                "unsupported_type",
                format!("{media_type} files are not accepted here"),
            ));
        }
        Ok((media_type, settings.limit_for(kind_of(media_type))))
    };
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ServiceError::invalid("bad_body", e.to_string()))?;
        size += chunk.len() as u64;
        if decided.is_none() {
            let wanted = SNIFF_BYTES - head.len();
            head.extend_from_slice(&chunk[..chunk.len().min(wanted)]);
            if head.len() >= SNIFF_BYTES {
                decided = Some(decide(&head)?);
            }
        }
        let limit = decided.map_or(
            settings
                .limit_for(AttachmentKind::File)
                .max(settings.limit_for(AttachmentKind::Image)),
            |(_, limit)| limit,
        );
        if size > limit {
            return Err(ServiceError::TooLarge(format!(
                "the file is larger than the {} MB allowed",
                limit / (1024 * 1024)
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(io)?;
    }
    if size == 0 {
        return Err(ServiceError::invalid("empty_file", "the file is empty"));
    }
    let (media_type, limit) = match decided {
        Some(decided) => decided,
        None => decide(&head)?,
    };
    if size > limit {
        return Err(ServiceError::TooLarge(format!(
            "the file is larger than the {} MB allowed",
            limit / (1024 * 1024)
        )));
    }
    file.flush().await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    let digest = hasher.finalize();
    let mut sha256 = String::with_capacity(64);
    for byte in digest {
        let _ = std::fmt::Write::write_fmt(&mut sha256, format_args!("{byte:02x}"));
    }
    Ok(Received {
        media_type,
        size,
        sha256,
    })
}

/// Reads an image's size and writes its thumbnail (JPEG) to `thumbnail`; an image that is too
/// large or does not decode is a `bad_image` error.
fn decode_and_thumbnail(source: &Path, thumbnail: &Path) -> ServiceResult<Decoded> {
    let bad = |what: String| ServiceError::invalid("bad_image", what);
    let open = || -> ServiceResult<image::ImageReader<std::io::BufReader<std::fs::File>>> {
        let mut reader = image::ImageReader::open(source)
            .map_err(|e| internal(format!("image file: {e}")))?
            .with_guessed_format()
            .map_err(|e| internal(format!("image file: {e}")))?;
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_IMAGE_SIDE);
        limits.max_image_height = Some(MAX_IMAGE_SIDE);
        limits.max_alloc = Some(MAX_DECODE_BYTES);
        reader.limits(limits);
        Ok(reader)
    };
    let (width, height) = open()?
        .into_dimensions()
        .map_err(|e| bad(format!("the image cannot be read: {e}")))?;
    if u64::from(width) * u64::from(height) > MAX_IMAGE_PIXELS {
        return Err(bad(format!(
            "the image is {width}x{height}: more than {} megapixels",
            MAX_IMAGE_PIXELS >> 20
        )));
    }
    let image = open()?
        .decode()
        .map_err(|e| bad(format!("the image cannot be decoded: {e}")))?;
    // Never enlarged: a small image's thumbnail is the image itself, as a JPEG.
    let small = if width <= THUMBNAIL_SIDE && height <= THUMBNAIL_SIDE {
        image.to_rgb8()
    } else {
        image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE).to_rgb8()
    };
    let file =
        std::fs::File::create(thumbnail).map_err(|e| internal(format!("thumbnail file: {e}")))?;
    let mut writer = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, 80)
        .encode_image(&small)
        .map_err(|e| internal(format!("thumbnail: {e}")))?;
    writer
        .flush()
        .map_err(|e| internal(format!("thumbnail file: {e}")))?;
    Ok(Decoded { width, height })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_the_type_not_the_name() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n....", "x.pdf"), "image/png");
        assert_eq!(sniff(&[0xFF, 0xD8, 0xFF, 0xE0], "a.txt"), "image/jpeg");
        assert_eq!(sniff(b"GIF89a...", ""), "image/gif");
        assert_eq!(sniff(b"RIFF\0\0\0\0WEBPVP8 ", "x"), "image/webp");
        assert_eq!(sniff(b"%PDF-1.7", "invoice.png"), "application/pdf");
        assert_eq!(sniff(b"PK\x03\x04rest", "report.DOCX"), KNOWN_TYPES[8]);
        assert_eq!(sniff(b"PK\x03\x04rest", "a.zip"), "application/zip");
        assert_eq!(sniff("订单号,金额\n1,2".as_bytes(), "a.csv"), "text/csv");
        // HTML and SVG are text: served as text/plain, always as a download.
        assert_eq!(sniff(b"<svg onload=alert(1)>", "x.svg"), "text/plain");
        assert_eq!(
            sniff(b"\x7fELF\x02\x01", "x.txt"),
            "application/octet-stream"
        );
        assert_eq!(sniff(b"MZ\x90\x00", "x.jpg"), "application/octet-stream");
        // A character cut by the sample's end is still text.
        let text = "好".repeat(3);
        assert_eq!(sniff(&text.as_bytes()[..7], "x"), "text/plain");
    }

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\发票.pdf"), "发票.pdf");
        assert_eq!(clean_name("a\r\nb\".pdf"), "ab.pdf");
        assert_eq!(clean_name(""), "file");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(&"x".repeat(500)).chars().count(), MAX_NAME_CHARS);
    }

    #[test]
    fn settings_are_checked() {
        assert!(AttachmentSettings::default().validate().is_ok());
        let settings = AttachmentSettings {
            image_max_mb: 0,
            ..AttachmentSettings::default()
        };
        assert!(settings.validate().is_err());
        let mut settings = AttachmentSettings::default();
        settings.allowed_types.push("text/html".into());
        assert!(settings.validate().is_err());
    }
}
