//! Attachments between agents and customers on WeChat and Douyin.
//!
//! - Out: a delivery whose message carries attachments is several provider messages: each image
//!   (uploaded, then sent, through [`ChannelSender::send_media`]), then the caption. The outbox
//!   row counts the parts already sent (`parts_sent`, written after each one), so an attempt
//!   after a failure resumes after them: an image is never sent twice. What a provider cannot
//!   take is refused when the agent sends ([`switchboard_channels::media::refusal`]); a file
//!   that is refused anyway at delivery time (its row gone, its type changed by a later rule)
//!   fails the delivery like a provider refusal would.
//! - In: a customer's WeChat image is a `MediaId`, fetched with the app's access token through
//!   [`ChannelSender::fetch_media`] within the tenant's size limit, and stored like an upload
//!   ([`Files::receive`]: sniffed, checked against the allow-list, thumbnailed). The webhook
//!   waits for it, so messages keep their order and none is acknowledged before it is stored;
//!   the fetch is retried a few times on transient failures within [`FETCH_BUDGET`], well inside
//!   WeChat's 5 s, after which the message is stored without it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt as _;
use store::apps::Delivery;
use store::attachments::{AttachmentKind, AttachmentRecord};
use store::util::now_ms;
use switchboard_channels::adapter::{ChannelSender, ReplyContext, SendError};
use switchboard_channels::media::{OutboundMedia, MAX_OUTBOUND_IMAGE_BYTES};
use switchboard_channels::{ChannelKind, OutboundMessage};

use super::Outbound;
use crate::error::ServiceError;
use crate::files::{AttachmentSettings, Uploader};

/// How long a push may spend on its media before the message is stored without it.
pub const FETCH_BUDGET: Duration = Duration::from_millis(3_500);
/// Fetches of one media id (the first and the retries).
const FETCH_ATTEMPTS: usize = 3;
/// The wait before each retry.
const FETCH_BACKOFF: [Duration; 2] = [Duration::from_millis(150), Duration::from_millis(500)];

/// Why a customer's media is not attached (the message is then stored with a note).
#[derive(Debug)]
pub enum MediaInError {
    /// Every attempt failed with a transient error, or the budget ran out.
    Unavailable(String),
    /// The provider refused the id, or the file breaks the tenant's rules (type, size).
    Refused { code: &'static str, message: String },
}

impl MediaInError {
    pub fn code(&self) -> &'static str {
        match self {
            MediaInError::Unavailable(_) => "media_unavailable",
            MediaInError::Refused { code, .. } => code,
        }
    }
}

impl std::fmt::Display for MediaInError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaInError::Unavailable(message) | MediaInError::Refused { message, .. } => {
                formatter.write_str(message)
            }
        }
    }
}

/// A provider message id being fetched on this node; a redelivery of it meanwhile is answered
/// at once (the first delivery stores the message).
pub struct InFlight {
    set: Arc<Mutex<HashSet<String>>>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// One attempt's outcome: retry or not.
enum Attempt {
    Retry(String),
    Stop(MediaInError),
}

impl Outbound {
    /// Marks a push (its scoped message id) as being handled here; `None` while another delivery
    /// of the same push is.
    pub fn inbound_in_flight(&self, key: &str) -> Option<InFlight> {
        let mut set = self
            .inbound_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !set.insert(key.to_owned()) {
            return None;
        }
        Some(InFlight {
            set: self.inbound_in_flight.clone(),
            key: key.to_owned(),
        })
    }

    /// Fetches a customer's media from the app's provider and stores it as the customer's
    /// upload: retried on transient failures, bounded by the tenant's limits and
    /// [`FETCH_BUDGET`].
    pub async fn receive_customer_media(
        &self,
        tenant: &str,
        kind: ChannelKind,
        app: &str,
        media_id: &str,
        uploader: &Uploader,
        settings: &AttachmentSettings,
    ) -> Result<AttachmentRecord, MediaInError> {
        let attempts = async {
            let mut last = String::new();
            for attempt in 0..FETCH_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(FETCH_BACKOFF[(attempt - 1).min(FETCH_BACKOFF.len() - 1)])
                        .await;
                }
                match self
                    .fetch_once(tenant, kind, app, media_id, uploader, settings)
                    .await
                {
                    Ok(record) => return Ok(record),
                    Err(Attempt::Stop(error)) => return Err(error),
                    Err(Attempt::Retry(error)) => {
                        tracing::info!(tenant, app, channel = kind.as_str(), attempt = attempt + 1, error = %error, "customer media fetch failed, retrying");
                        last = error;
                    }
                }
            }
            Err(MediaInError::Unavailable(last))
        };
        match tokio::time::timeout(FETCH_BUDGET, attempts).await {
            Ok(result) => result,
            Err(_) => Err(MediaInError::Unavailable(format!(
                "the media did not arrive within {} ms",
                FETCH_BUDGET.as_millis()
            ))),
        }
    }

    async fn fetch_once(
        &self,
        tenant: &str,
        kind: ChannelKind,
        app: &str,
        media_id: &str,
        uploader: &Uploader,
        settings: &AttachmentSettings,
    ) -> Result<AttachmentRecord, Attempt> {
        let sender = self
            .sender(tenant, kind.as_str(), app)
            .await
            .map_err(send_attempt)?;
        let max_bytes = u64::from(settings.image_max_mb.max(settings.file_max_mb)) * 1024 * 1024;
        let fetched = sender
            .fetch_media(media_id, max_bytes)
            .await
            .map_err(send_attempt)?;
        let name = fetched
            .file_name
            .clone()
            .unwrap_or_else(|| format!("{}-image", kind.as_str()));
        // A transport failure half-way through the body is worth another attempt; a body past
        // the limit is not (the stream says which).
        let broken = Arc::new(AtomicBool::new(false));
        let seen = broken.clone();
        let body = fetched.body.map(move |chunk| {
            if let Err(error) = &chunk {
                seen.store(error.is_retryable(), Ordering::Relaxed);
            }
            chunk
        });
        match self
            .files
            .receive(uploader, &name, Box::pin(body), settings)
            .await
        {
            Ok(record) => Ok(record),
            Err(error) if broken.load(Ordering::Relaxed) => Err(Attempt::Retry(error.to_string())),
            Err(ServiceError::Unavailable { message, .. }) => Err(Attempt::Retry(message)),
            Err(ServiceError::Internal(cause)) => Err(Attempt::Retry(format!("{cause:#}"))),
            Err(error) => Err(Attempt::Stop(MediaInError::Refused {
                code: error.code(),
                message: error.to_string(),
            })),
        }
    }

    /// Sends a delivery's attachments, then its text, resuming after the parts an earlier
    /// attempt sent. Answers the provider's id of the last message sent.
    pub(super) async fn send_parts(
        &self,
        delivery: &Delivery,
        sender: &dyn ChannelSender,
        message: &OutboundMessage,
        context: Option<&ReplyContext>,
    ) -> Result<Option<String>, SendError> {
        let attachments = self.delivery_attachments(delivery).await?;
        let has_text = !message.text.trim().is_empty();
        let parts = attachments.len() as i64 + i64::from(has_text);
        let mut last_id = None;
        for (index, id) in attachments.iter().enumerate() {
            let part = index as i64 + 1;
            if part <= delivery.parts_sent {
                continue;
            }
            let media = self.outbound_media(delivery, message.channel, id).await?;
            let receipt = sender.send_media(message, &media, context).await?;
            last_id = receipt.provider_message_id.or(last_id);
            self.record_part(delivery, part).await?;
        }
        if has_text && delivery.parts_sent < parts {
            let receipt = sender.send(message, context).await?;
            last_id = receipt.provider_message_id.or(last_id);
        } else if parts == 0 {
            // Neither text nor attachments: the sender refuses it as before.
            let receipt = sender.send(message, context).await?;
            last_id = receipt.provider_message_id;
        }
        Ok(last_id)
    }

    async fn record_part(&self, delivery: &Delivery, part: i64) -> Result<(), SendError> {
        self.store
            .record_delivery_parts(&delivery.id, part, now_ms() + self.lease_ms())
            .await
            .map_err(|error| {
                // The part left but is not counted: a retry may send it once more.
                tracing::error!(delivery_id = %delivery.id, part, error = %error, "cannot record a sent part");
                SendError::Network(format!("store: {error}"))
            })
    }

    /// The ids of the attachments the delivered message carries (none when it is gone).
    async fn delivery_attachments(&self, delivery: &Delivery) -> Result<Vec<String>, SendError> {
        let store_error = |error: store::StoreError| SendError::Network(format!("store: {error}"));
        let found = self
            .store
            .messages_after(&delivery.conversation_id, delivery.seq - 1, 1)
            .await
            .map_err(store_error)?;
        Ok(found
            .first()
            .filter(|message| message.seq == delivery.seq)
            .map(crate::files::attachments_of)
            .unwrap_or_default()
            .into_iter()
            .map(|attachment| attachment.id)
            .collect())
    }

    /// One attachment, read for the provider: refused when the provider cannot take it.
    async fn outbound_media(
        &self,
        delivery: &Delivery,
        channel: ChannelKind,
        id: &str,
    ) -> Result<OutboundMedia, SendError> {
        let store_error = |error: String| SendError::Network(format!("store: {error}"));
        let record = self
            .store
            .attachment(&delivery.tenant_id, id)
            .await
            .map_err(|error| store_error(error.to_string()))?
            .ok_or_else(|| SendError::Rejected("an attachment no longer exists".to_owned()))?;
        if let Some(reason) = switchboard_channels::media::refusal(
            channel,
            record.kind == AttachmentKind::Image,
            &record.media_type,
            u64::try_from(record.size).unwrap_or(u64::MAX),
        ) {
            return Err(SendError::Rejected(format!("{}: {reason}", record.name)));
        }
        let bytes = match self.files.read_all(&record, MAX_OUTBOUND_IMAGE_BYTES).await {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(SendError::Rejected(
                    "an attachment no longer exists".to_owned(),
                ))
            }
            Err(ServiceError::TooLarge(message)) => return Err(SendError::Rejected(message)),
            Err(error) => return Err(store_error(error.to_string())),
        };
        Ok(OutboundMedia {
            name: record.name,
            media_type: record.media_type,
            bytes,
        })
    }
}

fn send_attempt(error: SendError) -> Attempt {
    if error.is_retryable() {
        Attempt::Retry(error.to_string())
    } else {
        Attempt::Stop(MediaInError::Refused {
            code: error.code(),
            message: error.to_string(),
        })
    }
}
