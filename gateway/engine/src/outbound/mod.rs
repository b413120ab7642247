//! Outbound delivery to webhook channels and mobile apps: per-node state ([`Outbound`]: one
//! sender per app for its token cache, which mobile customers are connected, the worker's
//! wake-up) and the outbox worker ([`outbox::start`]) that turns agent and bot messages into outbox rows
//! and delivers them with retries. The protocol work (signatures, encoding, provider calls) is
//! the `switchboard-channels` crate's; the webhook routes that take messages in are the edge's.
//!
//! ## Identities, conversations and replies
//! A channel identity is a customer whose `external_id` is `<app>:<provider user id>`, so the
//! same user id in two apps is two customers. Customers linked to one CRM id share the
//! conversation of the first one linked (the primary): every linked identity writes into it and
//! reads from it. Replies go to the conversation's route: the identity that last wrote through a
//! webhook or connected from the app (by default the conversation's own customer).

pub mod media;
pub mod outbox;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use switchboard_channels::adapter::ChannelSender;
use switchboard_channels::outbound_guard::{guarded_client, DestinationPolicy};

use crate::bus::{Bus, BusEvent};
use crate::metrics::Metrics;
use store::apps::Delivery;
use store::Store;

/// Settings of outbound delivery and the webhooks (`[channels]` in the config file).
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
    /// Each push's signed (timestamp, nonce) is remembered this long (in Redis in cluster mode)
    /// and a second delivery with the same pair is refused (`401 replayed`); with 0, pairs are
    /// remembered for 300 s. Default 300.
    pub wechat_max_timestamp_skew_secs: u64,
    /// Douyin customer messages whose signed `content.create_time` is further from now than
    /// this, or missing, are refused (`401 stale_timestamp`), so a captured push cannot be
    /// replayed later (0: no check). Default 300, like WeChat's window.
    pub douyin_max_age_secs: u64,
    /// Accept `http://` push hooks (`push_url` of mobile apps). Default `false`: https only.
    /// For tests and private deployments.
    pub allow_http_push_urls: bool,
    /// Accept push hooks whose host is, or resolves to, a loopback, private, link-local or
    /// otherwise non-global address. Default `false`: such a push_url is refused when configured
    /// (IP literals, `localhost`) and every call resolves the host, checks every address and
    /// connects only to a checked one (`push_destination_refused` otherwise). For tests and
    /// private deployments whose app server is on the internal network.
    pub allow_private_push_hosts: bool,
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
            douyin_max_age_secs: 300,
            allow_http_push_urls: false,
            allow_private_push_hosts: false,
            recovery_window_ms: 48 * 3600 * 1000,
        }
    }
}

impl ChannelSettings {
    /// Where push hooks may point (see [`switchboard_channels::outbound_guard`]).
    pub fn push_policy(&self) -> DestinationPolicy {
        DestinationPolicy {
            allow_http: self.allow_http_push_urls,
            allow_private: self.allow_private_push_hosts,
        }
    }
}

type SenderKey = (String, String, String);

/// Per-node state of outbound delivery. Cheap handles only.
pub struct Outbound {
    store: Store,
    bus: Arc<dyn Bus>,
    settings: ChannelSettings,
    /// One sender per app and configuration version, so access tokens are cached and shared.
    senders: Mutex<HashMap<SenderKey, (i64, Arc<dyn ChannelSender>)>>,
    /// Open mobile connections per channel identity (customer id).
    online: Mutex<HashMap<String, usize>>,
    /// Wakes the delivery loop when a row was enqueued.
    wake: tokio::sync::Notify,
    /// Push-hook calls: checked DNS, no redirects, no proxy ([`guarded_client`]).
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    /// Attachments: read for providers' uploads, customers' media stored like uploads.
    files: Arc<crate::files::Files>,
    /// Provider pushes whose media is being fetched on this node (see the `media` module).
    inbound_in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Outbound {
    pub fn new(
        store: Store,
        bus: Arc<dyn Bus>,
        metrics: Arc<Metrics>,
        files: Arc<crate::files::Files>,
        settings: ChannelSettings,
    ) -> Arc<Outbound> {
        let http = guarded_client(
            Duration::from_millis(settings.send_timeout_ms),
            settings.push_policy(),
        );
        Arc::new(Outbound {
            store,
            bus,
            settings,
            senders: Mutex::new(HashMap::new()),
            online: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            http,
            metrics,
            files,
            inbound_in_flight: Arc::default(),
        })
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

    /// Counts a mobile connection of this customer until the guard drops (pushes go only to
    /// customers with none open).
    pub fn connect(self: &Arc<Self>, customer_id: &str) -> OnlineGuard {
        *self
            .online
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(customer_id.to_owned())
            .or_insert(0) += 1;
        OnlineGuard {
            outbound: self.clone(),
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
pub struct OnlineGuard {
    outbound: Arc<Outbound>,
    customer_id: String,
}

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        let mut online = self
            .outbound
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
