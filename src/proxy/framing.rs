//! Ambiguous HTTP/1 request framing that hyper accepts but we refuse.
//!
//! hyper resolves `Content-Length` + `Transfer-Encoding` by dropping the
//! length (RFC 9112 §6.3 allows that) and silently merges identical duplicate
//! `Content-Length` lines, so by the time a request reaches the service the
//! evidence is gone. [`check_head`] looks at the raw head instead; the client
//! connection wrapper feeds it every head it sees, and the handler answers
//! `400` without forwarding anything.

/// A request head whose framing is ambiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("both Content-Length and Transfer-Encoding are present")]
    LengthAndChunked,
    #[error("more than one Content-Length header")]
    DuplicateContentLength,
    #[error("bare LF line ending in request head")]
    BareLineFeed,
}

/// Where a complete head ends in `buf` (index after the blank line), if it does.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + nl;
        let rest = &buf[at + 1..];
        if rest.starts_with(b"\r\n") {
            return Some(at + 3);
        }
        if rest.starts_with(b"\n") {
            return Some(at + 2);
        }
        i = at + 1;
    }
    None
}

/// Check one complete request head (request line through blank line).
pub fn check_head(head: &[u8]) -> Result<(), FramingError> {
    if head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
    {
        return Err(FramingError::BareLineFeed);
    }
    let mut content_lengths = 0;
    let mut transfer_encoding = false;
    // Header lines only: skip the request line.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        if name.eq_ignore_ascii_case(b"content-length") {
            content_lengths += 1;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encoding = true;
        }
    }
    match (content_lengths, transfer_encoding) {
        (n, true) if n > 0 => Err(FramingError::LengthAndChunked),
        (n, _) if n > 1 => Err(FramingError::DuplicateContentLength),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&[u8], Result<(), FramingError>)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(())),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", Ok(())),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Ok(())),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(FramingError::LengthAndChunked),
            ),
            (
                b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n",
                Err(FramingError::LengthAndChunked),
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                Err(FramingError::DuplicateContentLength),
            ),
            (b"GET / HTTP/1.1\nHost: a\n\n", Err(FramingError::BareLineFeed)),
            // A header *value* mentioning the names is not a header.
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: Content-Length: 1\r\nX-Te: Transfer-Encoding: x\r\n\r\n", Ok(())),
        ];
        for (head, want) in cases {
            assert_eq!(check_head(head), *want, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn finds_the_end_of_a_head() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody"), Some(27));
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\nbody"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n"), None);
    }
}
