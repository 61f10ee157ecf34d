//! `GET /bff/logout?sid=…` and `POST /bff/logout` (with `X-CSRF: 1`).
//!
//! A GET is a navigation any site can trigger, so it must carry the session's logout
//! handle (from `/bff/user`), which a cross-site page cannot know. The session is ended
//! in the store first (access stops at once), then the refresh token is revoked at the
//! provider (RFC 7009; logout completes even when that fails), then the browser goes to
//! the provider's end-session endpoint to end the provider's session too. That redirect
//! carries `client_id` and, only when `oidc.logout_id_token_hint` is set, the ID token as
//! `id_token_hint`: it passes through the browser, which otherwise never holds a token.

use std::time::Duration;

use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use super::query_param;
use crate::gateway::Gateway;
use crate::oidc::Provider;
use crate::server::csrf;
use crate::server::respond::redirect;
use crate::server::{Body, Reject};
use crate::session::EndReason;

/// Longest the browser waits on the provider's revocation endpoint.
const REVOKE_LIMIT: Duration = Duration::from_secs(5);

pub async fn logout(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, Reject> {
    let session = gw.session_from(req.headers()).await?;
    if req.method() == Method::POST {
        csrf::check(&gw.config.server.public_origin, req.headers())?;
    } else {
        let Some(sid) = query_param(req, "sid") else {
            return Err(Reject::BadRequest(
                "logout needs the sid parameter from /bff/user",
            ));
        };
        if let Some(live) = &session {
            if sid != live.key.logout_handle() {
                return Err(Reject::BadRequest("sid does not match the session"));
            }
        }
    }
    let mut location = "/".to_owned();
    if let Some(live) = session {
        gw.sessions
            .end(live.key, EndReason::Logout)
            .await
            .map_err(|_| Reject::StoreUnavailable)?;
        gw.metrics.logouts.user.inc();
        if let Some(provider) = gw.provider.get() {
            if let Some(rt) = &live.record.refresh_token {
                revoke(&provider, rt.secret()).await;
            }
            let hint = gw
                .config
                .oidc
                .logout_id_token_hint
                .then_some(live.record.id_token.secret())
                .filter(|t| !t.is_empty());
            if let Some(url) = provider.end_session_url(hint, &gw.post_logout_redirect_uri) {
                location = url.to_string();
            }
        }
    }
    let mut resp = redirect(&location);
    for clear in [gw.cookies.clear_session(), gw.cookies.clear_bound()] {
        if let Ok(v) = HeaderValue::from_str(&clear) {
            resp.headers_mut().append(http::header::SET_COOKIE, v);
        }
    }
    Ok(resp)
}

/// RFC 7009 revocation of the session's refresh token. Logout completes whatever the
/// provider answers: the session is already gone from the allow-list.
async fn revoke(provider: &Provider, refresh_token: &str) {
    match tokio::time::timeout(REVOKE_LIMIT, provider.revoke_refresh_token(refresh_token)).await {
        Ok(Ok(true)) => tracing::debug!("refresh token revoked at the provider"),
        Ok(Ok(false)) => {
            tracing::debug!("refresh token not revoked: no revocation endpoint or refused")
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "refresh token revocation failed"),
        Err(_) => tracing::warn!("refresh token revocation timed out"),
    }
}
