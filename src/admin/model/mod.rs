//! The JSON the admin API reads and writes, with its OpenAPI schemas.
//! Request types reject unknown fields; values are checked by the handlers.

mod backends;
mod certificates;
mod domains;
mod observe;

pub use backends::*;
pub use certificates::*;
pub use domains::*;
pub use observe::*;
