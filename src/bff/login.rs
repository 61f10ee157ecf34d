//! `GET /bff/login?returnUrl=/path[&prompt=…&acr_values=…&max_age=…&login_hint=…&ui_locales=…]`:
//! start the code flow. The parameters besides `returnUrl` go to the provider, each
//! checked against its syntax (`oidc::params`); any other is refused.
//!
//! The request's state, nonce and PKCE verifier are kept in a login-state cookie sealed by
//! the key ring (bound to the cookie's name), so the callback can check them without any
//! server-side state and on any instance.

use std::time::Duration;

use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::crypto;
use crate::crypto::signing::SigningKey;
use crate::gateway::Gateway;
use crate::oidc::params::LoginParams;
use crate::oidc::provider::AuthRequest;
use crate::server::respond::{redirect, PageError};
use crate::server::return_url;
use crate::server::Body;
use crate::session::unix_now;

/// How long a login may take from here to the callback.
pub const LOGIN_STATE_TTL: Duration = Duration::from_secs(600);

/// What the callback needs to finish this login. Sealed in the login-state cookie.
#[derive(Serialize, Deserialize)]
pub struct LoginState {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_url: String,
    pub silent: bool,
    pub created_at: u64,
    /// The DPoP key the tokens will be bound to (P-256, PKCS#8, base64url), when
    /// `oidc.dpop` is on. Sealed with the rest of the cookie.
    #[serde(default)]
    pub dpop_key: Option<String>,
    /// The `acr_values` asked for (space-separated): the ID token's `acr` must be one.
    #[serde(default)]
    pub acr_values: Option<String>,
    /// The `max_age` asked for: the ID token must then carry `auth_time`, recent enough.
    #[serde(default)]
    pub max_age: Option<u64>,
}

/// `returnUrl` and the provider's parameters of a `/bff/login` query string; `Err` is
/// the page's explanation. Every `login_url` the gateway hands out (`step_up_required`)
/// passes here (the `step_up` fuzz target holds the two to it).
pub fn read_query(query: &str) -> Result<(String, LoginParams), &'static str> {
    let mut return_url = None;
    let mut params = LoginParams::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if seen.iter().any(|s| *s == name) {
            return Err("A parameter is repeated.");
        }
        seen.push(name.clone().into_owned());
        if name == "returnUrl" {
            return_url = Some(value.into_owned());
        } else {
            params.set(&name, &value)?;
        }
    }
    let return_url = return_url.unwrap_or_else(|| "/".to_owned());
    if !return_url::is_local(&return_url) {
        return Err("returnUrl must be a path on this site, such as /app.");
    }
    Ok((return_url, params))
}

/// Redirects the browser to the provider with a login-state cookie; `Err` is the page
/// to answer with instead.
pub async fn start(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, PageError> {
    let (return_url, params) =
        read_query(req.uri().query().unwrap_or("")).map_err(PageError::LoginRefused)?;
    let silent = params.silent();
    let provider = gw.provider.get().ok_or(PageError::LoginUnavailable)?;
    let dpop = if gw.config.oidc.dpop {
        match SigningKey::generate_p256() {
            Ok((key, pkcs8)) => Some((key.thumbprint(), crypto::b64url(&pkcs8))),
            Err(e) => {
                tracing::error!(error = %e, "no DPoP key could be made");
                return Err(PageError::LoginUnavailable);
            }
        }
    } else {
        None
    };
    let login = LoginState {
        state: crypto::random_token(),
        nonce: crypto::random_token(),
        pkce_verifier: crypto::random_token(),
        return_url,
        silent,
        created_at: unix_now(),
        dpop_key: dpop.as_ref().map(|(_, k)| k.clone()),
        acr_values: params.acr_values.clone(),
        max_age: params.max_age,
    };
    let url = match provider
        .login_redirect(&AuthRequest {
            state: &login.state,
            nonce: &login.nonce,
            pkce_verifier: &login.pkce_verifier,
            params: &params,
            dpop_jkt: dpop.as_ref().map(|(jkt, _)| jkt.as_str()),
        })
        .await
    {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(error = %e, "pushed authorization request failed");
            return Err(PageError::LoginUnavailable);
        }
    };
    let name = gw.cookies.login(&login.state);
    let plain = serde_json::to_vec(&login).map_err(|_| PageError::LoginFailed)?;
    let sealed = crypto::b64url(&gw.keys.seal(&plain, name.as_bytes()));
    let mut resp = redirect(url.as_str());
    if let Ok(v) = HeaderValue::from_str(&gw.cookies.set_login(&name, &sealed, LOGIN_STATE_TTL)) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
    gw.metrics.logins_started.inc();
    Ok(resp)
}
