//! CSRF defence for the SPA's calls (token routes and `/bff/user`, `/bff/logout` POST).
//!
//! The custom header `X-CSRF: 1` cannot be sent cross-site without a CORS preflight, which
//! the gateway never approves; and an `Origin` other than our own, or a
//! `Sec-Fetch-Site: cross-site`, is refused outright, for every method (a CORS-safelisted
//! GET would skip the preflight).

use http::{HeaderMap, HeaderName};

use super::Reject;

static X_CSRF: HeaderName = HeaderName::from_static("x-csrf");
static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

pub fn check(public_origin: &str, headers: &HeaderMap) -> Result<(), Reject> {
    // One pass over the names present rather than a hashed lookup of each of the three
    // (two of them usually absent): this runs on every request to a token route. The
    // first value of each counts, as `HeaderMap::get` would take it.
    let (mut csrf, mut origin, mut fetch_site) = (None, None, None);
    for (name, value) in headers {
        if name == X_CSRF {
            csrf = csrf.or(Some(value));
        } else if name == http::header::ORIGIN {
            origin = origin.or(Some(value));
        } else if name == SEC_FETCH_SITE {
            fetch_site = fetch_site.or(Some(value));
        }
    }
    if csrf.map(|v| v.as_bytes()) != Some(b"1") {
        return Err(Reject::CsrfHeaderMissing);
    }
    if origin.is_some_and(|o| o.as_bytes() != public_origin.as_bytes()) {
        return Err(Reject::ForeignOrigin);
    }
    if fetch_site.is_some_and(|v| v.as_bytes() == b"cross-site") {
        return Err(Reject::ForeignOrigin);
    }
    Ok(())
}

/// A protocol upgrade (WebSocket) on a `websocket = true` route. A browser cannot add
/// `X-CSRF` to a WebSocket but always sends its page's `Origin`: an `Origin` of our own
/// stands in for the header. An upgrade without `Origin` comes from no browser and needs
/// the header, as any request does.
pub fn check_upgrade(public_origin: &str, headers: &HeaderMap) -> Result<(), Reject> {
    match headers.get(http::header::ORIGIN) {
        None => check(public_origin, headers),
        Some(origin) if origin.as_bytes() != public_origin.as_bytes() => Err(Reject::ForeignOrigin),
        Some(_) => match headers.get(&SEC_FETCH_SITE) {
            Some(v) if v.as_bytes() == b"cross-site" => Err(Reject::ForeignOrigin),
            _ => Ok(()),
        },
    }
}
