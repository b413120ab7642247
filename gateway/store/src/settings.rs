//! Tenant settings and customers' routing attributes.

use sqlx::Row;

use super::{Customer, CustomerAttributes, Store, StoreError, StoreResult};

impl Store {
    pub async fn set_tenant_settings(
        &self,
        tenant: &str,
        settings: &serde_json::Value,
    ) -> StoreResult<()> {
        let result = sqlx::query("UPDATE tenants SET settings = $1 WHERE id = $2")
            .bind(settings.to_string())
            .bind(tenant)
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound("tenant"));
        }
        Ok(())
    }

    /// Changes a tenant's settings from what they are now: `change` gets the stored value and
    /// returns the new one. Compare-and-swap on the stored text, retried, so two changes at once
    /// (on any node) never lose one another.
    pub async fn change_tenant_settings<E: From<StoreError>>(
        &self,
        tenant: &str,
        mut change: impl FnMut(serde_json::Value) -> Result<serde_json::Value, E>,
    ) -> Result<serde_json::Value, E> {
        for _ in 0..16 {
            let row = sqlx::query("SELECT settings FROM tenants WHERE id = $1")
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await
                .map_err(StoreError::from)?
                .ok_or(StoreError::NotFound("tenant"))?;
            let stored: String = row.try_get("settings").map_err(StoreError::from)?;
            let current = serde_json::from_str(&stored).unwrap_or_else(|_| serde_json::json!({}));
            let next = change(current)?;
            let result =
                sqlx::query("UPDATE tenants SET settings = $1 WHERE id = $2 AND settings = $3")
                    .bind(next.to_string())
                    .bind(tenant)
                    .bind(&stored)
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from)?;
            if result.rows_affected() == 1 {
                return Ok(next);
            }
        }
        Err(StoreError::Conflict("the settings kept changing; try again".into()).into())
    }

    pub async fn set_customer_attributes(
        &self,
        tenant: &str,
        id: &str,
        attributes: &CustomerAttributes,
    ) -> StoreResult<Customer> {
        let json = serde_json::to_string(attributes)
            .map_err(|error| StoreError::Invalid(error.to_string()))?;
        let result =
            sqlx::query("UPDATE customers SET attributes = $1 WHERE tenant_id = $2 AND id = $3")
                .bind(json)
                .bind(tenant)
                .bind(id)
                .execute(&self.pool)
                .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound("customer"));
        }
        self.customer(tenant, id)
            .await?
            .ok_or(StoreError::NotFound("customer"))
    }
}
