//! A tenant's admin API: agents, transcripts, customers and canned replies. Every route is
//! scoped by the `{tenant}` in its path and takes that tenant's admin key.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, require_reader, Area};
use crate::http::record;
use crate::AppState;
use engine::presence::AgentStatus;
use store::crypto::{Claims, TokenKind};
use store::util::{new_id, now_ms};
use store::{CannedReply, Conversation, ConversationFilter, CustomerProfile};

type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;
type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/agents",
            get(list_agents).post(create_agent),
        )
        .route(
            "/v1/tenants/{tenant}/agents/{id}/token",
            post(reissue_token),
        )
        .route(
            "/v1/tenants/{tenant}/conversations",
            get(list_conversations),
        )
        .route(
            "/v1/tenants/{tenant}/conversations/{id}",
            get(get_conversation),
        )
        .route(
            "/v1/tenants/{tenant}/conversations/{id}/messages",
            get(conversation_messages),
        )
        .route(
            "/v1/tenants/{tenant}/customers/{id}",
            get(get_customer).put(put_customer).delete(erase_customer),
        )
        .route(
            "/v1/tenants/{tenant}/customers/{id}/revoke-tokens",
            post(revoke_customer_tokens),
        )
        .route(
            "/v1/tenants/{tenant}/canned-replies",
            get(list_canned).post(create_canned),
        )
        .route(
            "/v1/tenants/{tenant}/canned-replies/{id}",
            put(put_canned).delete(delete_canned),
        )
}

/// Revokes every visitor token of a customer (a token leaked or stolen): their open
/// connections close on every node; the widget starts a new session.
async fn revoke_customer_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let version = state.store.revoke_customer_tokens(&tenant, &id).await?;
    state.bus.publish(
        &engine::bus::customer_topic(&id),
        engine::bus::BusEvent::VisitorRevoked {
            customer_id: id.clone(),
            version,
        },
    );
    Ok(Json(
        serde_json::json!({ "customer_id": id, "token_version": version }),
    ))
}

/// A profile whose fields fit their limits and hold no control characters, or `bad_profile`.
pub(crate) fn check_profile(profile: &CustomerProfile) -> Result<(), ServiceError> {
    if let Some((field, limit)) = profile.too_long() {
        return Err(ServiceError::invalid(
            "bad_profile",
            format!("{field} is longer than {limit} characters"),
        ));
    }
    if let Some(field) = profile.with_control_characters() {
        return Err(ServiceError::invalid(
            "bad_profile",
            format!("{field} has control characters"),
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewAgent {
    name: String,
    #[serde(default = "default_skills")]
    skills: Vec<String>,
    #[serde(default = "default_max_concurrent")]
    max_concurrent: i64,
}

fn default_skills() -> Vec<String> {
    vec![engine::chat::DEFAULT_SKILL_GROUP.to_owned()]
}

fn default_max_concurrent() -> i64 {
    5
}

/// A signed agent token for this agent's current token version.
pub fn agent_token(state: &AppState, agent: &store::Agent) -> String {
    state.signer.sign(&Claims {
        tenant: agent.tenant_id.clone(),
        kind: TokenKind::Agent,
        subject: agent.id.clone(),
        version: agent.token_version,
        iat: now_ms() / 1000,
        nonce: String::new(),
    })
}

async fn create_agent(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<NewAgent>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Team).await?;
    let Json(new) = body?;
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 80 {
        return Err(ServiceError::invalid("bad_name", "name must be 1 to 80 characters").into());
    }
    if new.skills.is_empty()
        || new
            .skills
            .iter()
            .any(|s| s.trim().is_empty() || s.len() > 64)
    {
        return Err(ServiceError::invalid(
            "bad_skills",
            "skills must be a non-empty list of names up to 64 bytes",
        )
        .into());
    }
    if !(1..=100).contains(&new.max_concurrent) {
        return Err(
            ServiceError::invalid("bad_max_concurrent", "max_concurrent must be 1 to 100").into(),
        );
    }
    let agent = state
        .store
        .create_agent(&tenant, name, &new.skills, new.max_concurrent)
        .await?;
    let token = agent_token(&state, &agent);
    let mut body = serde_json::to_value(&agent).unwrap_or_default();
    body["token"] = serde_json::Value::String(token);
    Ok((StatusCode::CREATED, Json(body)))
}

/// A new token for the agent. Every earlier token stops working at once: new connections and
/// API calls with it are refused, and the agent's open connections (on every node) close with a
/// `token_revoked` error. The agent's chats stay theirs through the usual grace period.
async fn reissue_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Team).await?;
    let agent = state
        .store
        .reissue_agent_token(&tenant, &id)
        .await?
        .ok_or(ServiceError::NotFound("agent"))?;
    state.chat.bus.publish(
        &engine::bus::agent_topic(&agent.id),
        engine::bus::BusEvent::TokenRevoked {
            agent_id: agent.id.clone(),
            version: agent.token_version,
        },
    );
    tracing::info!(tenant, agent_id = %agent.id, version = agent.token_version, "agent token reissued");
    let token = agent_token(&state, &agent);
    let mut body = serde_json::to_value(&agent).unwrap_or_default();
    body["token"] = serde_json::Value::String(token);
    Ok(Json(body))
}

async fn list_agents(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Team).await?;
    let loads = state.store.agent_loads(&tenant).await?;
    let agents: Vec<serde_json::Value> = state
        .store
        .agents(&tenant)
        .await?
        .into_iter()
        .map(|agent| {
            let status = match state.chat.presence.status(&agent.id) {
                Some(AgentStatus::Online) => "online",
                Some(AgentStatus::Away) => "away",
                None => "offline",
            };
            let mut value = serde_json::to_value(&agent).unwrap_or_default();
            value["status"] = status.into();
            value["load"] = loads.get(&agent.id).copied().unwrap_or(0).into();
            value
        })
        .collect();
    Ok(Json(serde_json::json!({ "agents": agents })))
}

async fn list_conversations(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: Result<Query<ConversationFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let Query(filter) = query?;
    if let Some(value) = &filter.state {
        if store::ConversationState::parse(value).is_none() {
            return Err(ServiceError::invalid(
                "bad_query",
                "state must be bot, queued, assigned or closed",
            )
            .into());
        }
    }
    let (conversations, next) = state.store.list_conversations(&tenant, &filter).await?;
    Ok(Json(
        serde_json::json!({ "conversations": conversations, "next": next }),
    ))
}

/// A conversation of this tenant; another tenant's id is "not found".
async fn tenant_conversation(state: &AppState, tenant: &str, id: &str) -> ApiResult<Conversation> {
    state
        .store
        .conversation(id)
        .await?
        .filter(|conversation| conversation.tenant_id == tenant)
        .ok_or(ServiceError::NotFound("conversation").into())
}

async fn get_conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let conversation = tenant_conversation(&state, &tenant, &id).await?;
    let customer = state
        .store
        .customer(&tenant, &conversation.customer_id)
        .await?;
    let events = state.store.events(&id).await?;
    Ok(Json(serde_json::json!({
        "conversation": conversation, "customer": customer, "events": events,
        "quality": state.store.quality_scores(&id).await?,
    })))
}

#[derive(Deserialize)]
struct MessagesQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    limit: Option<i64>,
}

/// About how much text one page of a conversation's messages holds in the console.
const CONSOLE_PAGE_BYTES: usize = 1 << 20;

async fn conversation_messages(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    query: Result<Query<MessagesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let Query(query) = query?;
    tenant_conversation(&state, &tenant, &id).await?;
    // At most `limit` messages and about a MiB of text: long messages make a page shorter.
    let limit = query.limit.unwrap_or(200).clamp(1, 1000) as usize;
    let messages = state
        .store
        .messages_page(&id, query.after, limit, CONSOLE_PAGE_BYTES)
        .await?;
    let frames: Vec<_> = messages
        .iter()
        .map(|message| crate::session::agent_message_frame(&state.chat.files, message))
        .collect();
    Ok(Json(serde_json::json!({ "messages": frames })))
}

async fn get_customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<store::Customer>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    Ok(Json(
        state
            .store
            .customer(&tenant, &id)
            .await?
            .ok_or(ServiceError::NotFound("customer"))?,
    ))
}

/// Erases the customer and their conversation, messages and attachments (admins only: it
/// cannot be undone). The audit entry keeps who did it and the counts, never the data.
async fn erase_customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<Json<engine::chat::erasure::Erasure>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Settings).await?;
    let erased = state.chat.erase_customer(&tenant, &id).await?;
    record::note(serde_json::json!({ "erased": &erased }));
    Ok(Json(erased))
}

async fn put_customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: JsonBody<CustomerProfile>,
) -> ApiResult<Json<store::Customer>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let Json(profile) = body?;
    check_profile(&profile)?;
    let customer = state
        .store
        .update_customer_profile(&tenant, &id, &profile)
        .await?;
    tracing::info!(customer = %customer.masked(), "customer profile updated");
    Ok(Json(customer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CannedBody {
    shortcut: String,
    text: String,
}

fn check_canned(body: &CannedBody) -> ApiResult<()> {
    let shortcut_ok = !body.shortcut.is_empty()
        && body.shortcut.chars().count() <= 32
        && !body.shortcut.chars().any(char::is_whitespace);
    if !shortcut_ok {
        return Err(ServiceError::invalid(
            "bad_shortcut",
            "shortcut must be 1 to 32 characters without spaces",
        )
        .into());
    }
    if body.text.trim().is_empty() || body.text.len() > 4096 {
        return Err(ServiceError::invalid("bad_text", "text must be 1 to 4096 bytes").into());
    }
    Ok(())
}

async fn list_canned(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<Vec<CannedReply>>> {
    let Path(tenant) = path?;
    require_reader(&state, &headers, &tenant, Area::Team).await?;
    Ok(Json(state.store.canned_replies(&tenant).await?))
}

async fn create_canned(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<CannedBody>,
) -> ApiResult<(StatusCode, Json<CannedReply>)> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Team).await?;
    let Json(body) = body?;
    check_canned(&body)?;
    let reply = CannedReply {
        id: new_id("cr_"),
        shortcut: body.shortcut,
        text: body.text,
    };
    state.store.put_canned_reply(&tenant, &reply).await?;
    Ok((StatusCode::CREATED, Json(reply)))
}

async fn put_canned(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: JsonBody<CannedBody>,
) -> ApiResult<Json<CannedReply>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Team).await?;
    let Json(body) = body?;
    check_canned(&body)?;
    if !state
        .store
        .canned_replies(&tenant)
        .await?
        .iter()
        .any(|reply| reply.id == id)
    {
        return Err(ServiceError::NotFound("canned reply").into());
    }
    let reply = CannedReply {
        id,
        shortcut: body.shortcut,
        text: body.text,
    };
    state.store.put_canned_reply(&tenant, &reply).await?;
    Ok(Json(reply))
}

async fn delete_canned(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
) -> ApiResult<StatusCode> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Team).await?;
    state.store.delete_canned_reply(&tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
