//! Private keys at rest: sealed with AES-256-GCM under the storage key
//! (`SWITCHYARD_STORAGE_KEY`, 32 bytes as 64 hex digits) when one is
//! configured, stored as `sealed:v1:<hex of nonce, ciphertext and tag>`.
//! The certificate's id is the associated data, so a sealed key copied to
//! another row does not open. Without a storage key, keys are stored as
//! PEM (and a sealed key cannot be read: the node says so and skips it).

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::config::Secret;

const PREFIX: &str = "sealed:v1:";

/// Why a stored key cannot be read.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error(
        "the private key is sealed, and no storage key is configured (SWITCHYARD_STORAGE_KEY)"
    )]
    NoStorageKey,
    #[error("the private key does not open with the configured storage key (another key sealed it, or it was altered)")]
    WrongKey,
    #[error("the storage key must be 64 hex digits (32 bytes; `openssl rand -hex 32` makes one)")]
    BadStorageKey,
}

/// The storage key.
pub struct Sealer(LessSafeKey);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

impl Sealer {
    /// A storage key from its 64 hex digits.
    pub fn from_hex(key: &Secret) -> Result<Sealer, SealError> {
        let bytes = hex_decode(key.expose().trim()).ok_or(SealError::BadStorageKey)?;
        if bytes.len() != 32 {
            return Err(SealError::BadStorageKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadStorageKey)?;
        Ok(Sealer(LessSafeKey::new(key)))
    }

    /// `plain` sealed for the row `id`.
    pub fn seal(&self, id: i64, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random source works");
        let mut data = plain.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(id.to_be_bytes()),
                &mut data,
            )
            .expect("AES-GCM seals any length a PEM key has");
        let mut out = String::with_capacity(PREFIX.len() + 2 * (NONCE_LEN + data.len()));
        out.push_str(PREFIX);
        hex_encode(&mut out, &nonce);
        hex_encode(&mut out, &data);
        out
    }
}

/// The stored form of a key: sealed if a storage key is configured.
pub fn store(sealer: Option<&Sealer>, id: i64, key_pem: &str) -> String {
    match sealer {
        Some(sealer) => sealer.seal(id, key_pem),
        None => key_pem.to_owned(),
    }
}

/// The PEM key of row `id` from its stored form.
pub fn open(sealer: Option<&Sealer>, id: i64, stored: &str) -> Result<String, SealError> {
    let Some(sealed) = stored.strip_prefix(PREFIX) else {
        return Ok(stored.to_owned());
    };
    let sealer = sealer.ok_or(SealError::NoStorageKey)?;
    let bytes = hex_decode(sealed).ok_or(SealError::WrongKey)?;
    if bytes.len() < NONCE_LEN {
        return Err(SealError::WrongKey);
    }
    let (nonce, data) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::WrongKey)?;
    let mut data = data.to_vec();
    let plain = sealer
        .0
        .open_in_place(nonce, Aad::from(id.to_be_bytes()), &mut data)
        .map_err(|_| SealError::WrongKey)?;
    String::from_utf8(plain.to_vec()).map_err(|_| SealError::WrongKey)
}

fn hex_encode(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| (c as char).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(hex: &str) -> Sealer {
        Sealer::from_hex(&Secret::new(hex)).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_only_with_its_storage_key_and_row() {
        let key =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI...\n-----END PRIVATE KEY-----\n";
        let one = sealer(&"ab".repeat(32));
        let sealed = store(Some(&one), 7, key);
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.contains("PRIVATE KEY"));
        assert_ne!(sealed, one.seal(7, key), "a fresh nonce every time");
        assert_eq!(open(Some(&one), 7, &sealed).unwrap(), key);
        assert_eq!(open(Some(&one), 8, &sealed), Err(SealError::WrongKey));
        let other = sealer(&"cd".repeat(32));
        assert_eq!(open(Some(&other), 7, &sealed), Err(SealError::WrongKey));
        assert_eq!(open(None, 7, &sealed), Err(SealError::NoStorageKey));
        let mut altered = sealed.clone();
        let last = altered.pop().unwrap();
        altered.push(if last == '0' { '1' } else { '0' });
        assert_eq!(open(Some(&one), 7, &altered), Err(SealError::WrongKey));
        // Stored before a storage key was configured: read as is.
        assert_eq!(open(Some(&one), 7, key).unwrap(), key);
        assert_eq!(store(None, 7, key), key);
    }

    #[test]
    fn storage_keys_must_be_32_bytes_of_hex() {
        for bad in [
            "",
            "abc",
            &"zz".repeat(32),
            &"ab".repeat(16),
            &"ab".repeat(33),
        ] {
            assert_eq!(
                Sealer::from_hex(&Secret::new(bad)).unwrap_err(),
                SealError::BadStorageKey,
                "{bad}"
            );
        }
    }
}
