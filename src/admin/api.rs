//! The admin API on the admin listener, when `admin.token` is set:
//!
//! - `GET /admin/sessions?sub=…` — a user's sessions (handles and times, never a token);
//! - `DELETE /admin/sessions?sub=…` — end every session of a user;
//! - `DELETE /admin/sessions/{id}` — end one session, by the `id` the listing shows.
//!
//! Every call carries `Authorization: Bearer <admin.token>`. A token in the query string
//! is refused outright: URLs end up in logs and browser histories.

use http::header::AUTHORIZATION;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::gateway::Gateway;
use crate::server::query_param;
use crate::server::respond::json;
use crate::server::{Body, Reject};
use crate::session::{EndReason, IndexKey, StoreKey};

pub async fn handle(gw: &Gateway, req: &Request<Incoming>) -> Result<Response<Body>, Reject> {
    let Some(expected) = &gw.config.admin.token else {
        // No token configured: the admin API does not exist.
        return Err(Reject::NotFound);
    };
    let query = req.uri().query().unwrap_or("");
    if url::form_urlencoded::parse(query.as_bytes())
        .any(|(k, _)| k == "token" || k == "access_token" || k == "admin_token")
    {
        return Err(Reject::BadRequest(
            "the admin token goes in the Authorization header, never in the URL",
        ));
    }
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compared as SHA-256 digests: the time taken says nothing about how much matched.
    if Sha256::digest(presented.as_bytes()) != Sha256::digest(expected.secret().as_bytes()) {
        return Err(Reject::AdminUnauthorized);
    }
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/admin/sessions") => list(gw, &user(req)?).await,
        (&Method::DELETE, "/admin/sessions") => end_all(gw, &user(req)?).await,
        (&Method::DELETE, _) if path.starts_with("/admin/sessions/") => {
            let id = &path["/admin/sessions/".len()..];
            let key = StoreKey::from_hex(id).ok_or(Reject::BadRequest("not a session id"))?;
            end_one(gw, key).await
        }
        (_, "/admin/sessions") => Err(Reject::MethodNotAllowed),
        _ => Err(Reject::NotFound),
    }
}

fn user(req: &Request<Incoming>) -> Result<String, Reject> {
    query_param(req, "sub")
        .filter(|s| !s.is_empty())
        .ok_or(Reject::BadRequest("the sub parameter is required"))
}

async fn sessions_of(gw: &Gateway, sub: &str) -> Result<Vec<StoreKey>, Reject> {
    gw.sessions
        .find(&IndexKey::sub(sub))
        .await
        .map_err(|_| Reject::StoreUnavailable)
}

async fn list(gw: &Gateway, sub: &str) -> Result<Response<Body>, Reject> {
    let keys = sessions_of(gw, sub).await?;
    let idle = gw.config.session.idle_timeout.as_secs();
    let absolute = gw.config.session.absolute_timeout.as_secs();
    let mut sessions = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(live) = gw
            .sessions
            .peek(key)
            .await
            .map_err(|_| Reject::StoreUnavailable)?
        else {
            continue;
        };
        let r = &live.record;
        sessions.push(serde_json::json!({
            "id": key.hex(),
            "sub": r.sub,
            "created_at": r.created_at,
            "last_seen": r.last_seen,
            "expires_at": r.ends_at(idle, absolute),
            "access_token_expires_at": r.access_expires_at,
            "has_refresh_token": r.refresh_token.is_some(),
        }));
    }
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "sessions": sessions }).to_string(),
    ))
}

async fn end_all(gw: &Gateway, sub: &str) -> Result<Response<Body>, Reject> {
    let keys = sessions_of(gw, sub).await?;
    let mut ended = 0;
    for key in keys {
        if end(gw, key).await? {
            ended += 1;
        }
    }
    tracing::info!(sessions = ended, "admin ended a user's sessions");
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "ended": ended }).to_string(),
    ))
}

async fn end_one(gw: &Gateway, key: StoreKey) -> Result<Response<Body>, Reject> {
    if !end(gw, key).await? {
        return Err(Reject::NotFound);
    }
    Ok(json(
        StatusCode::OK,
        serde_json::json!({ "ended": 1 }).to_string(),
    ))
}

async fn end(gw: &Gateway, key: StoreKey) -> Result<bool, Reject> {
    let ended = gw
        .sessions
        .end(key, EndReason::Admin)
        .await
        .map_err(|_| Reject::StoreUnavailable)?;
    if ended {
        gw.metrics.logouts.admin.inc();
    }
    Ok(ended)
}
