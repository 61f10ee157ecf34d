//! The configuration contract: defaults, every kind of mistake named by its key path, and
//! `${VAR}` expansion.

use super::*;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn env(name: &str) -> Option<String> {
    match name {
        "SECRET" => Some("s3cret-value".into()),
        "KEY" => Some(KEY.into()),
        _ => None,
    }
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str_with_env(text, &env)
}

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected problems"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = r#"
[oidc]
issuer = "http://127.0.0.1:9000"
client_id = "gateway"
client_secret = "${SECRET}"
[session]
keys = ["${KEY}"]
[[route]]
path = "/api/"
upstream = "http://127.0.0.1:9100/base/"
token = "user"
"#;

#[test]
fn minimal_config_gets_documented_defaults() {
    let c = load(MINIMAL).expect("valid");
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.admin_listen.to_string(), "127.0.0.1:9090");
    assert_eq!(c.server.public_origin, "http://127.0.0.1:8080");
    assert!(!c.server.secure_cookies);
    assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.server.max_header_bytes, 16384);
    assert_eq!(c.upstream.response_timeout, Duration::from_secs(30));
    assert_eq!(c.oidc.issuer, "http://127.0.0.1:9000");
    assert_eq!(
        c.oidc.client_secret.as_ref().map(Secret::secret),
        Some("s3cret-value")
    );
    assert_eq!(c.oidc.client_auth, ClientAuth::ClientSecretBasic);
    assert_eq!(
        c.oidc.scopes,
        ["openid", "profile", "email", "offline_access"]
    );
    assert_eq!(c.session.idle_timeout, Duration::from_secs(8 * 3600));
    assert_eq!(c.session.absolute_timeout, Duration::from_secs(7 * 86400));
    assert_eq!(c.session.store, StoreKind::Embedded);
    assert_eq!(c.session.keys.len(), 1);
    assert_eq!(c.tokens.refresh_before_expiry, Duration::from_secs(60));
    assert!(c.admin.token.is_none());
    assert_eq!(c.routes[0].path, "/api");
    assert_eq!(c.routes[0].token, TokenPolicy::User);
}

#[test]
fn https_public_url_selects_secure_cookies() {
    let text = format!("[server]\npublic_url = \"https://app.example.com\"\n{MINIMAL}");
    let c = load(&text).expect("valid");
    assert!(c.server.secure_cookies);
    assert_eq!(c.server.public_origin, "https://app.example.com");
}

#[test]
fn three_mistakes_are_reported_together_with_their_paths() {
    let text = MINIMAL
        .replace("[oidc]", "[server]\nlisten = \"nope\"\n[oidc]")
        .replace(
            "token = \"user\"",
            "token = \"user\"\n[[route]]\npath = \"/\"\nupstream = \"htp:/x\"\ntoken = \"none\"",
        )
        .replace("[session]", "[session]\nidle_timeout = \"8 hourz\"");
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(
        p[0].starts_with("server.listen: invalid address \"nope\""),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m.starts_with("session.idle_timeout: invalid duration \"8 hourz\"")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m == "route[1].upstream: invalid URL \"htp:/x\""),
        "{p:#?}"
    );
}

#[test]
fn a_header_read_timeout_beyond_a_day_names_its_key() {
    let text = format!("[server]\nheader_read_timeout = \"1000000y\"\n{MINIMAL}");
    let p = problems(&text);
    assert_eq!(
        p,
        ["server.header_read_timeout: must be at most 1 day"],
        "{p:#?}"
    );
}

#[test]
fn an_unreadable_upstream_ca_names_its_key() {
    let p = problems(&MINIMAL.replace(
        "[oidc]",
        "[upstream]\ntls_ca = \"/nonexistent/ca.pem\"\n[oidc]",
    ));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(
        p[0].starts_with("upstream.tls_ca: cannot read \"/nonexistent/ca.pem\""),
        "{p:#?}"
    );
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let p = problems(&MINIMAL.replace("[oidc]", "[oidc]\nisuer = \"x\""));
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("isuer"), "{p:?}");
}

#[test]
fn toml_syntax_error_names_the_line() {
    let p = problems("[server]\nlisten = \n");
    assert!(p[0].starts_with("line 2"), "{p:?}");
}

#[test]
fn unset_variables_are_all_reported() {
    let text = MINIMAL
        .replace("${SECRET}", "${NOPE_ONE}")
        .replace("${KEY}", "${NOPE_TWO}");
    let p = problems(&text);
    assert_eq!(
        p,
        [
            "oidc.client_secret: environment variable NOPE_ONE is not set",
            "session.keys[0]: environment variable NOPE_TWO is not set"
        ]
    );
}

#[test]
fn dollar_without_brace_is_literal() {
    let e = |_: &str| Some("X".to_owned());
    assert_eq!(
        raw::expand_for_test("a$b ${V} $$ ${", &e).as_deref(),
        Ok("a$b X $$ ${")
    );
}

#[test]
fn secrets_never_appear_in_problems() {
    let text = MINIMAL
        .replace("${KEY}", "c2hvcnQtc2VjcmV0LWtleQ==")
        .replace("[session]", "[admin]\ntoken = \"tiny-admin\"\n[session]");
    let p = problems(&text).join("\n");
    assert!(p.contains("session.keys[0]: must be 32 bytes"), "{p}");
    assert!(p.contains("admin.token: must be at least 16"), "{p}");
    for secret in ["c2hvcnQtc2VjcmV0LWtleQ==", "tiny-admin"] {
        assert!(!p.contains(secret), "{p}");
    }
}

#[test]
fn secret_debug_is_redacted() {
    assert_eq!(
        format!("{:?}", Secret::new("hunter2".into())),
        "Secret([redacted])"
    );
}

#[test]
fn routes_are_checked_one_by_one() {
    let text = MINIMAL.replace(
        "token = \"user\"",
        "token = \"bogus\"\nmethods = [\"GET\", \"BAD METHOD\"]\n[[route]]\npath = \"/bff/x\"\nupstream = \"http://x\"\ntoken = \"none\"\n[[route]]\npath = \"/api\"\nupstream = \"http://y\"\ntoken = \"none\"",
    );
    let p = problems(&text);
    for expected in [
        "route[0].token: unknown policy \"bogus\"",
        "route[0].methods[1]: invalid method \"BAD METHOD\"",
        "route[1].path: /bff is reserved",
        "route[2].path: \"/api\" is also route[0].path",
    ] {
        assert!(
            p.iter().any(|m| m.starts_with(expected)),
            "{expected} not in {p:#?}"
        );
    }
}

#[test]
fn missing_required_keys_are_named() {
    let p = problems("[[route]]\npath = \"/\"\nupstream = \"http://x\"\n");
    for expected in [
        "oidc.issuer",
        "oidc.client_id",
        "oidc.client_secret",
        "session.keys",
        "route[0].token",
    ] {
        assert!(
            p.iter().any(|m| m.starts_with(expected)),
            "{expected} not in {p:#?}"
        );
    }
}

#[test]
fn auth_params_cannot_override_the_gateways_own() {
    let p = problems(&MINIMAL.replace(
        "[session]",
        "[oidc.auth_params]\nstate = \"x\"\nprompt = \"consent\"\n[session]",
    ));
    assert_eq!(p, ["oidc.auth_params.state: is set by the gateway itself"]);
}

#[test]
fn redis_store_takes_a_url_or_cluster_nodes_never_both() {
    let with = |lines: &str| MINIMAL.replace("[session]", &format!("[session]\n{lines}"));
    let c = load(&with(
        "store = \"redis\"\nredis_url = \"rediss://cache:6380\"",
    ))
    .expect("valid");
    assert_eq!(c.session.redis_url.as_deref(), Some("rediss://cache:6380"));
    let c = load(&with(
        "store = \"redis\"\nredis_cluster = [\"redis://h1:7000\", \"redis://h2:7000\"]",
    ))
    .expect("valid");
    assert_eq!(
        c.session.redis_cluster,
        ["redis://h1:7000", "redis://h2:7000"]
    );
    assert_eq!(c.session.path, std::path::PathBuf::from("data/sessions"));

    let p = problems(&with("store = \"redis\""));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].starts_with("session.redis_url: is required"), "{p:#?}");
    let p = problems(&with(
        "store = \"redis\"\nredis_url = \"redis://a:1\"\nredis_cluster = [\"redis://b:1\"]",
    ));
    assert!(
        p[0].starts_with("session.redis_cluster: set either"),
        "{p:#?}"
    );
    let p = problems(&with(
        "store = \"redis\"\nredis_cluster = [\"redis://h1:1\", \"http://h2:1\", \"rediss://h3:1\"]",
    ));
    assert_eq!(
        p,
        [
            "session.redis_cluster[1]: must be a redis:// or rediss:// URL",
            "session.redis_cluster[2]: is rediss:// but session.redis_cluster[0] is redis://; use one scheme for every node",
        ],
    );
    let p = problems(&with("store = \"redis\"\nredis_cluster = []"));
    assert_eq!(
        p,
        ["session.redis_cluster: must list at least one node URL"]
    );
}

#[test]
fn edge_limits_and_trust_have_defaults_and_name_their_keys() {
    let c = load(MINIMAL).expect("valid");
    assert!(
        c.server.trusted_proxies.is_empty(),
        "nobody is trusted by default"
    );
    assert_eq!(c.server.max_connections, 10_000);
    assert_eq!(c.server.workers, None, "one per CPU unless set");
    assert_eq!(c.upstream.read_timeout, Duration::from_secs(60));
    assert!(!c.routes[0].http2);

    let text = MINIMAL
        .replace(
            "[oidc]",
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"10.0.0.0/33\", \"lb\"]\n\
             max_connections = 0\nworkers = 0\n[upstream]\nread_timeout = \"soon\"\n[oidc]",
        )
        .replace("http://127.0.0.1:9100/base/", "h2c://127.0.0.1:9100/base/");
    let found = problems(&text);
    for key in [
        "server.trusted_proxies[2]",
        "server.trusted_proxies[3]",
        "server.max_connections",
        "server.workers",
        "upstream.read_timeout",
    ] {
        assert!(found.iter().any(|p| p.starts_with(key)), "{key}: {found:?}");
    }
    assert_eq!(found.len(), 5, "{found:?}");

    let text = MINIMAL
        .replace(
            "[oidc]",
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[oidc]",
        )
        .replace("http://127.0.0.1:9100/base/", "h2c://127.0.0.1:9100/base/");
    let c = load(&text).expect("valid");
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert!(c.routes[0].http2, "h2c:// is HTTP/2");
    assert_eq!(c.routes[0].upstream.scheme_str(), Some("http"));
}

#[test]
fn forward_auth_is_off_unless_configured_and_needs_a_port_of_its_own() {
    assert!(load(MINIMAL).expect("valid").forward_auth.is_none());

    let on = load(&format!(
        "{MINIMAL}[forward_auth]\nlisten = \"127.0.0.1:8070\"\n"
    ));
    let listen = on.expect("valid").forward_auth.expect("on").listen;
    assert_eq!(listen.to_string(), "127.0.0.1:8070");

    let with = |table: &str| problems(&format!("{MINIMAL}[forward_auth]\n{table}\n"));
    assert_eq!(
        with("listen = \"127.0.0.1:8080\""),
        ["forward_auth.listen: must differ from server.listen"]
    );
    assert_eq!(
        with("listen = \"127.0.0.1:9090\""),
        ["forward_auth.listen: must differ from server.admin_listen"]
    );
    let bad = with("listen = \"8070\"");
    assert!(
        bad.len() == 1 && bad[0].starts_with("forward_auth.listen: invalid address"),
        "{bad:?}"
    );
    assert_eq!(
        with(""),
        ["forward_auth.listen: is required (e.g. \"127.0.0.1:8070\")"]
    );
    let unknown = with("listen = \"127.0.0.1:8070\"\nport = 8070");
    assert!(
        unknown.iter().any(|p| p.contains("unknown field `port`")),
        "{unknown:?}"
    );
}

#[test]
fn provider_endpoints_can_be_named_and_each_is_checked_by_its_key() {
    let c = load(MINIMAL).expect("valid");
    assert!(c.oidc.endpoints.is_empty(), "none named by default");

    let named = MINIMAL.replace(
        "client_id = \"gateway\"",
        "client_id = \"gateway\"\n\
         revocation_endpoint = \"https://op.example/oauth2/revoke\"\n\
         end_session_endpoint = \"https://op.example/logout?realm=a\"\n\
         token_endpoint = \"https://op.example/oauth2/token\"",
    );
    let c = load(&named).expect("valid");
    assert_eq!(
        c.oidc
            .endpoint(ProviderEndpoint::Revocation)
            .map(url::Url::as_str),
        Some("https://op.example/oauth2/revoke")
    );
    assert_eq!(
        c.oidc
            .endpoint(ProviderEndpoint::EndSession)
            .map(url::Url::as_str),
        Some("https://op.example/logout?realm=a"),
        "a query is allowed"
    );
    assert!(c.oidc.endpoint(ProviderEndpoint::Jwks).is_none());

    let wrong = MINIMAL.replace(
        "client_id = \"gateway\"",
        "client_id = \"gateway\"\n\
         authorization_endpoint = \"/authorize\"\n\
         jwks_uri = \"ftp://op.example/jwks\"\n\
         pushed_authorization_request_endpoint = \"https://op.example/par#x\"\n\
         revocation_endpoint = \"https://op.example/revoke\"",
    );
    let found = problems(&wrong);
    for key in [
        "oidc.authorization_endpoint",
        "oidc.jwks_uri",
        "oidc.pushed_authorization_request_endpoint",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(&format!("{key}: "))),
            "{key} not named in {found:?}"
        );
    }
    assert_eq!(found.len(), 3, "{found:?}");
}

#[test]
fn access_rules_step_up_and_websocket_are_read_and_each_mistake_named() {
    let text = format!(
        "{MINIMAL}require = {{ groups = [\"admins\", \"ops\"], email_verified = [true], level = [3] }}\n\
         acr = [\"urn:example:mfa\"]\nmax_age = \"15m\"\nwebsocket = true\n"
    );
    let c = load(&text).expect("valid");
    let r = &c.routes[0];
    assert_eq!(r.require.len(), 3);
    let groups = r
        .require
        .iter()
        .find(|x| x.claim == "groups")
        .expect("groups");
    assert_eq!(
        groups.values,
        [serde_json::json!("admins"), serde_json::json!("ops")]
    );
    let verified = r.require.iter().find(|x| x.claim == "email_verified");
    assert_eq!(
        verified.map(|x| x.values.clone()),
        Some(vec![serde_json::json!(true)])
    );
    assert_eq!(
        r.step_up.acr.as_deref(),
        Some(&["urn:example:mfa".to_owned()][..])
    );
    assert_eq!(r.step_up.max_age, Some(Duration::from_secs(900)));
    assert!(r.websocket);
    assert!(!load(MINIMAL).expect("valid").routes[0].websocket);

    let bad = problems(
        r#"
[oidc]
issuer = "http://127.0.0.1:9000"
client_id = "gateway"
client_secret = "x"
userinfo = true
dpop = true
[session]
keys = ["${KEY}"]
[[route]]
path = "/api"
upstream = "http://127.0.0.1:9100"
token = "user"
require = { groups = [], tenant = [["a"]] }
acr = ["has space"]
max_age = "soon"
[[route]]
path = "/open"
upstream = "http://127.0.0.1:9100"
token = "user-optional"
require = { groups = ["x"] }
acr = ["urn:x"]
[[route]]
path = "/"
upstream = "http://127.0.0.1:9100"
token = "none"
websocket = true
"#,
    );
    for expected in [
        "oidc.userinfo: cannot be used with oidc.dpop",
        "route[0].require.groups: must list at least one value",
        "route[0].require.tenant[0]: must be a string, a boolean or an integer",
        "route[0].acr[0]: invalid acr value",
        "route[0].max_age: invalid duration",
        "route[1].require: applies to token = \"user\" routes only",
        "route[1].acr: applies to token = \"user\" routes only",
        "route[2].websocket: applies to token routes",
    ] {
        assert!(
            bad.iter().any(|p| p.starts_with(expected)),
            "{expected:?} not in {bad:#?}"
        );
    }
}

#[test]
fn telemetry_is_off_unless_an_endpoint_is_given() {
    let c = load(MINIMAL).expect("valid");
    assert_eq!(c.telemetry.traces_url, None);
    assert_eq!(c.telemetry.sample_ratio, 1.0);
    assert_eq!(c.telemetry.service_name, "tokengate");
    assert_eq!(c.telemetry.export_delay, None);

    let on = load(&format!(
        "{MINIMAL}[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.25\n\
         service_name = \"edge-gateway\"\nexport_delay = \"200ms\"\n"
    ))
    .expect("valid");
    assert_eq!(
        on.telemetry.traces_url.as_deref(),
        Some("http://127.0.0.1:4318/v1/traces")
    );
    assert_eq!(on.telemetry.sample_ratio, 0.25);
    assert_eq!(on.telemetry.service_name, "edge-gateway");
    assert_eq!(on.telemetry.export_delay, Some(Duration::from_millis(200)));

    // A base path keeps its segments; an integer ratio is a ratio.
    let based = load(&format!(
        "{MINIMAL}[telemetry]\notlp_endpoint = \"https://collector.example/otlp/\"\nsample_ratio = 0\n"
    ))
    .expect("valid");
    assert_eq!(
        based.telemetry.traces_url.as_deref(),
        Some("https://collector.example/otlp/v1/traces")
    );
    assert_eq!(based.telemetry.sample_ratio, 0.0);
}

#[test]
fn telemetry_mistakes_are_named() {
    let bad = problems(&format!(
        "{MINIMAL}[telemetry]\notlp_endpoint = \"udp://127.0.0.1:4318\"\nsample_ratio = 1.5\n\
         service_name = \" \"\nexport_delay = \"soon\"\n"
    ));
    for expected in [
        "telemetry.otlp_endpoint: invalid URL",
        "telemetry.sample_ratio: must be between 0.0 and 1.0",
        "telemetry.service_name: must not be empty",
        "telemetry.export_delay: invalid duration",
    ] {
        assert!(
            bad.iter().any(|p| p.starts_with(expected)),
            "{expected:?} not in {bad:#?}"
        );
    }
    let unknown = problems(&format!("{MINIMAL}[telemetry]\nendpoint = \"http://x\"\n"));
    assert!(
        unknown
            .iter()
            .any(|p| p.contains("unknown field `endpoint`")),
        "{unknown:#?}"
    );
}

#[test]
fn the_access_log_is_off_and_the_level_unset_unless_configured() {
    let c = load(MINIMAL).expect("valid");
    assert!(!c.log.access);
    assert_eq!(c.log.level, None);

    let on = load(&format!(
        "{MINIMAL}[log]\naccess = true\nlevel = \" tokengate=debug,info \"\n"
    ))
    .expect("valid");
    assert!(on.log.access);
    assert_eq!(on.log.level.as_deref(), Some("tokengate=debug,info"));

    let with = |table: &str| problems(&format!("{MINIMAL}[log]\n{table}\n"));
    for (level, expected) in [
        ("\"\"", "log.level: must not be empty"),
        // A typo of a level would be a target of its own, switching everything else off.
        ("\"inof\"", "log.level: \"inof\" is not a level"),
        ("\"a=loud\"", "log.level: \"a=loud\" is not a level"),
    ] {
        let bad = with(&format!("level = {level}"));
        assert!(
            bad.len() == 1 && bad[0].starts_with(expected),
            "{level}: {bad:?}"
        );
    }
    let typed = with("access = \"yes\"");
    assert!(
        typed.iter().any(|p| p.contains("expected a boolean")),
        "{typed:?}"
    );
    let unknown = with("format = \"json\"");
    assert!(
        unknown.iter().any(|p| p.contains("unknown field `format`")),
        "{unknown:?}"
    );
}

#[test]
fn device_binding_keys_are_read_and_checked() {
    let c = load(MINIMAL).expect("minimal config");
    assert_eq!(c.session.device_binding, DeviceBinding::Optional);
    assert_eq!(c.session.bound_cookie_lifetime, Duration::from_secs(300));
    let text = MINIMAL.replace(
        "[session]",
        "[session]\ndevice_binding = \"required\"\nbound_cookie_lifetime = \"90s\"",
    );
    let c = load(&text).expect("valid");
    assert_eq!(c.session.device_binding, DeviceBinding::Required);
    assert_eq!(c.session.bound_cookie_lifetime, Duration::from_secs(90));
    let text = MINIMAL.replace(
        "[session]",
        "[session]\ndevice_binding = \"always\"\nbound_cookie_lifetime = \"500ms\"",
    );
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|m| m.starts_with("session.device_binding: unknown value \"always\"")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|m| m == "session.bound_cookie_lifetime: must be at least 1s"),
        "{p:#?}"
    );
}

#[test]
fn an_invalid_oidc_timeout_is_reported() {
    let text = MINIMAL.replace("[oidc]", "[oidc]\ntimeout = \"soon\"");
    let p = problems(&text);
    assert!(
        p.iter()
            .any(|m| m.starts_with("oidc.timeout: invalid duration \"soon\"")),
        "{p:#?}"
    );
}
