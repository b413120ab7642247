//! The agent side: the console's WebSocket and the agent's own profile.

use axum::extract::{Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{agent_from_token, bearer};
use crate::http::ws::TokenQuery;
use crate::session::run_agent;
use crate::AppState;
use store::Agent;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/ws", get(websocket))
        .route("/v1/agent/me", get(me))
}

async fn websocket(
    State(state): State<AppState>,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let agent = agent_from_token(&state, &query.token).await?;
    let chat = state.chat.clone();
    Ok(crate::http::ws::upgrade(
        upgrade,
        move |incoming, outgoing| run_agent(chat, agent, incoming, outgoing),
    ))
}

async fn me(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Json<Agent>> {
    let agent =
        agent_from_token(&state, bearer(&headers).ok_or(ServiceError::Unauthorized)?).await?;
    Ok(Json(agent))
}
