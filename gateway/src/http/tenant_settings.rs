//! Tenant settings (work mode, bot thresholds, limits) and customers' routing attributes.
//!
//! `PUT settings` replaces the whole object (a field left out returns to its default);
//! `PATCH settings` merges a JSON merge patch (RFC 7386) into the stored settings: only the
//! fields sent change, and `null` returns a field to its default. Knowledge managers may change
//! the bot's part (`work_mode`, `bot`) only; the rest needs the settings area (admins).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::Value;

use crate::error::{ApiResult, ServiceError};
use crate::http::auth::{authenticate, require, Area, Caller};
use crate::http::record;
use crate::AppState;
use engine::tenant::TenantSettings;
use store::CustomerAttributes;

type PathParams<T> = Result<Path<T>, axum::extract::rejection::PathRejection>;
type JsonBody<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{tenant}/settings",
            get(get_settings).put(put_settings).patch(patch_settings),
        )
        .route(
            "/v1/tenants/{tenant}/customers/{id}/attributes",
            put(put_attributes),
        )
        .route(
            "/v1/tenants/{tenant}/admin-key",
            axum::routing::post(rotate_admin_key),
        )
}

async fn get_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<TenantSettings>> {
    let Path(tenant) = path?;
    let caller = authenticate(&state, &headers, &tenant).await?;
    if !caller.may(Area::Settings) {
        require(&state, &headers, &tenant, Area::Bot).await?;
    }
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
    require(&state, &headers, &tenant, Area::Settings).await?;
    let Json(settings) = body?;
    settings
        .validate()
        .map_err(|message| ServiceError::invalid("bad_settings", message))?;
    let value = serde_json::to_value(&settings)
        .map_err(|error| ServiceError::Internal(anyhow::Error::new(error)))?;
    let before = state
        .store
        .tenant(&tenant)
        .await?
        .map(|record| record.settings)
        .unwrap_or_default();
    state.store.set_tenant_settings(&tenant, &value).await?;
    state.chat.forget_tenant_settings(&tenant);
    record::note(changed_fields(&before, &value));
    Ok(Json(settings))
}

/// A new admin API key for the tenant, answered once; the old key is refused from now on (on
/// every node: each request checks the stored hash).
async fn rotate_admin_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
) -> ApiResult<Json<Value>> {
    let Path(tenant) = path?;
    require(&state, &headers, &tenant, Area::Settings).await?;
    let key = store::crypto::new_admin_key();
    state
        .store
        .set_admin_key_hash(&tenant, &store::crypto::hash_admin_key(&key))
        .await?;
    tracing::info!(tenant, "admin key rotated");
    Ok(Json(serde_json::json!({ "admin_key": key })))
}

/// The top-level fields a bot-only caller (a knowledge manager) may patch.
const BOT_FIELDS: [&str; 2] = ["work_mode", "bot"];

async fn patch_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<String>,
    body: JsonBody<Value>,
) -> ApiResult<Json<TenantSettings>> {
    let Path(tenant) = path?;
    let caller = authenticate(&state, &headers, &tenant).await?;
    let area = if caller.may(Area::Settings) {
        Area::Settings
    } else {
        Area::Bot
    };
    let caller: Caller = require(&state, &headers, &tenant, area).await?;
    let Json(patch) = body?;
    let Value::Object(fields) = &patch else {
        return Err(ServiceError::invalid("bad_settings", "a merge patch is a JSON object").into());
    };
    if !caller.may(Area::Settings) {
        if let Some(field) = fields
            .keys()
            .find(|key| !BOT_FIELDS.contains(&key.as_str()))
        {
            return Err(ServiceError::denied(
                "role",
                format!("your role may change work_mode and bot, not {field}"),
            )
            .into());
        }
    }
    let mut before = Value::Null;
    let stored = state
        .store
        .change_tenant_settings(&tenant, |current| {
            before = current.clone();
            let mut merged = serde_json::to_value(TenantSettings::from_stored(&tenant, &current))
                .map_err(|error| ServiceError::Internal(anyhow::Error::new(error)))?;
            merge_patch(&mut merged, &patch);
            let settings: TenantSettings = serde_json::from_value(merged)
                .map_err(|error| ServiceError::invalid("bad_settings", error.to_string()))?;
            settings
                .validate()
                .map_err(|message| ServiceError::invalid("bad_settings", message))?;
            serde_json::to_value(&settings)
                .map_err(|error| ServiceError::Internal(anyhow::Error::new(error)))
        })
        .await?;
    state.chat.forget_tenant_settings(&tenant);
    record::note(changed_fields(&before, &stored));
    Ok(Json(TenantSettings::from_stored(&tenant, &stored)))
}

/// RFC 7386: objects merge member by member, `null` removes a member, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// `{before, after}` with the top-level fields that differ.
fn changed_fields(before: &Value, after: &Value) -> Value {
    let empty = serde_json::Map::new();
    let before = before.as_object().unwrap_or(&empty);
    let after = after.as_object().unwrap_or(&empty);
    let mut old = serde_json::Map::new();
    let mut new = serde_json::Map::new();
    for key in before.keys().chain(after.keys()) {
        if before.get(key) != after.get(key) && !new.contains_key(key) {
            old.insert(key.clone(), before.get(key).cloned().unwrap_or(Value::Null));
            new.insert(key.clone(), after.get(key).cloned().unwrap_or(Value::Null));
        }
    }
    serde_json::json!({ "before": old, "after": new })
}

async fn put_attributes(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: PathParams<(String, String)>,
    body: JsonBody<CustomerAttributes>,
) -> ApiResult<Json<store::Customer>> {
    let Path((tenant, id)) = path?;
    require(&state, &headers, &tenant, Area::Live).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_merge_patch_changes_only_what_it_names() {
        let mut settings = json!({ "work_mode": "bot_first", "bot": { "a": 1, "b": 2 }, "x": 3 });
        merge_patch(
            &mut settings,
            &json!({ "bot": { "b": 5, "a": null }, "y": [1] }),
        );
        assert_eq!(
            settings,
            json!({ "work_mode": "bot_first", "bot": { "b": 5 }, "x": 3, "y": [1] })
        );
        let changed = changed_fields(
            &json!({ "a": 1, "b": 2 }),
            &json!({ "a": 1, "b": 3, "c": 4 }),
        );
        assert_eq!(
            changed,
            json!({ "before": { "b": 2, "c": null }, "after": { "b": 3, "c": 4 } })
        );
    }
}
