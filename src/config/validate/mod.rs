//! Raw configuration → [`Config`], collecting every problem with its key path (habit 5):
//! an operator fixes a file in one pass, not one error per restart.
//!
//! One function per section reads its raw form and reports through the same [`Checker`];
//! [`validate`] calls them in file order, so problems come out in the order they always
//! have. The larger sections have files of their own.

mod oidc;
mod route;
mod server;
mod session;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::raw::{RawAdmin, RawConfig, RawLog, RawTelemetry, RawTokens, RawUpstream};
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

    // `[forward_auth]` is read between the server's listeners and the rest of `[server]`,
    // where its checks against both listeners have always reported.
    let (listen, admin_listen) = server::listeners(&mut c, &raw.server);
    let forward_auth = raw
        .forward_auth
        .as_ref()
        .map(|f| server::forward_auth(&mut c, f, listen, admin_listen));
    let server = server::server(&mut c, &raw.server, listen, admin_listen);
    let upstream = upstream(&mut c, &raw.upstream);
    let oidc = oidc::oidc(&mut c, &raw.oidc);
    let session = session::session(&mut c, &raw.session);
    let tokens = tokens(&mut c, &raw.tokens);
    let admin = admin(&mut c, &raw.admin);
    let telemetry = telemetry(&mut c, &raw.telemetry);
    let log = log_config(&mut c, &raw.log);
    let routes = route::routes(&mut c, &raw.route);

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let server = server.ok_or_else(|| vec![Problem::new("server.public_url", "invalid")])?;
    Ok(Config {
        server,
        upstream,
        oidc,
        session,
        tokens,
        admin,
        log,
        forward_auth,
        routes,
        telemetry,
    })
}

/// `[upstream]`: timeouts towards the upstreams, and extra trust roots for `https://` ones.
fn upstream(c: &mut Checker, u: &RawUpstream) -> UpstreamConfig {
    UpstreamConfig {
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
            .map(|path| super::client_security::certificates(c, "upstream.tls_ca", path))
            .unwrap_or_default(),
    }
}

/// `[tokens]`: how long before its expiry an access token is refreshed.
fn tokens(c: &mut Checker, t: &RawTokens) -> TokensConfig {
    let refresh_before_expiry = c.duration(
        "tokens.refresh_before_expiry",
        t.refresh_before_expiry.as_deref(),
        "60s",
    );
    TokensConfig {
        refresh_before_expiry,
    }
}

/// `[admin]`: the admin API's bearer token (at least 16 characters; none: the API is off).
fn admin(c: &mut Checker, a: &RawAdmin) -> AdminConfig {
    let admin_token = a.token.clone().map(Secret::new);
    if admin_token.as_ref().is_some_and(|t| t.secret().len() < 16) {
        c.fail("admin.token", "must be at least 16 characters");
    }
    AdminConfig { token: admin_token }
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
