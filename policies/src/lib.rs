//! # switchboard-policies
//!
//! Tenant code that steers routing and scores quality, run safely; and the sensitive-word engine.
//! This crate knows nothing about HTTP or storage: the gateway stores component bytes, versions
//! and word lists, and calls in here.
//!
//! ## WASM policies
//!
//! A policy is a WebAssembly *component* implementing one world of the WIT package
//! `switchboard:policy@0.2.0` (`policies/wit/policy.wit`):
//!
//! - `routing`: `route(handoff) -> routing-decision`, called on every handoff. The answer is a
//!   skill group, a priority 0–9 and an optional preferred agent, or a rejection with a message
//!   for the customer.
//! - `quality`: `score(closed-conversation) -> assessment`, called on every close: a score 0–100
//!   and labelled findings.
//!
//! Components may import nothing (no WASI): the host links no functions, so there is no clock,
//! filesystem, network or randomness to reach. The time comes in the input.
//!
//! Accepted versions ([`WIT_VERSIONS`]): **0.2.0** (messages carry their attachments — kind,
//! name, media type, size — and the routing input counts the images and files the customer sent)
//! and **0.1.0** (`policies/wit-0.1.0/`, frozen: the same input without attachments). A component
//! is matched against each version's world, newest first, and called with the input of the
//! version it was built against, so a policy uploaded before 0.2.0 keeps deciding exactly as it
//! did ([`RoutingPolicy::wit_version`] tells which).
//!
//! ```no_run
//! use switchboard_policies::{BuiltinRouting, PolicyEngine, PolicyEngineConfig, PolicyId, sample_handoff};
//!
//! let engine = PolicyEngine::new(PolicyEngineConfig::default())?;          // one per process
//! let bytes = std::fs::read("policies/fixtures/vip-routing.wasm").unwrap();
//! // Upload: compile (cached by SHA-256), check imports and world, answer the sample input.
//! let policy = engine.load_routing(PolicyId::new("acme", 3), &bytes)?;
//! // Handoff: always a decision; the built-in one when the policy fails.
//! let outcome = policy.route(&sample_handoff(), &BuiltinRouting::default());
//! if let Some(failure) = &outcome.failure { eprintln!("{failure}"); }      // also logged and counted
//! # Ok::<(), switchboard_policies::PolicyError>(())
//! ```
//!
//! Every call gets a fresh store instantiated from the policy's pre-instantiated component, with
//! hard limits ([`PolicyLimits`]): fuel (5 M), a wall-time deadline by epoch interruption
//! (10 ms), a 16 MiB memory cap. A trap, out-of-fuel, timeout, memory cap or an answer outside
//! the contract yields the built-in decision plus a [`PolicyFailure`] (kind and policy version),
//! logged with `tracing` and counted in [`PolicyMetrics`] (`render_prometheus` for `/metrics`).
//! Calls are synchronous (tens of microseconds, up to the deadline for a hostile policy): run them
//! on a blocking pool, not on an async executor thread.
//!
//! How the gateway wires it:
//! - `PUT .../policies/routing` → [`PolicyEngine::load_routing`] (or `load_quality`); on `Ok`
//!   store the bytes as a new version, on `Err` answer with [`PolicyError::code`]. Keep the
//!   returned [`RoutingPolicy`] as the tenant's active one.
//! - `POST .../activate {"version":N}` → load the stored bytes of version N again (a cache hit
//!   when they were loaded before) and swap the active policy.
//! - handoff → [`route_handoff`]`(active.as_ref(), &input, &builtin)`; close →
//!   [`score_conversation`].
//! - `switchboard policy check FILE` → [`PolicyEngine::check`] tells the world and validates.
//!
//! ## Sensitive words
//!
//! [`sensitive::SensitiveWordRegistry`] holds every tenant's named [`sensitive::WordList`]s (each
//! with an action `block|mask|flag|handoff`; tenants start with none) compiled into one
//! Aho-Corasick automaton per tenant. [`sensitive::SensitiveWords::check`] returns the
//! [`sensitive::Verdict`] `{action, matches: [{word, start, end, list}], masked}` that the
//! dry-run endpoint returns as JSON; [`sensitive::SensitiveWords::scan`] finds the same with the
//! words and list names borrowed and the masked text built on demand (the chat path). Text and words are folded the same way before matching
//! (full-width, case, separators, traditional → simplified), with offsets in characters of the
//! original text. [`sensitive::WordList::from_plain_text`] parses the one-word-a-line upload.
//!
//! ## Layout
//!
//! - `wit/policy.wit` — the versioned WIT package: shared `types`, worlds `routing` and `quality`;
//!   `wit-0.1.0/` — the previous version, frozen, still accepted.
//! - `src/bindings.rs` — the bindings generated from each accepted version.
//! - `src/types.rs` — plain Rust mirrors of the WIT types (serde), the crate's public vocabulary.
//! - `src/host.rs` — [`PolicyEngine`] (engine, compile cache, epoch ticker), [`RoutingPolicy`],
//!   [`QualityPolicy`], limits, failure classification, sample inputs.
//! - `src/convert.rs` — public types ↔ each version's bindings (the bindings never leave the crate).
//! - `src/validate.rs` — the answer contract (priority range, non-empty group, score range, ...).
//! - `src/builtin.rs` — [`BuiltinRouting`] and [`BuiltinQuality`]: defaults and fallbacks.
//! - `src/metrics.rs` — call-outcome and cache counters.
//! - `src/error.rs` — [`PolicyError`], [`FailureKind`], [`PolicyKind`].
//! - `src/sensitive/` — the word-list engine and its text folding.
//! - `examples/` — guest policies in Rust (their own cargo workspace, built by
//!   `build-examples.sh`); `fixtures/` — the built components the tests load.
//! - `benches/` — `bench_routing` and `bench_sensitive` (run with `cargo run --release --example`;
//!   `bench-sensitive.sh` adds the Python ahocorasick-rs reference). Results: `docs/bench-policies.md`.

mod bindings;
pub mod builtin;
mod convert;
pub mod error;
mod host;
pub mod metrics;
pub mod sensitive;
pub mod types;
mod validate;

pub use builtin::{BuiltinQuality, BuiltinRouting};
pub use error::{FailureKind, PolicyError, PolicyKind};
pub use host::{
    route_handoff, sample_closed_conversation, sample_handoff, score_conversation, DecidedBy,
    PolicyEngine, PolicyEngineConfig, PolicyFailure, PolicyId, PolicyLimits, QualityOutcome,
    QualityPolicy, RoutingOutcome, RoutingPolicy, WIT_VERSIONS,
};
pub use metrics::{KindSnapshot, MetricsSnapshot, PolicyMetrics};
