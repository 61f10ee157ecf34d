//! The admin listener: `/healthz`, `/readyz`, `/metrics` and the [`api`]. It runs on its
//! own port so that probes, scrapes and operators never share the public listener.

pub mod api;
pub mod metrics;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::gateway::Gateway;
use crate::server::respond::{json, text};
use crate::server::{Body, Reject};

pub async fn handle(gw: &Gateway, req: Request<Incoming>) -> Response<Body> {
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => ready(gw).await,
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics::render(gw),
        ),
        p if p == "/admin" || p.starts_with("/admin/") => {
            api::handle(gw, &req).await.unwrap_or_else(|r| r.response())
        }
        _ => Reject::NotFound.response(),
    }
}

/// Ready when the provider is discovered and the store answers.
async fn ready(gw: &Gateway) -> Response<Body> {
    let provider = gw.provider.get().is_some();
    let store = gw.sessions.ping().await.is_ok();
    let status = if provider && store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        serde_json::json!({ "ready": provider && store, "provider": provider, "store": store })
            .to_string(),
    )
}
