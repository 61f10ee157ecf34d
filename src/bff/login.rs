//! `GET /bff/login?returnUrl=/path[&prompt=none]`: start the code flow.
//!
//! The request's state, nonce and PKCE verifier are kept in a login-state cookie sealed by
//! the key ring (bound to the cookie's name), so the callback can check them without any
//! server-side state and on any instance.

use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use super::{query_param, return_url};
use crate::app::Gateway;
use crate::crypto;
use crate::crypto::signing::SigningKey;
use crate::oidc::provider::AuthRequest;
use crate::server::respond::{error_page, redirect};
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
}

pub async fn start(gw: &Gateway, req: &Request<Incoming>) -> Response<Body> {
    let return_url = query_param(req, "returnUrl").unwrap_or_else(|| "/".to_owned());
    if !return_url::is_local(&return_url) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Login refused",
            "returnUrl must be a path on this site, such as /app.",
        );
    }
    let silent = match query_param(req, "prompt").as_deref() {
        None => false,
        Some("none") => true,
        Some(_) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Login refused",
                "prompt may only be \"none\".",
            );
        }
    };
    let Some(provider) = gw.provider.get() else {
        return unavailable();
    };
    let dpop = if gw.config.oidc.dpop {
        match SigningKey::generate_p256() {
            Ok((key, pkcs8)) => Some((key.thumbprint(), crypto::b64url(&pkcs8))),
            Err(e) => {
                tracing::error!(error = %e, "no DPoP key could be made");
                return unavailable();
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
    };
    let url = match provider
        .login_redirect(&AuthRequest {
            state: &login.state,
            nonce: &login.nonce,
            pkce_verifier: &login.pkce_verifier,
            silent,
            dpop_jkt: dpop.as_ref().map(|(jkt, _)| jkt.as_str()),
        })
        .await
    {
        Ok(url) => url,
        Err(e) => {
            tracing::warn!(error = %e, "pushed authorization request failed");
            return unavailable();
        }
    };
    let name = gw.cookies.login(&login.state);
    let Ok(plain) = serde_json::to_vec(&login) else {
        return error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Login failed",
            "Please try again.",
        );
    };
    let sealed = crypto::b64url(&gw.keys.seal(&plain, name.as_bytes()));
    let mut resp = redirect(url.as_str());
    if let Ok(v) = HeaderValue::from_str(&gw.cookies.set_login(&name, &sealed, LOGIN_STATE_TTL)) {
        resp.headers_mut().append(http::header::SET_COOKIE, v);
    }
    gw.metrics.logins_started.inc();
    resp
}

fn unavailable() -> Response<Body> {
    let mut resp = error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        "The identity provider cannot be reached right now. Please try again in a moment.",
    );
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}
