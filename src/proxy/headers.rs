//! Header hygiene between the browser and an upstream (DESIGN.md "Proxied routes").
//!
//! Requests: hop-by-hop headers and those the `Connection` header lists are removed
//! (RFC 9110 §7.6.1); the gateway's own cookies never leave; on token routes the
//! browser's `Authorization` is dropped and ours is set; `X-Forwarded-For`, `-Proto` and
//! `-Host` are set; `Host` becomes the upstream's. Responses: hop-by-hop headers are
//! removed and an upstream cannot set a cookie under one of our names.

use http::header::{
    AUTHORIZATION, CONNECTION, COOKIE, HOST, PROXY_AUTHORIZATION, SET_COOKIE, TE, TRAILER,
    TRANSFER_ENCODING, UPGRADE,
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
static DPOP: HeaderName = HeaderName::from_static("dpop");

pub struct RequestContext<'a> {
    pub route: &'a Route,
    pub conn: ConnInfo,
    pub bearer: Option<HeaderValue>,
    pub original_host: Option<HeaderValue>,
    pub proto: HeaderValue,
    pub upgrade: bool,
    /// Which cookies the request carries (read once, with the session cookie).
    pub cookies: cookie::Mix,
}

/// True for an HTTP/1.1 upgrade request (WebSocket).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers.get_all(CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Hop-by-hop headers removed whatever `Connection` lists (and `Proxy-Authorization`,
/// which is for the next proxy only).
fn is_fixed_hop_by_hop(name: &HeaderName) -> bool {
    name == KEEP_ALIVE
        || name == PROXY_CONNECTION
        || name == TE
        || name == TRAILER
        || name == TRANSFER_ENCODING
        || name == PROXY_AUTHORIZATION
}

/// Removes hop-by-hop headers, and the headers `Connection` names. With `keep_upgrade`,
/// `Connection: upgrade` and `Upgrade` stay: the upstream must see the upgrade request.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One look at each name present says which removals are needed: most messages carry
    // none (an HTTP/1.1 keep-alive needs no header, HTTP/2 forbids them), and a typical
    // upstream response only `Connection: keep-alive`. Removing by name is a hashed
    // lookup each; it happens only for the names there are.
    let (mut connection, mut upgrade, mut fixed) = (false, false, false);
    for name in headers.keys() {
        connection |= name == CONNECTION;
        upgrade |= name == UPGRADE;
        fixed |= is_fixed_hop_by_hop(name);
    }
    // `Connection: keep-alive` or `close`, the usual value, names no other header.
    let lists_names = connection
        && !headers.get_all(CONNECTION).iter().all(|v| {
            v.as_bytes().eq_ignore_ascii_case(b"keep-alive")
                || v.as_bytes().eq_ignore_ascii_case(b"close")
        });
    if lists_names {
        // Names `Connection` lists beyond the fixed ones.
        let listed: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| !(keep_upgrade && n == UPGRADE))
            .collect();
        for name in listed {
            headers.remove(&name);
        }
    }
    if connection {
        headers.remove(CONNECTION);
    }
    if fixed {
        let present: Vec<HeaderName> = headers
            .keys()
            .filter(|n| is_fixed_hop_by_hop(n))
            .cloned()
            .collect();
        for name in present {
            headers.remove(&name);
        }
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else if upgrade {
        headers.remove(UPGRADE);
    }
}

pub fn rewrite_request(headers: &mut HeaderMap, ctx: &RequestContext<'_>) {
    strip_hop_by_hop(headers, ctx.upgrade);

    match ctx.cookies {
        cookie::Mix { own: false, .. } => {}
        cookie::Mix { others: false, .. } => {
            headers.remove(COOKIE);
        }
        cookie::Mix { .. } => match cookie::without_own(headers).map(|r| HeaderValue::from_str(&r)) {
            Some(Ok(v)) => {
                headers.insert(COOKIE, v);
            }
            _ => {
                headers.remove(COOKIE);
            }
        },
    }

    if ctx.route.token != TokenPolicy::None {
        // Never let the browser choose the credential a token route presents, nor the
        // proof that goes with it.
        headers.remove(AUTHORIZATION);
        headers.remove(&DPOP);
    }
    if let Some(bearer) = &ctx.bearer {
        headers.insert(AUTHORIZATION, bearer.clone());
    }

    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prev) => HeaderValue::from_str(&format!("{prev}, {}", ctx.conn.remote.ip())).ok(),
        None => Some(ctx.conn.client_ip.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), ctx.proto.clone());
    match &ctx.original_host {
        Some(h) => {
            headers.insert(X_FORWARDED_HOST.clone(), h.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
    headers.insert(HOST, ctx.route.upstream.host.clone());
}

/// Drops any `Set-Cookie` from an upstream that would overwrite one of our cookies.
pub fn protect_own_cookies(headers: &mut HeaderMap) {
    if !headers.contains_key(SET_COOKIE) {
        return;
    }
    let keep: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| {
            let name = v
                .to_str()
                .ok()
                .and_then(|s| s.split_once('='))
                .map_or("", |(n, _)| n.trim());
            !CookieNames::is_own(name)
        })
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
    fn upstream_cannot_set_our_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            SET_COOKIE,
            HeaderValue::from_static("tokengate=evil; Path=/"),
        );
        h.append(SET_COOKIE, HeaderValue::from_static("app=1; Path=/"));
        protect_own_cookies(&mut h);
        let left: Vec<_> = h.get_all(SET_COOKIE).iter().collect();
        assert_eq!(left, vec![HeaderValue::from_static("app=1; Path=/")]);
    }
}
