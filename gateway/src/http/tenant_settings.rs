//! Tenant settings (work mode, bot thresholds, limits) and customers' routing attributes.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, put};
use axum::{Json, Router};

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::require_admin;
use crate::AppState;
use engine::tenant::TenantSettings;
use store::CustomerAttributes;

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/settings",
            get(get_settings).put(put_settings),
        )
        .route(
            "/v1/tenants/{tenant}/customers/{id}/attributes",
            put(put_attributes),
        )
}

async fn get_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<TenantSettings>> {
    let Path(tenant) = path?;
    require_admin(&state, &headers, &tenant).await?;
    let record = state
        .store
        .tenant(&tenant)
        .await?
        .ok_or(ServiceError::NotFound("tenant"))?;
    Ok(Json(TenantSettings::from_stored(&tenant, &record.settings)))
}

async fn put_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<TenantSettings>,
) -> ApiResult<Json<TenantSettings>> {
    let Path(tenant) = path?;
    require_admin(&state, &headers, &tenant).await?;
    let Json(settings) = body?;
    settings
        .validate()
        .map_err(|message| ServiceError::invalid("bad_settings", message))?;
    let value = serde_json::to_value(&settings)
        .map_err(|error| ServiceError::Internal(anyhow::Error::new(error)))?;
    state.store.set_tenant_settings(&tenant, &value).await?;
    state.chat.forget_tenant_settings(&tenant);
    Ok(Json(settings))
}

async fn put_attributes(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: JsonBody<CustomerAttributes>,
) -> ApiResult<Json<store::Customer>> {
    let Path((tenant, id)) = path?;
    require_admin(&state, &headers, &tenant).await?;
    let Json(attributes) = body?;
    if attributes.vip_level > 9 {
        return Err(ServiceError::invalid("bad_attributes", "vip_level is 0 to 9").into());
    }
    Ok(Json(
        state
            .store
            .set_customer_attributes(&tenant, &id, &attributes)
            .await?,
    ))
}
