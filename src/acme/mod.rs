//! Automatic certificates over ACME (RFC 8555, through `instant-acme`) for
//! the domains the admin API manages.
//!
//! - [`Challenges`]: the HTTP-01 answers this node serves on its plain
//!   listener, an immutable map behind an `ArcSwap` (the request path never
//!   reads the database); every node publishes the store's answers, so the
//!   CA may ask any of them.
//! - [`Acme`]: one per node. Its manager task orders a certificate for each
//!   domain that is due (new, due for renewal, or due for a retry), one node
//!   per domain at a time (a lease row in the store), stores the result
//!   (the old certificate serves until the new one is stored), and backs off
//!   exponentially after failures.
//! - `order`: one order, from the new order to the PEM chain.
//! - `on_demand`: with `acme.ask`, a handshake for a name without a
//!   certificate asks whether it may have one and waits for it.

mod account;
mod challenges;
mod client;
mod manager;
mod names;
mod on_demand;
mod order;

pub use challenges::Challenges;
pub use manager::{Acme, AcmeStats};
pub use names::managed_name;
