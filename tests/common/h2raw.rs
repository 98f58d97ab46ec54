//! An HTTP/2 (h2c prior knowledge) client that writes frames by hand, for
//! requests a real client library refuses to send.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// What the proxy did with stream 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H2Outcome {
    /// A response with this status.
    Status(u16),
    /// `RST_STREAM` with this error code (1: PROTOCOL_ERROR).
    Reset(u32),
    /// `GOAWAY` with this error code.
    GoAway(u32),
    /// Nothing within the time limit.
    Silence,
}

/// One frame to send on stream 1 after the preface and SETTINGS.
pub enum Frame<'a> {
    /// A header block of literal fields (no indexing, no Huffman).
    Headers {
        fields: &'a [(&'a str, &'a str)],
        end_stream: bool,
    },
    Data {
        bytes: &'a [u8],
        end_stream: bool,
    },
}

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK "literal header field without indexing, new name", lengths < 127.
pub fn literal(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_len(out, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_len(out, value.len());
    out.extend_from_slice(value.as_bytes());
}

fn hpack_len(out: &mut Vec<u8>, len: usize) {
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        let mut rest = len - 127;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }
}

/// Send `frames` on stream 1 of a new h2c connection and report what came back.
pub async fn h2_exchange(addr: SocketAddr, frames: &[Frame<'_>]) -> H2Outcome {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    for f in frames {
        match f {
            Frame::Headers { fields, end_stream } => {
                let mut block = Vec::new();
                for (name, value) in *fields {
                    literal(&mut block, name, value);
                }
                let flags = END_HEADERS | if *end_stream { END_STREAM } else { 0 };
                out.extend(frame(HEADERS, flags, 1, &block));
            }
            Frame::Data { bytes, end_stream } => {
                let flags = if *end_stream { END_STREAM } else { 0 };
                out.extend(frame(DATA, flags, 1, bytes));
            }
        }
    }
    stream.write_all(&out).await.unwrap();
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 16384];
        loop {
            while buf.len() >= 9 {
                let len =
                    (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, id) = (
                    buf[3],
                    u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff,
                );
                let payload: Vec<u8> = buf[9..9 + len].to_vec();
                buf.drain(..9 + len);
                match (kind, id) {
                    (HEADERS, 1) => return H2Outcome::Status(status_of_block(&payload)),
                    (RST_STREAM, 1) => {
                        return H2Outcome::Reset(u32::from_be_bytes(
                            payload[..4].try_into().unwrap(),
                        ))
                    }
                    (GOAWAY, 0) => {
                        return H2Outcome::GoAway(u32::from_be_bytes(
                            payload[4..8].try_into().unwrap(),
                        ))
                    }
                    _ => {}
                }
            }
            match stream.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return H2Outcome::Silence,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .unwrap_or(H2Outcome::Silence)
}

/// The `:status` of a response header block: the first field, indexed from
/// the static table or a literal with name index 8 (value plain or Huffman).
fn status_of_block(block: &[u8]) -> u16 {
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    let first = block[0];
    if first & 0x80 != 0 {
        let index = usize::from(first & 0x7f);
        return STATIC.get(index.wrapping_sub(8)).copied().unwrap_or(0);
    }
    // Literal with (0x40) or without (0x00/0x10) indexing, name index 8.
    let name_index = first & if first & 0x40 != 0 { 0x3f } else { 0x0f };
    assert_eq!(name_index, 8, "first field is :status");
    let (huffman, len) = (block[1] & 0x80 != 0, usize::from(block[1] & 0x7f));
    let value = &block[2..2 + len];
    let text = if huffman {
        huffman_digits(value)
    } else {
        String::from_utf8_lossy(value).into_owned()
    };
    text.parse().unwrap_or(0)
}

/// Decode a Huffman-coded string of digits (RFC 7541 Appendix B).
fn huffman_digits(bytes: &[u8]) -> String {
    let codes: [(u32, u8, char); 10] = [
        (0x0, 5, '0'),
        (0x1, 5, '1'),
        (0x2, 5, '2'),
        (0x19, 6, '3'),
        (0x1a, 6, '4'),
        (0x1b, 6, '5'),
        (0x1c, 6, '6'),
        (0x1d, 6, '7'),
        (0x1e, 6, '8'),
        (0x1f, 6, '9'),
    ];
    let bits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1))
        .collect();
    let mut out = String::new();
    let mut at = 0;
    'outer: while at < bits.len() {
        for (code, len, ch) in codes {
            let len = usize::from(len);
            if at + len <= bits.len() {
                let value = bits[at..at + len]
                    .iter()
                    .fold(0u32, |n, &b| n << 1 | u32::from(b));
                if value == code {
                    out.push(ch);
                    at += len;
                    continue 'outer;
                }
            }
        }
        break; // padding (all ones)
    }
    out
}
