//! Tenant settings and customers' routing attributes.

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
