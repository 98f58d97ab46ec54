//! Backend addresses: `host:port`, validated and put in one canonical form.
//!
//! The canonical text is what the hash ring hashes, so `LOCALHOST:9001` and
//! `localhost:9001` are one backend on every node.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A validated backend address: IPv4, `[IPv6]` or a DNS name, and a port 1–65535.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendAddr {
    /// Canonical `host:port` text (lowercase; IPv6 bracketed and compressed).
    text: Box<str>,
    /// Length of the host part within `text`.
    host_len: usize,
    port: u16,
}

/// Why an address was refused; the message is meant for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid backend address {input:?}: {why}")]
pub struct AddressError {
    input: String,
    why: &'static str,
}

impl BackendAddr {
    /// The host part as it is dialled (IPv6 without brackets).
    pub fn host(&self) -> &str {
        let host = &self.text[..self.host_len];
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Canonical `host:port` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for BackendAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for BackendAddr {
    type Err = AddressError;

    fn from_str(input: &str) -> Result<Self, AddressError> {
        let fail = |why| AddressError {
            input: input.to_owned(),
            why,
        };
        let (host, port) = if let Some(rest) = input.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| fail("missing ']' after IPv6 address"))?;
            let ip: Ipv6Addr = inside
                .parse()
                .map_err(|_| fail("not a valid IPv6 address"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| fail("expected host:port"))?;
            (format!("[{ip}]"), port)
        } else {
            let (host, port) = input
                .rsplit_once(':')
                .ok_or_else(|| fail("expected host:port"))?;
            if host.contains(':') {
                return Err(fail(
                    "IPv6 addresses must be written in brackets, like [::1]:8000",
                ));
            }
            if host.parse::<Ipv4Addr>().is_err() && !is_dns_name(host) {
                return Err(fail(
                    "host must be an IPv4 address, a [IPv6] address or a DNS name",
                ));
            }
            (host.to_ascii_lowercase(), port)
        };
        let port: u16 = match port.parse() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
            _ => return Err(fail("port must be a number from 1 to 65535")),
        };
        let host_len = host.len();
        Ok(BackendAddr {
            text: format!("{host}:{port}").into_boxed_str(),
            host_len,
            port,
        })
    }
}

fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_canonicalizes() {
        for (input, text, host, port) in [
            ("127.0.0.1:9001", "127.0.0.1:9001", "127.0.0.1", 9001),
            ("LocalHost:80", "localhost:80", "localhost", 80),
            ("[0:0::1]:8080", "[::1]:8080", "::1", 8080),
            (
                "app-1.internal:65535",
                "app-1.internal:65535",
                "app-1.internal",
                65535,
            ),
        ] {
            let addr: BackendAddr = input.parse().unwrap();
            assert_eq!(
                (addr.as_str(), addr.host(), addr.port()),
                (text, host, port),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        for input in [
            "",
            "no-port",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            "::1:80",
            "[::1]",
            "[zz]:80",
            "bad_host:80",
            "-a.example:80",
            "a..b:80",
            "http://x:80",
            "not an address",
        ] {
            let err = input.parse::<BackendAddr>().unwrap_err();
            assert!(
                err.to_string().contains("invalid backend address"),
                "{input}: {err}"
            );
        }
    }
}
