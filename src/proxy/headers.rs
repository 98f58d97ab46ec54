//! Header rewriting between client and backend: hop-by-hop removal and
//! `X-Forwarded-*`. Everything else passes through untouched.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::IpNet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The one protocol a request may upgrade to through the proxy, if it asks
/// for one (`Connection: upgrade`) that `allowed` names. `Upgrade` is read as
/// the list of all its lines: a second line (`Upgrade: websocket` then
/// `Upgrade: h2c`) or a list makes the request a plain one, so that nothing
/// but an allowed protocol is ever tunnelled (`h2c` never is: it would let a
/// client speak HTTP/2 to the backend past the proxy).
pub fn upgrade_protocol(headers: &HeaderMap, allowed: &[String]) -> Option<HeaderValue> {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| tokens(v).any(|t| t.eq_ignore_ascii_case("upgrade")));
    if !connection_upgrade {
        return None;
    }
    let mut protocols = headers.get_all(header::UPGRADE).iter().flat_map(tokens);
    let (Some(protocol), None) = (protocols.next(), protocols.next()) else {
        return None;
    };
    let name = protocol.split('/').next().unwrap_or_default();
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(name))
        .then(|| HeaderValue::from_str(protocol).ok())
        .flatten()
}

/// Whether a `101` names the protocol the request asked for (a backend may
/// not switch to another one; versions after `/` are not compared).
pub fn switched_to(headers: &HeaderMap, asked: &HeaderValue) -> bool {
    let name = |p: &str| p.split('/').next().unwrap_or_default().to_owned();
    let mut protocols = headers.get_all(header::UPGRADE).iter().flat_map(tokens);
    let asked = name(asked.to_str().unwrap_or_default());
    matches!((protocols.next(), protocols.next()), (Some(p), None) if name(p).eq_ignore_ascii_case(&asked))
}

fn tokens(value: &HeaderValue) -> impl Iterator<Item = &str> {
    value
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Remove hop-by-hop headers: `Connection` and every header it names,
/// `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, and
/// `Upgrade`; with `upgrade`, that one protocol is set again (one line) with
/// `Connection: upgrade`.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    let keep_upgrade = upgrade.is_some();
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(tokens)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        if !(keep_upgrade && name == header::UPGRADE) {
            headers.remove(&name);
        }
    }
    for name in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        headers.remove(name);
    }
    if let Some(protocol) = upgrade {
        headers.insert(header::UPGRADE, protocol);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Drop headers whose names contain `_`: CGI/WSGI backends map `X_Forwarded_For`
/// and `X-Forwarded-For` to the same variable, so they could spoof ours.
pub fn remove_underscore_headers(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_'))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

/// A client's address as `X-Forwarded-For` writes it, formatted once per
/// connection rather than once per request.
#[derive(Clone, Debug)]
pub struct PeerIp {
    ip: IpAddr,
    text: HeaderValue,
}

impl PeerIp {
    pub fn new(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        let text = HeaderValue::from_str(&ip.to_string()).expect("an IP address is a valid header");
        PeerIp { ip, text }
    }
}

/// Set `X-Forwarded-For/Proto/Host` (Proto: `https` on a TLS connection).
/// Values from a trusted peer are kept (For is appended to); from anyone
/// else they are replaced.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    (peer, https): (&PeerIp, bool),
    host: Option<&HeaderValue>,
    trusted: &[IpNet],
) {
    let peer_trusted = crate::config::any_contains(trusted, peer.ip);
    let existing_for = peer_trusted
        .then(|| {
            let list: Vec<&str> = headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            (!list.is_empty()).then(|| list.join(", "))
        })
        .flatten();
    let xff = match existing_for {
        Some(list) => {
            let peer_text = peer.text.to_str().unwrap_or_default();
            HeaderValue::from_str(&format!("{list}, {peer_text}")).ok()
        }
        None => Some(peer.text.clone()),
    };
    if let Some(value) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        let proto = if https { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(peer_trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(h) => headers.insert(X_FORWARDED_HOST.clone(), h.clone()),
            None => headers.remove(&X_FORWARDED_HOST),
        };
    }
}

/// HTTP/2 may split `Cookie` into several fields; HTTP/1.1 backends expect
/// one, joined with `; ` (RFC 9113 §8.2.3).
pub fn join_cookies(headers: &mut HeaderMap) {
    let cookies: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if cookies.len() > 1 {
        let joined = cookies.join(&b"; "[..]);
        if let Ok(value) = HeaderValue::from_bytes(&joined) {
            headers.insert(header::COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn hop_by_hop_headers_and_those_named_by_connection_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        remove_hop_by_hop(&mut h, None);
        assert_eq!(h, map(&[("x-kept", "yes")]));
    }

    #[test]
    fn only_one_allowed_protocol_is_ever_upgraded_to() {
        let allowed = ["websocket".to_owned()];
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "WebSocket")]);
        let protocol = upgrade_protocol(&h, &allowed).expect("websocket is allowed");
        remove_hop_by_hop(&mut h, Some(protocol));
        assert_eq!(
            h,
            map(&[("upgrade", "WebSocket"), ("connection", "upgrade")])
        );
        for refused in [
            &[
                ("connection", "upgrade, HTTP2-Settings"),
                ("upgrade", "h2c"),
            ][..],
            &[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("upgrade", "h2c"),
            ],
            &[("connection", "upgrade"), ("upgrade", "websocket, h2c")],
            &[("connection", "upgrade"), ("upgrade", "irc")],
            &[("upgrade", "websocket")],
        ] {
            assert_eq!(
                upgrade_protocol(&map(refused), &allowed),
                None,
                "{refused:?}"
            );
        }
        let asked = HeaderValue::from_static("websocket");
        assert!(switched_to(&map(&[("upgrade", "WebSocket")]), &asked));
        assert!(!switched_to(&map(&[("upgrade", "h2c")]), &asked));
        let versioned = HeaderValue::from_static("WebSocket/13");
        assert!(switched_to(&map(&[("upgrade", "websocket")]), &versioned));
    }

    #[test]
    fn forwarded_headers_replace_untrusted_and_extend_trusted() {
        let host = HeaderValue::from_static("a.example");
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut h,
            (&PeerIp::new("10.0.0.9".parse().unwrap()), false),
            Some(&host),
            &[],
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "a.example");
        let mut h = map(&[("x-forwarded-proto", "http")]);
        set_forwarded(
            &mut h,
            (&PeerIp::new("10.0.0.9".parse().unwrap()), true),
            Some(&host),
            &[],
        );
        assert_eq!(h["x-forwarded-proto"], "https", "a TLS connection's");

        let trusted = [crate::config::parse_net("10.0.0.0/8").unwrap()];
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(
            &mut h,
            (&PeerIp::new("10.0.0.9".parse().unwrap()), false),
            Some(&host),
            &trusted,
        );
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn underscore_headers_are_dropped() {
        let mut h = map(&[("x_forwarded_for", "6.6.6.6"), ("x-ok", "1")]);
        remove_underscore_headers(&mut h);
        assert_eq!(h, map(&[("x-ok", "1")]));
    }
}
