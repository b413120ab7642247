//! WeChat message signatures and safe-mode encryption.
//!
//! - URL and plain-mode signature: `sha1(sort(token, timestamp, nonce).join(""))`, lowercase hex.
//! - Safe-mode `msg_signature`: the same over four strings, the fourth being `Encrypt`.
//! - AES-256-CBC with key `base64_decode(EncodingAESKey + "=")` (32 bytes) and IV = its first
//!   16 bytes; the plaintext is `random(16) + big-endian u32 length + message + appid`, padded
//!   with PKCS#7 to a multiple of 32 bytes (not AES's 16), then base64 encoded.

use aes::Aes256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cbc::cipher::generic_array::GenericArray;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

use crate::adapter::{constant_time_eq, sha1_hex, WebhookError};

/// WeChat pads to this block size, twice AES's.
const PAD_BLOCK: usize = 32;
const AES_BLOCK: usize = 16;
/// Decrypted payloads larger than this are refused before allocating (WeChat pushes are small).
const MAX_CIPHERTEXT_BYTES: usize = 1024 * 1024;

/// Why an EncodingAESKey is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("encoding_aes_key must be 43 characters, got {0}")]
    Length(usize),
    #[error("encoding_aes_key is not valid base64")]
    NotBase64,
}

/// The 32-byte AES key derived from an app's EncodingAESKey.
#[derive(Clone)]
pub struct AesKey([u8; 32]);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("AesKey(..)")
    }
}

impl AesKey {
    /// Derives the key: base64 of the 43-character EncodingAESKey with one `=` appended.
    pub fn from_encoding_aes_key(encoding_aes_key: &str) -> Result<Self, KeyError> {
        if encoding_aes_key.len() != 43 {
            return Err(KeyError::Length(encoding_aes_key.chars().count()));
        }
        // 43 characters + "=" decode to exactly 32 bytes; the last character's two low bits are
        // discarded by WeChat's SDKs, so decode leniently about them.
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let decoded = engine
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| KeyError::NotBase64)?;
        let key: [u8; 32] = decoded.try_into().map_err(|_| KeyError::NotBase64)?;
        Ok(AesKey(key))
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

/// `sha1` over the lexicographically sorted parts, concatenated: WeChat's signature for both
/// URL verification (token, timestamp, nonce) and safe mode (plus Encrypt).
pub fn signature(parts: &[&str]) -> String {
    let mut sorted: Vec<&str> = parts.to_vec();
    sorted.sort_unstable();
    let bytes: Vec<&[u8]> = sorted.iter().map(|part| part.as_bytes()).collect();
    sha1_hex(&bytes)
}

/// Checks a hex signature against the expected one in constant time (case-insensitive hex).
pub fn signature_matches(expected: &str, given: &str) -> bool {
    constant_time_eq(expected.as_bytes(), given.to_ascii_lowercase().as_bytes())
}

/// Encrypts `message` for `appid` with the given 16 random bytes, answering the base64 text
/// WeChat expects in `Encrypt`. The randomness is a parameter so tests can match the official
/// vectors byte for byte; production callers use [`encrypt`].
pub fn encrypt_with_random(key: &AesKey, random: [u8; 16], message: &str, appid: &str) -> String {
    let message_len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    let mut plain = Vec::with_capacity(20 + message.len() + appid.len() + PAD_BLOCK);
    plain.extend_from_slice(&random);
    plain.extend_from_slice(&message_len.to_be_bytes());
    plain.extend_from_slice(message.as_bytes());
    plain.extend_from_slice(appid.as_bytes());
    let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
    plain.resize(plain.len() + pad, pad as u8);

    let mut encryptor = cbc::Encryptor::<Aes256>::new(&key.0.into(), &key.iv().into());
    for block in plain.chunks_exact_mut(AES_BLOCK) {
        encryptor.encrypt_block_mut(GenericArray::from_mut_slice(block));
    }
    STANDARD.encode(plain)
}

/// Encrypts with fresh random bytes.
pub fn encrypt(key: &AesKey, message: &str, appid: &str) -> String {
    let random: [u8; 16] = rand::random();
    encrypt_with_random(key, random, message, appid)
}

/// A decrypted payload: the message and the appid it was encrypted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub message: String,
    pub appid: String,
}

/// Decrypts an `Encrypt` value. Bad base64, a length that is not whole blocks, bad padding, a
/// length prefix past the end, or text that is not UTF-8 are typed errors, never panics.
pub fn decrypt(key: &AesKey, encrypted: &str) -> Result<Decrypted, WebhookError> {
    let decrypt_error = |detail: &str| WebhookError::Decrypt(detail.to_owned());
    if encrypted.len() > MAX_CIPHERTEXT_BYTES * 4 / 3 + 4 {
        return Err(decrypt_error("ciphertext is too large"));
    }
    let mut buffer = STANDARD
        .decode(encrypted.trim())
        .map_err(|_| decrypt_error("ciphertext is not base64"))?;
    if buffer.is_empty() || buffer.len() % AES_BLOCK != 0 {
        return Err(decrypt_error(
            "ciphertext is not a whole number of aes blocks",
        ));
    }
    let mut decryptor = cbc::Decryptor::<Aes256>::new(&key.0.into(), &key.iv().into());
    for block in buffer.chunks_exact_mut(AES_BLOCK) {
        decryptor.decrypt_block_mut(GenericArray::from_mut_slice(block));
    }

    let pad = usize::from(
        *buffer
            .last()
            .ok_or_else(|| decrypt_error("ciphertext is empty"))?,
    );
    if pad == 0 || pad > PAD_BLOCK || pad > buffer.len() {
        return Err(decrypt_error("padding is invalid"));
    }
    let unpadded_len = buffer.len() - pad;
    if buffer[unpadded_len..]
        .iter()
        .any(|&byte| usize::from(byte) != pad)
    {
        return Err(decrypt_error("padding is invalid"));
    }
    let plain = &buffer[..unpadded_len];
    if plain.len() < 20 {
        return Err(decrypt_error("plaintext is shorter than its header"));
    }
    let mut length_bytes = [0u8; 4];
    length_bytes.copy_from_slice(&plain[16..20]);
    let message_len = usize::try_from(u32::from_be_bytes(length_bytes)).unwrap_or(usize::MAX);
    let message_end = 20usize
        .checked_add(message_len)
        .filter(|end| *end <= plain.len());
    let message_end =
        message_end.ok_or_else(|| decrypt_error("message length runs past the plaintext"))?;
    let message = std::str::from_utf8(&plain[20..message_end])
        .map_err(|_| decrypt_error("message is not utf-8"))?
        .to_owned();
    let appid = std::str::from_utf8(&plain[message_end..])
        .map_err(|_| decrypt_error("appid is not utf-8"))?
        .to_owned();
    Ok(Decrypted { message, appid })
}

/// Decrypts and checks that the payload was encrypted for `expected_appid`.
pub fn decrypt_for_app(
    key: &AesKey,
    encrypted: &str,
    expected_appid: &str,
) -> Result<String, WebhookError> {
    let decrypted = decrypt(key, encrypted)?;
    if !constant_time_eq(decrypted.appid.as_bytes(), expected_appid.as_bytes()) {
        return Err(WebhookError::WrongApp {
            found: decrypted.appid,
        });
    }
    Ok(decrypted.message)
}
