//! The request header rewrite, on the bytes that go upstream.
//!
//! Each input is a browser's header map built from structured parts: `Cookie` headers
//! (one or several) whose pairs are the gateway's cookies, look-alikes (`Tokengate`,
//! `tokengatex`, `tokengate-login`) and others, with any bytes as values (non-UTF-8
//! included) and any separators; `Connection` lists naming present, hop-by-hop or made-up
//! headers; `Upgrade`, `Authorization`, `DPoP`, the forwarding headers (`Forwarded`,
//! `X-Forwarded-*`, `X-Real-IP`, `X-Original-URL`…), hop-by-hop headers and any other name,
//! each value any bytes a header can hold. It goes through what `proxy::forward` does:
//! `cookie::scan` for the mix, `is_upgrade`, then `rewrite_request`, on a `user` route
//! with a bearer, a `user-optional` route without one, or a `none` route, from a peer inside
//! or outside `server.trusted_proxies`. Invariants, on the result:
//! - no `Cookie` header holds a gateway cookie (`tokengate`, `__Host-Http-tokengate`,
//!   `tokengate-login-*`, `__Host-tokengate-login-*`; pairs split on `;` as bytes and
//!   trimmed), and no value of one appears anywhere upstream; every other pair arrives as
//!   sent, in order;
//! - on token routes the only `Authorization` is the gateway's bearer (none without one)
//!   and there is no `DPoP`;
//! - no hop-by-hop header (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`,
//!   `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-Authorization`,
//!   `Proxy-Authenticate`) and no header `Connection` listed, except `Connection: upgrade`
//!   and `Upgrade` on an upgrade;
//! - `X-Forwarded-For`, `X-Real-IP` and `Forwarded` name the peer (after the chain a
//!   trusted peer sent), `X-Forwarded-Proto`/`-Host` are `public_url`'s, `Host` the
//!   upstream's; from an untrusted peer no other forwarding claim passes;
//! - every other header arrives as sent.
#![no_main]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokengate::config::Config;
use tokengate::crypto::cookie;
use tokengate::server::headers::{self, Forwarding, RequestContext};
use tokengate::route::Route;
use tokengate::server::listener::ConnInfo;

const LABELS: &[&str] = &[
    "rewritten, invariants checked",
    "a gateway cookie beside others",
    "non-UTF-8 bytes in a Cookie header",
    "Connection listed a header present",
    "an upgrade",
];

const CONFIG: &str = r#"
[server]
public_url = "https://app.example.com:8443"
trusted_proxies = ["10.0.0.0/8", "2001:db8::/32"]
[oidc]
issuer = "http://127.0.0.1:1"
client_id = "c"
client_secret = "s"
[session]
keys = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
store = "memory"
[[route]]
path = "/api"
upstream = "http://api.internal:8080"
token = "user"
[[route]]
path = "/maybe"
upstream = "https://maybe.internal"
token = "user-optional"
[[route]]
path = "/"
upstream = "http://spa.internal:5173"
token = "none"
"#;

const BEARER: &str = "Bearer gateway-access-token";

struct Fixture {
    routes: Vec<Route>,
    forwarding: Forwarding,
    public_host: &'static str,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let config = Config::from_toml_str(CONFIG).expect("fuzz config");
        Fixture {
            routes: config
                .routes
                .iter()
                .enumerate()
                .map(|(i, r)| Route::from_config(i, r).expect("route"))
                .collect(),
            forwarding: Forwarding::new(
                &config.server.public_url,
                config.server.trusted_proxies.clone(),
            ),
            public_host: "app.example.com:8443",
        }
    })
}

/// The names the rules are about, and a few ordinary ones.
const NAMES: &[&str] = &[
    "cookie",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "authorization",
    "dpop",
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "traceparent",
    "tracestate",
    "content-type",
    "content-length",
    "accept",
    "x-custom",
    "set-cookie",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Any(String),
}

impl Name {
    fn header(&self) -> Option<HeaderName> {
        match self {
            Name::Known(i) => Some(HeaderName::from_static(
                NAMES[usize::from(*i) % NAMES.len()],
            )),
            Name::Any(s) => HeaderName::from_bytes(s.as_bytes()).ok(),
        }
    }
}

/// A cookie name: ours in each naming scheme, look-alikes, or anything.
#[derive(Arbitrary, Debug)]
enum CookieName {
    Session,
    SecureSession,
    Login(String),
    SecureLogin(String),
    LookAlike(u8),
    Any(Vec<u8>),
}

impl CookieName {
    fn bytes(&self) -> Vec<u8> {
        match self {
            CookieName::Session => b"tokengate".to_vec(),
            CookieName::SecureSession => b"__Host-Http-tokengate".to_vec(),
            CookieName::Login(s) => [b"tokengate-login-", s.as_bytes()].concat(),
            CookieName::SecureLogin(s) => [b"__Host-tokengate-login-", s.as_bytes()].concat(),
            CookieName::LookAlike(i) => [
                &b"Tokengate"[..],
                b"tokengatex",
                b"0tokengate",
                b"tokengate-login",
                b"__host-http-tokengate",
                b"__Host-tokengate",
                b"tokengate\xe9",
                b"x-tokengate-login-a",
            ][usize::from(*i) % 8]
                .to_vec(),
            CookieName::Any(b) => b.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct CookiePair {
    name: CookieName,
    /// `None`: a pair without `=`.
    value: Option<Vec<u8>>,
    space_before: bool,
    space_after: bool,
    separator: u8,
}

#[derive(Arbitrary, Debug)]
enum Part {
    Cookie(Vec<CookiePair>),
    Connection(Vec<(Name, u8)>),
    Upgrade(Vec<u8>),
    Header(Name, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Peer {
    Outside([u8; 4]),
    OutsideV6([u16; 8]),
    Trusted([u8; 3]),
    TrustedV6([u16; 6]),
}

impl Peer {
    fn ip(&self) -> IpAddr {
        match *self {
            // Outside 10/8 (the trusted block).
            Peer::Outside([a, b, c, d]) => IpAddr::from([if a == 10 { 11 } else { a }, b, c, d]),
            Peer::OutsideV6(s) => {
                let mut s = s;
                if s[0] == 0x2001 && s[1] == 0xdb8 {
                    s[1] = 0xdb9;
                }
                IpAddr::from(s)
            }
            Peer::Trusted([b, c, d]) => IpAddr::from([10, b, c, d]),
            Peer::TrustedV6(s) => IpAddr::from([0x2001, 0xdb8, s[0], s[1], s[2], s[3], s[4], s[5]]),
        }
    }

    fn trusted(&self) -> bool {
        matches!(self, Peer::Trusted(_) | Peer::TrustedV6(_))
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    parts: Vec<Part>,
    route: u8,
    peer: Peer,
}

/// Bytes a header value can hold: each one it cannot becomes a byte from 0x80 up.
fn value(bytes: &[u8]) -> HeaderValue {
    let fixed: Vec<u8> = bytes
        .iter()
        .map(|&b| {
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                b | 0x80
            } else {
                b
            }
        })
        .collect();
    HeaderValue::from_bytes(&fixed).expect("a valid value")
}

fn cookie_header(pairs: &[CookiePair]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in pairs.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(match p.separator % 4 {
                0 => &b"; "[..],
                1 => b";",
                2 => b" ;  ",
                _ => b";;\t",
            });
        }
        if p.space_before {
            out.push(b' ');
        }
        out.extend_from_slice(&p.name.bytes());
        if let Some(v) = &p.value {
            out.push(b'=');
            if p.space_after {
                out.push(b' ');
            }
            out.extend_from_slice(v);
        }
    }
    out
}

/// A gateway cookie name, by the names the gateway sets (exact bytes: browsers keep
/// cookie names as set).
fn is_gateway_cookie(name: &[u8]) -> bool {
    name == b"tokengate"
        || name == b"__Host-Http-tokengate"
        || name.starts_with(b"tokengate-login-")
        || name.starts_with(b"__Host-tokengate-login-")
}

/// The `(name, pair)` of every cookie in `Cookie` values: split on `;`, trimmed, the name
/// before the first `=`.
fn cookie_pairs<'a>(values: impl Iterator<Item = &'a HeaderValue>) -> Vec<(Vec<u8>, Vec<u8>)> {
    values
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let name = match p.iter().position(|&b| b == b'=') {
                Some(at) => p[..at].trim_ascii(),
                None => p,
            };
            (name.to_vec(), p.to_vec())
        })
        .collect()
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// What the gateway sets itself on every request.
const SET_BY_GATEWAY: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "forwarded",
];

fn is_forwarding_claim(name: &str) -> bool {
    name.starts_with("x-forwarded-")
        || matches!(
            name,
            "forwarded"
                | "x-real-ip"
                | "x-original-url"
                | "x-rewrite-url"
                | "x-original-host"
                | "traceparent"
                | "tracestate"
        )
}

fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    h.get_all(name).iter().map(HeaderValue::as_bytes).collect()
}

fuzz_target!(|data: &[u8]| {
    common::input("request_headers", LABELS, data);
    let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    let f = fixture();

    let mut sent = HeaderMap::new();
    for part in &input.parts {
        match part {
            Part::Cookie(pairs) => {
                sent.append(http::header::COOKIE, value(&cookie_header(pairs)));
            }
            Part::Connection(tokens) => {
                let mut list = Vec::new();
                for (i, (name, style)) in tokens.iter().enumerate() {
                    if i > 0 {
                        list.extend_from_slice(if style % 2 == 0 { b", " } else { b"," });
                    }
                    let token = match name {
                        Name::Known(_) => name.header().map(|n| n.as_str().to_owned()),
                        Name::Any(s) => Some(s.clone()),
                    }
                    .unwrap_or_default();
                    let token = match style % 4 {
                        0 | 1 => token,
                        2 => token.to_ascii_uppercase(),
                        _ => format!(" {token}\t"),
                    };
                    list.extend_from_slice(token.as_bytes());
                }
                sent.append(http::header::CONNECTION, value(&list));
            }
            Part::Upgrade(v) => {
                sent.append(http::header::UPGRADE, value(v));
            }
            Part::Header(name, v) => {
                if let Some(name) = name.header() {
                    sent.append(name, value(v));
                }
            }
        }
    }

    if std::env::var_os("TOKENGATE_FUZZ_DEBUG").is_some() {
        eprintln!("{input:?}\nsent: {sent:?}");
    }
    // As `proxy::forward` does it.
    let route = &f.routes[usize::from(input.route) % f.routes.len()];
    let bearer = (route.prefix == "/api").then(|| HeaderValue::from_static(BEARER));
    let ip = input.peer.ip();
    let conn = ConnInfo {
        remote: SocketAddr::new(ip, 50_000),
        client_ip: HeaderValue::from_str(&ip.to_string()).expect("ip"),
        tls: false,
        worker: 0,
    };
    let mix = cookie::scan(&sent, "__Host-Http-tokengate").mix;
    let upgrade = headers::is_upgrade(&sent);
    let mut out = sent.clone();
    headers::rewrite_request(
        &mut out,
        &RequestContext {
            route,
            conn: &conn,
            bearer: bearer.clone(),
            forwarding: &f.forwarding,
            upgrade,
            cookies: mix,
        },
    );
    common::hit(0);

    // What the browser sent, read independently of the gateway's code.
    let listed: Vec<HeaderName> = sent
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .collect();
    let my_upgrade = sent.contains_key(http::header::UPGRADE)
        && listed.iter().any(|n| n == http::header::UPGRADE);
    assert_eq!(upgrade, my_upgrade);
    if upgrade {
        common::hit(4);
    }
    let listed_names: Vec<&str> = listed
        .iter()
        .map(HeaderName::as_str)
        .filter(|n| !matches!(*n, "close" | "keep-alive"))
        .filter(|n| !(upgrade && *n == "upgrade"))
        .collect();
    if listed_names.iter().any(|n| sent.contains_key(*n)) {
        common::hit(3);
    }
    let sent_pairs = cookie_pairs(sent.get_all(http::header::COOKIE).iter());
    if sent_pairs.iter().any(|(n, _)| is_gateway_cookie(n))
        && sent_pairs.iter().any(|(n, _)| !is_gateway_cookie(n))
    {
        common::hit(1);
    }
    if sent
        .get_all(http::header::COOKIE)
        .iter()
        .any(|v| v.to_str().is_err())
    {
        common::hit(2);
    }

    // Cookies: none of ours, every other pair as sent.
    let out_pairs = cookie_pairs(out.get_all(http::header::COOKIE).iter());
    for (name, pair) in &out_pairs {
        assert!(
            !is_gateway_cookie(name),
            "gateway cookie upstream: {:?}",
            String::from_utf8_lossy(pair)
        );
    }
    if !listed_names.contains(&"cookie") {
        let expected: Vec<&Vec<u8>> = sent_pairs
            .iter()
            .filter(|(n, _)| !is_gateway_cookie(n))
            .map(|(_, p)| p)
            .collect();
        let got: Vec<&Vec<u8>> = out_pairs.iter().map(|(_, p)| p).collect();
        assert_eq!(got, expected, "the other cookies, as sent");
    }
    // The value of a gateway cookie appears nowhere upstream, unless the browser also sent
    // it in something else.
    let others: Vec<u8> = sent
        .iter()
        .filter(|(n, _)| *n != http::header::COOKIE)
        .flat_map(|(_, v)| v.as_bytes().iter().copied().chain([0]))
        .chain(
            sent_pairs
                .iter()
                .filter(|(n, _)| !is_gateway_cookie(n))
                .flat_map(|(_, p)| p.iter().copied().chain([0])),
        )
        .collect();
    for (name, pair) in &sent_pairs {
        if !is_gateway_cookie(name) {
            continue;
        }
        let secret = pair[name.len()..].trim_ascii();
        let secret = secret.strip_prefix(b"=").unwrap_or(secret).trim_ascii();
        if secret.len() < 16 || others.windows(secret.len()).any(|w| w == secret) {
            continue;
        }
        // (Not in the values the gateway makes itself, checked exactly below.)
        for (n, v) in out
            .iter()
            .filter(|(n, _)| !SET_BY_GATEWAY.contains(&n.as_str()) && *n != "authorization")
        {
            assert!(
                !v.as_bytes().windows(secret.len()).any(|w| w == secret),
                "a gateway cookie's value went upstream in {n}"
            );
        }
    }

    // Credentials.
    let token_route = route.prefix != "/";
    if token_route {
        let expected: Vec<&[u8]> = bearer.iter().map(HeaderValue::as_bytes).collect();
        assert_eq!(
            values(&out, "authorization"),
            expected,
            "Authorization on a token route"
        );
        assert!(
            !out.contains_key("dpop"),
            "the browser's DPoP on a token route"
        );
    }

    // Hop by hop.
    for name in HOP_BY_HOP {
        let kept = upgrade && matches!(*name, "connection" | "upgrade");
        if !kept {
            assert!(!out.contains_key(*name), "{name} went upstream");
        }
    }
    if upgrade {
        assert_eq!(values(&out, "connection"), [&b"upgrade"[..]]);
        assert_eq!(values(&out, "upgrade"), values(&sent, "upgrade"));
    }
    for name in &listed_names {
        let reset = SET_BY_GATEWAY.contains(name)
            || (*name == "authorization" && bearer.is_some())
            || (upgrade && *name == "connection");
        if !reset {
            assert!(!out.contains_key(*name), "{name} was listed in Connection");
        }
    }

    // Forwarding.
    let peer = ip.to_string();
    let trusted = input.peer.trusted();
    let element = match ip {
        IpAddr::V4(_) => format!("for={peer};host=\"{}\";proto=https", f.public_host),
        IpAddr::V6(_) => format!("for=\"[{peer}]\";host=\"{}\";proto=https", f.public_host),
    };
    let one = |name: &str| -> Vec<u8> {
        let v = values(&out, name);
        assert_eq!(v.len(), 1, "one {name}");
        v[0].to_vec()
    };
    let xff = one("x-forwarded-for");
    let fwd = one("forwarded");
    let real_ip = one("x-real-ip");
    assert_eq!(one("x-forwarded-proto"), b"https");
    assert_eq!(one("x-forwarded-host"), f.public_host.as_bytes());
    assert_eq!(one("host"), route.upstream.host.as_bytes());
    if trusted {
        assert!(xff == peer.as_bytes() || xff.ends_with(format!(", {peer}").as_bytes()));
        assert!(fwd == element.as_bytes() || fwd.ends_with(format!(", {element}").as_bytes()));
    } else {
        assert_eq!(
            xff,
            peer.as_bytes(),
            "X-Forwarded-For from an untrusted peer"
        );
        assert_eq!(fwd, element.as_bytes(), "Forwarded from an untrusted peer");
        assert_eq!(real_ip, peer.as_bytes(), "X-Real-IP from an untrusted peer");
        for (name, _) in &out {
            let n = name.as_str();
            assert!(
                !is_forwarding_claim(n) || SET_BY_GATEWAY.contains(&n),
                "{n} from an untrusted peer"
            );
        }
    }

    // Everything else, as sent.
    for name in sent.keys() {
        let n = name.as_str();
        let ruled = n == "cookie"
            || HOP_BY_HOP.contains(&n)
            || listed_names.contains(&n)
            || SET_BY_GATEWAY.contains(&n)
            || is_forwarding_claim(n)
            || (token_route && matches!(n, "authorization" | "dpop"));
        if !ruled {
            assert_eq!(values(&out, n), values(&sent, n), "{n} changed");
        }
    }
});
