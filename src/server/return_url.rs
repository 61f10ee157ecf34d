//! Where the browser may be sent back to after login: local paths only (no open redirect).

/// Longest `returnUrl` accepted.
const MAX_LEN: usize = 2048;

/// Accepts a path on our own origin (`/app/page?x=1#frag`) and nothing that a browser
/// could read as another origin: no scheme, no `//host` or `/\host` (browsers treat `\`
/// as `/`), no control characters (header splitting), nothing over 2 KiB.
pub fn is_local(url: &str) -> bool {
    let b = url.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_LEN
        && b[0] == b'/'
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && !b
            .iter()
            .any(|c| c.is_ascii_control() || *c == b'\\' || *c > 0x7e || *c == b' ')
}

#[cfg(test)]
mod tests {
    use super::is_local;

    #[test]
    fn local_paths_are_accepted() {
        for ok in ["/", "/app", "/app/page?x=1&y=%2F#frag", "/%2F%2Fhost"] {
            assert!(is_local(ok), "{ok}");
        }
    }

    #[test]
    fn anything_that_leaves_the_origin_is_refused() {
        for bad in [
            "",
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "/ok\r\nSet-Cookie: x=1",
            "/tab\there",
            "evil.example",
            "/ünicode",
        ] {
            assert!(!is_local(bad), "{bad:?}");
        }
        assert!(!is_local(&format!("/{}", "a".repeat(3000))));
    }

    #[test]
    fn what_is_accepted_resolves_on_our_origin() {
        // Fuzzing regression: `/'/\`` is accepted (a browser takes it as a path) though
        // http::Uri refuses a backtick; what matters is where a browser resolves it.
        let base = url::Url::parse("https://app.example/").expect("base");
        for ok in [
            "/'/`",
            "/a/../..//x",
            "/%2F%2Fevil.example",
            "/@evil.example",
        ] {
            assert!(is_local(ok), "{ok}");
            let joined = base.join(ok).expect("resolves");
            assert_eq!(joined.origin(), base.origin(), "{ok}");
        }
    }
}
