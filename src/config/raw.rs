//! The TOML as written: a serde mirror with every table closed to unknown keys, after
//! `${VAR}` expansion.
//!
//! Expansion runs on the parsed value tree, inside string values only, so an environment
//! variable can never inject TOML syntax. `$` not followed by `{` is kept as is.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::validate::Problem;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub oidc: RawOidc,
    #[serde(default)]
    pub session: RawSession,
    #[serde(default)]
    pub tokens: RawTokens,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub log: RawLog,
    /// Absent: no forward-auth listener.
    pub forward_auth: Option<RawForwardAuth>,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub telemetry: RawTelemetry,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub admin_listen: Option<String>,
    pub tls: Option<RawTls>,
    pub header_read_timeout: Option<String>,
    pub max_header_bytes: Option<i64>,
    pub max_headers: Option<i64>,
    pub shutdown_grace: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub max_connections: Option<i64>,
    pub workers: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub connect_timeout: Option<String>,
    pub response_timeout: Option<String>,
    pub pool_idle_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub tls_ca: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOidc {
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_auth: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub auth_params: Option<BTreeMap<String, String>>,
    pub logout_id_token_hint: Option<bool>,
    pub timeout: Option<String>,
    pub private_key: Option<String>,
    pub private_key_id: Option<String>,
    pub tls_client_cert: Option<String>,
    pub tls_client_key: Option<String>,
    pub tls_ca: Option<String>,
    pub dpop: Option<bool>,
    pub par: Option<bool>,
    pub userinfo: Option<bool>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub pushed_authorization_request_endpoint: Option<String>,
    pub userinfo_endpoint: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSession {
    pub idle_timeout: Option<String>,
    pub absolute_timeout: Option<String>,
    pub keys: Option<Vec<String>>,
    pub store: Option<String>,
    pub path: Option<String>,
    pub redis_url: Option<String>,
    pub redis_cluster: Option<Vec<String>>,
    pub cache_capacity: Option<i64>,
    pub device_binding: Option<String>,
    pub bound_cookie_lifetime: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    pub refresh_before_expiry: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub access: Option<bool>,
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: Option<f64>,
    pub service_name: Option<String>,
    pub export_delay: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardAuth {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub path: Option<String>,
    pub upstream: Option<String>,
    pub token: Option<String>,
    pub strip_prefix: Option<bool>,
    pub resource: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub dpop: Option<bool>,
    pub methods: Option<Vec<String>>,
    pub upstream_http2: Option<bool>,
    pub require: Option<BTreeMap<String, Vec<toml::Value>>>,
    pub acr: Option<Vec<String>>,
    pub max_age: Option<String>,
    pub websocket: Option<bool>,
}

/// Parses TOML text, expands `${VAR}` through `env`, and deserialises the result.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<RawConfig, Vec<Problem>> {
    let mut value: toml::Value =
        toml::from_str(text).map_err(|e| vec![syntax_problem(text, &e)])?;
    let mut problems = Vec::new();
    expand(&mut value, "", env, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    RawConfig::deserialize(value).map_err(|e| vec![shape_problem(&e)])
}

fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let line = e
        .span()
        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
    let message = e.message().to_owned();
    match line {
        Some(l) => Problem::new("", format!("line {l}: {message}")),
        None => Problem::new("", message),
    }
}

/// serde errors on the value tree carry no span; toml names the key for unknown fields
/// and wrong types in its message.
fn shape_problem(e: &toml::de::Error) -> Problem {
    Problem::new("", e.message().to_owned())
}

fn expand(
    value: &mut toml::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match value {
        toml::Value::String(s) if s.contains("${") => match expand_str(s, env) {
            Ok(expanded) => *s = expanded,
            Err(var) => problems.push(Problem::new(
                path,
                format!("environment variable {var} is not set"),
            )),
        },
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand(item, &format!("{path}[{i}]"), env, problems);
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                expand(v, &child, env, problems);
            }
        }
        _ => {}
    }
}

/// Replaces every `${NAME}`; `Err(NAME)` for the first unset variable.
fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let valid = !name.is_empty()
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            out.push_str(&env(name).ok_or_else(|| name.to_owned())?);
        } else {
            out.push_str(&rest[start..start + 2 + end + 1]);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
pub(super) fn expand_for_test(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    expand_str(s, env)
}
