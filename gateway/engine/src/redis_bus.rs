//! The cluster bus on Redis Streams, sharded by conversation.
//!
//! - A conversation's events (`conv:<id>`: messages, typing, queue positions) go to one of
//!   `[bus] shards` streams, `switchboard:bus:shard:<n>`, chosen by a hash of the conversation
//!   id that every node computes the same way. The shards can live on several Redis servers
//!   (`[bus] shard_urls`, shard `n` on server `n % len`), so the bus is not one Redis's CPU.
//! - Everything else (agents' and customers' topics, the dispatcher's kicks, presence) is rare
//!   and goes to one control stream, `switchboard:bus:control`, on the node's own Redis; every
//!   node reads it.
//! - The outbox topic never leaves the node: the node that stored an agent's or bot's message
//!   writes its delivery row (other nodes would only repeat that write).
//!
//! A node reads only the shards of the conversations it has subscribers for: subscribing to a
//! conversation on a shard it does not follow joins that shard (its consumer group starts a
//! moment before the subscription, so nothing published meanwhile is missed), and a shard
//! without subscribers here for a few seconds is left. Each node reads through consumer groups
//! of its own (reading with `NOACK`: nothing is left pending); streams are trimmed; a node that falls behind or
//! misses an event catches up from the store, as every lagging subscriber does.
//!
//! Reads and writes are paced by traffic ([`BusSettings::linger_ms`], see `Pacer`), and replies
//! are read in place.
//!
//! The readers and writers run on a thread of their own (`switchboard-bus`), whose CPU time
//! is [`BusStats::cpu_seconds`]: what the bus costs a node, measured apart from the rest.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::bus::{Bus, BusEvent, LocalBus, OUTBOUND_TOPIC};

/// `[bus]`: how a cluster's events are spread over Redis streams. Every node of a cluster needs
/// the same settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusSettings {
    /// Streams the conversations are spread over (1 to 4,096). A node reads the shards of the
    /// conversations it serves, so with many more shards than conversations per node its bus
    /// work follows its own traffic, not the cluster's (docs/benchmarks.md); each followed
    /// shard costs a little per read.
    pub shards: usize,
    /// `redis://...` servers for the shards (shard `n` on `shard_urls[n % len]`); empty: the
    /// node's `redis_url`.
    pub shard_urls: Vec<String>,
    /// The longest a node lets events gather before its next Redis read or write, after one
    /// that carried few (0 to 50 ms; 0: no pacing): it waits about as long as its recent
    /// traffic says the rest of a full round takes, so its rounds follow its traffic, not the
    /// clock. The first event after a quiet spell goes at once; under steady traffic an event
    /// crosses nodes up to this much later on each side (docs/benchmarks.md).
    pub linger_ms: u64,
}

impl Default for BusSettings {
    fn default() -> Self {
        BusSettings {
            shards: 64,
            shard_urls: Vec::new(),
            linger_ms: DEFAULT_LINGER_MS,
        }
    }
}

/// What the bus did on this node, for `/metrics` and the node-scaling bench.
#[derive(Debug, Default)]
pub struct BusStats {
    cpu_nanos: AtomicU64,
    /// Events this node appended to the streams.
    pub written: AtomicU64,
    /// Events read back from the streams (this node's own included).
    pub read: AtomicU64,
    /// Reads (`XREADGROUP` calls that answered entries).
    pub reads: AtomicU64,
    /// Other nodes' events handed to a subscriber here.
    pub delivered: AtomicU64,
    /// Events not sent because Redis was out of reach and the queue was full.
    pub dropped: AtomicU64,
    /// Shards this node follows now.
    pub shards_followed: AtomicU64,
    /// Times this node joined a shard.
    pub joins: AtomicU64,
}

impl BusStats {
    /// CPU time of the bus thread (Linux; 0 elsewhere), sampled twice a second.
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }

    /// The Prometheus lines (`switchboard_bus_*`).
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP switchboard_bus_cpu_seconds_total CPU time of the bus thread (Redis reads and writes).");
        let _ = writeln!(out, "# TYPE switchboard_bus_cpu_seconds_total counter");
        let _ = writeln!(
            out,
            "switchboard_bus_cpu_seconds_total {}",
            self.cpu_seconds()
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_bus_events_total Bus events by what this node did with them."
        );
        let _ = writeln!(out, "# TYPE switchboard_bus_events_total counter");
        for (what, counter) in [
            ("written", &self.written),
            ("read", &self.read),
            ("delivered", &self.delivered),
            ("dropped", &self.dropped),
        ] {
            let _ = writeln!(
                out,
                "switchboard_bus_events_total{{what=\"{what}\"}} {}",
                count(counter)
            );
        }
        let _ = writeln!(
            out,
            "# HELP switchboard_bus_shards_followed Conversation shards this node reads."
        );
        let _ = writeln!(out, "# TYPE switchboard_bus_shards_followed gauge");
        let _ = writeln!(
            out,
            "switchboard_bus_shards_followed {}",
            count(&self.shards_followed)
        );
        let _ = writeln!(out, "# TYPE switchboard_bus_reads_total counter");
        let _ = writeln!(out, "switchboard_bus_reads_total {}", count(&self.reads));
        let _ = writeln!(out, "# TYPE switchboard_bus_shard_joins_total counter");
        let _ = writeln!(
            out,
            "switchboard_bus_shard_joins_total {}",
            count(&self.joins)
        );
    }
}

/// The control stream: events every node reads.
const CONTROL: &str = "switchboard:bus:control";
/// Entries kept in the control stream, and shared by the shards (each keeps its part, at least
/// [`MIN_SHARD_MAXLEN`]): a node that falls this far behind catches up from the store.
const STREAM_MAXLEN: usize = 100_000;
const MIN_SHARD_MAXLEN: usize = 10_000;
/// How far before "now" (Redis's clock) a joined shard is read from: events published
/// between a subscription and the join are read, not missed (a subscriber skips the seqs it
/// has).
const JOIN_REPLAY_MS: u64 = 2_000;
/// Sweeps (one a second) a followed shard may go without subscribers here before it is left.
const IDLE_SWEEPS: u8 = 5;
/// The most shards a cluster may have (each costs a stream name and a slot per node).
const MAX_SHARDS: usize = 4096;
/// Events waiting for Redis at most (per server); more are dropped and counted.
const MAX_PENDING: usize = 100_000;
/// Entries per stream per read.
const READ_COUNT: usize = 512;
/// The entries a read (or the events a write) aims for: after a round of fewer, the reader or
/// writer lingers (see [`Pacer`]).
const ROUND_TARGET: u64 = 16;
const DEFAULT_LINGER_MS: u64 = 5;
const MAX_LINGER_MS: u64 = 50;
/// How long a read waits for new entries (also the longest a new follow waits to be read).
const READ_BLOCK_MS: u64 = 100;

/// Where a topic's events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// This node only.
    Local,
    /// The control stream.
    Control,
    /// A conversation shard.
    Shard(usize),
}

fn route(topic: &str, shards: usize) -> Route {
    if topic == OUTBOUND_TOPIC {
        Route::Local
    } else if let Some(conversation) = topic.strip_prefix("conv:") {
        Route::Shard(shard_of(conversation, shards))
    } else {
        Route::Control
    }
}

/// The shard of a conversation: FNV-1a of its id (the same on every node and every build).
fn shard_of(conversation: &str, shards: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in conversation.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards.max(1) as u64) as usize
}

fn shard_stream(shard: usize) -> String {
    format!("switchboard:bus:shard:{shard}")
}

/// One Redis server of the bus: its writer's queue, and a connection for joining and leaving
/// shards.
struct Server {
    client: redis::Client,
    outgoing: mpsc::UnboundedSender<Outgoing>,
    pending: AtomicUsize,
    groups: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl Server {
    /// Runs `command` on the server's group connection (opened on first use, and again after
    /// an error).
    async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> redis::RedisResult<T> {
        let cached = self
            .groups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut connection = match cached {
            Some(connection) => connection,
            None => {
                let connection = self.client.get_multiplexed_async_connection().await?;
                *self.groups.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
                connection
            }
        };
        let result = command.query_async(&mut connection).await;
        if result.as_ref().is_err_and(|error| error.code().is_none()) {
            // Not an answer of the server's (BUSYGROUP and the like) but the connection's fault.
            *self.groups.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        result
    }
}

struct Outgoing {
    stream: Arc<str>,
    maxlen: usize,
    topic: String,
    event: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    No,
    Joining,
    Yes { idle_sweeps: u8 },
}

struct Shards {
    state: Vec<Follow>,
    /// Bumped whenever a shard starts or stops being read.
    generation: u64,
    /// Shards this node ever joined (their consumer groups are removed on a clean stop).
    joined: HashSet<usize>,
}

/// Several nodes: each event is delivered to this node's subscribers at once and appended to
/// its stream; every node reads the streams it follows through consumer groups of its own and
/// hands the others' events to its subscribers (see the module's documentation).
pub struct RedisBus {
    local: LocalBus,
    client: redis::Client,
    /// One multiplexed connection for commands (presence, limits), opened again after an error.
    commands: Mutex<Option<redis::aio::MultiplexedConnection>>,
    node: String,
    shard_count: usize,
    shard_maxlen: usize,
    /// `[bus] linger_ms`.
    linger: Duration,
    streams: Vec<Arc<str>>,
    control: Arc<str>,
    servers: Vec<Arc<Server>>,
    shards: Mutex<Shards>,
    stats: Arc<BusStats>,
    /// The bus thread's runtime; the thread ends when this bus is dropped.
    runtime: tokio::runtime::Handle,
    me: Weak<RedisBus>,
    /// Set by [`RedisBus::leave`]: the readers and the sweeper stop, and no shard is joined
    /// (a read after the groups are gone would make them again).
    left: std::sync::atomic::AtomicBool,
    _stop: oneshot::Sender<()>,
}

impl RedisBus {
    /// Connects, creates this node's consumer group on the control stream at its end, and
    /// starts the bus thread with its writers, readers and sweeper.
    pub async fn connect(
        url: &str,
        settings: &BusSettings,
        capacity: usize,
    ) -> anyhow::Result<Arc<RedisBus>> {
        anyhow::ensure!(
            (1..=MAX_SHARDS).contains(&settings.shards),
            "[bus] shards must be 1 to {MAX_SHARDS}, not {}",
            settings.shards
        );
        anyhow::ensure!(
            settings.linger_ms <= MAX_LINGER_MS,
            "[bus] linger_ms must be 0 to {MAX_LINGER_MS}, not {}",
            settings.linger_ms
        );
        let client = redis::Client::open(url).context("invalid redis url")?;
        let mut commands = client
            .get_multiplexed_async_connection()
            .await
            .context("cannot connect to redis")?;
        let node = store::util::new_id("node_");
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(CONTROL)
            .arg(&node)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut commands)
            .await
            .context("cannot create the consumer group")?;
        let shard_count = settings.shards;
        let mut servers = Vec::new();
        let mut clients = vec![client.clone()];
        for shard_url in &settings.shard_urls {
            clients.push(
                redis::Client::open(shard_url.as_str())
                    .with_context(|| format!("invalid bus shard url {shard_url}"))?,
            );
        }
        let (runtime, stop) = bus_thread()?;
        let mut queues = Vec::new();
        for client in clients {
            let (outgoing, queue) = mpsc::unbounded_channel();
            servers.push(Arc::new(Server {
                client,
                outgoing,
                pending: AtomicUsize::new(0),
                groups: Mutex::new(None),
            }));
            queues.push(queue);
        }
        let bus = Arc::new_cyclic(|me| RedisBus {
            local: LocalBus::new(capacity),
            client,
            commands: Mutex::new(Some(commands)),
            node,
            shard_count,
            shard_maxlen: (STREAM_MAXLEN / shard_count).max(MIN_SHARD_MAXLEN),
            linger: Duration::from_millis(settings.linger_ms),
            streams: (0..shard_count).map(|n| shard_stream(n).into()).collect(),
            control: CONTROL.into(),
            servers,
            shards: Mutex::new(Shards {
                state: vec![Follow::No; shard_count],
                generation: 0,
                joined: HashSet::new(),
            }),
            stats: Arc::new(BusStats::default()),
            runtime,
            me: me.clone(),
            left: Default::default(),
            _stop: stop,
        });
        for (index, queue) in queues.into_iter().enumerate() {
            let server = bus.servers[index].clone();
            let node = bus.node.clone();
            let stats = bus.stats.clone();
            let linger = bus.linger;
            bus.runtime
                .spawn(async move { write_loop(server, node, queue, stats, linger).await });
        }
        // A reader per server: server 0, the node's own Redis, holds the control stream (and
        // the shards when there are no shard servers).
        for server in 0..bus.servers.len() {
            let weak = Arc::downgrade(&bus);
            bus.runtime
                .spawn(async move { read_loop(weak, server).await });
        }
        let weak = Arc::downgrade(&bus);
        bus.runtime.spawn(async move { sweep_loop(weak).await });
        let stats = bus.stats.clone();
        bus.runtime.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                if let Some(nanos) = thread_cpu_nanos() {
                    stats.cpu_nanos.store(nanos, Ordering::Relaxed);
                }
            }
        });
        Ok(bus)
    }

    /// What the bus did on this node.
    pub fn stats(&self) -> &BusStats {
        &self.stats
    }

    /// The shard of `conversation`'s events.
    pub fn shard_of(&self, conversation: &str) -> usize {
        shard_of(conversation, self.shard_count)
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The server holding shard `shard`.
    fn server_of(&self, shard: usize) -> usize {
        if self.servers.len() > 1 {
            1 + shard % (self.servers.len() - 1)
        } else {
            0
        }
    }

    /// The `XREADGROUP` for the streams server `server` holds that this node follows, when they
    /// changed since generation `known`: the new generation and the command (`None` when the
    /// node follows none there). Built once per change, not per read.
    fn read_command(&self, server: usize, known: u64) -> Option<(u64, Option<redis::Cmd>)> {
        let shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        if shards.generation == known {
            return None;
        }
        let mut streams: Vec<&str> = Vec::new();
        if server == 0 {
            streams.push(&self.control);
        }
        for (shard, follow) in shards.state.iter().enumerate() {
            if matches!(follow, Follow::Yes { .. }) && self.server_of(shard) == server {
                streams.push(&self.streams[shard]);
            }
        }
        let command = (!streams.is_empty()).then(|| {
            let mut read = redis::cmd("XREADGROUP");
            read.arg("GROUP")
                .arg(&self.node)
                .arg("reader")
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(READ_BLOCK_MS)
                .arg("NOACK")
                .arg("STREAMS")
                .arg(&streams)
                .arg(vec![">"; streams.len()]);
            read
        });
        Some((shards.generation, command))
    }

    /// Starts following `shard` unless this node follows it or is joining it already.
    fn follow(&self, shard: usize) {
        if self.left.load(Ordering::Relaxed) {
            return;
        }
        {
            let mut shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
            if shards.state[shard] != Follow::No {
                return;
            }
            shards.state[shard] = Follow::Joining;
        }
        let bus = self.me.clone();
        self.runtime.spawn(async move {
            let Some(bus) = bus
                .upgrade()
                .filter(|bus| !bus.left.load(Ordering::Relaxed))
            else {
                return;
            };
            let joined = bus.join(shard).await;
            let mut shards = bus.shards.lock().unwrap_or_else(|p| p.into_inner());
            match joined {
                Ok(()) => {
                    shards.state[shard] = Follow::Yes { idle_sweeps: 0 };
                    shards.joined.insert(shard);
                    shards.generation += 1;
                    bus.stats.joins.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    // The sweep tries again while the shard has subscribers here.
                    tracing::warn!(shard, error = %error, "bus: cannot join a shard");
                    shards.state[shard] = Follow::No;
                }
            }
        });
    }

    /// Points this node's consumer group of `shard` a moment before now (creating it if need
    /// be): what was published since the subscription is read, an old backlog is not.
    async fn join(&self, shard: usize) -> anyhow::Result<()> {
        let server = &self.servers[self.server_of(shard)];
        let (seconds, micros): (u64, u64) = server.query(&redis::cmd("TIME")).await?;
        let from_ms = (seconds * 1000 + micros / 1000).saturating_sub(JOIN_REPLAY_MS);
        let from = format!("{from_ms}-0");
        let stream = &*self.streams[shard];
        let mut create = redis::cmd("XGROUP");
        create
            .arg("CREATE")
            .arg(stream)
            .arg(&self.node)
            .arg(&from)
            .arg("MKSTREAM");
        match server.query::<()>(&create).await {
            Ok(()) => Ok(()),
            Err(error) if error.code() == Some("BUSYGROUP") => {
                let mut set = redis::cmd("XGROUP");
                set.arg("SETID").arg(stream).arg(&self.node).arg(&from);
                server.query::<()>(&set).await?;
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Once a second: joins the shards with subscribers here that are not followed (a failed
    /// join), and leaves the shards without subscribers here for [`IDLE_SWEEPS`] sweeps.
    fn sweep(&self) {
        let mut live = vec![false; self.shard_count];
        self.local.live_topics(|topic| {
            if let Route::Shard(shard) = route(topic, self.shard_count) {
                live[shard] = true;
            }
        });
        let mut missing = Vec::new();
        {
            let mut shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
            let mut changed = false;
            for (shard, follow) in shards.state.iter_mut().enumerate() {
                match (*follow, live[shard]) {
                    (Follow::No, true) => missing.push(shard),
                    (Follow::Yes { .. }, true) => *follow = Follow::Yes { idle_sweeps: 0 },
                    (Follow::Yes { idle_sweeps }, false) if idle_sweeps + 1 >= IDLE_SWEEPS => {
                        *follow = Follow::No;
                        changed = true;
                    }
                    (Follow::Yes { idle_sweeps }, false) => {
                        *follow = Follow::Yes {
                            idle_sweeps: idle_sweeps + 1,
                        }
                    }
                    _ => {}
                }
            }
            if changed {
                shards.generation += 1;
            }
            let followed = shards
                .state
                .iter()
                .filter(|f| matches!(f, Follow::Yes { .. }))
                .count();
            self.stats
                .shards_followed
                .store(followed as u64, Ordering::Relaxed);
        }
        for shard in missing {
            self.follow(shard);
        }
    }

    /// After Redis lost this node's consumer groups (a restart without persistence): the
    /// control group is made again at the end, and the shards of `server` are joined again.
    async fn regroup(&self, server: usize, connection: &mut redis::aio::MultiplexedConnection) {
        if self.left.load(Ordering::Relaxed) {
            return;
        }
        if server == 0 {
            let made: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&*self.control)
                .arg(&self.node)
                .arg("$")
                .arg("MKSTREAM")
                .query_async(connection)
                .await;
            if let Some(error) = made
                .as_ref()
                .err()
                .filter(|e| e.code() != Some("BUSYGROUP"))
            {
                tracing::warn!(error = %error, "bus: cannot create the control group");
            }
        }
        let mut shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
        for shard in 0..self.shard_count {
            if self.server_of(shard) == server && matches!(shards.state[shard], Follow::Yes { .. })
            {
                shards.state[shard] = Follow::No;
            }
        }
        shards.generation += 1;
    }

    /// The shared command connection (a cheap clone), opened again if an earlier call failed.
    async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        if let Some(connection) = self
            .commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Ok(connection);
        }
        let connection = self.client.get_multiplexed_async_connection().await?;
        *self.commands.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// Runs `pipe` on the shared connection; an error drops it so the next call reconnects.
    async fn query<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> anyhow::Result<T> {
        let mut connection = self.connection().await?;
        match pipe.query_async(&mut connection).await {
            Ok(value) => Ok(value),
            Err(error) => {
                *self.commands.lock().unwrap_or_else(|p| p.into_inner()) = None;
                Err(error.into())
            }
        }
    }

    pub(crate) async fn mark_online(&self, agents: &[String], ttl: Duration) -> anyhow::Result<()> {
        if agents.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for agent in agents {
            pipe.cmd("SET")
                .arg(format!("switchboard:agent:{agent}"))
                .arg(&self.node)
                .arg("PX")
                .arg(ttl.as_millis() as u64)
                .ignore();
        }
        self.query::<()>(&pipe).await
    }

    pub(crate) async fn online(&self, agents: &[String]) -> anyhow::Result<Vec<bool>> {
        if agents.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for agent in agents {
            pipe.cmd("EXISTS").arg(format!("switchboard:agent:{agent}"));
        }
        let found: Vec<i64> = self.query(&pipe).await?;
        Ok(found.into_iter().map(|n| n > 0).collect())
    }

    pub(crate) async fn tenant_message(
        &self,
        tenant: &str,
        budget: u64,
    ) -> anyhow::Result<Result<(), u64>> {
        let now = store::util::now_ms();
        let second = now / 1000;
        let key = format!("switchboard:rate:{tenant}:{second}");
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(&key)
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(2_000);
        let (count, _): (u64, i64) = self.query(&pipe).await?;
        Ok(if count > budget {
            Err((1000 - now % 1000).max(1) as u64)
        } else {
            Ok(())
        })
    }

    /// Removes this node's consumer groups (on a clean stop; a crashed node's groups only cost
    /// a few bytes in Redis, as they never hold pending entries: reads are `NOACK`).
    pub async fn leave(&self) -> anyhow::Result<()> {
        self.left.store(true, Ordering::Relaxed);
        let mut pipe = redis::pipe();
        pipe.cmd("XGROUP")
            .arg("DESTROY")
            .arg(&*self.control)
            .arg(&self.node);
        self.query::<(i64,)>(&pipe).await?;
        let joined: Vec<usize> = {
            let shards = self.shards.lock().unwrap_or_else(|p| p.into_inner());
            shards.joined.iter().copied().collect()
        };
        for shard in joined {
            let mut destroy = redis::cmd("XGROUP");
            destroy
                .arg("DESTROY")
                .arg(&*self.streams[shard])
                .arg(&self.node);
            self.servers[self.server_of(shard)]
                .query::<i64>(&destroy)
                .await?;
        }
        Ok(())
    }

    /// Hands the others' events of a read to this node's subscribers, and answers how many
    /// entries it held. The reply is read in place: an entry of this node's own is skipped on
    /// its `node` field without copying anything. (Reads are `NOACK`: an entry read is done
    /// with, as a node never reads an entry twice; what it misses it reads from the store.)
    fn deliver_remote(&self, reply: &redis::Value) -> u64 {
        let mut read = 0;
        let mut delivered = 0;
        for_each_entry(reply, |fields| {
            read += 1;
            if field(fields, "node") == Some(self.node.as_bytes()) {
                return;
            }
            let topic = field(fields, "topic").and_then(|topic| std::str::from_utf8(topic).ok());
            let (Some(topic), Some(event)) = (topic, field(fields, "event")) else {
                return;
            };
            match serde_json::from_slice::<BusEvent>(event) {
                Ok(event) => delivered += u64::from(self.local.deliver(topic, event)),
                Err(error) => tracing::warn!(error = %error, "bus: unreadable event"),
            }
        });
        self.stats.read.fetch_add(read, Ordering::Relaxed);
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        self.stats.delivered.fetch_add(delivered, Ordering::Relaxed);
        read
    }
}

/// Calls `each` with the field list (`[name, value, ...]`) of every entry of an `XREADGROUP`
/// reply: `[[stream, [[id, fields], ...]], ...]` (a map of streams in RESP3).
fn for_each_entry(reply: &redis::Value, mut each: impl FnMut(&[redis::Value])) {
    use redis::Value;
    let mut entries_of = |entries: &Value| {
        let Value::Array(entries) = entries else {
            return;
        };
        for entry in entries {
            if let Value::Array(parts) = entry {
                if let Some(Value::Array(fields)) = parts.get(1) {
                    each(fields);
                }
            }
        }
    };
    match reply {
        Value::Array(streams) => {
            for stream in streams {
                if let Value::Array(parts) = stream {
                    if let Some(entries) = parts.get(1) {
                        entries_of(entries);
                    }
                }
            }
        }
        Value::Map(streams) => {
            for (_, entries) in streams {
                entries_of(entries);
            }
        }
        _ => {}
    }
}

/// The value of field `name` in an entry's field list.
fn field<'a>(fields: &'a [redis::Value], name: &str) -> Option<&'a [u8]> {
    fields.chunks_exact(2).find_map(|pair| match pair {
        [redis::Value::BulkString(key), redis::Value::BulkString(value)]
            if key.as_slice() == name.as_bytes() =>
        {
            Some(value.as_slice())
        }
        _ => None,
    })
}

/// A thread of its own with a single-threaded runtime for the bus's tasks; it stops when the
/// sender is dropped.
fn bus_thread() -> anyhow::Result<(tokio::runtime::Handle, oneshot::Sender<()>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the bus runtime")?;
    let handle = runtime.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("switchboard-bus".into())
        .spawn(move || {
            runtime.block_on(async {
                let _ = stopped.await;
            })
        })
        .context("cannot start the bus thread")?;
    Ok((handle, stop))
}

/// CPU time of the calling thread (Linux: `/proc/thread-self/schedstat`).
fn thread_cpu_nanos() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Everything queued for `server` since the last round goes out in one pipeline (rounds paced
/// by [`Pacer`]).
async fn write_loop(
    server: Arc<Server>,
    node: String,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    stats: Arc<BusStats>,
    linger: Duration,
) {
    let mut writer = None;
    let mut batch = Vec::new();
    let mut pacer = Pacer::new(linger);
    while let Some(first) = queue.recv().await {
        batch.push(first);
        while batch.len() < 4096 {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        server.pending.fetch_sub(batch.len(), Ordering::Relaxed);
        let mut pipe = redis::pipe();
        for outgoing in &batch {
            pipe.cmd("XADD")
                .arg(&*outgoing.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(outgoing.maxlen)
                .arg("*")
                .arg("node")
                .arg(&node)
                .arg("topic")
                .arg(&outgoing.topic)
                .arg("event")
                .arg(&outgoing.event)
                .ignore();
        }
        if writer.is_none() {
            match server.client.get_multiplexed_async_connection().await {
                Ok(connection) => writer = Some(connection),
                Err(error) => {
                    tracing::warn!(error = %error, "bus: cannot reach redis to append");
                    batch.clear();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        let Some(connection) = writer.as_mut() else {
            continue;
        };
        match pipe.query_async::<()>(connection).await {
            Ok(()) => {
                stats
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(error = %error, "bus: cannot append to a redis stream");
                writer = None;
            }
        }
        let sent = batch.len() as u64;
        batch.clear();
        if let Some(wait) = pacer.after_round(sent, Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Reads the streams `server` holds that this node follows, until the bus is dropped.
async fn read_loop(bus: Weak<RedisBus>, server: usize) {
    let mut pacer = match bus.upgrade() {
        Some(bus) => Pacer::new(bus.linger),
        None => return,
    };
    let mut reader = None;
    let mut read: Option<redis::Cmd> = None;
    let mut generation = u64::MAX;
    loop {
        let Some(bus) = bus
            .upgrade()
            .filter(|bus| !bus.left.load(Ordering::Relaxed))
        else {
            break;
        };
        if reader.is_none() {
            match bus.servers[server]
                .client
                .get_multiplexed_async_connection()
                .await
            {
                Ok(mut connection) => {
                    // A read blocks up to READ_BLOCK_MS: allow far more for its reply.
                    connection.set_response_timeout(Duration::from_secs(5));
                    reader = Some(connection);
                }
                Err(error) => {
                    tracing::warn!(error = %error, "bus: cannot reach redis");
                    drop(bus);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            }
        }
        let Some(connection) = reader.as_mut() else {
            continue;
        };
        if let Some((now, command)) = bus.read_command(server, generation) {
            generation = now;
            read = command;
        }
        let Some(read) = read.as_ref() else {
            drop(bus);
            tokio::time::sleep(Duration::from_millis(READ_BLOCK_MS)).await;
            continue;
        };
        let result: redis::RedisResult<redis::Value> = read.query_async(connection).await;
        match result {
            Ok(redis::Value::Nil) => {}
            Ok(reply) => {
                let entries = bus.deliver_remote(&reply);
                if let Some(wait) = pacer.after_round(entries, Instant::now()) {
                    drop(bus);
                    tokio::time::sleep(wait).await;
                }
            }
            Err(error) if error.code() == Some("NOGROUP") => {
                tracing::warn!("bus: redis lost this node's consumer groups; joining again");
                bus.regroup(server, connection).await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "bus: cannot read the redis streams");
                reader = None;
                drop(bus);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Spaces a reader's reads, or a writer's pipelines, by the traffic it sees. Each round has a
/// fixed cost (system calls on both ends, a reply to parse, every followed stream named), so a
/// node whose rounds carry an event or two pays it per message; and rounds that go as soon as
/// anything is there come at a rate set by the clock, not by the node's traffic. After a round
/// of fewer than [`ROUND_TARGET`] events the loop waits as long as the recent rate says the
/// rest take to arrive, at most `linger`. The wait comes after a round, never before one: the
/// first event after a quiet spell goes at once.
struct Pacer {
    linger: Duration,
    /// Entries a second, a moving average over reads.
    rate: f64,
    last: Option<Instant>,
}

impl Pacer {
    fn new(linger: Duration) -> Self {
        Pacer {
            linger,
            rate: 0.0,
            last: None,
        }
    }

    /// How long to wait before the next read, after one that found `entries` at `now`.
    fn after_round(&mut self, entries: u64, now: Instant) -> Option<Duration> {
        if let Some(last) = self.last.replace(now) {
            let seconds = now.saturating_duration_since(last).as_secs_f64().max(1e-4);
            let sample = entries as f64 / seconds;
            self.rate = if self.rate == 0.0 {
                sample
            } else {
                0.75 * self.rate + 0.25 * sample
            };
        }
        if entries >= ROUND_TARGET || self.linger.is_zero() {
            return None;
        }
        let wanted = (ROUND_TARGET - entries) as f64 / self.rate;
        let wait = if wanted < self.linger.as_secs_f64() {
            Duration::from_secs_f64(wanted)
        } else {
            self.linger
        };
        // Shorter than the timer's tick: read again at once.
        (wait >= Duration::from_micros(500)).then_some(wait)
    }
}

async fn sweep_loop(bus: Weak<RedisBus>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(bus) = bus
            .upgrade()
            .filter(|bus| !bus.left.load(Ordering::Relaxed))
        else {
            break;
        };
        bus.sweep();
    }
}

/// Mobile token nonces for the whole cluster: a token accepted by one node is a replay on every
/// other (`SET NX` until the token's window closes). Without Redis a nonce cannot be checked, and
/// the token is refused (the caller answers "try again later") rather than risk a replay.
impl switchboard_channels::mobile::NonceStore for RedisBus {
    fn remember<'a>(
        &'a self,
        key: &'a str,
        _now_unix: i64,
        remember_until: i64,
    ) -> switchboard_channels::mobile::NonceFuture<'a> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("SET")
                .arg(format!("switchboard:nonce:{key}"))
                .arg(1)
                .arg("NX")
                .arg("EXAT")
                .arg(remember_until);
            let (set,): (Option<String>,) = self.query(&pipe).await.map_err(|error| {
                switchboard_channels::mobile::NonceStoreError::Unavailable(error.to_string())
            })?;
            Ok(set.is_some())
        })
    }

    fn forget<'a>(&'a self, key: &'a str) -> switchboard_channels::mobile::ForgetFuture<'a> {
        Box::pin(async move {
            let mut pipe = redis::pipe();
            pipe.cmd("DEL").arg(format!("switchboard:nonce:{key}"));
            let (_,): (i64,) = self.query(&pipe).await.map_err(|error| {
                switchboard_channels::mobile::NonceStoreError::Unavailable(error.to_string())
            })?;
            Ok(())
        })
    }
}

impl Bus for RedisBus {
    fn publish(&self, topic: &str, event: BusEvent) {
        let (server, stream, maxlen) = match route(topic, self.shard_count) {
            Route::Local => {
                self.local.deliver(topic, event);
                return;
            }
            Route::Control => (0, self.control.clone(), STREAM_MAXLEN),
            Route::Shard(shard) => (
                self.server_of(shard),
                self.streams[shard].clone(),
                self.shard_maxlen,
            ),
        };
        let server = &self.servers[server];
        if server.pending.load(Ordering::Relaxed) >= MAX_PENDING {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        } else if let Ok(json) = serde_json::to_string(&event) {
            server.pending.fetch_add(1, Ordering::Relaxed);
            let outgoing = Outgoing {
                stream,
                maxlen,
                topic: topic.to_owned(),
                event: json,
            };
            if server.outgoing.send(outgoing).is_err() {
                server.pending.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.local.deliver(topic, event);
    }

    fn subscribe(&self, topic: &str) -> broadcast::Receiver<BusEvent> {
        let receiver = self.local.subscribe(topic);
        if let Route::Shard(shard) = route(topic, self.shard_count) {
            self.follow(shard);
        }
        receiver
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::CLUSTER_TOPIC;

    #[tokio::test]
    async fn settings_out_of_range_are_refused_before_connecting() {
        let shards = |shards| BusSettings {
            shards,
            ..BusSettings::default()
        };
        let linger = |linger_ms| BusSettings {
            linger_ms,
            ..BusSettings::default()
        };
        for (settings, named) in [
            (shards(0), "[bus] shards"),
            (shards(MAX_SHARDS + 1), "[bus] shards"),
            (linger(MAX_LINGER_MS + 1), "[bus] linger_ms"),
        ] {
            // Nothing listens on port 1: the settings are refused before any connection.
            let refused = RedisBus::connect("redis://127.0.0.1:1", &settings, 4)
                .await
                .err()
                .map(|error| error.to_string());
            assert!(
                refused.as_deref().is_some_and(|text| text.contains(named)),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn entries_are_read_in_place_from_both_reply_shapes() {
        use redis::Value;
        let text = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let entry = |id: &str, node: &str, topic: &str| {
            Value::Array(vec![
                text(id),
                Value::Array(vec![
                    text("node"),
                    text(node),
                    text("topic"),
                    text(topic),
                    text("event"),
                    text("{}"),
                ]),
            ])
        };
        let entries = Value::Array(vec![
            entry("1-0", "n1", "conv:a"),
            entry("2-0", "n2", "conv:b"),
        ]);
        let resp2 = Value::Array(vec![
            Value::Array(vec![text("switchboard:bus:shard:1"), entries.clone()]),
            Value::Array(vec![
                text("switchboard:bus:control"),
                Value::Array(vec![entry("3-0", "n1", "kick")]),
            ]),
        ]);
        let resp3 = Value::Map(vec![(text("switchboard:bus:shard:1"), entries)]);
        let seen = |reply: &Value| {
            let mut seen = Vec::new();
            for_each_entry(reply, |fields| {
                let node = field(fields, "node").map(|n| String::from_utf8_lossy(n).into_owned());
                let topic = field(fields, "topic").map(|t| String::from_utf8_lossy(t).into_owned());
                seen.push((node, topic, field(fields, "missing").is_none()));
            });
            seen
        };
        let some = |text: &str| Some(text.to_owned());
        assert_eq!(
            seen(&resp2),
            vec![
                (some("n1"), some("conv:a"), true),
                (some("n2"), some("conv:b"), true),
                (some("n1"), some("kick"), true),
            ]
        );
        assert_eq!(seen(&resp3).len(), 2);
        // Anything else (a timeout's nil, a malformed entry) yields nothing, and no panic.
        assert!(seen(&Value::Nil).is_empty());
        assert!(seen(&Value::Array(vec![
            Value::Array(vec![text("s")]),
            Value::Int(3)
        ]))
        .is_empty());
        let odd = [text("node"), text("n1"), text("topic")];
        assert_eq!(field(&odd, "topic"), None);
    }

    #[test]
    fn a_reader_lingers_by_its_traffic_and_never_past_the_setting() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let linger = Duration::from_millis(5);
        // A full read: read again at once.
        let mut pacer = Pacer::new(linger);
        assert_eq!(pacer.after_round(ROUND_TARGET, at(0)), None);
        // Busy: 4 entries a millisecond, so the 12 missing take 3 ms.
        let wait = pacer.after_round(4, at(1)).expect("a wait");
        assert!(wait.abs_diff(Duration::from_millis(3)) < Duration::from_micros(1));
        // Quiet: one entry after a long wait lingers the most, not longer.
        let mut quiet = Pacer::new(linger);
        quiet.after_round(1, at(0));
        assert_eq!(quiet.after_round(1, at(2_000)), Some(linger));
        // The first read knows no rate yet: it lingers the most.
        assert_eq!(Pacer::new(linger).after_round(1, at(0)), Some(linger));
        // Very busy, a little short of the target: shorter than a timer tick, no wait.
        let mut busy = Pacer::new(linger);
        busy.after_round(ROUND_TARGET - 1, at(0));
        assert_eq!(busy.after_round(ROUND_TARGET - 1, at(1)), None);
        // `linger_ms = 0`: never waits.
        let mut off = Pacer::new(Duration::ZERO);
        off.after_round(1, at(0));
        assert_eq!(off.after_round(1, at(1)), None);
    }

    #[test]
    fn conversations_go_to_their_shard_and_the_rest_to_control() {
        assert_eq!(route(OUTBOUND_TOPIC, 8), Route::Local);
        assert_eq!(route(CLUSTER_TOPIC, 8), Route::Control);
        assert_eq!(route("agent:ag_1", 8), Route::Control);
        assert_eq!(route("customer:cu_1", 8), Route::Control);
        // The same conversation, the same shard, on every node; spread over all of them.
        assert_eq!(route("conv:cv_1", 8), route("conv:cv_1", 8));
        let mut used = HashSet::new();
        for n in 0..1000 {
            let Route::Shard(shard) = route(&format!("conv:cv_{n}"), 8) else {
                panic!("a conversation is sharded");
            };
            used.insert(shard);
        }
        assert_eq!(used.len(), 8);
        assert_eq!(route("conv:cv_1", 1), Route::Shard(0));
        // Fixed values: a change of the hash would split a cluster running two builds.
        assert_eq!(shard_of("cv_1", 64), 40);
        assert_eq!(shard_of("cv_abc", 64), 23);
    }
}
