//! Routing: from a request to a backend, with no I/O.
//!
//! - [`key`]: the routing key of a request (reload-URL rule, host rule, one
//!   normalization for every source of a domain); [`request`] applies it
//!   to an `http::Request`.
//! - [`address`]: validated, canonical backend addresses.
//! - [`hrw`]: the consistent-hash table (weighted rendezvous over 65,536 buckets).
//! - [`pool`]: the immutable [`Snapshot`] of the membership behind an `ArcSwap`.

pub mod address;
pub mod hrw;
pub mod key;
pub mod pool;
pub mod request;

pub use address::{AddressError, BackendAddr};
pub use key::{normalize_host, routing_key, KeyError, KeyInput, ReloadScope, RoutingKey, Rule};
pub use pool::{Backend, BackendPool, BackendState, PoolError, Snapshot};
pub use request::{request_host_of, routing_key_of};
