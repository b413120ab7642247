//! Who is calling: a tenant admin (API key), an agent or a visitor (signed tokens).

use axum::http::HeaderMap;

use crate::error::{ApiResult, ServiceError};
use crate::AppState;
use store::crypto::{constant_time_eq, hash_admin_key, TokenKind};
use store::{Agent, Customer, Tenant};

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The tenant whose admin key the request carries; any other tenant's key is refused.
pub async fn require_admin(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &str,
) -> ApiResult<Tenant> {
    let key = bearer(headers).ok_or(ServiceError::Unauthorized)?;
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

pub async fn agent_from_token(state: &AppState, token: &str) -> ApiResult<Agent> {
    let claims = state
        .signer
        .verify(token)
        .filter(|c| c.kind == TokenKind::Agent)
        .ok_or(ServiceError::Unauthorized)?;
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

pub async fn visitor_from_token(state: &AppState, token: &str) -> ApiResult<Customer> {
    let claims = state
        .signer
        .verify(token)
        .filter(|c| c.kind == TokenKind::Visitor)
        .ok_or(ServiceError::Unauthorized)?;
    state
        .store
        .customer(&claims.tenant, &claims.subject)
        .await?
        .ok_or(ServiceError::Unauthorized.into())
}

/// An admin of the tenant, or one of its agents (read access to shared resources).
pub async fn require_admin_or_agent(
    state: &AppState,
    headers: &HeaderMap,
    tenant: &str,
) -> ApiResult<()> {
    let token = bearer(headers).ok_or(ServiceError::Unauthorized)?;
    if token.starts_with("v1.") {
        let agent = agent_from_token(state, token).await?;
        return if agent.tenant_id == tenant {
            Ok(())
        } else {
            Err(ServiceError::Unauthorized.into())
        };
    }
    require_admin(state, headers, tenant).await.map(|_| ())
}
