//! Cookie headers from the browser: finding our cookies, parsing the session ID, opening
//! a sealed login-state cookie. Nothing may panic; a value that opens must have been
//! sealed by the key ring.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::bff::login::LoginState;
use tokengate::crypto::{self, cookie, KeyRing};
use tokengate::session::SessionId;

fuzz_target!(|data: &[u8]| {
    let ring = KeyRing::new(&[[7u8; 32], [9u8; 32]]).expect("ring");
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        // Not a header value hyper would hand us; the sealed-envelope path still runs.
        let _ = ring.open(data, b"tokengate-login-x");
        return;
    };
    let mut headers = http::HeaderMap::new();
    headers.append(http::header::COOKIE, value);
    for name in ["tokengate", "__Host-Http-tokengate"] {
        if let cookie::Lookup::One(v) = cookie::find(&headers, name) {
            if let Some(id) = SessionId::parse(v) {
                assert_eq!(id.secret(), v);
                assert_eq!(SessionId::store_key_of(v), Some(id.store_key()));
            } else {
                assert!(SessionId::store_key_of(v).is_none());
            }
            if let Some(sealed) = crypto::b64url_decode(v) {
                if let Ok(plain) = ring.open(&sealed, name.as_bytes()) {
                    let _ = serde_json::from_slice::<LoginState>(&plain);
                }
            }
        }
    }
    let others = cookie::scan(&headers, "tokengate").mix.others;
    let rest = cookie::without_own(&headers);
    // What the rewrite decides from the one look must agree with the rewrite itself.
    assert_eq!(rest.is_some(), others, "others: {others}, rest: {rest:?}");
    if let Some(rest) = rest {
        for pair in rest.split(';') {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
            assert!(!cookie::CookieNames::is_own(name), "our cookie survived: {rest}");
        }
    }
});
