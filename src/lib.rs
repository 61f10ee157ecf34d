//! tokengate: an OpenID Connect Backend-for-Frontend gateway.
//!
//! The browser holds one opaque, HttpOnly cookie; the gateway holds the tokens, in an
//! encrypted server-side session, and adds a fresh access token to every proxied API call.
//!
//! # Layout
//!
//! The modules in the order a request meets them:
//!
//! - [`server::listener`] accepts connections (TLS via rustls, HTTP/1.1 and HTTP/2, head
//!   limits, graceful drain) and hands each request to [`app::dispatch`].
//! - [`app::dispatch`] names the request ([`server::request`]), sends `/bff/*` to [`bff`]
//!   and everything else through the [`route`] table to [`proxy`].
//! - [`bff`] answers login ([`bff::login`], [`bff::callback`]), [`bff::user`],
//!   [`bff::logout`] and the provider's [`bff::backchannel`] logout, with [`server::csrf`]
//!   guarding the SPA's calls.
//! - [`proxy::forward`] runs the phases of a proxied call: admit, authorise (CSRF,
//!   session, token), prepare ([`server::headers`]), send ([`net::pool`], with a
//!   [`proxy::dpop`] proof for DPoP-bound tokens), respond (and [`proxy::upgrade`] for
//!   WebSockets).
//! - [`session`] finds the session behind the cookie: [`session::Sessions`] caches
//!   decrypted records in front of a [`session::SessionStore`] ([`session::memory`],
//!   [`session::embedded`], [`session::redis`]), dropping copies other instances changed
//!   ([`session::coherence`]); the records are sealed by the [`crypto::keyring`].
//! - [`token`] decides when an access token is due and refreshes one session at a time
//!   ([`token::refresh`]; across instances under the store's lease), and keeps the
//!   gateway's own [`token::client_credentials`] tokens, through [`oidc`]: the provider
//!   client ([`oidc::token_endpoint`], [`oidc::client_auth`], [`oidc::dpop`], the
//!   provider's [`oidc::keys`]).
//! - [`forward_auth`] answers an ingress that routes by itself (nginx `auth_request`,
//!   Traefik ForwardAuth) on a listener of its own: the same admit and authorise phases
//!   of [`proxy`], the token handed back for the ingress to send upstream.
//! - [`server::respond`] is the one place errors become responses;
//!   [`server::access_log`] writes a line per request once its response is sent (when
//!   `[log] access` is on).
//! - [`admin`] serves `/healthz`, `/readyz`, `/metrics` and the [`admin::api`] on the
//!   admin listener.
//! - [`logging`] writes the log lines, each line of a request naming its ID;
//!   [`telemetry`] exports the request's trace (when `[telemetry]` names a collector).
//! - [`config`] loads and validates the configuration; [`gateway`] builds the
//!   [`gateway::Gateway`] from it, the one object handlers share; [`app`] serves it and
//!   reloads it; [`shutdown`] carries the drain signal.
//!
//! No two top-level modules import each other, even through others: from the bottom,
//! [`crypto`], [`config`], [`logging`] and [`metrics`]; [`route`], [`session`] and
//! [`net`] (outbound HTTP and the upstream pools); [`oidc`], [`telemetry`] and
//! [`token`]; [`server`] (what every request meets before and after its handler); the
//! [`gateway`]; the handlers [`bff`], [`proxy`], [`forward_auth`] and [`admin`]; and
//! [`app`] on top.

// Nothing the network, a user or a store controls may panic the gateway: outside tests,
// `unwrap` and `expect` are refused by the linter (the one exception, the OS failing to
// give randomness, says why where it is allowed).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod app;
pub mod bff;
pub mod config;
pub mod crypto;
pub mod forward_auth;
pub mod gateway;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod oidc;
pub mod proxy;
pub mod route;
pub mod server;
pub mod session;
pub mod shutdown;
pub mod sweep;
pub mod telemetry;
pub mod token;
