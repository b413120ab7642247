//! The outbox worker. Two loops:
//! - the enqueuer follows [`super::OUTBOUND_TOPIC`]: each agent or bot message in a conversation
//!   routed to a webhook channel gets a `send` row, and one routed to a mobile app whose user has
//!   no open connection gets a `push` row (when the app has a push hook). At start-up, and when
//!   it lagged behind the bus, it writes the rows missing for recent messages from the store.
//! - the sender claims due rows, calls the provider (or the push hook) and records the outcome:
//!   sent; retry later with exponential backoff (a retryable error, under `max_attempts`); or
//!   failed with the error's stable code (the agent sees it as a `delivery` frame and in
//!   `GET .../deliveries`). Rows survive restarts: the sender resumes whatever is pending.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_channels::adapter::{ChannelSender, ReplyContext, SendError};
use switchboard_channels::douyin::{DouyinSender, DouyinSenderConfig};
use switchboard_channels::outbound_guard::{check_destination, DestinationError};
use switchboard_channels::web::SenderKind;
use switchboard_channels::wechat::{WechatSender, WechatSenderConfig};
use switchboard_channels::{ChannelKind, OutboundMessage};
use tokio::sync::broadcast::error::RecvError;

use super::Outbound;
use crate::bus::BusEvent;
use crate::bus::OUTBOUND_TOPIC;
use store::apps::{AttemptOutcome, ConversationRoute, Delivery, NewDelivery};
use store::util::now_ms;
use store::MessageRecord;

/// How many deliveries are attempted at once.
const CONCURRENCY: usize = 8;
const BATCH: i64 = 64;

/// Starts the outbox worker: it enqueues deliveries for new agent and bot messages, resumes
/// pending rows left by an earlier run, and retries with exponential backoff.
pub fn start(outbound: Arc<Outbound>) {
    // Subscribe before the start-up scan, so nothing falls between the two.
    let events = outbound.bus.subscribe(OUTBOUND_TOPIC);
    let enqueuer = outbound.clone();
    tokio::spawn(async move { enqueue_loop(enqueuer, events).await });
    tokio::spawn(async move { send_loop(outbound).await });
}

/// The least time between two recovery scans after lags: a flood can make the enqueuer lag again
/// and again, and a scan per lag would then take the database's time from the chats themselves.
/// One scan covers every lag before it.
const RECOVERY_GAP: Duration = Duration::from_secs(1);

/// When the next recovery scan is due: after a lag, once [`RECOVERY_GAP`] has passed since the
/// last scan.
struct Recovery {
    scanned_at: Instant,
    lagged: bool,
}

impl Recovery {
    fn scanned(at: Instant) -> Self {
        Recovery {
            scanned_at: at,
            lagged: false,
        }
    }

    fn lagged(&mut self) {
        self.lagged = true;
    }

    /// Whether to scan now; if so, the scan is counted as done at `now`.
    fn due(&mut self, now: Instant) -> bool {
        if self.lagged && now.duration_since(self.scanned_at) >= RECOVERY_GAP {
            *self = Recovery::scanned(now);
            true
        } else {
            false
        }
    }
}

async fn enqueue_loop(
    outbound: Arc<Outbound>,
    mut events: tokio::sync::broadcast::Receiver<BusEvent>,
) {
    recover(&outbound).await;
    let mut recovery = Recovery::scanned(Instant::now());
    let poll = Duration::from_millis(outbound.settings.poll_interval_ms.max(10));
    loop {
        // Wakes now and then to notice that the server stopped (and to scan after a lag).
        match tokio::time::timeout(poll, events.recv()).await {
            Err(_) => {}
            Ok(Ok(BusEvent::Message(message))) => {
                if let Err(error) = outbound.enqueue_for(&message).await {
                    tracing::error!(conversation_id = %message.conversation_id, seq = message.seq, error = %error, "outbox enqueue failed");
                    // The start-up scan of the next run (or the next lag) writes it.
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(RecvError::Lagged(skipped))) => {
                tracing::warn!(skipped, "outbox fell behind the bus; scanning the store");
                recovery.lagged();
            }
            Ok(Err(RecvError::Closed)) => break,
        }
        if outbound.store.is_closed() {
            break;
        }
        if recovery.due(Instant::now()) {
            recover(&outbound).await;
        }
    }
}

async fn recover(outbound: &Outbound) {
    if outbound.store.is_closed() {
        return;
    }
    let since = now_ms() - outbound.settings.recovery_window_ms;
    match outbound.store.enqueue_missing_sends(since).await {
        Ok(0) => {}
        Ok(written) => {
            tracing::info!(written, "outbox rows written for replies that had none");
            outbound.wake.notify_one();
        }
        Err(error) => tracing::error!(error = %error, "outbox recovery scan failed"),
    }
}

async fn send_loop(outbound: Arc<Outbound>) {
    let poll = Duration::from_millis(outbound.settings.poll_interval_ms.max(10));
    loop {
        if outbound.store.is_closed() {
            break;
        }
        let due = match outbound.store.due_deliveries(now_ms(), BATCH).await {
            Ok(due) => due,
            Err(error) => {
                if !outbound.store.is_closed() {
                    tracing::error!(error = %error, "cannot read due deliveries");
                }
                Vec::new()
            }
        };
        let full = due.len() as i64 == BATCH;
        futures_util::stream::iter(due)
            .for_each_concurrent(CONCURRENCY, |delivery| {
                let outbound = outbound.clone();
                async move { outbound.attempt(delivery).await }
            })
            .await;
        if full {
            continue;
        }
        let _ = tokio::time::timeout(poll, outbound.wake.notified()).await;
    }
}

/// What a push notification says of a message: its text, or, for attachments alone, what was
/// sent (`[image]`, `[file] label.pdf`), so the app never notifies with an empty line.
fn push_text(message: &MessageRecord) -> String {
    if !message.text.is_empty() {
        return message.text.clone();
    }
    crate::files::attachments_of(message)
        .iter()
        .map(|attachment| match attachment.kind {
            store::attachments::AttachmentKind::Image => "[image]".to_owned(),
            store::attachments::AttachmentKind::File => format!("[file] {}", attachment.name),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Outbound {
    /// Writes the delivery rows one stored message needs (none for customer and system messages,
    /// or for conversations that only live on the web).
    async fn enqueue_for(&self, message: &MessageRecord) -> anyhow::Result<()> {
        if !matches!(message.sender, SenderKind::Agent | SenderKind::Bot) {
            return Ok(());
        }
        let Some(route) = self.route_of(&message.conversation_id).await? else {
            return Ok(());
        };
        let kind = match ChannelKind::parse(&route.channel) {
            Some(ChannelKind::Wechat | ChannelKind::Douyin) => "send",
            Some(ChannelKind::Mobile) => {
                if self.is_online(&route.customer_id) {
                    return Ok(());
                }
                let config = self
                    .store
                    .channel_app(&route.tenant_id, ChannelKind::Mobile.as_str(), &route.app)
                    .await?;
                if config.is_none_or(|config| config.secret("push_url").is_empty()) {
                    return Ok(());
                }
                "push"
            }
            _ => return Ok(()),
        };
        let new = NewDelivery {
            tenant_id: route.tenant_id.clone(),
            conversation_id: message.conversation_id.clone(),
            seq: message.seq,
            kind: kind.to_owned(),
            channel: route.channel.clone(),
            app: route.app.clone(),
            recipient: route.external_user_id.clone(),
            reply_context: route.reply_context.clone(),
            text: match kind {
                "push" => push_text(message),
                _ => message.text.clone(),
            },
            sender_kind: message.sender.as_str().to_owned(),
        };
        if let Some(delivery) = self.store.enqueue_delivery(&new).await? {
            tracing::info!(conversation_id = %delivery.conversation_id, seq = delivery.seq, kind, channel = %delivery.channel, "delivery queued");
            self.publish_delivery(&delivery);
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The stored route, or the conversation's own customer when it is a channel identity.
    async fn route_of(&self, conversation_id: &str) -> anyhow::Result<Option<ConversationRoute>> {
        if let Some(route) = self.store.route(conversation_id).await? {
            return Ok(Some(route));
        }
        let Some(conversation) = self.store.conversation(conversation_id).await? else {
            return Ok(None);
        };
        let Some(customer) = self
            .store
            .customer(&conversation.tenant_id, &conversation.customer_id)
            .await?
        else {
            return Ok(None);
        };
        if customer.channel == ChannelKind::Web.as_str() {
            return Ok(None);
        }
        let Some((app, user)) = customer.external_id.split_once(':') else {
            return Ok(None);
        };
        Ok(Some(ConversationRoute {
            conversation_id: conversation.id,
            tenant_id: conversation.tenant_id,
            customer_id: customer.id.clone(),
            channel: customer.channel.clone(),
            app: app.to_owned(),
            external_user_id: user.to_owned(),
            reply_context: None,
        }))
    }

    /// One attempt at one due delivery, if this worker wins the claim.
    async fn attempt(&self, delivery: Delivery) {
        let now = now_ms();
        let lease_until = now + self.lease_ms();
        match self
            .store
            .claim_delivery(&delivery.id, now, lease_until)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::error!(delivery_id = %delivery.id, error = %error, "cannot claim delivery");
                return;
            }
        }
        let attempts = delivery.attempts + 1;
        let result = match delivery.kind.as_str() {
            "send" => self.send(&delivery).await,
            "push" => self.push(&delivery).await,
            other => Err(SendError::Rejected(format!(
                "unknown delivery kind `{other}`"
            ))),
        };
        let outcome = match result {
            Ok(provider_message_id) => AttemptOutcome::Sent {
                provider_message_id,
            },
            Err(error) if error.is_retryable() && attempts < self.settings.max_attempts => {
                let wait = self.backoff(attempts);
                tracing::warn!(
                    delivery_id = %delivery.id, attempts, code = error.code(), error = %error, retry_in_ms = wait,
                    "delivery failed, will retry"
                );
                AttemptOutcome::Retry {
                    code: error.code().to_owned(),
                    error: error.to_string(),
                    next_attempt_at: now_ms() + wait,
                }
            }
            Err(error) => {
                tracing::warn!(delivery_id = %delivery.id, attempts, code = error.code(), error = %error, "delivery failed");
                AttemptOutcome::Failed {
                    code: error.code().to_owned(),
                    error: error.to_string(),
                }
            }
        };
        self.metrics.delivery(match &outcome {
            AttemptOutcome::Sent { .. } => "sent",
            AttemptOutcome::Retry { .. } => "retry",
            AttemptOutcome::Failed { .. } => "failed",
        });
        match self.store.finish_attempt(&delivery.id, &outcome).await {
            Ok(Some(updated)) => {
                if updated.state == "sent" {
                    tracing::info!(delivery_id = %updated.id, attempts, "delivered");
                }
                self.publish_delivery(&updated);
            }
            Ok(None) => {}
            Err(error) => {
                tracing::error!(delivery_id = %delivery.id, error = %error, "cannot record delivery attempt")
            }
        }
    }

    /// How long a claim lasts, in ms.
    pub(super) fn lease_ms(&self) -> i64 {
        i64::try_from(self.settings.lease_ms).unwrap_or(60_000)
    }

    /// Exponential backoff with a little jitter: base, 2·base, 4·base... up to the maximum.
    fn backoff(&self, attempts: i64) -> i64 {
        let base = self.settings.retry_base_ms.max(1) as f64;
        let exponent = (attempts - 1).clamp(0, 30) as i32;
        let wait = (base * 2f64.powi(exponent)).min(self.settings.retry_max_ms.max(1) as f64);
        let jitter = 1.0 + rand::random::<f64>() * 0.2;
        (wait * jitter) as i64
    }

    async fn send(&self, delivery: &Delivery) -> Result<Option<String>, SendError> {
        let sender = self
            .sender(&delivery.tenant_id, &delivery.channel, &delivery.app)
            .await?;
        let channel = ChannelKind::parse(&delivery.channel).ok_or_else(|| {
            SendError::Rejected(format!("unknown channel `{}`", delivery.channel))
        })?;
        let message = OutboundMessage {
            channel,
            app: Some(delivery.app.clone()),
            external_user_id: delivery.recipient.clone(),
            text: delivery.text.clone(),
        };
        let context = match &delivery.reply_context {
            Some(text) => Some(ReplyContext(serde_json::from_str(text).map_err(|_| {
                SendError::Rejected("stored reply context is invalid".into())
            })?)),
            None => None,
        };
        self.send_parts(delivery, sender.as_ref(), &message, context.as_ref())
            .await
    }

    /// The app's sender, built once per configuration version (its token cache lives with it).
    pub(super) async fn sender(
        &self,
        tenant: &str,
        kind: &str,
        app: &str,
    ) -> Result<Arc<dyn ChannelSender>, SendError> {
        let config = self
            .store
            .channel_app(tenant, kind, app)
            .await
            .map_err(|error| SendError::Network(format!("store: {error}")))?
            .ok_or_else(|| {
                SendError::Credentials(format!("the {kind} app `{app}` is not configured"))
            })?;
        let key = (tenant.to_owned(), kind.to_owned(), app.to_owned());
        let version = config.app.updated_at;
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built, sender)) = senders.get(&key) {
            if *built == version {
                return Ok(sender.clone());
            }
        }
        let timeout = Duration::from_millis(self.settings.send_timeout_ms);
        let sender: Arc<dyn ChannelSender> = match ChannelKind::parse(kind) {
            Some(ChannelKind::Wechat) => {
                let mut sender_config =
                    WechatSenderConfig::new(config.field("appid"), config.secret("appsecret"))
                        .with_base_url(self.settings.wechat_base_url.clone());
                sender_config.timeout = timeout;
                Arc::new(WechatSender::new(sender_config))
            }
            Some(ChannelKind::Douyin) => {
                let mut sender_config = DouyinSenderConfig::new(
                    config.field("client_key"),
                    config.secret("client_secret"),
                )
                .with_base_url(self.settings.douyin_base_url.clone());
                sender_config.timeout = timeout;
                Arc::new(DouyinSender::new(sender_config))
            }
            _ => {
                return Err(SendError::Rejected(format!(
                    "channel `{kind}` has no send api"
                )))
            }
        };
        senders.insert(key, (version, sender.clone()));
        Ok(sender)
    }

    /// Calls the tenant's push hook for a reply to an app user who is offline. The body is signed
    /// with the tenant's mobile secret: `x-switchboard-signature: sha256=<hex hmac of the body>`.
    async fn push(&self, delivery: &Delivery) -> Result<Option<String>, SendError> {
        let config = self
            .store
            .channel_app(
                &delivery.tenant_id,
                ChannelKind::Mobile.as_str(),
                &delivery.app,
            )
            .await
            .map_err(|error| SendError::Network(format!("store: {error}")))?
            .ok_or_else(|| {
                SendError::Credentials(format!(
                    "the mobile app `{}` is not configured",
                    delivery.app
                ))
            })?;
        let url = config.secret("push_url");
        if url.is_empty() {
            return Err(SendError::Rejected(
                "the mobile app has no push hook".into(),
            ));
        }
        // Checked at every call, after resolution: the stored URL may predate the rules, and a
        // name may resolve elsewhere by now. The client checks again what it connects to.
        let policy = self.settings.push_policy();
        if let Err(error) = check_destination(&url, policy).await {
            tracing::warn!(
                tenant = %delivery.tenant_id, app = %delivery.app, code = error.code(),
                "push hook destination refused"
            );
            return Err(match error {
                DestinationError::Unresolved => SendError::PushFailed { retryable: true },
                _ => SendError::PushDestinationRefused,
            });
        }
        let body = serde_json::json!({
            "tenant": delivery.tenant_id,
            "app": delivery.app,
            "user_id": delivery.recipient,
            "conversation_id": delivery.conversation_id,
            "seq": delivery.seq,
            "sender": delivery.sender,
            "text": delivery.text,
        })
        .to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(config.secret("jwt_secret").as_bytes())
            .map_err(|_| SendError::Credentials("mobile secret is unusable".into()))?;
        mac.update(body.as_bytes());
        let signature: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        // What the tenant sees is `sent` or `push_failed` / `push_destination_refused` with a
        // fixed message: never the remote's status or body, so the delivery state is no oracle
        // on what answered. The status goes to the operator's log (the URL never: it may carry
        // credentials).
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-switchboard-signature", format!("sha256={signature}"))
            .body(body)
            .send()
            .await
            .map_err(|error| {
                tracing::warn!(
                    tenant = %delivery.tenant_id, app = %delivery.app, timed_out = error.is_timeout(),
                    "push hook call failed"
                );
                SendError::PushFailed { retryable: true }
            })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(None),
            _ => {
                tracing::warn!(
                    tenant = %delivery.tenant_id, app = %delivery.app, status,
                    "push hook answered with a failure (redirects are not followed)"
                );
                Err(SendError::PushFailed {
                    retryable: status == 429 || (500..=599).contains(&status),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_in_a_flood_cost_one_recovery_scan_a_second() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut recovery = Recovery::scanned(start);
        assert!(!recovery.due(at(5000)), "no lag, no scan");
        recovery.lagged();
        recovery.lagged();
        assert!(
            recovery.due(at(5000)),
            "a lag long after the last scan: at once"
        );
        assert!(
            !recovery.due(at(5001)),
            "one scan covers every lag before it"
        );
        for ms in [5100, 5400, 5900] {
            recovery.lagged();
            assert!(!recovery.due(at(ms)), "lagging again within the second");
        }
        assert!(recovery.due(at(6000)), "then one scan for all of them");
        assert!(!recovery.due(at(9000)), "and none without a new lag");
    }
}
