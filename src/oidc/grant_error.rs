//! What a failed grant means for the session, decided on the answer's kind (habit 7).
//!
//! oauth2-proxy decides by matching error strings; here the token endpoint's answer is
//! classified once — by HTTP status and the RFC 6749 §5.2 `error` code — and callers
//! `match` on [`GrantError`].

use http::StatusCode;

use super::http_client::ProviderHttpError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GrantError {
    /// The provider refused the grant for good (`invalid_grant` and kin): the refresh
    /// token or code is dead, the session it belongs to is over.
    #[error("provider refused the grant: {0}")]
    Rejected(String),
    /// No usable answer: unreachable, timed out, 5xx, or our own client credentials
    /// refused. Nothing is known to be dead; keep the session and try again later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// An answer that must not be accepted: malformed, or an ID token that fails
    /// validation.
    #[error("provider answer refused: {0}")]
    Invalid(String),
}

impl GrantError {
    /// The kind alone, without the provider's words: for traces.
    pub fn kind(&self) -> &'static str {
        match self {
            GrantError::Rejected(_) => "rejected",
            GrantError::Unavailable(_) => "unavailable",
            GrantError::Invalid(_) => "invalid",
        }
    }
}

impl From<ProviderHttpError> for GrantError {
    fn from(e: ProviderHttpError) -> GrantError {
        match e {
            ProviderHttpError::Unreachable(_)
            | ProviderHttpError::Timeout
            | ProviderHttpError::ServerError(_) => GrantError::Unavailable(e.to_string()),
            ProviderHttpError::Body(m) => GrantError::Invalid(m),
        }
    }
}

/// Classifies a token endpoint answer that is not a success (`status` is 4xx here; 5xx
/// never reaches this point: the HTTP client reports it as unavailable).
pub fn classify(status: StatusCode, body: &[u8]) -> GrantError {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let code = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error);
    match code.as_deref() {
        // The grant itself is dead. `invalid_request` is what several providers answer
        // for a revoked or unknown refresh token.
        Some(
            "invalid_grant"
            | "invalid_request"
            | "invalid_scope"
            | "unauthorized_client"
            | "unsupported_grant_type"
            | "invalid_target"
            | "access_denied",
        ) => GrantError::Rejected(code.unwrap_or_default()),
        // Our own credentials were refused: a configuration fault, not the user's. Ending
        // every session over it would log everyone out; answer 503 and let the operator
        // see it in the logs.
        Some("invalid_client") => GrantError::Unavailable(
            "provider refused the gateway's client credentials (invalid_client)".into(),
        ),
        Some("temporarily_unavailable" | "server_error" | "slow_down") => {
            GrantError::Unavailable(code.unwrap_or_default())
        }
        // DPoP nonce requests and other extensions are handled by the caller before this;
        // an unknown code on a 400 is still a refusal of this grant.
        Some(other) if status == StatusCode::BAD_REQUEST => GrantError::Rejected(other.to_owned()),
        Some(other) => GrantError::Unavailable(format!("{status}: {other}")),
        // No RFC 6749 error body. Some providers answer a dead refresh token with a bare
        // 400 or 403; anything else without a body says nothing about the grant.
        None => match status {
            StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN => {
                GrantError::Rejected(format!("{status} without an error code"))
            }
            _ => GrantError::Unavailable(format!("{status} without an error code")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16, body: &str) -> bool {
        let status = StatusCode::from_u16(status).expect("status");
        matches!(classify(status, body.as_bytes()), GrantError::Rejected(_))
    }

    #[test]
    fn dead_grants_end_the_session() {
        assert!(rejected(400, r#"{"error":"invalid_grant"}"#));
        assert!(rejected(
            400,
            r#"{"error":"invalid_request","error_description":"revoked"}"#
        ));
        assert!(rejected(400, r#"{"error":"something_new"}"#));
        assert!(rejected(400, ""));
        assert!(rejected(403, ""));
        assert!(rejected(403, "<html>Forbidden</html>"));
    }

    #[test]
    fn our_own_faults_and_overload_keep_the_session() {
        assert!(!rejected(401, r#"{"error":"invalid_client"}"#));
        assert!(!rejected(400, r#"{"error":"invalid_client"}"#));
        assert!(!rejected(400, r#"{"error":"temporarily_unavailable"}"#));
        assert!(!rejected(429, ""));
        assert!(!rejected(401, ""));
        assert!(!rejected(404, "not found"));
    }
}
