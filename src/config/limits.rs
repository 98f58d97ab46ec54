//! `timeouts`, `limits`, `failover` and `access_log`: how the proxy is bounded and logged.

use serde::{Deserialize, Serialize};

/// `timeouts = { ... }`, all in seconds (fractions allowed).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// A client must send a complete request head within this time.
    pub header_read: f64,
    /// An idle keep-alive client connection is closed after this time.
    pub idle: f64,
    /// Connecting to a backend.
    pub connect: f64,
    /// Waiting for a backend's response head (else `504`).
    pub response_header: f64,
    /// Idle pooled backend connections are closed after this time.
    pub backend_idle: f64,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    pub shutdown_grace: f64,
    /// Requests and upgraded connections on a drained or removed backend
    /// are closed this long after the change.
    pub drain: f64,
    /// A request body that sends no byte for this long is cut off (`408`,
    /// connection closed): a client that is too slow never pins a backend
    /// connection, and never counts against the backend.
    pub body_idle: f64,
    /// An upgraded connection (WebSocket) with no byte either way for this
    /// long is closed.
    pub tunnel_idle: f64,
    /// A client that accepts no byte of a response for this long is
    /// disconnected (a stalled reader never pins a backend connection).
    pub send_idle: f64,
    /// A backend that sends no byte of a response body for this long: the
    /// response is cut off (the client sees the connection close).
    pub response_body_idle: f64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            header_read: 10.0,
            idle: 60.0,
            connect: 2.0,
            response_header: 60.0,
            backend_idle: 30.0,
            shutdown_grace: 30.0,
            drain: 300.0,
            body_idle: 60.0,
            tunnel_idle: 3600.0,
            send_idle: 60.0,
            response_body_idle: 300.0,
        }
    }
}

/// `limits = { ... }`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request head (request line + headers), else `431`.
    pub max_header_bytes: usize,
    /// Largest request body, else `413` (unset: no limit).
    pub max_body_bytes: Option<u64>,
    /// Open client connections; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Concurrent HTTP/2 streams per client connection.
    pub h2_max_streams: u32,
    /// Slowest request body accepted, in bytes per second of the backend
    /// waiting for the client (measured once it has waited 10 s in all);
    /// slower: `408`, connection closed. `0`: no minimum.
    pub min_body_rate: u64,
    /// Receive buffer (`SO_RCVBUF`) of each backend connection, in bytes;
    /// `0`: the kernel's autotuning. Bounds what a response waiting for a
    /// slow client holds in kernel memory on the backend side.
    pub backend_recv_buffer: u32,
    /// Send buffer (`SO_SNDBUF`) of each client connection, in bytes; `0`:
    /// the kernel's autotuning (up to `net.ipv4.tcp_wmem`, 4 MiB on
    /// Debian). Bounds what each slow reader holds in kernel memory.
    pub client_send_buffer: u32,
    /// Most bytes of a response waiting unsent in a client connection's
    /// socket (`TCP_NOTSENT_LOWAT`): the proxy writes more only as the
    /// unsent queue drains. Bytes in flight do not count, so a fast distant
    /// client keeps its speed, while a client that stops reading holds
    /// about this much unsent, not the kernel's whole send buffer. `0`: the
    /// system's default (`net.ipv4.tcp_notsent_lowat`, no limit unless
    /// tuned).
    pub client_unsent_buffer: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_body_bytes: None,
            max_connections: 10_000,
            h2_max_streams: 100,
            min_body_rate: 500,
            backend_recv_buffer: 256 * 1024,
            client_send_buffer: 0,
            client_unsent_buffer: 128 * 1024,
        }
    }
}

/// `access_log = { enabled = true, sample = 1.0 }`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogSettings {
    pub enabled: bool,
    /// Share of requests logged, 0.0–1.0 (exactly every 1/sample-th).
    pub sample: f64,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        AccessLogSettings {
            enabled: true,
            sample: 1.0,
        }
    }
}

/// `failover = { tries = 2 }`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Failover {
    /// Backends tried per request (the key's first N candidates).
    pub tries: usize,
}

impl Default for Failover {
    fn default() -> Self {
        Failover { tries: 2 }
    }
}
