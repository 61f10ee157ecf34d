//! The endpoints the gateway answers itself, under `/bff`.
//!
//! `login` and `callback` are browser navigations and fail with an HTML page (a
//! [`PageError`](crate::server::respond::PageError)); `user` and `logout` are called by
//! the SPA and fail with the JSON error shape (a [`Reject`]). Both become responses in
//! [`crate::server::respond`].

pub mod backchannel;
pub mod callback;
pub mod dbsc;
pub mod login;
pub mod logout;
pub mod user;

use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::gateway::Gateway;
pub use crate::server::query_param;
use crate::server::{Body, Reject};

pub async fn handle(gw: &Gateway, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() == "/bff/backchannel-logout" {
        // Called by the provider, not the browser: no CSRF header, a body to read.
        let result = match *req.method() {
            Method::POST => backchannel::receive(gw, req).await,
            _ => Err(Reject::MethodNotAllowed),
        };
        return result.unwrap_or_else(|r| r.response());
    }
    let result = match (req.method(), req.uri().path()) {
        // Browser navigations: a failure is a page, not the JSON shape.
        (&Method::GET, "/bff/login") => Ok(login::start(gw, &req)
            .await
            .unwrap_or_else(|p| p.response())),
        (&Method::GET, "/bff/callback") => Ok(callback::finish(gw, &req)
            .await
            .unwrap_or_else(|p| p.response())),
        (&Method::GET, "/bff/user") => user::get(gw, &req).await,
        (&Method::GET | &Method::POST, "/bff/logout") => logout::logout(gw, &req).await,
        // Posted by the browser itself (DBSC), never by a page: no CSRF header; what
        // authorises them is a proof signed by the device key.
        (&Method::POST, dbsc::REGISTER_PATH) => dbsc::register(gw, &req).await,
        (&Method::POST, dbsc::REFRESH_PATH) => dbsc::refresh(gw, &req).await,
        (_, "/bff/login" | "/bff/callback" | "/bff/user" | "/bff/logout")
        | (_, dbsc::REGISTER_PATH | dbsc::REFRESH_PATH) => Err(Reject::MethodNotAllowed),
        _ => Err(Reject::NotFound),
    };
    result.unwrap_or_else(|r| r.response())
}
