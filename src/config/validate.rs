//! Raw configuration → [`Config`], collecting every problem with its key path (habit 5):
//! an operator fixes a file in one pass, not one error per restart.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawConfig, RawLog, RawRoute, RawSession, RawTelemetry};
use super::*;

/// One thing wrong with the configuration, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path such as `route[1].upstream`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Collects problems while values are checked; each check returns a usable default so
/// validation carries on past a mistake.
#[derive(Default)]
pub(super) struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    pub(super) fn fail(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn duration(&mut self, path: &str, value: Option<&str>, default: &str) -> Duration {
        let text = value.unwrap_or(default);
        match humantime::parse_duration(text) {
            Ok(d) if d > Duration::ZERO => d,
            Ok(_) => {
                self.fail(path, "must be longer than zero");
                Duration::from_secs(1)
            }
            Err(_) => {
                self.fail(
                    path,
                    format!(
                        "invalid duration {text:?} (use e.g. \"90s\", \"15m\", \"8h\", \"7d\")"
                    ),
                );
                Duration::from_secs(1)
            }
        }
    }

    fn socket(&mut self, path: &str, value: Option<&str>, default: &str) -> SocketAddr {
        let text = value.unwrap_or(default);
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return addr;
        }
        if let Some(port) = text.strip_prefix("localhost:") {
            if let Ok(port) = port.parse::<u16>() {
                return SocketAddr::from(([127, 0, 0, 1], port));
            }
        }
        // Host names resolve at start; a name that does not resolve is a mistake now.
        match text.to_socket_addrs().map(|mut it| it.next()) {
            Ok(Some(addr)) if text.contains(':') => addr,
            _ => {
                self.fail(
                    path,
                    format!("invalid address {text:?} (use ip:port, e.g. \"127.0.0.1:8080\")"),
                );
                SocketAddr::from(([127, 0, 0, 1], 0))
            }
        }
    }

    /// A provider endpoint: an absolute http(s) URL. A query is allowed (RFC 6749 §3.1
    /// lets an endpoint carry one; the gateway adds its parameters to it), a fragment is not.
    fn endpoint_url(&mut self, path: &str, text: &str) -> Option<url::Url> {
        self.absolute_url(path, text, true)
    }

    fn int(&mut self, path: &str, value: Option<i64>, default: i64, min: i64, max: i64) -> i64 {
        let v = value.unwrap_or(default);
        if v < min || v > max {
            self.fail(path, format!("must be between {min} and {max} (got {v})"));
            return default;
        }
        v
    }

    fn http_url(&mut self, path: &str, text: &str) -> Option<url::Url> {
        self.absolute_url(path, text, false)
    }

    /// An absolute `http(s)` URL without a fragment, and without a query unless `query`.
    fn absolute_url(&mut self, path: &str, text: &str, query: bool) -> Option<url::Url> {
        match url::Url::parse(text) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if u.fragment().is_some() || (!query && u.query().is_some()) {
                    let what = if query {
                        "a fragment"
                    } else {
                        "a query or fragment"
                    };
                    self.fail(path, format!("{text:?} must not have {what}"));
                    None
                } else {
                    Some(u)
                }
            }
            _ => {
                self.fail(
                    path,
                    format!("invalid URL {text:?} (an absolute http:// or https:// URL)"),
                );
                None
            }
        }
    }
}

pub fn validate(raw: RawConfig) -> Result<Config, Vec<Problem>> {
    let mut c = Checker::default();

    // === [server]
    let s = &raw.server;
    let listen = c.socket("server.listen", s.listen.as_deref(), "127.0.0.1:8080");
    let admin_listen = c.socket(
        "server.admin_listen",
        s.admin_listen.as_deref(),
        "127.0.0.1:9090",
    );
    if listen == admin_listen && listen.port() != 0 {
        c.fail("server.admin_listen", "must differ from server.listen");
    }
    let forward_auth = raw.forward_auth.as_ref().map(|f| {
        let Some(text) = f.listen.as_deref() else {
            c.fail(
                "forward_auth.listen",
                "is required (e.g. \"127.0.0.1:8070\")",
            );
            return ForwardAuthConfig { listen };
        };
        let at = c.socket("forward_auth.listen", Some(text), text);
        // Its answers carry tokens: sharing a port with the public side would serve them
        // to browsers.
        for (other, key) in [
            (listen, "server.listen"),
            (admin_listen, "server.admin_listen"),
        ] {
            if at == other && at.port() != 0 {
                c.fail("forward_auth.listen", format!("must differ from {key}"));
            }
        }
        ForwardAuthConfig { listen: at }
    });
    let default_public = format!("http://{listen}");
    let public_text = s.public_url.clone().unwrap_or(default_public);
    let public_url = c.http_url("server.public_url", &public_text);
    if let Some(u) = &public_url {
        if u.path() != "/" {
            c.fail(
                "server.public_url",
                format!("{public_text:?} must be an origin without a path"),
            );
        }
        if !u.username().is_empty() || u.password().is_some() {
            c.fail("server.public_url", "must not carry credentials");
        }
    }
    let tls = s.tls.as_ref().map(|t| {
        for (key, file) in [("server.tls.cert", &t.cert), ("server.tls.key", &t.key)] {
            if std::fs::metadata(file).is_err() {
                c.fail(key, format!("cannot read file {file:?}"));
            }
        }
        TlsFiles {
            cert: PathBuf::from(&t.cert),
            key: PathBuf::from(&t.key),
        }
    });
    let mut header_read_timeout = c.duration(
        "server.header_read_timeout",
        s.header_read_timeout.as_deref(),
        "10s",
    );
    // hyper adds it to the clock for every request head: a limit past what an `Instant`
    // can hold would fail every connection rather than be no limit.
    if header_read_timeout > Duration::from_secs(86_400) {
        c.fail("server.header_read_timeout", "must be at most 1 day");
        header_read_timeout = Duration::from_secs(86_400);
    }
    let max_header_bytes = c.int(
        "server.max_header_bytes",
        s.max_header_bytes,
        16384,
        8192,
        1 << 20,
    ) as usize;
    let max_headers = c.int("server.max_headers", s.max_headers, 100, 1, 1000) as usize;
    let shutdown_grace = c.duration("server.shutdown_grace", s.shutdown_grace.as_deref(), "10s");
    let trusted_proxies = s
        .trusted_proxies
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| match parse_cidr(text) {
            Some(net) => Some(net),
            None => {
                c.fail(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("{text:?} is not an address or CIDR block (e.g. \"10.0.0.0/8\")"),
                );
                None
            }
        })
        .collect();
    let max_connections = c.int(
        "server.max_connections",
        s.max_connections,
        10_000,
        1,
        10_000_000,
    ) as usize;
    let workers = s
        .workers
        .map(|n| c.int("server.workers", Some(n), 1, 1, 1024) as usize);

    // === [upstream]
    let u = &raw.upstream;
    let upstream = UpstreamConfig {
        connect_timeout: c.duration(
            "upstream.connect_timeout",
            u.connect_timeout.as_deref(),
            "5s",
        ),
        response_timeout: c.duration(
            "upstream.response_timeout",
            u.response_timeout.as_deref(),
            "30s",
        ),
        pool_idle_timeout: c.duration(
            "upstream.pool_idle_timeout",
            u.pool_idle_timeout.as_deref(),
            "90s",
        ),
        read_timeout: c.duration("upstream.read_timeout", u.read_timeout.as_deref(), "60s"),
        extra_roots: u
            .tls_ca
            .as_deref()
            .map(|path| super::client_security::certificates(&mut c, "upstream.tls_ca", path))
            .unwrap_or_default(),
    };

    // === [oidc]
    let o = &raw.oidc;
    let issuer = match &o.issuer {
        Some(i) => {
            c.http_url("oidc.issuer", i);
            i.clone()
        }
        None => {
            c.fail("oidc.issuer", "is required (the provider's issuer URL)");
            String::new()
        }
    };
    let client_id = match o.client_id.as_deref() {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => {
            c.fail("oidc.client_id", "is required");
            String::new()
        }
    };
    let security = super::client_security::check(&mut c, o);
    let default_scopes = ["openid", "profile", "email", "offline_access"];
    let scopes = o
        .scopes
        .clone()
        .unwrap_or_else(|| default_scopes.iter().map(|s| (*s).to_owned()).collect());
    if !scopes.iter().any(|s| s == "openid") {
        c.fail("oidc.scopes", "must include \"openid\"");
    }
    for (i, scope) in scopes.iter().enumerate() {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            c.fail(
                &format!("oidc.scopes[{i}]"),
                format!("invalid scope {scope:?}"),
            );
        }
    }
    const OWN_PARAMS: [&str; 8] = [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
    ];
    let auth_params: Vec<(String, String)> = o
        .auth_params
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (k, _) in &auth_params {
        if OWN_PARAMS.contains(&k.as_str()) {
            c.fail(
                &format!("oidc.auth_params.{k}"),
                "is set by the gateway itself",
            );
        }
    }

    if o.userinfo == Some(true) && o.dpop == Some(true) {
        c.fail(
            "oidc.userinfo",
            "cannot be used with oidc.dpop (the userinfo call would need a DPoP proof)",
        );
    }

    let endpoints: Vec<(ProviderEndpoint, url::Url)> = [
        (ProviderEndpoint::Authorization, &o.authorization_endpoint),
        (ProviderEndpoint::Token, &o.token_endpoint),
        (ProviderEndpoint::Jwks, &o.jwks_uri),
        (ProviderEndpoint::Revocation, &o.revocation_endpoint),
        (ProviderEndpoint::EndSession, &o.end_session_endpoint),
        (
            ProviderEndpoint::PushedAuthorizationRequest,
            &o.pushed_authorization_request_endpoint,
        ),
        (ProviderEndpoint::Userinfo, &o.userinfo_endpoint),
    ]
    .into_iter()
    .filter_map(|(which, text)| {
        let url = c.endpoint_url(&format!("oidc.{}", which.key()), text.as_deref()?)?;
        Some((which, url))
    })
    .collect();

    // === [session]
    let se = &raw.session;
    let idle_timeout = c.duration("session.idle_timeout", se.idle_timeout.as_deref(), "8h");
    let absolute_timeout = c.duration(
        "session.absolute_timeout",
        se.absolute_timeout.as_deref(),
        "7d",
    );
    if idle_timeout > absolute_timeout {
        c.fail(
            "session.idle_timeout",
            "must not be longer than session.absolute_timeout",
        );
    }
    let keys = session_keys(&mut c, se.keys.as_deref());
    let store = match se.store.as_deref().unwrap_or("embedded") {
        "memory" => StoreKind::Memory,
        "embedded" => StoreKind::Embedded,
        "redis" => StoreKind::Redis,
        other => {
            c.fail(
                "session.store",
                format!("unknown store {other:?} (memory, embedded or redis)"),
            );
            StoreKind::Memory
        }
    };
    redis_target(&mut c, se, store);
    let device_binding = match se.device_binding.as_deref().unwrap_or("optional") {
        "off" => DeviceBinding::Off,
        "optional" => DeviceBinding::Optional,
        "required" => DeviceBinding::Required,
        other => {
            c.fail(
                "session.device_binding",
                format!("unknown value {other:?} (off, optional or required)"),
            );
            DeviceBinding::Optional
        }
    };
    let bound_cookie_lifetime = c.duration(
        "session.bound_cookie_lifetime",
        se.bound_cookie_lifetime.as_deref(),
        "5m",
    );
    if bound_cookie_lifetime < Duration::from_secs(1) {
        c.fail("session.bound_cookie_lifetime", "must be at least 1s");
    }
    let cache_capacity = c.int(
        "session.cache_capacity",
        se.cache_capacity,
        100_000,
        1,
        i64::MAX,
    ) as u64;

    // === [tokens], [admin]
    let refresh_before_expiry = c.duration(
        "tokens.refresh_before_expiry",
        raw.tokens.refresh_before_expiry.as_deref(),
        "60s",
    );
    let admin_token = raw.admin.token.clone().map(Secret::new);
    if admin_token.as_ref().is_some_and(|t| t.secret().len() < 16) {
        c.fail("admin.token", "must be at least 16 characters");
    }

    let telemetry = telemetry(&mut c, &raw.telemetry);

    // === [log]
    let log = log_config(&mut c, &raw.log);

    // === [[route]]
    if raw.route.is_empty() {
        c.fail("route", "at least one [[route]] is required");
    }
    let routes: Vec<RouteConfig> = raw
        .route
        .iter()
        .enumerate()
        .map(|(i, r)| route(&mut c, i, r))
        .collect();
    for (i, a) in routes.iter().enumerate() {
        if let Some(j) = routes[..i].iter().position(|b| b.path == a.path) {
            c.fail(
                &format!("route[{i}].path"),
                format!("{:?} is also route[{j}].path", a.path),
            );
        }
    }

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let public_url =
        public_url.ok_or_else(|| vec![Problem::new("server.public_url", "invalid")])?;
    Ok(Config {
        server: ServerConfig {
            listen,
            public_origin: public_url.origin().ascii_serialization(),
            secure_cookies: public_url.scheme() == "https",
            public_url,
            admin_listen,
            tls,
            header_read_timeout,
            max_header_bytes,
            max_headers,
            shutdown_grace,
            trusted_proxies,
            max_connections,
            workers,
        },
        upstream,
        oidc: OidcConfig {
            issuer,
            client_id,
            client_secret: security.client_secret,
            client_auth: security.client_auth,
            private_key: security.private_key,
            private_key_id: security.private_key_id,
            tls: security.tls,
            dpop: o.dpop.unwrap_or(false),
            par: o.par.unwrap_or(false),
            userinfo: o.userinfo.unwrap_or(false),
            scopes,
            auth_params,
            logout_id_token_hint: o.logout_id_token_hint.unwrap_or(false),
            timeout: c.duration("oidc.timeout", o.timeout.as_deref(), "10s"),
            endpoints,
        },
        session: SessionConfig {
            idle_timeout,
            absolute_timeout,
            keys,
            store,
            path: PathBuf::from(se.path.as_deref().unwrap_or("data/sessions")),
            redis_url: se.redis_url.clone(),
            redis_cluster: se.redis_cluster.clone().unwrap_or_default(),
            cache_capacity,
            device_binding,
            bound_cookie_lifetime,
        },
        tokens: TokensConfig {
            refresh_before_expiry,
        },
        admin: AdminConfig { token: admin_token },
        log,
        forward_auth,
        routes,
        telemetry,
    })
}

/// `[telemetry]`: the OTLP/HTTP base URL (its traces path added, as the
/// `OTEL_EXPORTER_OTLP_ENDPOINT` convention has it), the sampling ratio, the service name.
fn telemetry(c: &mut Checker, t: &RawTelemetry) -> TelemetryConfig {
    let traces_url = t.otlp_endpoint.as_deref().and_then(|text| {
        let url = c.http_url("telemetry.otlp_endpoint", text)?;
        let base = url.as_str().trim_end_matches('/');
        Some(format!("{base}/v1/traces"))
    });
    let sample_ratio = match t.sample_ratio {
        None => 1.0,
        Some(r) if (0.0..=1.0).contains(&r) => r,
        Some(r) => {
            c.fail(
                "telemetry.sample_ratio",
                format!("must be between 0.0 and 1.0 (got {r})"),
            );
            1.0
        }
    };
    let service_name = match t.service_name.as_deref().map(str::trim) {
        None => "tokengate".to_owned(),
        Some("") => {
            c.fail("telemetry.service_name", "must not be empty");
            "tokengate".to_owned()
        }
        Some(name) => name.to_owned(),
    };
    let export_delay = t
        .export_delay
        .as_deref()
        .map(|d| c.duration("telemetry.export_delay", Some(d), "5s"));
    TelemetryConfig {
        traces_url,
        sample_ratio,
        service_name,
        export_delay,
    }
}

/// `[log]`: the access log switch, and level directives checked as `logging::set_level`
/// will read them, so a typo is a problem with its key path rather than a surprise at
/// start (or a refused reload).
fn log_config(c: &mut Checker, l: &RawLog) -> LogConfig {
    let level = l.level.as_ref().map(|text| {
        if let Err(e) = crate::logging::parse_level(text) {
            c.fail("log.level", e);
        }
        text.trim().to_owned()
    });
    LogConfig {
        access: l.access.unwrap_or(false),
        level,
    }
}

/// `session.redis_url` (standalone) or `session.redis_cluster` (seed nodes), never both;
/// one of them when the store is Redis. Every URL `redis://` or `rediss://`, a cluster's
/// all with the same scheme (TLS is all or nothing).
fn redis_target(c: &mut Checker, se: &RawSession, store: StoreKind) {
    let scheme = |url: &str| {
        url::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "redis" | "rediss") && u.host().is_some())
            .map(|u| u.scheme().to_owned())
    };
    if let Some(url) = &se.redis_url {
        if scheme(url).is_none() {
            c.fail("session.redis_url", "must be a redis:// or rediss:// URL");
        }
    }
    match (&se.redis_url, &se.redis_cluster) {
        (Some(_), Some(_)) => c.fail(
            "session.redis_cluster",
            "set either session.redis_url (standalone) or session.redis_cluster, not both",
        ),
        (None, None) if store == StoreKind::Redis => c.fail(
            "session.redis_url",
            "is required when session.store is \"redis\" (or list the nodes of a cluster in session.redis_cluster)",
        ),
        _ => {}
    }
    let Some(nodes) = &se.redis_cluster else {
        return;
    };
    if nodes.is_empty() {
        c.fail("session.redis_cluster", "must list at least one node URL");
    }
    let mut first: Option<String> = None;
    for (i, url) in nodes.iter().enumerate() {
        let at = format!("session.redis_cluster[{i}]");
        match (scheme(url), &first) {
            (None, _) => c.fail(&at, "must be a redis:// or rediss:// URL"),
            (Some(s), Some(f)) if &s != f => c.fail(
                &at,
                format!("is {s}:// but session.redis_cluster[0] is {f}://; use one scheme for every node"),
            ),
            (Some(s), None) => first = Some(s),
            _ => {}
        }
    }
}

fn session_keys(c: &mut Checker, keys: Option<&[String]>) -> Vec<[u8; 32]> {
    use base64::Engine;
    let Some(keys) = keys.filter(|k| !k.is_empty()) else {
        c.fail(
            "session.keys",
            "at least one key is required; make one with \"tokengate keygen\"",
        );
        return Vec::new();
    };
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let mut out: Vec<[u8; 32]> = Vec::new();
    for (i, text) in keys.iter().enumerate() {
        let path = format!("session.keys[{i}]");
        // The key itself is never echoed in a message.
        let decoded = engines.iter().find_map(|e| e.decode(text.trim()).ok());
        match decoded {
            Some(bytes) if bytes.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&bytes);
                if out.contains(&k) {
                    c.fail(&path, "duplicates an earlier key");
                }
                out.push(k);
            }
            Some(bytes) => c.fail(
                &path,
                format!(
                    "must be 32 bytes of base64 (got {} bytes); make one with \"tokengate keygen\"",
                    bytes.len()
                ),
            ),
            None => c.fail(&path, "is not base64; make one with \"tokengate keygen\""),
        }
    }
    out
}

fn route(c: &mut Checker, i: usize, r: &RawRoute) -> RouteConfig {
    let at = |key: &str| format!("route[{i}].{key}");
    let path = match r.path.as_deref() {
        Some(p) => {
            let bad = !p.starts_with('/')
                || p.contains(['?', '#'])
                || p.contains("//")
                || p.split('/').any(|seg| seg == "." || seg == "..");
            if bad {
                c.fail(&at("path"), format!("invalid path {p:?} (e.g. \"/api\")"));
            }
            let norm = if p.len() > 1 {
                p.trim_end_matches('/')
            } else {
                p
            };
            if norm == "/bff" || norm.starts_with("/bff/") {
                c.fail(
                    &at("path"),
                    "/bff is reserved for the gateway's own endpoints",
                );
            }
            norm.to_owned()
        }
        None => {
            c.fail(&at("path"), "is required");
            "/".to_owned()
        }
    };
    // `h2c://` is HTTP/2 with prior knowledge over plain TCP: kept as `http://` with the
    // route's `http2` set, so the connectors see only schemes they know.
    let h2c = r
        .upstream
        .as_deref()
        .and_then(|t| t.strip_prefix("h2c://"))
        .map(|rest| format!("http://{rest}"));
    let upstream = match h2c.as_deref().or(r.upstream.as_deref()) {
        Some(text) => match text.parse::<http::Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https"))
                    && u.host().is_some_and(|h| !h.is_empty()) =>
            {
                if u.query().is_some() {
                    c.fail(&at("upstream"), format!("{text:?} must not have a query"));
                }
                u
            }
            _ => {
                c.fail(&at("upstream"), format!("invalid URL {text:?}"));
                http::Uri::from_static("http://invalid")
            }
        },
        None => {
            c.fail(&at("upstream"), "is required");
            http::Uri::from_static("http://invalid")
        }
    };
    let token = match r.token.as_deref() {
        Some("user") => TokenPolicy::User,
        Some("user-optional") => TokenPolicy::UserOptional,
        Some("client") => TokenPolicy::Client,
        Some("none") => TokenPolicy::None,
        Some(other) => {
            c.fail(
                &at("token"),
                format!("unknown policy {other:?} (user, user-optional, client or none)"),
            );
            TokenPolicy::None
        }
        None => {
            c.fail(
                &at("token"),
                "is required (user, user-optional, client or none)",
            );
            TokenPolicy::None
        }
    };
    let resource = r.resource.clone();
    if let Some(res) = &resource {
        if url::Url::parse(res).is_err() {
            c.fail(&at("resource"), format!("invalid URI {res:?}"));
        }
    }
    let scope = r.scopes.as_ref().map(|scopes| {
        if token != TokenPolicy::Client {
            c.fail(
                &at("scopes"),
                "applies to token = \"client\" routes only (user routes use oidc.scopes)",
            );
        }
        for (j, s) in scopes.iter().enumerate() {
            if s.is_empty() || s.contains(char::is_whitespace) {
                c.fail(
                    &format!("route[{i}].scopes[{j}]"),
                    format!("invalid scope {s:?}"),
                );
            }
        }
        scopes.join(" ")
    });
    if resource.is_some() && token == TokenPolicy::None {
        c.fail(&at("resource"), "a token = \"none\" route carries no token");
    }
    let methods = r.methods.as_ref().map(|ms| {
        if ms.is_empty() {
            c.fail(
                &at("methods"),
                "must not be empty (leave it out to allow every method)",
            );
        }
        ms.iter()
            .enumerate()
            .filter_map(|(j, m)| {
                match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => Some(m),
                    Err(_) => {
                        c.fail(
                            &format!("route[{i}].methods[{j}]"),
                            format!("invalid method {m:?}"),
                        );
                        None
                    }
                }
            })
            .collect()
    });
    let (require, step_up) = access(c, i, r, token);
    let websocket = r.websocket.unwrap_or(false);
    if websocket && token == TokenPolicy::None {
        c.fail(
            &at("websocket"),
            "applies to token routes (a token = \"none\" route tunnels upgrades as they come)",
        );
    }
    RouteConfig {
        path,
        upstream,
        token,
        strip_prefix: r.strip_prefix.unwrap_or(false),
        resource,
        scope,
        dpop: r.dpop.unwrap_or(true),
        methods,
        http2: h2c.is_some() || r.upstream_http2.unwrap_or(false),
        require,
        step_up,
        websocket,
    }
}

/// A route's `require`, `acr` and `max_age`: rules about the user, so `token = "user"`
/// routes only (on any other a request without a session would pass them by).
fn access(c: &mut Checker, i: usize, r: &RawRoute, token: TokenPolicy) -> (Vec<ClaimRule>, StepUp) {
    let at = |key: &str| format!("route[{i}].{key}");
    for (key, set) in [
        ("require", r.require.is_some()),
        ("acr", r.acr.is_some()),
        ("max_age", r.max_age.is_some()),
    ] {
        if set && token != TokenPolicy::User {
            c.fail(&at(key), "applies to token = \"user\" routes only");
        }
    }
    let mut require = Vec::new();
    for (claim, values) in r.require.iter().flatten() {
        let path = format!("route[{i}].require.{claim}");
        if values.is_empty() {
            c.fail(&path, "must list at least one value");
        }
        let mut scalars = Vec::with_capacity(values.len());
        for (j, v) in values.iter().enumerate() {
            match v {
                toml::Value::String(s) => scalars.push(serde_json::Value::from(s.clone())),
                toml::Value::Boolean(b) => scalars.push(serde_json::Value::from(*b)),
                toml::Value::Integer(n) => scalars.push(serde_json::Value::from(*n)),
                _ => c.fail(
                    &format!("{path}[{j}]"),
                    "must be a string, a boolean or an integer",
                ),
            }
        }
        require.push(ClaimRule {
            claim: claim.clone(),
            values: scalars,
        });
    }
    let acr = r.acr.as_ref().map(|values| {
        if values.is_empty() {
            c.fail(&at("acr"), "must list at least one value");
        }
        for (j, v) in values.iter().enumerate() {
            if !crate::oidc::params::is_acr_value(v) {
                c.fail(
                    &format!("route[{i}].acr[{j}]"),
                    format!("invalid acr value {v:?} (printable ASCII, no spaces or quotes)"),
                );
            }
        }
        values.clone()
    });
    let max_age = r
        .max_age
        .as_deref()
        .map(|text| c.duration(&at("max_age"), Some(text), text));
    (require, StepUp { acr, max_age })
}

/// `10.0.0.0/8`, `::1/128`, or a bare address (one host).
fn parse_cidr(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}
