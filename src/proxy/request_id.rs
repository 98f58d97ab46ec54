//! `X-Request-Id`: every request carries one to its backend and into the
//! access log. A sane incoming id (one header of 1–128 characters from
//! `A-Z a-z 0-9 - _ . : + / = @`) is kept, so a chain of proxies shares it;
//! anything else is replaced by a fresh one.
//!
//! Fresh ids are 32 hex digits: a random prefix per worker thread and a
//! counter. Unique without coordination (threads and nodes draw their own
//! 64-bit prefixes), and cheap enough for every request; not a secret.

use std::cell::Cell;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The header.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

const MAX_LEN: usize = 128;

/// The request's id: the incoming one if sane, else a fresh one, which
/// replaces whatever the client sent.
pub fn ensure(headers: &mut HeaderMap) -> HeaderValue {
    let mut incoming = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(id), None) = (incoming.next(), incoming.next()) {
        if is_sane(id.as_bytes()) {
            return id.clone();
        }
    }
    let id = generate();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
}

thread_local! {
    /// This thread's random prefix and the next counter value.
    static NEXT: Cell<(u64, u64)> = Cell::new((random_prefix(), 0));
}

fn random_prefix() -> u64 {
    // Without the kernel's randomness (never seen on Linux), fall back to
    // the clock and thread: still distinct, no longer unpredictable.
    getrandom::u64().unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos
            ^ crate::routing::hrw::stable_hash(
                format!("{:?}", std::thread::current().id()).as_bytes(),
            )
    })
}

fn generate() -> HeaderValue {
    let (prefix, n) = NEXT.with(|next| {
        let (prefix, n) = next.get();
        next.set((prefix, n.wrapping_add(1)));
        (prefix, n)
    });
    let mut text = [0u8; 32];
    for (i, byte) in prefix
        .to_be_bytes()
        .iter()
        .chain(&n.to_be_bytes())
        .enumerate()
    {
        text[2 * i] = HEX[usize::from(byte >> 4)];
        text[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_incoming_id_is_kept_and_anything_else_is_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123_x.y:z"));
        assert_eq!(ensure(&mut headers), "abc-123_x.y:z");

        for bad in ["", "has space", "quote\"", &"x".repeat(129)] {
            let mut headers = HeaderMap::new();
            headers.insert(&X_REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = ensure(&mut headers);
            assert_ne!(id, bad);
            assert_eq!(headers.get_all(&X_REQUEST_ID).iter().count(), 1);
            assert_eq!(headers[&X_REQUEST_ID], id);
        }

        let mut twice = HeaderMap::new();
        twice.append(&X_REQUEST_ID, HeaderValue::from_static("one"));
        twice.append(&X_REQUEST_ID, HeaderValue::from_static("two"));
        let id = ensure(&mut twice);
        assert_eq!(twice.get_all(&X_REQUEST_ID).iter().count(), 1);
        assert_eq!(id.len(), 32);
    }

    #[test]
    fn fresh_ids_are_32_hex_digits_and_distinct() {
        let ids: std::collections::HashSet<HeaderValue> =
            (0..1000).map(|_| ensure(&mut HeaderMap::new())).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.as_bytes().iter().all(u8::is_ascii_hexdigit)));
    }
}
