//! Configuration files, from text to a validated `Config`.
//!
//! Two kinds of input reach the validator:
//! - text: the corpus starts from real configurations (`config/tokengate.toml` and the
//!   shapes in `fuzz/seeds/config/`: the unit tests' minimal file, the integration tests'
//!   file, a file using every key, Redis standalone and cluster), with `${VAR}` set for the
//!   names they use, and `fuzz/config.dict` names every key and value kind;
//! - edits (an input starting with byte 0xff, never UTF-8): one of those files, parsed,
//!   with keys set, removed or routes added, each value drawn from valid and invalid
//!   values of the key's kind, written back as TOML. Most edited files are accepted.
//!
//! Invariants:
//! - a refusal lists at least one problem, each with a message, under a section or key
//!   of the file;
//! - an accepted configuration holds what validation promises: route paths normalised,
//!   unique and outside `/bff`; upstreams absolute http(s) without a query; `scopes` only on
//!   client routes and `resource` never on `none` routes; session keys present, distinct
//!   and making a key ring; idle ≤ absolute; limits within their bounds; a public URL that
//!   is an origin whose cookies are `Secure` exactly for https; the client authentication
//!   method has its material; a Redis store has one kind of target; and every configured
//!   route is built and is what its own path routes to.
#![no_main]

mod common;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use tokengate::config::{ClientAuth, Config, StoreKind, TokenPolicy};
use tokengate::crypto::KeyRing;
use tokengate::route::{Route, RouteTable};

const LABELS: &[&str] = &["parsed as TOML", "accepted, invariants checked"];
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn env(name: &str) -> Option<String> {
    match name {
        "TOKENGATE_KEY" | "KEY" => Some(KEY.to_owned()),
        "TOKENGATE_CLIENT_SECRET" | "SECRET" => Some("s3cret-value".to_owned()),
        "SET" => Some("value".to_owned()),
        _ => None,
    }
}

/// False when validating `text` would ask the resolver for a host name (`server.listen`
/// and `admin_listen` may name hosts) or read a device file: a fuzzer makes no DNS
/// queries, and `/dev/zero` as a certificate path is the operator's problem.
fn offline(text: &str, toml: &toml::Value) -> bool {
    if ["/dev", "/proc", "/sys"].iter().any(|d| text.contains(d)) {
        return false;
    }
    let server = toml.get("server");
    ["listen", "admin_listen"].iter().all(|key| {
        match server
            .and_then(|s| s.get(key))
            .and_then(toml::Value::as_str)
        {
            Some(v) => {
                !v.contains(':')
                    || v.parse::<std::net::SocketAddr>().is_ok()
                    || (v.starts_with("localhost:") && !v.contains("${"))
            }
            None => true,
        }
    })
}

/// The files edits start from.
const BASES: [&str; 6] = [
    include_str!("../../config/tokengate.toml"),
    include_str!("../seeds/config/minimal.toml"),
    include_str!("../seeds/config/test-gateway.toml"),
    include_str!("../seeds/config/full.toml"),
    include_str!("../seeds/config/redis.toml"),
    include_str!("../seeds/config/redis-cluster.toml"),
];

/// What values a key takes: a few valid ones and a few that are not.
#[derive(Clone, Copy)]
enum Kind {
    Duration,
    Socket,
    Url,
    Int(i64, i64),
    Bool,
    Text,
    Scopes,
    ClientAuth,
    AuthParams,
    Keys,
    Store,
    RedisUrl,
    RedisCluster,
    Cidrs,
    RoutePath,
    Upstream,
    Policy,
    Resource,
    Methods,
}

const SECTION_KEYS: &[(&str, &str, Kind)] = &[
    ("server", "listen", Kind::Socket),
    ("server", "public_url", Kind::Url),
    ("server", "admin_listen", Kind::Socket),
    ("server", "header_read_timeout", Kind::Duration),
    ("server", "max_header_bytes", Kind::Int(8192, 1 << 20)),
    ("server", "max_headers", Kind::Int(1, 1000)),
    ("server", "shutdown_grace", Kind::Duration),
    ("server", "trusted_proxies", Kind::Cidrs),
    ("server", "max_connections", Kind::Int(1, 10_000_000)),
    ("upstream", "connect_timeout", Kind::Duration),
    ("upstream", "response_timeout", Kind::Duration),
    ("upstream", "pool_idle_timeout", Kind::Duration),
    ("upstream", "read_timeout", Kind::Duration),
    ("oidc", "issuer", Kind::Url),
    ("oidc", "client_id", Kind::Text),
    ("oidc", "client_secret", Kind::Text),
    ("oidc", "client_auth", Kind::ClientAuth),
    ("oidc", "scopes", Kind::Scopes),
    ("oidc", "auth_params", Kind::AuthParams),
    ("oidc", "logout_id_token_hint", Kind::Bool),
    ("oidc", "timeout", Kind::Duration),
    ("oidc", "private_key_id", Kind::Text),
    ("oidc", "dpop", Kind::Bool),
    ("oidc", "par", Kind::Bool),
    ("session", "idle_timeout", Kind::Duration),
    ("session", "absolute_timeout", Kind::Duration),
    ("session", "keys", Kind::Keys),
    ("session", "store", Kind::Store),
    ("session", "redis_url", Kind::RedisUrl),
    ("session", "redis_cluster", Kind::RedisCluster),
    ("session", "cache_capacity", Kind::Int(1, i64::MAX)),
    ("tokens", "refresh_before_expiry", Kind::Duration),
    ("admin", "token", Kind::Text),
];

const ROUTE_KEYS: &[(&str, Kind)] = &[
    ("path", Kind::RoutePath),
    ("upstream", Kind::Upstream),
    ("token", Kind::Policy),
    ("strip_prefix", Kind::Bool),
    ("resource", Kind::Resource),
    ("scopes", Kind::Scopes),
    ("dpop", Kind::Bool),
    ("methods", Kind::Methods),
    ("upstream_http2", Kind::Bool),
];

fn strings(list: &[&str]) -> Vec<toml::Value> {
    list.iter().map(|s| toml::Value::from(*s)).collect()
}

fn pool(kind: Kind) -> Vec<toml::Value> {
    use toml::Value as V;
    match kind {
        Kind::Duration => strings(&["1s", "90s", "15m", "8h", "7d", "2d", "30m", "0s", "soon"]),
        Kind::Socket => strings(&[
            "127.0.0.1:8080",
            "127.0.0.1:9090",
            "0.0.0.0:0",
            "[::1]:8443",
            "localhost:7000",
            "127.0.0.1:0",
            "127.0.0.1",
        ]),
        Kind::Url => strings(&[
            "http://127.0.0.1:8080",
            "https://app.example.com",
            "https://op.example",
            "http://[::1]:9000",
            "https://app.example.com:8443/",
            "http://localhost:9000",
            "https://app.example.com/app",
            "https://u:p@app.example.com",
            "ftp://h",
        ]),
        Kind::Int(lo, hi) => vec![
            V::from(lo),
            V::from(hi),
            V::from(lo.saturating_sub(1)),
            V::from(hi.saturating_add(1)),
            V::from(lo.saturating_add(hi) / 2),
        ],
        Kind::Bool => vec![V::from(true), V::from(false)],
        Kind::Text => strings(&[
            "gateway",
            "s3cret-value",
            "an-admin-token-long-enough",
            "bff-client",
            "${SECRET}",
            "short",
            "${UNSET}",
        ]),
        Kind::Scopes => vec![
            V::Array(strings(&["openid"])),
            V::Array(strings(&["openid", "profile", "offline_access"])),
            V::Array(strings(&["api.read"])),
            V::Array(strings(&["openid", "email"])),
            V::Array(strings(&["openid", "two words"])),
        ],
        Kind::ClientAuth => strings(&[
            "client_secret_basic",
            "client_secret_post",
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth",
            "basic",
        ]),
        Kind::AuthParams => {
            let mut ok = toml::Table::new();
            ok.insert("prompt".into(), V::from("consent"));
            let mut own = toml::Table::new();
            own.insert("state".into(), V::from("x"));
            vec![V::Table(ok), V::Table(own), V::Table(toml::Table::new())]
        }
        Kind::Keys => vec![
            V::Array(strings(&[KEY])),
            V::Array(strings(&[
                "${TOKENGATE_KEY}",
                "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
            ])),
            V::Array(strings(&[
                "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA",
                KEY,
            ])),
            V::Array(strings(&[KEY, KEY])),
            V::Array(strings(&["c2hvcnQ="])),
        ],
        Kind::Store => strings(&[
            "memory", "embedded", "memory", "embedded", "redis", "postgres",
        ]),
        Kind::RedisUrl => strings(&[
            "redis://127.0.0.1:6379",
            "rediss://:pw@redis.internal:6380/0",
            "redis://[::1]:6379/2",
            "http://redis",
        ]),
        Kind::RedisCluster => vec![
            V::Array(strings(&["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])),
            V::Array(strings(&["rediss://a:7000"])),
            V::Array(strings(&["rediss://a:7000", "redis://b:7000"])),
        ],
        Kind::Cidrs => vec![
            V::Array(strings(&["10.0.0.0/8", "::1/128", "192.0.2.7"])),
            V::Array(vec![]),
            V::Array(strings(&["10.0.0.0/33"])),
        ],
        Kind::RoutePath => strings(&[
            "/",
            "/api",
            "/api/",
            "/api/v1",
            "/app/static",
            "/api/v1/",
            "/v2",
            "/bff",
            "//x",
            "/a/../b",
            "api",
        ]),
        Kind::Upstream => strings(&[
            "http://127.0.0.1:9100",
            "https://api.internal/base/",
            "h2c://api.internal:8080",
            "http://[::1]:3000/v1",
            "http://h/?q",
            "ftp://h",
        ]),
        Kind::Policy => strings(&[
            "user",
            "user-optional",
            "client",
            "none",
            "user",
            "none",
            "admin",
        ]),
        Kind::Resource => strings(&["https://api.example.com", "urn:example:api", "not a uri"]),
        Kind::Methods => vec![
            V::Array(strings(&["GET"])),
            V::Array(strings(&["get", "POST", "DELETE"])),
            V::Array(strings(&["PUT", "patch"])),
            V::Array(strings(&["BAD METHOD"])),
        ],
    }
}

/// A value for a key: by its first byte, mostly one from its kind's pool (where valid
/// values outnumber the others), sometimes none (the key removed) or anything at all.
#[derive(Arbitrary, Debug)]
struct NewValue(u8, Free);

#[derive(Arbitrary, Debug)]
enum Free {
    Text(String),
    Int(i64),
    Bool(bool),
    Texts(Vec<String>),
}

impl NewValue {
    fn value(&self, kind: Kind) -> Option<toml::Value> {
        match (self.0, &self.1) {
            (0..=199, _) => {
                let p = pool(kind);
                Some(p[usize::from(self.0) % p.len()].clone())
            }
            (200..=219, _) => None,
            (_, Free::Text(s)) => Some(toml::Value::from(s.as_str())),
            (_, Free::Int(i)) => Some(toml::Value::from(*i)),
            (_, Free::Bool(b)) => Some(toml::Value::from(*b)),
            (_, Free::Texts(list)) => Some(toml::Value::Array(
                list.iter().map(|s| toml::Value::from(s.as_str())).collect(),
            )),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Edit {
    Key(u8, NewValue),
    RouteKey(u8, u8, NewValue),
    AddRoute(u8, u8, u8),
    RemoveRoute(u8),
}

fn set(table: &mut toml::Table, key: &str, value: Option<toml::Value>) {
    match value {
        Some(v) => table.insert(key.to_owned(), v),
        None => table.remove(key),
    };
}

/// One of the base files with `edits` applied, as TOML text.
fn edited(u: &mut Unstructured<'_>) -> arbitrary::Result<String> {
    let base = BASES[usize::from(u8::arbitrary(u)?) % BASES.len()];
    let mut doc: toml::Table = toml::from_str(base).expect("a base parses");
    for edit in Vec::<Edit>::arbitrary(u)? {
        match edit {
            Edit::Key(k, v) => {
                let (section, key, kind) = SECTION_KEYS[usize::from(k) % SECTION_KEYS.len()];
                let table = doc
                    .entry(section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(t) = table {
                    set(t, key, v.value(kind));
                }
            }
            Edit::RouteKey(r, k, v) => {
                let (key, kind) = ROUTE_KEYS[usize::from(k) % ROUTE_KEYS.len()];
                if let Some(toml::Value::Array(routes)) = doc.get_mut("route") {
                    if !routes.is_empty() {
                        let n = routes.len();
                        if let toml::Value::Table(t) = &mut routes[usize::from(r) % n] {
                            set(t, key, v.value(kind));
                        }
                    }
                }
            }
            Edit::AddRoute(path, upstream, token) => {
                let pick = |kind, i: u8| {
                    let p = pool(kind);
                    p[usize::from(i) % p.len()].clone()
                };
                let mut t = toml::Table::new();
                t.insert("path".into(), pick(Kind::RoutePath, path));
                t.insert("upstream".into(), pick(Kind::Upstream, upstream));
                t.insert("token".into(), pick(Kind::Policy, token));
                if let toml::Value::Array(routes) = doc
                    .entry("route")
                    .or_insert_with(|| toml::Value::Array(Vec::new()))
                {
                    routes.push(toml::Value::Table(t));
                }
            }
            Edit::RemoveRoute(r) => {
                if let Some(toml::Value::Array(routes)) = doc.get_mut("route") {
                    if !routes.is_empty() {
                        let n = routes.len();
                        routes.remove(usize::from(r) % n);
                    }
                }
            }
        }
    }
    Ok(toml::to_string(&doc).unwrap_or_default())
}

fn check_accepted(c: &Config) {
    // Routes.
    assert!(!c.routes.is_empty());
    for (i, r) in c.routes.iter().enumerate() {
        let p = &r.path;
        assert!(p.starts_with('/'), "{p:?}");
        assert!(p == "/" || !p.ends_with('/'), "{p:?} not normalised");
        assert!(!p.contains("//") && !p.contains(['?', '#']), "{p:?}");
        assert!(!p.split('/').any(|s| s == "." || s == ".."), "{p:?}");
        assert!(
            p != "/bff" && !p.starts_with("/bff/"),
            "{p:?} is the gateway's"
        );
        assert!(
            c.routes[..i].iter().all(|o| &o.path != p),
            "{p:?} appears twice"
        );
        assert!(matches!(r.upstream.scheme_str(), Some("http" | "https")));
        assert!(r.upstream.host().is_some_and(|h| !h.is_empty()));
        assert!(r.upstream.query().is_none());
        assert!(r.scope.is_none() || r.token == TokenPolicy::Client);
        assert!(r.resource.is_none() || r.token != TokenPolicy::None);
        assert!(r.methods.as_ref().is_none_or(|m| !m.is_empty()));
    }
    let routes: Vec<Route> = c
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| Route::from_config(i, r).expect("an accepted route builds"))
        .collect();
    let table = RouteTable::new(routes);
    for (i, r) in c.routes.iter().enumerate() {
        let found = table.find(&r.path).expect("a route's own path routes");
        assert_eq!(found.index, i, "{:?} routes elsewhere", r.path);
    }

    // Server.
    let s = &c.server;
    let u = &s.public_url;
    assert!(matches!(u.scheme(), "http" | "https") && u.host().is_some());
    assert_eq!(u.path(), "/");
    assert!(u.query().is_none() && u.fragment().is_none());
    assert!(u.username().is_empty() && u.password().is_none());
    assert_eq!(s.public_origin, u.origin().ascii_serialization());
    assert_eq!(s.secure_cookies, u.scheme() == "https");
    assert!(s.listen != s.admin_listen || s.listen.port() == 0);
    assert!((8192..=1 << 20).contains(&s.max_header_bytes));
    assert!((1..=1000).contains(&s.max_headers));
    assert!(!s.header_read_timeout.is_zero());
    assert!(s.header_read_timeout.as_secs() <= 86_400);
    assert!(!s.shutdown_grace.is_zero());
    let up = &c.upstream;
    for d in [
        up.connect_timeout,
        up.response_timeout,
        up.pool_idle_timeout,
    ] {
        assert!(!d.is_zero());
    }

    // Provider.
    let o = &c.oidc;
    let issuer = url::Url::parse(&o.issuer).expect("issuer is a URL");
    assert!(matches!(issuer.scheme(), "http" | "https"));
    assert!(!o.client_id.is_empty());
    assert!(o.scopes.iter().any(|s| s == "openid"));
    assert!(o
        .scopes
        .iter()
        .all(|s| !s.is_empty() && !s.contains(char::is_whitespace)));
    for (k, _) in &o.auth_params {
        assert!(
            ![
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "nonce",
                "code_challenge",
                "code_challenge_method"
            ]
            .contains(&k.as_str()),
            "{k} is the gateway's"
        );
    }
    match o.client_auth {
        ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost => {
            assert!(o
                .client_secret
                .as_ref()
                .is_some_and(|s| !s.secret().is_empty()));
        }
        ClientAuth::PrivateKeyJwt => assert!(o.private_key.is_some()),
        ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth => {
            assert!(o.tls.identity.is_some());
        }
    }
    assert!(o.private_key.is_none() || o.client_auth == ClientAuth::PrivateKeyJwt);
    assert!(o.private_key_id.is_none() || o.private_key.is_some());
    assert!(!o.timeout.is_zero());

    // Sessions.
    let se = &c.session;
    assert!(!se.keys.is_empty());
    for (i, k) in se.keys.iter().enumerate() {
        assert!(!se.keys[..i].contains(k), "a key appears twice");
    }
    assert!(KeyRing::new(&se.keys).is_some());
    assert!(!se.idle_timeout.is_zero());
    assert!(se.idle_timeout <= se.absolute_timeout);
    assert!(se.cache_capacity >= 1);
    assert!(se.redis_url.is_none() || se.redis_cluster.is_empty());
    if se.store == StoreKind::Redis {
        assert!(se.redis_url.is_some() || !se.redis_cluster.is_empty());
    }
    for url in se.redis_url.iter().chain(&se.redis_cluster) {
        let u = url::Url::parse(url).expect("a redis URL");
        assert!(matches!(u.scheme(), "redis" | "rediss"));
    }
    assert!(!c.tokens.refresh_before_expiry.is_zero());
    assert!(c
        .admin
        .token
        .as_ref()
        .is_none_or(|t| t.secret().len() >= 16));
}

fuzz_target!(|data: &[u8]| {
    common::input("config", LABELS, data);
    let owned;
    let text = match data.split_first() {
        Some((0xff, rest)) => {
            let Ok(text) = edited(&mut Unstructured::new(rest)) else {
                return;
            };
            owned = text;
            owned.as_str()
        }
        _ => match std::str::from_utf8(data) {
            Ok(text) => text,
            Err(_) => return,
        },
    };
    let Ok(toml) = toml::from_str::<toml::Value>(text) else {
        // Not TOML: refused with a problem, before anything is looked up.
        let e = Config::from_toml_str_with_env(text, &env).expect_err("not TOML");
        assert!(!e.problems.is_empty());
        return;
    };
    if !offline(text, &toml) {
        return;
    }
    common::hit(0);
    match Config::from_toml_str_with_env(text, &env) {
        Ok(config) => {
            common::hit(1);
            check_accepted(&config);
        }
        Err(e) => {
            if std::env::var_os("TOKENGATE_FUZZ_DEBUG").is_some() {
                eprintln!("refused: {e}");
            }
            assert!(!e.problems.is_empty());
            for p in &e.problems {
                assert!(!p.message.is_empty(), "{p:?}");
                // Under a section, or under a key the file has (`${VAR}` in an unknown
                // key is reported where it is).
                let section = p.path.split(['.', '[']).next().unwrap_or_default();
                assert!(
                    ["", "server", "upstream", "oidc", "session", "tokens", "admin", "route"]
                        .contains(&section)
                        || toml.get(section).is_some(),
                    "{p:?}"
                );
            }
        }
    }
});
