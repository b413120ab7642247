//! Secrets: the keys that sign tokens and encrypt customer contact fields, the signed tokens
//! themselves, admin API keys, and masking of contact fields for logs.

use aes_gcm::aead::Aead;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A 32-byte secret that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl SecretKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill(&mut bytes);
        SecretKey(bytes)
    }

    /// Parses standard base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "key is not valid base64".to_owned())?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "key must be 32 bytes".to_owned())?;
        Ok(SecretKey(array))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

/// Encrypts and decrypts customer contact fields (AES-256-GCM, a random nonce per value).
/// Stored form: `v1:` + base64(nonce ‖ ciphertext ‖ tag).
#[derive(Clone)]
pub struct FieldCipher {
    cipher: Aes256Gcm,
}

#[derive(Debug, thiserror::Error)]
#[error("stored field cannot be decrypted with the configured encryption key")]
pub struct DecryptError;

impl FieldCipher {
    pub fn new(key: &SecretKey) -> Self {
        FieldCipher {
            cipher: Aes256Gcm::new((&key.0).into()),
        }
    }

    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("v1:{}", STANDARD.encode(out))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, DecryptError> {
        let encoded = stored.strip_prefix("v1:").ok_or(DecryptError)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| DecryptError)?;
        if bytes.len() < 12 + 16 {
            return Err(DecryptError);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| DecryptError)?;
        String::from_utf8(plain).map_err(|_| DecryptError)
    }
}

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Visitor,
    Agent,
    /// A one-time ticket for a visitor's WebSocket upgrade (seconds long).
    VisitorTicket,
    /// A one-time ticket for an agent's WebSocket upgrade.
    AgentTicket,
}

/// The signed claims of a visitor or agent token, scoped to one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "t")]
    pub tenant: String,
    #[serde(rename = "k")]
    pub kind: TokenKind,
    /// The customer id or agent id.
    #[serde(rename = "s")]
    pub subject: String,
    /// Tokens carry their subject's token version so that raising it revokes older tokens.
    #[serde(rename = "v", default)]
    pub version: i64,
    pub iat: i64,
    /// Tickets carry a random nonce, remembered once used.
    #[serde(rename = "n", default, skip_serializing_if = "String::is_empty")]
    pub nonce: String,
}

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies `v1.<payload>.<mac>` tokens (HMAC-SHA256 over the payload).
#[derive(Clone)]
pub struct TokenSigner {
    key: SecretKey,
}

impl TokenSigner {
    pub fn new(key: SecretKey) -> Self {
        TokenSigner { key }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail for 32 bytes.
        <HmacSha256 as Mac>::new_from_slice(&self.key.0).unwrap_or_else(|_| unreachable!())
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("v1.{payload}.{signature}")
    }

    /// A value only this key could have made from `data`, for `purpose` (e.g. the CSRF token
    /// of a console session, derived from the session's cookie value).
    pub fn derive(&self, purpose: &str, data: &str) -> String {
        let mut mac = self.mac();
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(data.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The claims of a well-formed token with a valid signature; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut parts = token.split('.');
        let (version, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if version != "v1" || parts.next().is_some() {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        mac.verify_slice(&signature).ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }
}

/// A new admin API key for a tenant: shown once, stored only as its hash.
pub fn new_admin_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill(&mut bytes);
    format!("sbk_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A random secret for a cookie or a one-time password: `bytes` random bytes, URL-safe base64.
pub fn random_secret(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill(buffer.as_mut_slice());
    URL_SAFE_NO_PAD.encode(buffer)
}

/// A member's password as stored: argon2id with the crate's default cost (19 MiB, 2 passes) and
/// a random salt, in PHC string form. Slow on purpose; call it off the async executor.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    rand::rng().fill(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|error| error.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| error.to_string())
}

/// Whether `password` matches a hash made by [`hash_password`]; a malformed hash matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

pub fn hash_admin_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two hashes without an early exit.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Contact fields as they may appear in logs: enough to recognise, not enough to use.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() < 7 {
        return "***".to_owned();
    }
    let head: String = digits[..3].iter().collect();
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().map(String::from).unwrap_or_default();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

pub fn mask_address(address: &str) -> String {
    let prefix: String = address.chars().take(3).collect();
    format!("{prefix}***")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_are_not_plaintext() {
        let cipher = FieldCipher::new(&SecretKey::generate());
        let stored = cipher.encrypt("13800138000");
        assert!(!stored.contains("13800138000"));
        assert_ne!(stored, cipher.encrypt("13800138000"), "nonces differ");
        assert_eq!(cipher.decrypt(&stored).unwrap(), "13800138000");
        let other = FieldCipher::new(&SecretKey::generate());
        assert!(other.decrypt(&stored).is_err());
        assert!(cipher.decrypt("v1:AAAA").is_err());
        assert!(cipher.decrypt("plain").is_err());
    }

    #[test]
    fn tokens_verify_only_untampered() {
        let signer = TokenSigner::new(SecretKey::generate());
        let claims = Claims {
            tenant: "demo".into(),
            kind: TokenKind::Visitor,
            subject: "cu_1".into(),
            version: 0,
            iat: 1,
            nonce: String::new(),
        };
        let token = signer.sign(&claims);
        assert_eq!(signer.verify(&token), Some(claims.clone()));
        let mut tampered = token.clone();
        tampered.insert(5, 'x');
        assert_eq!(signer.verify(&tampered), None);
        assert_eq!(TokenSigner::new(SecretKey::generate()).verify(&token), None);
        assert_eq!(signer.verify("garbage"), None);
        assert_eq!(signer.verify("v1.."), None);
    }

    #[test]
    fn masks() {
        assert_eq!(mask_phone("+86 138-0013-8000"), "861****8000");
        assert_eq!(mask_email("alice@example.com"), "a***@example.com");
        assert_eq!(mask_address("北京市朝阳区建国路"), "北京市***");
        let key = new_admin_key();
        assert!(constant_time_eq(
            &hash_admin_key(&key),
            &hash_admin_key(&key)
        ));
        assert!(!constant_time_eq(
            &hash_admin_key(&key),
            &hash_admin_key("x")
        ));
    }
}
