//! The OpenID Provider, as the gateway sees it: discovery, the code flow, refresh,
//! revocation and end-session, over an outbound client that follows no redirects.

pub mod grant_error;
pub mod http_client;
pub mod provider;

pub use grant_error::GrantError;
pub use provider::{Provider, ProviderCell, TokenSet};
