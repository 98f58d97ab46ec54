//! What a backend did, as health evidence: the failures that count against
//! it, and how a request was let through to a backend that is down.
//!
//! Only the backend's own behaviour is evidence. A client that sends a
//! malformed body, goes away or is too slow produces no [`Fault`]: the
//! proxy never builds one from a client's error, nor from a status code it
//! produced itself.

use std::fmt;
use std::io;

/// A failure of the backend itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Nothing listens (`ECONNREFUSED`).
    ConnectRefused,
    /// The connection was not established within `timeouts.connect`.
    ConnectTimeout,
    /// Connecting failed otherwise (unreachable network, reset...).
    ConnectFailed(io::ErrorKind),
    /// The connection was closed or reset before a response head.
    ClosedEarly,
    /// The backend's response head could not be parsed.
    InvalidResponse,
    /// No response head within the timeout.
    ResponseTimeout,
    /// A status listed in `health.passive.failure_statuses` (or outside an
    /// active check's `expect_status`).
    Status(u16),
}

impl Fault {
    /// The fault behind a failed connection attempt.
    pub fn of_connect(err: &io::Error) -> Fault {
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Fault::ConnectRefused,
            io::ErrorKind::TimedOut => Fault::ConnectTimeout,
            kind => Fault::ConnectFailed(kind),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::ConnectRefused => f.write_str("connect refused"),
            Fault::ConnectTimeout => f.write_str("connect timed out"),
            Fault::ConnectFailed(kind) => write!(f, "connect failed: {kind}"),
            Fault::ClosedEarly => f.write_str("connection closed before a response"),
            Fault::InvalidResponse => f.write_str("invalid response"),
            Fault::ResponseTimeout => f.write_str("no response head in time"),
            Fault::Status(status) => write!(f, "status {status}"),
        }
    }
}

/// How a request was let through to a backend (see [`super::Health::admit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// The backend is not down.
    Normal,
    /// The backend is down and this request is its one trial: its outcome
    /// decides whether it comes back.
    Trial,
}
