//! Mobile apps: the tenant's app server vouches for its user with a bearer JWT (HS256, signed
//! with a per-tenant secret), then the app speaks the [`crate::web`] frames.
//!
//! A token carries `sub` (the app's user id), `iat`, `exp` and a `nonce`. It is refused when
//! the signature is wrong, the algorithm is anything but HS256 (`none` included), it has
//! expired, `iat` is more than five minutes from now, or its nonce was already seen within the
//! window ([`NonceStore`]: in memory here; the gateway's Redis bus implements it for a cluster).

mod nonce;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use nonce::{
    ForgetFuture, MemoryNonceStore, NonceFuture, NonceStore, NonceStoreError, TenantNonceStore,
};

/// Tokens longer than this are refused unparsed.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The claims the gateway acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MobileClaims {
    /// The app's user id: the customer's identity on the mobile channel.
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token; a second use within the window is a replay.
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MobileAuthError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token algorithm `{0}` is not allowed, only hs256")]
    Algorithm(String),
    #[error("token signature does not match")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token was issued too far from now")]
    Stale,
    #[error("token nonce was already used")]
    Replayed,
    #[error("token claim `{0}` is missing or empty")]
    MissingClaim(&'static str),
    #[error("nonce store failed: {0}")]
    Store(#[from] NonceStoreError),
}

impl MobileAuthError {
    /// A stable code for the `401` body (store failures are the gateway's, answer `503`).
    pub fn code(&self) -> &'static str {
        match self {
            MobileAuthError::Malformed(_) => "malformed_token",
            MobileAuthError::Algorithm(_) => "bad_algorithm",
            MobileAuthError::BadSignature => "bad_signature",
            MobileAuthError::Expired => "expired",
            MobileAuthError::Stale => "stale",
            MobileAuthError::Replayed => "replayed",
            MobileAuthError::MissingClaim(_) => "missing_claim",
            MobileAuthError::Store(_) => "nonce_store_unavailable",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// The longest `sub` (the app's user id) a token may carry, in bytes.
pub const MAX_SUB_BYTES: usize = 128;

/// Verifies tokens for one tenant.
#[derive(Clone)]
pub struct MobileTokenVerifier {
    secret: Vec<u8>,
    /// How far `iat` may be from now, either way (and so how long nonces are remembered).
    max_skew: Duration,
}

impl std::fmt::Debug for MobileTokenVerifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MobileTokenVerifier")
            .field("max_skew", &self.max_skew)
            .finish_non_exhaustive()
    }
}

impl MobileTokenVerifier {
    pub const DEFAULT_SKEW: Duration = Duration::from_secs(300);

    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        MobileTokenVerifier {
            secret: secret.into(),
            max_skew: Self::DEFAULT_SKEW,
        }
    }

    pub fn with_max_skew(mut self, max_skew: Duration) -> Self {
        self.max_skew = max_skew;
        self
    }

    /// Checks algorithm, signature and times; does not look at the nonce store.
    pub fn verify(&self, token: &str, now_unix: i64) -> Result<MobileClaims, MobileAuthError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(MobileAuthError::Malformed("token is too long".to_owned()));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(MobileAuthError::Malformed(
                "a token has three dot-separated parts".to_owned(),
            ));
        };
        let header: Header = decode_part(header, "header")?;
        if header.alg != "HS256" {
            return Err(MobileAuthError::Algorithm(header.alg));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| MobileAuthError::Malformed("signature is not base64url".to_owned()))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret)
            .map_err(|_| MobileAuthError::Malformed("secret is unusable".to_owned()))?;
        let signed_len = token.len() - token.rsplit('.').next().map(str::len).unwrap_or(0) - 1;
        mac.update(&token.as_bytes()[..signed_len]);
        mac.verify_slice(&signature)
            .map_err(|_| MobileAuthError::BadSignature)?;

        let claims: MobileClaims = decode_part(payload, "payload")?;
        if claims.sub.is_empty() {
            return Err(MobileAuthError::MissingClaim("sub"));
        }
        // The app's user id becomes the customer's external id (in a unique index: PostgreSQL
        // refuses a NUL, and index rows over 2,704 bytes) and, with `link_mobile`, a web user id
        // (at most 128 bytes).
        if claims.sub.len() > MAX_SUB_BYTES || claims.sub.chars().any(char::is_control) {
            return Err(MobileAuthError::Malformed(format!(
                "sub is at most {MAX_SUB_BYTES} bytes, without control characters"
            )));
        }
        if claims.nonce.is_empty() || claims.nonce.len() > 256 {
            return Err(MobileAuthError::MissingClaim("nonce"));
        }
        if claims.exp <= now_unix {
            return Err(MobileAuthError::Expired);
        }
        let skew = i64::try_from(self.max_skew.as_secs()).unwrap_or(i64::MAX);
        if now_unix.saturating_sub(claims.iat).abs() > skew {
            return Err(MobileAuthError::Stale);
        }
        Ok(claims)
    }

    /// Verifies the token and records its nonce under `scope` (the tenant), refusing a replay.
    pub async fn authenticate(
        &self,
        token: &str,
        now_unix: i64,
        scope: &str,
        nonces: &dyn NonceStore,
    ) -> Result<MobileClaims, MobileAuthError> {
        let claims = self.verify(token, now_unix)?;
        // The token stays acceptable until `iat + skew`: remember the nonce that long.
        let skew = i64::try_from(self.max_skew.as_secs()).unwrap_or(i64::MAX);
        let remember_until = claims.iat.saturating_add(skew).max(now_unix + 1);
        let key = format!("{scope}:{}", claims.nonce);
        if !nonces.remember(&key, now_unix, remember_until).await? {
            return Err(MobileAuthError::Replayed);
        }
        Ok(claims)
    }

    /// Signs claims the way a tenant's app server does (for tests, tools and SDK examples).
    pub fn sign(&self, claims: &MobileClaims) -> String {
        sign_with_header(&self.secret, r#"{"alg":"HS256","typ":"JWT"}"#, claims)
    }
}

/// Signs with an arbitrary header (tests use it to forge other algorithms).
pub fn sign_with_header(secret: &[u8], header_json: &str, claims: &MobileClaims) -> String {
    let header = URL_SAFE_NO_PAD.encode(header_json);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let signature = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{signing_input}.{signature}")
}

fn decode_part<T: for<'de> Deserialize<'de>>(part: &str, what: &str) -> Result<T, MobileAuthError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| MobileAuthError::Malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| MobileAuthError::Malformed(format!("{what}: {error}")))
}
