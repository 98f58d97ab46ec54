//! The routing key of an `http::Request`: its target, `Host` headers and
//! path handed to [`routing_key`]. Shared by the proxy (phase 1) and the
//! admin API's route lookup, so both answer the same.

use http::{header, HeaderValue, Request, Version};

use super::key::{request_host, routing_key, KeyError, KeyInput, ReloadScope, RoutingKey, Rule};

/// The routing key of `req`, from its target, `Host` headers and path.
pub fn routing_key_of<B>(
    req: &Request<B>,
    scope: &ReloadScope,
) -> Result<(RoutingKey, Rule), KeyError> {
    with_key_input(req, |input| routing_key(input, scope))
}

/// The normalized host `req` asks for (whatever its path), checked like
/// the routing key checks it.
pub fn request_host_of<B>(req: &Request<B>) -> Result<RoutingKey, KeyError> {
    with_key_input(req, request_host)
}

fn with_key_input<B, R>(req: &Request<B>, f: impl FnOnce(&KeyInput<'_>) -> R) -> R {
    let mut hosts = req
        .headers()
        .get_all(header::HOST)
        .iter()
        .map(HeaderValue::as_bytes);
    let first_two = [hosts.next(), hosts.next()];
    let host_headers: &[&[u8]] = match first_two {
        [None, _] => &[],
        [Some(a), None] => &[a][..],
        [Some(a), Some(b)] => &[a, b][..],
    };
    let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
    let is_h2 = req.version() == Version::HTTP_2;
    let input = KeyInput {
        absolute_authority: if is_h2 { None } else { authority },
        h2_authority: if is_h2 { authority } else { None },
        host_headers,
        path: req.uri().path().as_bytes(),
    };
    f(&input)
}
