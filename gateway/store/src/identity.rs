//! Identified web visitors (消息漫游, one customer across devices).
//!
//! A tenant's site vouches for its signed-in user: its backend computes
//! `hex(HMAC-SHA256(identity secret, user id))` and the widget passes the user id and that
//! signature when it opens its session. The gateway checks the signature ([`verify_user_hash`],
//! constant time) against the tenant's secret, kept here encrypted like every other secret.
//!
//! The user id is the tenant's own id for the person, the same one it links channel identities
//! to ([`Store::link_customer`]'s CRM id): an identified visitor is the web identity
//! `user:<id>` (one per person, whichever browser), linked to the CRM id `<id>`, so every
//! browser, the mobile app (when the tenant says its tokens' `sub` is that id: `link_mobile`)
//! and any identity linked to the same CRM id share the first linked identity's conversation.

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::Row;
use switchboard_channels::ChannelKind;

use super::{Customer, CustomerProfile, Store, StoreError, StoreResult};
use crate::util::now_ms;

/// The web identity's external id prefix for an identified visitor (anonymous visitors' ids
/// start with `v_`, so the two never meet).
pub const IDENTIFIED_PREFIX: &str = "user:";

/// Whether the customer is an anonymous web visitor: the widget's own visitor, not one a
/// site vouched for. These are refused while the tenant requires identified visitors.
pub fn is_anonymous_visitor(customer: &Customer) -> bool {
    customer.channel == ChannelKind::Web.as_str()
        && !customer.external_id.starts_with(IDENTIFIED_PREFIX)
}

/// The longest user id a site may give (bytes).
pub const MAX_USER_ID_BYTES: usize = 128;

/// A tenant's identity settings. The secret itself is never serialized.
#[derive(Clone, Default, Serialize)]
pub struct TenantIdentity {
    #[serde(skip)]
    pub secret: String,
    /// Whether a secret is set (sites can identify their users).
    pub secret_set: bool,
    /// When the current secret was made (ms since the epoch).
    pub secret_created_at: Option<i64>,
    /// Anonymous visitors are refused: every widget session must carry a signed user id.
    pub required: bool,
    /// A mobile app token's `sub` is the same user id: app users are linked to it too.
    pub link_mobile: bool,
    pub updated_at: Option<i64>,
}

impl std::fmt::Debug for TenantIdentity {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TenantIdentity")
            .field("secret_set", &self.secret_set)
            .field("secret_created_at", &self.secret_created_at)
            .field("required", &self.required)
            .field("link_mobile", &self.link_mobile)
            .finish_non_exhaustive()
    }
}

/// The signature a site sends for `user_id`: lowercase hex of HMAC-SHA256 keyed with the
/// secret's UTF-8 bytes (as the site's backend computes it; tests and examples use this).
pub fn sign_user_id(secret: &str, user_id: &str) -> String {
    let mut mac = hmac_of(secret);
    mac.update(user_id.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether `hash` (hex, either case) is the signature of `user_id` under `secret`. The
/// comparison is constant time; an empty secret verifies nothing.
pub fn verify_user_hash(secret: &str, user_id: &str, hash: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(given) = decode_hex(hash.trim()) else {
        return false;
    };
    let mut mac = hmac_of(secret);
    mac.update(user_id.as_bytes());
    mac.verify_slice(&given).is_ok()
}

fn hmac_of(secret: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac accepts keys of every length"))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(&text[at..at + 2], 16).ok())
        .collect()
}

/// Whether a user id is one a site may give: 1 to [`MAX_USER_ID_BYTES`] bytes, no control
/// characters, no spaces around it (a CRM id linked by an admin is trimmed: the two must meet).
pub fn is_valid_user_id(user_id: &str) -> bool {
    !user_id.is_empty()
        && user_id.trim() == user_id
        && user_id.len() <= MAX_USER_ID_BYTES
        && !user_id.chars().any(char::is_control)
}

impl Store {
    /// The tenant's identity settings (the defaults when it never set any).
    /// Whether the tenant refuses anonymous web visitors (one light read: no secret opened).
    pub async fn identification_required(&self, tenant: &str) -> StoreResult<bool> {
        let row = sqlx::query("SELECT required FROM tenant_identity WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>("required")? != 0,
            None => false,
        })
    }

    pub async fn tenant_identity(&self, tenant: &str) -> StoreResult<TenantIdentity> {
        let row = sqlx::query(
            "SELECT secret_enc, secret_created_at, required, link_mobile, updated_at \
             FROM tenant_identity WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(TenantIdentity::default());
        };
        let sealed: String = row.try_get("secret_enc")?;
        let secret = if sealed.is_empty() {
            String::new()
        } else {
            self.cipher.decrypt(&sealed).map_err(|_| {
                StoreError::Corrupt(
                    "the identity secret does not decrypt with this node's key".into(),
                )
            })?
        };
        let required: i64 = row.try_get("required")?;
        let link_mobile: i64 = row.try_get("link_mobile")?;
        Ok(TenantIdentity {
            secret_set: !secret.is_empty(),
            secret,
            secret_created_at: row.try_get("secret_created_at")?,
            required: required != 0,
            link_mobile: link_mobile != 0,
            updated_at: Some(row.try_get("updated_at")?),
        })
    }

    /// Makes `secret` the tenant's identity secret (stored encrypted): signatures made with the
    /// previous one are refused from now on.
    pub async fn set_identity_secret(
        &self,
        tenant: &str,
        secret: &str,
    ) -> StoreResult<TenantIdentity> {
        if secret.is_empty() {
            return Err(StoreError::Invalid(
                "an identity secret is not empty".into(),
            ));
        }
        let now = now_ms();
        let sealed = self.cipher.encrypt(secret);
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "INSERT INTO tenant_identity (tenant_id, secret_enc, secret_created_at, required, link_mobile, updated_at) \
             VALUES ($1, $2, $3, 0, 0, $3) ON CONFLICT (tenant_id) DO UPDATE SET \
             secret_enc = excluded.secret_enc, secret_created_at = excluded.secret_created_at, \
             updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.tenant_identity(tenant).await
    }

    /// Removes the secret: identified sessions are refused, and identification is no longer
    /// required (nobody could meet it).
    pub async fn remove_identity_secret(&self, tenant: &str) -> StoreResult<TenantIdentity> {
        let (_guard, mut tx) = self.write().await?;
        sqlx::query(
            "UPDATE tenant_identity SET secret_enc = '', secret_created_at = NULL, required = 0, \
             updated_at = $2 WHERE tenant_id = $1",
        )
        .bind(tenant)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.tenant_identity(tenant).await
    }

    /// Changes the options that are given (`None` keeps one). Requiring identification needs a
    /// secret: without one it is a conflict, and nothing changes.
    pub async fn set_identity_options(
        &self,
        tenant: &str,
        required: Option<bool>,
        link_mobile: Option<bool>,
    ) -> StoreResult<TenantIdentity> {
        let (_guard, mut tx) = self.write().await?;
        let row = sqlx::query(
            "SELECT secret_enc, required, link_mobile FROM tenant_identity WHERE tenant_id = $1",
        )
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
        let (has_secret, was_required, was_linking) = match row {
            Some(row) => {
                let sealed: String = row.try_get("secret_enc")?;
                let required: i64 = row.try_get("required")?;
                let link_mobile: i64 = row.try_get("link_mobile")?;
                (!sealed.is_empty(), required != 0, link_mobile != 0)
            }
            None => (false, false, false),
        };
        let required = required.unwrap_or(was_required);
        let link_mobile = link_mobile.unwrap_or(was_linking);
        if required && !has_secret {
            return Err(StoreError::Conflict(
                "make an identity secret before requiring identified visitors".into(),
            ));
        }
        sqlx::query(
            "INSERT INTO tenant_identity (tenant_id, secret_enc, secret_created_at, required, link_mobile, updated_at) \
             VALUES ($1, '', NULL, $2, $3, $4) ON CONFLICT (tenant_id) DO UPDATE SET \
             required = excluded.required, link_mobile = excluded.link_mobile, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(i64::from(required))
        .bind(i64::from(link_mobile))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.tenant_identity(tenant).await
    }

    /// Links `identity` to the tenant's user id (as its CRM id) and answers the customer whose
    /// conversation it uses. An identity an admin already linked to another CRM id keeps that
    /// link (the admin's word wins; nothing is merged behind their back).
    pub async fn link_to_user(&self, identity: &Customer, user_id: &str) -> StoreResult<Customer> {
        match self
            .link_customer(&identity.tenant_id, &identity.id, user_id)
            .await
        {
            Ok(_) | Err(StoreError::Conflict(_)) => self.primary_customer(identity).await,
            Err(other) => Err(other),
        }
    }

    /// Revokes the visitor tokens of every identified visitor of the tenant (after its secret
    /// leaked, with the rotation): their web identities' and the customers whose conversations
    /// they share (a token names that one). Answers each revoked customer with its new token
    /// version, so their open connections can be closed.
    pub async fn revoke_identified_tokens(&self, tenant: &str) -> StoreResult<Vec<(String, i64)>> {
        let (_guard, mut tx) = self.write().await?;
        let rows = sqlx::query(
            "UPDATE customers SET token_version = token_version + 1 WHERE tenant_id = $1 AND ( \
             (channel = 'web' AND external_id LIKE 'user:%') OR id IN ( \
                 SELECT c.primary_customer_id FROM crm_links c \
                 JOIN customer_links l ON l.tenant_id = c.tenant_id AND l.crm_id = c.crm_id \
                 JOIN customers w ON w.id = l.customer_id \
                 WHERE c.tenant_id = $1 AND w.channel = 'web' AND w.external_id LIKE 'user:%')) \
             RETURNING id, token_version",
        )
        .bind(tenant)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("token_version")?)))
            .collect()
    }

    /// An identified web visitor: the web identity of `user_id` (made on first sight, with
    /// `profile`), linked to the user id. Answers (the identity, the customer whose
    /// conversation it uses).
    pub async fn identified_visitor(
        &self,
        tenant: &str,
        user_id: &str,
        profile: &CustomerProfile,
    ) -> StoreResult<(Customer, Customer)> {
        let identity = self
            .customer_for_identity(
                tenant,
                ChannelKind::Web,
                &format!("{IDENTIFIED_PREFIX}{user_id}"),
                profile,
            )
            .await?;
        let customer = self.link_to_user(&identity, user_id).await?;
        Ok((identity, customer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_for_their_own_id_and_secret_only() {
        let hash = sign_user_id("s3cret", "user-42");
        assert_eq!(hash.len(), 64);
        assert!(verify_user_hash("s3cret", "user-42", &hash));
        assert!(verify_user_hash(
            "s3cret",
            "user-42",
            &hash.to_ascii_uppercase()
        ));
        assert!(!verify_user_hash("s3cret", "user-43", &hash));
        assert!(!verify_user_hash("other", "user-42", &hash));
        assert!(!verify_user_hash(
            "",
            "user-42",
            &sign_user_id("", "user-42")
        ));
        assert!(!verify_user_hash("s3cret", "user-42", &hash[..63]));
        assert!(!verify_user_hash("s3cret", "user-42", "zz"));
        assert!(!verify_user_hash("s3cret", "user-42", &"é".repeat(32)));
        assert!(!verify_user_hash("s3cret", "user-42", ""));
    }

    #[test]
    fn a_known_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign_user_id("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn user_ids_have_limits() {
        assert!(is_valid_user_id("42"));
        assert!(is_valid_user_id("李雷@example.com"));
        assert!(!is_valid_user_id(""));
        assert!(!is_valid_user_id("   "));
        assert!(!is_valid_user_id(" 42"));
        assert!(!is_valid_user_id("a\nb"));
        assert!(!is_valid_user_id(&"x".repeat(129)));
    }
}
