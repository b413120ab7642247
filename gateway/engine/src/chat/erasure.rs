//! Erasing a customer on request (a person exercising their right to deletion, or a tenant
//! cleaning up): their profile and links, their conversation with everything recorded about it,
//! and every attachment of it — blobs and rows. Their open connections end.

use super::Chat;
use crate::bus::{customer_topic, BusEvent};
use crate::error::{ServiceError, ServiceResult};
use store::erasure::Erased;

/// What an erasure removed, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    pub customer_id: String,
    pub conversations: u64,
    pub messages: u64,
    pub attachments: u64,
}

impl Chat {
    /// Erases a customer of `tenant`. Refused (409 `conflict`) while their conversation is not
    /// closed: someone may still be talking to them.
    pub async fn erase_customer(&self, tenant: &str, customer_id: &str) -> ServiceResult<Erasure> {
        self.store
            .customer(tenant, customer_id)
            .await?
            .ok_or(ServiceError::NotFound("customer"))?;
        // Listed before the rows that name them go; deleted once the erasure is committed.
        let attachments = self.store.customer_attachments(tenant, customer_id).await?;
        let Erased {
            conversations,
            messages,
        } = self
            .store
            .erase_customer(tenant, customer_id)
            .await?
            .ok_or(ServiceError::NotFound("customer"))?;
        let attachments = self.files.delete(&attachments).await?;
        // Any connection still open with one of their tokens ends.
        self.bus.publish(
            &customer_topic(customer_id),
            BusEvent::VisitorRevoked {
                customer_id: customer_id.to_owned(),
                version: i64::MAX,
            },
        );
        tracing::info!(
            tenant,
            customer_id,
            conversations,
            messages,
            attachments,
            "customer erased"
        );
        Ok(Erasure {
            customer_id: customer_id.to_owned(),
            conversations,
            messages,
            attachments,
        })
    }
}
