//! The channels wired into the gateway: WeChat and Douyin webhooks, mobile apps, identity
//! linking, and durable outbound delivery. The protocol work (signatures, decryption, encoding,
//! provider calls) is the `switchboard-channels` crate's; this module owns routes, storage and
//! the outbox worker.
//!
//! Layout:
//! - this file: [`Channels`] (per-node state: one sender per app for its token cache, the mobile
//!   nonce store, which mobile customers are connected, the worker's wake-up), settings, and the
//!   hook [`message_published`] that `chat` calls for every stored message.
//! - `admin`: app configuration, identity links and the deliveries of a conversation.
//! - `webhooks`: `GET/POST /v1/channels/wechat/{tenant}/{app}`, `POST /v1/channels/douyin/{tenant}/{app}`.
//! - `mobile`: `/v1/mobile/ws` and the mobile history route.
//! - `outbox`: the worker that turns agent and bot messages into outbox rows and delivers them.
//!
//! ## Identities, conversations and replies
//! A channel identity is a customer whose `external_id` is `<app>:<provider user id>`, so the
//! same user id in two apps is two customers. Customers linked to one CRM id share the
//! conversation of the first one linked (the primary): every linked identity writes into it and
//! reads from it. Replies go to the conversation's route: the identity that last wrote through a
//! webhook or connected from the app (by default the conversation's own customer).

mod admin;
mod mobile;
mod outbox;
mod webhooks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use switchboard_channels::adapter::ChannelSender;
use switchboard_channels::mobile::{MemoryNonceStore, NonceStore};
use switchboard_channels::web::SenderKind;
use switchboard_channels::ChannelKind;

use crate::bus::{Bus, BusEvent};
use crate::chat::Chat;
use crate::error::ApiError;
use crate::store::channels::Delivery;
use crate::store::{MessageRecord, Store, StoreError};
use crate::AppState;

/// The bus topic every stored message is also published on, for the outbox worker.
pub const OUTBOUND_TOPIC: &str = "outbound";

/// Settings of the channels (`[channels]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelSettings {
    /// WeChat's API host; tests point it at a local fake.
    pub wechat_base_url: String,
    /// Douyin's open platform host.
    pub douyin_base_url: String,
    /// The first retry waits this long; each later one twice as long, up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// After this many attempts a retryable failure becomes a failed delivery (20 with the
    /// defaults: about an hour of retries).
    pub max_attempts: i64,
    /// How often the worker looks for due deliveries when nothing wakes it.
    pub poll_interval_ms: u64,
    /// How long a claimed delivery belongs to the worker that claimed it.
    pub lease_ms: u64,
    /// One provider or push-hook call may take this long.
    pub send_timeout_ms: u64,
    /// WeChat deliveries whose signed timestamp is further from now are refused (0: no check).
    pub wechat_max_timestamp_skew_secs: u64,
    /// Agent and bot messages this recent get their missing outbox rows at start-up.
    pub recovery_window_ms: i64,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        ChannelSettings {
            wechat_base_url: switchboard_channels::wechat::send::DEFAULT_BASE_URL.to_owned(),
            douyin_base_url: switchboard_channels::douyin::send::DEFAULT_BASE_URL.to_owned(),
            retry_base_ms: 2_000,
            retry_max_ms: 300_000,
            max_attempts: 20,
            poll_interval_ms: 1_000,
            lease_ms: 60_000,
            send_timeout_ms: 10_000,
            wechat_max_timestamp_skew_secs: 300,
            recovery_window_ms: 48 * 3600 * 1000,
        }
    }
}

type SenderKey = (String, String, String);

/// Per-node state of the channels. Cheap handles only; shared through [`AppState`].
pub struct Channels {
    store: Store,
    bus: Arc<dyn Bus>,
    settings: ChannelSettings,
    /// Mobile token nonces: in memory on one node, in Redis for a cluster (a token used on one
    /// node is a replay on the others).
    nonces: Arc<dyn NonceStore>,
    /// One sender per app and configuration version, so access tokens are cached and shared.
    senders: Mutex<HashMap<SenderKey, (i64, Arc<dyn ChannelSender>)>>,
    /// Open mobile connections per channel identity (customer id).
    online: Mutex<HashMap<String, usize>>,
    /// Wakes the delivery loop when a row was enqueued.
    wake: tokio::sync::Notify,
    /// Push-hook calls.
    http: reqwest::Client,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Channels {
    pub fn new(chat: &Chat, settings: ChannelSettings) -> Arc<Channels> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.send_timeout_ms))
            .build()
            .unwrap_or_default();
        Arc::new(Channels {
            store: chat.store.clone(),
            bus: chat.bus.clone(),
            settings,
            nonces: match &chat.cluster {
                Some(cluster) => cluster.clone(),
                None => Arc::new(MemoryNonceStore::default()),
            },
            senders: Mutex::new(HashMap::new()),
            online: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            http,
            metrics: chat.metrics.clone(),
        })
    }

    /// Starts the outbox worker: it enqueues deliveries for new agent and bot messages, resumes
    /// pending rows left by an earlier run, and retries with exponential backoff.
    pub fn start_worker(self: &Arc<Self>) {
        outbox::start(self.clone());
    }

    pub fn settings(&self) -> &ChannelSettings {
        &self.settings
    }

    fn is_online(&self, customer_id: &str) -> bool {
        self.online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(customer_id)
            .copied()
            .unwrap_or(0)
            > 0
    }

    fn connect(self: &Arc<Self>, customer_id: &str) -> OnlineGuard {
        *self
            .online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(customer_id.to_owned())
            .or_insert(0) += 1;
        OnlineGuard {
            channels: self.clone(),
            customer_id: customer_id.to_owned(),
        }
    }

    fn publish_delivery(&self, delivery: &Delivery) {
        self.bus.publish(
            &crate::bus::conversation_topic(&delivery.conversation_id),
            BusEvent::Delivery(Box::new(crate::bus::DeliveryEvent {
                conversation_id: delivery.conversation_id.clone(),
                seq: delivery.seq,
                kind: delivery.kind.clone(),
                state: delivery.state.clone(),
                code: delivery.code.clone(),
                attempts: delivery.attempts,
            })),
        );
    }
}

/// Counts one open mobile connection while it lives.
struct OnlineGuard {
    channels: Arc<Channels>,
    customer_id: String,
}

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        let mut online = self
            .channels
            .online
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = online.get_mut(&self.customer_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                online.remove(&self.customer_id);
            }
        }
    }
}

/// Called by `chat` after every stored message is published: the outbox worker picks agent and
/// bot messages up from this topic (and from the store after a restart or a lag). Customer and
/// system messages never leave through a channel, so they are not published here: under a
/// customer flood they would only push the worker behind.
pub fn message_published(bus: &dyn Bus, message: &Arc<MessageRecord>) {
    if matches!(message.sender, SenderKind::Agent | SenderKind::Bot) {
        bus.publish(OUTBOUND_TOPIC, BusEvent::Message(message.clone()));
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(admin::router())
        .merge(webhooks::router())
        .merge(mobile::router())
}

/// The channels' kinds that take an app configuration.
fn configurable_kind(kind: &str) -> Option<ChannelKind> {
    match ChannelKind::parse(kind) {
        Some(kind @ (ChannelKind::Wechat | ChannelKind::Douyin | ChannelKind::Mobile)) => {
            Some(kind)
        }
        _ => None,
    }
}

/// An app name: 1-64 of `A-Z a-z 0-9 _ -`.
fn is_valid_app_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The customer identity of a provider user in one app.
fn identity_external_id(app: &str, user: &str) -> String {
    format!("{app}:{user}")
}

/// An error answer with any status: `{"code", "message"}` like every other error.
#[derive(Debug)]
pub(crate) struct ChannelError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ChannelError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ChannelError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ChannelError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

impl From<ApiError> for ChannelError {
    fn from(error: ApiError) -> Self {
        if let ApiError::Internal(cause) = &error {
            tracing::error!(error = ?cause, "channel request failed");
        }
        ChannelError {
            status: error.status(),
            code: error.code(),
            message: error.to_string(),
        }
    }
}

impl From<StoreError> for ChannelError {
    fn from(error: StoreError) -> Self {
        ChannelError::from(ApiError::from(error))
    }
}

type ChannelResult<T> = Result<T, ChannelError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::LocalBus;

    fn said_by(sender: SenderKind, seq: i64) -> Arc<MessageRecord> {
        Arc::new(MessageRecord {
            conversation_id: "cv".into(),
            seq,
            sender,
            sender_id: None,
            text: "x".into(),
            client_msg_id: None,
            created_at: 0,
            meta: None,
        })
    }

    /// The outbox worker hears only what can leave through a channel: a customer flood never
    /// reaches its topic (where it would push the worker behind into recovery scans).
    #[test]
    fn only_agent_and_bot_messages_reach_the_outbox_topic() {
        let bus = LocalBus::new(16);
        let mut outbound = bus.subscribe(OUTBOUND_TOPIC);
        for (seq, sender) in [
            SenderKind::Customer,
            SenderKind::Agent,
            SenderKind::System,
            SenderKind::Bot,
        ]
        .into_iter()
        .enumerate()
        {
            message_published(&bus, &said_by(sender, seq as i64));
        }
        let mut heard = Vec::new();
        while let Ok(BusEvent::Message(message)) = outbound.try_recv() {
            heard.push(message.sender);
        }
        assert_eq!(heard, [SenderKind::Agent, SenderKind::Bot]);
    }
}
