//! Cookie headers from the browser, as bytes: finding our cookies, parsing the session
//! ID, opening a sealed login-state cookie, and the header that goes upstream without ours.
//!
//! The input is one `Cookie` header value (any bytes a header can hold, non-UTF-8
//! included). Invariants: nothing panics; a session ID found parses only in its one form;
//! a value that opens must have been sealed by the key ring; the rewrite's decision (the
//! mix) agrees with the rewrite; no pair of ours survives `without_own` (pairs split on
//! `;` as bytes, the name before the first `=`, trimmed), and every other pair does, in
//! order.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tokengate::bff::login::LoginState;
use tokengate::crypto::{self, cookie, KeyRing};
use tokengate::session::SessionId;

const LABELS: &[&str] = &[
    "a header value, invariants checked",
    "one of ours beside others",
];

fn is_gateway_cookie(name: &[u8]) -> bool {
    name == b"tokengate"
        || name == b"__Host-Http-tokengate"
        || name.starts_with(b"tokengate-login-")
        || name.starts_with(b"__Host-tokengate-login-")
}

/// `(name, pair)` of every pair: split on `;`, trimmed, the name before the first `=`.
fn pairs(v: &[u8]) -> Vec<(&[u8], &[u8])> {
    v.split(|&b| b == b';')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let name = match p.iter().position(|&b| b == b'=') {
                Some(at) => p[..at].trim_ascii(),
                None => p,
            };
            (name, p)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    common::input("cookie", LABELS, data);
    let ring = KeyRing::new(&[[7u8; 32], [9u8; 32]]).expect("ring");
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        // Not a header value hyper would hand us; the sealed-envelope path still runs.
        let _ = ring.open(data, b"tokengate-login-x");
        return;
    };
    common::hit(0);
    let mut headers = http::HeaderMap::new();
    headers.append(http::header::COOKIE, value.clone());
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
    let sent = pairs(value.as_bytes());
    if sent.iter().any(|(n, _)| is_gateway_cookie(n))
        && sent.iter().any(|(n, _)| !is_gateway_cookie(n))
    {
        common::hit(1);
    }
    let mix = cookie::scan(&headers, "tokengate").mix;
    assert_eq!(mix.own, sent.iter().any(|(n, _)| is_gateway_cookie(n)));
    let rest = cookie::without_own(&headers);
    // What the rewrite decides from the one look must agree with the rewrite itself.
    assert_eq!(
        rest.is_some(),
        mix.others,
        "others: {}, rest: {rest:?}",
        mix.others
    );
    let kept: Vec<&[u8]> = rest.as_ref().map_or(vec![], |r| {
        pairs(r.as_bytes()).into_iter().map(|(_, p)| p).collect()
    });
    for p in &kept {
        let (name, _) = pairs(p)[0];
        assert!(!is_gateway_cookie(name), "our cookie survived: {rest:?}");
    }
    let expected: Vec<&[u8]> = sent
        .iter()
        .filter(|(n, _)| !is_gateway_cookie(n))
        .map(|(_, p)| *p)
        .collect();
    assert_eq!(kept, expected, "the other cookies, as sent");
});
