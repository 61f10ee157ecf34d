//! Integration tests: tokengate in process, in front of a verifying test upstream, logging
//! in through a real OpenID Provider (tests/op). One test binary, so the suite links once.

mod support;

mod access;
mod access_log;
mod admin;
mod backchannel;
mod client_bytes;
mod client_security;
mod config_check;
mod cookies;
mod device_binding;
mod docs;
mod embedded_store;
mod faults;
mod forward_auth;
mod hostile_upstream;
mod lifetime;
mod login;
mod pool;
mod proxy;
mod redis_store;
mod refresh;
mod reload;
mod server;
mod store_conformance;
mod telemetry;
mod token_routes;
mod traces;
mod websocket;
