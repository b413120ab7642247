//! Who is calling: a tenant admin (API key), a member of the tenant signed in to the operator
//! console (session cookie), an agent or a visitor (signed tokens); and what each may reach.
//!
//! Every tenant route names the [`Area`] it belongs to. The admin key reaches every area; a
//! member reaches the areas of their role ([`role_allows`]); an agent token reaches only the
//! routes that say so ([`require_reader`]).

use axum::http::{header, HeaderMap};
use serde::Serialize;

use crate::error::{ApiResult, ServiceError};
use crate::http::record;
use crate::AppState;
use store::crypto::{constant_time_eq, hash_admin_key, Claims, TokenKind};
use store::{Agent, Customer, Member, MemberRole, Tenant};

/// The console session's cookie.
pub const SESSION_COOKIE: &str = "sb_session";
/// The header that carries a session's CSRF token on every request that changes something.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A part of a tenant's administration, as the console's navigation shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    /// FAQs, synonyms, imports and exports, the bot's dry run.
    Knowledge,
    /// Bot settings (work mode, thresholds, LLM), intents and the tenant's own models.
    Bot,
    SensitiveWords,
    /// Routing and quality policies.
    Policies,
    /// Members, agents, canned replies.
    Team,
    /// WeChat, Douyin and mobile apps.
    Channels,
    /// The tenant's whole settings (limits, business hours, ...).
    Settings,
    /// Queues, agents and conversations now; notes, transfers, take-overs.
    Live,
    /// Reports, satisfaction and exports.
    Reports,
    Audit,
}

impl Area {
    pub const ALL: [Area; 10] = [
        Area::Knowledge,
        Area::Bot,
        Area::SensitiveWords,
        Area::Policies,
        Area::Team,
        Area::Channels,
        Area::Settings,
        Area::Live,
        Area::Reports,
        Area::Audit,
    ];
}

/// What each role may reach: admins everything; knowledge managers the knowledge base, the bot,
/// sensitive words and the reports; supervisors the live view and the reports; agents only their
/// console.
pub fn role_allows(role: MemberRole, area: Area) -> bool {
    match role {
        MemberRole::Admin => true,
        MemberRole::KnowledgeManager => {
            matches!(
                area,
                Area::Knowledge | Area::Bot | Area::SensitiveWords | Area::Reports
            )
        }
        MemberRole::Supervisor => matches!(area, Area::Live | Area::Reports),
        MemberRole::Agent => false,
    }
}

/// The areas a role reaches, in navigation order.
pub fn areas_of(role: MemberRole) -> Vec<Area> {
    Area::ALL
        .into_iter()
        .filter(|area| role_allows(role, *area))
        .collect()
}

/// Who made an authenticated tenant request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The tenant's admin API key (scripts, the CLI's HTTP users).
    AdminKey,
    /// A signed-in member of the tenant.
    Member(Member),
}

impl Caller {
    /// How the audit log and policy versions name the caller.
    pub fn name(&self) -> String {
        match self {
            Caller::AdminKey => "admin key".to_owned(),
            Caller::Member(member) => member.email.clone(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Caller::AdminKey => "admin_key",
            Caller::Member(_) => "member",
        }
    }

    pub fn may(&self, area: Area) -> bool {
        match self {
            Caller::AdminKey => true,
            Caller::Member(member) => role_allows(member.role, area),
        }
    }
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The value of the console's session cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// What the session table keeps of a cookie value.
pub fn session_key(cookie: &str) -> String {
    hash_admin_key(cookie)
}

/// The CSRF token that belongs to a session cookie: derived with the node's signing key, so it
/// needs no storage and another site cannot compute it.
pub fn csrf_token(state: &AppState, cookie: &str) -> String {
    state.signer.derive("console-csrf", cookie)
}

/// The caller, allowed into `area` of `tenant`: the tenant's admin key, or a signed-in member of
/// this tenant whose role reaches the area. Recorded as the actor of the request's audit entry.
pub async fn require(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &str,
    area: Area,
) -> ApiResult<Caller> {
    let caller = authenticate(state, headers, tenant).await?;
    if !caller.may(area) {
        return Err(ServiceError::denied(
            "role",
            "your role does not give access to this part of the console",
        )
        .into());
    }
    record::set_actor(caller.kind(), caller.name());
    Ok(caller)
}

/// The admin key or a signed-in member of `tenant` (any role).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &str,
) -> ApiResult<Caller> {
    if let Some(key) = bearer(headers) {
        return require_admin_key(state, key, tenant)
            .await
            .map(|_| Caller::AdminKey);
    }
    let cookie = session_cookie(headers).ok_or(ServiceError::Unauthorized)?;
    let (member, _) = session_member(state, &session_key(cookie))
        .await?
        .ok_or_else(session_expired)?;
    if member.tenant_id != tenant {
        return Err(ServiceError::denied("other_tenant", "signed in to another tenant").into());
    }
    Ok(Caller::Member(member))
}

/// The member of a live console session (by its cookie's key), and when it expires: not past
/// its lifetime, nor unused for the node's `console_idle_minutes`. Records the use.
pub async fn session_member(state: &AppState, key: &str) -> ApiResult<Option<(Member, i64)>> {
    let idle_ms = i64::from(state.settings.console_idle_minutes) * 60_000;
    Ok(state.store.session_member(key, idle_ms).await?)
}

pub fn session_expired() -> ServiceError {
    ServiceError::unauthenticated("session_expired", "sign in again: the session ended")
}

async fn require_admin_key(state: &AppState, key: &str, tenant: &str) -> ApiResult<Tenant> {
    let tenant = state
        .store
        .tenant(tenant)
        .await?
        .ok_or(ServiceError::Unauthorized)?;
    if !constant_time_eq(&hash_admin_key(key), &tenant.admin_key_hash) {
        return Err(ServiceError::Unauthorized.into());
    }
    Ok(tenant)
}

/// How long an agent token is good for; the console renews it at every sign-in and reconnect
/// (`GET /v1/agent/me`), so only a link nobody used for that long stops working.
pub const AGENT_TOKEN_LIFETIME_SECS: i64 = 90 * 24 * 3600;

pub async fn agent_from_token(state: &AppState, token: &str) -> ApiResult<Agent> {
    let claims = state
        .signer
        .verify(token)
        .filter(|c| c.kind == TokenKind::Agent)
        .ok_or(ServiceError::Unauthorized)?;
    if now_secs() - claims.iat > AGENT_TOKEN_LIFETIME_SECS {
        return Err(ServiceError::unauthenticated(
            "token_expired",
            "this agent token expired; ask an administrator for a new link",
        )
        .into());
    }
    agent_of(state, &claims).await
}

/// The agent a token or ticket names, if its version is still theirs (a reissue revokes).
async fn agent_of(state: &AppState, claims: &Claims) -> ApiResult<Agent> {
    let agent = state
        .store
        .agent(&claims.tenant, &claims.subject)
        .await?
        .ok_or(ServiceError::Unauthorized)?;
    if agent.token_version != claims.version {
        return Err(ServiceError::Unauthorized.into());
    }
    Ok(agent)
}

/// How long a visitor token is good for. A live widget renews its token whenever it opens a
/// session (`POST /v1/web/session` with the token answers a fresh one).
pub const VISITOR_TOKEN_LIFETIME_SECS: i64 = 30 * 24 * 3600;
/// How long a WebSocket ticket is good for, once.
pub const TICKET_LIFETIME_SECS: i64 = 30;

fn now_secs() -> i64 {
    store::util::now_ms() / 1000
}

pub async fn visitor_from_token(state: &AppState, token: &str) -> ApiResult<Customer> {
    let claims = state
        .signer
        .verify(token)
        .filter(|c| c.kind == TokenKind::Visitor)
        .ok_or(ServiceError::Unauthorized)?;
    if now_secs() - claims.iat > VISITOR_TOKEN_LIFETIME_SECS {
        return Err(ServiceError::unauthenticated(
            "token_expired",
            "this visitor token expired; start a new session",
        )
        .into());
    }
    visitor_of(state, &claims).await
}

/// The customer a visitor token or ticket names, if its version is still theirs.
async fn visitor_of(state: &AppState, claims: &Claims) -> ApiResult<Customer> {
    let customer = state
        .store
        .customer(&claims.tenant, &claims.subject)
        .await?
        .ok_or(ServiceError::Unauthorized)?;
    if customer.token_version != claims.version {
        return Err(ServiceError::unauthenticated(
            "token_revoked",
            "this visitor token was revoked; start a new session",
        )
        .into());
    }
    // An anonymous visitor's token, made before the tenant began to require identified
    // visitors, works no longer.
    if store::identity::is_anonymous_visitor(&customer)
        && state.store.identification_required(&claims.tenant).await?
    {
        return Err(ServiceError::identity_required().into());
    }
    Ok(customer)
}

/// A fresh visitor token for the customer's current token version.
pub fn visitor_token(state: &AppState, customer: &Customer) -> String {
    state.signer.sign(&Claims {
        tenant: customer.tenant_id.clone(),
        kind: TokenKind::Visitor,
        subject: customer.id.clone(),
        version: customer.token_version,
        iat: now_secs(),
        nonce: String::new(),
    })
}

/// A one-time ticket for a WebSocket upgrade, good for [`TICKET_LIFETIME_SECS`]: the token
/// itself never travels in a URL (proxies log them).
pub fn ws_ticket(
    state: &AppState,
    kind: TokenKind,
    tenant: &str,
    subject: &str,
    version: i64,
) -> String {
    state.signer.sign(&Claims {
        tenant: tenant.to_owned(),
        kind,
        subject: subject.to_owned(),
        version,
        iat: now_secs(),
        nonce: store::crypto::random_secret(16),
    })
}

/// Redeems a ticket of `kind`: signed, fresh, and never used before (on any node).
async fn redeem_ticket(state: &AppState, ticket: &str, kind: TokenKind) -> ApiResult<Claims> {
    let claims = state
        .signer
        .verify(ticket)
        .filter(|c| c.kind == kind && !c.nonce.is_empty())
        .ok_or(ServiceError::Unauthorized)?;
    let now = now_secs();
    if now - claims.iat > TICKET_LIFETIME_SECS || claims.iat > now + 5 {
        return Err(ServiceError::unauthenticated("ticket_expired", "ask for a new ticket").into());
    }
    let first = state
        .chat
        .cluster
        .tickets
        .remember(
            &format!("ticket:{}", claims.nonce),
            now,
            claims.iat + TICKET_LIFETIME_SECS,
        )
        .await
        .map_err(|error| ServiceError::unavailable("busy", error.to_string()))?;
    if !first {
        return Err(
            ServiceError::unauthenticated("ticket_used", "a ticket opens one connection").into(),
        );
    }
    Ok(claims)
}

/// The visitor a WebSocket upgrade is for: a one-time ticket, or (older widgets) the token.
pub async fn visitor_for_socket(
    state: &AppState,
    ticket: Option<&str>,
    token: Option<&str>,
) -> ApiResult<Customer> {
    match (ticket, token) {
        (Some(ticket), _) => {
            let claims = redeem_ticket(state, ticket, TokenKind::VisitorTicket).await?;
            visitor_of(state, &claims).await
        }
        (None, Some(token)) => visitor_from_token(state, token).await,
        (None, None) => Err(ServiceError::Unauthorized.into()),
    }
}

/// The agent a WebSocket upgrade is for: a one-time ticket, or the token.
pub async fn agent_for_socket(
    state: &AppState,
    ticket: Option<&str>,
    token: Option<&str>,
) -> ApiResult<Agent> {
    match (ticket, token) {
        (Some(ticket), _) => {
            let claims = redeem_ticket(state, ticket, TokenKind::AgentTicket).await?;
            agent_of(state, &claims).await
        }
        (None, Some(token)) => agent_from_token(state, token).await,
        (None, None) => Err(ServiceError::Unauthorized.into()),
    }
}

/// Read access to a shared resource of `area`: one of the tenant's agents (agent token), or a
/// caller [`require`] lets in.
pub async fn require_reader(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &str,
    area: Area,
) -> ApiResult<()> {
    if let Some(token) = bearer(headers).filter(|token| token.starts_with("v1.")) {
        let agent = agent_from_token(state, token).await?;
        return if agent.tenant_id == tenant {
            Ok(())
        } else {
            Err(ServiceError::Unauthorized.into())
        };
    }
    require(state, headers, tenant, area).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reaches_its_areas_only() {
        let reach = |role| areas_of(role);
        assert_eq!(reach(MemberRole::Admin), Area::ALL.to_vec());
        assert_eq!(
            reach(MemberRole::KnowledgeManager),
            [
                Area::Knowledge,
                Area::Bot,
                Area::SensitiveWords,
                Area::Reports
            ]
        );
        assert_eq!(reach(MemberRole::Supervisor), [Area::Live, Area::Reports]);
        assert!(reach(MemberRole::Agent).is_empty());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; sb_session=abc; b=2".parse().unwrap());
        assert_eq!(session_cookie(&headers), Some("abc"));
        headers.insert(header::COOKIE, "sb_session=; x=y".parse().unwrap());
        assert_eq!(session_cookie(&headers), None);
    }
}
