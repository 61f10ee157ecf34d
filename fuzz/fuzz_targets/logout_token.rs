//! Back-channel logout tokens: parsing the compact JWS and checking the claims of any
//! payload. Only a token meeting every rule passes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::oidc::keys;
use tokengate::oidc::logout_token::{self, BACKCHANNEL_EVENT};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = 1_800_000_000;
    if let Ok(jws) = keys::parse(text) {
        let _ = logout_token::validate(&jws.header, &jws.payload, "https://op", "gw", now);
    }
    // The payload alone, as if the signature had verified.
    let header = keys::JwsHeader {
        alg: "RS256".into(),
        kid: None,
        typ: None,
    };
    if let Ok(claims) = logout_token::validate(&header, data, "https://op", "gw", now) {
        let v: serde_json::Value = serde_json::from_slice(data).expect("valid means JSON");
        assert!(v.get("nonce").is_none());
        assert!(v["events"][BACKCHANNEL_EVENT].is_object());
        assert!(claims.sid.is_some() || claims.sub.is_some());
    }
});
