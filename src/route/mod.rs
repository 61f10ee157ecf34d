//! Routes: which upstream a request goes to and what token it carries.
//!
//! The table is built once from the configuration and sorted for matching; a request
//! borrows its [`Route`] (habit 11: precompute at startup, borrow per request).

mod matcher;

use std::sync::Arc;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Method};

use crate::config::{ClaimRule, RouteConfig, StepUp, TokenPolicy};
pub use matcher::RouteTable;

/// One route, ready for the hot path.
#[derive(Debug)]
pub struct Route {
    /// Normalised prefix (`/api`, or `/` for the catch-all).
    pub prefix: String,
    pub token: TokenPolicy,
    pub strip_prefix: bool,
    /// RFC 8707 audience of this route's token (`None`: the provider's default).
    pub resource: Option<Arc<str>>,
    /// Client-credentials `scope` (`token = "client"` routes).
    pub scope: Option<Arc<str>>,
    /// Present a DPoP session's token with a proof (false: as Bearer).
    pub dpop: bool,
    /// `None`: every method is allowed.
    pub methods: Option<Vec<Method>>,
    pub upstream: Upstream,
    /// Claim rules the session must meet (`require`); empty: any session.
    pub require: Vec<ClaimRule>,
    /// `acr` / `max_age`: how the user must have signed in.
    pub step_up: StepUp,
    /// WebSocket upgrades allowed on this token route.
    pub websocket: bool,
    /// Position in the configuration, for logs and metrics (`route[1]`).
    pub index: usize,
}

/// Where a route's requests go, split up front so rewriting a URI copies no more than
/// the request's own path.
#[derive(Debug)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// The upstream's base path without a trailing `/` (empty for none).
    pub base_path: String,
    /// The `Host` header sent upstream.
    pub host: HeaderValue,
    /// Spoken to in HTTP/2 (`upstream_http2`, `h2c://`) rather than HTTP/1.1.
    pub http2: bool,
}

impl Upstream {
    /// `scheme://authority/`: what a connection is made to.
    pub fn origin(&self) -> http::Uri {
        http::Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .unwrap_or_default()
    }
}

impl Route {
    pub fn from_config(index: usize, c: &RouteConfig) -> Option<Route> {
        let scheme = c.upstream.scheme().cloned()?;
        let authority = c.upstream.authority().cloned()?;
        let host = HeaderValue::from_str(authority.as_str()).ok()?;
        let base_path = c.upstream.path().trim_end_matches('/').to_owned();
        Some(Route {
            prefix: c.path.clone(),
            token: c.token,
            strip_prefix: c.strip_prefix,
            resource: c.resource.as_deref().map(Arc::from),
            scope: c.scope.as_deref().map(Arc::from),
            dpop: c.dpop,
            methods: c.methods.clone(),
            upstream: Upstream {
                scheme,
                authority,
                base_path,
                host,
                http2: c.http2,
            },
            require: c.require.clone(),
            step_up: c.step_up.clone(),
            websocket: c.websocket,
            index,
        })
    }

    pub fn allows(&self, method: &Method) -> bool {
        self.methods.as_ref().is_none_or(|m| m.contains(method))
    }

    /// The upstream URI for a request path and query that matched this route.
    pub fn upstream_uri(&self, path_and_query: &str) -> Result<http::Uri, http::Error> {
        let path = self.upstream_path(&PathAndQuery::try_from(path_and_query)?)?;
        self.absolute(path)
    }

    /// The path and query the upstream is asked for: what goes on the HTTP/1.1 request
    /// line. A route that neither strips its prefix nor has a base path passes the
    /// request's own on (a reference count, not a copy).
    pub fn upstream_path(
        &self,
        path_and_query: &PathAndQuery,
    ) -> Result<PathAndQuery, http::uri::InvalidUri> {
        let stripping = self.strip_prefix && self.prefix != "/";
        if !stripping && self.upstream.base_path.is_empty() {
            return Ok(path_and_query.clone());
        }
        let text = path_and_query.as_str();
        let (middle, rest) = match text.get(self.prefix.len()..) {
            // Matching guarantees the prefix is there and ends at a segment boundary.
            // `/api` → `/`, `/api?x` → `/?x`
            Some(r) if stripping && (r.is_empty() || r.starts_with('?')) => ("/", r),
            Some(r) if stripping => ("", r),
            _ => ("", text),
        };
        let base = &self.upstream.base_path;
        let mut pq = String::with_capacity(base.len() + middle.len() + rest.len());
        pq.push_str(base);
        pq.push_str(middle);
        pq.push_str(rest);
        PathAndQuery::try_from(pq)
    }

    /// The upstream's `scheme://authority` with `path`: the URL a DPoP proof names.
    pub fn absolute(&self, path: PathAndQuery) -> Result<http::Uri, http::Error> {
        http::Uri::builder()
            .scheme(self.upstream.scheme.clone())
            .authority(self.upstream.authority.clone())
            .path_and_query(path)
            .build()
    }
}
