//! Mobile apps: the tenant's app server vouches for its user with a bearer JWT (HS256, the
//! tenant's mobile secret, a nonce used once); the app then speaks the web channel's frames on
//! `/v1/mobile/ws` and reads history from `/v1/mobile/conversations/{id}/messages`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use switchboard_channels::mobile::{MobileAuthError, MobileTokenVerifier};
use switchboard_channels::ChannelKind;

use super::channel_apps::{identity_external_id, is_valid_app_name};
use crate::error::{ApiResult, ServiceError};
use crate::http::auth::bearer;
use crate::session::{message_frame, run_customer};
use crate::AppState;
use store::apps::ConversationRoute;
use store::util::{is_valid_slug, now_ms};
use store::{Customer, CustomerProfile};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/mobile/ws", get(websocket))
        .route("/v1/mobile/me", get(me))
        .route("/v1/mobile/conversations/{id}/messages", get(history))
        .route("/v1/mobile/attachments", axum::routing::post(upload))
}

#[derive(Deserialize)]
struct MobileQuery {
    tenant: Option<String>,
    /// The mobile app; optional when the tenant has only one.
    app: Option<String>,
    /// For WebSocket clients that cannot set headers.
    token: Option<String>,
    #[serde(default)]
    after: i64,
    limit: Option<i64>,
    /// An upload's file name.
    #[serde(default)]
    name: String,
}

/// Who the app user is: their own identity, and the customer whose conversation they use.
struct MobileUser {
    app: String,
    identity: Customer,
    customer: Customer,
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::unauthenticated(code, message)
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: &MobileQuery,
) -> ApiResult<MobileUser> {
    let tenant = query
        .tenant
        .as_deref()
        .ok_or_else(|| ServiceError::invalid("bad_query", "`tenant` is required"))?;
    let token = bearer(headers)
        .or(query.token.as_deref())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| unauthorized("unauthorized", "missing or invalid credentials"))?;
    let not_found = || ServiceError::NotFound("mobile app");
    if !is_valid_slug(tenant) {
        return Err(not_found().into());
    }
    let app = match query.app.as_deref() {
        Some(app) if is_valid_app_name(app) => app.to_owned(),
        Some(_) => return Err(not_found().into()),
        None => {
            let apps = state
                .store
                .channel_apps(tenant, Some(ChannelKind::Mobile.as_str()))
                .await?;
            match apps.as_slice() {
                [only] => only.app.clone(),
                [] => return Err(not_found().into()),
                _ => {
                    return Err(ServiceError::invalid(
                        "app_required",
                        "this tenant has several mobile apps: pass `app`",
                    )
                    .into())
                }
            }
        }
    };
    let config = state
        .store
        .channel_app(tenant, ChannelKind::Mobile.as_str(), &app)
        .await?
        .ok_or_else(not_found)?;
    let verifier = MobileTokenVerifier::new(config.secret("jwt_secret").into_bytes());
    let claims = verifier
        .authenticate(token, now_ms() / 1000, tenant, &*state.chat.cluster.nonces)
        .await
        .map_err(|error| match error {
            MobileAuthError::Store(_) => {
                tracing::error!(tenant, error = %error, "mobile nonce store failed");
                ServiceError::unavailable(error.code(), "try again later")
            }
            other => {
                tracing::info!(tenant, code = other.code(), "mobile token refused");
                unauthorized(other.code(), other.to_string().to_lowercase())
            }
        })?;
    let external_id = identity_external_id(&app, &claims.sub);
    let identity = state
        .store
        .customer_for_identity(
            tenant,
            ChannelKind::Mobile,
            &external_id,
            &CustomerProfile::default(),
        )
        .await?;
    // With `link_mobile`, the token's `sub` is the tenant's user id, the one its site signs
    // for the web widget: the app user joins that person's conversation.
    // (A `sub` no site could sign, too long say, is linked to nothing.)
    let customer = if store::identity::is_valid_user_id(&claims.sub)
        && state.store.tenant_identity(tenant).await?.link_mobile
    {
        state.store.link_to_user(&identity, &claims.sub).await?
    } else {
        state.store.primary_customer(&identity).await?
    };
    Ok(MobileUser {
        app,
        identity,
        customer,
    })
}

fn bad_query(rejection: QueryRejection) -> ServiceError {
    ServiceError::invalid("bad_query", rejection.body_text().to_lowercase())
}

async fn websocket(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<MobileQuery>, QueryRejection>,
    upgrade: WebSocketUpgrade,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(bad_query)?;
    let user = authenticate(&state, &headers, &query).await?;
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), &headers);
    let slots = super::connections::customer_slots(&state, &user.customer.id, client)?;
    // The app is now where this customer is: replies in their conversation go here (pushed when
    // the app is offline) rather than to a webhook channel they wrote from before.
    if let Some(conversation) = state
        .store
        .conversation_for_customer(&user.customer.id)
        .await?
    {
        state
            .store
            .set_route(&ConversationRoute {
                conversation_id: conversation.id,
                tenant_id: user.identity.tenant_id.clone(),
                customer_id: user.identity.id.clone(),
                channel: ChannelKind::Mobile.as_str().to_owned(),
                app: user.app.clone(),
                external_user_id: user
                    .identity
                    .external_id
                    .strip_prefix(&format!("{}:", user.app))
                    .unwrap_or(&user.identity.external_id)
                    .to_owned(),
                reply_context: None,
            })
            .await?;
    }
    let chat = state.chat.clone();
    let outbound = state.outbound.clone();
    Ok(crate::http::ws::upgrade(
        upgrade,
        move |incoming, outgoing| async move {
            let _slots = slots;
            let _online = outbound.connect(&user.identity.id);
            run_customer(chat, user.customer, Some(client), incoming, outgoing).await;
        },
    ))
}

/// One attachment from the app user (the raw file as the body, `name` in the query).
async fn upload(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<MobileQuery>, QueryRejection>,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(bad_query)?;
    let user = authenticate(&state, &headers, &query).await?;
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), &headers);
    let limits = state
        .chat
        .tenant_settings(&user.customer.tenant_id)
        .await
        .limits;
    state.chat.limits.customer_message(
        &user.customer.tenant_id,
        &user.customer.id,
        Some(client),
        limits,
    )?;
    let uploader = engine::files::Uploader::customer(&user.customer);
    super::files::receive(&state, uploader, &query.name, body).await
}

async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<MobileQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(conversation_id) = path.map_err(|rejection| {
        ServiceError::invalid("bad_path", rejection.body_text().to_lowercase())
    })?;
    let Query(query) = query.map_err(bad_query)?;
    let user = authenticate(&state, &headers, &query).await?;
    let own = state
        .store
        .conversation_for_customer(&user.customer.id)
        .await?;
    let Some(conversation) = own.filter(|conversation| conversation.id == conversation_id) else {
        return Err(ServiceError::NotFound("conversation").into());
    };
    // A page like a WebSocket catch-up's: long messages make it shorter than `limit`.
    let limit = query.limit.unwrap_or(200).clamp(1, 500) as usize;
    let messages = state
        .store
        .messages_page(
            &conversation.id,
            query.after.max(0),
            limit,
            crate::session::CATCH_UP_PAGE_BYTES,
        )
        .await?;
    let frames: Vec<_> = messages
        .iter()
        .map(|message| message_frame(&state.chat.files, message))
        .collect();
    Ok(Json(
        serde_json::json!({ "conversation_id": conversation.id, "messages": frames }),
    ))
}

/// Who the token's user is here: their customer id (for identity linking) and the conversation
/// they write into (shared with linked identities).
async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<MobileQuery>, QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(query) = query.map_err(bad_query)?;
    let user = authenticate(&state, &headers, &query).await?;
    let conversation = state
        .store
        .conversation_for_customer(&user.customer.id)
        .await?;
    Ok(Json(serde_json::json!({
        "tenant": user.identity.tenant_id,
        "app": user.app,
        "customer_id": user.identity.id,
        "conversation_customer_id": user.customer.id,
        "conversation_id": conversation.map(|conversation| conversation.id),
    })))
}
