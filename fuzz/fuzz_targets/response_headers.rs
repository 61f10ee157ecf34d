//! The response header rewrite, on the bytes that go to the browser.
//!
//! Each input is an upstream's response header map built from structured parts:
//! `Set-Cookie` headers naming the gateway's cookies in any letter case, look-alikes or
//! anything, with any bytes (non-UTF-8 included) in the value and attributes;
//! `Content-Length` (none, one or several, valid or not); `Transfer-Encoding` (`chunked`,
//! `gzip`, lists, odd spacing and case); `Connection` lists; hop-by-hop headers,
//! `Proxy-Authenticate` and any other name. It goes through `rewrite_response`, as for a
//! `101` or any other status. Invariants:
//! - framing: a head with one `Content-Length` or none and no `Transfer-Encoding` is
//!   always forwarded; a forwarded head never has `Content-Length` beside
//!   `Transfer-Encoding`, never two `Content-Length`, and a transfer coding only if it is
//!   `chunked` alone;
//! - no `Set-Cookie` reaches the browser that sets a gateway cookie: the name a browser
//!   reads (before the first `=` of the first `;` segment, trimmed; none without `=`) is
//!   never `tokengate`, `__Host-Http-tokengate`, `tokengate-login-*` or
//!   `__Host-tokengate-login-*`, in any letter case, whatever the bytes around it; every
//!   other `Set-Cookie` arrives as sent, in order;
//! - no hop-by-hop header (`Connection`, `Keep-Alive`, `Proxy-Connection`, `TE`,
//!   `Trailer`, `Transfer-Encoding`, `Upgrade`, `Proxy-Authorization`,
//!   `Proxy-Authenticate`) and no header `Connection` listed; on a `101`, `Upgrade` as
//!   sent, `Connection: upgrade`, and no other hop-by-hop or listed header;
//! - every other header arrives as sent.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tokengate::server::headers;

const LABELS: &[&str] = &[
    "rewritten or refused, invariants checked",
    "forwarded with a gateway Set-Cookie dropped",
    "refused for its framing",
    "non-UTF-8 bytes in a Set-Cookie",
    "a 101",
];

const NAMES: &[&str] = &[
    "set-cookie",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "content-length",
    "content-type",
    "content-encoding",
    "location",
    "www-authenticate",
    "cache-control",
    "x-custom",
];

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Any(String),
}

impl Name {
    fn header(&self) -> Option<HeaderName> {
        match self {
            Name::Known(i) => Some(HeaderName::from_static(
                NAMES[usize::from(*i) % NAMES.len()],
            )),
            Name::Any(s) => HeaderName::from_bytes(s.as_bytes()).ok(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum CookieName {
    Session,
    SecureSession,
    Login(String),
    SecureLogin(String),
    /// One of ours or a look-alike, with the case of each letter flipped by a bit.
    Cased(u8, u32),
    Any(Vec<u8>),
}

impl CookieName {
    fn bytes(&self) -> Vec<u8> {
        match self {
            CookieName::Session => b"tokengate".to_vec(),
            CookieName::SecureSession => b"__Host-Http-tokengate".to_vec(),
            CookieName::Login(s) => [b"tokengate-login-", s.as_bytes()].concat(),
            CookieName::SecureLogin(s) => [b"__Host-tokengate-login-", s.as_bytes()].concat(),
            CookieName::Cased(i, flips) => {
                let base = [
                    &b"tokengate"[..],
                    b"__Host-Http-tokengate",
                    b"tokengate-login-abc",
                    b"__Host-tokengate-login-x",
                    b"tokengatex",
                    b"tokengate-login",
                    b"__Host-Http-tokengate2",
                    b"app",
                ][usize::from(*i) % 8];
                base.iter()
                    .enumerate()
                    .map(|(j, &b)| {
                        let flip = flips >> (j % 32) & 1 == 1;
                        if flip && b.is_ascii_alphabetic() {
                            b ^ 0x20
                        } else {
                            b
                        }
                    })
                    .collect()
            }
            CookieName::Any(b) => b.clone(),
        }
    }
}

const CODINGS: &[&[u8]] = &[
    b"chunked",
    b"Chunked",
    b" chunked\t",
    b"gzip",
    b"gzip, chunked",
    b"chunked, gzip",
    b"chunked,",
    b",chunked",
    b"identity",
    b"",
];

#[derive(Arbitrary, Debug)]
enum Part {
    SetCookie {
        space_before: bool,
        name: CookieName,
        equals: bool,
        value: Vec<u8>,
        attributes: Vec<u8>,
    },
    ContentLength(u64),
    ContentLengthText(Vec<u8>),
    TransferEncoding(u8),
    TransferEncodingText(Vec<u8>),
    Connection(Vec<(Name, u8)>),
    Header(Name, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    parts: Vec<Part>,
    switching: bool,
}

/// Bytes a header value can hold: each one it cannot becomes a byte from 0x80 up.
fn value(bytes: &[u8]) -> HeaderValue {
    let fixed: Vec<u8> = bytes
        .iter()
        .map(|&b| {
            if (b < 0x20 && b != b'\t') || b == 0x7f {
                b | 0x80
            } else {
                b
            }
        })
        .collect();
    HeaderValue::from_bytes(&fixed).expect("a valid value")
}

/// The cookie name a browser reads from a `Set-Cookie` value (RFC 6265bis §5.7): the
/// part of the first `;` segment before its first `=`, trimmed; none without `=`.
fn browser_cookie_name(v: &[u8]) -> Option<&[u8]> {
    let first = v.split(|&b| b == b';').next().unwrap_or_default();
    let at = first.iter().position(|&b| b == b'=')?;
    Some(first[..at].trim_ascii())
}

/// A gateway cookie name in any letter case.
fn is_gateway_cookie_any_case(name: &[u8]) -> bool {
    let n = name.to_ascii_lowercase();
    n == b"tokengate"
        || n == b"__host-http-tokengate"
        || n.starts_with(b"tokengate-login-")
        || n.starts_with(b"__host-tokengate-login-")
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    h.get_all(name).iter().map(HeaderValue::as_bytes).collect()
}

fuzz_target!(|data: &[u8]| {
    common::input("response_headers", LABELS, data);
    let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    let mut sent = HeaderMap::new();
    for part in &input.parts {
        match part {
            Part::SetCookie {
                space_before,
                name,
                equals,
                value: v,
                attributes,
            } => {
                let mut bytes = Vec::new();
                if *space_before {
                    bytes.push(b' ');
                }
                bytes.extend_from_slice(&name.bytes());
                if *equals {
                    bytes.push(b'=');
                }
                bytes.extend_from_slice(v);
                if !attributes.is_empty() {
                    bytes.extend_from_slice(b"; ");
                    bytes.extend_from_slice(attributes);
                }
                sent.append(http::header::SET_COOKIE, value(&bytes));
            }
            Part::ContentLength(n) => {
                sent.append(http::header::CONTENT_LENGTH, HeaderValue::from(*n));
            }
            Part::ContentLengthText(t) => {
                sent.append(http::header::CONTENT_LENGTH, value(t));
            }
            Part::TransferEncoding(i) => {
                let coding = CODINGS[usize::from(*i) % CODINGS.len()];
                sent.append(http::header::TRANSFER_ENCODING, value(coding));
            }
            Part::TransferEncodingText(t) => {
                sent.append(http::header::TRANSFER_ENCODING, value(t));
            }
            Part::Connection(tokens) => {
                let mut list = Vec::new();
                for (i, (name, style)) in tokens.iter().enumerate() {
                    if i > 0 {
                        list.extend_from_slice(if style % 2 == 0 { b", " } else { b"," });
                    }
                    let token = match name {
                        Name::Known(_) => name.header().map(|n| n.as_str().to_owned()),
                        Name::Any(s) => Some(s.clone()),
                    }
                    .unwrap_or_default();
                    let token = match style % 4 {
                        0 | 1 => token,
                        2 => token.to_ascii_uppercase(),
                        _ => format!(" {token}\t"),
                    };
                    list.extend_from_slice(token.as_bytes());
                }
                sent.append(http::header::CONNECTION, value(&list));
            }
            Part::Header(name, v) => {
                if let Some(name) = name.header() {
                    sent.append(name, value(v));
                }
            }
        }
    }
    if std::env::var_os("TOKENGATE_FUZZ_DEBUG").is_some() {
        eprintln!("{input:?}\nsent: {sent:?}");
    }
    let switching = input.switching;
    let mut out = sent.clone();
    let result = headers::rewrite_response(&mut out, switching);
    common::hit(0);
    if switching {
        common::hit(4);
    }
    if sent
        .get_all(http::header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_err())
    {
        common::hit(3);
    }

    // Framing.
    let lengths = sent.get_all(http::header::CONTENT_LENGTH).iter().count();
    let coded = sent.contains_key(http::header::TRANSFER_ENCODING);
    if lengths <= 1 && !coded {
        assert!(result.is_ok(), "a plainly framed head refused: {result:?}");
    }
    if result.is_err() {
        common::hit(2);
        return;
    }
    assert!(
        values(&out, "content-length").len() <= 1,
        "two Content-Length forwarded"
    );
    assert!(
        !(out.contains_key("content-length") && out.contains_key("transfer-encoding")),
        "Content-Length beside Transfer-Encoding"
    );
    if coded {
        let codings: Vec<Vec<u8>> = sent
            .get_all(http::header::TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(|c| c.trim_ascii().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            codings,
            [b"chunked".to_vec()],
            "a coding other than chunked forwarded"
        );
        assert_eq!(lengths, 0);
    }

    // Cookies.
    let listed: Vec<HeaderName> = sent
        .get_all(http::header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter_map(|t| HeaderName::from_bytes(t).ok())
        .filter(|n| !matches!(n.as_str(), "close" | "keep-alive"))
        .collect();
    let mut kept_expected = Vec::new();
    for v in sent.get_all(http::header::SET_COOKIE) {
        let ours = browser_cookie_name(v.as_bytes()).is_some_and(is_gateway_cookie_any_case);
        if !ours {
            kept_expected.push(v.as_bytes());
        }
    }
    for v in out.get_all(http::header::SET_COOKIE) {
        let name = browser_cookie_name(v.as_bytes());
        assert!(
            !name.is_some_and(is_gateway_cookie_any_case),
            "an upstream sets a gateway cookie: {:?}",
            String::from_utf8_lossy(v.as_bytes())
        );
    }
    let kept = values(&out, "set-cookie");
    if kept.len() < values(&sent, "set-cookie").len() {
        common::hit(1);
    }
    // Kept in order (unless `Connection` listed them all); beyond ours, the gateway may
    // drop only what no browser reads as a name (no `=`) yet spells one of ours.
    if listed.iter().any(|n| n == http::header::SET_COOKIE) {
        kept_expected.clear();
    }
    let mut expected = kept_expected.iter().peekable();
    for v in &kept {
        while expected.peek().is_some_and(|e| e != &v) {
            let skipped = expected.next().expect("peeked");
            let first = skipped.split(|&b| b == b';').next().unwrap_or_default();
            assert!(
                !first.contains(&b'=') && is_gateway_cookie_any_case(first.trim_ascii()),
                "a Set-Cookie of someone else's dropped: {:?}",
                String::from_utf8_lossy(skipped)
            );
        }
        assert!(expected.next().is_some(), "a Set-Cookie appeared");
    }
    for skipped in expected {
        let first = skipped.split(|&b| b == b';').next().unwrap_or_default();
        assert!(
            !first.contains(&b'=') && is_gateway_cookie_any_case(first.trim_ascii()),
            "a Set-Cookie of someone else's dropped: {:?}",
            String::from_utf8_lossy(skipped)
        );
    }

    // Hop by hop.
    if switching {
        // The browser needs `Upgrade` and `Connection: upgrade` of a `101`; nothing else
        // that is hop by hop, or that `Connection` listed, is for it.
        assert_eq!(values(&out, "connection"), [&b"upgrade"[..]]);
        assert_eq!(values(&out, "upgrade"), values(&sent, "upgrade"));
        if !common::known("101-hop-by-hop") {
            for name in HOP_BY_HOP
                .iter()
                .filter(|n| !matches!(**n, "connection" | "upgrade"))
            {
                assert!(!out.contains_key(*name), "{name} forwarded on a 101");
            }
            // (`Connection` itself may list `connection` or `upgrade`: both stay, ours.)
            let kept = [http::header::UPGRADE, http::header::CONNECTION];
            for name in listed.iter().filter(|n| !kept.contains(n)) {
                assert!(!out.contains_key(name), "{name} was listed in Connection of a 101");
            }
        }
    } else {
        for name in HOP_BY_HOP {
            assert!(!out.contains_key(*name), "{name} forwarded");
        }
        for name in &listed {
            assert!(!out.contains_key(name), "{name} was listed in Connection");
        }
    }

    // Everything else, as sent.
    for name in sent.keys() {
        let n = name.as_str();
        let ruled = n == "set-cookie" || HOP_BY_HOP.contains(&n) || listed.iter().any(|l| l == name);
        if !ruled {
            assert_eq!(values(&out, n), values(&sent, n), "{n} changed");
        }
    }
});
