//! `admin_json`: the admin API's request bodies (`src/admin/backends.rs`).
//!
//! The first byte picks the body (`P` POST, `p` PATCH, `U` PUT; anything
//! else: all three); the rest is the body, decoded by `axum::Json` as the
//! handlers' extractor does, then validated by the handlers' own
//! `validate_*` functions, and the refusal rendered as the response.
//! The rest is also parsed as a bare backend address.
//!
//! Invariants: nothing panics; every refusal is a 4xx; every accepted
//! address is canonical (display → parse gives the same address and text)
//! and every accepted weight is 1 to `MAX_WEIGHT`.

use axum::response::IntoResponse;
use axum::Json;
use switchyard::admin::error::ApiError;
use switchyard::admin::model::{BackendPatch, NewBackend, Replacement};
use switchyard::admin::{validate_new, validate_patch, validate_replacement};
use switchyard::routing::pool::MAX_WEIGHT;
use switchyard::routing::BackendAddr;

pub fn check(data: &[u8]) {
    let (kind, body) = data.split_first().map_or((0, data), |(k, b)| (*k, b));
    let all = !matches!(kind, b'P' | b'p' | b'U');
    if all || kind == b'P' {
        if let Some(new) = decode::<NewBackend>(body) {
            match validate_new(&new) {
                Ok((address, weight)) => {
                    check_address(&address);
                    check_weight(weight);
                }
                Err(err) => check_refusal(err),
            }
        }
    }
    if all || kind == b'p' {
        if let Some(patch) = decode::<BackendPatch>(body) {
            match validate_patch(&patch) {
                Ok((state, weight)) => {
                    assert!(state.is_some() || weight.is_some(), "an empty patch passed");
                    if let Some(weight) = weight {
                        check_weight(weight);
                    }
                }
                Err(err) => check_refusal(err),
            }
        }
    }
    if all || kind == b'U' {
        if let Some(replacement) = decode::<Replacement>(body) {
            match validate_replacement(&replacement) {
                Ok(wanted) => {
                    assert_eq!(wanted.len(), replacement.backends.len());
                    for (i, (address, weight, _)) in wanted.iter().enumerate() {
                        check_address(address);
                        check_weight(*weight);
                        assert!(
                            !wanted[..i].iter().any(|(a, _, _)| a == address),
                            "{address} accepted twice in one pool"
                        );
                    }
                }
                Err(err) => check_refusal(err),
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(address) = text.parse::<BackendAddr>() {
            check_address(&address);
        }
    }
}

/// The body as the `JsonBody` extractor decodes it; a refusal must be a 4xx.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    match Json::<T>::from_bytes(body) {
        Ok(Json(value)) => Some(value),
        Err(rejection) => {
            check_refusal(ApiError::from(rejection));
            None
        }
    }
}

fn check_refusal(err: ApiError) {
    let message = err.to_string();
    let status = err.into_response().status();
    assert!(status.is_client_error(), "refused with {status}: {message}");
}

/// An accepted address is canonical: its text parses back to itself.
pub fn check_address(address: &BackendAddr) {
    let text = address.to_string();
    let again: BackendAddr = text
        .parse()
        .unwrap_or_else(|e| panic!("accepted address {text:?} does not parse back: {e}"));
    assert_eq!(&again, address, "{text:?} is not canonical");
    assert_eq!(again.to_string(), text, "{text:?} is not canonical");
    assert!(address.port() > 0, "{text:?} has port 0");
    assert!(!address.host().is_empty(), "{text:?} has no host");
}

fn check_weight(weight: u32) {
    assert!(
        (1..=MAX_WEIGHT).contains(&weight),
        "weight {weight} accepted"
    );
}
