//! # switchboard-gateway
//!
//! The edge, and the one binary `switchboard`: the HTTP and WebSocket surface (axum), customer
//! and agent sessions, the webhooks, the pages, settings and the CLI. It wires the engine
//! (`switchboard-engine`) over the store (`switchboard-store`) in [`Server::start`], the one way
//! to start everything. No other crate depends on it.
//!
//! Layout:
//! - [`config`]: typed settings (file, `SWITCHBOARD__*` environment, flags).
//! - [`error`]: the one map from the engine's errors to HTTP answers.
//! - [`session`]: one live connection (customer or agent), transport-free.
//! - `http`: routes, per area (web channel, agent, admin, knowledge, intents, policies, channel
//!   apps, webhooks, mobile apps, metrics, pages).
//! - [`demo`]: tenant creation and the first-run demo tenant.
//!
//! Tests start the real server with [`Server::start`] on port 0, or call [`app`] directly.

pub mod config;
pub mod demo;
pub mod error;
mod http;
pub mod session;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;

use engine::bot_runtime::BotRuntime;
use engine::bus::Bus;
use engine::chat::{self, Chat};
use engine::cluster::Cluster;
use engine::intents::Intents;
use engine::outbound::Outbound;
use engine::policy::Policies;
use engine::{kb, limits};
use store::crypto::{FieldCipher, SecretKey, TokenSigner};
use store::Store;

use crate::config::Settings;

pub use crate::http::add_member;
pub use crate::http::connections::PER_VISITOR as PER_VISITOR_CONNECTIONS;
pub use crate::http::{agent_token, UPLOADS_AT_ONCE};

/// Events buffered per bus topic before a slow subscriber lags (and catches up from the store).
const BUS_TOPIC_CAPACITY: usize = 32;

/// Cheap handles shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub bus: Arc<dyn Bus>,
    pub chat: Arc<Chat>,
    pub knowledge: Arc<kb::Knowledge>,
    pub signer: TokenSigner,
    /// Replies to WeChat, Douyin and mobile apps: senders, the outbox worker.
    pub outbound: Arc<Outbound>,
    /// Slots for large uploads read at once (`http::upload`).
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// Live customer connections per visitor (`http::connections`).
    pub connections: Arc<http::connections::Connections>,
    /// Slots for password hashes computed at once (console sign-ins, `http::members`).
    pub password_checks: Arc<tokio::sync::Semaphore>,
}

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    http::router(state)
}

/// The two keys the node needs, from settings or, on a single node, generated once into the
/// data directory (readable by the owner only). A key the file lacks is generated and written
/// into it, so it stays the same across restarts. A cluster node (with `redis_url`) must be
/// given both keys: keys generated on one node would not verify or decrypt on another.
pub fn load_keys(settings: &Settings) -> anyhow::Result<(SecretKey, SecretKey)> {
    if let (Some(signing), Some(encryption)) = (
        &settings.secrets.signing_key,
        &settings.secrets.encryption_key,
    ) {
        return Ok((signing.clone(), encryption.clone()));
    }
    if settings.redis_url.is_some() {
        anyhow::bail!(
            "a cluster node (redis_url set) needs [secrets] signing_key and encryption_key, the same on every node"
        );
    }
    let path = settings.data_dir.join("secrets.json");
    let stored: Option<serde_json::Value> = match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid json", path.display()))?,
        ),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    };
    let read = |name: &str| -> anyhow::Result<Option<SecretKey>> {
        match stored
            .as_ref()
            .and_then(|value| value.get(name))
            .and_then(|value| value.as_str())
        {
            Some(text) => {
                Ok(Some(SecretKey::from_base64(text).map_err(|e| {
                    anyhow::anyhow!("{}: {name}: {e}", path.display())
                })?))
            }
            None => Ok(None),
        }
    };
    let (stored_signing, stored_encryption) = (read("signing_key")?, read("encryption_key")?);
    let complete = stored_signing.is_some() && stored_encryption.is_some();
    let signing = stored_signing.unwrap_or_else(SecretKey::generate);
    let encryption = stored_encryption.unwrap_or_else(SecretKey::generate);
    if !complete {
        write_private(
            &path,
            &serde_json::json!({ "signing_key": signing.to_base64(), "encryption_key": encryption.to_base64() }).to_string(),
        )?;
    }
    Ok((
        settings.secrets.signing_key.clone().unwrap_or(signing),
        settings
            .secrets
            .encryption_key
            .clone()
            .unwrap_or(encryption),
    ))
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Opens the store named by the settings (creating the data directory) and migrates it.
pub async fn open_store(settings: &Settings) -> anyhow::Result<(Store, TokenSigner)> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create data dir {}", settings.data_dir.display()))?;
    let (signing, encryption) = load_keys(settings)?;
    let store = Store::connect_with(
        &settings.database_url(),
        FieldCipher::new(&encryption),
        store::StoreOptions {
            sqlite_synchronous: settings.sqlite_synchronous,
            ack_flush_ms: settings.ack_flush_ms,
        },
    )
    .await
    .context("cannot open the store")?;
    store.migrate().await.context("cannot migrate the store")?;
    Ok((store, TokenSigner::new(signing)))
}

/// The services over the store that the server runs and that CLI commands use on their own:
/// opened one way for both.
pub struct Services {
    pub store: Store,
    pub signer: TokenSigner,
    /// The knowledge base, this node's index brought up to date.
    pub knowledge: Arc<kb::Knowledge>,
    pub policies: Arc<Policies>,
    pub intents: Arc<Intents>,
    /// The bot (its models load on first use).
    pub bot: Arc<BotRuntime>,
}

/// How tenants' own classifiers run: a child process each, this binary's `model-worker` (or
/// the configured program), under the configured memory budget.
fn tenant_model_worker(
    bot: &engine::bot_workers::BotRunSettings,
) -> anyhow::Result<engine::intents::WorkerConfig> {
    let program = match &bot.tenant_model_worker {
        Some(program) => program.clone(),
        None => std::env::current_exe().context("cannot find this executable")?,
    };
    let mut worker = engine::intents::WorkerConfig::new(program, bot.tenant_model_memory_mb.max(1));
    worker.idle_for = Duration::from_secs(bot.tenant_model_idle_secs.max(1));
    Ok(worker)
}

impl Services {
    /// Opens and migrates the store, and the services over it.
    pub async fn open(settings: &Settings) -> anyhow::Result<Services> {
        let (store, signer) = open_store(settings).await?;
        let knowledge = kb::Knowledge::open(store.clone(), &settings.data_dir.join("kb"))?;
        knowledge
            .sync()
            .await
            .map_err(|error| anyhow::anyhow!("knowledge sync: {}", error.describe()))?;
        let policies = Policies::new(
            store.clone(),
            switchboard_policies::PolicyEngineConfig::default(),
        )?;
        let intents = Intents::new(
            store.clone(),
            &settings.data_dir.join("models"),
            tenant_model_worker(&settings.bot)?,
        );
        let bot = BotRuntime::new(
            store.clone(),
            knowledge.index().clone(),
            settings.llm.clone(),
        );
        Ok(Services {
            store,
            signer,
            knowledge,
            policies,
            intents,
            bot,
        })
    }
}

/// A running server: its address and a handle to stop it.
pub struct Server {
    pub addr: SocketAddr,
    /// Where `/metrics` is served when it has a listener of its own (`metrics_addr`).
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    metrics_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Opens the store, starts the chat service and serves on `settings.addr` (port 0 picks one).
    pub async fn start(mut settings: Settings) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(settings.addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.addr))?;
        let addr = listener.local_addr()?;
        // Links printed or built from the settings name the port really bound (port 0 picks one).
        settings.addr = addr;
        let metrics_listener = match settings.metrics_addr {
            Some(wanted) => {
                let listener = tokio::net::TcpListener::bind(wanted)
                    .await
                    .with_context(|| format!("cannot listen for metrics on {wanted}"))?;
                settings.metrics_addr = Some(listener.local_addr()?);
                Some(listener)
            }
            None => None,
        };
        let Services {
            store,
            signer,
            knowledge,
            policies,
            intents,
            bot,
        } = Services::open(&settings).await?;
        // Each topic's buffer is allocated whole per subscriber topic (an idle customer has
        // two): keep it small. A subscriber that lags reads what it missed from the store.
        let cluster = match &settings.redis_url {
            Some(url) => Cluster::redis(url, &settings.bus, BUS_TOPIC_CAPACITY)
                .await
                .context("cannot start the redis bus")?,
            None => Cluster::single_node(BUS_TOPIC_CAPACITY),
        };
        let bus: Arc<dyn Bus> = cluster.bus.clone();
        knowledge.start_sync_loop(Duration::from_secs(2));
        // The dense side follows the index from now on; with `preload` the models load now
        // (in the background), else on the first bot turn.
        bot.start_dense_sync(knowledge.follow_changes(), settings.bot.preload);
        let files = Arc::new(engine::files::Files::new(
            store.clone(),
            store::blobs::for_store(&store, &settings.data_dir),
            settings.data_dir.join("incoming"),
            signer.clone(),
        ));
        let chat = Chat::start(
            store.clone(),
            cluster,
            chat::ChatParts {
                files: files.clone(),
                knowledge: knowledge.clone(),
                policies,
                intents,
                bot,
                agent_grace: Duration::from_millis(settings.agent_grace_ms),
                bot_settings: settings.bot.clone(),
                limits: limits::RateLimits::new(settings.limits),
            },
        );
        chat.recover_orphans().await?;
        chat.recover_lost_turns(settings.recovery).await?;
        if settings.idle_close.bot_quiet_ms > 0 {
            chat.spawn_idle_sweep(
                settings.idle_close.bot_quiet_ms as i64,
                Duration::from_millis(settings.idle_close.sweep_every_ms.max(100)),
            );
        }
        chat.spawn_attachment_retention(Duration::from_secs(3600));
        // Idle rate-limit keys are forgotten now and then.
        let limits = Arc::downgrade(&chat.limits);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                let Some(limits) = limits.upgrade() else {
                    break;
                };
                limits.shrink();
            }
        });
        let outbound = Outbound::new(
            store.clone(),
            bus.clone(),
            chat.metrics.clone(),
            files,
            settings.channels.clone(),
        );
        engine::outbound::outbox::start(outbound.clone());
        let state = AppState {
            settings: Arc::new(settings),
            store,
            bus,
            chat,
            knowledge,
            signer,
            outbound,
            uploads: Arc::new(tokio::sync::Semaphore::new(http::UPLOADS_AT_ONCE)),
            connections: Arc::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(http::PASSWORD_CHECKS_AT_ONCE)),
        };
        let router = app(state.clone());
        let metrics_addr = state.settings.metrics_addr;
        let metrics_task = metrics_listener.map(|listener| {
            let router = http::metrics_router(state.clone());
            tracing::info!(addr = ?metrics_addr, "metrics listening");
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    router.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .await
            })
        });
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        // Chat frames are small: send them at once instead of waiting to coalesce (Nagle). A
        // peer that stops reading loses its connection (`http::stall`).
        let listener = http::StallListener::new(listener, http::WRITE_STALL_TIMEOUT);
        let listener = axum::serve::ListenerExt::tap_io(listener, |stream| {
            if let Err(error) = stream.get_ref().set_nodelay(true) {
                tracing::debug!(error = %error, "cannot set TCP_NODELAY");
            }
        });
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
        });
        tracing::info!(%addr, "listening");
        Ok(Server {
            addr,
            metrics_addr,
            state,
            shutdown: Some(shutdown),
            task,
            metrics_task,
        })
    }

    /// Waits until the server stops (it runs until `stop` or a fatal error).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await??;
        Ok(())
    }

    /// Stops accepting, lets open requests finish, and closes the store.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        // WebSockets stay open through a graceful shutdown; do not wait for them forever.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
        if let Some(metrics) = self.metrics_task.take() {
            metrics.abort();
        }
        if let Err(error) = self.state.chat.cluster.leave().await {
            tracing::warn!(error = %error, "cannot leave the redis bus");
        }
        self.state.store.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_in(dir: &Path) -> Settings {
        Settings {
            data_dir: dir.to_path_buf(),
            ..Settings::default()
        }
    }

    #[test]
    fn a_key_missing_from_the_secrets_file_is_written_once_not_regenerated() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings_in(dir.path());
        let (signing, _) = load_keys(&settings).expect("first start");
        // An older file with the signing key only.
        let path = dir.path().join("secrets.json");
        std::fs::write(
            &path,
            serde_json::json!({ "signing_key": signing.to_base64() }).to_string(),
        )
        .expect("write");
        let (signing_a, encryption_a) = load_keys(&settings).expect("second start");
        let (signing_b, encryption_b) = load_keys(&settings).expect("third start");
        assert_eq!(signing_a.to_base64(), signing.to_base64());
        assert_eq!(signing_b.to_base64(), signing.to_base64());
        assert_eq!(
            encryption_a.to_base64(),
            encryption_b.to_base64(),
            "the generated encryption key is kept, so contact fields stay readable"
        );
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        assert_eq!(written["encryption_key"], encryption_a.to_base64());
    }

    #[test]
    fn a_cluster_node_without_configured_secrets_refuses_to_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = settings_in(dir.path());
        settings.redis_url = Some("redis://127.0.0.1:6379".into());
        let error = load_keys(&settings).expect_err("no secrets in cluster mode");
        assert!(error.to_string().contains("cluster node"), "{error}");
        assert!(!dir.path().join("secrets.json").exists());
        settings.secrets.signing_key = Some(SecretKey::generate());
        settings.secrets.encryption_key = Some(SecretKey::generate());
        assert!(load_keys(&settings).is_ok());
    }
}
