//! The guard in front of every tenant route (`/v1/tenants/{tenant}/...`):
//!
//! - **CSRF.** A request that changes something and authenticates with the console's session
//!   cookie (not with a bearer token) must carry the session's CSRF token in `X-CSRF-Token`;
//!   the cookie is also `SameSite=Strict`. Sign-in itself is exempt (it has no session yet).
//! - **Audit.** Every change that succeeds is written to the tenant's audit log: who (the
//!   caller [`crate::http::auth::require`] let in), when, what (method and route), the path
//!   below the tenant, and a before/after summary that handlers add with
//!   [`record::note`](crate::http::record::note).
//!   Exports of conversations are reads, and audited too (`AUDITED_READS`).
//!
//! The actor and the summary travel from the handler to this guard in a task-local slot
//! ([`crate::http::record`]), so a handler cannot forget to be audited: passing `require` is
//! what names the actor.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{HttpError, ServiceError};
use crate::http::auth::{bearer, csrf_token, session_cookie, CSRF_HEADER};
use crate::http::record;
use crate::AppState;
use store::crypto::constant_time_eq;
use store::NewAuditEntry;

const TENANT_PREFIX: &str = "/v1/tenants/{tenant}/";

/// Routes that are POSTs but change nothing (dry runs, checks): not audit entries.
const CHANGE_NOTHING: [&str; 4] = [
    "bot/ask",
    "intents/classify",
    "policies/sensitive-words/check",
    "policies/routing/dry-run",
];

/// Reads that are audit entries all the same: they hand out many customers' data at once.
const AUDITED_READS: [&str; 1] = ["exports/conversations"];

fn changes(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware (a route layer, so the matched route is known).
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let Some(below) = route.strip_prefix(TENANT_PREFIX).map(str::to_owned) else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let audited_read = !changes(&method) && AUDITED_READS.contains(&below.as_str());
    if !changes(&method) && !audited_read {
        return next.run(request).await;
    }
    // A read needs no CSRF token (it is a download link in the console).
    if !audited_read && below != "auth/login" && bearer(request.headers()).is_none() {
        if let Some(cookie) = session_cookie(request.headers()) {
            let sent = request
                .headers()
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent, &csrf_token(&state, cookie)) {
                return HttpError(ServiceError::denied(
                    "csrf",
                    "this request needs the session's X-CSRF-Token header",
                ))
                .into_response();
            }
        }
    }
    let path = request.uri().path().to_owned();
    let mut segments = path.trim_start_matches('/').splitn(4, '/');
    let tenant = segments.nth(2).unwrap_or("").to_owned();
    let target = segments.next().unwrap_or("").to_owned();
    let (response, slot) = record::scope(next.run(request)).await;
    let status = response.status();
    let changed = status.is_success() && !CHANGE_NOTHING.contains(&below.as_str());
    if let (Some((actor_kind, actor)), true) = (slot.actor, changed) {
        let entry = NewAuditEntry {
            tenant_id: tenant,
            actor_kind: actor_kind.to_owned(),
            actor,
            action: format!("{method} {below}"),
            target,
            status: status.as_u16(),
            summary: slot.summary.unwrap_or_else(|| serde_json::json!({})),
        };
        // The change is made and its answer stands; an entry that cannot be written is an
        // error of ours, logged loudly.
        if let Err(error) = state.store.add_audit_entry(&entry).await {
            tracing::error!(%error, action = %entry.action, target = %entry.target, "audit entry not written");
        }
    }
    response
}
