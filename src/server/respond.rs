//! The only place where an error becomes an HTTP response (habit 6).
//!
//! Every refusal the gateway answers itself is a [`Reject`] (the JSON error shape) or, on
//! the browser navigations `/bff/login` and `/bff/callback`, a [`PageError`] (an HTML
//! page); their statuses, codes, titles and messages are chosen here by exhaustive
//! `match`es, so a new kind of error cannot slip out as a default 500, and nothing
//! internal (a path, a token, a provider's error text) reaches the client. The one echo
//! is the `error` a provider's sign-in response carries in the browser's own URL
//! ([`PageError::ProviderError`]), escaped.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::net::pool::PooledBody;

/// The body of every response: an upstream's streamed through, or one of our own.
pub type Body = Either<PooledBody, Full<Bytes>>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reject {
    /// The request is malformed; the message is ours, never an echo of input.
    BadRequest(&'static str),
    /// No valid session (absent, unknown, expired, ended, tampered).
    NoSession,
    /// A token route or `/bff/user` without `X-CSRF: 1`.
    CsrfHeaderMissing,
    /// An `Origin` or `Sec-Fetch-Site` that is not our own site.
    ForeignOrigin,
    /// The admin API without the right bearer token.
    AdminUnauthorized,
    NotFound,
    MethodNotAllowed,
    /// A body larger than the endpoint reads.
    PayloadTooLarge,
    /// The route needs a kind of token this gateway cannot obtain.
    TokenUnavailable,
    /// A fault of the gateway itself (a panicked task): nobody else's to blame.
    Internal,
    /// The upstream could not be reached or broke the exchange.
    UpstreamUnreachable,
    /// The upstream did not answer in time.
    UpstreamTimeout,
    /// The upstream's response head is one the gateway will not forward (framing that
    /// could desynchronise the browser's connection, an upgrade nobody asked for).
    UpstreamInvalid,
    /// The provider is down, slow, or not discovered yet; the session is kept.
    ProviderUnavailable,
    /// The provider answered with something we refuse to use; the session is kept.
    ProviderInvalid,
    /// The session store is unreachable.
    StoreUnavailable,
    /// The session's claims do not meet the route's `require` rules; holds the route's
    /// path (never the user's claim values).
    Forbidden(Box<str>),
    /// The route wants a stronger or more recent sign-in (its `acr`/`max_age`, or the
    /// upstream's RFC 9470 challenge); holds the `/bff/login` URL that asks for it.
    StepUpRequired(Box<str>),
    /// A protocol upgrade on a token route without `websocket = true`.
    UpgradeRefused,
    /// A device-bound session's registration or refresh needs a (new) proof: 403 with
    /// the challenge in the named header (`Secure-Session-Registration` or
    /// `Secure-Session-Challenge`), as DBSC asks.
    DeviceProofNeeded(&'static str, HeaderValue),
}

impl From<crate::token::refresh::RefreshError> for Reject {
    fn from(e: crate::token::refresh::RefreshError) -> Reject {
        use crate::token::refresh::RefreshError::*;
        match e {
            Ended(_) | Gone => Reject::NoSession,
            ProviderUnavailable(_) | Timeout => Reject::ProviderUnavailable,
            ProviderInvalid(_) => Reject::ProviderInvalid,
            Store(_) => Reject::StoreUnavailable,
            // A panicked refresh is the gateway's own fault, not the provider's.
            Internal(_) => Reject::Internal,
        }
    }
}

impl Reject {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        let (status, code) = self.status_and_code();
        (status, code, self.message())
    }

    /// The status and the `error` code of each rejection.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        use Reject::*;
        match self {
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            StepUpRequired(_) => (StatusCode::UNAUTHORIZED, "step_up_required"),
            UpgradeRefused => (StatusCode::FORBIDDEN, "upgrade_refused"),
            DeviceProofNeeded(..) => (StatusCode::FORBIDDEN, "device_proof_required"),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            NoSession => (StatusCode::UNAUTHORIZED, "unauthorized"),
            CsrfHeaderMissing => (StatusCode::FORBIDDEN, "csrf"),
            ForeignOrigin => (StatusCode::FORBIDDEN, "csrf"),
            AdminUnauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            NotFound => (StatusCode::NOT_FOUND, "not_found"),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            TokenUnavailable => (StatusCode::BAD_GATEWAY, "token_unavailable"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
            UpstreamUnreachable => (StatusCode::BAD_GATEWAY, "upstream_unreachable"),
            UpstreamInvalid => (StatusCode::BAD_GATEWAY, "upstream_invalid"),
            UpstreamTimeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
            ProviderUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable"),
            ProviderInvalid => (StatusCode::BAD_GATEWAY, "provider_error"),
            StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
        }
    }

    /// The `message` of each rejection (but a [`Reject::Forbidden`]'s, which names its
    /// route: [`Reject::body`]).
    fn message(&self) -> &'static str {
        use Reject::*;
        match self {
            Forbidden(_) => "this route is not open to this user",
            StepUpRequired(_) => {
                "this route needs a stronger or more recent sign-in; send the user to login_url"
            }
            UpgradeRefused => "this route does not accept WebSocket upgrades",
            DeviceProofNeeded(..) => "sign the challenge with the session's device key",
            BadRequest(m) => m,
            NoSession => "no valid session; log in at /bff/login",
            CsrfHeaderMissing => "the request must carry the header X-CSRF: 1",
            ForeignOrigin => "cross-site requests are not allowed",
            AdminUnauthorized => "the admin API needs Authorization: Bearer <admin.token>",
            NotFound => "no route for this path",
            PayloadTooLarge => "the request body is too large",
            MethodNotAllowed => "this method is not allowed here",
            TokenUnavailable => "no token can be obtained for this route",
            Internal => "the gateway failed unexpectedly; try again",
            UpstreamUnreachable => "the upstream could not be reached",
            UpstreamInvalid => "the upstream gave an answer that cannot be forwarded",
            UpstreamTimeout => "the upstream did not answer in time",
            ProviderUnavailable => "the identity provider is unavailable; try again shortly",
            ProviderInvalid => "the identity provider gave an unusable answer",
            StoreUnavailable => "the session store is unavailable; try again shortly",
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The JSON error response of DESIGN.md: `{ "error": …, "message": … }`.
    pub fn response(&self) -> Response<Body> {
        let mut resp = json(self.status(), self.body());
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if let Reject::DeviceProofNeeded(name, value) = self {
            resp.headers_mut()
                .insert(http::HeaderName::from_static(name), value.clone());
        }
        resp
    }

    /// The body of [`Reject::response`]: one line of JSON, printable ASCII but for a
    /// route path's own bytes.
    pub fn body(&self) -> String {
        let (_, code, message) = self.parts();
        match self {
            Reject::Forbidden(route) => serde_json::json!({
                "error": code,
                "message": format!("the route {route} is not open to this user"),
            }),
            Reject::StepUpRequired(login_url) => serde_json::json!({
                "error": code, "message": message, "login_url": login_url,
            }),
            _ => serde_json::json!({ "error": code, "message": message }),
        }
        .to_string()
    }
}

/// Why a browser navigation (`/bff/login`, `/bff/callback`) cannot go on. A person is
/// looking at the answer, so it is an HTML page ([`PageError::response`]), not the JSON
/// shape of a [`Reject`]; its status, title and detail are chosen in
/// [`PageError::parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageError {
    /// `/bff/login`'s query string is refused; holds the page's explanation
    /// (`bff::login::read_query`).
    LoginRefused(&'static str),
    /// `/bff/login` cannot start a sign-in: the provider is not discovered yet, its
    /// pushed authorization request failed, or no DPoP key could be made.
    LoginUnavailable,
    /// `/bff/login` could not write down its login state.
    LoginFailed,
    /// `/bff/callback` refuses the sign-in response or what the provider issued for it;
    /// holds the page's explanation.
    SignInRefused(&'static str),
    /// The provider answered the sign-in with an `error`; holds it and its
    /// `error_description` as the browser's URL carries them (anyone can write them,
    /// hence escaped on the page).
    ProviderError { error: String, description: String },
    /// `/bff/callback` cannot reach the provider (not discovered yet, code exchange,
    /// userinfo).
    ProviderUnavailable,
    /// `/bff/callback` cannot store the new session.
    StoreUnavailable,
}

impl PageError {
    /// The status, title and detail of each page (the last two escaped by [`error_page`]).
    fn parts(&self) -> (StatusCode, &'static str, Cow<'_, str>) {
        use PageError::*;
        const UNAVAILABLE: &str = "Sign-in is unavailable";
        match self {
            LoginRefused(why) => (StatusCode::BAD_REQUEST, "Login refused", (*why).into()),
            LoginUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "The identity provider cannot be reached right now. Please try again in a moment."
                    .into(),
            ),
            LoginFailed => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Login failed",
                "Please try again.".into(),
            ),
            SignInRefused(why) => (StatusCode::BAD_REQUEST, "Sign-in failed", (*why).into()),
            ProviderError { error, description } => (
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                format!("The identity provider answered: {error}. {description}").into(),
            ),
            ProviderUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "The identity provider cannot be reached. Please try again.".into(),
            ),
            StoreUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                UNAVAILABLE,
                "Sessions cannot be stored right now. Please try again.".into(),
            ),
        }
    }

    /// Whether the page carries `Retry-After: 5` (as yet only the login's; the callback's
    /// pages ask the user to sign in again rather than the browser to retry).
    fn retry_after(&self) -> bool {
        use PageError::*;
        match self {
            LoginUnavailable => true,
            LoginRefused(_) | LoginFailed | SignInRefused(_) | ProviderError { .. } => false,
            ProviderUnavailable | StoreUnavailable => false,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The HTML error page.
    pub fn response(&self) -> Response<Body> {
        let (status, title, detail) = self.parts();
        let mut resp = error_page(status, title, &detail);
        if self.retry_after() {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

/// A JSON response of ours; never cached (it may describe a session).
pub fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A plain-text response (health and metrics).
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(body))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A redirect of ours (302), never cached.
pub fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::new())));
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            h.insert(http::header::LOCATION, v);
        }
        // Every location we build is from validated parts; if one still is not a valid
        // header value, send the browser home rather than answer a broken redirect.
        Err(_) => {
            h.insert(http::header::LOCATION, HeaderValue::from_static("/"));
        }
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The HTML page of a [`PageError`] (the only HTML we answer). `title` and `detail` are
/// escaped: the detail may come from the provider's error parameters.
fn error_page(status: StatusCode, title: &str, detail: &str) -> Response<Body> {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem\">\
         <h1>{t}</h1><p>{d}</p><p><a href=\"/\">Back to the application</a></p></body></html>",
        t = escape_html(title),
        d = escape_html(detail),
    );
    let mut resp = text(status, "text/html; charset=utf-8", body);
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(
        http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    resp
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_unavailable_carries_retry_after() {
        for r in [Reject::ProviderUnavailable, Reject::StoreUnavailable] {
            assert!(r.response().headers().contains_key(RETRY_AFTER));
        }
        assert!(!Reject::NoSession
            .response()
            .headers()
            .contains_key(RETRY_AFTER));
    }

    #[test]
    fn a_page_escapes_what_the_provider_sent() {
        let page = PageError::ProviderError {
            error: "access_denied".into(),
            description: "<b>no</b>".into(),
        };
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        let (_, title, detail) = page.parts();
        assert_eq!(title, "Sign-in failed");
        assert_eq!(
            detail,
            "The identity provider answered: access_denied. <b>no</b>"
        );
        let resp = page.response();
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(resp.headers()[CACHE_CONTROL], "no-store");
        assert!(!resp.headers().contains_key(RETRY_AFTER));
        assert!(PageError::LoginUnavailable
            .response()
            .headers()
            .contains_key(RETRY_AFTER));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<script>\"x\"&'"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;"
        );
    }
}
