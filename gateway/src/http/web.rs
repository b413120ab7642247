//! The web channel, customer side: visitor sessions, the WebSocket, and the long-poll fallback.

use axum::extract::{ConnectInfo, Query, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, Method};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use switchboard_channels::web::ServerFrame;
use switchboard_channels::ChannelKind;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{StreamExt, StreamMap};
use tower_http::cors::{Any, CorsLayer};

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{
    bearer, visitor_for_socket, visitor_from_token, visitor_token, ws_ticket, TICKET_LIFETIME_SECS,
};
use crate::http::ws::TokenQuery;
use crate::session::{message_frame, run_customer};
use crate::AppState;
use engine::bus::{conversation_topic, customer_topic, BusEvent};
use store::crypto::TokenKind;
use store::util::{is_valid_slug, new_id};
use store::{ConversationState, CustomerProfile};

/// The widget is embedded on the tenant's own site, so these routes answer any origin. They use
/// bearer tokens, never cookies, so no credentials ride along with cross-site requests.
pub fn router(state: &AppState) -> Router<AppState> {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .max_age(std::time::Duration::from_secs(3600));
    // JSON bodies arrive in time (`http::body`); an attachment streams under its own limits.
    let small = Router::new()
        .route("/v1/web/session", post(create_session))
        .route("/v1/web/ticket", post(ticket))
        .route("/v1/web/messages", post(post_message))
        .route("/v1/web/rating", post(post_rating))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::body::in_time,
        ));
    Router::new()
        .merge(small)
        .route("/v1/web/ws", get(websocket))
        .route("/v1/web/poll", get(poll))
        .route(
            "/v1/web/attachments",
            post(super::files::visitor_upload).get(super::files::visitor_links),
        )
        .layer(cors)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    tenant: String,
    /// A token from an earlier session: the same visitor and conversation continue.
    #[serde(default)]
    token: Option<String>,
    /// Optional pre-chat details.
    #[serde(default)]
    profile: Option<CustomerProfile>,
    /// The host site's signed-in user (its own id for them), with `user_hash`: the same person
    /// on every browser and on the tenant's other channels (see `http::identity`).
    #[serde(default)]
    user_id: Option<String>,
    /// `hex(HMAC-SHA256(the tenant's identity secret, user_id))`, computed by the site's backend.
    #[serde(default)]
    user_hash: Option<String>,
}

async fn create_session(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    body: Result<Json<SessionRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), &headers);
    state.chat.limits.session(client)?;
    let Json(request) = body?;
    if !is_valid_slug(&request.tenant) || state.store.tenant(&request.tenant).await?.is_none() {
        return Err(ServiceError::NotFound("tenant").into());
    }
    if request.user_id.is_some() || request.user_hash.is_some() {
        return identified_session(&state, request).await;
    }
    if state.store.identification_required(&request.tenant).await? {
        return Err(ServiceError::identity_required().into());
    }
    let (customer, token) = match request.token {
        // A live widget renews its token here: the same visitor, a fresh token.
        Some(token) => {
            let customer = visitor_from_token(&state, &token).await?;
            if customer.tenant_id != request.tenant {
                return Err(ServiceError::Unauthorized.into());
            }
            let renewed = visitor_token(&state, &customer);
            (customer, renewed)
        }
        None => {
            let visitor_id = new_id("v_");
            let profile = request.profile.unwrap_or_default();
            super::admin::check_profile(&profile)?;
            let customer = state
                .store
                .customer_for_identity(&request.tenant, ChannelKind::Web, &visitor_id, &profile)
                .await?;
            let token = visitor_token(&state, &customer);
            (customer, token)
        }
    };
    let conversation = state.store.conversation_for_customer(&customer.id).await?;
    Ok(Json(serde_json::json!({
        "tenant": customer.tenant_id,
        "visitor_id": customer.external_id,
        "customer_id": customer.id,
        "token": token,
        "conversation_id": conversation.map(|c| c.id),
        "user_id": null,
    })))
}

/// A session for the host site's signed-in user: their signature checked, the visitor is their
/// web identity (the same on every browser) and the token names the customer whose
/// conversation they share with their other linked identities.
async fn identified_session(
    state: &AppState,
    request: SessionRequest,
) -> ApiResult<Json<serde_json::Value>> {
    if request.token.is_some() {
        return Err(ServiceError::invalid(
            "bad_identity",
            "send a saved token or a signed user_id, not both",
        )
        .into());
    }
    let profile = request.profile.unwrap_or_default();
    super::admin::check_profile(&profile)?;
    let (identity, customer) = super::identity::identified_visitor(
        state,
        &request.tenant,
        request.user_id.as_deref(),
        request.user_hash.as_deref(),
        &profile,
    )
    .await?;
    let conversation = state.store.conversation_for_customer(&customer.id).await?;
    // The person is on the site now: replies stop going to the app or a webhook channel they
    // wrote from before (the app takes them back when it connects).
    if let Some(conversation) = &conversation {
        let routed_elsewhere = state
            .store
            .route(&conversation.id)
            .await?
            .is_some_and(|route| route.channel != ChannelKind::Web.as_str());
        if routed_elsewhere {
            state
                .store
                .set_route(&store::apps::ConversationRoute {
                    conversation_id: conversation.id.clone(),
                    tenant_id: identity.tenant_id.clone(),
                    customer_id: identity.id.clone(),
                    channel: ChannelKind::Web.as_str().to_owned(),
                    app: String::new(),
                    external_user_id: identity.external_id.clone(),
                    reply_context: None,
                })
                .await?;
        }
    }
    Ok(Json(serde_json::json!({
        "tenant": customer.tenant_id,
        "visitor_id": identity.external_id,
        "customer_id": customer.id,
        "token": visitor_token(state, &customer),
        "conversation_id": conversation.map(|c| c.id),
        "user_id": request.user_id,
    })))
}

async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    query: Result<Query<TokenQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let Query(query) = query?;
    let customer =
        visitor_for_socket(&state, query.ticket.as_deref(), query.token.as_deref()).await?;
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), &headers);
    let slots = super::connections::customer_slots(&state, &customer.id, client)?;
    let chat = state.chat.clone();
    Ok(crate::http::ws::upgrade(
        upgrade,
        move |incoming, outgoing| async move {
            let _slots = slots;
            run_customer(chat, customer, Some(client), incoming, outgoing).await
        },
    ))
}

/// A one-time ticket for the visitor's next WebSocket (`/v1/web/ws?ticket=`), so the token
/// never rides in a URL.
async fn ticket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> ApiResult<Json<serde_json::Value>> {
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), &headers);
    state.chat.limits.ticket(client)?;
    let customer =
        visitor_from_token(&state, bearer(&headers).ok_or(ServiceError::Unauthorized)?).await?;
    let ticket = ws_ticket(
        &state,
        TokenKind::VisitorTicket,
        &customer.tenant_id,
        &customer.id,
        customer.token_version,
    );
    Ok(Json(serde_json::json!({
        "ticket": ticket,
        "expires_in_ms": TICKET_LIFETIME_SECS * 1000,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostMessage {
    client_msg_id: String,
    #[serde(default)]
    text: String,
    /// Ids of the visitor's uploads.
    #[serde(default)]
    attachments: Vec<String>,
}

async fn post_message(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<PostMessage>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<ServerFrame>> {
    let customer =
        visitor_from_token(&state, bearer(&headers).ok_or(ServiceError::Unauthorized)?).await?;
    let Json(message) = body?;
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), &headers);
    let appended = state
        .chat
        .customer_send_with(
            &customer,
            &message.client_msg_id,
            &message.text,
            &message.attachments,
            Some(client),
        )
        .await?;
    Ok(Json(ServerFrame::Receipt {
        client_msg_id: message.client_msg_id,
        conversation_id: appended.message.conversation_id,
        seq: appended.message.seq,
    }))
}

#[derive(Deserialize)]
struct PostRating {
    score: i64,
    #[serde(default)]
    comment: String,
}

/// The long-poll client's `rate` frame: rates the visitor's last closed conversation.
async fn post_rating(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<PostRating>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<ServerFrame>> {
    let customer =
        visitor_from_token(&state, bearer(&headers).ok_or(ServiceError::Unauthorized)?).await?;
    let Json(rating) = body?;
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), &headers);
    let rating = state
        .chat
        .rate(&customer, rating.score, &rating.comment, Some(client))
        .await?;
    Ok(Json(ServerFrame::Rated {
        score: rating.score,
    }))
}

#[derive(Deserialize)]
struct PollQuery {
    #[serde(default)]
    after: i64,
}

/// Answers at once when there are messages after `after`; otherwise holds the request until
/// something happens in the conversation or the poll timeout passes.
async fn poll(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<PollQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let customer =
        visitor_from_token(&state, bearer(&headers).ok_or(ServiceError::Unauthorized)?).await?;
    let Query(PollQuery { after }) = query?;
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), &headers);
    state.chat.limits.poll(client)?;
    let _slots = super::connections::customer_slots(&state, &customer.id, client)?;
    let mut subscriptions = StreamMap::new();
    subscriptions.insert(
        customer_topic(&customer.id),
        BroadcastStream::new(state.bus.subscribe(&customer_topic(&customer.id))),
    );
    let mut conversation = state.store.conversation_for_customer(&customer.id).await?;
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(state.settings.poll_timeout_ms);
    loop {
        if let Some(current) = &conversation {
            let topic = conversation_topic(&current.id);
            if !subscriptions.contains_key(&topic) {
                subscriptions.insert(
                    topic.clone(),
                    BroadcastStream::new(state.bus.subscribe(&topic)),
                );
            }
            let messages = poll_page(&state, &current.id, after).await?;
            if !messages.is_empty() {
                return Ok(Json(poll_answer(&state, current, &messages)));
            }
        }
        let woke = tokio::time::timeout_at(deadline, subscriptions.next()).await;
        conversation = state.store.conversation_for_customer(&customer.id).await?;
        match woke {
            Ok(Some((_, Ok(BusEvent::Queue { .. })))) | Ok(None) | Err(_) => {
                let answer = match &conversation {
                    Some(current) => poll_answer(
                        &state,
                        current,
                        &poll_page(&state, &current.id, after).await?,
                    ),
                    None => serde_json::json!({ "frames": [] }),
                };
                return Ok(Json(answer));
            }
            _ => continue,
        }
    }
}

/// Text one poll answers with, about (at least one message, however long): a held poll's answer
/// waits in memory until the client reads it, so it is kept small.
const POLL_PAGE_BYTES: usize = 64 * 1024;

/// A poll's messages: at most 200 and about [`POLL_PAGE_BYTES`]; the client asks again from
/// the last one for the rest.
async fn poll_page(
    state: &AppState,
    conversation_id: &str,
    after: i64,
) -> ApiResult<Vec<store::MessageRecord>> {
    Ok(state
        .store
        .messages_page(conversation_id, after, 200, POLL_PAGE_BYTES)
        .await?)
}

fn poll_answer(
    state: &AppState,
    conversation: &store::Conversation,
    messages: &[store::MessageRecord],
) -> serde_json::Value {
    let mut frames: Vec<ServerFrame> = messages
        .iter()
        .map(|message| message_frame(&state.chat.files, message))
        .collect();
    if conversation.state == ConversationState::Queued {
        if let Some(position) = state.chat.queue_position(&conversation.id) {
            frames.push(ServerFrame::Queue { position });
        }
    }
    serde_json::json!({ "frames": frames })
}
