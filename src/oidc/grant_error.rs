//! What a failed grant means for the session, decided on the answer's kind (habit 7).
//!
//! oauth2-proxy decides by matching error strings; here the token endpoint's answer is
//! classified once — by HTTP status and the RFC 6749 §5.2 `error` code — and callers
//! `match` on [`GrantError`], and, when they care why, on its typed cause: a [`Refusal`],
//! an [`Unavailable`] or an [`Invalid`].
//!
//! Each message includes its cause's, so that a log line's `error = %e` reads whole; the
//! cause is also the error's `source()`, typed, for whoever inspects it. No message
//! carries a token: causes hold error codes, statuses and parser errors, never a
//! credential.

use std::fmt;
use std::sync::Arc;

use http::StatusCode;

use super::http_client::ProviderHttpError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum GrantError {
    /// The provider refused the grant for good (`invalid_grant` and kin): the refresh
    /// token or code is dead, the session it belongs to is over.
    #[error("provider refused the grant: {0}")]
    Rejected(#[source] Refusal),
    /// No usable answer: unreachable, timed out, 5xx, or our own client credentials
    /// refused. Nothing is known to be dead; keep the session and try again later.
    #[error("provider unavailable: {0}")]
    Unavailable(#[source] Unavailable),
    /// An answer that must not be accepted: malformed, or an ID token that fails
    /// validation.
    #[error("provider answer refused: {0}")]
    Invalid(#[source] Invalid),
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

/// An OAuth 2.0 `error` code (RFC 6749 §5.2, RFC 8707 `invalid_target`), as the
/// provider sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidClient,
    InvalidTarget,
    UnauthorizedClient,
    UnsupportedGrantType,
    AccessDenied,
    TemporarilyUnavailable,
    ServerError,
    SlowDown,
    /// A code this gateway does not know.
    Other(Box<str>),
}

impl ErrorCode {
    pub fn parse(code: &str) -> ErrorCode {
        use ErrorCode::*;
        match code {
            "invalid_grant" => InvalidGrant,
            "invalid_request" => InvalidRequest,
            "invalid_scope" => InvalidScope,
            "invalid_client" => InvalidClient,
            "invalid_target" => InvalidTarget,
            "unauthorized_client" => UnauthorizedClient,
            "unsupported_grant_type" => UnsupportedGrantType,
            "access_denied" => AccessDenied,
            "temporarily_unavailable" => TemporarilyUnavailable,
            "server_error" => ServerError,
            "slow_down" => SlowDown,
            other => Other(other.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        use ErrorCode::*;
        match self {
            InvalidGrant => "invalid_grant",
            InvalidRequest => "invalid_request",
            InvalidScope => "invalid_scope",
            InvalidClient => "invalid_client",
            InvalidTarget => "invalid_target",
            UnauthorizedClient => "unauthorized_client",
            UnsupportedGrantType => "unsupported_grant_type",
            AccessDenied => "access_denied",
            TemporarilyUnavailable => "temporarily_unavailable",
            ServerError => "server_error",
            SlowDown => "slow_down",
            Other(code) => code,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the provider refused a grant for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// With its RFC 6749 `error` code.
    #[error("{0}")]
    Code(ErrorCode),
    /// A bare 400 or 403, the way some providers answer a dead refresh token.
    #[error("{0} without an error code")]
    Status(StatusCode),
}

/// Why no usable answer came.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Unavailable {
    /// Unreachable, timed out, or a 5xx.
    #[error("{0}")]
    Http(#[source] Arc<ProviderHttpError>),
    /// Our own credentials were refused (`invalid_client`): a configuration fault.
    #[error("provider refused the gateway's client credentials (invalid_client)")]
    ClientRefused,
    /// `temporarily_unavailable`, `server_error`, `slow_down`.
    #[error("{0}")]
    Overloaded(ErrorCode),
    /// An error code on an answer other than 400 that says nothing about the grant.
    #[error("{status}: {code}")]
    Unexpected { status: StatusCode, code: ErrorCode },
    /// A 4xx other than 400 and 403, without an error code.
    #[error("{0} without an error code")]
    Status(StatusCode),
    /// Discovery has not succeeded yet: there is no provider to ask.
    #[error("provider not discovered yet")]
    NotDiscovered,
}

/// What could not be used: the provider's answer, or, rarely, the request we would send
/// it (kept with the answers: neither the session's nor the provider's availability is
/// in question).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Invalid {
    /// An answer body that could not be read (too large, broken off).
    #[error("{0}")]
    Body(#[source] Arc<ProviderHttpError>),
    #[error("unreadable token response: {0}")]
    TokenResponse(#[source] Arc<serde_json::Error>),
    #[error("token_type {found:?} where {expected} was asked for")]
    TokenType {
        found: Option<String>,
        expected: &'static str,
    },
    #[error("empty access_token")]
    EmptyAccessToken,
    #[error("access token is not a valid header value")]
    AccessTokenNotHeader,
    #[error("token response has no id_token")]
    NoIdToken,
    #[error("ID token unreadable: {0}")]
    IdTokenUnreadable(#[source] Arc<serde_json::Error>),
    #[error("ID token rejected: {0}")]
    IdTokenRejected(#[source] openidconnect::ClaimsVerificationError),
    #[error("ID token is not a compact JWT")]
    IdTokenNotJwt,
    #[error("ID token claims: {0}")]
    IdTokenClaims(#[source] Arc<serde_json::Error>),
    /// OpenID Connect Core §12.2: a refreshed ID token must name the same `sub`.
    #[error("refreshed ID token names another subject")]
    IdTokenSubject,
    #[error("userinfo answered {0}")]
    UserinfoStatus(StatusCode),
    #[error("userinfo answered other than JSON (signed or encrypted answers are not supported)")]
    UserinfoNotJson,
    #[error("userinfo answer: {0}")]
    UserinfoUnreadable(#[source] Arc<serde_json::Error>),
    #[error("userinfo names another subject")]
    UserinfoSubject,
    #[error("unreadable PAR response: {0}")]
    ParResponse(#[source] Arc<serde_json::Error>),
    /// A grant of the gateway's own (client credentials) refused: it ends no session.
    #[error("the gateway's own grant was refused ({0})")]
    OwnGrantRefused(#[source] Refusal),
    /// The session has no refresh token to ask for a token of another audience with.
    #[error("no refresh token to ask for a token of another audience")]
    NoRefreshTokenForAudience,
    /// Refreshes ran, and still no token for the audience came of them.
    #[error("no token for this audience could be obtained")]
    NoTokenForAudience,
    /// Our DPoP proof could not be made (the signing error).
    #[error("DPoP proof not made: {0}")]
    DpopProof(String),
    #[error("DPoP proof: {0}")]
    DpopHeader(#[source] Arc<http::header::InvalidHeaderValue>),
    /// Our client authentication could not be made (the signing error).
    #[error("{0}")]
    ClientAuth(String),
    #[error("request not built: {0}")]
    Request(#[source] Arc<http::Error>),
    #[error("userinfo request: {0}")]
    UserinfoRequest(#[source] Arc<http::Error>),
}

impl From<Refusal> for GrantError {
    fn from(r: Refusal) -> GrantError {
        GrantError::Rejected(r)
    }
}

impl From<Unavailable> for GrantError {
    fn from(u: Unavailable) -> GrantError {
        GrantError::Unavailable(u)
    }
}

impl From<Invalid> for GrantError {
    fn from(i: Invalid) -> GrantError {
        GrantError::Invalid(i)
    }
}

impl From<ProviderHttpError> for GrantError {
    fn from(e: ProviderHttpError) -> GrantError {
        match e {
            ProviderHttpError::Unreachable(_)
            | ProviderHttpError::Timeout
            | ProviderHttpError::ServerError(_) => Unavailable::Http(Arc::new(e)).into(),
            ProviderHttpError::Body(_) => Invalid::Body(Arc::new(e)).into(),
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
        .map(|b| ErrorCode::parse(&b.error));
    use ErrorCode::*;
    match code {
        // The grant itself is dead. `invalid_request` is what several providers answer
        // for a revoked or unknown refresh token.
        Some(
            code @ (InvalidGrant | InvalidRequest | InvalidScope | UnauthorizedClient
            | UnsupportedGrantType | InvalidTarget | AccessDenied),
        ) => Refusal::Code(code).into(),
        // Our own credentials were refused: a configuration fault, not the user's. Ending
        // every session over it would log everyone out; answer 503 and let the operator
        // see it in the logs.
        Some(InvalidClient) => Unavailable::ClientRefused.into(),
        Some(code @ (TemporarilyUnavailable | ServerError | SlowDown)) => {
            Unavailable::Overloaded(code).into()
        }
        // DPoP nonce requests and other extensions are handled by the caller before this;
        // an unknown code on a 400 is still a refusal of this grant.
        Some(code @ Other(_)) if status == StatusCode::BAD_REQUEST => Refusal::Code(code).into(),
        Some(code @ Other(_)) => Unavailable::Unexpected { status, code }.into(),
        // No RFC 6749 error body. Some providers answer a dead refresh token with a bare
        // 400 or 403; anything else without a body says nothing about the grant.
        None => match status {
            StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN => Refusal::Status(status).into(),
            _ => Unavailable::Status(status).into(),
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

    #[test]
    fn the_cause_is_kept_and_reads_as_before() {
        let e = classify(StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant"}"#);
        assert!(matches!(
            e,
            GrantError::Rejected(Refusal::Code(ErrorCode::InvalidGrant))
        ));
        assert_eq!(e.to_string(), "provider refused the grant: invalid_grant");
        let e = classify(StatusCode::UNAUTHORIZED, br#"{"error":"invalid_client"}"#);
        assert!(matches!(
            e,
            GrantError::Unavailable(Unavailable::ClientRefused)
        ));
        let e = classify(StatusCode::FORBIDDEN, b"");
        assert_eq!(
            e.to_string(),
            "provider refused the grant: 403 Forbidden without an error code"
        );
        let e = classify(StatusCode::CONFLICT, br#"{"error":"its_own"}"#);
        assert_eq!(e.to_string(), "provider unavailable: 409 Conflict: its_own");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(source.to_string(), "409 Conflict: its_own");
    }
}
