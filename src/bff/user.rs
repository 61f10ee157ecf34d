//! `GET /bff/user`: who is logged in. Claims and session facts, never a token.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::csrf;
use crate::app::Gateway;
use crate::server::respond::json;
use crate::server::{Body, Reject};

pub async fn get(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, Reject> {
    csrf::check(gw, req.headers())?;
    let live = gw
        .session_from(req.headers())
        .await?
        .ok_or(Reject::NoSession)?;
    let idle = gw.config.session.idle_timeout.as_secs();
    let absolute = gw.config.session.absolute_timeout.as_secs();
    let body = serde_json::json!({
        "claims": live.record.claims,
        "session": {
            "expires_at": live.record.ends_at(idle, absolute),
            "created_at": live.record.created_at,
            "logout_url": format!("/bff/logout?sid={}", live.key.logout_handle()),
        }
    });
    Ok(json(StatusCode::OK, body.to_string()))
}
