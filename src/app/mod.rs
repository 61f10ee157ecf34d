//! Serving the gateway: its listeners, the dispatch of each request, and live reload.

pub mod dispatch;
mod reload;
mod serving;

pub use serving::{bind_public, serve, serve_reloading};
