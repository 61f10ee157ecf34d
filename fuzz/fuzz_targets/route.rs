//! Route matching and the upstream path, against a model.
//!
//! Each input is a route table (up to six routes whose prefixes are made of a few
//! overlapping segments, `api`, `ap`, `api2`, `v1`…, or any text a route path may hold,
//! each with an upstream base path or none and `strip_prefix` on or off), loaded through
//! `Config` as the gateway loads it, and up to eight request targets made the same way (with trailing slashes,
//! empty segments, queries, any text), each parsed as hyper parses one. Invariants, for
//! every target that parses:
//! - `RouteTable::find` picks the route a model picks: the one whose prefix, split into
//!   `/`-separated segments, is the longest leading run of the path's segments (`/`
//!   matching every path that starts with `/`), or none;
//! - `upstream_path` is the route's base path followed by the request's path and query,
//!   without the prefix when the route strips it (an empty rest becoming `/`), and
//!   `upstream_uri` is that path on the upstream's own scheme and authority.
#![no_main]

mod common;

use std::fmt::Write;

use arbitrary::Arbitrary;
use http::uri::PathAndQuery;
use libfuzzer_sys::fuzz_target;
use tokengate::config::Config;
use tokengate::route::{Route, RouteTable};

const LABELS: &[&str] = &[
    "route table loaded",
    "a path compared with the model",
    "a path matched a route",
];

/// A path segment: mostly from a small set that overlaps itself, so prefixes nest.
#[derive(Arbitrary, Debug)]
enum Segment {
    Api,
    Ap,
    Api2,
    V1,
    X,
    Empty,
    Encoded,
    Text(String),
}

impl Segment {
    fn text(&self) -> &str {
        match self {
            Segment::Api => "api",
            Segment::Ap => "ap",
            Segment::Api2 => "api2",
            Segment::V1 => "v1",
            Segment::X => "x",
            Segment::Empty => "",
            Segment::Encoded => "%2F",
            Segment::Text(t) => t,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct RouteSpec {
    segments: Vec<Segment>,
    trailing_slash: bool,
    base: Option<Vec<Segment>>,
    strip_prefix: bool,
}

#[derive(Arbitrary, Debug)]
struct Target {
    segments: Vec<Segment>,
    trailing_slash: bool,
    query: Option<String>,
    /// Sent as written, not built from segments.
    raw: Option<String>,
}

#[derive(Arbitrary, Debug)]
struct Input {
    routes: Vec<RouteSpec>,
    targets: Vec<Target>,
}

fn join(segments: &[Segment]) -> String {
    let mut p = String::new();
    for s in segments {
        p.push('/');
        p.push_str(s.text());
    }
    p
}

/// `text` with every byte a request target cannot hold percent-encoded.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'#' | b'?' | b'%') || b == b'/' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn toml_str(s: &str) -> String {
    toml::Value::from(s).to_string()
}

/// The model of a match: `prefix`'s segments lead `path`'s.
fn leads(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return path.starts_with('/');
    }
    let prefix: Vec<&str> = prefix.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    path.len() >= prefix.len() && path[..prefix.len()] == prefix[..]
}

fuzz_target!(|data: &[u8]| {
    common::input("route", LABELS, data);
    let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(data)) else {
        return;
    };
    let mut config = String::from(
        "[oidc]\nissuer = \"http://127.0.0.1:1\"\nclient_id = \"c\"\nclient_secret = \"s\"\n\
         [session]\nkeys = [\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]\nstore = \"memory\"\n",
    );
    // Route paths the configuration takes (no empty, dot or `/bff` segments, no `?#`, each
    // once), so nearly every input gets a table.
    let mut paths: Vec<String> = Vec::new();
    for (i, r) in input.routes.iter().take(6).enumerate() {
        let segments: Vec<String> = r
            .segments
            .iter()
            .map(|s| s.text().replace(['/', '?', '#'], ""))
            .filter(|s| !matches!(s.as_str(), "" | "." | ".." | "bff"))
            .collect();
        let prefix = format!("/{}", segments.join("/"));
        if paths.contains(&prefix) {
            continue;
        }
        paths.push(prefix.clone());
        let path = if r.trailing_slash && prefix != "/" {
            format!("{prefix}/")
        } else {
            prefix
        };
        let base: String = r
            .base
            .iter()
            .flatten()
            .map(|s| {
                let seg: String = s
                    .text()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "-._~".contains(*c))
                    .collect();
                format!("/{seg}")
            })
            .collect();
        let _ = write!(
            config,
            "[[route]]\npath = {}\nupstream = {}\ntoken = \"none\"\nstrip_prefix = {}\n",
            toml_str(&path),
            toml_str(&format!("http://upstream-{i}.internal:8080{base}")),
            r.strip_prefix,
        );
    }
    if paths.is_empty() {
        config.push_str("[[route]]\npath = \"/api\"\nupstream = \"http://upstream.internal\"\ntoken = \"none\"\n");
    }
    // The gateway's own loading: paths normalised.
    let Ok(config) = Config::from_toml_str(&config) else {
        return;
    };
    let routes: Vec<Route> = config
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| Route::from_config(i, r).expect("an accepted route builds"))
        .collect();
    let table = RouteTable::new(routes);
    common::hit(0);

    // The input's targets, then each route's edges: its prefix, with `/`, with a segment
    // more, and with a character more (`/api` against `/apix`).
    let mut texts: Vec<String> = input
        .targets
        .iter()
        .take(8)
        .map(|t| match &t.raw {
            Some(raw) => raw.clone(),
            None => {
                let mut p = encode(&join(&t.segments));
                if t.trailing_slash || p.is_empty() {
                    p.push('/');
                }
                if let Some(q) = &t.query {
                    p.push('?');
                    p.push_str(&encode(q));
                }
                p
            }
        })
        .collect();
    for r in &config.routes {
        let p = &r.path;
        texts.extend([
            p.clone(),
            format!("{p}/"),
            format!("{p}/x?q"),
            format!("{p}x"),
        ]);
    }
    for text in texts {
        // What hyper hands the gateway: an origin-form target that parses.
        let Ok(pq) = PathAndQuery::try_from(text.as_str()) else {
            continue;
        };
        common::hit(1);
        let path = pq.path();
        let expected = config
            .routes
            .iter()
            .enumerate()
            .filter(|(_, r)| leads(&r.path, path))
            .max_by_key(|(_, r)| {
                if r.path == "/" {
                    1
                } else {
                    r.path.split('/').count()
                }
            })
            .map(|(i, _)| i);
        let found = table.find(path);
        assert_eq!(
            found.map(|r| r.index),
            expected,
            "{path:?} among {:?}",
            config.routes.iter().map(|r| &r.path).collect::<Vec<_>>()
        );
        let Some(route) = found else {
            continue;
        };
        common::hit(2);
        let rc = &config.routes[route.index];
        let base = rc.upstream.path().trim_end_matches('/');
        let stripping = rc.strip_prefix && rc.path != "/";
        let rest = if stripping {
            let rest = &pq.as_str()[rc.path.len()..];
            if rest.is_empty() || rest.starts_with('?') {
                format!("/{rest}")
            } else {
                rest.to_owned()
            }
        } else {
            pq.as_str().to_owned()
        };
        let expected_path = format!("{base}{rest}");
        match route.upstream_path(&pq) {
            Ok(up) => {
                assert_eq!(up.as_str(), expected_path, "{pq} via {:?}", rc.path);
                let uri = route
                    .upstream_uri(pq.as_str())
                    .expect("the same path makes a URI");
                assert_eq!(uri.scheme(), rc.upstream.scheme());
                assert_eq!(uri.authority(), rc.upstream.authority());
                assert_eq!(
                    uri.path_and_query().map(PathAndQuery::as_str),
                    Some(up.as_str())
                );
            }
            // Only a path the model's string would not parse either.
            Err(_) => assert!(
                PathAndQuery::try_from(expected_path.as_str()).is_err(),
                "{expected_path:?} parses but was refused"
            ),
        }
    }
});
