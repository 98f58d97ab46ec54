//! The routing key: which domain a request is for.
//!
//! One pure function, [`routing_key`], turns what a request says about its
//! destination into a [`RoutingKey`]. Every source of a domain (absolute-form
//! authority, `Host`, HTTP/2 `:authority`, the domain inside a reload URL) goes
//! through the same [`normalize_host`], so `IronHand.Example` typed in a reload
//! URL and `ironhand.example` in a `Host` header are one key: the case bug of
//! the platform this replaces cannot come back by construction.
//!
//! This module does no I/O and never panics on any input (property-tested).

use std::borrow::Cow;
use std::fmt;
use std::net::Ipv6Addr;

use idna::AsciiDenyList;
use percent_encoding::percent_decode;

/// Longest domain accepted (RFC 1035 presentation form without trailing dot).
const MAX_DOMAIN_LEN: usize = 253;
/// Longest label accepted (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// A normalized domain (or IP literal): the only thing the pool hashes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoutingKey(Box<str>);

impl RoutingKey {
    /// The normalized key as text (`www.foo.com`, `xn--bcher-kva.example`, `[::1]`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which rule produced the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The domain inside `/user/<name>/webapps/<domain>/reload`.
    Reload,
    /// The request's host (absolute-form authority, `Host`, or `:authority`).
    Host,
}

impl Rule {
    /// `"reload"` or `"host"`, as shown in logs and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Reload => "reload",
            Rule::Host => "host",
        }
    }
}

/// Why no key could be derived. Each maps to a `400` whose body is the message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("missing Host header")]
    MissingHost,
    #[error("empty Host header")]
    EmptyHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("invalid host")]
    InvalidHost,
    #[error("request target authority does not match Host header")]
    HostMismatch,
    #[error("invalid domain in reload URL")]
    InvalidReloadDomain,
}

/// Everything [`routing_key`] looks at, borrowed from the request as raw bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeyInput<'a> {
    /// Authority of an HTTP/1 absolute-form target (`GET http://a.example/ ...`).
    pub absolute_authority: Option<&'a [u8]>,
    /// HTTP/2 `:authority` pseudo-header.
    pub h2_authority: Option<&'a [u8]>,
    /// Every `Host` header line, in order (more than one is an error).
    pub host_headers: &'a [&'a [u8]],
    /// The request path, with or without its query.
    pub path: &'a [u8],
}

/// Where the reload rule applies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ReloadScope {
    /// On every host (the default).
    #[default]
    AnyHost,
    /// Only on these control hosts (already normalized).
    ControlHosts(Vec<RoutingKey>),
}

/// Derive the routing key of a request (SPEC "The routing key", rules 1–4).
///
/// The host is always validated, even when the reload rule supplies the key,
/// so that a request with a broken or ambiguous host is refused whatever its path.
pub fn routing_key(
    input: &KeyInput<'_>,
    scope: &ReloadScope,
) -> Result<(RoutingKey, Rule), KeyError> {
    let host = request_host(input)?;
    if let Some(raw_domain) = reload_domain(input.path) {
        let applies = match scope {
            ReloadScope::AnyHost => true,
            ReloadScope::ControlHosts(hosts) => hosts.contains(&host),
        };
        if applies {
            let decoded: Cow<'_, [u8]> = percent_decode(raw_domain).into();
            let key = normalize_host(&decoded).map_err(|_| KeyError::InvalidReloadDomain)?;
            return Ok((key, Rule::Reload));
        }
    }
    Ok((host, Rule::Host))
}

/// The normalized host of the request: absolute-form authority, else `Host`,
/// else `:authority`. When two of them are present they must agree.
pub fn request_host(input: &KeyInput<'_>) -> Result<RoutingKey, KeyError> {
    let header = match input.host_headers {
        [] => None,
        [one] => Some(*one),
        _ => return Err(KeyError::DuplicateHost),
    };
    let header_key = header.map(normalize_nonempty).transpose()?;
    let target = input.absolute_authority.or(input.h2_authority);
    let target_key = target.map(normalize_nonempty).transpose()?;
    match (target_key, header_key) {
        (Some(t), Some(h)) if t != h => Err(KeyError::HostMismatch),
        (Some(t), _) => Ok(t),
        (None, Some(h)) => Ok(h),
        (None, None) => Err(KeyError::MissingHost),
    }
}

fn normalize_nonempty(raw: &[u8]) -> Result<RoutingKey, KeyError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(KeyError::EmptyHost);
    }
    normalize_host(raw)
}

/// If `path` (before any `?`) is `/user/<name>/webapps/<domain>/reload` with at
/// most one trailing `/`, return the raw (still percent-encoded) `<domain>`.
pub fn reload_domain(path: &[u8]) -> Option<&[u8]> {
    let path = match path.iter().position(|&b| b == b'?') {
        Some(q) => &path[..q],
        None => path,
    };
    let path = path.strip_suffix(b"/").unwrap_or(path);
    let rest = path.strip_prefix(b"/user/")?;
    let mut segments = rest.split(|&b| b == b'/');
    let name = segments.next()?;
    let webapps = segments.next()?;
    let domain = segments.next()?;
    let reload = segments.next()?;
    let valid = !name.is_empty()
        && webapps == b"webapps"
        && !domain.is_empty()
        && reload == b"reload"
        && segments.next().is_none();
    valid.then_some(domain)
}

/// Normalize a host or domain: drop the port, drop one trailing dot,
/// lowercase, IDNA (UTS #46) to ASCII; IPv6 literals keep their brackets and
/// take their canonical text form.
pub fn normalize_host(raw: &[u8]) -> Result<RoutingKey, KeyError> {
    let raw = raw.trim_ascii();
    if raw.first() == Some(&b'[') {
        return normalize_ipv6(raw);
    }
    let host = strip_port(raw)?;
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() {
        return Err(KeyError::InvalidHost);
    }
    let ascii = if is_plain_ascii_domain(host) {
        // Fast path: already ASCII letters/digits/-/./_ and no punycode labels,
        // where UTS #46 reduces to lowercasing.
        let mut s = String::from_utf8_lossy(host).into_owned();
        s.make_ascii_lowercase();
        s
    } else {
        idna::domain_to_ascii_cow(host, AsciiDenyList::URL)
            .map_err(|_| KeyError::InvalidHost)?
            .into_owned()
    };
    validate_domain(&ascii)?;
    Ok(RoutingKey(ascii.into_boxed_str()))
}

fn normalize_ipv6(raw: &[u8]) -> Result<RoutingKey, KeyError> {
    let close = raw
        .iter()
        .position(|&b| b == b']')
        .ok_or(KeyError::InvalidHost)?;
    let inside = std::str::from_utf8(&raw[1..close]).map_err(|_| KeyError::InvalidHost)?;
    let addr: Ipv6Addr = inside.parse().map_err(|_| KeyError::InvalidHost)?;
    match &raw[close + 1..] {
        [] => {}
        [b':', port @ ..] if is_port(port) => {}
        _ => return Err(KeyError::InvalidHost),
    }
    Ok(RoutingKey(format!("[{addr}]").into_boxed_str()))
}

/// Split `host[:port]`, checking that a port, if present, is digits.
fn strip_port(raw: &[u8]) -> Result<&[u8], KeyError> {
    match raw.iter().position(|&b| b == b':') {
        None => Ok(raw),
        Some(colon) if is_port(&raw[colon + 1..]) => Ok(&raw[..colon]),
        Some(_) => Err(KeyError::InvalidHost),
    }
}

/// Digits naming a TCP port (at most 65535). Empty ports are allowed by
/// RFC 3986 (`example.com:`).
fn is_port(port: &[u8]) -> bool {
    port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65535
}

fn is_plain_ascii_domain(host: &[u8]) -> bool {
    host.iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && !host
            .split(|&b| b == b'.')
            .any(|label| label.len() >= 4 && label[..4].eq_ignore_ascii_case(b"xn--"))
}

fn validate_domain(ascii: &str) -> Result<(), KeyError> {
    let ok = !ascii.is_empty()
        && ascii.len() <= MAX_DOMAIN_LEN
        && ascii.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_')
                })
        });
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidHost)
    }
}
