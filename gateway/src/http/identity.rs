//! Identified web visitors: the tenant's identity secret (made, rotated and removed by its
//! admins, shown once) and the check of a signed user id when the widget opens its session.
//!
//! The site's backend signs its user's id with the secret (`hex(HMAC-SHA256(secret, id))`); the
//! widget passes `user_id` and `user_hash` to `POST /v1/web/session`. A wrong, missing or stale
//! signature is refused with its own code, never taken for an anonymous visitor. The visitor is
//! then the web identity of that user, linked to the user id as its CRM id, so every browser,
//! the mobile app and the other linked identities share one conversation
//! ([`store::identity`]).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{require, Area};
use crate::http::record;
use crate::AppState;
use store::identity::{is_valid_user_id, verify_user_hash, TenantIdentity, MAX_USER_ID_BYTES};
use store::{Customer, CustomerProfile};

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// The secret's length in random bytes (shown as 43 characters of base64url).
const SECRET_BYTES: usize = 32;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/identity",
            get(get_identity).patch(patch_identity),
        )
        .route(
            "/v1/tenants/{tenant}/identity/secret",
            post(rotate_secret).delete(remove_secret),
        )
}

/// Who a signed user id is: checks the signature against the tenant's secret and answers
/// (the visitor's web identity, the customer whose conversation it uses).
pub(crate) async fn identified_visitor(
    state: &AppState,
    tenant: &str,
    user_id: Option<&str>,
    user_hash: Option<&str>,
    profile: &CustomerProfile,
) -> ApiResult<(Customer, Customer)> {
    let Some(user_id) = user_id else {
        return Err(ServiceError::invalid(
            "bad_identity",
            "user_hash is sent with the user_id it signs",
        )
        .into());
    };
    if !is_valid_user_id(user_id) {
        return Err(ServiceError::invalid(
            "bad_identity",
            format!(
                "user_id is 1 to {MAX_USER_ID_BYTES} bytes, without control characters or spaces around it"
            ),
        )
        .into());
    }
    let settings = state.store.tenant_identity(tenant).await?;
    let refused = |code: &'static str, message: &str| {
        tracing::info!(tenant, code, "identified visitor refused");
        ServiceError::unauthenticated(code, message.to_owned())
    };
    if !settings.secret_set {
        return Err(refused(
            "identity_not_configured",
            "this tenant has no identity secret: signed user ids cannot be checked",
        )
        .into());
    }
    let Some(user_hash) = user_hash.filter(|hash| !hash.is_empty()) else {
        return Err(refused(
            "identity_unsigned",
            "a user_id needs its user_hash, signed by the site's backend",
        )
        .into());
    };
    if !verify_user_hash(&settings.secret, user_id, user_hash) {
        return Err(refused(
            "identity_invalid",
            "user_hash is not the signature of this user_id with the tenant's identity secret",
        )
        .into());
    }
    Ok(state
        .store
        .identified_visitor(tenant, user_id, profile)
        .await?)
}

fn view(identity: &TenantIdentity) -> serde_json::Value {
    serde_json::json!({ "identity": identity })
}

async fn get_identity(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Settings).await?;
    Ok(Json(view(&state.store.tenant_identity(&tenant).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityOptions {
    #[serde(default)]
    required: Option<bool>,
    #[serde(default)]
    link_mobile: Option<bool>,
}

async fn patch_identity(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<IdentityOptions>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Settings).await?;
    let Json(options) = body.map_err(|rejection| {
        ServiceError::invalid("bad_identity", rejection.body_text().to_lowercase())
    })?;
    let before = state.store.tenant_identity(&tenant).await?;
    let after = state
        .store
        .set_identity_options(&tenant, options.required, options.link_mobile)
        .await
        .map_err(|error| match error {
            store::StoreError::Conflict(message) => {
                ServiceError::invalid("identity_not_configured", message)
            }
            other => other.into(),
        })?;
    if after.required && !before.required {
        // Anonymous visitors' tokens are refused from now on; their open connections, on
        // every node, close too.
        state.bus.publish(
            &engine::bus::anonymous_visitors_topic(&tenant),
            engine::bus::BusEvent::IdentificationRequired {
                tenant: tenant.clone(),
            },
        );
    }
    record::note(serde_json::json!({
        "before": { "required": before.required, "link_mobile": before.link_mobile },
        "after": { "required": after.required, "link_mobile": after.link_mobile },
    }));
    Ok(Json(view(&after)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RotateOptions {
    /// The old secret leaked: also revoke the tokens identified visitors already hold.
    #[serde(default)]
    revoke_tokens: bool,
}

/// A new identity secret, answered once: signatures made with the previous one are refused
/// from now on, on every node (each session open reads the stored secret). With
/// `revoke_tokens`, the tokens identified visitors hold are revoked too, and their open
/// connections close: each must sign in again with a signature made with the new secret.
async fn rotate_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Settings).await?;
    // The body is optional (the console sends none).
    let options: RotateOptions = if body.iter().all(u8::is_ascii_whitespace) {
        RotateOptions::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ServiceError::invalid("bad_identity", format!("bad options: {error}"))
        })?
    };
    let secret = store::crypto::random_secret(SECRET_BYTES);
    let identity = state.store.set_identity_secret(&tenant, &secret).await?;
    let revoked = if options.revoke_tokens {
        let revoked = state.store.revoke_identified_tokens(&tenant).await?;
        for (customer_id, version) in &revoked {
            state.bus.publish(
                &engine::bus::customer_topic(customer_id),
                engine::bus::BusEvent::VisitorRevoked {
                    customer_id: customer_id.clone(),
                    version: *version,
                },
            );
        }
        revoked.len()
    } else {
        0
    };
    tracing::info!(tenant, revoked, "identity secret made");
    record::note(serde_json::json!({ "after": {
        "secret_created_at": identity.secret_created_at,
        "revoked_customers": revoked,
    }}));
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "secret": secret,
            "identity": identity,
            "revoked_customers": revoked,
        })),
    ))
}

/// Removes the secret: signed user ids are refused, and anonymous visitors allowed again.
async fn remove_secret(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Settings).await?;
    let identity = state.store.remove_identity_secret(&tenant).await?;
    tracing::info!(tenant, "identity secret removed");
    record::note(serde_json::json!({ "after": { "secret_set": false } }));
    Ok(Json(view(&identity)))
}
