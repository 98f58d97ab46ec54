//! Ambiguous HTTP/1 request framing that hyper accepts but we refuse.
//!
//! hyper resolves `Content-Length` + `Transfer-Encoding` by dropping the
//! length (RFC 9112 §6.3 allows that), silently merges identical duplicate
//! `Content-Length` lines and accepts bare-LF line endings, so by the time a
//! request reaches the service the evidence is gone. [`check_head`] looks at
//! the raw head instead, and says how its body is framed so that
//! [`super::tracker::Tracker`] can find where the next pipelined head starts.
//! The handler answers `400` to a refused head without forwarding anything.
//!
//! The rules are stricter than hyper's, never looser (the `framing` fuzz
//! target checks that against `httparse`):
//! - line endings are CRLF only;
//! - at most one `Content-Length` line, digits only, and never with
//!   `Transfer-Encoding`;
//! - `Transfer-Encoding`, over all its lines, is exactly `chunked` (a coding
//!   applied twice, or one we would have to undo, is refused), and only in
//!   HTTP/1.1;
//! - the request target carries no fragment (`#`).

/// A request head whose framing is ambiguous or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("both Content-Length and Transfer-Encoding are present")]
    LengthAndChunked,
    #[error("more than one Content-Length header")]
    DuplicateContentLength,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("Transfer-Encoding other than a single chunked")]
    UnsupportedTransferEncoding,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    #[error("bare LF or CR line ending in request head")]
    BareLineFeed,
    #[error("malformed request line")]
    RequestLine,
    #[error("fragment (#) in the request target")]
    FragmentInTarget,
    #[error("request could not be checked after an earlier one on this connection")]
    Unchecked,
}

/// How the body after a head is delimited (RFC 9112 §6.3, requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What a valid head says about the bytes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadInfo {
    pub body: BodyFraming,
    /// The stream may stop being HTTP after this request (`Upgrade`, or a
    /// `CONNECT`): nothing after it is parsed as requests.
    pub opaque: bool,
}

/// Where a complete head ends in `buf` (index after the blank line), if it
/// does. `buf` starts at the request line (leading empty lines skipped).
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
pub fn check_head(head: &[u8]) -> Result<HeadInfo, FramingError> {
    let bare = |i: usize, b: u8| match b {
        b'\n' => i == 0 || head[i - 1] != b'\r',
        b'\r' => head.get(i + 1) != Some(&b'\n'),
        _ => false,
    };
    if head.iter().enumerate().any(|(i, &b)| bare(i, b)) {
        return Err(FramingError::BareLineFeed);
    }
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let (method, http10) = parse_request_line(request_line)?;
    let mut content_length = None;
    let mut lengths = 0;
    let mut codings = 0;
    let mut chunked = true;
    let mut upgrade = false;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            content_length = parse_length(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in value.split(|&b| b == b',').map(trim) {
                codings += 1;
                chunked &= coding.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        }
    }
    let body = match (lengths, codings) {
        (0, 0) => BodyFraming::Empty,
        (_, 1..) if lengths > 0 => return Err(FramingError::LengthAndChunked),
        (_, 1..) if http10 => return Err(FramingError::TransferEncodingInHttp10),
        (_, 1) if chunked => BodyFraming::Chunked,
        (_, 1..) => return Err(FramingError::UnsupportedTransferEncoding),
        (1, _) => BodyFraming::Length(content_length.ok_or(FramingError::BadContentLength)?),
        _ => return Err(FramingError::DuplicateContentLength),
    };
    Ok(HeadInfo {
        body,
        opaque: upgrade || method.eq_ignore_ascii_case(b"CONNECT"),
    })
}

/// `METHOD SP target SP HTTP/1.x`: the method, and whether it is HTTP/1.0.
fn parse_request_line(line: &[u8]) -> Result<(&[u8], bool), FramingError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FramingError::RequestLine);
    };
    if method.is_empty() || target.is_empty() {
        return Err(FramingError::RequestLine);
    }
    if target.contains(&b'#') {
        return Err(FramingError::FragmentInTarget);
    }
    Ok((method, version == b"HTTP/1.0"))
}

fn parse_length(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use BodyFraming::*;
    use FramingError::*;

    fn body(framing: BodyFraming) -> Result<HeadInfo, FramingError> {
        Ok(HeadInfo {
            body: framing,
            opaque: false,
        })
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], Result<HeadInfo, FramingError>)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", body(Empty)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", body(Length(3))),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", body(Chunked)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n\r\n", body(Chunked)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", Err(LengthAndChunked)),
            (b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n", Err(LengthAndChunked)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", Err(DuplicateContentLength)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", Err(BadContentLength)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", Err(BadContentLength)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Err(UnsupportedTransferEncoding)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", Err(UnsupportedTransferEncoding)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Err(UnsupportedTransferEncoding)),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", Err(UnsupportedTransferEncoding)),
            (b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", Err(TransferEncodingInHttp10)),
            (b"GET / HTTP/1.1\nHost: a\n\n", Err(BareLineFeed)),
            (b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", Err(BareLineFeed)),
            (b"GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", Err(FragmentInTarget)),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", Err(RequestLine)),
            (b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", Ok(HeadInfo { body: Empty, opaque: true })),
            (b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n", Ok(HeadInfo { body: Empty, opaque: true })),
            // A header *value* mentioning the names is not a header.
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-Note: Content-Length: 1\r\nX-Te: Transfer-Encoding: x\r\n\r\n", body(Empty)),
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
