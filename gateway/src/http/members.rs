//! The operator console's people: signing in and out (a session cookie), the members of a
//! tenant and their roles, and the audit log.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{
    areas_of, authenticate, csrf_token, require, session_cookie, session_expired, session_key,
    session_member, Area, Caller, SESSION_COOKIE,
};
use crate::http::client_ip::client_ip;
use crate::http::record;
use crate::AppState;
use engine::error::blocking;
use store::crypto::{hash_password, random_secret, verify_password};
use store::{AuditFilter, Member, MemberRole, MemberUpdate, Store};
use tokio::sync::Semaphore;

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

/// How long a console session lasts; then the member signs in again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Passwords are 10 to 256 characters.
const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 10..=256;
const EMAIL_MAX: usize = 254;
const NAME_MAX: usize = 80;
/// Password hashes computed at once on a node (each takes 19 MiB and tens of milliseconds);
/// more wait, up to [`HASH_WAIT`].
pub const PASSWORD_CHECKS_AT_ONCE: usize = 2;
const HASH_WAIT: Duration = Duration::from_secs(10);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{tenant}/auth/login", post(login))
        .route("/v1/tenants/{tenant}/auth/logout", post(logout))
        .route("/v1/tenants/{tenant}/auth/me", get(me))
        .route(
            "/v1/tenants/{tenant}/members",
            get(list_members).post(create_member),
        )
        .route("/v1/tenants/{tenant}/members/{id}", patch(update_member))
        .route("/v1/tenants/{tenant}/audit", get(audit_log))
}

/// Hashes or checks a password on the blocking pool, at most [`PASSWORD_CHECKS_AT_ONCE`] at a
/// time on this node (`slots`).
async fn with_hasher<T: Send + 'static>(
    slots: &Semaphore,
    work: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let _permit = tokio::time::timeout(HASH_WAIT, slots.acquire())
        .await
        .map_err(|_| ServiceError::unavailable("busy", "too many sign-ins at once; retry"))?
        .map_err(|_| ServiceError::unavailable("busy", "shutting down"))?;
    Ok(blocking("password hash", work).await?)
}

async fn hash_new_password(slots: &Semaphore, password: String) -> ApiResult<String> {
    check_password(&password)?;
    with_hasher(slots, move || hash_password(&password))
        .await?
        .map_err(|error| ServiceError::Internal(anyhow::anyhow!("password hash: {error}")).into())
}

fn check_password(password: &str) -> Result<(), ServiceError> {
    if PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "weak_password",
            "a password is 10 to 256 characters",
        ))
    }
}

/// A member's view of themselves: who, what they may reach, their CSRF token.
fn signed_in_body(
    state: &AppState,
    member: &Member,
    cookie: &str,
    expires_at: i64,
) -> serde_json::Value {
    let mut body = json!({
        "member": member,
        "permissions": areas_of(member.role),
        "csrf_token": csrf_token(state, cookie),
        "expires_at": expires_at,
    });
    if member.role == MemberRole::Agent {
        body["agent_console_url"] = "/console".into();
    }
    body
}

fn session_cookie_header(state: &AppState, tenant: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.settings.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    // The cookie goes only to this tenant's API; the console page itself needs none.
    let text = format!(
        "{SESSION_COOKIE}={value}; Path=/v1/tenants/{tenant}/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[derive(Deserialize)]
struct SignIn {
    email: String,
    password: String,
}

/// A hash to check unknown emails against, so a wrong email takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_secret(16)).unwrap_or_default())
}

async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<SignIn>,
) -> ApiResult<Response> {
    let Path(tenant) = path?;
    let Json(sign_in) = body?;
    let bad = || ServiceError::unauthenticated("bad_credentials", "wrong email or password");
    if sign_in.email.len() > EMAIL_MAX || sign_in.password.chars().count() > *PASSWORD_CHARS.end() {
        return Err(bad().into());
    }
    let ip = client_ip(&state.settings.trusted_proxies, peer.ip(), &headers);
    let account = format!(
        "{tenant}\n{}",
        store::members::normalize_email(&sign_in.email)
    );
    state.chat.limits.sign_in(ip, &account)?;
    let found = state
        .store
        .member_credentials(&tenant, &sign_in.email)
        .await?;
    let (member, hash) = match found {
        Some((member, hash)) => (Some(member), hash),
        None => (None, decoy_hash().to_owned()),
    };
    let password = sign_in.password;
    let matches = with_hasher(&state.password_checks, move || {
        verify_password(&password, &hash)
    })
    .await?;
    let Some(member) = member.filter(|_| matches) else {
        tracing::info!(tenant, %ip, "console sign-in refused");
        return Err(bad().into());
    };
    if member.disabled {
        return Err(ServiceError::denied("member_disabled", "this account is disabled").into());
    }
    let cookie = random_secret(32);
    let expires_at = store::util::now_ms() + SESSION_LIFETIME.as_millis() as i64;
    state
        .store
        .create_member_session(&member, &session_key(&cookie), expires_at)
        .await?;
    record::set_actor("member", member.email.clone());
    let body = signed_in_body(&state, &member, &cookie, expires_at);
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie_header(&state, &tenant, &cookie, SESSION_LIFETIME.as_secs()),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Response> {
    let Path(tenant) = path?;
    if let Some(cookie) = session_cookie(&headers) {
        if let Ok(Caller::Member(member)) = authenticate(&state, &headers, &tenant).await {
            record::set_actor("member", member.email);
        }
        state
            .store
            .delete_member_session(&session_key(cookie))
            .await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie_header(&state, &tenant, "", 0),
    );
    Ok(response)
}

async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Response> {
    let Path(tenant) = path?;
    let cookie = session_cookie(&headers).ok_or(ServiceError::Unauthorized)?;
    let (member, expires_at) = session_member(&state, &session_key(cookie))
        .await?
        .filter(|(member, _)| member.tenant_id == tenant)
        .ok_or_else(session_expired)?;
    let mut response = Json(signed_in_body(&state, &member, cookie, expires_at)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

async fn list_members(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Team).await?;
    Ok(Json(
        json!({ "members": state.store.members(&tenant).await? }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    email: String,
    name: String,
    role: MemberRole,
    /// Left out: one is generated and answered once.
    #[serde(default)]
    password: Option<String>,
}

pub(crate) fn check_email(email: &str) -> Result<(), ServiceError> {
    let email = email.trim();
    let plausible = email.len() <= EMAIL_MAX
        && email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && !domain.is_empty())
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if plausible {
        Ok(())
    } else {
        Err(ServiceError::invalid("bad_email", "not an email address"))
    }
}

fn check_name(name: &str) -> Result<(), ServiceError> {
    let count = name.trim().chars().count();
    if (1..=NAME_MAX).contains(&count) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(ServiceError::invalid(
            "bad_name",
            "a name is 1 to 80 characters",
        ))
    }
}

/// Adds a member to a tenant (also used by the CLI and the demo): returns the member and the
/// password when one was generated. `slots` bounds the password hashes computed at once.
pub async fn add_member(
    store: &Store,
    slots: &Semaphore,
    tenant: &str,
    email: &str,
    name: &str,
    role: MemberRole,
    password: Option<String>,
) -> ApiResult<(Member, Option<String>)> {
    check_email(email)?;
    check_name(name)?;
    let generated = password.is_none();
    let password = password.unwrap_or_else(|| random_secret(12));
    let hash = hash_new_password(slots, password.clone()).await?;
    let member = store
        .create_member(tenant, email, name.trim(), role, &hash)
        .await?;
    Ok((member, generated.then_some(password)))
}

async fn create_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<NewMember>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Team).await?;
    let Json(new) = body?;
    let (member, password) = add_member(
        &state.store,
        &state.password_checks,
        &tenant,
        &new.email,
        &new.name,
        new.role,
        new.password,
    )
    .await?;
    record::note(json!({ "after": { "email": member.email, "role": member.role } }));
    let mut body = json!({ "member": member });
    if let Some(password) = password {
        body["password"] = password.into();
    }
    Ok((StatusCode::CREATED, Json(body)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberChange {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<MemberRole>,
    #[serde(default)]
    disabled: Option<bool>,
    /// A new password; `""` generates one and answers it once.
    #[serde(default)]
    password: Option<String>,
}

async fn update_member(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: JsonBody<MemberChange>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Team).await?;
    let Json(change) = body?;
    if let Some(name) = &change.name {
        check_name(name)?;
    }
    let before = state
        .store
        .member(&tenant, &id)
        .await?
        .ok_or(ServiceError::NotFound("member"))?;
    let generated = change.password.as_deref() == Some("");
    let password = change.password.map(|password| {
        if password.is_empty() {
            random_secret(12)
        } else {
            password
        }
    });
    let password_hash = match &password {
        Some(password) => Some(hash_new_password(&state.password_checks, password.clone()).await?),
        None => None,
    };
    let update = MemberUpdate {
        name: change.name.map(|name| name.trim().to_owned()),
        role: change.role,
        disabled: change.disabled,
        password_hash,
        agent_id: None,
    };
    let after = state.store.update_member(&tenant, &id, &update).await?;
    record::note(json!({
        "member": after.email,
        "before": { "name": before.name, "role": before.role, "disabled": before.disabled },
        "after": { "name": after.name, "role": after.role, "disabled": after.disabled },
        "password_changed": update.password_hash.is_some(),
    }));
    let mut body = json!({ "member": after });
    if let (true, Some(password)) = (generated, password) {
        body["password"] = password.into();
    }
    Ok(Json(body))
}

async fn audit_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    query: Result<Query<AuditFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Audit).await?;
    let Query(filter) = query?;
    let entries = state.store.audit_entries(&tenant, &filter).await?;
    let limit = filter
        .limit
        .unwrap_or(50)
        .clamp(1, store::members::AUDIT_PAGE_MAX) as usize;
    let next_before = (entries.len() == limit)
        .then(|| entries.last().map(|entry| entry.id))
        .flatten();
    Ok(Json(
        json!({ "entries": entries, "next_before": next_before }),
    ))
}
