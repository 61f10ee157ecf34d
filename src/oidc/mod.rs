//! The OpenID Provider, as the gateway sees it: discovery, the code flow, refresh,
//! client credentials, revocation, end-session and the provider's signing keys, over an
//! outbound client that follows no redirects.

pub mod client_auth;
pub mod dpop;
pub mod grant_error;
pub mod http_client;
pub mod keys;
pub mod logout_token;
pub mod metadata;
pub mod online_check;
pub mod params;
pub mod provider;
pub mod token_endpoint;

pub use grant_error::GrantError;
pub use provider::{Provider, ProviderCell, TokenSet};
