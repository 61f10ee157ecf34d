//! Segment-aware longest-prefix matching.
//!
//! `/api` matches `/api`, `/api/` and `/api/x`, never `/apix`. The table is sorted longest
//! prefix first at startup, so the first match is the longest.

use super::Route;

#[derive(Debug)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Route>) -> RouteTable {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        RouteTable { routes }
    }

    /// The route for a request path (without query), if any.
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| matches(&r.prefix, path))
    }
}

fn matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RouteConfig, TokenPolicy};

    fn route(i: usize, path: &str, upstream: &str, strip: bool) -> Route {
        Route::from_config(
            i,
            &RouteConfig {
                path: path.into(),
                upstream: upstream.parse().expect("uri"),
                token: TokenPolicy::None,
                strip_prefix: strip,
                resource: None,
                scope: None,
                dpop: true,
                methods: None,
                http2: false,
                require: Vec::new(),
                step_up: Default::default(),
                websocket: false,
            },
        )
        .expect("route")
    }

    fn table() -> RouteTable {
        RouteTable::new(vec![
            route(0, "/", "http://spa:1", false),
            route(1, "/api", "http://api:1", false),
            route(2, "/api/admin", "http://admin:1/base", true),
        ])
    }

    fn found(t: &RouteTable, path: &str) -> Option<usize> {
        t.find(path).map(|r| r.index)
    }

    #[test]
    fn longest_prefix_wins() {
        let t = table();
        assert_eq!(found(&t, "/api/admin/users"), Some(2));
        assert_eq!(found(&t, "/api/users"), Some(1));
        assert_eq!(found(&t, "/index.html"), Some(0));
    }

    #[test]
    fn prefix_matches_only_on_segment_boundary() {
        let t = table();
        assert_eq!(found(&t, "/api"), Some(1));
        assert_eq!(found(&t, "/api/"), Some(1));
        assert_eq!(found(&t, "/apix"), Some(0));
        assert_eq!(found(&t, "/api/adminx"), Some(1));
    }

    #[test]
    fn no_catch_all_means_no_match() {
        let t = RouteTable::new(vec![route(0, "/api", "http://api:1", false)]);
        assert_eq!(found(&t, "/other"), None);
        assert_eq!(found(&t, "/apix"), None);
    }

    #[test]
    fn upstream_uri_keeps_or_strips_prefix() {
        let keep = route(0, "/api", "http://api:1", false);
        assert_eq!(
            keep.upstream_uri("/api/x?q=1").expect("uri"),
            "http://api:1/api/x?q=1"
        );
        let strip = route(0, "/api/admin", "http://admin:1/base", true);
        assert_eq!(
            strip.upstream_uri("/api/admin/u?q").expect("uri"),
            "http://admin:1/base/u?q"
        );
        assert_eq!(
            strip.upstream_uri("/api/admin").expect("uri"),
            "http://admin:1/base/"
        );
        assert_eq!(
            strip.upstream_uri("/api/admin?q").expect("uri"),
            "http://admin:1/base/?q"
        );
    }

    #[test]
    fn upstream_path_is_what_the_request_line_carries() {
        use http::uri::PathAndQuery;
        let cases = [
            // (route prefix, upstream, strip, request, upstream path)
            ("/api", "http://api:1", false, "/api/x?q=1", "/api/x?q=1"),
            ("/api", "http://api:1", true, "/api/x?q=1", "/x?q=1"),
            ("/api", "http://api:1", true, "/api", "/"),
            ("/api", "http://api:1/base/", false, "/api/x", "/base/api/x"),
            (
                "/api/admin",
                "http://admin:1/base",
                true,
                "/api/admin/u?q",
                "/base/u?q",
            ),
            (
                "/api/admin",
                "http://admin:1/base",
                true,
                "/api/admin",
                "/base/",
            ),
            (
                "/api/admin",
                "http://admin:1/base",
                true,
                "/api/admin?q",
                "/base/?q",
            ),
            ("/", "http://api:1", true, "/x?y", "/x?y"),
        ];
        for (prefix, upstream, strip, request, expected) in cases {
            let r = route(0, prefix, upstream, strip);
            let path = r
                .upstream_path(&PathAndQuery::from_static(request))
                .expect("path");
            assert_eq!(path, expected, "{prefix} {upstream} {strip} {request}");
            let absolute = r.absolute(path).expect("absolute");
            assert_eq!(absolute, r.upstream_uri(request).expect("uri"));
        }
    }
}
