//! Step-up: an upstream's `WWW-Authenticate` (RFC 9470) and a `/bff/login` query. Whatever
//! challenge an upstream sends, the `login_url` the gateway makes of it is one its own
//! `/bff/login` accepts, returning to the calling page; and whatever query
//! `/bff/login` accepts carries only values of the syntax each parameter allows.
//!
//! Input: the header's bytes, a newline, then the query.
#![no_main]

mod common;

use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use tokengate::bff::login::read_query;
use tokengate::server::return_url::is_local;
use tokengate::oidc::params::{self, Prompt};
use tokengate::proxy::access::upstream_step_up;
use tokengate::server::Reject;

const LABELS: &[&str] = &[
    "challenge made a login_url",
    "login_url asks for acr or max_age",
    "query accepted, values checked",
];

const ORIGIN: &str = "https://app.example";

fuzz_target!(|data: &[u8]| {
    common::input("step_up", LABELS, data);
    let (header, query) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(value) = HeaderValue::from_bytes(header) {
        let mut headers = HeaderMap::new();
        headers.append(http::header::WWW_AUTHENTICATE, value);
        let referer = HeaderValue::from_static("https://app.example/page?x=1");
        if let Some(reject) =
            upstream_step_up(StatusCode::UNAUTHORIZED, &headers, Some(&referer), ORIGIN)
        {
            common::hit(0);
            let Reject::StepUpRequired(url) = reject else {
                panic!("an upstream challenge becomes step_up_required only");
            };
            let query = url.strip_prefix("/bff/login?").expect("a /bff/login URL");
            let (return_url, asked) = read_query(query).expect("our own login_url is accepted");
            assert_eq!(return_url, "/page?x=1");
            assert_eq!(asked.prompt, None);
            if asked.acr_values.is_some() || asked.max_age.is_some() {
                common::hit(1);
            }
            // Nothing a challenge cannot name.
            assert!(asked.login_hint.is_none() && asked.ui_locales.is_none());
        }
    }
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    if let Ok((return_url, asked)) = read_query(query) {
        common::hit(2);
        assert!(is_local(&return_url));
        if let Some(Prompt::Interactive(p)) = &asked.prompt {
            assert!(p
                .split(' ')
                .all(|v| ["login", "consent", "select_account"].contains(&v)));
        }
        if let Some(acr) = &asked.acr_values {
            assert!(acr.split(' ').all(params::is_acr_value));
        }
        for (_, v) in asked.pairs() {
            assert!(!v.is_empty() && !v.chars().any(char::is_control), "{v:?}");
        }
    }
});
