//! The async front of the encoder: a bounded queue, worker threads that gather concurrent
//! requests into one ONNX run (dynamic micro-batching), and an LRU cache of recent texts.
//!
//! Inference never runs on the async executor: workers are plain threads that own the blocking
//! calls. A full queue is [`ModelError::Busy`] at once, so callers can shed bot work.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;
use tokio::sync::oneshot;

use crate::encoder::{Encoder, TextKind};
use crate::error::{ModelError, Result};

/// A shared, immutable embedding: cheap to clone into both the intent head and the rerank.
pub type Embedding = Arc<[f32]>;

/// Texts longer than this (bytes) are embedded but not cached.
const MAX_CACHED_TEXT: usize = 1024;

/// Tuning of an [`EncoderService`].
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Worker threads, each running one batch at a time (give the encoder as many sessions).
    pub workers: usize,
    /// Requests waiting at most; more are refused with [`ModelError::Busy`].
    pub queue_capacity: usize,
    /// How long a worker waits for more requests after the first one of a batch.
    pub batch_window: Duration,
    /// Texts per batch at most.
    pub max_batch: usize,
    /// Entries in the LRU cache of recent texts (0 turns caching off).
    pub cache_capacity: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            workers: 1,
            queue_capacity: 512,
            batch_window: Duration::from_micros(1500),
            max_batch: 16,
            cache_capacity: 4096,
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    pub requests: u64,
    pub cache_hits: u64,
    pub batches: u64,
    pub texts_encoded: u64,
}

struct Job {
    text: String,
    reply: oneshot::Sender<Result<Embedding>>,
}

struct Shared {
    encoder: Arc<Encoder>,
    cache: Option<Mutex<LruCache<String, Embedding>>>,
    requests: AtomicU64,
    cache_hits: AtomicU64,
    batches: AtomicU64,
    texts_encoded: AtomicU64,
}

/// Async, batching, caching front of an [`Encoder`]. Cloning shares the same workers.
#[derive(Clone)]
pub struct EncoderService {
    shared: Arc<Shared>,
    sender: SyncSender<Job>,
    capacity: usize,
}

impl std::fmt::Debug for EncoderService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncoderService")
            .field("stats", &self.stats())
            .finish()
    }
}

impl EncoderService {
    /// Starts the worker threads. They stop when the last clone of the service is dropped.
    pub fn start(encoder: Encoder, config: ServiceConfig) -> Result<EncoderService> {
        Self::start_shared(Arc::new(encoder), config)
    }

    /// Like [`EncoderService::start`] with an encoder that is also used elsewhere.
    pub fn start_shared(encoder: Arc<Encoder>, config: ServiceConfig) -> Result<EncoderService> {
        let capacity = config.queue_capacity.max(1);
        let (sender, receiver) = sync_channel::<Job>(capacity);
        let shared = Arc::new(Shared {
            encoder,
            cache: NonZeroUsize::new(config.cache_capacity).map(|n| Mutex::new(LruCache::new(n))),
            requests: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            texts_encoded: AtomicU64::new(0),
        });
        let receiver = Arc::new(Mutex::new(receiver));
        for worker in 0..config.workers.max(1) {
            let shared = Arc::clone(&shared);
            let receiver = Arc::clone(&receiver);
            let config = config.clone();
            std::thread::Builder::new()
                .name(format!("encoder-{worker}"))
                .spawn(move || run_worker(&shared, &receiver, &config))
                .map_err(|e| ModelError::Inference(format!("cannot start encoder worker: {e}")))?;
        }
        Ok(EncoderService {
            shared,
            sender,
            capacity,
        })
    }

    /// The encoder behind the service, for blocking callers.
    pub fn encoder(&self) -> &Arc<Encoder> {
        &self.shared.encoder
    }

    /// Embeds one customer turn (`query: `). The same vector serves intent classification and
    /// knowledge rerank.
    pub async fn embed(&self, text: &str) -> Result<Embedding> {
        self.embed_kind(TextKind::Query, text).await
    }

    /// Embeds one text with the given prefix policy.
    pub async fn embed_kind(&self, kind: TextKind, text: &str) -> Result<Embedding> {
        let receiver = self.submit(kind, text)?;
        match receiver {
            Submitted::Ready(embedding) => Ok(embedding),
            Submitted::Pending(rx) => rx.await.map_err(|_| ModelError::Stopped)?,
        }
    }

    /// Embeds several texts; they join the same batches as concurrent callers.
    pub async fn embed_many(&self, kind: TextKind, texts: &[&str]) -> Result<Vec<Embedding>> {
        let mut pending = Vec::with_capacity(texts.len());
        for text in texts {
            pending.push(self.submit(kind, text)?);
        }
        let mut out = Vec::with_capacity(texts.len());
        for item in pending {
            out.push(match item {
                Submitted::Ready(embedding) => embedding,
                Submitted::Pending(rx) => rx.await.map_err(|_| ModelError::Stopped)??,
            });
        }
        Ok(out)
    }

    pub fn stats(&self) -> ServiceStats {
        ServiceStats {
            requests: self.shared.requests.load(Ordering::Relaxed),
            cache_hits: self.shared.cache_hits.load(Ordering::Relaxed),
            batches: self.shared.batches.load(Ordering::Relaxed),
            texts_encoded: self.shared.texts_encoded.load(Ordering::Relaxed),
        }
    }

    fn submit(&self, kind: TextKind, text: &str) -> Result<Submitted> {
        self.shared.requests.fetch_add(1, Ordering::Relaxed);
        let prepared = format!("{}{}", kind.prefix(), text.trim());
        if let Some(cache) = &self.shared.cache {
            let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(hit) = cache.get(&prepared) {
                self.shared.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Submitted::Ready(Arc::clone(hit)));
            }
        }
        let (reply, rx) = oneshot::channel();
        match self.sender.try_send(Job {
            text: prepared,
            reply,
        }) {
            Ok(()) => Ok(Submitted::Pending(rx)),
            Err(TrySendError::Full(_)) => Err(ModelError::Busy {
                capacity: self.capacity,
            }),
            Err(TrySendError::Disconnected(_)) => Err(ModelError::Stopped),
        }
    }
}

enum Submitted {
    Ready(Embedding),
    Pending(oneshot::Receiver<Result<Embedding>>),
}

fn run_worker(shared: &Shared, receiver: &Mutex<Receiver<Job>>, config: &ServiceConfig) {
    let max_batch = config.max_batch.max(1);
    loop {
        let mut jobs = Vec::with_capacity(max_batch);
        {
            let receiver = receiver.lock().unwrap_or_else(|p| p.into_inner());
            match receiver.recv() {
                Ok(job) => jobs.push(job),
                Err(_) => return,
            }
            let deadline = Instant::now() + config.batch_window;
            while jobs.len() < max_batch {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                match receiver.recv_timeout(deadline - now) {
                    Ok(job) => jobs.push(job),
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        // Callers that gave up need no work.
        jobs.retain(|job| !job.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let mut unique: Vec<String> = Vec::with_capacity(jobs.len());
        for job in &jobs {
            if !unique.contains(&job.text) {
                unique.push(job.text.clone());
            }
        }
        shared.batches.fetch_add(1, Ordering::Relaxed);
        shared
            .texts_encoded
            .fetch_add(unique.len() as u64, Ordering::Relaxed);
        match shared.encoder.embed_prepared(&unique) {
            Ok(vectors) => {
                let vectors: Vec<Embedding> = vectors.into_iter().map(Embedding::from).collect();
                if let Some(cache) = &shared.cache {
                    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                    for (text, vector) in unique.iter().zip(&vectors) {
                        if text.len() <= MAX_CACHED_TEXT {
                            cache.put(text.clone(), Arc::clone(vector));
                        }
                    }
                }
                for job in jobs {
                    let position = unique.iter().position(|t| *t == job.text).unwrap_or(0);
                    let _ = job.reply.send(Ok(Arc::clone(&vectors[position])));
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, texts = unique.len(), "encoder batch failed");
                let message = error.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(ModelError::Inference(message.clone())));
                }
            }
        }
    }
}
