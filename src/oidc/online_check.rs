//! `tokengate check --online`: what the provider's metadata says, read against the
//! configuration — every endpoint the gateway uses and where it was found, the features
//! that decide what will work with this provider, and the configured features it does
//! not offer.

use super::http_client::ProviderHttp;
use super::metadata::{self, LookFor, Metadata, Rfc8414, Source};
use crate::config::{Config, OidcConfig, ProviderEndpoint};
use crate::net::tls_client_config;

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
    match metadata::fetch(o, &http, LookFor::All).await {
        Ok(found) => judge(config, &found),
        Err(e) => failed(format!("oidc.issuer: discovery failed: {e}")),
    }
}

fn failed(problem: String) -> Report {
    Report {
        lines: Vec::new(),
        problems: vec![problem],
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A list for a line: its items, or what an empty one means.
fn listed(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}

fn judge(config: &Config, found: &Metadata) -> Report {
    let methods = found.strings("token_endpoint_auth_methods_supported");
    let dpop_algs = found.strings("dpop_signing_alg_values_supported");
    let par = found
        .endpoint(ProviderEndpoint::PushedAuthorizationRequest)
        .is_some();

    let mut lines = endpoint_lines(found);
    lines.extend(feature_lines(found, &methods, &dpop_algs, par));
    let problems = problems(&config.oidc, found, &methods, &dpop_algs, par);
    Report { lines, problems }
}

/// Every endpoint the gateway uses and where it was found, then whether RFC 8414
/// metadata was read.
fn endpoint_lines(found: &Metadata) -> Vec<String> {
    let mut lines = vec!["endpoints:".to_owned()];
    for (which, url, source) in found.endpoints() {
        let line = match (url, source) {
            (Some(u), s) => format!("  {}: {u} (from {})", which.key(), s.describe()),
            (None, _) => format!("  {}: absent{}", which.key(), absent_means(which)),
        };
        lines.push(line);
    }
    lines.push(match &found.rfc8414 {
        Rfc8414::NotRead => {
            "RFC 8414 metadata: not read (configuration and discovery name every endpoint)".into()
        }
        Rfc8414::Read(url) => format!("RFC 8414 metadata: read from {url}"),
        Rfc8414::Unavailable(why) => format!("RFC 8414 metadata: unavailable ({why})"),
    });
    lines
}

/// The features that decide what will work with this provider, one line each.
fn feature_lines(
    found: &Metadata,
    methods: &[String],
    dpop_algs: &[String],
    par: bool,
) -> [String; 9] {
    let mtls_aliases = found
        .discovery
        .get("mtls_endpoint_aliases")
        .and_then(serde_json::Value::as_object)
        .is_some_and(|a| !a.is_empty());
    [
        format!(
            "issuer in authorization responses (RFC 9207 iss): {}",
            if found.flag("authorization_response_iss_parameter_supported") {
                "yes (a response without it is refused)"
            } else {
                "not promised (a response without it is accepted; with it, it must match)"
            }
        ),
        format!(
            "back-channel logout: {}{}",
            yes(found.flag("backchannel_logout_supported")),
            if found.flag("backchannel_logout_session_supported") {
                ", with sid"
            } else {
                ""
            }
        ),
        format!(
            "ID token signing algorithms: {}",
            listed(
                &found.strings("id_token_signing_alg_values_supported"),
                "(not listed)"
            )
        ),
        format!(
            "client authentication methods: {}",
            listed(methods, "(not listed)")
        ),
        format!(
            "private_key_jwt: {}",
            yes(methods.iter().any(|m| m == "private_key_jwt"))
        ),
        format!(
            "mutual TLS (tls_client_auth / self_signed_tls_client_auth): {}{}",
            yes(methods.iter().any(|m| m.ends_with("tls_client_auth"))),
            if mtls_aliases {
                ", with mtls_endpoint_aliases"
            } else {
                ""
            }
        ),
        format!(
            "DPoP: {}{}",
            yes(!dpop_algs.is_empty()),
            if dpop_algs.is_empty() {
                String::new()
            } else {
                format!(" ({})", dpop_algs.join(", "))
            }
        ),
        format!(
            "pushed authorization requests: {}{}",
            yes(par),
            if found.flag("require_pushed_authorization_requests") {
                " (required)"
            } else {
                ""
            }
        ),
        // No metadata field says whether refresh tokens rotate; the gateway handles both.
        "refresh-token rotation: cannot be known in advance (the gateway keeps whichever \
         refresh token the provider returns)"
            .to_owned(),
    ]
}

/// The configured features the provider does not offer, and the required endpoints it
/// publishes nowhere; each with the key at fault.
fn problems(
    o: &OidcConfig,
    found: &Metadata,
    methods: &[String],
    dpop_algs: &[String],
    par: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let method = o.client_auth.name();
    if !methods.is_empty() && !methods.iter().any(|m| m == method) {
        problems.push(format!(
            "oidc.client_auth: the provider does not advertise {method:?}"
        ));
    }
    if o.dpop && dpop_algs.is_empty() {
        problems.push("oidc.dpop: the provider advertises no DPoP signing algorithms".into());
    }
    if o.userinfo && found.source(ProviderEndpoint::Userinfo) == Source::Absent {
        problems.push("oidc.userinfo: the provider has no userinfo_endpoint".into());
    }
    if o.par && !par {
        problems.push("oidc.par: the provider has no pushed_authorization_request_endpoint".into());
    }
    for which in [
        ProviderEndpoint::Authorization,
        ProviderEndpoint::Token,
        ProviderEndpoint::Jwks,
    ] {
        if found.source(which) == Source::Absent {
            problems.push(format!(
                "oidc.{key}: the provider publishes no {key}; set it here",
                key = which.key()
            ));
        }
    }
    problems
}

/// What an absent endpoint means for the gateway.
fn absent_means(which: ProviderEndpoint) -> &'static str {
    match which {
        ProviderEndpoint::Authorization | ProviderEndpoint::Token | ProviderEndpoint::Jwks => {
            " (required: the gateway will not start)"
        }
        ProviderEndpoint::Revocation => " (logout cannot revoke the refresh token)",
        ProviderEndpoint::EndSession => " (logout ends the gateway session only)",
        ProviderEndpoint::PushedAuthorizationRequest => " (only needed with oidc.par)",
        ProviderEndpoint::Userinfo => " (only needed with oidc.userinfo)",
    }
}
