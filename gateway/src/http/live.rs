//! The supervisors' live view (area `live`): queues, agents and open conversations now, over
//! HTTP and pushed over a WebSocket whenever they change; private notes to the agent holding a
//! chat; transfers on the agent's behalf; taking a chat over.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, session_cookie, session_key, session_member, Area, Caller};
use crate::http::record;
use crate::AppState;
use engine::chat::TransferTarget;
use store::{Agent, Member, MemberUpdate};

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// How often a live socket looks for changes.
const LIVE_TICK: Duration = Duration::from_secs(1);
/// A live socket re-checks its session this often (a disabled member is cut off).
const SESSION_RECHECK_TICKS: u32 = 30;
/// Live sockets open at once per tenant on one node.
pub const LIVE_SOCKETS_PER_TENANT: usize = 16;
/// The skill of the agent record a supervisor takes chats over with: no queue routes to it, so
/// it is never given chats on its own.
const SUPERVISOR_SKILL: &str = "supervision";
const SUPERVISOR_CAPACITY: i64 = 20;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/live", get(live))
        .route("/v1/tenants/{tenant}/live/ws", get(live_socket))
        .route(
            "/v1/tenants/{tenant}/conversations/{id}/notes",
            get(notes).post(add_note),
        )
        .route(
            "/v1/tenants/{tenant}/conversations/{id}/transfer",
            post(transfer),
        )
        .route(
            "/v1/tenants/{tenant}/conversations/{id}/takeover",
            post(take_over),
        )
}

async fn live(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let view = state.chat.live_view(&tenant).await?;
    Ok(Json(json!({ "at": store::util::now_ms(), "view": view })))
}

/// A browser's WebSocket comes from a page of this origin: another site's page is refused (the
/// session cookie is SameSite=Strict as well).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Not a browser (no Origin): the cookie or key decides.
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

async fn live_socket(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let Path(tenant) = path?;
    if !same_origin(&headers) {
        return Err(ServiceError::denied("bad_origin", "open the live view from this site").into());
    }
    require(&state, &headers, &tenant, Area::Live).await?;
    let watching = state
        .connections
        .open(&format!("live {tenant}"), LIVE_SOCKETS_PER_TENANT)?;
    let session = session_cookie(&headers).map(session_key);
    Ok(upgrade
        .max_message_size(4 * 1024)
        .on_upgrade(move |socket| watch(state, tenant, session, socket, watching)))
}

/// Sends the live view at once and again whenever it changes; ends when the socket closes or
/// the member's session does.
async fn watch(
    state: AppState,
    tenant: String,
    session: Option<String>,
    mut socket: WebSocket,
    _watching: crate::http::connections::ConnectionSlot,
) {
    let mut last = String::new();
    let mut ticks = 0u32;
    let mut interval = tokio::time::interval(LIVE_TICK);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        }
        ticks = ticks.wrapping_add(1);
        if ticks % SESSION_RECHECK_TICKS == 0 {
            if let Some(session) = &session {
                let alive = matches!(session_member(&state, session).await, Ok(Some(_)));
                if !alive {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            }
        }
        let view = match state.chat.live_view(&tenant).await {
            Ok(view) => view,
            Err(error) => {
                tracing::warn!(tenant, error = %error.describe(), "live view failed");
                continue;
            }
        };
        // Waits grow every second by themselves (clients tick them from `at`): only a change
        // of anything else is news.
        let mut settled = view.clone();
        for queue in &mut settled.queues {
            queue.oldest_wait_ms = 0;
        }
        let text = json!(settled).to_string();
        if text != last {
            let frame = json!({ "type": "live", "at": store::util::now_ms(), "view": view });
            if socket
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
            last = text;
        }
    }
}

async fn notes(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let notes: Vec<serde_json::Value> = state
        .chat
        .notes(&tenant, &id)
        .await?
        .iter()
        .map(crate::session::note_view)
        .collect();
    Ok(Json(json!({ "notes": notes })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewNote {
    text: String,
}

async fn add_note(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: JsonBody<NewNote>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let Path((tenant, id)) = path?;
    let caller = require(&state, &headers, &tenant, Area::Live).await?;
    let Json(note) = body?;
    let note = state
        .chat
        .add_note(&tenant, &id, &caller.name(), &note.text)
        .await?;
    record::note(json!({ "conversation": id }));
    Ok((
        StatusCode::CREATED,
        Json(json!({ "note": crate::session::note_view(&note) })),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Transfer {
    /// `skill:<group>` or `agent:<id>`.
    to: String,
}

async fn transfer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: JsonBody<Transfer>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let Json(transfer) = body?;
    let target = TransferTarget::parse(&transfer.to).ok_or_else(|| {
        ServiceError::invalid("bad_transfer", "to is skill:<group> or agent:<id>")
    })?;
    state.chat.transfer_for(&tenant, &id, &target).await?;
    record::note(json!({ "conversation": id, "to": transfer.to }));
    Ok(Json(json!({ "conversation_id": id, "to": transfer.to })))
}

/// The agent record a member works chats as, made on first need.
async fn member_agent(state: &AppState, member: &Member) -> ApiResult<Agent> {
    if let Some(id) = &member.agent_id {
        if let Some(agent) = state.store.agent(&member.tenant_id, id).await? {
            return Ok(agent);
        }
    }
    let agent = state
        .store
        .create_agent(
            &member.tenant_id,
            &member.name,
            &[SUPERVISOR_SKILL.to_owned()],
            SUPERVISOR_CAPACITY,
        )
        .await?;
    let link = MemberUpdate {
        agent_id: Some(agent.id.clone()),
        ..MemberUpdate::default()
    };
    state
        .store
        .update_member(&member.tenant_id, &member.id, &link)
        .await?;
    Ok(agent)
}

async fn take_over(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, id)) = path?;
    let Caller::Member(member) = require(&state, &headers, &tenant, Area::Live).await? else {
        return Err(ServiceError::invalid(
            "needs_member",
            "a chat is taken over by a signed-in member, not with the admin key",
        )
        .into());
    };
    let agent = member_agent(&state, &member).await?;
    state.chat.take_over(&tenant, &id, &agent).await?;
    record::note(json!({ "conversation": id, "agent": agent.id }));
    let token = super::admin::agent_token(&state, &agent);
    Ok(Json(json!({
        "conversation_id": id,
        "agent_id": agent.id,
        "agent_console_url": format!("/console#token={token}"),
    })))
}
