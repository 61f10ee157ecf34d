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
        cookie::Mix { .. } => match cookie::without_own(headers).map(|r| HeaderValue::from_str(&r))
        {
            Some(Ok(v)) => {
                headers.insert(COOKIE, v);
            }
            _ => {
                headers.remove(COOKIE);
            }
        },
    }

    // One look at the names present spares a hashed lookup for each that is not: a
    // browser's request rarely carries any of these.
    let (mut dpop, mut forwarded_for, mut forwarded_host) = (false, false, false);
    for name in headers.keys() {
        dpop |= name == DPOP;
        forwarded_for |= name == X_FORWARDED_FOR;
        forwarded_host |= name == X_FORWARDED_HOST;
    }

    if ctx.route.token != TokenPolicy::None {
        // Never let the browser choose the credential a token route presents, nor the
        // proof that goes with it. (A bearer inserted below replaces theirs.)
        if ctx.bearer.is_none() {
            headers.remove(AUTHORIZATION);
        }
        if dpop {
            headers.remove(&DPOP);
        }
    }
    if let Some(bearer) = &ctx.bearer {
        headers.insert(AUTHORIZATION, bearer.clone());
    }

    let previous = match forwarded_for {
        true => headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()),
        false => None,
    };
    let xff = match previous {
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
        None if forwarded_host => {
            headers.remove(&X_FORWARDED_HOST);
        }
        None => {}
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
    use crate::config::RouteConfig;

    /// `headers` as the upstream of a route with `token` sees them, `bearer` the
    /// credential tokengate presents.
    fn rewritten(
        mut headers: HeaderMap,
        token: TokenPolicy,
        bearer: Option<&'static str>,
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
            },
        )
        .expect("route");
        let ctx = RequestContext {
            route: &route,
            conn: ConnInfo {
                remote: "192.0.2.7:50000".parse().expect("address"),
                client_ip: HeaderValue::from_static("192.0.2.7"),
                tls: false,
            },
            bearer: bearer.map(HeaderValue::from_static),
            original_host: None,
            proto: HeaderValue::from_static("https"),
            upgrade: false,
            cookies: cookie::Mix::default(),
        };
        rewrite_request(&mut headers, &ctx);
        headers
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
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.1, 192.0.2.7");
        assert!(
            !h.contains_key(&X_FORWARDED_HOST),
            "no original host, no claim"
        );
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
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
        assert!(!h.contains_key(&X_FORWARDED_HOST));
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
