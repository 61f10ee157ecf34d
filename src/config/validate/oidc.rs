//! `[oidc]`: the provider, the client's identity and what its requests carry.

use super::Checker;
use crate::config::client_security;
use crate::config::raw::RawOidc;
use crate::config::{OidcConfig, ProviderEndpoint};

pub(super) fn oidc(c: &mut Checker, o: &RawOidc) -> OidcConfig {
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
    let security = client_security::check(c, o);
    let scopes = scopes(c, o);
    let auth_params = auth_params(c, o);

    if o.userinfo == Some(true) && o.dpop == Some(true) {
        c.fail(
            "oidc.userinfo",
            "cannot be used with oidc.dpop (the userinfo call would need a DPoP proof)",
        );
    }

    let endpoints = endpoints(c, o);
    OidcConfig {
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
    }
}

/// `oidc.scopes`: `openid` among them, each a single scope token.
fn scopes(c: &mut Checker, o: &RawOidc) -> Vec<String> {
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
    scopes
}

/// `oidc.auth_params`, in file order; none of the parameters the gateway sets itself.
fn auth_params(c: &mut Checker, o: &RawOidc) -> Vec<(String, String)> {
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
    auth_params
}

/// The endpoints named in `[oidc]` (`oidc.token_endpoint`, …), each an absolute URL.
fn endpoints(c: &mut Checker, o: &RawOidc) -> Vec<(ProviderEndpoint, url::Url)> {
    [
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
    .collect()
}
