//! PROXY protocol (v1 text, v2 binary) on the proxy listener, for
//! deployments behind TCP balancers: a connection from a trusted balancer
//! starts with a header naming the real client, and that client is the one
//! `X-Forwarded-For`, `trusted_proxies` and the access log see.
//!
//! - A trusted peer must send a header, within `timeouts.header_read`; a
//!   missing or malformed one closes the connection. `LOCAL` (v2) and
//!   `UNKNOWN` (v1) headers, a balancer's own health checks, keep the peer.
//! - An untrusted peer is served as a direct client, and a header from it
//!   closes the connection (see [`starts_with_header`], checked by
//!   [`super::client_io::ClientIo`]): nobody else may claim an address.
//!
//! Parsing is the `ppp` crate's; this module only reads and decides.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use ppp::{v1, v2, HeaderResult};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest v1 header (the spec's limit, line end included).
const V1_MAX: usize = 107;
/// The fixed part of a v2 header; its last two bytes give the length of the rest.
const V2_FIXED: usize = 16;

/// The v2 signature; v1 starts with `PROXY `.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

/// Why a connection was closed before HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a trusted balancer sent no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header")]
    Malformed,
    #[error("no PROXY protocol header within the header-read timeout")]
    TimedOut,
    #[error("a PROXY protocol header from a peer that is not trusted")]
    Untrusted,
}

impl Refused {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Missing => "missing",
            Refused::Malformed => "malformed",
            Refused::TimedOut => "timed_out",
            Refused::Untrusted => "untrusted",
        }
    }
}

/// Whether `first` (the first bytes of a connection, possibly fewer than a
/// whole signature) is, or may become, a PROXY protocol header.
pub fn starts_with_header(first: &[u8]) -> bool {
    [&b"PROXY "[..], V2_SIGNATURE]
        .iter()
        .any(|sig| !first.is_empty() && sig.starts_with(&first[..first.len().min(sig.len())]))
}

/// Read the header a trusted `peer` sends on `stream`; returns the client
/// it names (`peer` for `LOCAL`/`UNKNOWN`) and the bytes read past the
/// header (the start of the HTTP stream).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    within: Duration,
) -> Result<(SocketAddr, Bytes), Refused> {
    let mut buffer = Vec::with_capacity(256);
    let read = async {
        loop {
            let mut chunk = [0u8; 512];
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(|_| Refused::Missing)?;
            if n == 0 {
                // The connection ended inside a header that had begun.
                return Err(if buffer.is_empty() {
                    Refused::Missing
                } else {
                    Refused::Malformed
                });
            }
            buffer.extend_from_slice(&chunk[..n]);
            if !starts_with_header(&buffer) {
                return Err(Refused::Missing);
            }
            // Judge a header only once all of it can be there: ppp calls
            // some truncated headers malformed, and some ended ones incomplete.
            if !whole(&buffer) {
                continue;
            }
            return client_of(&HeaderResult::parse(&buffer), peer).ok_or(Refused::Malformed);
        }
    };
    let (client, used) = tokio::time::timeout(within, read)
        .await
        .map_err(|_| Refused::TimedOut)??;
    Ok((client, Bytes::from(buffer).slice(used..)))
}

/// Whether `buffer` holds a whole header (or more than one could take): a
/// v1 line up to its CRLF (or its longest), a v2 header up to the length
/// it announces.
fn whole(buffer: &[u8]) -> bool {
    if buffer.starts_with(b"PROXY ") {
        return buffer.len() >= V1_MAX || buffer.windows(2).any(|w| w == b"\r\n");
    }
    match buffer.get(V2_FIXED - 2..V2_FIXED) {
        Some(length) => {
            let rest = usize::from(u16::from_be_bytes([length[0], length[1]]));
            buffer.len() >= V2_FIXED + rest
        }
        None => false,
    }
}

/// The client a complete header names, and the header's length.
fn client_of(parsed: &HeaderResult<'_>, peer: SocketAddr) -> Option<(SocketAddr, usize)> {
    match parsed {
        HeaderResult::V1(Ok(header)) => {
            let client = match header.addresses {
                v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Unknown => peer,
            };
            Some((client, header.header.len()))
        }
        HeaderResult::V2(Ok(header)) => {
            let client = match (header.command, header.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    SocketAddr::from((a.source_address, a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    SocketAddr::from((a.source_address, a.source_port))
                }
                _ => peer,
            };
            Some((client, header.len()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "10.0.0.1:40000";

    async fn read(mut input: &[u8]) -> Result<(SocketAddr, Vec<u8>), Refused> {
        let (client, rest) =
            read_header(&mut input, PEER.parse().unwrap(), Duration::from_secs(1)).await?;
        Ok((client, [&rest[..], input].concat()))
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut header = V2_SIGNATURE.to_vec();
        header.push(0x20 | command);
        header.push(family);
        header.extend_from_slice(&u16::try_from(addresses.len()).unwrap().to_be_bytes());
        header.extend_from_slice(addresses);
        header
    }

    #[tokio::test]
    async fn headers_name_the_client_and_the_bytes_after_them_are_kept() {
        let (client, rest) =
            read(b"PROXY TCP4 203.0.113.7 10.0.0.9 51000 80\r\nGET / HTTP/1.1\r\n")
                .await
                .unwrap();
        assert_eq!(client, "203.0.113.7:51000".parse().unwrap());
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (client, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n")
            .await
            .unwrap();
        assert_eq!(client, "[2001:db8::7]:51000".parse().unwrap());
        let (client, _) = read(b"PROXY UNKNOWN\r\n").await.unwrap();
        assert_eq!(client, PEER.parse().unwrap(), "UNKNOWN keeps the peer");

        let mut input = v2(1, 0x11, &[198, 51, 100, 4, 10, 0, 0, 9, 0xc3, 0x50, 0, 80]);
        input.extend_from_slice(b"GET");
        let (client, rest) = read(&input).await.unwrap();
        assert_eq!(client, "198.51.100.4:50000".parse().unwrap());
        assert_eq!(rest, b"GET");
        let (client, _) = read(&v2(0, 0x00, &[])).await.unwrap();
        assert_eq!(client, PEER.parse().unwrap(), "LOCAL keeps the peer");
    }

    #[tokio::test]
    async fn missing_and_malformed_headers_are_refused() {
        assert_eq!(read(b"GET / HTTP/1.1\r\n\r\n").await, Err(Refused::Missing));
        assert_eq!(read(b"").await, Err(Refused::Missing));
        assert_eq!(
            read(b"PROXY TCP4 nonsense\r\n").await,
            Err(Refused::Malformed)
        );
        let (mut tx, mut rx) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut tx, b"PROXY TCP4 who knows\r\n\r\n")
            .await
            .unwrap();
        let open = read_header(&mut rx, PEER.parse().unwrap(), Duration::from_secs(5));
        let refused = tokio::time::timeout(Duration::from_secs(1), open).await;
        assert!(
            matches!(refused, Ok(Err(Refused::Malformed))),
            "a v1 line that ended is judged at once, the connection still open"
        );
        assert_eq!(read(&v2(1, 0x11, &[1, 2])).await, Err(Refused::Malformed));
        let endless = [&b"PROXY TCP4 "[..], &[b'1'; 5000]].concat();
        assert_eq!(read(&endless).await, Err(Refused::Malformed));
        // A whole header split where ppp would call the first part malformed.
        let (mut tx, mut rx) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            read_header(&mut rx, PEER.parse().unwrap(), Duration::from_secs(5)).await
        });
        tokio::io::AsyncWriteExt::write_all(&mut tx, b"PROXY TCP4 203.0.113.7 10.0.0.9 51000 ")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        tokio::io::AsyncWriteExt::write_all(&mut tx, b"80\r\n")
            .await
            .unwrap();
        let (client, _) = reader.await.unwrap().unwrap();
        assert_eq!(client, "203.0.113.7:51000".parse().unwrap());
        // v2 may carry up to 64 KiB of TLVs.
        let mut big = v2(1, 0x11, &[198, 51, 100, 4, 10, 0, 0, 9, 0xc3, 0x50, 0, 80]);
        let tlv_len: u16 = 5000;
        big.extend_from_slice(&[0x04]);
        big.extend_from_slice(&tlv_len.to_be_bytes());
        big.extend(std::iter::repeat_n(0u8, usize::from(tlv_len)));
        let total = u16::try_from(big.len() - V2_FIXED).unwrap();
        big[V2_FIXED - 2..V2_FIXED].copy_from_slice(&total.to_be_bytes());
        let (client, rest) = read(&big).await.unwrap();
        assert_eq!(
            (client, rest.len()),
            ("198.51.100.4:50000".parse().unwrap(), 0)
        );
    }

    #[test]
    fn the_start_of_a_header_is_recognized_from_the_first_byte() {
        assert!(starts_with_header(b"P"));
        assert!(starts_with_header(b"PROXY TCP4"));
        assert!(starts_with_header(b"\r\n\r\n\0"));
        assert!(!starts_with_header(b"POST / HTTP/1.1"));
        assert!(!starts_with_header(b"PRI * HTTP/2.0"));
        assert!(!starts_with_header(b""));
    }
}
