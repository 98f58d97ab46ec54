//! The JSON the admin API reads and writes, with its OpenAPI schemas.
//! Request types reject unknown fields; values are checked by the handlers.

mod backends;
mod observe;

pub use backends::*;
pub use observe::*;
