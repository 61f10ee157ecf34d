//! `GET /bff/user`: who is logged in. Claims and session facts, never a token.
//!
//! A call counts as use and slides the idle limit, unless it says `?slide=false` (an SPA
//! that polls the login state must not keep an abandoned session alive).

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::query_param;
use crate::gateway::Gateway;
use crate::server::csrf;
use crate::server::respond::json;
use crate::server::{Body, Reject};

pub async fn get(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, Reject> {
    csrf::check(&gw.config.server.public_origin, req.headers())?;
    let slide = query_param(req, "slide").as_deref() != Some("false");
    let live = gw
        .session_with(req.headers(), slide)
        .await?
        .ok_or(Reject::NoSession)?;
    let idle = gw.config.session.idle_timeout.as_secs();
    let absolute = gw.config.session.absolute_timeout.as_secs();
    let body = serde_json::json!({
        "claims": live.record.claims.to_value(),
        "session": {
            "expires_at": live.record.ends_at(idle, absolute),
            "created_at": live.record.created_at,
            "logout_url": format!("/bff/logout?sid={}", live.key.logout_handle()),
        }
    });
    Ok(json(StatusCode::OK, body.to_string()))
}
