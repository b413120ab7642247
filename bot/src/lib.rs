//! # switchboard-bot
//!
//! Owns the decision for one customer turn while a conversation is in the `bot` state: answer from
//! the knowledge base, clarify with close FAQs, hand off to a person, or say honestly that the
//! question is out of scope. It reads from `models` and `knowledge` (and optionally an LLM) and
//! never sends anything itself: the gateway turns a decision into outbound messages.
//!
//! Status: the gateway runs in human-first mode until the bot issue lands; this crate has no
//! behaviour yet and nothing depends on it.
