//! # switchyard
//!
//! An HTTP routing layer: each request's routing key (its domain) is mapped by
//! consistent hashing to one backend of a live pool.
//!
//! # Layout (in the order a request meets it)
//! - [`proxy`]: accepts client connections (HTTP/1.x, h2c, PROXY protocol
//!   from trusted balancers), enforces limits and timeouts, runs the request
//!   phases and streams bodies to and from backends (`listen`: the bounded
//!   accept loop every listener uses).
//! - [`routing`]: the routing key, backend addresses, the consistent-hash table
//!   and the immutable pool snapshot; pure code, no I/O.
//! - [`health`]: backend health from evidence (active checks, the outcome of
//!   real requests, never a client's fault); down backends are skipped.
//! - [`telemetry`]: per-backend counters the proxy updates and the admin API reads.
//! - [`admin`]: the axum admin API on its own listener, behind a `Host`
//!   allow-list (DNS rebinding) like the metrics listener: membership changes
//!   (committed to the [`store`], then published to the routing snapshot),
//!   route lookups, stats, `/metrics`, `/healthz`, OpenAPI.
//! - [`store`]: the durable membership (SQLite or PostgreSQL via sqlx).
//! - [`sync`]: publishes committed memberships; on PostgreSQL, follows the
//!   changes other nodes make (LISTEN/NOTIFY, resync after reconnecting).
//! - [`tls`]: certificates (read and checked from PEM, indexed by the names
//!   they cover) and the snapshot TLS handshakes choose from.
//! - [`acme`]: certificates obtained and renewed over ACME for managed
//!   domains (HTTP-01 answers served from a snapshot; one node orders a
//!   domain at a time).
//! - [`config`]: settings from defaults, the Lua file and flags (parse → validate).
//! - [`demo`]: three built-in demo backends for `--demo`.
//! - [`Reloader`]: SIGHUP applies a re-read config without dropping connections.
//! - [`App`]: wires it all together: [`App::build`] opens the store, builds
//!   the pool and binds; [`App::run`] serves until the shutdown token fires.

#![forbid(unsafe_code)]

pub mod acme;
pub mod admin;
mod app;
pub mod config;
pub mod demo;
pub mod health;
mod listen;
pub mod proxy;
mod reload;
pub mod routing;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod tls;

pub use app::App;
pub use reload::Reloader;
