//! # switchboard-policies
//!
//! Owns the wasmtime host for tenant WASM policies (routing and quality) with hard limits, and
//! the sensitive-word engine. It knows nothing about axum or the store.
