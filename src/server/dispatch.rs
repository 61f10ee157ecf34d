//! One entry for every public request: `/bff/*` is answered by the gateway, everything
//! else goes to the route table and the proxy.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

use super::listener::ConnInfo;
use super::{Body, Reject};
use crate::app::Gateway;

pub async fn handle(gw: Arc<Gateway>, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    gw.metrics.requests.inc();
    let path = req.uri().path();
    if has_dot_segment(path) {
        // `/api/../bff/user` and friends: refused rather than resolved, so a route's
        // prefix check and the upstream's idea of the path can never disagree.
        return Reject::BadRequest("the path has dot segments").response();
    }
    if path == "/bff" || path.starts_with("/bff/") {
        return crate::bff::handle(&gw, req).await;
    }
    match gw.routes.find(path) {
        Some(route) => crate::proxy::forward(&gw, route, req, conn).await,
        None => Reject::NotFound.response(),
    }
}

/// True for `.`/`..` segments, literal or percent-encoded.
fn has_dot_segment(path: &str) -> bool {
    path.split('/').any(|seg| match seg {
        "." | ".." => true,
        // Only short segments with a `%` can spell `.` or `..` encoded: no allocation
        // for ordinary paths.
        s if s.len() <= 6 && s.contains('%') => {
            let d = s.to_ascii_lowercase().replace("%2e", ".");
            d == "." || d == ".."
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::has_dot_segment;

    #[test]
    fn dot_segments_are_found_in_any_spelling() {
        for p in [
            "/api/../bff",
            "/./x",
            "/api/%2e%2e/bff",
            "/api/%2E.",
            "/a/..",
        ] {
            assert!(has_dot_segment(p), "{p}");
        }
        for p in ["/", "/api/x", "/api/.well-known", "/a..b/c", "/file.txt"] {
            assert!(!has_dot_segment(p), "{p}");
        }
    }
}
