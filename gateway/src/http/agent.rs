//! The agent side: the console's WebSocket and the agent's own profile.

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{
    agent_for_socket, agent_from_token, bearer, ws_ticket, TICKET_LIFETIME_SECS,
};
use crate::http::ws::TokenQuery;
use crate::session::run_agent;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/ws", get(websocket))
        .route("/v1/agent/ticket", axum::routing::post(ticket))
        .route("/v1/agent/me", get(me))
}

async fn websocket(
    State(state): State<AppState>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let agent = agent_for_socket(&state, query.ticket.as_deref(), query.token.as_deref()).await?;
    let chat = state.chat.clone();
    Ok(crate::http::ws::upgrade(
        upgrade,
        move |incoming, outgoing| run_agent(chat, agent, incoming, outgoing),
    ))
}

/// A one-time ticket for the agent's next WebSocket (`/v1/agent/ws?ticket=`).
async fn ticket(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let agent =
        agent_from_token(&state, bearer(&headers).ok_or(ServiceError::Unauthorized)?).await?;
    let ticket = ws_ticket(
        &state,
        store::crypto::TokenKind::AgentTicket,
        &agent.tenant_id,
        &agent.id,
        agent.token_version,
    );
    Ok(Json(serde_json::json!({
        "ticket": ticket,
        "expires_in_ms": TICKET_LIFETIME_SECS * 1000,
    })))
}

/// The agent's profile, and a renewed token: a console that signs in or reconnects keeps its
/// token fresh (agent tokens expire after 90 days unused).
async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let agent =
        agent_from_token(&state, bearer(&headers).ok_or(ServiceError::Unauthorized)?).await?;
    let mut body = serde_json::to_value(&agent).unwrap_or_default();
    body["token"] = super::admin::agent_token(&state, &agent).into();
    Ok(Json(body))
}
