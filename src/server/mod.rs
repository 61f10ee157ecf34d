//! The HTTP server: accepting connections, dispatching requests, and turning every error
//! into its response in one place.

pub mod access_log;
pub mod dispatch;
pub mod drain;
pub mod head_timer;
pub mod listener;
pub mod respond;

pub use respond::{Body, Reject};
