//! `framing`: the raw request-head scan (`src/proxy/framing.rs`) against
//! `httparse`, the parser hyper uses: the scan must never be looser.
//!
//! It calls exactly two functions of today's API (adapt here when the
//! streaming rewrite lands):
//! - `head_end(&[u8]) -> Option<usize>`: where the first head ends;
//! - `check_head(&[u8]) -> Result<(), FramingError>`: is that head's
//!   framing unambiguous.
//!
//! Invariants, for every input that httparse parses as hyper does (default
//! config, at most 100 headers):
//! 1. `Complete(n)` ⇒ `head_end(input) == Some(n)`; `Partial` ⇒
//!    `head_end(input) == None` (the scan finds the head hyper will read,
//!    no more, no less);
//! 2. `Complete(n)` with ambiguous framing (Content-Length and
//!    Transfer-Encoding, two Content-Length lines, a Transfer-Encoding list
//!    other than one final `chunked`) ⇒ `check_head(&input[..n])` is `Err`.
//!
//! Known gaps of today's framing.rs (reported, not fixed here, since it is
//! being rewritten) are skipped unless `SWITCHYARD_FUZZ_STRICT=1`; see
//! `known_gap` and fuzz/README.md. Delete the skip once the rewrite passes.

use std::sync::OnceLock;

use switchyard::proxy::framing::{check_head, head_end};

/// hyper's `DEFAULT_MAX_HEADERS`: with more, hyper refuses the head.
const MAX_HEADERS: usize = 100;

pub fn check(data: &[u8]) {
    check_with(data, strict());
}

/// [`check`], with the known gaps checked too when `strict`.
pub fn check_with(data: &[u8], strict: bool) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let parsed = request.parse(data);
    match parsed {
        Ok(httparse::Status::Complete(n)) => {
            let framing = Framing::of(request.headers);
            if !strict && known_gap(data, &framing) {
                return;
            }
            assert_eq!(head_end(data), Some(n), "head_end disagrees with httparse");
            if let Some(why) = framing.ambiguity() {
                assert!(
                    check_head(&data[..n]).is_err(),
                    "check_head accepts a head with {why} that httparse parses"
                );
            }
        }
        Ok(httparse::Status::Partial) => {
            if !strict && leading_empty_lines(data) >= 2 {
                return;
            }
            assert_eq!(
                head_end(data),
                None,
                "head_end ends a head httparse finds partial"
            );
        }
        Err(_) => {
            // hyper answers 400 itself; the scan may say anything, but must
            // not panic on it.
            if let Some(end) = head_end(data) {
                let _ = check_head(&data[..end]);
            }
        }
    }
}

/// What the header lines say about the body's framing.
#[derive(Debug, Default)]
pub struct Framing {
    content_lengths: usize,
    transfer_encoding_lines: usize,
    /// Every Transfer-Encoding coding, in order, across all its lines.
    codings: Vec<Vec<u8>>,
}

impl Framing {
    pub fn of(headers: &[httparse::Header<'_>]) -> Framing {
        let mut framing = Framing::default();
        for header in headers {
            if header.name.eq_ignore_ascii_case("content-length") {
                framing.content_lengths += 1;
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
        if self.content_lengths > 0 && self.transfer_encoding_lines > 0 {
            return Some("Content-Length and Transfer-Encoding");
        }
        if self.content_lengths > 1 {
            return Some("two Content-Length lines");
        }
        self.bad_transfer_encoding()
    }

    fn bad_transfer_encoding(&self) -> Option<&'static str> {
        if self.transfer_encoding_lines == 0 {
            return None;
        }
        let chunked = self.codings.iter().filter(|c| *c == b"chunked").count();
        let last_chunked = self.codings.last().is_some_and(|c| c == b"chunked");
        (chunked != 1 || !last_chunked)
            .then_some("a Transfer-Encoding other than one final `chunked`")
    }
}

/// Holes in today's framing.rs that are reported and await the rewrite:
/// 1. two or more empty lines before the request line (httparse, hence
///    hyper, skips them; `head_end` takes the second for the blank line
///    that ends the head, so `check_head` sees only the empty lines and the
///    real head goes unchecked);
/// 2. `check_head` does not look at Transfer-Encoding values
///    (`chunked, chunked`, `gzip`, two TE lines), so a bad TE list alone
///    passes it (hyper still refuses a TE that does not end in `chunked`).
fn known_gap(data: &[u8], framing: &Framing) -> bool {
    let mismatched_te = framing.content_lengths == 0 && framing.bad_transfer_encoding().is_some();
    leading_empty_lines(data) >= 2 || mismatched_te
}

/// How many empty lines (`\r\n` or `\n`) come before anything else.
fn leading_empty_lines(mut data: &[u8]) -> usize {
    let mut lines = 0;
    while let Some(rest) = data
        .strip_prefix(b"\r\n")
        .or_else(|| data.strip_prefix(b"\n"))
    {
        data = rest;
        lines += 1;
    }
    lines
}

/// `SWITCHYARD_FUZZ_STRICT=1`: check the known gaps too.
fn strict() -> bool {
    static STRICT: OnceLock<bool> = OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("SWITCHYARD_FUZZ_STRICT").is_some_and(|v| v == "1"))
}
