//! Provider webhooks: each delivery becomes one `WebhookRequest` for the app's adapter. A
//! handshake is answered as the adapter says; a customer message is stored through
//! `Chat::customer_send` (the provider's dedup key as `client_msg_id`, so a retried delivery is
//! stored once) and answered at once (WeChat wants an answer within 5 s); replies leave later
//! through the outbox. A WeChat image is fetched first and stored as the customer's attachment
//! (`engine::outbound::media`, bounded in time), or kept as `[image]` with a note.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};
use switchboard_channels::adapter::{
    ChannelAdapter, HttpMethod, WebhookError, WebhookOutcome, WebhookRequest,
};
use switchboard_channels::douyin::{DouyinAdapter, DouyinConfig};
use switchboard_channels::wechat::{WechatAdapter, WechatConfig, ACK_BODY};
use switchboard_channels::{ChannelKind, Content, InboundMessage};

use super::channel_apps::{identity_external_id, is_valid_app_name};
use crate::error::{ApiResult, ServiceError};
use crate::AppState;
use store::apps::{ChannelAppSecrets, ConversationRoute};
use store::util::{is_valid_slug, new_id};
use store::CustomerProfile;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/channels/wechat/{tenant}/{app}",
            get(wechat).post(wechat),
        )
        .route("/v1/channels/douyin/{tenant}/{app}", post(douyin))
        // Pushes are small and must arrive in time (`http::body`).
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::body::in_time,
        ))
}

/// The raw request as adapters take it: lowercase header names, the query decoded, raw bytes.
fn webhook_request(
    method: &Method,
    query: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> WebhookRequest {
    let mut request = WebhookRequest {
        method: if method == Method::GET {
            HttpMethod::Get
        } else {
            HttpMethod::Post
        },
        body: body.to_vec(),
        ..Default::default()
    };
    if let Some(query) = query {
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(&query);
        request.query = pairs.into_iter().collect::<BTreeMap<_, _>>();
    }
    for (name, value) in headers {
        if let Ok(value) = value.to_str() {
            request
                .headers
                .insert(name.as_str().to_ascii_lowercase(), value.to_owned());
        }
    }
    request
}

/// Decodes `a=1&b=x%20y` (a malformed pair is skipped; the signature check then fails).
fn serde_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(index + 1..index + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8(out).ok()
}

/// The app's configuration, or 404 for an unknown tenant or app.
async fn app_config(
    state: &AppState,
    tenant: &str,
    kind: ChannelKind,
    app: &str,
) -> ApiResult<ChannelAppSecrets> {
    if !is_valid_slug(tenant) || !is_valid_app_name(app) {
        return Err(ServiceError::NotFound("channel app").into());
    }
    state
        .store
        .channel_app(tenant, kind.as_str(), app)
        .await?
        .ok_or_else(|| ServiceError::NotFound("channel app").into())
}

fn refused(tenant: &str, app: &str, kind: ChannelKind, error: &WebhookError) -> ServiceError {
    tracing::warn!(tenant, app, channel = kind.as_str(), code = error.code(), error = %error, "webhook delivery refused");
    let message = error.to_string().to_lowercase();
    if error.is_authentication() {
        ServiceError::unauthenticated(error.code(), message)
    } else {
        ServiceError::invalid(error.code(), message)
    }
}

/// The sender's per-IP webhook budget (the client's address behind trusted proxies): a 429
/// answer when it is spent.
fn over_the_webhook_limit(
    state: &AppState,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
) -> Option<Response> {
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), headers);
    state
        .chat
        .limits
        .webhook(client)
        .err()
        .map(|limited| crate::error::HttpError(limited).into_response())
}

async fn wechat(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    path: Result<Path<(String, String)>, PathRejection>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if let Some(limited) = over_the_webhook_limit(&state, peer, &headers) {
        return Ok(limited);
    }
    let Path((tenant, app)) = path.map_err(|_| ServiceError::NotFound("route"))?;
    let config = app_config(&state, &tenant, ChannelKind::Wechat, &app).await?;
    let encoding_aes_key = Some(config.secret("encoding_aes_key")).filter(|key| !key.is_empty());
    let skew = state.outbound.settings().wechat_max_timestamp_skew_secs;
    let adapter = WechatAdapter::new(WechatConfig {
        appid: config.field("appid"),
        token: config.secret("token"),
        encoding_aes_key,
        max_timestamp_skew: (skew > 0).then(|| Duration::from_secs(skew)),
    })
    .map_err(|error| {
        tracing::error!(tenant = %tenant, app = %app, error = %error, "stored wechat configuration is unusable");
        ServiceError::Misconfigured("the app's configuration is unusable".into())
    })?;
    let request = webhook_request(&method, query, &headers, body);
    let outcome = adapter
        .handle(&request)
        .map_err(|error| refused(&tenant, &app, ChannelKind::Wechat, &error))?;
    let nonce = remember_wechat_nonce(&state, &tenant, &app, &request, skew).await?;
    let admitted = admit(&state, &tenant, &app, ChannelKind::Wechat, outcome).await;
    if let (Err(_), Some(key)) = (&admitted, &nonce) {
        // Not stored (a limit, the database): WeChat delivers again, perhaps with the same
        // nonce, and that delivery must not be refused as a replay.
        if let Err(error) = state.chat.cluster.nonces.forget(key).await {
            tracing::warn!(tenant = %tenant, app = %app, error = %error, "webhook nonce not forgotten");
        }
    }
    if let Some(handshake) = admitted? {
        return Ok(handshake);
    }
    // Messages and ignored deliveries: `success`, so WeChat neither retries nor warns the customer.
    Ok(([(header::CONTENT_TYPE, "text/plain")], ACK_BODY).into_response())
}

/// Remembers a verified push's signed (timestamp, nonce) while its timestamp is acceptable, in
/// the cluster's nonce store (Redis across nodes), and refuses a second delivery of the same
/// pair: a plain-mode signature does not cover the body, so a replay could carry another one.
/// Answers the key remembered (none when the push carries no nonce).
async fn remember_wechat_nonce(
    state: &AppState,
    tenant: &str,
    app: &str,
    request: &WebhookRequest,
    skew_secs: u64,
) -> ApiResult<Option<String>> {
    let Some((timestamp, nonce)) = switchboard_channels::wechat::push_nonce(request) else {
        return Ok(None);
    };
    let now = store::util::now_ms() / 1000;
    // Accepted while |now - timestamp| <= skew: remember until timestamp + skew. Without a
    // freshness check (skew 0) the timestamp bounds nothing: remember for 300 s from now.
    let remember_until = match (skew_secs, timestamp.parse::<i64>()) {
        (skew, Ok(sent)) if skew > 0 => sent
            .saturating_add(i64::try_from(skew).unwrap_or(i64::MAX))
            .max(now + 1),
        _ => now + 300,
    };
    // The tenant first: the store keeps each tenant's nonces apart. `/` never occurs in a tenant
    // slug or an app name, so these keys cannot meet the mobile token nonces (`<tenant>:<nonce>`).
    let key = format!("{tenant}/push/wechat/{app}/{timestamp}/{nonce}");
    match state
        .chat
        .cluster
        .nonces
        .remember(&key, now, remember_until)
        .await
    {
        Ok(true) => Ok(Some(key)),
        Ok(false) => Err(refused(tenant, app, ChannelKind::Wechat, &WebhookError::Replayed).into()),
        Err(error) => {
            tracing::error!(tenant, app, error = %error, "webhook nonce store failed");
            Err(ServiceError::unavailable("nonce_store_unavailable", "try again later").into())
        }
    }
}

async fn douyin(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    path: Result<Path<(String, String)>, PathRejection>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if let Some(limited) = over_the_webhook_limit(&state, peer, &headers) {
        return Ok(limited);
    }
    let Path((tenant, app)) = path.map_err(|_| ServiceError::NotFound("route"))?;
    let config = app_config(&state, &tenant, ChannelKind::Douyin, &app).await?;
    let max_age = state.outbound.settings().douyin_max_age_secs;
    let adapter = DouyinAdapter::new(DouyinConfig {
        client_key: config.field("client_key"),
        client_secret: config.secret("client_secret"),
    })
    .with_max_age((max_age > 0).then(|| Duration::from_secs(max_age)));
    let request = webhook_request(&method, query, &headers, body);
    let outcome = adapter
        .handle(&request)
        .map_err(|error| refused(&tenant, &app, ChannelKind::Douyin, &error))?;
    if let Some(handshake) = admit(&state, &tenant, &app, ChannelKind::Douyin, outcome).await? {
        return Ok(handshake);
    }
    Ok(StatusCode::OK.into_response())
}

/// Acts on a verified delivery: a handshake answers with its own response (returned), a message
/// is stored, an ignored delivery only logged.
async fn admit(
    state: &AppState,
    tenant: &str,
    app: &str,
    kind: ChannelKind,
    outcome: WebhookOutcome,
) -> ApiResult<Option<Response>> {
    match outcome {
        WebhookOutcome::Handshake { body, content_type } => {
            tracing::info!(tenant, app, channel = kind.as_str(), "webhook url verified");
            Ok(Some(
                ([(header::CONTENT_TYPE, content_type)], body).into_response(),
            ))
        }
        WebhookOutcome::Ignored { reason } => {
            tracing::debug!(tenant, app, channel = kind.as_str(), reason = %reason, "webhook delivery ignored");
            Ok(None)
        }
        WebhookOutcome::Message {
            message,
            reply_context,
        } => {
            let reply_context = reply_context.map(|context| context.0.to_string());
            store_inbound(state, tenant, app, kind, &message, reply_context).await?;
            Ok(None)
        }
    }
}

/// The `client_msg_id` of a provider delivery: scoped by channel and app, at most 128 characters.
fn client_msg_id(kind: ChannelKind, app: &str, dedup_key: Option<&str>) -> String {
    let Some(key) = dedup_key.filter(|key| !key.is_empty()) else {
        return new_id(&format!("{}:", kind.as_str()));
    };
    let id = format!("{}:{app}:{key}", kind.as_str());
    if id.chars().count() <= 128 {
        return id;
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest
        .iter()
        .take(24)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{}:{hex}", kind.as_str())
}

async fn store_inbound(
    state: &AppState,
    tenant: &str,
    app: &str,
    kind: ChannelKind,
    message: &InboundMessage,
    reply_context: Option<String>,
) -> ApiResult<()> {
    let external_id = identity_external_id(app, &message.external_user_id);
    let identity = state
        .store
        .customer_for_identity(tenant, kind, &external_id, &CustomerProfile::default())
        .await?;
    let customer = state.store.primary_customer(&identity).await?;
    let client_msg_id = client_msg_id(kind, app, message.dedup_key.as_deref());
    // A push with media the provider lets us fetch (a WeChat image) is stored with it; the guard
    // keeps a redelivery that arrives meanwhile from fetching it twice.
    let media_id = match (&message.content, kind) {
        (
            Content::Image {
                media_id: Some(id), ..
            },
            ChannelKind::Wechat,
        ) if !id.is_empty() => Some(id.as_str()),
        _ => None,
    };
    let in_flight = match media_id {
        Some(_) => match state
            .outbound
            .inbound_in_flight(&format!("{tenant}/{client_msg_id}"))
        {
            Some(guard) => Some(guard),
            None => {
                // Not `success`: the first delivery may still fail, and then only a later
                // redelivery can store the message (a stored one is answered `success` below).
                tracing::info!(
                    tenant,
                    app,
                    channel = kind.as_str(),
                    "retried delivery refused while its media is fetched"
                );
                return Err(ServiceError::unavailable(
                    "in_progress",
                    "an earlier delivery of this message is still being processed",
                )
                .into());
            }
        },
        None => None,
    };
    let (text, attachments) = match media_id {
        Some(media_id) => {
            if state
                .store
                .has_customer_message(&customer.id, &client_msg_id)
                .await?
            {
                tracing::info!(
                    tenant,
                    app,
                    channel = kind.as_str(),
                    "retried delivery dropped"
                );
                return Ok(());
            }
            customer_media(state, tenant, app, kind, &customer, media_id).await
        }
        None => (message.content.display_text(), Vec::new()),
    };
    // "1" to "5" right after the rating survey is the rating, not a new question.
    if attachments.is_empty() && state.chat.rating_reply(&customer, &text).await? {
        return Ok(());
    }
    let appended = match state
        .chat
        .customer_send_with(&customer, &client_msg_id, &text, &attachments, None)
        .await
    {
        Ok(appended) => appended,
        Err(error) => {
            // The provider delivers again; the media is fetched again then.
            forget_media(state, tenant, &attachments).await;
            return Err(error.into());
        }
    };
    if appended.duplicate {
        tracing::info!(tenant, app, channel = kind.as_str(), conversation_id = %appended.conversation.id, "retried delivery dropped");
        // Another node stored this push first, with its own copy of the media.
        forget_media(state, tenant, &attachments).await;
    }
    state
        .store
        .set_route(&ConversationRoute {
            conversation_id: appended.conversation.id.clone(),
            tenant_id: tenant.to_owned(),
            customer_id: identity.id.clone(),
            channel: kind.as_str().to_owned(),
            app: app.to_owned(),
            external_user_id: message.external_user_id.clone(),
            reply_context,
        })
        .await?;
    // Stored: a redelivery now finds the message.
    drop(in_flight);
    Ok(())
}

/// A customer's media fetched and stored as their upload: an empty caption and its id, or, when
/// it cannot be had, the placeholder text with a note (the message is never dropped for it).
async fn customer_media(
    state: &AppState,
    tenant: &str,
    app: &str,
    kind: ChannelKind,
    customer: &store::Customer,
    media_id: &str,
) -> (String, Vec<String>) {
    let placeholder = Content::Image {
        url: None,
        media_id: None,
    }
    .display_text();
    let settings = state.chat.tenant_settings(tenant).await;
    if !settings.attachments.customers {
        return (placeholder, Vec::new());
    }
    let uploader = engine::files::Uploader::customer(customer);
    match state
        .outbound
        .receive_customer_media(
            tenant,
            kind,
            app,
            media_id,
            &uploader,
            &settings.attachments,
        )
        .await
    {
        Ok(record) => (String::new(), vec![record.id]),
        Err(error) => {
            tracing::warn!(tenant, app, channel = kind.as_str(), code = error.code(), error = %error, "customer media not fetched; stored without it");
            let note = match error {
                engine::outbound::media::MediaInError::Unavailable(_) => {
                    "the picture could not be fetched from WeChat"
                }
                engine::outbound::media::MediaInError::Refused { .. } => {
                    "the picture was not accepted"
                }
            };
            (format!("{placeholder} ({note})"), Vec::new())
        }
    }
}

/// Deletes fetched media whose message was not stored.
async fn forget_media(state: &AppState, tenant: &str, ids: &[String]) {
    for id in ids {
        if let Ok(Some(record)) = state.store.attachment(tenant, id).await {
            if let Err(error) = state.chat.files.delete(std::slice::from_ref(&record)).await {
                tracing::warn!(tenant, error = %error, "fetched media left behind");
            }
        }
    }
}
