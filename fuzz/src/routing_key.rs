//! `routing_key`: the routing key derivation (`src/routing/key.rs`).
//!
//! The input is lines (`\n` cannot occur inside a header value, so nothing
//! real is lost); the first byte of a line says what it is:
//! `A` absolute-form authority, `2` HTTP/2 `:authority`, `H` a `Host` line
//! (repeatable), `P` the path (the last one wins); any other line is fed to
//! `normalize_host` and, as the domain of a reload URL, to `routing_key`.
//!
//! Invariants: nothing panics; every key that comes out is non-empty,
//! lowercase ASCII, without a port or a trailing dot, and normalizes to
//! itself; a reload URL gives the same answer whatever the ASCII case of
//! its domain (the case bug of the platform switchyard replaces).

use switchyard::routing::key::{normalize_host, reload_domain, request_host};
use switchyard::routing::{routing_key, KeyInput, ReloadScope, RoutingKey, Rule};

/// A `Host` every reload check uses, so that only the domain varies.
const CONTROL_HOST: &[u8] = b"control.example";

pub fn check(data: &[u8]) {
    let mut input = KeyInput::default();
    let mut hosts: Vec<&[u8]> = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        let (tag, value) = match line.split_first() {
            Some((tag, value)) => (*tag, value),
            None => (b'N', line),
        };
        match tag {
            b'A' => input.absolute_authority = Some(value),
            b'2' => input.h2_authority = Some(value),
            b'H' => hosts.push(value),
            b'P' => input.path = value,
            _ => {
                if let Ok(key) = normalize_host(line) {
                    check_key(&key, line);
                }
                reload_in_any_case(line);
            }
        }
    }
    input.host_headers = &hosts;
    for scope in [
        ReloadScope::AnyHost,
        ReloadScope::ControlHosts(vec![normalize_host(CONTROL_HOST).unwrap()]),
    ] {
        let Ok((key, rule)) = routing_key(&input, &scope) else {
            continue;
        };
        check_key(&key, data);
        if rule == Rule::Host {
            assert_eq!(Ok(key), request_host(&input), "the host rule is the host");
        } else {
            assert!(
                reload_domain(input.path).is_some(),
                "reload rule without a reload URL"
            );
        }
    }
}

/// What every routing key must look like.
pub fn check_key(key: &RoutingKey, from: &[u8]) {
    let text = key.as_str();
    let from = String::from_utf8_lossy(from);
    assert!(!text.is_empty(), "empty key from {from:?}");
    assert!(
        text.bytes()
            .all(|b| b.is_ascii() && !b.is_ascii_uppercase() && !b.is_ascii_control()),
        "key {text:?} from {from:?} is not lowercase ASCII"
    );
    let has_port = match text.strip_prefix('[') {
        // An IPv6 literal keeps its brackets and loses everything after them.
        Some(inside) => !inside.ends_with(']') || inside[..inside.len() - 1].contains(']'),
        None => text.contains(':'),
    };
    assert!(!has_port, "key {text:?} from {from:?} has a port");
    assert!(
        !text.ends_with('.'),
        "key {text:?} from {from:?} ends with a dot"
    );
    assert_eq!(
        normalize_host(text.as_bytes()).as_ref(),
        Ok(key),
        "key {text:?} from {from:?} is not its own normal form"
    );
}

/// `/user/u/webapps/<domain>/reload` with `domain` as typed and lowercased
/// must give the same key (or the same refusal). A "domain" with `/` or
/// `?` is not one path segment: it could bring its own `rEload` segment,
/// and the path (unlike the domain) is case-sensitive.
pub fn reload_in_any_case(domain: &[u8]) {
    let lower = domain.to_ascii_lowercase();
    if lower == domain || domain.iter().any(|b| matches!(b, b'/' | b'?')) {
        return;
    }
    let answer = |domain: &[u8]| {
        let path = [b"/user/u/webapps/", domain, b"/reload"].concat();
        let input = KeyInput {
            host_headers: &[CONTROL_HOST],
            path: &path,
            ..KeyInput::default()
        };
        routing_key(&input, &ReloadScope::AnyHost)
    };
    let typed = answer(domain);
    assert_eq!(
        typed,
        answer(&lower),
        "reload domain {:?}: its case changes the answer",
        String::from_utf8_lossy(domain)
    );
    if let Ok((key, _)) = &typed {
        check_key(key, domain);
    }
}
