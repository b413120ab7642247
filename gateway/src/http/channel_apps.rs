//! Tenant admin routes of the channels: app configuration (secrets in, never out), identity
//! links, and the delivery state of a conversation's replies.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use switchboard_channels::outbound_guard::{check_url, DestinationError, DestinationPolicy};
use switchboard_channels::wechat::{WechatAdapter, WechatConfig};
use switchboard_channels::ChannelKind;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, require_reader, Area};
use crate::AppState;
use store::apps::ChannelApp;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/channels", get(list_apps))
        .route(
            "/v1/tenants/{tenant}/channels/{kind}/{app}",
            get(get_app).put(put_app).delete(delete_app),
        )
        .route(
            "/v1/tenants/{tenant}/channels/{kind}/{app}/deliveries",
            get(app_deliveries),
        )
        .route(
            "/v1/tenants/{tenant}/customers/{id}/link",
            post(link_customer),
        )
        .route(
            "/v1/tenants/{tenant}/conversations/{id}/deliveries",
            get(deliveries),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WechatBody {
    appid: String,
    token: String,
    #[serde(default)]
    encoding_aes_key: Option<String>,
    appsecret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DouyinBody {
    client_key: String,
    client_secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MobileBody {
    /// The HS256 secret the tenant's app server signs its users' tokens with.
    jwt_secret: String,
    /// Called (POST) when a reply is stored for an app user with no open connection.
    #[serde(default)]
    push_url: Option<String>,
}

/// The view of an app the API shows: public fields, which secrets are set, its webhook path.
fn app_view(tenant: &str, app: &ChannelApp) -> Value {
    let mut view = serde_json::to_value(app).unwrap_or_default();
    let webhook = match app.kind.as_str() {
        "wechat" | "douyin" => {
            Value::String(format!("/v1/channels/{}/{tenant}/{}", app.kind, app.app))
        }
        _ => Value::Null,
    };
    view["webhook_path"] = webhook;
    view
}

fn required(name: &'static str, value: &str) -> ApiResult<String> {
    let value = value.trim();
    if value.is_empty() || value.len() > 512 {
        return Err(ServiceError::invalid(
            "bad_config",
            format!("`{name}` must be 1-512 characters"),
        )
        .into());
    }
    Ok(value.to_owned())
}

fn text(value: String) -> Value {
    Value::String(value)
}

/// Splits a configuration body into public fields and secrets, refusing what cannot work.
fn parse_config(
    kind: ChannelKind,
    body: Value,
    push_policy: DestinationPolicy,
) -> ApiResult<(Map<String, Value>, Map<String, Value>)> {
    let bad = |error: serde_json::Error| {
        ServiceError::invalid("bad_config", error.to_string().to_lowercase())
    };
    let mut public = Map::new();
    let mut secrets = Map::new();
    match kind {
        ChannelKind::Wechat => {
            let body: WechatBody = serde_json::from_value(body).map_err(bad)?;
            let encoding_aes_key = body
                .encoding_aes_key
                .map(|key| key.trim().to_owned())
                .filter(|key| !key.is_empty());
            let config = WechatConfig {
                appid: required("appid", &body.appid)?,
                token: required("token", &body.token)?,
                encoding_aes_key: encoding_aes_key.clone(),
                max_timestamp_skew: None,
            };
            WechatAdapter::new(config.clone()).map_err(|error| {
                ServiceError::invalid(
                    "bad_config",
                    format!("encoding_aes_key: {error}").to_lowercase(),
                )
            })?;
            public.insert("appid".into(), text(config.appid));
            secrets.insert("token".into(), text(config.token));
            secrets.insert(
                "appsecret".into(),
                text(required("appsecret", &body.appsecret)?),
            );
            if let Some(key) = encoding_aes_key {
                secrets.insert("encoding_aes_key".into(), text(key));
            }
        }
        ChannelKind::Douyin => {
            let body: DouyinBody = serde_json::from_value(body).map_err(bad)?;
            public.insert(
                "client_key".into(),
                text(required("client_key", &body.client_key)?),
            );
            secrets.insert(
                "client_secret".into(),
                text(required("client_secret", &body.client_secret)?),
            );
        }
        ChannelKind::Mobile => {
            let body: MobileBody = serde_json::from_value(body).map_err(bad)?;
            if body.jwt_secret.len() < 16 || body.jwt_secret.len() > 512 {
                return Err(ServiceError::invalid(
                    "bad_config",
                    "`jwt_secret` must be 16-512 bytes",
                )
                .into());
            }
            secrets.insert("jwt_secret".into(), text(body.jwt_secret));
            if let Some(url) = body
                .push_url
                .map(|url| url.trim().to_owned())
                .filter(|url| !url.is_empty())
            {
                if url.len() > 2048 {
                    return Err(ServiceError::invalid(
                        "bad_config",
                        "`push_url` must be at most 2048 bytes",
                    )
                    .into());
                }
                // https, and no IP literal or `localhost` that is not a global address (unless
                // the deployment allows them); host names are checked after resolution at
                // every call.
                if let Err(error) = check_url(&url, push_policy) {
                    let rule = match (push_policy.allow_http, error) {
                        (_, DestinationError::NotGlobal) => {
                            "must not point to a loopback, private, link-local or other non-global address"
                        }
                        (false, _) => "must be an https url",
                        (true, _) => "must be an http or https url",
                    };
                    return Err(
                        ServiceError::invalid("bad_config", format!("`push_url` {rule}")).into(),
                    );
                }
                // A push URL may carry the tenant's credentials in its query: kept with the secrets.
                secrets.insert("push_url".into(), text(url));
            }
        }
        ChannelKind::Web => {
            return Err(ServiceError::invalid(
                "bad_kind",
                "the web channel takes no app configuration",
            )
            .into())
        }
    }
    Ok((public, secrets))
}

fn kind_and_app(kind: &str, app: &str) -> ApiResult<ChannelKind> {
    let kind = configurable_kind(kind).ok_or_else(|| {
        ServiceError::invalid("bad_kind", "kind must be wechat, douyin or mobile")
    })?;
    if !is_valid_app_name(app) {
        return Err(ServiceError::invalid(
            "bad_app",
            "an app name is 1-64 ascii letters, digits, `_` or `-`",
        )
        .into());
    }
    Ok(kind)
}

async fn put_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String, String)>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path((tenant, kind, app)) = path?;
    require(&state, &headers, &tenant, Area::Channels).await?;
    let channel = kind_and_app(&kind, &app)?;
    let Json(mut body) = body?;
    // Editing an app: a secret left out keeps its stored value (the console never sees
    // secrets, so it cannot send them back); `""` removes an optional one.
    if let (Some(fields), Some(stored)) = (
        body.as_object_mut(),
        state
            .store
            .channel_app(&tenant, channel.as_str(), &app)
            .await?,
    ) {
        for (name, value) in stored.secrets {
            fields.entry(name).or_insert(value);
        }
    }
    let (public, secrets) = parse_config(channel, body, state.outbound.settings().push_policy())?;
    let stored = state
        .store
        .put_channel_app(&tenant, channel.as_str(), &app, &public, &secrets)
        .await?;
    tracing::info!(tenant = %tenant, kind = %kind, app = %app, "channel app configured");
    Ok(Json(app_view(&tenant, &stored)))
}

async fn get_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path((tenant, kind, app)) = path?;
    require(&state, &headers, &tenant, Area::Channels).await?;
    let channel = kind_and_app(&kind, &app)?;
    let found = state
        .store
        .channel_app(&tenant, channel.as_str(), &app)
        .await?
        .ok_or(ServiceError::NotFound("channel app"))?;
    Ok(Json(app_view(&tenant, &found.app)))
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<i64>,
}

/// An app's newest replies on their way out, and the last day's count per state: what the
/// Channels page shows of each app's health.
async fn app_deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String, String)>, PathRejection>,
    query: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Path((tenant, kind, app)) = path?;
    require(&state, &headers, &tenant, Area::Channels).await?;
    let Query(query) = query?;
    let channel = kind_and_app(&kind, &app)?;
    let (deliveries, counts) = state
        .store
        .app_deliveries(&tenant, channel.as_str(), &app, query.limit.unwrap_or(50))
        .await?;
    let last_day: serde_json::Map<String, Value> = counts
        .into_iter()
        .map(|(state, count)| (state, count.into()))
        .collect();
    Ok(Json(
        json!({ "deliveries": deliveries, "last_day": last_day }),
    ))
}

async fn delete_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let Path((tenant, kind, app)) = path?;
    require(&state, &headers, &tenant, Area::Channels).await?;
    let channel = kind_and_app(&kind, &app)?;
    state
        .store
        .delete_channel_app(&tenant, channel.as_str(), &app)
        .await?;
    tracing::info!(tenant = %tenant, kind = %kind, app = %app, "channel app removed");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_apps(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Channels).await?;
    let apps = state.store.channel_apps(&tenant, None).await?;
    Ok(Json(
        json!({ "apps": apps.iter().map(|app| app_view(&tenant, app)).collect::<Vec<_>>() }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    crm_id: String,
}

async fn link_customer(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<LinkBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Path((tenant, customer_id)) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
    let Json(body) = body?;
    let crm_id = body.crm_id.trim();
    if crm_id.is_empty() || crm_id.chars().count() > 128 {
        return Err(
            ServiceError::invalid("bad_crm_id", "`crm_id` must be 1-128 characters").into(),
        );
    }
    let link = state
        .store
        .link_customer(&tenant, &customer_id, crm_id)
        .await?;
    let primary = state
        .store
        .conversation_for_customer(&link.primary_customer_id)
        .await?;
    tracing::info!(tenant = %tenant, customer_id = %customer_id, primary = %link.primary_customer_id, "customer linked");
    Ok(Json(json!({
        "customer_id": link.customer_id,
        "crm_id": link.crm_id,
        "primary_customer_id": link.primary_customer_id,
        "conversation_id": primary.map(|conversation| conversation.id),
    })))
}

async fn deliveries(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let Path((tenant, conversation_id)) = path?;
    require_reader(&state, &headers, &tenant, Area::Live).await?;
    let conversation = state
        .store
        .conversation(&conversation_id)
        .await?
        .filter(|conversation| conversation.tenant_id == tenant)
        .ok_or(ServiceError::NotFound("conversation"))?;
    let deliveries = state.store.deliveries(&conversation.id).await?;
    Ok(Json(json!({ "deliveries": deliveries })))
}

/// The channels' kinds that take an app configuration.
fn configurable_kind(kind: &str) -> Option<ChannelKind> {
    match ChannelKind::parse(kind) {
        Some(kind @ (ChannelKind::Wechat | ChannelKind::Douyin | ChannelKind::Mobile)) => {
            Some(kind)
        }
        _ => None,
    }
}

/// An app name: 1-64 of `A-Z a-z 0-9 _ -`.
pub(super) fn is_valid_app_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The customer identity of a provider user in one app.
pub(super) fn identity_external_id(app: &str, user: &str) -> String {
    format!("{app}:{user}")
}
