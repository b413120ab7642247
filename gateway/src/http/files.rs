//! Attachments over HTTP: an upload route per audience (visitors here, agents here, mobile users
//! in `mobile`), each taking the raw file as the request body (`?name=` gives its file name), and
//! the download route the signed links point at.
//!
//! Uploads are streamed to disk by [`engine::files::Files::receive`], after the caller is
//! authenticated and within the caller's message rate; a download needs no credentials but a
//! valid, unexpired signature. A downloaded file is never something a browser runs: raster images
//! are shown inline, everything else (PDF, text, office files) is an attachment, every answer
//! says `nosniff` and carries a sandboxing Content-Security-Policy.

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{agent_from_token, bearer, visitor_from_token};
use crate::AppState;
use engine::files::Uploader;
use store::util::now_ms;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/attachments", post(agent_upload).get(agent_links))
        .route("/v1/files/{id}", get(download))
}

#[derive(Deserialize)]
pub struct UploadQuery {
    /// The file's name, for display and downloads (the content decides its type).
    #[serde(default)]
    pub name: String,
}

/// Receives one upload for `uploader` under the tenant's attachment settings; answers the
/// attachment as clients see it (with links), status 201.
pub async fn receive(
    state: &AppState,
    uploader: Uploader,
    name: &str,
    body: Body,
) -> ApiResult<Response> {
    let settings = state.chat.tenant_settings(&uploader.tenant).await;
    if uploader.kind == "customer" && !settings.attachments.customers {
        return Err(ServiceError::denied(
            "attachments_off",
            "this service does not accept attachments from customers",
        )
        .into());
    }
    let record = state
        .chat
        .files
        .receive(
            &uploader,
            name,
            body.into_data_stream(),
            &settings.attachments,
        )
        .await?;
    let view = state.chat.files.view(&record);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// The visitor of the request's bearer token, charged one message of their rate (per visitor
/// and per client address): every attachment route costs what a message does.
async fn rated_visitor(
    state: &AppState,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
) -> ApiResult<store::Customer> {
    let customer =
        visitor_from_token(state, bearer(headers).ok_or(ServiceError::Unauthorized)?).await?;
    let client = super::client_ip::client_ip(&state.settings.trusted_proxies, peer.ip(), headers);
    let limits = state.chat.tenant_settings(&customer.tenant_id).await.limits;
    state
        .chat
        .limits
        .customer_message(&customer.tenant_id, &customer.id, Some(client), limits)?;
    Ok(customer)
}

/// The agent of the request's bearer token, charged one message of their rate.
async fn rated_agent(state: &AppState, headers: &HeaderMap) -> ApiResult<store::Agent> {
    let agent = agent_from_token(state, bearer(headers).ok_or(ServiceError::Unauthorized)?).await?;
    let limits = state.chat.tenant_settings(&agent.tenant_id).await.limits;
    state
        .chat
        .limits
        .agent_message(&agent.tenant_id, &agent.id, limits)?;
    Ok(agent)
}

/// `POST /v1/web/attachments` (routed with the web channel's CORS).
pub async fn visitor_upload(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<Response> {
    let customer = rated_visitor(&state, peer, &headers).await?;
    let Query(query) = query?;
    receive(&state, Uploader::customer(&customer), &query.name, body).await
}

async fn agent_upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> ApiResult<Response> {
    let agent = rated_agent(&state, &headers).await?;
    let Query(query) = query?;
    receive(&state, Uploader::agent(&agent), &query.name, body).await
}

/// Messages whose links one renewal may ask for.
const MAX_RENEWED_MESSAGES: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewQuery {
    /// The messages, by seq, comma-separated (at most [`MAX_RENEWED_MESSAGES`]).
    #[serde(default)]
    seqs: String,
    /// The conversation (agents; a visitor's is their own).
    #[serde(default)]
    conversation_id: Option<String>,
}

impl RenewQuery {
    fn seqs(&self) -> Result<Vec<i64>, ServiceError> {
        let bad = || {
            ServiceError::invalid(
                "bad_seqs",
                format!("seqs is 1 to {MAX_RENEWED_MESSAGES} message numbers, comma-separated"),
            )
        };
        let mut seqs = self
            .seqs
            .split(',')
            .map(|part| part.trim().parse::<i64>().ok().filter(|seq| *seq > 0))
            .collect::<Option<Vec<i64>>>()
            .ok_or_else(bad)?;
        seqs.sort_unstable();
        seqs.dedup();
        if seqs.is_empty() || seqs.len() > MAX_RENEWED_MESSAGES {
            return Err(bad());
        }
        Ok(seqs)
    }
}

/// The attachments of these messages of a conversation with fresh signed links (a client that
/// stays open past a link's hour asks again): `{"messages":[{"seq","attachments":[...]}]}`.
async fn renewed(
    state: &AppState,
    conversation_id: Option<&str>,
    seqs: &[i64],
) -> ApiResult<Json<serde_json::Value>> {
    let mut messages = Vec::new();
    if let Some(conversation_id) = conversation_id {
        for &seq in seqs {
            let found = state
                .store
                .messages_after(conversation_id, seq - 1, 1)
                .await?
                .into_iter()
                .find(|message| message.seq == seq);
            let views = found.map(|message| state.chat.files.views(&message));
            if let Some(views) = views.filter(|views| !views.is_empty()) {
                messages.push(serde_json::json!({ "seq": seq, "attachments": views }));
            }
        }
    }
    Ok(Json(serde_json::json!({ "messages": messages })))
}

/// `GET /v1/web/attachments?seqs=` (routed with the web channel's CORS): fresh links for the
/// attachments of messages in the visitor's own conversation.
pub async fn visitor_links(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<RenewQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let customer = rated_visitor(&state, peer, &headers).await?;
    let Query(query) = query?;
    let seqs = query.seqs()?;
    let conversation = state.store.conversation_for_customer(&customer.id).await?;
    renewed(&state, conversation.as_ref().map(|c| c.id.as_str()), &seqs).await
}

/// `GET /v1/agent/attachments?conversation_id=&seqs=`: fresh links for the attachments of
/// messages in a conversation the agent holds.
async fn agent_links(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<RenewQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let agent = rated_agent(&state, &headers).await?;
    let Query(query) = query?;
    let seqs = query.seqs()?;
    let conversation_id = query
        .conversation_id
        .as_deref()
        .ok_or_else(|| ServiceError::invalid("bad_query", "conversation_id is required"))?;
    let held = state
        .store
        .conversation(conversation_id)
        .await?
        .filter(|c| c.tenant_id == agent.tenant_id && c.agent_id.as_deref() == Some(&agent.id))
        .ok_or(ServiceError::NotFound("conversation"))?;
    renewed(&state, Some(&held.id), &seqs).await
}

#[derive(Deserialize)]
struct LinkQuery {
    v: String,
    exp: i64,
    sig: String,
}

/// Media types a browser may show inline: raster images only.
fn inline(media_type: &str) -> bool {
    matches!(
        media_type,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp"
    )
}

/// `filename*` (RFC 6266 / 5987): the name percent-encoded as UTF-8, with a plain ASCII
/// fallback.
fn disposition(kind: &str, name: &str) -> String {
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

async fn download(
    State(state): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    // A path that is not UTF-8 is a coded 400 like every other bad request.
    let Path(id) = path?;
    let Query(link) = query?;
    let (record, blob) = state
        .chat
        .files
        .open_link(&id, &link.v, link.exp, &link.sig)
        .await?;
    let thumbnail = link.v == "thumb";
    // The bytes under an id never change: the hash is the tag.
    let etag = format!(
        "\"{}{}\"",
        &record.sha256,
        if thumbnail { "-t" } else { "" }
    );
    let max_age = (link.exp - now_ms() / 1000).clamp(0, 3600);
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|value| value.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(Body::from_stream(blob.chunks));
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
        response
    };
    let (media_type, shown_inline) = if thumbnail {
        ("image/jpeg".to_owned(), true)
    } else if record.media_type.starts_with("text/") {
        (format!("{}; charset=utf-8", record.media_type), false)
    } else {
        (record.media_type.clone(), inline(&record.media_type))
    };
    let name = if thumbnail {
        format!("{}.thumb.jpg", record.name)
    } else {
        record.name.clone()
    };
    let set = |response: &mut Response, name: header::HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            response.headers_mut().insert(name, value);
        }
    };
    set(&mut response, header::CONTENT_TYPE, &media_type);
    set(
        &mut response,
        header::CONTENT_DISPOSITION,
        &disposition(if shown_inline { "inline" } else { "attachment" }, &name),
    );
    set(&mut response, header::ETAG, &etag);
    set(
        &mut response,
        header::CACHE_CONTROL,
        &format!("private, max-age={max_age}"),
    );
    set(&mut response, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        &mut response,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; img-src 'self'; sandbox",
    );
    // The widget on the tenant's site shows thumbnails from here.
    set(&mut response, header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    set(
        &mut response,
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "cross-origin",
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_quote_nothing_a_header_could_break_on() {
        assert_eq!(
            disposition("attachment", "发票 1.pdf"),
            "attachment; filename=\"__ 1.pdf\"; filename*=UTF-8''%E5%8F%91%E7%A5%A8%201.pdf"
        );
        assert!(inline("image/png"));
        assert!(!inline("image/svg+xml"));
        assert!(!inline("application/pdf"));
        assert!(!inline("text/html"));
    }
}
