//! The HTTP server: accepting connections, dispatching requests, and turning every error
//! into its response in one place.

pub mod access_log;
pub mod csrf;

pub mod drain;
pub mod head_timer;
pub mod headers;
pub mod listener;
pub mod request;
pub mod respond;
pub mod return_url;

pub use respond::{Body, Reject};

/// The value of query parameter `name`, percent-decoded; the first if repeated.
pub fn query_param(req: &http::Request<hyper::body::Incoming>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}
