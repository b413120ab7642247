//! Erasing a customer on request (a person exercising their right to deletion, or a tenant
//! cleaning up): their profile, every identity linked to them by a CRM id, their conversations
//! with everything recorded about them, and every attachment — blobs and rows. Their open
//! connections end.

use super::Chat;
use crate::bus::{customer_topic, BusEvent};
use crate::error::{ServiceError, ServiceResult};
use store::erasure::Erased;

/// What an erasure removed, as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Erasure {
    pub customer_id: String,
    /// The customer and the identities linked to them by a CRM id.
    pub customers: u64,
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
        // The person: this customer and the identities linked to them by a CRM id.
        let person = self.store.person_of(tenant, customer_id).await?;
        // Listed before the rows that name them go; deleted once the erasure is committed.
        let mut attachments = Vec::new();
        for id in &person {
            attachments.extend(self.store.customer_attachments(tenant, id).await?);
        }
        attachments.sort_by(|a, b| a.id.cmp(&b.id));
        attachments.dedup_by(|a, b| a.id == b.id);
        let Erased {
            customers,
            conversations,
            messages,
        } = self
            .store
            .erase_customers(tenant, &person)
            .await?
            .ok_or(ServiceError::NotFound("customer"))?;
        let attachments = self.files.delete(&attachments).await?;
        // Any connection still open with one of their tokens ends.
        for id in &person {
            self.bus.publish(
                &customer_topic(id),
                BusEvent::VisitorRevoked {
                    customer_id: id.clone(),
                    version: i64::MAX,
                },
            );
        }
        tracing::info!(
            tenant,
            customer_id,
            customers,
            conversations,
            messages,
            attachments,
            "customer erased"
        );
        Ok(Erasure {
            customer_id: customer_id.to_owned(),
            customers,
            conversations,
            messages,
            attachments,
        })
    }
}
