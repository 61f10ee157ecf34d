//! `[[route]]`: each route's path, upstream, token policy and access rules.

use super::Checker;
use crate::config::raw::RawRoute;
use crate::config::{ClaimRule, RouteConfig, StepUp, TokenPolicy};

/// Every `[[route]]` (at least one), in file order, no two with the same path.
pub(super) fn routes(c: &mut Checker, raw: &[RawRoute]) -> Vec<RouteConfig> {
    if raw.is_empty() {
        c.fail("route", "at least one [[route]] is required");
    }
    let routes: Vec<RouteConfig> = raw
        .iter()
        .enumerate()
        .map(|(i, r)| route(c, i, r))
        .collect();
    for (i, a) in routes.iter().enumerate() {
        if let Some(j) = routes[..i].iter().position(|b| b.path == a.path) {
            c.fail(
                &format!("route[{i}].path"),
                format!("{:?} is also route[{j}].path", a.path),
            );
        }
    }
    routes
}

fn route(c: &mut Checker, i: usize, r: &RawRoute) -> RouteConfig {
    let at = |key: &str| format!("route[{i}].{key}");
    let path = route_path(c, i, r);
    let (upstream, h2c) = route_upstream(c, i, r);
    let token = token_policy(c, i, r);
    let resource = r.resource.clone();
    if let Some(res) = &resource {
        if url::Url::parse(res).is_err() {
            c.fail(&at("resource"), format!("invalid URI {res:?}"));
        }
    }
    let scope = client_scope(c, i, r, token);
    if resource.is_some() && token == TokenPolicy::None {
        c.fail(&at("resource"), "a token = \"none\" route carries no token");
    }
    let methods = methods(c, i, r);
    let (require, step_up) = access(c, i, r, token);
    let websocket = r.websocket.unwrap_or(false);
    if websocket && token == TokenPolicy::None {
        c.fail(
            &at("websocket"),
            "applies to token routes (a token = \"none\" route tunnels upgrades as they come)",
        );
    }
    RouteConfig {
        path,
        upstream,
        token,
        strip_prefix: r.strip_prefix.unwrap_or(false),
        resource,
        scope,
        dpop: r.dpop.unwrap_or(true),
        methods,
        http2: h2c || r.upstream_http2.unwrap_or(false),
        require,
        step_up,
        websocket,
    }
}

/// A route's `path`, normalised: no trailing `/` except the root route's, not under `/bff`.
fn route_path(c: &mut Checker, i: usize, r: &RawRoute) -> String {
    let at = |key: &str| format!("route[{i}].{key}");
    match r.path.as_deref() {
        Some(p) => {
            let bad = !p.starts_with('/')
                || p.contains(['?', '#'])
                || p.contains("//")
                || p.split('/').any(|seg| seg == "." || seg == "..");
            if bad {
                c.fail(&at("path"), format!("invalid path {p:?} (e.g. \"/api\")"));
            }
            let norm = if p.len() > 1 {
                p.trim_end_matches('/')
            } else {
                p
            };
            if norm == "/bff" || norm.starts_with("/bff/") {
                c.fail(
                    &at("path"),
                    "/bff is reserved for the gateway's own endpoints",
                );
            }
            norm.to_owned()
        }
        None => {
            c.fail(&at("path"), "is required");
            "/".to_owned()
        }
    }
}

/// A route's `upstream` URL, and whether it was written `h2c://`.
fn route_upstream(c: &mut Checker, i: usize, r: &RawRoute) -> (http::Uri, bool) {
    let at = |key: &str| format!("route[{i}].{key}");
    // `h2c://` is HTTP/2 with prior knowledge over plain TCP: kept as `http://` with the
    // route's `http2` set, so the connectors see only schemes they know.
    let h2c = r
        .upstream
        .as_deref()
        .and_then(|t| t.strip_prefix("h2c://"))
        .map(|rest| format!("http://{rest}"));
    let upstream = match h2c.as_deref().or(r.upstream.as_deref()) {
        Some(text) => match text.parse::<http::Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https"))
                    && u.host().is_some_and(|h| !h.is_empty()) =>
            {
                if u.query().is_some() {
                    c.fail(&at("upstream"), format!("{text:?} must not have a query"));
                }
                u
            }
            _ => {
                c.fail(&at("upstream"), format!("invalid URL {text:?}"));
                http::Uri::from_static("http://invalid")
            }
        },
        None => {
            c.fail(&at("upstream"), "is required");
            http::Uri::from_static("http://invalid")
        }
    };
    (upstream, h2c.is_some())
}

/// A route's `token` policy.
fn token_policy(c: &mut Checker, i: usize, r: &RawRoute) -> TokenPolicy {
    let at = |key: &str| format!("route[{i}].{key}");
    match r.token.as_deref() {
        Some("user") => TokenPolicy::User,
        Some("user-optional") => TokenPolicy::UserOptional,
        Some("client") => TokenPolicy::Client,
        Some("none") => TokenPolicy::None,
        Some(other) => {
            c.fail(
                &at("token"),
                format!("unknown policy {other:?} (user, user-optional, client or none)"),
            );
            TokenPolicy::None
        }
        None => {
            c.fail(
                &at("token"),
                "is required (user, user-optional, client or none)",
            );
            TokenPolicy::None
        }
    }
}

/// A route's `scopes`, space-joined: `token = "client"` routes only.
fn client_scope(c: &mut Checker, i: usize, r: &RawRoute, token: TokenPolicy) -> Option<String> {
    let at = |key: &str| format!("route[{i}].{key}");
    r.scopes.as_ref().map(|scopes| {
        if token != TokenPolicy::Client {
            c.fail(
                &at("scopes"),
                "applies to token = \"client\" routes only (user routes use oidc.scopes)",
            );
        }
        for (j, s) in scopes.iter().enumerate() {
            if s.is_empty() || s.contains(char::is_whitespace) {
                c.fail(
                    &format!("route[{i}].scopes[{j}]"),
                    format!("invalid scope {s:?}"),
                );
            }
        }
        scopes.join(" ")
    })
}

/// A route's `methods`; `None`: every method.
fn methods(c: &mut Checker, i: usize, r: &RawRoute) -> Option<Vec<http::Method>> {
    let at = |key: &str| format!("route[{i}].{key}");
    r.methods.as_ref().map(|ms| {
        if ms.is_empty() {
            c.fail(
                &at("methods"),
                "must not be empty (leave it out to allow every method)",
            );
        }
        ms.iter()
            .enumerate()
            .filter_map(|(j, m)| {
                match http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()) {
                    Ok(m) => Some(m),
                    Err(_) => {
                        c.fail(
                            &format!("route[{i}].methods[{j}]"),
                            format!("invalid method {m:?}"),
                        );
                        None
                    }
                }
            })
            .collect()
    })
}

/// A route's `require`, `acr` and `max_age`: rules about the user, so `token = "user"`
/// routes only (on any other a request without a session would pass them by).
fn access(c: &mut Checker, i: usize, r: &RawRoute, token: TokenPolicy) -> (Vec<ClaimRule>, StepUp) {
    let at = |key: &str| format!("route[{i}].{key}");
    for (key, set) in [
        ("require", r.require.is_some()),
        ("acr", r.acr.is_some()),
        ("max_age", r.max_age.is_some()),
    ] {
        if set && token != TokenPolicy::User {
            c.fail(&at(key), "applies to token = \"user\" routes only");
        }
    }
    let mut require = Vec::new();
    for (claim, values) in r.require.iter().flatten() {
        let path = format!("route[{i}].require.{claim}");
        if values.is_empty() {
            c.fail(&path, "must list at least one value");
        }
        let mut scalars = Vec::with_capacity(values.len());
        for (j, v) in values.iter().enumerate() {
            match v {
                toml::Value::String(s) => scalars.push(serde_json::Value::from(s.clone())),
                toml::Value::Boolean(b) => scalars.push(serde_json::Value::from(*b)),
                toml::Value::Integer(n) => scalars.push(serde_json::Value::from(*n)),
                _ => c.fail(
                    &format!("{path}[{j}]"),
                    "must be a string, a boolean or an integer",
                ),
            }
        }
        require.push(ClaimRule {
            claim: claim.clone(),
            values: scalars,
        });
    }
    let acr = r.acr.as_ref().map(|values| {
        if values.is_empty() {
            c.fail(&at("acr"), "must list at least one value");
        }
        for (j, v) in values.iter().enumerate() {
            if !crate::config::is_acr_value(v) {
                c.fail(
                    &format!("route[{i}].acr[{j}]"),
                    format!("invalid acr value {v:?} (printable ASCII, no spaces or quotes)"),
                );
            }
        }
        values.clone()
    });
    let max_age = r
        .max_age
        .as_deref()
        .map(|text| c.duration(&at("max_age"), Some(text), text));
    (require, StepUp { acr, max_age })
}
