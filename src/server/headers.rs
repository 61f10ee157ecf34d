//! Header hygiene between the browser and an upstream (DESIGN.md "Proxied routes"), on
//! bytes: a header that is not valid UTF-8 is never skipped by a check and then copied.
//!
//! Requests: hop-by-hop headers and those the `Connection` header lists are removed
//! (RFC 9110 §7.6.1); the gateway's own cookies never leave; on token routes the
//! browser's `Authorization` and `DPoP` are dropped and ours are set; the forwarding
//! headers say what the connection and `public_url` say, the client's own kept only from
//! `server.trusted_proxies`; `Host` becomes the upstream's. Responses: framing that could
//! desynchronise the browser's connection is refused, hop-by-hop headers and
//! `Proxy-Authenticate` are removed, and an upstream cannot set a cookie under one of our
//! names.

use http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, COOKIE, FORWARDED, HOST, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, SET_COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::TokenPolicy;
use crate::crypto::cookie::{self, CookieNames};
use crate::route::Route;
use crate::server::listener::ConnInfo;

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static DPOP: HeaderName = HeaderName::from_static("dpop");

/// Where requests come from, as the gateway tells upstreams: built once from
/// `server.public_url` and `server.trusted_proxies`.
#[derive(Debug)]
pub struct Forwarding {
    /// Peers whose own forwarding headers are kept and added to.
    trusted: Vec<ipnet::IpNet>,
    /// `X-Forwarded-Proto`: the scheme the browser uses.
    proto: HeaderValue,
    /// `X-Forwarded-Host`: the host (and port) the browser uses.
    host: HeaderValue,
    /// The `;host="…";proto=…` that ends every `Forwarded` element we add.
    element_tail: String,
}

impl Forwarding {
    pub fn new(public_url: &url::Url, trusted: Vec<ipnet::IpNet>) -> Forwarding {
        let host = match (public_url.host_str(), public_url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        let scheme = public_url.scheme();
        Forwarding {
            trusted,
            proto: HeaderValue::from_str(scheme).unwrap_or(HeaderValue::from_static("http")),
            element_tail: format!(";host=\"{host}\";proto={scheme}"),
            host: HeaderValue::from_str(&host).unwrap_or(HeaderValue::from_static("")),
        }
    }

    /// True for a peer in `server.trusted_proxies` (its `traceparent` is believed too).
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// Our RFC 7239 element for a request on `conn`: its node (formatted when the
    /// connection was accepted) and this gateway's `host` and `proto`.
    fn element(&self, conn: &ConnInfo) -> bytes::BytesMut {
        let mut element =
            bytes::BytesMut::with_capacity(conn.forwarded_for.len() + self.element_tail.len());
        element.extend_from_slice(&conn.forwarded_for);
        element.extend_from_slice(self.element_tail.as_bytes());
        element
    }
}

pub struct RequestContext<'a> {
    pub route: &'a Route,
    pub conn: &'a ConnInfo,
    pub bearer: Option<HeaderValue>,
    pub forwarding: &'a Forwarding,
    pub upgrade: bool,
    /// Which cookies the request carries (read once, with the session cookie).
    pub cookies: cookie::Mix,
}

/// The tokens of every `Connection` header, as bytes, trimmed.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// True for an HTTP/1.1 upgrade request (WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(b"upgrade"))
}

/// Hop-by-hop headers removed whatever `Connection` lists (and `Proxy-Authorization` and
/// `Proxy-Authenticate`, which are for the proxy next to the client only).
fn is_fixed_hop_by_hop(name: &HeaderName) -> bool {
    name == KEEP_ALIVE
        || name == PROXY_CONNECTION
        || name == TE
        || name == TRAILER
        || name == TRANSFER_ENCODING
        || name == PROXY_AUTHORIZATION
        || name == PROXY_AUTHENTICATE
}

/// Removes hop-by-hop headers, and the headers `Connection` names. With `keep_upgrade`,
/// `Connection: upgrade` and `Upgrade` stay: the upstream must see the upgrade request.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One look at each name present says which removals are needed: most messages carry
    // none (an HTTP/1.1 keep-alive needs no header, HTTP/2 forbids them), and a typical
    // upstream response only `Connection: keep-alive`.
    let (mut connection, mut upgrade, mut fixed) = (false, false, false);
    for name in headers.keys() {
        connection |= name == CONNECTION;
        upgrade |= name == UPGRADE;
        fixed |= is_fixed_hop_by_hop(name);
    }
    if connection {
        // Names `Connection` lists beyond the fixed ones. A token that is no header name
        // names no header: there is nothing of it to remove.
        let listed: Vec<HeaderName> = connection_tokens(headers)
            .filter(|t| !t.eq_ignore_ascii_case(b"keep-alive") && !t.eq_ignore_ascii_case(b"close"))
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .filter(|n| !(keep_upgrade && n == UPGRADE))
            .collect();
        for name in listed {
            headers.remove(&name);
        }
        headers.remove(CONNECTION);
    }
    if fixed {
        remove_where(headers, is_fixed_hop_by_hop);
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else if upgrade {
        headers.remove(UPGRADE);
    }
}

/// Removes every header whose name `pick` picks.
fn remove_where(headers: &mut HeaderMap, pick: fn(&HeaderName) -> bool) {
    let picked: Vec<HeaderName> = headers.keys().filter(|n| pick(n)).cloned().collect();
    for name in picked {
        headers.remove(&name);
    }
}

/// The request as the upstream will see it.
pub fn rewrite_request(headers: &mut HeaderMap, ctx: &RequestContext<'_>) {
    strip_hop_by_hop(headers, ctx.upgrade);
    remove_own_cookies(headers, ctx.cookies);
    if ctx.route.token != TokenPolicy::None {
        // Never let the browser choose the credential a token route presents, nor the
        // proof that goes with it. (A bearer inserted below replaces theirs.)
        headers.remove(AUTHORIZATION);
        headers.remove(&DPOP);
    }
    if let Some(bearer) = &ctx.bearer {
        headers.insert(AUTHORIZATION, bearer.clone());
    }
    set_forwarding(headers, ctx.conn, ctx.forwarding);
    headers.insert(HOST, ctx.route.upstream.host.clone());
}

/// The gateway's cookies out of every `Cookie` header, whatever else the header holds.
fn remove_own_cookies(headers: &mut HeaderMap, mix: cookie::Mix) {
    match mix {
        cookie::Mix { own: false, .. } => {}
        cookie::Mix { others: false, .. } => {
            headers.remove(COOKIE);
        }
        cookie::Mix { .. } => match cookie::without_own(headers) {
            Some(rest) => {
                headers.insert(COOKIE, rest);
            }
            None => {
                headers.remove(COOKIE);
            }
        },
    }
}

/// `X-Forwarded-For`, `-Proto`, `-Host`, `X-Real-IP` and `Forwarded`. From a peer outside
/// `server.trusted_proxies` every forwarding claim of the client's goes (with the
/// path-override headers some frameworks obey) and the connection speaks for itself; a
/// trusted peer's chain is kept and our hop added to it. Proto and host are always
/// `public_url`'s, never the request's `Host`.
fn set_forwarding(headers: &mut HeaderMap, conn: &ConnInfo, fw: &Forwarding) {
    let peer = conn.remote.ip();
    let trusted = fw.trusts(peer);
    let (mut forwarded_for, mut forwarded, mut real_ip) = (None, None, None);
    if trusted {
        forwarded_for = joined(headers, &X_FORWARDED_FOR, b", ");
        forwarded = joined(headers, &FORWARDED, b", ");
        real_ip = headers.get(&X_REAL_IP).cloned();
    } else {
        remove_where(headers, is_client_forwarding_claim);
    }
    let ip = conn.client_ip.clone();
    let xff = match forwarded_for {
        Some(mut chain) => {
            chain.extend_from_slice(b", ");
            chain.extend_from_slice(ip.as_bytes());
            HeaderValue::from_maybe_shared(bytes::Bytes::from(chain)).unwrap_or(ip.clone())
        }
        None => ip.clone(),
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    let element = fw.element(conn);
    let forwarded = match forwarded {
        Some(mut chain) => {
            chain.extend_from_slice(b", ");
            chain.extend_from_slice(&element);
            HeaderValue::from_maybe_shared(bytes::Bytes::from(chain)).ok()
        }
        None => HeaderValue::from_maybe_shared(element.freeze()).ok(),
    };
    match forwarded {
        Some(v) => headers.insert(FORWARDED, v),
        None => headers.remove(FORWARDED),
    };
    headers.insert(X_REAL_IP.clone(), real_ip.unwrap_or(ip));
    headers.insert(X_FORWARDED_PROTO.clone(), fw.proto.clone());
    headers.insert(X_FORWARDED_HOST.clone(), fw.host.clone());
}

/// A header by which a client could claim another address, host, scheme or path, or a
/// place in a trace (W3C `traceparent` and `tracestate`: believed from a trusted peer
/// only, traced or not).
fn is_client_forwarding_claim(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.starts_with("x-forwarded-")
        || n == "traceparent"
        || n == "tracestate"
        || name == FORWARDED
        || name == X_REAL_IP
        || n == "x-original-url"
        || n == "x-rewrite-url"
        || n == "x-original-host"
}

/// Every value of `name`, joined by `sep`, as bytes; `None` when there is none.
fn joined(headers: &HeaderMap, name: &HeaderName, sep: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for v in headers.get_all(name) {
        let buf = out.get_or_insert_with(Vec::new);
        if !buf.is_empty() {
            buf.extend_from_slice(sep);
        }
        buf.extend_from_slice(v.as_bytes());
    }
    out
}

/// Why an upstream's response head is not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseFault {
    #[error("Content-Length beside Transfer-Encoding")]
    LengthBesideTransferCoding,
    #[error("a transfer coding other than chunked")]
    UnknownTransferCoding,
    #[error("more than one Content-Length")]
    DuplicateLength,
}

/// The response as the browser will see it: refused when its framing is ambiguous
/// (RFC 9112 §6.3: a message with both `Transfer-Encoding` and `Content-Length` "ought to
/// be handled as an error", as nginx does; a transfer coding hyper did not decode would
/// reach the browser as if it were the content), otherwise stripped of hop-by-hop
/// headers (a `101` keeps its `Upgrade`, which the browser needs) and of any `Set-Cookie`
/// for one of our names.
pub fn rewrite_response(headers: &mut HeaderMap, switching: bool) -> Result<(), ResponseFault> {
    let mut lengths = headers.get_all(CONTENT_LENGTH).iter();
    let length = lengths.next().is_some();
    if lengths.next().is_some() {
        return Err(ResponseFault::DuplicateLength);
    }
    if headers.contains_key(TRANSFER_ENCODING) {
        if length {
            return Err(ResponseFault::LengthBesideTransferCoding);
        }
        // hyper decodes `chunked`, applied once and last; anything else would reach the
        // browser still encoded, with no header left to say so.
        let mut codings = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii);
        let only_chunked = codings
            .next()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
            && codings.next().is_none();
        if !only_chunked {
            return Err(ResponseFault::UnknownTransferCoding);
        }
    }
    // A `101` keeps `Upgrade` and `Connection: upgrade`, which the browser needs, and
    // loses every other hop-by-hop header like any response.
    strip_hop_by_hop(headers, switching);
    drop_own_set_cookies(headers);
    Ok(())
}

/// Drops every `Set-Cookie` from an upstream that names one of our cookies, whatever
/// bytes it holds.
fn drop_own_set_cookies(headers: &mut HeaderMap) {
    let ours = |v: &HeaderValue| CookieNames::resembles_own(cookie::set_cookie_name(v.as_bytes()));
    if !headers.get_all(SET_COOKIE).iter().any(ours) {
        return;
    }
    let keep: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| !ours(v))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for v in keep {
        headers.append(SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteConfig;

    /// `headers` as the upstream of a route with `token` sees them, `bearer` the
    /// credential tokengate presents.
    fn rewritten(
        headers: HeaderMap,
        token: TokenPolicy,
        bearer: Option<&'static str>,
    ) -> HeaderMap {
        rewritten_from(headers, token, bearer, vec![])
    }

    fn rewritten_from(
        mut headers: HeaderMap,
        token: TokenPolicy,
        bearer: Option<&'static str>,
        trusted: Vec<ipnet::IpNet>,
    ) -> HeaderMap {
        let route = Route::from_config(
            0,
            &RouteConfig {
                path: "/api".into(),
                upstream: "http://api.internal:8080".parse().expect("uri"),
                token,
                strip_prefix: false,
                resource: None,
                scope: None,
                dpop: false,
                methods: None,
                http2: false,
                require: Vec::new(),
                step_up: Default::default(),
                websocket: false,
            },
        )
        .expect("route");
        let conn = ConnInfo::new("192.0.2.7:50000".parse().expect("address"), false, 0);
        let public = url::Url::parse("https://app.example").expect("url");
        let forwarding = Forwarding::new(&public, trusted);
        let cookies = cookie::scan(&headers, "tokengate").mix;
        let ctx = RequestContext {
            route: &route,
            conn: &conn,
            bearer: bearer.map(HeaderValue::from_static),
            forwarding: &forwarding,
            upgrade: false,
            cookies,
        };
        rewrite_request(&mut headers, &ctx);
        headers
    }

    #[test]
    fn a_forwarded_node_quotes_an_ipv6_address() {
        // RFC 7239 §6: an IPv6 node is bracketed and quoted, an IPv4 one is bare.
        let v6 = ConnInfo::new("[2001:db8::7]:50000".parse().expect("address"), false, 0);
        let v4 = ConnInfo::new("192.0.2.7:50000".parse().expect("address"), false, 0);
        let fw = Forwarding::new(
            &url::Url::parse("https://app.example:8443").expect("url"),
            vec![],
        );
        assert_eq!(
            &fw.element(&v6)[..],
            b"for=\"[2001:db8::7]\";host=\"app.example:8443\";proto=https"
        );
        assert_eq!(
            &fw.element(&v4)[..],
            b"for=192.0.2.7;host=\"app.example:8443\";proto=https"
        );
        assert_eq!(v6.client_ip, "2001:db8::7");
    }

    #[test]
    fn the_request_rewrite_sets_what_the_upstream_trusts() {
        // What a browser (or anyone) may send, on a token route: their credential, proof
        // and forwarding claims do not reach the upstream as sent.
        let sent = || {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer theirs"));
            h.insert(&DPOP, HeaderValue::from_static("their-proof"));
            h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("10.0.0.1"));
            h.insert(&X_FORWARDED_HOST, HeaderValue::from_static("evil.example"));
            h.insert(HOST, HeaderValue::from_static("app.example"));
            h
        };
        let h = rewritten(sent(), TokenPolicy::User, Some("Bearer ours"));
        assert_eq!(h[AUTHORIZATION], "Bearer ours");
        assert!(!h.contains_key(&DPOP));
        assert_eq!(
            h[&X_FORWARDED_FOR], "192.0.2.7",
            "an untrusted peer's chain goes"
        );
        assert_eq!(
            h[&X_FORWARDED_HOST], "app.example",
            "public_url's, not Host"
        );
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_REAL_IP], "192.0.2.7");
        assert_eq!(
            h[FORWARDED],
            "for=192.0.2.7;host=\"app.example\";proto=https"
        );
        assert_eq!(h[HOST], "api.internal:8080");

        // A token route with nothing to present sends nothing of theirs either.
        let h = rewritten(sent(), TokenPolicy::UserOptional, None);
        assert!(!h.contains_key(AUTHORIZATION));
        assert!(!h.contains_key(&DPOP));

        // A route without tokens passes the browser's own credential on.
        let h = rewritten(sent(), TokenPolicy::None, None);
        assert_eq!(h[AUTHORIZATION], "Bearer theirs");

        // Nothing claimed: the forwarding headers are ours alone.
        let h = rewritten(HeaderMap::new(), TokenPolicy::User, Some("Bearer ours"));
        assert_eq!(h[&X_FORWARDED_FOR], "192.0.2.7");
        assert_eq!(h[&X_FORWARDED_HOST], "app.example");
    }

    #[test]
    fn forwarding_claims_are_kept_only_from_a_trusted_peer() {
        let sent = || {
            let mut h = HeaderMap::new();
            h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.9"));
            h.insert(FORWARDED, HeaderValue::from_static("for=203.0.113.9"));
            h.insert(&X_REAL_IP, HeaderValue::from_static("203.0.113.9"));
            h.insert("x-forwarded-port", HeaderValue::from_static("1"));
            h.insert("x-forwarded-prefix", HeaderValue::from_static("/evil"));
            h.insert("x-original-url", HeaderValue::from_static("/admin"));
            h.insert(&X_FORWARDED_HOST, HeaderValue::from_static("evil.example"));
            h
        };
        let h = rewritten(sent(), TokenPolicy::None, None);
        for gone in ["x-forwarded-port", "x-forwarded-prefix", "x-original-url"] {
            assert!(!h.contains_key(gone), "{gone}: {h:?}");
        }
        assert_eq!(h[&X_REAL_IP], "192.0.2.7");
        assert_eq!(
            h[FORWARDED],
            "for=192.0.2.7;host=\"app.example\";proto=https"
        );

        let lb = vec!["192.0.2.0/24".parse().expect("cidr")];
        let h = rewritten_from(sent(), TokenPolicy::None, None, lb);
        assert_eq!(h[&X_FORWARDED_FOR], "203.0.113.9, 192.0.2.7");
        assert_eq!(h[&X_REAL_IP], "203.0.113.9");
        assert_eq!(
            h[FORWARDED],
            "for=203.0.113.9, for=192.0.2.7;host=\"app.example\";proto=https"
        );
        assert_eq!(h["x-forwarded-port"], "1");
        assert_eq!(h[&X_FORWARDED_HOST], "app.example", "always public_url's");
    }

    #[test]
    fn our_cookies_and_the_browser_credential_go_whatever_bytes_surround_them() {
        let mut h = HeaderMap::new();
        h.append(
            COOKIE,
            HeaderValue::from_bytes(b"tokengate=s; lang=Jos\xe9").expect("v"),
        );
        h.append(
            COOKIE,
            HeaderValue::from_bytes(b"\xff=\xfe; tokengate-login-x=1").expect("v"),
        );
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").expect("v"),
        );
        h.insert(
            CONNECTION,
            HeaderValue::from_bytes(b"x-drop, \xe9").expect("v"),
        );
        h.insert("x-drop", HeaderValue::from_static("1"));
        h.insert("x-note", HeaderValue::from_bytes(b"\xff\xfe").expect("v"));
        let out = rewritten(h, TokenPolicy::User, Some("Bearer ours"));
        let cookies: Vec<&[u8]> = out.get_all(COOKIE).iter().map(|v| v.as_bytes()).collect();
        assert_eq!(cookies, vec![&b"lang=Jos\xe9; \xff=\xfe"[..]]);
        assert_eq!(out[AUTHORIZATION], "Bearer ours");
        assert!(!out.contains_key("x-drop"));
        assert_eq!(out["x-note"].as_bytes(), b"\xff\xfe");
    }

    #[test]
    fn ambiguous_response_framing_is_refused() {
        let head = |pairs: &[(&str, &[u8])]| {
            let mut h = HeaderMap::new();
            for (n, v) in pairs {
                h.append(
                    HeaderName::from_bytes(n.as_bytes()).expect("name"),
                    HeaderValue::from_bytes(v).expect("value"),
                );
            }
            h
        };
        let check = |pairs: &[(&str, &[u8])]| rewrite_response(&mut head(pairs), false);
        use ResponseFault::*;
        assert_eq!(
            check(&[("transfer-encoding", b"chunked"), ("content-length", b"5")]),
            Err(LengthBesideTransferCoding)
        );
        assert_eq!(
            check(&[("content-length", b"5"), ("content-length", b"5")]),
            Err(DuplicateLength)
        );
        assert_eq!(
            check(&[("transfer-encoding", b"gzip")]),
            Err(UnknownTransferCoding)
        );
        assert_eq!(
            check(&[("transfer-encoding", b"gzip, chunked")]),
            Err(UnknownTransferCoding)
        );
        assert_eq!(
            check(&[
                ("transfer-encoding", b"chunked"),
                ("transfer-encoding", b"chunked")
            ]),
            Err(UnknownTransferCoding)
        );
        let mut ok = head(&[
            ("transfer-encoding", b"Chunked"),
            ("proxy-authenticate", b"Basic"),
            ("x-keep", b"1"),
        ]);
        assert_eq!(rewrite_response(&mut ok, false), Ok(()));
        assert_eq!(ok.len(), 1, "{ok:?}");
    }

    #[test]
    fn connection_listed_and_hop_by_hop_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("close, x-secret-hop"));
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn a_plain_keep_alive_goes_and_nothing_else() {
        for value in ["keep-alive", "Keep-Alive", "close"] {
            let mut h = HeaderMap::new();
            h.insert(CONNECTION, HeaderValue::from_static(value));
            h.insert("content-type", HeaderValue::from_static("application/json"));
            h.insert(UPGRADE, HeaderValue::from_static("websocket"));
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 1, "{value}: {h:?}");
            assert!(h.contains_key("content-type"));
        }
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn upgrade_survives_when_kept() {
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(
            h.get(UPGRADE).map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert_eq!(
            h.get(CONNECTION).map(|v| v.as_bytes()),
            Some(&b"upgrade"[..])
        );
    }

    #[test]
    fn a_switching_response_keeps_its_upgrade_and_loses_every_other_hop_by_hop_header() {
        // Fuzzing regression (response_headers): a 101 kept Proxy-Authenticate and the rest.
        let mut h = HeaderMap::new();
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade, x-hop"));
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(PROXY_AUTHENTICATE, HeaderValue::from_static(""));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("sec-websocket-accept", HeaderValue::from_static("abc"));
        assert_eq!(rewrite_response(&mut h, true), Ok(()));
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["connection", "sec-websocket-accept", "upgrade"]);
        assert_eq!(h[CONNECTION], "upgrade");
    }

    #[test]
    fn upstream_cannot_set_our_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("tokengate=evil; Path=/"),
        );
        h.append(
            SET_COOKIE,
            HeaderValue::from_bytes(b"tokengate=x; X=\xe9").expect("v"),
        );
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("__host-http-tokengate=x"),
        );
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("tokengate-login-abc=x"),
        );
        h.append(SET_COOKIE, HeaderValue::from_static("app=1; Path=/"));
        assert_eq!(rewrite_response(&mut h, false), Ok(()));
        let left: Vec<_> = h.get_all(SET_COOKIE).iter().collect();
        assert_eq!(left, vec![HeaderValue::from_static("app=1; Path=/")]);
    }
}
