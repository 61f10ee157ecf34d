//! Configuration: a validated [`Config`] built from TOML.
//!
//! Loading goes in two steps (habit 5 of STYLE.md): `raw` mirrors the TOML with serde
//! (`deny_unknown_fields`, `${VAR}` expansion), then `validate` turns the raw form into the
//! typed [`Config`], collecting *every* problem with its key path instead of stopping at the
//! first. Everything the request path needs (parsed URIs, origins, durations, keys) is
//! computed here once, so no request parses configuration.

mod raw;
mod validate;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// In file order; the route table sorts them for matching.
    pub routes: Vec<RouteConfig>,
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
}

#[derive(Clone, Debug)]
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
}

#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// Exactly as written (a valid absolute URL): discovery compares the provider's
    /// `issuer` with it byte for byte, so `url::Url`'s added trailing `/` would break it.
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    /// Extra authorization-request parameters, in file order.
    pub auth_params: Vec<(String, String)>,
    /// Put the ID token in the end-session redirect as `id_token_hint`. Off by default:
    /// that redirect goes through the browser, which would then hold the ID token.
    pub logout_id_token_hint: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    /// Decoded 32-byte keys; the first seals, every one opens.
    pub keys: Vec<[u8; 32]>,
    pub store: StoreKind,
    pub path: PathBuf,
    pub redis_url: Option<String>,
    /// Most decrypted sessions kept in the in-process cache.
    pub cache_capacity: u64,
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

#[derive(Clone, Debug)]
pub struct AdminConfig {
    pub token: Option<Secret>,
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
    /// `None`: every method is allowed.
    pub methods: Option<Vec<http::Method>>,
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
