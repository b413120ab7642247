//! The current request's audit record, filled while its handler runs: who made it (named by
//! `auth::require`) and what it changed (a before/after summary a handler adds with [`note`]).
//! The audit guard (`http::audit`) opens the record around each change and writes it.

use std::future::Future;
use std::sync::Mutex;

#[derive(Default)]
/// Who made a request and what it changed.
pub struct Slot {
    pub actor: Option<(&'static str, String)>,
    pub summary: Option<serde_json::Value>,
}

tokio::task_local! {
    static SLOT: Mutex<Slot>;
}

/// Names who made the current request (called by `require`). Outside a guarded request it does
/// nothing.
pub fn set_actor(kind: &'static str, name: String) {
    let _ = SLOT.try_with(|slot| {
        slot.lock().unwrap_or_else(|p| p.into_inner()).actor = Some((kind, name));
    });
}

/// Adds a before/after summary (an object) to the current request's audit entry.
pub fn note(summary: serde_json::Value) {
    let _ = SLOT.try_with(|slot| {
        slot.lock().unwrap_or_else(|p| p.into_inner()).summary = Some(summary);
    });
}

/// Runs `work` with an empty record; answers its output and the record it left.
pub async fn scope<T>(work: impl Future<Output = T>) -> (T, Slot) {
    SLOT.scope(Mutex::new(Slot::default()), async move {
        let output = work.await;
        let slot =
            SLOT.with(|slot| std::mem::take(&mut *slot.lock().unwrap_or_else(|p| p.into_inner())));
        (output, slot)
    })
    .await
}
