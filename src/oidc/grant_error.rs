//! What a failed grant means for the session, decided on the error's kind (habit 7).
//!
//! oauth2-proxy decides by matching error strings; here the typed `RequestTokenError` of
//! the openidconnect crate is mapped once, and callers `match` on [`GrantError`].

use openidconnect::core::CoreErrorResponseType;
use openidconnect::{RequestTokenError, StandardErrorResponse};

use super::http_client::ProviderHttpError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GrantError {
    /// The provider refused the grant for good (`invalid_grant` and kin): the refresh
    /// token or code is dead, the session it belongs to is over.
    #[error("provider refused the grant: {0}")]
    Rejected(String),
    /// No usable answer: unreachable, timed out, 5xx. Nothing is known to be dead; keep
    /// the session and try again later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// An answer that must not be accepted: malformed, or an ID token that fails
    /// validation.
    #[error("provider answer refused: {0}")]
    Invalid(String),
}

pub type TokenRequestError =
    RequestTokenError<ProviderHttpError, StandardErrorResponse<CoreErrorResponseType>>;

impl From<TokenRequestError> for GrantError {
    fn from(e: TokenRequestError) -> GrantError {
        match e {
            RequestTokenError::ServerResponse(r) => match r.error() {
                CoreErrorResponseType::InvalidGrant
                | CoreErrorResponseType::InvalidRequest
                | CoreErrorResponseType::InvalidScope
                | CoreErrorResponseType::UnauthorizedClient
                | CoreErrorResponseType::UnsupportedGrantType => {
                    GrantError::Rejected(r.error().as_ref().to_owned())
                }
                // Our own credentials were refused: a configuration fault, not the user's.
                // Ending every session over it would log everyone out; answer 503 and let
                // the operator see it in the logs.
                CoreErrorResponseType::InvalidClient => GrantError::Unavailable(
                    "provider refused the gateway's client credentials (invalid_client)".into(),
                ),
                CoreErrorResponseType::Extension(code) => match code.as_str() {
                    "temporarily_unavailable" | "server_error" | "slow_down" => {
                        GrantError::Unavailable(code.clone())
                    }
                    _ => GrantError::Rejected(code.clone()),
                },
            },
            RequestTokenError::Request(e) => GrantError::Unavailable(e.to_string()),
            RequestTokenError::Parse(e, _) => {
                GrantError::Invalid(format!("unreadable token response: {e}"))
            }
            RequestTokenError::Other(m) => GrantError::Invalid(m),
        }
    }
}
