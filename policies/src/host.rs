//! The wasmtime host: one [`wasmtime::Engine`], a compile cache keyed by content hash, and one
//! pre-instantiated component per loaded policy. Each call gets a fresh [`Store`] with fuel, an
//! epoch deadline and a memory cap, so calls share no state and a hostile guest cannot outlive
//! its call.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};

use crate::bindings::{v0_1, v0_2};
use crate::builtin::{BuiltinQuality, BuiltinRouting};
use crate::error::{FailureKind, PolicyError, PolicyKind};
use crate::metrics::PolicyMetrics;
use crate::types::{
    Assessment, ClosedConversation, Handoff, RoutingDecision, Speaker, MAX_LAST_MESSAGES,
};
use crate::{convert, validate};

/// The versions of the WIT package `switchboard:policy` the host accepts, newest first.
pub const WIT_VERSIONS: [&str; 2] = [v0_2::VERSION, v0_1::VERSION];

/// A routing component, pre-instantiated against the WIT version it was built for.
#[derive(Clone)]
enum RoutingPre {
    V0_2(v0_2::routing::RoutingPre<CallState>),
    V0_1(v0_1::routing::RoutingPre<CallState>),
}

impl RoutingPre {
    fn version(&self) -> &'static str {
        match self {
            RoutingPre::V0_2(_) => v0_2::VERSION,
            RoutingPre::V0_1(_) => v0_1::VERSION,
        }
    }

    /// Instantiates and calls `route` with the input as this version sees it.
    fn call(
        &self,
        store: &mut Store<CallState>,
        input: &Handoff,
    ) -> wasmtime::Result<RoutingDecision> {
        match self {
            RoutingPre::V0_2(pre) => {
                let wit_input = convert::v0_2::handoff(input, MAX_LAST_MESSAGES);
                let bindings = pre.instantiate(&mut *store)?;
                let answer = bindings.call_route(&mut *store, &wit_input)?;
                Ok(convert::v0_2::routing_decision(answer))
            }
            RoutingPre::V0_1(pre) => {
                let wit_input = convert::v0_1::handoff(input, MAX_LAST_MESSAGES);
                let bindings = pre.instantiate(&mut *store)?;
                let answer = bindings.call_route(&mut *store, &wit_input)?;
                Ok(convert::v0_1::routing_decision(answer))
            }
        }
    }
}

/// A quality component, pre-instantiated against the WIT version it was built for.
#[derive(Clone)]
enum QualityPre {
    V0_2(v0_2::quality::QualityPre<CallState>),
    V0_1(v0_1::quality::QualityPre<CallState>),
}

impl QualityPre {
    fn version(&self) -> &'static str {
        match self {
            QualityPre::V0_2(_) => v0_2::VERSION,
            QualityPre::V0_1(_) => v0_1::VERSION,
        }
    }

    /// Instantiates and calls `score` with the input as this version sees it.
    fn call(
        &self,
        store: &mut Store<CallState>,
        conversation: &ClosedConversation,
    ) -> wasmtime::Result<Assessment> {
        match self {
            QualityPre::V0_2(pre) => {
                let wit_input = convert::v0_2::closed_conversation(conversation);
                let bindings = pre.instantiate(&mut *store)?;
                let answer = bindings.call_score(&mut *store, &wit_input)?;
                Ok(convert::v0_2::assessment(answer))
            }
            QualityPre::V0_1(pre) => {
                let wit_input = convert::v0_1::closed_conversation(conversation);
                let bindings = pre.instantiate(&mut *store)?;
                let answer = bindings.call_score(&mut *store, &wit_input)?;
                Ok(convert::v0_1::assessment(answer))
            }
        }
    }
}

/// The error of a component that matches no accepted version of a world: the newest version's
/// reason, then the older ones'.
fn no_version_matched(expected: PolicyKind, errors: [(&str, wasmtime::Error); 2]) -> PolicyError {
    let [(newest, newest_error), (older, older_error)] = errors;
    PolicyError::WrongWorld {
        expected,
        detail: format!(
            "switchboard:policy@{newest}: {newest_error:#}; switchboard:policy@{older}: {older_error:#}"
        ),
    }
}

/// The hard limits of every policy call, and of what may be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLimits {
    /// CPU budget of one call in wasmtime fuel units (about one per WASM instruction);
    /// deterministic, so a runaway loop fails the same way on every machine.
    pub fuel: u64,
    /// Wall-time deadline of one call, instantiation included, enforced by epoch interruption
    /// (granularity [`PolicyLimits::epoch_tick`]); a backstop for work that fuel does not see.
    pub wall_time: Duration,
    /// How often the engine's epoch advances; the deadline is `wall_time / epoch_tick` ticks.
    pub epoch_tick: Duration,
    /// Linear memory cap of one instance in bytes.
    pub memory_bytes: usize,
    /// Largest component accepted for compilation, in bytes.
    pub max_component_bytes: usize,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        Self {
            fuel: 5_000_000,
            wall_time: Duration::from_millis(10),
            epoch_tick: Duration::from_millis(1),
            memory_bytes: 16 << 20,
            max_component_bytes: 8 << 20,
        }
    }
}

/// With the `pooling` feature: how many policy calls can hold an instance at the same time.
/// A call beyond that fails to instantiate and gets the built-in decision, like any failed call.
#[cfg(feature = "pooling")]
const POOLED_CALLS: u32 = 256;

/// With the `pooling` feature: the low bytes of a linear memory that are reset in place (only
/// the pages the call dirtied, found with the `PAGEMAP_SCAN` ioctl) instead of being handed back
/// to the kernel, so the next call in that slot takes no page faults there. A Rust guest keeps
/// its 1 MiB stack and then its data and heap at the bottom of memory.
#[cfg(feature = "pooling")]
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// wasmtime's pooling allocator, sized for policy calls: memory slots, tables and instance
/// records are reserved once and reused from call to call, so a call no longer maps, protects
/// and unmaps a fresh linear memory. The per-call caps stay with the store's limiter; the pool's
/// own caps are set to the same values so they never decide first.
#[cfg(feature = "pooling")]
fn pooling_config(limits: &PolicyLimits) -> wasmtime::PoolingAllocationConfig {
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_CALLS)
        .total_core_instances(POOLED_CALLS * 4)
        .total_memories(POOLED_CALLS)
        .total_tables(POOLED_CALLS * 4)
        .max_core_instances_per_component(STORE_INSTANCES as u32)
        .max_memories_per_component(STORE_MEMORIES as u32)
        .max_tables_per_component(STORE_TABLES as u32)
        .table_elements(STORE_TABLE_ELEMENTS)
        .max_memory_size(limits.memory_bytes);
    if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
            .table_keep_resident(64 << 10);
    }
    pool
}

/// Per-store caps besides memory (see `EngineInner::new_store`).
const STORE_INSTANCES: usize = 16;
const STORE_MEMORIES: usize = 4;
const STORE_TABLES: usize = 8;
const STORE_TABLE_ELEMENTS: usize = 100_000;
/// Bytes a call's answer may make the host copy out of the guest (the largest valid answer, a
/// quality verdict of 100 findings, is about 110 KB).
const HOSTCALL_BYTES: usize = 1 << 20;

/// How a [`PolicyEngine`] is set up.
#[derive(Debug, Clone, Default)]
pub struct PolicyEngineConfig {
    pub limits: PolicyLimits,
    /// How many compiled components the in-memory cache keeps (least recently used go first).
    /// 0 means the default of 64.
    pub cache_capacity: usize,
    /// When set, wasmtime also caches compiled code on disk here, so a restarted gateway does not
    /// recompile every tenant's policy.
    pub disk_cache_dir: Option<PathBuf>,
}

/// Identifies a loaded policy in logs, failure records and metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyId {
    pub tenant: String,
    /// The upload version the gateway assigned (every upload is a new version).
    pub version: u32,
}

impl PolicyId {
    pub fn new(tenant: impl Into<String>, version: u32) -> Self {
        Self {
            tenant: tenant.into(),
            version,
        }
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} v{}", self.tenant, self.version)
    }
}

/// What went wrong in one policy call, given with the built-in decision that replaced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFailure {
    pub policy_kind: PolicyKind,
    pub policy: PolicyId,
    pub kind: FailureKind,
    /// A short lowercase description (the trap message, or which rule the answer broke).
    pub detail: String,
}

impl fmt::Display for PolicyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} policy {} failed ({}): {}",
            self.policy_kind, self.policy, self.kind, self.detail
        )
    }
}

/// Who made a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidedBy {
    Policy(PolicyId),
    BuiltIn,
}

/// The answer of [`RoutingPolicy::route`] / [`route_handoff`]: always a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingOutcome {
    pub decision: RoutingDecision,
    pub decided_by: DecidedBy,
    /// Set when the tenant's policy failed and the built-in strategy decided instead.
    pub failure: Option<PolicyFailure>,
    /// Time spent in the policy call (instantiation included), or in the built-in strategy.
    pub elapsed: Duration,
}

/// The answer of [`QualityPolicy::score`] / [`score_conversation`]: always an assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QualityOutcome {
    pub assessment: Assessment,
    pub decided_by: DecidedBy,
    pub failure: Option<PolicyFailure>,
    pub elapsed: Duration,
}

const DEFAULT_CACHE_CAPACITY: usize = 64;

struct CacheEntry {
    component: Component,
    last_used: u64,
}

#[derive(Default)]
struct ComponentCache {
    entries: HashMap<[u8; 32], CacheEntry>,
    clock: u64,
}

struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct EngineInner {
    engine: Engine,
    linker: Linker<CallState>,
    limits: PolicyLimits,
    deadline_ticks: u64,
    cache: Mutex<ComponentCache>,
    cache_capacity: usize,
    metrics: PolicyMetrics,
    _ticker: EpochTicker,
}

/// The per-call store data: the memory cap, and whether it was hit (to tell a memory bomb from
/// an ordinary trap, since the guest only sees a failed `memory.grow`).
struct CallState {
    limits: StoreLimits,
    memory_denied: bool,
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed {
            self.memory_denied = true;
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// The host for tenant policies. Cheap to clone (an `Arc` inside); share one per process.
///
/// Calls are synchronous and take tens of microseconds (up to the wall-time limit for a hostile
/// policy): call them from a blocking pool, not from an async executor thread.
#[derive(Clone)]
pub struct PolicyEngine {
    inner: Arc<EngineInner>,
}

impl fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl PolicyEngine {
    pub fn new(config: PolicyEngineConfig) -> Result<Self, PolicyError> {
        let limits = config.limits;
        if limits.epoch_tick.is_zero() || limits.wall_time < limits.epoch_tick {
            return Err(PolicyError::Engine(
                "wall time must be at least one epoch tick, and the tick non-zero".into(),
            ));
        }
        let mut wasm_config = Config::new();
        wasm_config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true);
        #[cfg(feature = "pooling")]
        {
            wasm_config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(
                pooling_config(&limits),
            ));
            // Each pool slot reserves `memory_reservation` of address space: the default 4 GiB
            // plus guard pages would put about 1 TiB behind every engine. A slot the size of the
            // memory cap, with explicit bounds checks in the compiled code instead of guard
            // pages, costs 4 GiB for the whole pool and measured the same per call.
            wasm_config
                .memory_reservation(limits.memory_bytes as u64)
                .memory_guard_size(0)
                .memory_reservation_for_growth(0)
                .guard_before_linear_memory(false);
        }
        if let Some(dir) = &config.disk_cache_dir {
            let mut cache_config = wasmtime::CacheConfig::new();
            cache_config.with_directory(dir);
            let cache = wasmtime::Cache::new(cache_config)
                .map_err(|error| PolicyError::Engine(format!("{error:#}")))?;
            wasm_config.cache(Some(cache));
        }
        let engine =
            Engine::new(&wasm_config).map_err(|error| PolicyError::Engine(format!("{error:#}")))?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.clone();
        let ticker_stop = Arc::clone(&stop);
        let tick = limits.epoch_tick;
        let thread = std::thread::Builder::new()
            .name("policy-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|error| {
                PolicyError::Engine(format!("cannot start the epoch thread: {error}"))
            })?;

        let deadline_ticks =
            (limits.wall_time.as_nanos() / limits.epoch_tick.as_nanos()).max(1) as u64;
        // No host functions at all: a component that imports anything fails to link.
        let linker = Linker::new(&engine);
        Ok(Self {
            inner: Arc::new(EngineInner {
                engine,
                linker,
                limits,
                deadline_ticks,
                cache: Mutex::new(ComponentCache::default()),
                cache_capacity: if config.cache_capacity == 0 {
                    DEFAULT_CACHE_CAPACITY
                } else {
                    config.cache_capacity
                },
                metrics: PolicyMetrics::default(),
                _ticker: EpochTicker {
                    stop,
                    thread: Some(thread),
                },
            }),
        })
    }

    pub fn limits(&self) -> &PolicyLimits {
        &self.inner.limits
    }

    pub fn metrics(&self) -> &PolicyMetrics {
        &self.inner.metrics
    }

    /// How many compiled components the in-memory cache holds.
    pub fn cached_components(&self) -> usize {
        self.inner
            .cache
            .lock()
            .map(|cache| cache.entries.len())
            .unwrap_or(0)
    }

    /// Compiles (or takes from the cache), checks the world and imports, and runs the sample
    /// input ([`sample_handoff`]) under the call limits (the wall time stretched 100×, since
    /// fuel already bounds the CPU and a busy machine must not refuse a good policy): only a
    /// policy that passes all of it is returned.
    pub fn load_routing(&self, id: PolicyId, wasm: &[u8]) -> Result<RoutingPolicy, PolicyError> {
        let policy = self.load_routing_without_sample(id, wasm)?;
        policy
            .call(&sample_handoff(), self.inner.validation_deadline_ticks())
            .map_err(|failure| PolicyError::SampleFailed {
                kind: failure.kind,
                detail: failure.detail,
            })?;
        Ok(policy)
    }

    /// [`PolicyEngine::load_routing`] without the sample call (compile, import and world checks
    /// still run). For tests and benchmarks of policies that misbehave only on some inputs.
    pub fn load_routing_without_sample(
        &self,
        id: PolicyId,
        wasm: &[u8],
    ) -> Result<RoutingPolicy, PolicyError> {
        let (component, hash) = self.compile(wasm)?;
        let pre = self.inner.routing_pre(&component)?;
        Ok(RoutingPolicy {
            inner: Arc::clone(&self.inner),
            id,
            content_hash: hash,
            pre,
        })
    }

    /// [`PolicyEngine::load_quality`] without the sample call.
    pub fn load_quality_without_sample(
        &self,
        id: PolicyId,
        wasm: &[u8],
    ) -> Result<QualityPolicy, PolicyError> {
        let (component, hash) = self.compile(wasm)?;
        let pre = self.inner.quality_pre(&component)?;
        Ok(QualityPolicy {
            inner: Arc::clone(&self.inner),
            id,
            content_hash: hash,
            pre,
        })
    }

    /// Like [`PolicyEngine::load_routing`], for the quality world (sample: [`sample_closed_conversation`]).
    pub fn load_quality(&self, id: PolicyId, wasm: &[u8]) -> Result<QualityPolicy, PolicyError> {
        let policy = self.load_quality_without_sample(id, wasm)?;
        policy
            .call(
                &sample_closed_conversation(),
                self.inner.validation_deadline_ticks(),
            )
            .map_err(|failure| PolicyError::SampleFailed {
                kind: failure.kind,
                detail: failure.detail,
            })?;
        Ok(policy)
    }

    /// Tells which world a component implements and validates it as [`PolicyEngine::load_routing`]
    /// or [`PolicyEngine::load_quality`] would (for `switchboard policy check FILE`).
    pub fn check(&self, wasm: &[u8]) -> Result<PolicyKind, PolicyError> {
        let (component, _) = self.compile(wasm)?;
        let id = PolicyId::new("check", 0);
        if self.inner.routing_pre(&component).is_ok() {
            self.load_routing(id, wasm)?;
            Ok(PolicyKind::Routing)
        } else if self.inner.quality_pre(&component).is_ok() {
            self.load_quality(id, wasm)?;
            Ok(PolicyKind::Quality)
        } else {
            Err(PolicyError::UnknownWorld)
        }
    }

    fn compile(&self, wasm: &[u8]) -> Result<(Component, String), PolicyError> {
        let limit = self.inner.limits.max_component_bytes;
        if wasm.is_empty() {
            return Err(PolicyError::Empty);
        }
        if wasm.len() > limit {
            return Err(PolicyError::TooLarge {
                size: wasm.len(),
                limit,
            });
        }
        check_component_header(wasm)?;
        let hash: [u8; 32] = Sha256::digest(wasm).into();
        let hex = hash
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>();

        if let Some(component) = self.inner.cache_get(&hash) {
            self.inner.metrics.record_cache(true);
            return Ok((component, hex));
        }
        self.inner.metrics.record_cache(false);
        let started = Instant::now();
        let component = Component::new(&self.inner.engine, wasm)
            .map_err(|error| PolicyError::Compile(format!("{error:#}")))?;
        tracing::debug!(content_hash = %hex, elapsed_ms = started.elapsed().as_millis() as u64, "policy component compiled");
        // An interface of types only (`use types.{...}` in the world) shows up as an import of
        // an instance with nothing to call: that is allowed, anything callable is not.
        let engine = &self.inner.engine;
        let imports: Vec<String> = component
            .component_type()
            .imports(engine)
            .filter(|(_, item)| !is_types_only(engine, &item.ty))
            .map(|(name, _)| name.to_owned())
            .collect();
        if !imports.is_empty() {
            return Err(PolicyError::ForbiddenImport(imports.join(", ")));
        }
        self.inner.cache_put(hash, component.clone());
        Ok((component, hex))
    }
}

fn is_types_only(engine: &Engine, item: &ComponentItem) -> bool {
    match item {
        ComponentItem::Type(_) => true,
        ComponentItem::ComponentInstance(instance) => instance
            .exports(engine)
            .all(|(_, export)| is_types_only(engine, &export.ty)),
        _ => false,
    }
}

fn check_component_header(wasm: &[u8]) -> Result<(), PolicyError> {
    const MAGIC: &[u8] = b"\0asm";
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        return Err(PolicyError::NotAComponent(
            "the bytes do not start with the wasm magic number".into(),
        ));
    }
    // Bytes 4..8: version and layer; layer 0 is a core module, layer 1 a component.
    if wasm[6..8] == [0, 0] {
        return Err(PolicyError::NotAComponent(
            "this is a core wasm module; build a component (wasm32-wasip2, or wasm-tools component new)".into(),
        ));
    }
    Ok(())
}

impl EngineInner {
    /// The sample call at upload gets 100 times the wall time: fuel still bounds its CPU
    /// deterministically, and a busy machine must not refuse a good policy.
    fn validation_deadline_ticks(&self) -> u64 {
        self.deadline_ticks.saturating_mul(100)
    }

    fn cache_get(&self, hash: &[u8; 32]) -> Option<Component> {
        let mut cache = self.cache.lock().ok()?;
        cache.clock += 1;
        let now = cache.clock;
        let entry = cache.entries.get_mut(hash)?;
        entry.last_used = now;
        Some(entry.component.clone())
    }

    fn cache_put(&self, hash: [u8; 32], component: Component) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        cache.clock += 1;
        let now = cache.clock;
        if cache.entries.len() >= self.cache_capacity && !cache.entries.contains_key(&hash) {
            if let Some(oldest) = cache
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| *key)
            {
                cache.entries.remove(&oldest);
            }
        }
        cache.entries.insert(
            hash,
            CacheEntry {
                component,
                last_used: now,
            },
        );
    }

    /// Matches the component against the routing world of each accepted WIT version, newest
    /// first: its exported `route` type-checks against exactly the version it was built for
    /// (records are compared field by field, so a 0.1.0 `handoff` is not a 0.2.0 one).
    fn routing_pre(&self, component: &Component) -> Result<RoutingPre, PolicyError> {
        let instance_pre =
            self.linker
                .instantiate_pre(component)
                .map_err(|error| PolicyError::WrongWorld {
                    expected: PolicyKind::Routing,
                    detail: format!("{error:#}"),
                })?;
        let newest = match v0_2::routing::RoutingPre::new(instance_pre.clone()) {
            Ok(pre) => return Ok(RoutingPre::V0_2(pre)),
            Err(error) => error,
        };
        match v0_1::routing::RoutingPre::new(instance_pre) {
            Ok(pre) => Ok(RoutingPre::V0_1(pre)),
            Err(older) => Err(no_version_matched(
                PolicyKind::Routing,
                [(v0_2::VERSION, newest), (v0_1::VERSION, older)],
            )),
        }
    }

    /// Like [`EngineInner::routing_pre`], for the quality world.
    fn quality_pre(&self, component: &Component) -> Result<QualityPre, PolicyError> {
        let instance_pre =
            self.linker
                .instantiate_pre(component)
                .map_err(|error| PolicyError::WrongWorld {
                    expected: PolicyKind::Quality,
                    detail: format!("{error:#}"),
                })?;
        let newest = match v0_2::quality::QualityPre::new(instance_pre.clone()) {
            Ok(pre) => return Ok(QualityPre::V0_2(pre)),
            Err(error) => error,
        };
        match v0_1::quality::QualityPre::new(instance_pre) {
            Ok(pre) => Ok(QualityPre::V0_1(pre)),
            Err(older) => Err(no_version_matched(
                PolicyKind::Quality,
                [(v0_2::VERSION, newest), (v0_1::VERSION, older)],
            )),
        }
    }

    fn new_store(&self, deadline_ticks: u64) -> Store<CallState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .instances(STORE_INSTANCES)
            .memories(STORE_MEMORIES)
            .tables(STORE_TABLES)
            .table_elements(STORE_TABLE_ELEMENTS)
            .build();
        let mut store = Store::new(
            &self.engine,
            CallState {
                limits,
                memory_denied: false,
            },
        );
        store.limiter(|state| state);
        // What the host copies out of the guest per call (an answer's strings and lists, read
        // before they are validated): well above the largest valid answer, far below the 128 MiB
        // wasmtime allows by default, which an answer pointing at the whole memory could take.
        store.set_hostcall_fuel(HOSTCALL_BYTES);
        // Cannot fail: fuel is enabled in the engine config.
        let _ = store.set_fuel(self.limits.fuel);
        store.set_epoch_deadline(deadline_ticks);
        store.epoch_deadline_trap();
        store
    }

    fn classify(&self, store: &Store<CallState>, error: &wasmtime::Error) -> (FailureKind, String) {
        let detail = format!("{error:#}");
        if store.data().memory_denied {
            return (
                FailureKind::MemoryLimit,
                format!(
                    "memory cap of {} bytes reached: {detail}",
                    self.limits.memory_bytes
                ),
            );
        }
        // wasmtime's own error for an answer over `HOSTCALL_BYTES` (its type is private).
        if detail.contains("fuel allocated for hostcalls has been exhausted") {
            return (
                FailureKind::InvalidAnswer,
                format!("the answer is larger than {HOSTCALL_BYTES} bytes"),
            );
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => (
                FailureKind::OutOfFuel,
                format!("fuel budget of {} used up", self.limits.fuel),
            ),
            Some(Trap::Interrupt) => (
                FailureKind::Timeout,
                format!(
                    "wall-time limit of {} ms reached",
                    self.limits.wall_time.as_millis()
                ),
            ),
            _ => (FailureKind::Trap, detail),
        }
    }

    fn failure(
        &self,
        policy_kind: PolicyKind,
        id: &PolicyId,
        kind: FailureKind,
        detail: String,
    ) -> PolicyFailure {
        PolicyFailure {
            policy_kind,
            policy: id.clone(),
            kind,
            detail,
        }
    }

    fn report(&self, failure: &PolicyFailure) {
        self.metrics
            .record_failure(failure.policy_kind, failure.kind);
        tracing::warn!(
            tenant = %failure.policy.tenant,
            policy_version = failure.policy.version,
            policy_kind = %failure.policy_kind,
            failure = %failure.kind,
            detail = %failure.detail,
            "policy call failed, built-in decision used"
        );
    }
}

/// A validated routing policy, ready to call. Cheap to clone; calls may run on many threads.
#[derive(Clone)]
pub struct RoutingPolicy {
    inner: Arc<EngineInner>,
    id: PolicyId,
    content_hash: String,
    pre: RoutingPre,
}

impl fmt::Debug for RoutingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoutingPolicy")
            .field("id", &self.id)
            .field("content_hash", &self.content_hash)
            .field("wit_version", &self.pre.version())
            .finish()
    }
}

impl RoutingPolicy {
    pub fn id(&self) -> &PolicyId {
        &self.id
    }

    /// Hex SHA-256 of the component bytes (the compile-cache key).
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    /// The version of the WIT package `switchboard:policy` the component was built against
    /// (one of [`WIT_VERSIONS`]); it gets that version's input.
    pub fn wit_version(&self) -> &'static str {
        self.pre.version()
    }

    /// Runs the policy; on any failure the `fallback` decides, and the failure is logged,
    /// counted and returned in the outcome.
    pub fn route(&self, input: &Handoff, fallback: &BuiltinRouting) -> RoutingOutcome {
        let started = Instant::now();
        match self.try_route(input) {
            Ok(decision) => {
                self.inner.metrics.record_ok(PolicyKind::Routing);
                RoutingOutcome {
                    decision,
                    decided_by: DecidedBy::Policy(self.id.clone()),
                    failure: None,
                    elapsed: started.elapsed(),
                }
            }
            Err(failure) => {
                self.inner.report(&failure);
                RoutingOutcome {
                    decision: fallback.route(input),
                    decided_by: DecidedBy::BuiltIn,
                    failure: Some(failure),
                    elapsed: started.elapsed(),
                }
            }
        }
    }

    /// Runs the policy without fallback, logging or counting: the raw validated answer.
    pub fn try_route(&self, input: &Handoff) -> Result<RoutingDecision, PolicyFailure> {
        self.call(input, self.inner.deadline_ticks)
    }

    fn call(&self, input: &Handoff, deadline_ticks: u64) -> Result<RoutingDecision, PolicyFailure> {
        let fail = |kind: FailureKind, detail: String| {
            self.inner
                .failure(PolicyKind::Routing, &self.id, kind, detail)
        };
        let mut store = self.inner.new_store(deadline_ticks);
        let decision = self.pre.call(&mut store, input).map_err(|error| {
            let (kind, detail) = self.inner.classify(&store, &error);
            fail(kind, detail)
        })?;
        validate::routing_decision(&decision)
            .map_err(|detail| fail(FailureKind::InvalidAnswer, detail))?;
        Ok(decision)
    }
}

/// A validated quality policy, ready to call. Cheap to clone; calls may run on many threads.
#[derive(Clone)]
pub struct QualityPolicy {
    inner: Arc<EngineInner>,
    id: PolicyId,
    content_hash: String,
    pre: QualityPre,
}

impl fmt::Debug for QualityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QualityPolicy")
            .field("id", &self.id)
            .field("content_hash", &self.content_hash)
            .field("wit_version", &self.pre.version())
            .finish()
    }
}

impl QualityPolicy {
    pub fn id(&self) -> &PolicyId {
        &self.id
    }

    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    /// The version of the WIT package `switchboard:policy` the component was built against
    /// (one of [`WIT_VERSIONS`]); it gets that version's input.
    pub fn wit_version(&self) -> &'static str {
        self.pre.version()
    }

    /// Runs the policy; on any failure the `fallback` scores, and the failure is logged,
    /// counted and returned in the outcome.
    pub fn score(
        &self,
        conversation: &ClosedConversation,
        fallback: &BuiltinQuality,
    ) -> QualityOutcome {
        let started = Instant::now();
        match self.try_score(conversation) {
            Ok(assessment) => {
                self.inner.metrics.record_ok(PolicyKind::Quality);
                QualityOutcome {
                    assessment,
                    decided_by: DecidedBy::Policy(self.id.clone()),
                    failure: None,
                    elapsed: started.elapsed(),
                }
            }
            Err(failure) => {
                self.inner.report(&failure);
                QualityOutcome {
                    assessment: fallback.score(conversation),
                    decided_by: DecidedBy::BuiltIn,
                    failure: Some(failure),
                    elapsed: started.elapsed(),
                }
            }
        }
    }

    /// Runs the policy without fallback, logging or counting: the raw validated answer.
    pub fn try_score(
        &self,
        conversation: &ClosedConversation,
    ) -> Result<Assessment, PolicyFailure> {
        self.call(conversation, self.inner.deadline_ticks)
    }

    fn call(
        &self,
        conversation: &ClosedConversation,
        deadline_ticks: u64,
    ) -> Result<Assessment, PolicyFailure> {
        let fail = |kind: FailureKind, detail: String| {
            self.inner
                .failure(PolicyKind::Quality, &self.id, kind, detail)
        };
        let mut store = self.inner.new_store(deadline_ticks);
        let assessment = self.pre.call(&mut store, conversation).map_err(|error| {
            let (kind, detail) = self.inner.classify(&store, &error);
            fail(kind, detail)
        })?;
        validate::assessment(&assessment, conversation.transcript.len())
            .map_err(|detail| fail(FailureKind::InvalidAnswer, detail))?;
        Ok(assessment)
    }
}

/// Routes a handoff with the tenant's policy if it has one, else with the built-in strategy.
pub fn route_handoff(
    policy: Option<&RoutingPolicy>,
    input: &Handoff,
    builtin: &BuiltinRouting,
) -> RoutingOutcome {
    match policy {
        Some(policy) => policy.route(input, builtin),
        None => {
            let started = Instant::now();
            let decision = builtin.route(input);
            RoutingOutcome {
                decision,
                decided_by: DecidedBy::BuiltIn,
                failure: None,
                elapsed: started.elapsed(),
            }
        }
    }
}

/// Scores a closed conversation with the tenant's policy if it has one, else with the built-in scorer.
pub fn score_conversation(
    policy: Option<&QualityPolicy>,
    conversation: &ClosedConversation,
    builtin: &BuiltinQuality,
) -> QualityOutcome {
    match policy {
        Some(policy) => policy.score(conversation, builtin),
        None => {
            let started = Instant::now();
            let assessment = builtin.score(conversation);
            QualityOutcome {
                assessment,
                decided_by: DecidedBy::BuiltIn,
                failure: None,
                elapsed: started.elapsed(),
            }
        }
    }
}

/// The input every routing policy must answer validly before it is activated: a non-VIP
/// Chinese-speaking web customer who sent a screenshot and asks for a human on a weekday at
/// 10:30 Beijing time.
pub fn sample_handoff() -> Handoff {
    use crate::types::{AgentLoad, AttachmentCounts, Customer, Message, SkillGroupSnapshot};
    let last_messages = vec![
        Message {
            speaker: Speaker::Customer,
            author_id: "sample-customer".into(),
            text: "我要退款".into(),
            at_unix_ms: 1_767_234_600_000,
            attachments: vec![sample_screenshot()],
        },
        Message {
            speaker: Speaker::Bot,
            author_id: String::new(),
            text: "请问订单号是多少？".into(),
            at_unix_ms: 1_767_234_601_000,
            attachments: vec![],
        },
        Message {
            speaker: Speaker::Customer,
            author_id: "sample-customer".into(),
            text: "转人工".into(),
            at_unix_ms: 1_767_234_630_000,
            attachments: vec![],
        },
    ];
    Handoff {
        tenant: "sample".into(),
        conversation_id: "sample-conversation".into(),
        channel: "web".into(),
        customer: Customer {
            id: "sample-customer".into(),
            vip_level: 0,
            crm_tags: vec!["new".into()],
            attributes: vec![],
        },
        language: "zh-CN".into(),
        intent: Some("refund".into()),
        intent_confidence: 0.42,
        handoff_reason: "asked_for_human".into(),
        skill_hint: Some("billing".into()),
        customer_attachments: AttachmentCounts::sent_by_customer(&last_messages),
        last_messages,
        queues: vec![
            SkillGroupSnapshot {
                name: "general".into(),
                queue_length: 3,
                online_agents: vec![AgentLoad {
                    agent_id: "agent-1".into(),
                    active_conversations: 2,
                    max_conversations: 5,
                }],
            },
            SkillGroupSnapshot {
                name: "billing".into(),
                queue_length: 0,
                online_agents: vec![AgentLoad {
                    agent_id: "agent-2".into(),
                    active_conversations: 0,
                    max_conversations: 3,
                }],
            },
        ],
        // 2026-01-01 (a Thursday) 02:30:30 UTC = 10:30 in UTC+8.
        now_unix_ms: 1_767_234_630_000,
        utc_offset_minutes: 480,
    }
}

/// The screenshot in the sample inputs: policies are tried on an attachment before activation.
fn sample_screenshot() -> crate::types::Attachment {
    crate::types::Attachment {
        kind: crate::types::AttachmentKind::Image,
        name: "screenshot.png".into(),
        media_type: "image/png".into(),
        size_bytes: 48_213,
    }
}

/// The input every quality policy must answer validly before it is activated (the customer
/// sends a screenshot with the order number, which the agent answers within a minute).
pub fn sample_closed_conversation() -> ClosedConversation {
    use crate::types::Message;
    let at = |seconds: u64| 1_767_234_600_000 + seconds * 1000;
    let message = |speaker: Speaker, author: &str, text: &str, seconds: u64| Message {
        speaker,
        author_id: author.into(),
        text: text.into(),
        at_unix_ms: at(seconds),
        attachments: vec![],
    };
    let mut with_screenshot = message(Speaker::Customer, "sample-customer", "订单号 12345", 80);
    with_screenshot.attachments.push(sample_screenshot());
    ClosedConversation {
        tenant: "sample".into(),
        conversation_id: "sample-conversation".into(),
        channel: "web".into(),
        language: "zh-CN".into(),
        opened_at_unix_ms: at(0),
        handed_off_at_unix_ms: Some(at(30)),
        assigned_at_unix_ms: Some(at(45)),
        closed_at_unix_ms: at(300),
        closed_by: Speaker::Agent,
        transcript: vec![
            message(Speaker::Customer, "sample-customer", "我要退款", 0),
            message(Speaker::Bot, "", "请问订单号是多少？", 1),
            message(Speaker::Customer, "sample-customer", "转人工", 30),
            message(Speaker::Agent, "agent-2", "您好，我来帮您处理退款", 50),
            with_screenshot,
            message(
                Speaker::Agent,
                "agent-2",
                "已为您提交退款，3 个工作日内到账",
                140,
            ),
        ],
    }
}
