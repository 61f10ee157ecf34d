//! Stronger client security against the real provider: `private_key_jwt`, mutual TLS,
//! DPoP-bound tokens and pushed authorization requests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, Url};
use serde_json::Value;

use crate::support::{now, op, pki, wait_until, OpOptions, Setup, TestGateway};

/// A fresh EC P-256 key in PKCS#8 PEM, written to `dir`.
fn ec_key(dir: &Path, name: &str) -> PathBuf {
    let key = rcgen::KeyPair::generate().expect("key");
    let path = dir.join(name);
    std::fs::write(&path, key.serialize_pem()).expect("write key");
    path
}

/// Login, an API call, a refresh after expiry, logout with revocation: the whole
/// lifecycle, with whatever client authentication the setup has.
async fn whole_lifecycle(gw: &TestGateway) -> Value {
    let b = gw.logged_in("alice").await;
    let (status, first) = b.api(&gw.url("/api/one")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["token"]["valid"], true, "{first}");
    let exp = first["token"]["claims"]["exp"].as_u64().expect("exp");
    wait_until(Duration::from_secs(20), "token expiry", || async move {
        now() > exp
    })
    .await;
    let (status, second) = b.api(&gw.url("/api/two")).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(
        second["token"]["claims"]["jti"],
        first["token"]["claims"]["jti"]
    );
    assert_eq!(gw.op.refresh_grants().await, 1);

    let resp = b.logout(&gw.url("")).await;
    assert_eq!(resp.status(), 302);
    assert_eq!(gw.op.revocations().await.len(), 1, "refresh token revoked");
    let stats = gw.op.stats().await;
    assert_eq!(stats["grant_errors"], serde_json::json!({}), "{stats}");
    second
}

fn with(op: OpOptions, oidc_extra: String) -> Setup {
    Setup {
        op: OpOptions {
            access_token_ttl: 5,
            ..op
        },
        oidc_extra,
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn private_key_jwt_carries_the_whole_lifecycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = ec_key(dir.path(), "client.pem");
    let gw = TestGateway::start_with(with(
        OpOptions {
            client_auth: "private_key_jwt",
            client_key: Some(key.clone()),
            ..OpOptions::default()
        },
        format!("private_key = \"{}\"", key.display()),
    ))
    .await;
    whole_lifecycle(&gw).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_provider_rejects_a_wrong_private_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registered = ec_key(dir.path(), "registered.pem");
    let other = ec_key(dir.path(), "other.pem");
    let gw = TestGateway::start_with(with(
        OpOptions {
            client_auth: "private_key_jwt",
            client_key: Some(registered),
            ..OpOptions::default()
        },
        format!("private_key = \"{}\"", other.display()),
    ))
    .await;
    let b = crate::support::Browser::default();
    let landed = b.login(&gw.url(""), "alice", "alice-password", "/").await;
    assert_eq!(landed.status, 503, "{}", landed.body);
    assert!(b.cookie("tokengate").is_none(), "no session");
    let stats = gw.op.stats().await;
    assert_eq!(stats["grant_errors"]["authorization_code"], 1, "{stats}");
}

/// The lifecycle over mutual TLS: the provider on HTTPS, the gateway presenting `cert`.
/// RFC 8705 §3.1: the `x5t#S256` a token bound to `cert` carries, the base64url SHA-256
/// of the certificate's DER.
fn thumbprint(cert: &Path) -> String {
    use base64::Engine as _;
    use rustls_pki_types::pem::PemObject;
    use sha2::Digest as _;
    let der = rustls_pki_types::CertificateDer::from_pem_file(cert).expect("certificate");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der.as_ref()))
}

async fn mutual_tls(client_auth: &'static str, cert: &Path, key: &Path) -> Value {
    let gw = TestGateway::start_with(with(
        OpOptions {
            tls: true,
            client_auth,
            ..OpOptions::default()
        },
        format!(
            "tls_client_cert = \"{}\"\ntls_client_key = \"{}\"\ntls_ca = \"{}\"",
            cert.display(),
            key.display(),
            pki().ca.display()
        ),
    ))
    .await;
    assert!(gw.op.issuer.starts_with("https://"));
    let seen = whole_lifecycle(&gw).await;
    // The upstream got a token bound to the gateway's client certificate, not merely
    // one with some `cnf`.
    assert_eq!(
        seen["token"]["claims"]["cnf"]["x5t#S256"],
        thumbprint(cert),
        "a token bound to the gateway's certificate: {seen}"
    );
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_client_authentication_with_a_ca_signed_certificate() {
    mutual_tls("tls_client_auth", &pki().client_cert, &pki().client_key).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_client_authentication_with_a_self_signed_certificate() {
    let p = pki();
    mutual_tls(
        "self_signed_tls_client_auth",
        &p.self_signed_cert,
        &p.self_signed_key,
    )
    .await;
}

fn dpop_setup() -> Setup {
    let mut setup = with(
        OpOptions {
            dpop: true,
            ..OpOptions::default()
        },
        "dpop = true".into(),
    );
    setup.routes = "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\n\
                    [[route]]\npath = \"/bearer-only\"\nupstream = \"{upstream}\"\n\
                    token = \"user\"\ndpop = false\n"
        .into();
    setup
}

#[tokio::test(flavor = "multi_thread")]
async fn dpop_bound_tokens_are_presented_with_proofs() {
    let gw = TestGateway::start_with(dpop_setup()).await;
    let seen = whole_lifecycle(&gw).await;
    assert_eq!(seen["scheme"], "DPoP", "{seen}");
    assert_eq!(seen["dpop"]["valid"], true, "{seen}");
    assert!(seen["token"]["claims"]["cnf"]["jkt"].is_string(), "{seen}");
    let issued = gw.op.issued().await;
    assert!(issued.len() >= 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn dpop_upstream_nonces_opt_out_and_refresh_token_replay() {
    let gw = TestGateway::start_with(dpop_setup()).await;
    let b = gw.logged_in("alice").await;

    // An upstream that wants a nonce: the gateway sends the GET again with it.
    let (status, seen) = b.api(&gw.url("/api/dpop-nonce")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["dpop"]["nonce"], "upstream-nonce-1", "{seen}");
    let tries = gw
        .upstream
        .seen
        .lock()
        .expect("seen")
        .iter()
        .filter(|s| s.path == "/api/dpop-nonce")
        .count();
    assert_eq!(tries, 2, "one challenge, one retry");

    // A route that opts out gets the token as Bearer, without a proof.
    let (status, seen) = b.api(&gw.url("/bearer-only/x")).await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["scheme"], "Bearer");
    assert!(seen["headers"].get("dpop").is_none(), "{seen}");

    // The refresh token, replayed without a proof of the session's key, is refused.
    let refresh = gw.op.issued().await[0]["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let meta: Value = crate::support::http_client()
        .get(format!("{}/.well-known/openid-configuration", gw.op.issuer))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    let resp = crate::support::http_client()
        .post(meta["token_endpoint"].as_str().expect("token endpoint"))
        .basic_auth(op::CLIENT_ID, Some(op::CLIENT_SECRET))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["error"] == "invalid_grant" || body["error"] == "invalid_dpop_proof",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_authorization_requests_leave_only_client_id_and_request_uri_in_the_browser() {
    // Configured (oidc.par), and required by the provider without being configured.
    for (par, config) in [("on", "par = true"), ("required", "")] {
        let gw = TestGateway::start_with(with(
            OpOptions {
                par,
                ..OpOptions::default()
            },
            config.into(),
        ))
        .await;
        let b = crate::support::Browser::default();
        let resp = b
            .send(Method::GET, &gw.url("/bff/login?returnUrl=/"), &[], None)
            .await;
        assert_eq!(resp.status(), 302, "PAR {par}");
        let location =
            Url::parse(resp.headers()["location"].to_str().expect("ascii")).expect("url");
        let mut keys: Vec<String> = location
            .query_pairs()
            .map(|(k, _)| k.into_owned())
            .collect();
        keys.sort();
        assert_eq!(keys, ["client_id", "request_uri"], "PAR {par}: {location}");
        // And the login completes through it.
        let b = gw.logged_in("alice").await;
        assert_eq!(b.api(&gw.url("/api/x")).await.0, 200, "PAR {par}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn check_online_reports_what_the_provider_offers() {
    let op = tokio::task::spawn_blocking(|| {
        op::Op::start(
            "http://127.0.0.1:1",
            &OpOptions {
                dpop: true,
                par: "on",
                ..OpOptions::default()
            },
        )
    })
    .await
    .expect("provider");
    let dir = tempfile::tempdir().expect("tempdir");
    let key = ec_key(dir.path(), "k.pem");
    let config = dir.path().join("tokengate.toml");
    std::fs::write(
        &config,
        format!(
            "[oidc]\nissuer = \"{}\"\nclient_id = \"gateway\"\nclient_auth = \"private_key_jwt\"\n\
             private_key = \"{}\"\ndpop = true\npar = true\n\
             [session]\nkeys = [\"{}\"]\nstore = \"memory\"\n\
             [[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\ntoken = \"none\"\n",
            op.issuer,
            key.display(),
            crate::support::fresh_key()
        ),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["check", "--online", "--config"])
        .arg(&config)
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("private_key_jwt: yes"), "{stdout}");
    assert!(stdout.contains("DPoP: yes"), "{stdout}");
    assert!(
        stdout.contains("pushed authorization requests: yes"),
        "{stdout}"
    );

    // Asking for mutual TLS from a provider that does not offer it is a problem.
    let text = std::fs::read_to_string(&config).expect("read");
    let mtls = text.replace(
        &format!(
            "client_auth = \"private_key_jwt\"\nprivate_key = \"{}\"",
            key.display()
        ),
        &format!(
            "client_auth = \"tls_client_auth\"\ntls_client_cert = \"{}\"\ntls_client_key = \"{}\"",
            pki().client_cert.display(),
            pki().client_key.display()
        ),
    );
    std::fs::write(&config, mtls).expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .args(["check", "--online", "--config"])
        .arg(&config)
        .output()
        .expect("run check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("oidc.client_auth: the provider does not advertise \"tls_client_auth\""),
        "{stderr}"
    );
}
