//! Typed settings with defaults that run out of the box. Sources, later ones winning: an
//! optional TOML file, environment variables `SWITCHBOARD__<KEY>` (nested keys joined by `__`),
//! then command-line flags. Secrets never print.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use store::crypto::SecretKey;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// Local state: the SQLite file (when no database_url), generated secrets, indexes.
    pub data_dir: PathBuf,
    /// `postgres://...` or `sqlite://...`; unset means `sqlite://<data_dir>/switchboard.db`.
    pub database_url: Option<String>,
    /// SQLite's durability level: `full` (the default) syncs every commit to disk before a
    /// receipt is sent, so "stored before acknowledged" survives a power failure or an OS crash;
    /// `normal` (WAL) syncs only at checkpoints: faster on slow disks, and a process crash still
    /// loses nothing, but a power failure can lose the last acknowledged messages. Measured in
    /// docs/benchmarks.md. PostgreSQL ignores it.
    pub sqlite_synchronous: store::SqliteSynchronous,
    /// How often clients' read acks are written: the highest seq per conversation and side, all
    /// in one transaction, every `ack_flush_ms` (default 150) and when the server stops. 0 writes
    /// each ack as it arrives (slower under load: one `UPDATE` per ack).
    pub ack_flush_ms: u64,
    /// `redis://...`: cluster mode. Events cross nodes through a Redis stream; every node of
    /// a cluster needs the same PostgreSQL database, Redis and secrets.
    pub redis_url: Option<String>,
    /// `[bus] shards, shard_urls, linger_ms`: how cluster events are spread over Redis streams (see
    /// `engine::redis_bus::BusSettings`; the same on every node).
    pub bus: engine::redis_bus::BusSettings,
    /// How long an agent may be disconnected before their chats go back to the queue.
    pub agent_grace_ms: u64,
    /// How long `GET /v1/web/poll` holds a request when there is nothing new.
    pub poll_timeout_ms: u64,
    /// How long a small body of an anonymous route (the widget's JSON, webhook pushes) may take
    /// to arrive (`http::body`).
    pub body_timeout_ms: u64,
    /// Create the `demo` tenant, its agent and canned replies on first start.
    pub demo: bool,
    pub secrets: Secrets,
    pub log: LogSettings,
    /// WeChat, Douyin and mobile apps: provider base URLs, outbox retries.
    pub channels: engine::outbound::ChannelSettings,
    /// The bot's worker pool.
    pub bot: engine::bot_workers::BotRunSettings,
    /// Per-IP limits on session creation and webhooks.
    pub limits: engine::limits::IpLimits,
    /// `[recovery] window_ms, min_age_ms, max_conversations`: at start-up, conversations still
    /// with the bot whose newest message is a customer's (stored within `window_ms`, default 1 h)
    /// get the bot turn or human-first handoff a crash lost, once `min_age_ms` (default 30 s)
    /// after the message, once across nodes; at most `max_conversations` (10,000) per start.
    pub recovery: engine::chat::recovery::RecoverySettings,
    /// `[idle_close] bot_quiet_ms, sweep_every_ms`: conversations the bot keeps that have had no
    /// message for `bot_quiet_ms` (default 30 min; 0: never) are closed, so they count in the
    /// reports and get the rating survey; checked every `sweep_every_ms` (default 60 s).
    pub idle_close: engine::chat::episodes::IdleCloseSettings,
    /// An OpenAI-compatible endpoint the bot may use to phrase answers from the knowledge base
    /// (`[llm] base_url, model, api_key, timeout_ms`); off when unset.
    pub llm: Option<switchboard_bot::LlmSettings>,
    /// The bearer token a scraper sends for `GET /metrics` (which names tenants and their
    /// queues). Unset: only this machine (a loopback peer) may read it.
    pub metrics_token: Option<String>,
    /// A listener of its own for `GET /metrics` (e.g. `10.0.0.5:9100` on the private network),
    /// so the metrics never share the public port behind a proxy: with it set, the public port
    /// answers `/metrics` with 404, and this one serves it to any peer that can reach it (with
    /// `metrics_token` set, to those that bring the token).
    pub metrics_addr: Option<SocketAddr>,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client (IPs or
    /// CIDR blocks, a list or one comma-separated string). Empty (the default): the peer's
    /// address is the client's, and those headers are ignored (anyone can write them).
    pub trusted_proxies: TrustedProxies,
    /// Mark the operator console's session cookie `Secure` (sent over HTTPS only). Set it when
    /// the console is served over HTTPS (directly or behind a TLS-terminating proxy).
    pub secure_cookies: bool,
    /// A console session not used for this many minutes ends (the member signs in again), on
    /// top of its 12-hour lifetime; 0 turns the idle limit off. Every console request and the
    /// open live view count as use.
    pub console_idle_minutes: u32,
}

/// Networks of trusted reverse proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<(std::net::IpAddr, u8)>);

impl TrustedProxies {
    /// Parses `1.2.3.4`, `10.0.0.0/8`, `::1`, `fd00::/8`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<TrustedProxies, String> {
        let mut networks = Vec::new();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            let (address, bits) = match entry.split_once('/') {
                Some((address, bits)) => (address, Some(bits)),
                None => (entry, None),
            };
            let address: std::net::IpAddr = address.parse().map_err(|_| {
                format!("trusted proxy {entry:?} is not an IP address or CIDR block")
            })?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|bits| *bits <= max)
                    .ok_or_else(|| format!("trusted proxy {entry:?} has a bad prefix length"))?,
            };
            networks.push((address, bits));
        }
        Ok(TrustedProxies(networks))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` is one of the trusted proxies.
    pub fn contains(&self, address: std::net::IpAddr) -> bool {
        let address = canonical(address);
        self.0
            .iter()
            .any(|&(network, bits)| match (canonical(network), address) {
                (std::net::IpAddr::V4(net), std::net::IpAddr::V4(ip)) => {
                    prefix_eq(&net.octets(), &ip.octets(), bits)
                }
                (std::net::IpAddr::V6(net), std::net::IpAddr::V6(ip)) => {
                    prefix_eq(&net.octets(), &ip.octets(), bits)
                }
                _ => false,
            })
    }
}

/// An IPv4-mapped IPv6 address as IPv4.
fn canonical(address: std::net::IpAddr) -> std::net::IpAddr {
    match address {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(std::net::IpAddr::V4)
            .unwrap_or(address),
        v4 => v4,
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let whole = usize::from(bits / 8);
    let rest = bits % 8;
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || {
        let mask = 0xffu8 << (8 - rest);
        a[whole] & mask == b[whole] & mask
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Entries {
            List(Vec<String>),
            Joined(String),
        }
        let entries = match Entries::deserialize(deserializer)? {
            Entries::List(list) => list,
            Entries::Joined(text) => text.split(',').map(str::to_owned).collect(),
        };
        TrustedProxies::parse(&entries).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Secrets {
    /// Base64 of 32 bytes; signs visitor and agent tokens. Generated into the data dir if unset.
    /// Every node of a cluster needs the same value.
    #[serde(deserialize_with = "secret_opt")]
    pub signing_key: Option<SecretKey>,
    /// Base64 of 32 bytes; encrypts customer contact fields at rest. Generated if unset.
    #[serde(deserialize_with = "secret_opt")]
    pub encryption_key: Option<SecretKey>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `gateway=debug,info`.
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            sqlite_synchronous: store::SqliteSynchronous::Full,
            ack_flush_ms: 150,
            redis_url: None,
            bus: Default::default(),
            agent_grace_ms: 30_000,
            poll_timeout_ms: 25_000,
            body_timeout_ms: 20_000,
            demo: true,
            secrets: Secrets::default(),
            log: LogSettings::default(),
            channels: Default::default(),
            bot: Default::default(),
            limits: Default::default(),
            recovery: Default::default(),
            idle_close: Default::default(),
            llm: None,
            metrics_token: None,
            metrics_addr: None,
            trusted_proxies: TrustedProxies::default(),
            secure_cookies: false,
            console_idle_minutes: 120,
        }
    }
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SecretKey>, D::Error> {
    let text: Option<String> = Option::deserialize(deserializer)?;
    text.map(|text| SecretKey::from_base64(&text).map_err(serde::de::Error::custom))
        .transpose()
}

impl Settings {
    /// Loads settings from an optional file and the given environment (tests pass their own).
    pub fn load(file: Option<&Path>, env: &HashMap<String, String>) -> anyhow::Result<Settings> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    anyhow::anyhow!("cannot read config {}: {error}", path.display())
                })?;
                text.parse::<toml::Table>()
                    .map_err(|error| anyhow::anyhow!("config {}: {error}", path.display()))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in env {
            let Some(path) = name.strip_prefix("SWITCHBOARD__") else {
                continue;
            };
            let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            insert_path(&mut table, &keys, parse_scalar(value));
        }
        Settings::deserialize(toml::Value::Table(table))
            .map_err(|error| anyhow::anyhow!("invalid settings: {error}"))
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("switchboard.db").display()
            ),
        }
    }
}

/// An environment value as TOML would read it (numbers, booleans), else as a string.
fn parse_scalar(value: &str) -> toml::Value {
    if let Ok(number) = value.parse::<i64>() {
        return toml::Value::Integer(number);
    }
    match value {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value.to_owned()),
    }
}

fn insert_path(table: &mut toml::Table, keys: &[String], value: toml::Value) {
    match keys {
        [] => {}
        [last] => {
            table.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_env_overrides_and_unknown_keys() {
        let settings = Settings::load(None, &HashMap::new()).unwrap();
        assert_eq!(settings.addr.port(), 8080);
        assert_eq!(settings.database_url(), "sqlite://data/switchboard.db");

        let key = SecretKey::generate().to_base64();
        let env = HashMap::from([
            ("SWITCHBOARD__ADDR".to_owned(), "0.0.0.0:9000".to_owned()),
            ("SWITCHBOARD__AGENT_GRACE_MS".to_owned(), "500".to_owned()),
            ("SWITCHBOARD__BUS__SHARDS".to_owned(), "8".to_owned()),
            ("SWITCHBOARD__BUS__LINGER_MS".to_owned(), "2".to_owned()),
            ("SWITCHBOARD__SECRETS__SIGNING_KEY".to_owned(), key),
            ("OTHER".to_owned(), "ignored".to_owned()),
        ]);
        let settings = Settings::load(None, &env).unwrap();
        assert_eq!(settings.addr.port(), 9000);
        assert_eq!(settings.agent_grace_ms, 500);
        assert_eq!(settings.bus.shards, 8);
        assert_eq!(settings.bus.linger_ms, 2);
        assert!(settings.bus.shard_urls.is_empty());
        assert!(settings.secrets.signing_key.is_some());
        assert!(!format!("{settings:?}").contains(&env["SWITCHBOARD__SECRETS__SIGNING_KEY"]));

        let bad = HashMap::from([("SWITCHBOARD__NO_SUCH".to_owned(), "1".to_owned())]);
        assert!(Settings::load(None, &bad).is_err());
        let bad_key = HashMap::from([(
            "SWITCHBOARD__SECRETS__SIGNING_KEY".to_owned(),
            "short".to_owned(),
        )]);
        assert!(Settings::load(None, &bad_key).is_err());
    }
}
