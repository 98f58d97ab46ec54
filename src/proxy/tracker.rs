//! Every HTTP/1 request head on a connection, checked before hyper parses it.
//!
//! hyper reads requests one after another from the same bytes: pipelined
//! heads in one read, heads read while an earlier response still streams,
//! heads split over reads. The [`Tracker`] follows the byte stream the same
//! way, independently of hyper's progress: it finds each head, checks it
//! ([`framing::check_head`]), skips its body by the framing the head
//! declares (a length, or chunks, parsed as strictly as hyper does or more),
//! and queues one [`Verdict`] per head. The handler takes the verdicts in
//! order, one per request hyper hands it.
//!
//! When the stream can no longer be followed (a refused head, a malformed
//! chunked body, an upgrade or `CONNECT` after which the bytes may not be
//! HTTP at all) the tracker stops, and the verdict of the request it was
//! on is marked `last`: its response closes the connection, and any request
//! hyper parses after it anyway finds no verdict and is refused.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::framing::{self, BodyFraming, FramingError};

/// Longest chunk-size line (size, whitespace, extensions) we follow.
const MAX_CHUNK_LINE: usize = 4096;

/// What the tracker found out about one request.
#[derive(Debug)]
pub struct Verdict {
    head: Result<(), FramingError>,
    body_malformed: AtomicBool,
    last: AtomicBool,
}

impl Verdict {
    fn new(head: Result<(), FramingError>) -> Arc<Self> {
        Arc::new(Verdict {
            head,
            body_malformed: AtomicBool::new(false),
            last: AtomicBool::new(false),
        })
    }

    /// The head's framing problem, if it has one.
    pub fn head(&self) -> Result<(), FramingError> {
        self.head
    }

    /// Whether the body is already known to be malformed (its bad chunk
    /// arrived with its head, say).
    pub fn body_malformed(&self) -> bool {
        self.body_malformed.load(Ordering::Acquire)
    }

    /// Whether nothing after this request can be followed: its response
    /// must close the connection.
    pub fn last(&self) -> bool {
        self.last.load(Ordering::Acquire)
    }
}

/// The verdicts not yet taken by the handler, in request order.
#[derive(Debug, Default)]
pub struct Verdicts(Mutex<VecDeque<Arc<Verdict>>>);

impl Verdicts {
    /// The verdict of the next request hyper hands over; `Unchecked` when
    /// the tracker had stopped before its head.
    pub fn take(&self) -> Result<Arc<Verdict>, FramingError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .ok_or(FramingError::Unchecked)
    }

    fn push(&self, verdict: Arc<Verdict>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(verdict);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// The first hex digit of a size line.
    Start,
    /// More digits of `size`.
    Size(u64),
    /// Whitespace after the size.
    SizeSpace(u64),
    /// A chunk extension, until CR.
    Extension(u64),
    /// The LF after a size line.
    SizeLf(u64),
    /// Chunk data still to come.
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: CR of the final empty line, or a trailer.
    EndCr,
    EndLf,
    Trailer,
    TrailerLf,
    /// The body is complete.
    Done,
}

#[derive(Debug)]
enum State {
    /// Before a request line: empty lines are skipped (as httparse does).
    Between {
        cr: bool,
    },
    /// Inside a head: its bytes so far.
    Head,
    Length(u64),
    Chunked {
        at: Chunk,
        line: usize,
        trailers: usize,
    },
    Stopped,
}

/// Follows the request heads and bodies of one HTTP/1 connection.
#[derive(Debug)]
pub struct Tracker {
    state: State,
    head: Vec<u8>,
    max_head: usize,
    current: Option<Arc<Verdict>>,
    verdicts: Arc<Verdicts>,
}

impl Tracker {
    /// A tracker for heads of at most `max_head` bytes, queueing into `verdicts`.
    pub fn new(max_head: usize, verdicts: Arc<Verdicts>) -> Self {
        Tracker {
            state: State::Between { cr: false },
            head: Vec::new(),
            max_head,
            current: None,
            verdicts,
        }
    }

    /// Whether the stream is between requests with nothing of a next one
    /// read; then the buffer a split head used is given back.
    pub fn at_rest(&mut self) -> bool {
        let rest = matches!(self.state, State::Between { cr: false });
        if rest && self.head.capacity() > 0 {
            self.head = Vec::new();
        }
        rest
    }

    /// Follow `bytes`, the next bytes read from the client.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            bytes = match self.state {
                State::Stopped => return,
                State::Between { cr } => self.between(bytes, cr),
                State::Head => self.in_head(bytes),
                State::Length(left) => {
                    let n = usize::try_from(left).map_or(bytes.len(), |l| l.min(bytes.len()));
                    self.state = match left - n as u64 {
                        0 => State::Between { cr: false },
                        left => State::Length(left),
                    };
                    &bytes[n..]
                }
                State::Chunked { .. } => self.in_chunks(bytes),
            };
        }
    }

    fn between<'a>(&mut self, bytes: &'a [u8], cr: bool) -> &'a [u8] {
        match (cr, bytes[0]) {
            (false, b'\r') => self.state = State::Between { cr: true },
            (true, b'\n') => self.state = State::Between { cr: false },
            (false, b'\n') | (true, _) => self.stop(FramingError::BareLineFeed),
            (false, _) => {
                self.state = State::Head;
                return bytes;
            }
        }
        &bytes[1..]
    }

    fn in_head<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        // Common case: the whole head is in this read; check it in place.
        if self.head.is_empty() {
            if let Some(end) = framing::head_end(bytes) {
                self.finish_head(&bytes[..end]);
                return &bytes[end..];
            }
        }
        let before = self.head.len();
        let room = (self.max_head + 4).saturating_sub(before);
        let take = bytes.len().min(room);
        self.head.extend_from_slice(&bytes[..take]);
        // Only the tail can complete the blank line.
        let from = before.saturating_sub(3);
        match framing::head_end(&self.head[from..]) {
            Some(end) => {
                let head = std::mem::take(&mut self.head);
                let end = from + end;
                self.finish_head(&head[..end]);
                // What followed the head in this read.
                &bytes[take - (head.len() - end)..]
            }
            None if take < bytes.len() => {
                // Too large: hyper answers 431 and closes.
                self.head.clear();
                self.stop(FramingError::Unchecked);
                &[]
            }
            None => &[],
        }
    }

    fn finish_head(&mut self, head: &[u8]) {
        match framing::check_head(head) {
            Ok(info) => {
                let verdict = Verdict::new(Ok(()));
                self.verdicts.push(Arc::clone(&verdict));
                self.current = Some(verdict);
                self.state = match info.body {
                    BodyFraming::Empty | BodyFraming::Length(0) => State::Between { cr: false },
                    BodyFraming::Length(n) => State::Length(n),
                    BodyFraming::Chunked => State::Chunked {
                        at: Chunk::Start,
                        line: 0,
                        trailers: 0,
                    },
                };
                if info.opaque {
                    self.stop(FramingError::Unchecked);
                }
            }
            Err(problem) => {
                let verdict = Verdict::new(Err(problem));
                self.verdicts.push(Arc::clone(&verdict));
                self.current = Some(verdict);
                self.stop(problem);
            }
        }
    }

    fn in_chunks<'a>(&mut self, bytes: &'a [u8]) -> &'a [u8] {
        let State::Chunked {
            mut at,
            mut line,
            mut trailers,
        } = self.state
        else {
            return &[];
        };
        let mut i = 0;
        while i < bytes.len() {
            if let Chunk::Data(left) = at {
                let n = usize::try_from(left).map_or(bytes.len() - i, |l| l.min(bytes.len() - i));
                i += n;
                at = match left - n as u64 {
                    0 => Chunk::DataCr,
                    left => Chunk::Data(left),
                };
                continue;
            }
            let b = bytes[i];
            i += 1;
            at = match step(at, b) {
                Some(Chunk::Done) => {
                    self.state = State::Between { cr: false };
                    return &bytes[i..];
                }
                Some(next) => next,
                None => {
                    self.malformed_body();
                    return &[];
                }
            };
            match at {
                Chunk::Start | Chunk::Data(_) | Chunk::EndCr => line = 0,
                Chunk::Trailer | Chunk::TrailerLf => trailers += 1,
                _ => line += 1,
            }
            if line > MAX_CHUNK_LINE || trailers > self.max_head {
                self.malformed_body();
                return &[];
            }
        }
        self.state = State::Chunked { at, line, trailers };
        &[]
    }

    fn malformed_body(&mut self) {
        if let Some(current) = &self.current {
            current.body_malformed.store(true, Ordering::Release);
        }
        self.stop(FramingError::Unchecked);
    }

    fn stop(&mut self, _why: FramingError) {
        if let Some(current) = &self.current {
            current.last.store(true, Ordering::Release);
        }
        self.state = State::Stopped;
    }
}

/// One byte of chunked framing, as hyper's decoder reads it but stricter
/// (no bare LF in extensions or trailers). `None`: malformed.
fn step(at: Chunk, b: u8) -> Option<Chunk> {
    let hex = |b: u8| (b as char).to_digit(16).map(u64::from);
    Some(match (at, b) {
        (Chunk::Start, b) => Chunk::Size(hex(b)?),
        (Chunk::Size(size), b) if hex(b).is_some() => {
            Chunk::Size(size.checked_mul(16)?.checked_add(hex(b)?)?)
        }
        (Chunk::Size(size) | Chunk::SizeSpace(size), b' ' | b'\t') => Chunk::SizeSpace(size),
        (Chunk::Size(size) | Chunk::SizeSpace(size) | Chunk::Extension(size), b';') => {
            Chunk::Extension(size)
        }
        (Chunk::Size(size) | Chunk::SizeSpace(size) | Chunk::Extension(size), b'\r') => {
            Chunk::SizeLf(size)
        }
        (Chunk::Extension(_), b'\n') => return None,
        (Chunk::Extension(size), _) => Chunk::Extension(size),
        (Chunk::SizeLf(0), b'\n') => Chunk::EndCr,
        (Chunk::SizeLf(size), b'\n') => Chunk::Data(size),
        (Chunk::DataCr, b'\r') => Chunk::DataLf,
        (Chunk::DataLf, b'\n') => Chunk::Start,
        (Chunk::EndCr, b'\r') => Chunk::EndLf,
        (Chunk::EndLf, b'\n') => Chunk::Done,
        (Chunk::EndCr | Chunk::Trailer, b'\n') => return None,
        (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
        (Chunk::EndCr | Chunk::Trailer, _) => Chunk::Trailer,
        (Chunk::TrailerLf, b'\n') => Chunk::EndCr,
        _ => return None,
    })
}

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
