//! # switchboard-engine
//!
//! The operations of live chat, without HTTP: what happens to a message between the edge that
//! decoded it and the connections that deliver it. Depends on the store; the edge (the
//! `switchboard` binary) depends on it.
//!
//! Layout, lower modules first (a module uses only those above it in this list):
//! - [`error`]: [`ServiceError`] with stable codes; [`error::blocking`].
//! - [`metrics`], [`limits`] (rate limits), [`tenant`] (tenant settings and their cache),
//!   [`presence`] (agents connected to this node).
//! - [`bus`] (delivery notifications), [`redis_bus`] (the bus across nodes: Redis streams
//!   sharded by conversation), [`cluster`] (bus, agent registry, tenant budget and nonces:
//!   in-process or Redis, chosen once at start-up).
//! - [`kb`] (the knowledge base: store is the truth, this node's tantivy index derived from it),
//!   [`intents`] (process-wide models, tenants' classifiers), [`policy`] (tenants' WASM policies
//!   and word lists).
//! - [`gaps`] (the knowledge-gap loop: unanswered questions, their groups, draft FAQs).
//! - [`bot_runtime`] (the bot and its dense side), [`bot_workers`] (the turn pool, shedding).
//! - [`chat`]: the chat service: customer and agent sends, close, transfer, the dispatcher, bot
//!   turns, handoff through routing, quality on close.
//! - [`outbound`]: delivery of replies to webhook channels and mobile apps (the outbox worker).

pub mod bot_runtime;
pub mod bot_workers;
pub mod bus;
pub mod chat;
pub mod cluster;
pub mod error;
pub mod export;
pub mod files;
pub mod gaps;
pub mod hours;
pub mod intents;
pub mod jobs;
pub mod kb;
pub mod limits;
pub mod metrics;
pub mod outbound;
pub mod policy;
pub mod presence;
pub mod redis_bus;
pub mod reports;
pub mod tenant;

pub use error::{ServiceError, ServiceResult};
