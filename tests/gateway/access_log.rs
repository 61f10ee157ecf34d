//! The access log (`[log] access = true`), read from the real binary's standard output:
//! one line per request with its fields, in text and in JSON; one session's requests
//! share a tag and another session's differ; a download the client walks away from is
//! marked; and nothing secret is anywhere in the log — no cookie, no token the provider
//! issued, no client secret, no query string.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::{http_client, op, wait_until, Setup, TestGateway};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Format {
    Text,
    Json,
}

/// The access line of the request with ID `id`, as its fields, if it is written yet.
fn line_of(log: &str, format: Format, id: &str) -> Option<HashMap<String, String>> {
    match format {
        Format::Text => {
            let line = log.lines().find(|l| {
                l.contains(&format!("request{{id={id}}}:")) && l.contains(" tokengate::access: ")
            })?;
            let (_, fields) = line.split_once(" tokengate::access: ")?;
            let fields = fields
                .split(' ')
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{line}"));
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            Some(fields)
        }
        Format::Json => log.lines().find_map(|l| {
            let line: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            if line["target"] != "tokengate::access" || line["span"]["id"] != id {
                return None;
            }
            assert_eq!(line["level"], "INFO", "{l}");
            let fields = line["fields"].as_object().expect("fields");
            Some(
                fields
                    .iter()
                    .map(|(k, v)| {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), text)
                    })
                    .collect(),
            )
        }),
    }
}

/// A duration field: whole microseconds.
fn micros(fields: &HashMap<String, String>, key: &str) -> u64 {
    fields[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} is a whole number: {fields:?}"))
}

/// Checks the fields every line has, and that no other field is there.
fn common(fields: &HashMap<String, String>, method: &str, path: &str, status: u16) {
    const KNOWN: [&str; 10] = [
        "method",
        "path",
        "route",
        "status",
        "duration_us",
        "upstream_us",
        "bytes_in",
        "bytes_out",
        "session",
        "aborted",
    ];
    for key in fields.keys() {
        assert!(
            KNOWN.contains(&key.as_str()),
            "unknown field {key}: {fields:?}"
        );
    }
    assert_eq!(fields["method"], method, "{fields:?}");
    assert_eq!(fields["path"], path, "{fields:?}");
    assert_eq!(fields["status"], status.to_string(), "{fields:?}");
    assert!(micros(fields, "duration_us") > 0, "{fields:?}");
}

async fn the_access_log_in(format: Format) {
    let gw = TestGateway::start_with(Setup {
        process: true,
        process_env: vec![
            (
                "TOKENGATE_LOG_FORMAT",
                if format == Format::Json {
                    "json"
                } else {
                    "text"
                },
            ),
            // Every line the gateway writes at debug is searched for secrets too.
            ("RUST_LOG", "debug"),
        ],
        extra: "[log]\naccess = true\n".into(),
        routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\n\
                 [[route]]\npath = \"/public\"\nupstream = \"{upstream}\"\ntoken = \"none\"\n"
            .into(),
        ..Setup::default()
    })
    .await;
    let alice = gw.logged_in("alice").await;
    let bob = gw.logged_in("bob").await;
    let alice_cookie = alice.cookie("tokengate").expect("alice's cookie");
    let bob_cookie = bob.cookie("tokengate").expect("bob's cookie");
    let client = http_client();
    let call = |method: reqwest::Method, path: &str, cookie: Option<&str>, id: &str| {
        let mut req = client
            .request(method, gw.url(path))
            .header("x-csrf", "1")
            .header("x-request-id", id);
        if let Some(c) = cookie {
            req = req.header("cookie", format!("tokengate={c}"));
        }
        req
    };

    // A proxied call with a query and a body, and another of the same session.
    let resp = call(
        reqwest::Method::POST,
        "/api/items?filter=sekrit-query-1",
        Some(&alice_cookie),
        "acc-post",
    )
    .body("0123456789")
    .send()
    .await
    .expect("post");
    assert_eq!(resp.status(), 200);
    let post_out = resp.bytes().await.expect("body").len();
    let resp = call(
        reqwest::Method::GET,
        "/api/other?q=sekrit-query-2",
        Some(&alice_cookie),
        "acc-get",
    )
    .send()
    .await
    .expect("get");
    assert_eq!(resp.status(), 200);
    resp.bytes().await.expect("body");
    // The gateway's own answer, and another user's call.
    let resp = call(
        reqwest::Method::GET,
        "/bff/user",
        Some(&alice_cookie),
        "acc-bff",
    )
    .send()
    .await
    .expect("bff user");
    assert_eq!(resp.status(), 200);
    let bff_out = resp.bytes().await.expect("body").len();
    let resp = call(reqwest::Method::GET, "/api/x", Some(&bob_cookie), "acc-bob")
        .send()
        .await
        .expect("bob");
    assert_eq!(resp.status(), 200);
    resp.bytes().await.expect("body");
    // No route, and no session.
    let resp = call(
        reqwest::Method::GET,
        "/nowhere?q=sekrit-query-3",
        None,
        "acc-404",
    )
    .send()
    .await
    .expect("404");
    assert_eq!(resp.status(), 404);
    let not_found_out = resp.bytes().await.expect("body").len();
    // A download the client leaves after its first bytes.
    let mut resp = call(
        reqwest::Method::GET,
        "/public/download?bytes=104857600",
        None,
        "acc-cut",
    )
    .send()
    .await
    .expect("download");
    assert_eq!(resp.status(), 200);
    resp.chunk().await.expect("a chunk").expect("some bytes");
    drop(resp);

    let ids = [
        "acc-post", "acc-get", "acc-bff", "acc-bob", "acc-404", "acc-cut",
    ];
    wait_until(Duration::from_secs(10), "every access line", || async {
        let log = gw.log();
        ids.iter().all(|id| line_of(&log, format, id).is_some())
    })
    .await;
    let log = gw.log();
    let line = |id: &str| line_of(&log, format, id).expect("the line");

    let post = line("acc-post");
    common(&post, "POST", "/api/items", 200);
    assert_eq!(post["route"], "/api");
    assert_eq!(post["bytes_in"], "10");
    assert_eq!(post["bytes_out"], post_out.to_string());
    let upstream = micros(&post, "upstream_us");
    assert!(
        upstream > 0 && upstream <= micros(&post, "duration_us"),
        "{post:?}"
    );
    let tag = &post["session"];
    assert!(
        tag.len() == 12 && tag.bytes().all(|b| b.is_ascii_hexdigit()),
        "{post:?}"
    );
    assert!(!post.contains_key("aborted"), "{post:?}");

    let get = line("acc-get");
    common(&get, "GET", "/api/other", 200);
    assert_eq!(get["bytes_in"], "0");
    assert_eq!(&get["session"], tag, "one session, one tag");
    assert!(get.contains_key("upstream_us"));

    let bff = line("acc-bff");
    common(&bff, "GET", "/bff/user", 200);
    assert_eq!(bff["route"], "/bff");
    assert_eq!(&bff["session"], tag, "one session, one tag");
    assert_eq!(bff["bytes_out"], bff_out.to_string());
    assert!(!bff.contains_key("upstream_us"), "not proxied: {bff:?}");

    let other = line("acc-bob");
    common(&other, "GET", "/api/x", 200);
    assert_ne!(&other["session"], tag, "another session, another tag");

    let missing = line("acc-404");
    common(&missing, "GET", "/nowhere", 404);
    for absent in ["route", "session", "upstream_us", "aborted"] {
        assert!(!missing.contains_key(absent), "{absent}: {missing:?}");
    }
    assert_eq!(missing["bytes_out"], not_found_out.to_string());

    let cut = line("acc-cut");
    common(&cut, "GET", "/public/download", 200);
    assert_eq!(cut["route"], "/public");
    assert_eq!(cut["aborted"], "true");
    let sent: u64 = cut["bytes_out"].parse().expect("bytes_out");
    assert!(sent > 0 && sent < 104_857_600, "{cut:?}");
    assert!(!cut.contains_key("session"), "no session on a public route");

    // Login and logout have their lines too, without their queries (code, state, sid).
    let logged: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("tokengate::access"))
        .collect();
    assert!(
        logged.iter().any(|l| l.contains("/bff/callback")),
        "the callback has a line"
    );
    for l in &logged {
        assert!(!l.contains('?'), "a query in an access line: {l}");
    }

    // Nothing secret anywhere in the log.
    let mut secrets = vec![
        alice_cookie.clone(),
        bob_cookie.clone(),
        op::CLIENT_SECRET.to_owned(),
        "sekrit-query".to_owned(),
        // The store key: the session's name in the store, never in a log line.
        tokengate::session::StoreKey::of(alice_cookie.as_bytes()).hex(),
    ];
    let issued = gw.op.issued().await;
    assert!(issued.len() >= 2, "two logins: {issued:?}");
    for grant in &issued {
        for kind in ["access_token", "refresh_token", "id_token"] {
            if let Some(token) = grant[kind].as_str() {
                secrets.push(token.to_owned());
            }
        }
    }
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "the log holds a secret ({}…)",
            &secret[..secret.len().min(12)]
        );
    }
    // Nor the store key's own short form, in place of the tag.
    let short = tokengate::session::StoreKey::of(alice_cookie.as_bytes()).short();
    assert!(
        !tag.starts_with(&short),
        "the tag is not the store key's prefix"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_lines_in_text() {
    the_access_log_in(Format::Text).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn access_lines_in_json() {
    the_access_log_in(Format::Json).await;
}
