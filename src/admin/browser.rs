//! What a web page may make a browser do to the admin and metrics
//! listeners, in one place: the `Host` allow-list (a page on a name that
//! an attacker re-points at this machine, DNS rebinding, is refused on
//! every route), the `Origin` check and the `Sec-Fetch-Site` rule for
//! writes. Tokens are [`super::auth`]'s business; nothing here reads them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::Response;

use super::error::ApiError;
use crate::routing::key::normalize_host;

/// The names requests may carry in `Host`: IP literals and `localhost`
/// always, and `admin.allowed_hosts`. An IP literal cannot be rebound,
/// and a page whose origin is an IP literal is same-origin with the
/// listener anyway.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    names: Vec<String>,
}

impl AllowedHosts {
    /// `localhost`, IP literals and `names` (already normalized, see
    /// [`crate::config::AdminSettings::allowed_hosts`]).
    pub fn new(names: Vec<String>) -> Self {
        AllowedHosts { names }
    }

    /// Whether a request with these `headers` and this target may be
    /// served: exactly one `Host` line naming an allowed host, and an
    /// allowed authority if the target is in absolute form.
    fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
        let mut lines = headers.get_all(header::HOST).iter();
        let (Some(host), None) = (lines.next(), lines.next()) else {
            return Err(ApiError::HostNotAllowed(None));
        };
        self.permits(host.as_bytes())?;
        match uri.authority() {
            Some(authority) => self.permits(authority.as_str().as_bytes()),
            None => Ok(()),
        }
    }

    fn permits(&self, raw: &[u8]) -> Result<(), ApiError> {
        // Only the normalized name (letters, digits, `-`, `_`, `.`) is ever
        // shown back; a host that does not normalize is not shown at all.
        let Ok(key) = normalize_host(raw) else {
            return Err(ApiError::HostNotAllowed(None));
        };
        let name = key.as_str();
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        if name == "localhost"
            || literal.parse::<IpAddr>().is_ok()
            || self.names.iter().any(|n| n == name)
        {
            Ok(())
        } else {
            Err(ApiError::HostNotAllowed(Some(name.to_owned())))
        }
    }
}

/// Paths any `Host` may ask for: they answer a fixed `ok`-like body and
/// reveal nothing a rebinding page could use, and health checkers often
/// call them by a service name.
const PROBES: [&str; 2] = ["/healthz", "/readyz"];

/// Middleware for every route of the admin and metrics listeners but the
/// probes: refuse a request whose `Host` is not allowed
/// (`403 host_not_allowed`) before anything else looks at it.
pub async fn require_allowed_host(
    State(hosts): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if !PROBES.contains(&request.uri().path()) {
        hosts.check(request.headers(), request.uri())?;
    }
    Ok(next.run(request).await)
}

/// The browser origins allowed to call the API: this listener's own, and
/// `admin.allowed_origins` (e.g. an HTTPS reverse proxy in front of it).
#[derive(Clone, Debug)]
pub struct Origins {
    own: Vec<String>,
    /// `admin.allowed_origins`: the only origins whose pages may write
    /// when the browser says the request is cross-site.
    configured: Vec<String>,
    /// Bound to every address: accept the origin that matches the `Host`
    /// the request was sent to.
    any_host: bool,
}

impl Origins {
    /// The origins of a listener bound to `addr`.
    pub fn of(addr: SocketAddr) -> Self {
        let mut own = vec![format!("http://{addr}")];
        if addr.ip().is_loopback() {
            own.push(format!("http://localhost:{}", addr.port()));
        }
        Origins {
            own,
            configured: Vec::new(),
            any_host: addr.ip().is_unspecified(),
        }
    }

    /// These origins and `more` (already normalized, see
    /// [`crate::config::AdminSettings::allowed_origins`]).
    pub fn with(mut self, more: Vec<String>) -> Self {
        self.configured.extend(more);
        self
    }

    fn permits(&self, origin: &str, headers: &HeaderMap) -> bool {
        let listed = |o: &String| o.eq_ignore_ascii_case(origin);
        if self.own.iter().any(listed) || self.configured.iter().any(listed) {
            return true;
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        self.any_host && host.is_some_and(|h| origin.eq_ignore_ascii_case(&format!("http://{h}")))
    }

    /// Refuse what a page from elsewhere must not do: send any `Origin`
    /// line that is not allowed (`403 forbidden_origin`), or write when the
    /// browser says the request is cross-site, unless its origin is in
    /// `admin.allowed_origins` (`403 cross_site_write`). Browsers that
    /// leave `Origin` out still send `Sec-Fetch-Site`.
    fn check(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        let origins: Vec<_> = headers
            .get_all(header::ORIGIN)
            .iter()
            .map(|o| String::from_utf8_lossy(o.as_bytes()))
            .collect();
        if let Some(foreign) = origins.iter().find(|o| !self.permits(o, headers)) {
            return Err(ApiError::ForbiddenOrigin(foreign.to_string()));
        }
        let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        let cross_site = headers.get_all("sec-fetch-site").iter().any(|v| {
            v.as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"cross-site")
        });
        let configured = |o: &std::borrow::Cow<'_, str>| {
            self.configured.iter().any(|c| c.eq_ignore_ascii_case(o))
        };
        let vouched_for = !origins.is_empty() && origins.iter().all(configured);
        if write && cross_site && !vouched_for {
            return Err(ApiError::CrossSiteWrite);
        }
        Ok(())
    }
}

/// Middleware for the API routes: the [`Origins::check`] rules, before the
/// token is looked at.
pub async fn refuse_foreign_pages(
    State(origins): State<Arc<Origins>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    origins.check(request.method(), request.headers())?;
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn code(result: Result<(), ApiError>) -> &'static str {
        match result {
            Ok(()) => "ok",
            Err(ApiError::HostNotAllowed(_)) => "host_not_allowed",
            Err(ApiError::ForbiddenOrigin(_)) => "forbidden_origin",
            Err(ApiError::CrossSiteWrite) => "cross_site_write",
            Err(other) => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn ip_literals_localhost_and_listed_names_are_the_only_hosts() {
        let hosts = AllowedHosts::new(vec!["admin.example.com".into()]);
        let path: Uri = "/api/v1/backends".parse().unwrap();
        for (host, expected) in [
            ("127.0.0.1:8081", "ok"),
            ("10.1.2.3", "ok"),
            ("[::1]:8081", "ok"),
            ("[2001:db8::7]", "ok"),
            ("localhost:8081", "ok"),
            ("LocalHost.", "ok"),
            ("admin.example.com", "ok"),
            ("ADMIN.Example.com.:443", "ok"),
            ("evil.example:8081", "host_not_allowed"),
            ("admin.example.com.evil", "host_not_allowed"),
            ("sub.localhost", "host_not_allowed"),
            ("127.0.0.1.evil.example", "host_not_allowed"),
            ("2130706433", "host_not_allowed"),
            ("::1", "host_not_allowed"),
            ("", "host_not_allowed"),
            ("a b", "host_not_allowed"),
        ] {
            let result = hosts.check(&headers(&[("host", host)]), &path);
            assert_eq!(code(result), expected, "Host: {host:?}");
        }
        let none = hosts.check(&HeaderMap::new(), &path);
        assert_eq!(code(none), "host_not_allowed", "no Host");
        let two = headers(&[("host", "127.0.0.1"), ("host", "127.0.0.1")]);
        assert_eq!(code(hosts.check(&two, &path)), "host_not_allowed");
        let absolute: Uri = "http://evil.example/api/v1/backends".parse().unwrap();
        let host = headers(&[("host", "127.0.0.1")]);
        assert_eq!(code(hosts.check(&host, &absolute)), "host_not_allowed");
    }

    #[test]
    fn a_refused_host_is_shown_only_in_its_normalized_form() {
        let hosts = AllowedHosts::default();
        let path: Uri = "/".parse().unwrap();
        let shown = |host: &'static str| match hosts.check(&headers(&[("host", host)]), &path) {
            Err(err) => err.to_string(),
            Ok(()) => panic!("{host} is refused"),
        };
        let message = shown("Evil.Example.:8081");
        assert!(message.contains("\"evil.example\""), "{message}");
        assert!(message.contains("admin.allowed_hosts"), "{message}");
        let message = shown("<script>x</script>");
        assert!(!message.contains('<'), "{message}");
        assert!(message.contains("admin.allowed_hosts"), "{message}");
    }

    #[test]
    fn only_the_listeners_own_origin_is_permitted() {
        let loopback = Origins::of("127.0.0.1:8081".parse().unwrap());
        let none = HeaderMap::new();
        assert!(loopback.permits("http://127.0.0.1:8081", &none));
        assert!(loopback.permits("http://localhost:8081", &none));
        assert!(!loopback.permits("http://localhost:9999", &none));
        assert!(!loopback.permits("https://evil.example", &none));
        let everywhere = Origins::of("0.0.0.0:8081".parse().unwrap());
        let host = headers(&[("host", "10.1.2.3:8081")]);
        assert!(everywhere.permits("http://10.1.2.3:8081", &host));
        assert!(!everywhere.permits("http://evil.example", &host));
    }

    #[test]
    fn a_cross_site_write_needs_a_configured_origin() {
        let origins = Origins::of("127.0.0.1:8081".parse().unwrap())
            .with(vec!["https://admin.example.com".into()]);
        let cross = ("sec-fetch-site", "cross-site");
        for (method, lines, expected) in [
            (Method::POST, vec![cross], "cross_site_write"),
            (
                Method::DELETE,
                vec![("sec-fetch-site", " Cross-Site ")],
                "cross_site_write",
            ),
            (
                Method::PATCH,
                vec![cross, ("origin", "http://127.0.0.1:8081")],
                "cross_site_write",
            ),
            (
                Method::PUT,
                vec![cross, ("origin", "https://evil.example")],
                "forbidden_origin",
            ),
            (
                Method::POST,
                vec![cross, ("origin", "https://admin.example.com")],
                "ok",
            ),
            (Method::POST, vec![("sec-fetch-site", "same-origin")], "ok"),
            (Method::POST, vec![("sec-fetch-site", "none")], "ok"),
            (Method::POST, vec![("sec-fetch-site", "same-site")], "ok"),
            (Method::POST, vec![], "ok"),
            (Method::GET, vec![cross], "ok"),
            (Method::HEAD, vec![cross], "ok"),
            (Method::OPTIONS, vec![cross], "ok"),
        ] {
            let result = origins.check(&method, &headers(&lines));
            assert_eq!(code(result), expected, "{method} {lines:?}");
        }
    }
}
