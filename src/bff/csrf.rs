//! CSRF defence for the SPA's calls (token routes and `/bff/user`, `/bff/logout` POST).
//!
//! The custom header `X-CSRF: 1` cannot be sent cross-site without a CORS preflight, which
//! the gateway never approves; and an `Origin` other than our own, or a
//! `Sec-Fetch-Site: cross-site`, is refused outright, for every method (a CORS-safelisted
//! GET would skip the preflight).

use http::{HeaderMap, HeaderName};

use crate::app::Gateway;
use crate::server::Reject;

// Names made once: looking a header up by `&str` parses and lower-cases the name on
// every call, and this runs on every request to a token route.
static X_CSRF: HeaderName = HeaderName::from_static("x-csrf");
static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

pub fn check(gw: &Gateway, headers: &HeaderMap) -> Result<(), Reject> {
    if headers.get(&X_CSRF).map(|v| v.as_bytes()) != Some(b"1") {
        return Err(Reject::CsrfHeaderMissing);
    }
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        if origin.as_bytes() != gw.config.server.public_origin.as_bytes() {
            return Err(Reject::ForeignOrigin);
        }
    }
    if headers
        .get(&SEC_FETCH_SITE)
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return Err(Reject::ForeignOrigin);
    }
    Ok(())
}
