//! Configuration: a validated [`Config`] built from TOML.
//!
//! Loading goes in two steps (habit 5 of STYLE.md): `raw` mirrors the TOML with serde
//! (`deny_unknown_fields`, `${VAR}` expansion), then `validate` turns the raw form into the
//! typed [`Config`], collecting *every* problem with its key path instead of stopping at the
//! first. Everything the request path needs (parsed URIs, origins, durations, keys) is
//! computed here once, so no request parses configuration.

mod client_security;
mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::crypto::signing::SigningKey;

pub use validate::Problem;

/// The whole validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub oidc: OidcConfig,
    pub session: SessionConfig,
    pub tokens: TokensConfig,
    pub admin: AdminConfig,
    pub log: LogConfig,
    /// `[forward_auth]`; `None`: no forward-auth listener.
    pub forward_auth: Option<ForwardAuthConfig>,
    /// In file order; the route table sorts them for matching.
    pub routes: Vec<RouteConfig>,
    pub telemetry: TelemetryConfig,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The origin the browser sees, without a trailing slash: `https://app.example.com`.
    /// `redirect_uri` is this plus `/bff/callback`.
    pub public_url: url::Url,
    /// `scheme://host[:port]` of `public_url`, compared byte for byte with `Origin`.
    pub public_origin: String,
    /// True when `public_url` is `https`: selects the `__Host-` cookie names and `Secure`.
    pub secure_cookies: bool,
    pub admin_listen: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// Time allowed for a client to send a complete request head (slowloris defence).
    pub header_read_timeout: Duration,
    /// Largest request head accepted, in bytes (HTTP/1 read buffer; larger → 431).
    pub max_header_bytes: usize,
    /// Most request header fields accepted (more → 431).
    pub max_headers: usize,
    /// On SIGTERM/SIGINT: how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
    /// Peers whose `Forwarded`, `X-Forwarded-*` and `X-Real-IP` are kept (a load balancer
    /// in front); from any other peer they are replaced by what the connection says.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Client connections open at once on the public listener; one more is closed as it
    /// is accepted (and counted).
    pub max_connections: usize,
    /// Worker threads serving the public listener, each with its own event loop,
    /// listening socket and upstream connections; `None`: one per CPU the process may
    /// use.
    pub workers: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How the gateway talks to the upstreams it proxies to.
#[derive(Clone, Debug)]
pub struct UpstreamConfig {
    /// TCP (and TLS) connect limit; exceeded → 502.
    pub connect_timeout: Duration,
    /// Time until the upstream's response head arrives; exceeded → 504.
    pub response_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Longest silence while a body streams, either way (nginx's `proxy_read_timeout`);
    /// exceeded → the exchange is cut.
    pub read_timeout: Duration,
    /// Roots trusted for `https://` upstreams beside the Mozilla set (`upstream.tls_ca`).
    pub extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
}

#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// Exactly as written (a valid absolute URL): discovery compares the provider's
    /// `issuer` with it byte for byte, so `url::Url`'s added trailing `/` would break it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    /// The `private_key_jwt` signing key (RFC 7523).
    pub private_key: Option<Arc<SigningKey>>,
    /// `kid` of the client assertions; `None`: the key's RFC 7638 thumbprint.
    pub private_key_id: Option<String>,
    /// TLS towards the provider: a client certificate (RFC 8705) and extra trust roots.
    pub tls: ProviderTls,
    /// Sender-constrained tokens (RFC 9449): a DPoP key per session.
    pub dpop: bool,
    /// Pushed authorization requests (RFC 9126); also used when the provider requires them.
    pub par: bool,
    /// Fetch the userinfo endpoint at login and after each refresh; its claims join the
    /// ID token's (`/bff/user`, route `require` rules).
    pub userinfo: bool,
    pub scopes: Vec<String>,
    /// Extra authorization-request parameters, in file order.
    pub auth_params: Vec<(String, String)>,
    /// Send the ID token as `id_token_hint` to the end-session endpoint. Off by default:
    /// the redirect goes through the browser, which would then have held a token.
    pub logout_id_token_hint: bool,
    /// Longest exchange with the provider (discovery, token, revocation, PAR); exceeded →
    /// the provider counts as unavailable.
    pub timeout: Duration,
    /// Endpoints named in the configuration (`oidc.token_endpoint`, …): they win over the
    /// provider's discovery document and its RFC 8414 metadata.
    pub endpoints: Vec<(ProviderEndpoint, url::Url)>,
}

impl OidcConfig {
    /// The endpoint the configuration names for `which`, if any.
    pub fn endpoint(&self, which: ProviderEndpoint) -> Option<&url::Url> {
        self.endpoints
            .iter()
            .find_map(|(w, u)| (*w == which).then_some(u))
    }
}

/// The provider endpoints the gateway calls or sends the browser to. Each has the same
/// name in the configuration (`oidc.<name>`), in OpenID discovery and in RFC 8414 metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProviderEndpoint {
    Authorization,
    Token,
    Jwks,
    Revocation,
    EndSession,
    PushedAuthorizationRequest,
    Userinfo,
}

impl ProviderEndpoint {
    pub const ALL: [ProviderEndpoint; 7] = [
        ProviderEndpoint::Authorization,
        ProviderEndpoint::Token,
        ProviderEndpoint::Jwks,
        ProviderEndpoint::Revocation,
        ProviderEndpoint::EndSession,
        ProviderEndpoint::PushedAuthorizationRequest,
        ProviderEndpoint::Userinfo,
    ];

    /// The metadata name, which is also the key under `[oidc]`.
    pub fn key(self) -> &'static str {
        match self {
            ProviderEndpoint::Authorization => "authorization_endpoint",
            ProviderEndpoint::Token => "token_endpoint",
            ProviderEndpoint::Jwks => "jwks_uri",
            ProviderEndpoint::Revocation => "revocation_endpoint",
            ProviderEndpoint::EndSession => "end_session_endpoint",
            ProviderEndpoint::PushedAuthorizationRequest => "pushed_authorization_request_endpoint",
            ProviderEndpoint::Userinfo => "userinfo_endpoint",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
    /// RFC 8705 §2.1: a certificate from a CA the provider trusts.
    TlsClientAuth,
    /// RFC 8705 §2.2: a self-signed certificate registered with the provider.
    SelfSignedTlsClientAuth,
}

impl ClientAuth {
    /// The RFC 7591 name, as in discovery's `token_endpoint_auth_methods_supported`.
    pub fn name(self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
            ClientAuth::TlsClientAuth => "tls_client_auth",
            ClientAuth::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }
}

/// How the gateway's TLS connections to the provider are set up.
#[derive(Clone, Debug, Default)]
pub struct ProviderTls {
    /// The client certificate chain and key presented to the provider.
    pub identity: Option<Arc<TlsIdentity>>,
    /// Trust roots beyond the Mozilla set (a private CA in front of the provider).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

pub struct TlsIdentity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TlsIdentity({} certificates, key [redacted])",
            self.certs.len()
        )
    }
}

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// Decoded 32-byte keys; the first seals, every one opens.
    pub keys: Vec<[u8; 32]>,
    pub store: StoreKind,
    pub path: PathBuf,
    /// `redis://` or `rediss://` URL of a standalone Redis (`session.redis_url`).
    pub redis_url: Option<String>,
    /// Seed node URLs of a Redis Cluster (`session.redis_cluster`); exclusive with
    /// `redis_url`. Empty: no cluster.
    pub redis_cluster: Vec<String>,
    /// Most decrypted sessions kept in the in-process cache.
    pub cache_capacity: u64,
    /// Device-bound sessions (DBSC): whether logins offer binding, and whether a session
    /// must be bound.
    pub device_binding: DeviceBinding,
    /// How long a bound session's short cookie lasts before the browser must prove
    /// possession of its key again.
    pub bound_cookie_lifetime: Duration,
}

/// `session.device_binding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceBinding {
    /// No registration is offered (sessions bound before still need their proofs).
    Off,
    /// Bound when the browser registers a key; an ordinary session otherwise.
    Optional,
    /// A session not bound within `bound_cookie_lifetime` of its login ends.
    Required,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Embedded,
    Redis,
}

#[derive(Clone, Debug)]
pub struct TokensConfig {
    pub refresh_before_expiry: Duration,
}

/// OpenTelemetry traces (`[telemetry]`).
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryConfig {
    /// Where spans are sent: the OTLP/HTTP traces URL, `otlp_endpoint` with `/v1/traces`
    /// added to its path. `None`: no traces at all, and nothing done for them per request.
    pub traces_url: Option<String>,
    /// Share of new traces recorded, 0.0 to 1.0; a trusted caller's `traceparent` decides
    /// for the traces it continues.
    pub sample_ratio: f64,
    /// The `service.name` of the spans.
    pub service_name: String,
    /// How long finished spans wait to be sent in a batch; `None`: the SDK's (5 s, or
    /// `OTEL_BSP_SCHEDULE_DELAY`).
    pub export_delay: Option<Duration>,
}

/// Forward auth (`[forward_auth]`): an ingress asks whether a request may pass, and gets
/// the `Authorization` to send upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardAuthConfig {
    /// Its own listener, never the public one: its answers carry access tokens, so only
    /// the ingress may reach it.
    pub listen: SocketAddr,
}

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub token: Option<Secret>,
}

/// `[log]`: the access log and the log level.
#[derive(Clone, Debug, Default)]
pub struct LogConfig {
    /// One line per request when its response is complete (`server::access_log`).
    pub access: bool,
    /// Level directives (`"info"`, `"tokengate=debug,info"`), checked here and applied by
    /// `logging::set_level`; `None`: `RUST_LOG`, else `info`.
    pub level: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// Normalised prefix: starts with `/`, no trailing `/` except the root route `/`.
    pub path: String,
    /// Upstream base: scheme and authority, with an optional base path (no trailing `/`).
    pub upstream: http::Uri,
    pub token: TokenPolicy,
    pub strip_prefix: bool,
    pub resource: Option<String>,
    /// `scope` of the client-credentials request (`token = "client"` routes), space-joined.
    pub scope: Option<String>,
    /// Present the token with a DPoP proof when `oidc.dpop` is on (false: plain Bearer,
    /// for upstreams that accept nothing else).
    pub dpop: bool,
    /// `None`: every method is allowed.
    pub methods: Option<Vec<http::Method>>,
    /// Speak HTTP/2 to the upstream (`upstream_http2 = true`, or an `h2c://` URL, which
    /// is stored as `http://`): prior knowledge over TCP, ALPN `h2` over TLS.
    pub http2: bool,
    /// Who may use the route: every rule must hold for the session's claims.
    pub require: Vec<ClaimRule>,
    /// How recently and how strongly the user must have authenticated.
    pub step_up: StepUp,
    /// Allow WebSocket (HTTP/1.1 `Upgrade`) requests on a token route; a browser's is
    /// admitted by its `Origin`, since it cannot carry `X-CSRF`.
    pub websocket: bool,
}

/// `require = { claim = [values…] }`: the claim must equal one of the values, or, for a
/// list claim (groups, roles), hold one of them. A missing claim matches nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimRule {
    pub claim: String,
    /// Scalars only (string, boolean, number), as the configuration validates.
    pub values: Vec<serde_json::Value>,
}

/// A route's authentication demands (`acr`, `max_age`); unmet → `step_up_required`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepUp {
    /// The session's `acr` must be one of these.
    pub acr: Option<Vec<String>>,
    /// The user authenticated (`auth_time`) at most this long ago.
    pub max_age: Option<Duration>,
}

impl StepUp {
    pub fn is_empty(&self) -> bool {
        self.acr.is_none() && self.max_age.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenPolicy {
    User,
    UserOptional,
    Client,
    None,
}

/// A secret string from the configuration. `Debug` never shows it; read it with
/// [`Secret::secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Why a configuration could not be loaded: every problem found, each with its key path.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads, expands, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![Problem::new(
                "",
                format!("cannot read {}: {e}", path.display()),
            )],
        })?;
        Config::from_toml_str(&text)
    }

    /// Parses and validates TOML text, with `${VAR}` taken from the process environment.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str_with_env(text, &|name| std::env::var(name).ok())
    }

    /// As [`Config::from_toml_str`], with the variables looked up through `env`.
    pub fn from_toml_str_with_env(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = raw::parse(text, env).map_err(|problems| ConfigError { problems })?;
        validate::validate(raw).map_err(|problems| ConfigError { problems })
    }
}

/// An ACR value as a parameter or a claim may carry it: 1 to 255 printable ASCII
/// characters without spaces, quotes or backslashes (so it fits in a quoted challenge
/// parameter and a space-separated list unchanged). A route's `acr` values are checked
/// with it, as are `acr_values` at `/bff/login` (`oidc::params`).
pub fn is_acr_value(v: &str) -> bool {
    (1..=255).contains(&v.len())
        && v.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}
