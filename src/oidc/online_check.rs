//! `tokengate check --online`: the provider's discovery document read against the
//! configuration — which of the client-security features it advertises, and which that
//! the configuration asks for it does not.

use super::http_client::ProviderHttp;
use super::provider::{capabilities, Capabilities};
use crate::config::Config;
use crate::proxy::upstream::tls_client_config;

/// What the provider advertises, one line each, and the problems: configured features
/// it does not offer (each with the key at fault).
pub struct Report {
    pub lines: Vec<String>,
    pub problems: Vec<String>,
}

pub async fn run(config: &Config) -> Report {
    let o = &config.oidc;
    let tls = match tls_client_config(&o.tls.extra_roots, o.tls.identity.as_deref()) {
        Ok(t) => t,
        Err(e) => return failed(format!("oidc.tls_client_cert: {e}")),
    };
    let http = ProviderHttp::new(config.upstream.connect_timeout, o.timeout, tls);
    match capabilities(&o.issuer, &http).await {
        Ok(caps) => judge(config, &caps),
        Err(e) => failed(format!("oidc.issuer: discovery failed: {e}")),
    }
}

fn failed(problem: String) -> Report {
    Report {
        lines: Vec::new(),
        problems: vec![problem],
    }
}

fn judge(config: &Config, caps: &Capabilities) -> Report {
    let o = &config.oidc;
    let yes = |b: bool| if b { "yes" } else { "no" };
    let methods = if caps.client_auth_methods.is_empty() {
        "(not listed)".to_owned()
    } else {
        caps.client_auth_methods.join(", ")
    };
    let lines = vec![
        format!("client authentication methods: {methods}"),
        format!(
            "private_key_jwt: {}",
            yes(caps
                .client_auth_methods
                .iter()
                .any(|m| m == "private_key_jwt"))
        ),
        format!(
            "mutual TLS (tls_client_auth / self_signed_tls_client_auth): {}{}",
            yes(caps
                .client_auth_methods
                .iter()
                .any(|m| m.ends_with("tls_client_auth"))),
            if caps.mtls_aliases {
                ", with mtls_endpoint_aliases"
            } else {
                ""
            }
        ),
        format!("DPoP: {}", yes(caps.dpop)),
        format!(
            "pushed authorization requests: {}{}",
            yes(caps.par),
            if caps.par_required { " (required)" } else { "" }
        ),
        format!("revocation endpoint: {}", yes(caps.revocation)),
        format!("end-session endpoint: {}", yes(caps.end_session)),
    ];
    let mut problems = Vec::new();
    let method = o.client_auth.name();
    if !caps.client_auth_methods.is_empty() && !caps.client_auth_methods.iter().any(|m| m == method)
    {
        problems.push(format!(
            "oidc.client_auth: the provider does not advertise {method:?}"
        ));
    }
    if o.dpop && !caps.dpop {
        problems.push("oidc.dpop: the provider advertises no DPoP signing algorithms".into());
    }
    if o.par && !caps.par {
        problems.push("oidc.par: the provider has no pushed_authorization_request_endpoint".into());
    }
    Report { lines, problems }
}
