//! `framing`: the request-head checks (`src/proxy/framing.rs`) and the
//! tracker that follows pipelined requests (`src/proxy/tracker.rs`),
//! differentially against `httparse`, the parser hyper uses: never looser.
//!
//! For every input:
//! 1. the tracker never panics, whatever the input and however it is cut;
//! 2. where httparse parses a head (hyper's default: at most 100 headers)
//!    whose framing a proxy must refuse (Content-Length with
//!    Transfer-Encoding, two Content-Length lines, a Transfer-Encoding other
//!    than one final `chunked`), the tracker's verdict for it refuses it;
//! 3. where httparse parses it and the tracker lets it through,
//!    `check_head` agrees with hyper on where the head ends and how the body
//!    is framed (length or chunked);
//! 4. behind a head with a `Content-Length` body that is all there, a
//!    second head is judged like the first (the tracker skipped exactly the
//!    body hyper will read).

use std::sync::Arc;

use switchyard::proxy::framing::{check_head, head_end, BodyFraming};
use switchyard::proxy::tracker::{Tracker, Verdicts};

/// hyper's `DEFAULT_MAX_HEADERS`: with more, hyper refuses the head.
const MAX_HEADERS: usize = 100;

pub fn check(data: &[u8]) {
    let whole = verdicts(data, &[data.len()]);
    // Cut at a point the input chooses: the verdicts must not change.
    let cut = data.first().map_or(0, |&b| usize::from(b)) % (data.len() + 1);
    assert_eq!(
        verdicts(data, &[cut, data.len()]),
        whole,
        "cutting at {cut} changed the verdicts"
    );
    let Some((n, framing)) = hyper_head(data) else {
        return;
    };
    let skip = leading_empty_lines(data);
    let first = whole.first().copied().flatten();
    if let Some(why) = framing.ambiguity() {
        assert!(
            first != Some(true),
            "the tracker lets through a head with {why}"
        );
        return;
    }
    if first != Some(true) {
        return; // stricter than hyper: fine
    }
    assert_eq!(
        head_end(&data[skip..]).map(|e| e + skip),
        Some(n),
        "the head ends elsewhere"
    );
    let info = check_head(&data[skip..n]).expect("the verdict was ok");
    assert_eq!(
        info.body,
        framing.body(),
        "body framing differs from hyper's"
    );
    // 4: a second head behind a complete Content-Length body.
    if let BodyFraming::Length(len) = info.body {
        let next = n.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        if next < data.len() && !info.opaque {
            if let Some((_, second)) = hyper_head(&data[next..]) {
                if second.ambiguity().is_some() {
                    assert!(
                        whole.get(1).copied().flatten() != Some(true),
                        "a pipelined ambiguous head passed"
                    );
                }
            }
        }
    }
}

/// The tracker's verdicts (`Some(ok)`) for `data` fed in pieces ending at `cuts`.
fn verdicts(data: &[u8], cuts: &[usize]) -> Vec<Option<bool>> {
    let queue = Arc::new(Verdicts::default());
    let mut tracker = Tracker::new(64 * 1024, Arc::clone(&queue));
    let mut at = 0;
    for &cut in cuts {
        tracker.feed(&data[at..cut]);
        at = cut;
    }
    std::iter::from_fn(|| queue.take().ok())
        .map(|v| Some(v.head().is_ok() && !v.body_malformed()))
        .collect()
}

/// The head httparse finds at the start of `data`, and its framing.
fn hyper_head(data: &[u8]) -> Option<(usize, Framing)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(data) {
        Ok(httparse::Status::Complete(n)) => Some((n, Framing::of(request.headers))),
        _ => None,
    }
}

/// What the header lines say about the body's framing.
#[derive(Debug, Default)]
pub struct Framing {
    lengths: Vec<Vec<u8>>,
    transfer_encoding_lines: usize,
    /// Every Transfer-Encoding coding, in order, across all its lines.
    codings: Vec<Vec<u8>>,
}

impl Framing {
    pub fn of(headers: &[httparse::Header<'_>]) -> Framing {
        let mut framing = Framing::default();
        for header in headers {
            if header.name.eq_ignore_ascii_case("content-length") {
                framing.lengths.push(header.value.trim_ascii().to_vec());
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                framing.transfer_encoding_lines += 1;
                framing.codings.extend(
                    header
                        .value
                        .split(|&b| b == b',')
                        .map(|c| c.trim_ascii().to_ascii_lowercase())
                        .filter(|c| !c.is_empty()),
                );
            }
        }
        framing
    }

    /// Why a proxy must refuse this framing, if it must.
    pub fn ambiguity(&self) -> Option<&'static str> {
        if !self.lengths.is_empty() && self.transfer_encoding_lines > 0 {
            return Some("Content-Length and Transfer-Encoding");
        }
        if self.lengths.len() > 1 {
            return Some("two Content-Length lines");
        }
        if self.transfer_encoding_lines > 0 && self.codings != [b"chunked".to_vec()] {
            return Some("a Transfer-Encoding other than one `chunked`");
        }
        None
    }

    /// The body framing hyper uses for an unambiguous head.
    fn body(&self) -> BodyFraming {
        match (self.lengths.first(), self.transfer_encoding_lines) {
            (_, 1..) => BodyFraming::Chunked,
            (Some(len), 0) => BodyFraming::Length(
                std::str::from_utf8(len)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(u64::MAX),
            ),
            (None, 0) => BodyFraming::Empty,
        }
    }
}

/// How many bytes of empty lines (`\r\n`) come before anything else.
fn leading_empty_lines(mut data: &[u8]) -> usize {
    let start = data.len();
    while let Some(rest) = data.strip_prefix(b"\r\n") {
        data = rest;
    }
    start - data.len()
}
