//! The bot's worker pool: a bounded queue per worker, turns of one conversation on one worker
//! (in order), shedding when the backlog is too deep or too old, and each tenant's share of the
//! backlog capped. The pool knows nothing of chats: each turn goes to a [`TurnHandler`].

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use switchboard_bot::DecisionKind;
use tokio::sync::mpsc;

use crate::metrics::Histogram;

/// Upper bounds (ms) of the bot turn latency histogram.
pub const LATENCY_BUCKETS_MS: [u64; 10] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 10000];

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BotRunSettings {
    /// Concurrent bot turns (turns of one conversation always run in order).
    pub workers: usize,
    /// Turns waiting per worker at most; past it a turn is handed to a person (`bot_busy`).
    pub queue_per_worker: usize,
    /// Load the models when the server starts (otherwise on the first bot turn).
    pub preload: bool,
    /// Turns waiting across all workers from which new bot turns are shed (0: three quarters
    /// of the queues' capacity).
    pub shed_depth: usize,
    /// A turn that waited this long for a worker starts shedding too.
    pub shed_wait_ms: u64,
    /// The memory budget (MB) of each tenant's own ONNX classifier. Each runs in a child
    /// process of its own (`switchboard model-worker`) whose data segment is capped at this;
    /// past it the run fails (`model_out_of_memory`) and the turn uses the built-in intents.
    pub tenant_model_memory_mb: u64,
    /// The program that runs tenants' classifiers, as `<program> model-worker ...`; unset (the
    /// default): this server's own executable.
    pub tenant_model_worker: Option<std::path::PathBuf>,
    /// A tenant model's child process unused this long (seconds) is stopped, so idle models
    /// hold no memory; the next turn starts it again.
    pub tenant_model_idle_secs: u64,
}

impl Default for BotRunSettings {
    fn default() -> Self {
        BotRunSettings {
            workers: 8,
            queue_per_worker: 128,
            preload: true,
            shed_depth: 0,
            shed_wait_ms: 2_000,
            tenant_model_memory_mb: switchboard_models::worker::DEFAULT_MEMORY_MB,
            tenant_model_worker: None,
            tenant_model_idle_secs: switchboard_models::worker::IDLE_FOR.as_secs(),
        }
    }
}

/// Who runs the turns the pool takes (the chat service).
pub trait TurnHandler: Send + Sync + 'static {
    /// Runs one turn; returns the decision's kind when one was made.
    fn run_turn(&self, job: TurnJob) -> impl Future<Output = Option<DecisionKind>> + Send;
}

pub struct TurnJob {
    pub tenant: String,
    pub conversation_id: String,
    /// The customer message's trace id.
    pub trace: String,
    pub text: String,
    /// The customer message's seq in its conversation.
    pub seq: i64,
    /// The sensitive-word policy asked for a person.
    pub flagged: bool,
    pub enqueued: Instant,
}

struct Counters {
    turns: AtomicU64,
    shed: AtomicU64,
    last_wait_us: AtomicU64,
    decisions: [AtomicU64; 4],
    /// Turn latency, queue wait included.
    latency: Histogram,
}

/// The bot workers' figures (`/metrics`, and the shedding work).
#[derive(Debug, Clone, Serialize)]
pub struct BotStats {
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub turns: u64,
    /// Turns shed (a "busy" reply or straight to a person) because of the backlog.
    pub shed: u64,
    /// Whether new turns are being shed now (the global backlog).
    pub shedding: bool,
    /// How long the last turn waited for a worker.
    pub last_wait_us: u64,
    pub decisions: HashMap<&'static str, u64>,
}

pub struct BotWorkers {
    shards: Vec<mpsc::Sender<TurnJob>>,
    /// When each shard's queued turns were queued, oldest first (the shard's channel is FIFO):
    /// their count is the backlog's depth, and the age of the oldest is how long the backlog
    /// makes a turn wait now, before any worker has taken one that waited that long.
    queued_at: Arc<[Mutex<VecDeque<Instant>>]>,
    capacity: usize,
    shed_depth: usize,
    shed_wait_us: u64,
    shedding: AtomicBool,
    tenants: Arc<Mutex<HashMap<String, TenantQueue>>>,
    counters: Arc<Counters>,
}

/// One tenant's share of the backlog.
#[derive(Default)]
struct TenantQueue {
    depth: usize,
    shedding: bool,
}

/// A tenant's fair share of the backlog is never smaller than this.
const FAIR_SHARE_FLOOR: usize = 4;

const KINDS: [DecisionKind; 4] = [
    DecisionKind::Answer,
    DecisionKind::Clarify,
    DecisionKind::Handoff,
    DecisionKind::OutOfScope,
];

impl BotWorkers {
    /// Starts the workers. The handler owns the pool, so the workers hold it weakly: they end
    /// when it is dropped.
    pub fn start<H: TurnHandler>(handler: Weak<H>, settings: &BotRunSettings) -> BotWorkers {
        let queue_per_worker = settings.queue_per_worker.max(1);
        let counters = Arc::new(Counters {
            turns: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            last_wait_us: AtomicU64::new(0),
            decisions: Default::default(),
            latency: Histogram::new(&LATENCY_BUCKETS_MS),
        });
        let tenants: Arc<Mutex<HashMap<String, TenantQueue>>> = Arc::default();
        let workers = settings.workers.max(1);
        let queued_at: Arc<[Mutex<VecDeque<Instant>>]> =
            (0..workers).map(|_| Mutex::default()).collect();
        let mut shards = Vec::new();
        for shard in 0..workers {
            let (sender, mut receiver) = mpsc::channel::<TurnJob>(queue_per_worker);
            let handler = handler.clone();
            let counters = counters.clone();
            let tenants = tenants.clone();
            let queued_at = queued_at.clone();
            tokio::spawn(async move {
                while let Some(job) = receiver.recv().await {
                    queued_at[shard]
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .pop_front();
                    if let Some(queue) = tenants
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(&job.tenant)
                    {
                        queue.depth = queue.depth.saturating_sub(1);
                    }
                    let waited = job.enqueued.elapsed().as_micros() as u64;
                    counters.last_wait_us.store(waited, Ordering::Relaxed);
                    let Some(handler) = handler.upgrade() else {
                        break;
                    };
                    let enqueued = job.enqueued;
                    if let Some(kind) = handler.run_turn(job).await {
                        let index = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
                        counters.decisions[index].fetch_add(1, Ordering::Relaxed);
                    }
                    counters.latency.observe(enqueued.elapsed());
                    counters.turns.fetch_add(1, Ordering::Relaxed);
                }
            });
            shards.push(sender);
        }
        let capacity = shards.len() * queue_per_worker;
        BotWorkers {
            capacity,
            shed_depth: match settings.shed_depth {
                0 => (capacity * 3 / 4).max(1),
                depth => depth,
            },
            shed_wait_us: settings.shed_wait_ms.saturating_mul(1000),
            shedding: AtomicBool::new(false),
            tenants,
            shards,
            queued_at,
            counters,
        }
    }

    /// Whether new turns are shed now: over the depth or wait threshold starts shedding, and it
    /// ends only when both are back under half of them (hysteresis). The wait is the longer of
    /// the last taken turn's and the oldest queued turn's so far: a burst that arrives faster
    /// than the workers take turns is seen at once, not only once a late turn is taken.
    fn overloaded(&self) -> bool {
        let (depth, oldest) = self.backlog();
        let wait = match oldest {
            None => 0,
            Some(at) => (at.elapsed().as_micros() as u64)
                .max(self.counters.last_wait_us.load(Ordering::Relaxed)),
        };
        if self.shedding.load(Ordering::Relaxed) {
            if depth <= self.shed_depth / 2 && wait <= self.shed_wait_us / 2 {
                self.shedding.store(false, Ordering::Relaxed);
                tracing::info!(depth, "bot backlog drained; bot turns are taken again");
            }
        } else if depth >= self.shed_depth || wait >= self.shed_wait_us {
            self.shedding.store(true, Ordering::Relaxed);
            tracing::warn!(
                depth,
                wait_us = wait,
                "bot backlog over the threshold; shedding bot turns"
            );
        }
        self.shedding.load(Ordering::Relaxed)
    }

    /// Queues a turn on its conversation's worker, or gives it back to be shed: the global
    /// backlog is over its threshold, the tenant's is over `tenant_max`, or the worker's queue
    /// is full.
    pub fn submit(&self, job: TurnJob, tenant_max: usize) -> Result<(), TurnJob> {
        let shed = |job: TurnJob| {
            self.counters.shed.fetch_add(1, Ordering::Relaxed);
            Err(job)
        };
        if self.overloaded() {
            return shed(job);
        }
        {
            let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            // Tenants with turns waiting besides this one: while there are any, each tenant
            // holds at most a fair share of the shedding depth, with one share kept free for a
            // tenant that comes next, so one tenant's flood cannot fill the shared backlog and
            // have everyone's turns shed.
            let others = tenants
                .iter()
                .filter(|(name, queue)| queue.depth > 0 && **name != job.tenant)
                .count();
            let fair_share =
                (others > 0).then(|| (self.shed_depth / (others + 2)).max(FAIR_SHARE_FLOOR));
            let queue = tenants.entry(job.tenant.clone()).or_default();
            if queue.shedding && queue.depth <= tenant_max / 2 {
                queue.shedding = false;
            } else if !queue.shedding && queue.depth >= tenant_max {
                queue.shedding = true;
            }
            let over_share = fair_share.is_some_and(|share| queue.depth >= share);
            if queue.shedding || over_share {
                drop(tenants);
                return shed(job);
            }
            queue.depth += 1;
        }
        let shard = shard_of(&job.conversation_id, self.shards.len());
        // Recorded before the send, so the worker never takes a turn whose time is not there.
        let mut queued_at = self.queued_at[shard]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        queued_at.push_back(job.enqueued);
        match self.shards[shard].try_send(job) {
            Ok(()) => Ok(()),
            Err(error) => {
                queued_at.pop_back();
                drop(queued_at);
                let job = match error {
                    mpsc::error::TrySendError::Full(job)
                    | mpsc::error::TrySendError::Closed(job) => job,
                };
                if let Some(queue) = self
                    .tenants
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(&job.tenant)
                {
                    queue.depth = queue.depth.saturating_sub(1);
                }
                shed(job)
            }
        }
    }

    /// Turns waiting for a worker, and when the oldest of them was queued.
    fn backlog(&self) -> (usize, Option<Instant>) {
        let mut depth = 0;
        let mut oldest: Option<Instant> = None;
        for queue in self.queued_at.iter() {
            let queue = queue.lock().unwrap_or_else(|p| p.into_inner());
            depth += queue.len();
            if let Some(&first) = queue.front() {
                oldest = Some(oldest.map_or(first, |o| o.min(first)));
            }
        }
        (depth, oldest)
    }

    pub fn stats(&self) -> BotStats {
        let c = &self.counters;
        BotStats {
            queue_depth: self.backlog().0,
            queue_capacity: self.capacity,
            turns: c.turns.load(Ordering::Relaxed),
            shed: c.shed.load(Ordering::Relaxed),
            shedding: self.shedding.load(Ordering::Relaxed),
            last_wait_us: c.last_wait_us.load(Ordering::Relaxed),
            decisions: KINDS
                .iter()
                .enumerate()
                .map(|(i, kind)| (kind.as_str(), c.decisions[i].load(Ordering::Relaxed)))
                .collect(),
        }
    }

    /// Turn latency (queue wait included), for `/metrics`.
    pub fn latency(&self) -> &Histogram {
        &self.counters.latency
    }
}

fn shard_of(key: &str, shards: usize) -> usize {
    // FNV-1a: stable and cheap; only needs to keep one conversation on one worker.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs no turn until told to: the backlog only grows.
    struct Stalled(tokio::sync::Notify);

    impl TurnHandler for Stalled {
        async fn run_turn(&self, _job: TurnJob) -> Option<DecisionKind> {
            self.0.notified().await;
            None
        }
    }

    fn job(tenant: &str, index: usize) -> TurnJob {
        TurnJob {
            tenant: tenant.into(),
            conversation_id: format!("{tenant}-{index}"),
            trace: String::new(),
            text: "hi".into(),
            seq: 1,
            flagged: false,
            enqueued: Instant::now(),
        }
    }

    #[tokio::test]
    async fn a_flooding_tenant_keeps_to_its_share_and_the_next_tenant_gets_in() {
        let handler = Arc::new(Stalled(tokio::sync::Notify::new()));
        let workers = BotWorkers::start(
            Arc::downgrade(&handler),
            &BotRunSettings {
                workers: 2,
                queue_per_worker: 200,
                preload: false,
                shed_depth: 90,
                shed_wait_ms: 60_000,
                ..BotRunSettings::default()
            },
        );
        let accepted = |tenant: &str, from: usize, count: usize| {
            (from..from + count)
                .filter(|index| workers.submit(job(tenant, *index), 1_000).is_ok())
                .count()
        };
        // Alone, a tenant may queue up to the shedding depth.
        let flood = accepted("flood", 0, 60);
        assert_eq!(flood, 60);
        // A second tenant gets in at once; the first now keeps to its share (90 / 3 = 30):
        // its new turns are shed while it holds more.
        assert_eq!(accepted("quiet", 0, 10), 10);
        assert_eq!(accepted("flood", 100, 20), 0);
        // A third tenant still gets in: the backlog is under the shedding depth.
        assert_eq!(accepted("third", 0, 5), 5);
        let stats = workers.stats();
        assert!(!stats.shedding, "{stats:?}");
        assert_eq!(stats.queue_depth, 75);
        assert_eq!(stats.shed, 20);
    }
}
