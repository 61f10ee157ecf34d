//! The `tokengate` command: `check` and `keygen`.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tokengate");

fn check(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokengate.toml");
    std::fs::write(&path, config).expect("write");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run tokengate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const VALID: &str = r#"
[oidc]
issuer = "http://127.0.0.1:9000"
client_id = "gateway"
client_secret = "secret"
[session]
keys = ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
store = "memory"
[[route]]
path = "/api"
upstream = "http://127.0.0.1:9100"
token = "user"
[[route]]
path = "/"
upstream = "http://127.0.0.1:5173"
token = "none"
"#;

#[test]
fn check_accepts_a_valid_config() {
    let (code, stderr) = check(VALID);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn check_lists_three_mistakes_with_their_key_paths_and_exits_1() {
    let broken = VALID
        .replace("[oidc]", "[server]\nlisten = \"nope\"\n[oidc]")
        .replace("http://127.0.0.1:5173", "htp:/x")
        .replace(
            "store = \"memory\"",
            "store = \"memory\"\nidle_timeout = \"8 hourz\"",
        );
    let (code, stderr) = check(&broken);
    assert_eq!(code, 1, "{stderr}");
    for path in [
        "server.listen:",
        "route[1].upstream: invalid URL \"htp:/x\"",
        "session.idle_timeout:",
    ] {
        assert!(stderr.contains(path), "{path} missing in:\n{stderr}");
    }
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
}

#[test]
fn the_shipped_example_config_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tokengate.toml");
    let out = Command::new(BIN)
        .args(["check", "--config", example])
        .env("TOKENGATE_CLIENT_SECRET", "x")
        .env(
            "TOKENGATE_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .output()
        .expect("run tokengate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keygen_prints_32_random_bytes_in_base64() {
    use base64::Engine;
    let run = || {
        let out = Command::new(BIN)
            .arg("keygen")
            .output()
            .expect("run tokengate");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .expect("utf8")
            .trim()
            .to_owned()
    };
    let key = run();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .expect("base64");
    assert_eq!(bytes.len(), 32);
    assert_ne!(key, run(), "keys are random");
}

/// `check --online` against the real provider, set up to publish its revocation endpoint
/// only in RFC 8414 metadata, with the end-session endpoint named in the configuration:
/// each endpoint is printed with where it came from, and the features that decide what
/// will work with this provider are listed.
#[test]
fn check_online_prints_each_endpoint_with_its_source_and_the_providers_features() {
    let op = crate::support::Op::start(
        "http://127.0.0.1:1",
        &crate::support::OpOptions {
            rfc8414_only: "revocation_endpoint",
            ..crate::support::OpOptions::default()
        },
    );
    let issuer = &op.issuer;
    let config = VALID.replace("http://127.0.0.1:9000", issuer).replace(
        "client_secret = \"secret\"",
        "client_secret = \"secret\"\nend_session_endpoint = \"https://op.example/logout\"",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokengate.toml");
    std::fs::write(&path, config).expect("write");
    let out = Command::new(BIN)
        .args(["check", "--online", "--config"])
        .arg(&path)
        .output()
        .expect("run tokengate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        format!("authorization_endpoint: {issuer}/auth (from discovery)"),
        format!("token_endpoint: {issuer}/token (from discovery)"),
        format!("jwks_uri: {issuer}/jwks (from discovery)"),
        format!("revocation_endpoint: {issuer}/token/revocation (from RFC 8414 metadata)"),
        "end_session_endpoint: https://op.example/logout (from configuration)".to_owned(),
        "pushed_authorization_request_endpoint: absent".to_owned(),
        format!("RFC 8414 metadata: read from {issuer}/.well-known/oauth-authorization-server"),
        "issuer in authorization responses (RFC 9207 iss): yes".to_owned(),
        "back-channel logout: yes, with sid".to_owned(),
        "ID token signing algorithms: ".to_owned(),
        "DPoP: no".to_owned(),
        "pushed authorization requests: no".to_owned(),
        "refresh-token rotation: cannot be known in advance".to_owned(),
    ] {
        assert!(stdout.contains(&line), "{line:?} missing in:\n{stdout}");
    }
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("ID token signing algorithms:") && l.contains("RS256")),
        "{stdout}"
    );
}
