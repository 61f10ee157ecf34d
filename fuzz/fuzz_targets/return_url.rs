//! `returnUrl`: whatever is accepted is a path on our own origin that a browser cannot
//! read as another origin or a header split.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use tokengate::server::return_url::is_local;

const LABELS: &[&str] = &["accepted, invariants checked"];

fuzz_target!(|data: &[u8]| {
    common::input("return_url", LABELS, data);
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    if is_local(url) {
        common::hit(0);
        assert!(url.starts_with('/'));
        assert!(!url.starts_with("//") && !url.starts_with("/\\"));
        assert!(!url.contains(['\r', '\n', '\\', '\0']));
        // Resolved against our origin the way a browser resolves a Location (WHATWG URL
        // parsing), it stays on our origin.
        let base = url::Url::parse("https://app.example/").expect("base");
        let joined = base.join(url).expect("a local path resolves");
        assert_eq!(joined.origin(), base.origin(), "{url:?}");
    }
});
