//! The real test OpenID Provider (tests/op, `oidc-provider` on Node.js) as a child process.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const CLIENT_ID: &str = "gateway";
pub const CLIENT_SECRET: &str = "gateway-secret";
pub const API_AUDIENCE: &str = "https://api.tokengate.test";
/// Another audience a route can ask for with `resource` (RFC 8707).
pub const OTHER_AUDIENCE: &str = "https://other.tokengate.test";
/// The `acr` of a login with username and password (amr `["pwd"]`).
pub const ACR_PASSWORD: &str = "urn:tokengate:password";
/// The `acr` of a login with the one-time code too (amr `["pwd", "otp"]`): the provider's
/// form asks for the code when the authorization request's `acr_values` names this.
pub const ACR_MFA: &str = "urn:tokengate:mfa";
/// The one-time code the provider's login form accepts.
pub const MFA_CODE: &str = "123456";

/// How long the provider may take to print its ready line.
const READY_LIMIT: Duration = Duration::from_secs(30);

/// Settings of one provider process.
#[derive(Clone, Debug)]
pub struct OpOptions {
    pub access_token_ttl: u64,
    pub rotate_refresh: bool,
    pub client_auth: &'static str,
    /// Where the provider keeps its keys and records (`OP_STATE_DIR`), so that a restart
    /// on the same port continues where the old process stopped. `None`: memory only.
    pub state_dir: Option<PathBuf>,
    /// Refresh token lifetime, reported as `refresh_expires_in` too. `None`: 14 days.
    pub refresh_token_ttl: Option<u64>,
    /// Endpoints the provider leaves out (`OP_DISABLE`: `revocation`, `end_session`).
    pub disable: &'static str,
    /// Send back-channel logout tokens to the gateway when a user signs out at the
    /// provider. Also what makes the provider put its `sid` in ID tokens.
    pub backchannel: bool,
    /// Serve HTTPS with the test CA's certificate, asking clients for certificates
    /// (`https://127.0.0.1:…` issuer).
    pub tls: bool,
    /// `private_key_jwt`: the private key (PEM) whose public half the client registers.
    pub client_key: Option<PathBuf>,
    /// DPoP-bound tokens required of the client, with provider nonces.
    pub dpop: bool,
    /// Pushed authorization requests: "" off, "on" offered, "required".
    pub par: &'static str,
    /// Interop: metadata fields (comma-separated, e.g. `revocation_endpoint`) left out of
    /// the discovery document and published only in RFC 8414 metadata (`OP_RFC8414_ONLY`).
    pub rfc8414_only: &'static str,
    /// Interop: authorization error responses without `iss`, though discovery promises it
    /// (`OP_DROP_ERROR_ISS`).
    pub drop_error_iss: bool,
    /// Interop: the ID token carries only `sub` and protocol claims (acr, amr, auth_time,
    /// ...); profile, email, groups and tenant come from the userinfo endpoint. An access
    /// token asked for without `resource` then has no audience (opaque, for userinfo);
    /// with `resource` it is the usual JWT for that audience (`OP_USERINFO_CLAIMS`).
    pub userinfo_claims: bool,
}

impl Default for OpOptions {
    fn default() -> Self {
        OpOptions {
            access_token_ttl: 300,
            rotate_refresh: true,
            client_auth: "client_secret_basic",
            state_dir: None,
            refresh_token_ttl: None,
            disable: "",
            backchannel: true,
            tls: false,
            client_key: None,
            dpop: false,
            par: "",
            rfc8414_only: "",
            drop_error_iss: false,
            userinfo_claims: false,
        }
    }
}

pub struct Op {
    child: Option<Child>,
    pub issuer: String,
    pub port: u16,
    gateway_origin: String,
    opts: OpOptions,
}

impl Op {
    /// Starts the provider on a free port for a gateway whose public origin is
    /// `gateway_origin`, and waits for its ready line. Blocks the calling thread.
    pub fn start(gateway_origin: &str, opts: &OpOptions) -> Op {
        let (child, issuer, port) = spawn(gateway_origin, opts, 0);
        Op {
            child: Some(child),
            issuer,
            port,
            gateway_origin: gateway_origin.to_owned(),
            opts: opts.clone(),
        }
    }

    /// Kills the provider process: from now on it is unreachable (connection refused).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the provider again on the same port (after [`Op::kill`]). With a
    /// `state_dir` it keeps its signing key, grants and refresh tokens. Blocks.
    pub fn restart(&mut self) {
        self.kill();
        let (child, issuer, port) = spawn(&self.gateway_origin, &self.opts, self.port);
        assert_eq!(
            issuer, self.issuer,
            "the provider came back on its old port"
        );
        assert_eq!(port, self.port);
        self.child = Some(child);
    }

    /// `/test/stats` of the provider.
    pub async fn stats(&self) -> Value {
        super::http_client()
            .get(format!("{}/test/stats", self.issuer))
            .send()
            .await
            .expect("provider /test/stats answers")
            .json()
            .await
            .expect("provider /test/stats is JSON")
    }

    /// How many refresh-token grants the provider has issued since it (re)started.
    pub async fn refresh_grants(&self) -> u64 {
        self.stats().await["grants"]["refresh_token"]
            .as_u64()
            .expect("stats.grants.refresh_token is a number")
    }

    /// Tokens the provider's revocation endpoint received, in order.
    pub async fn revocations(&self) -> Vec<Value> {
        super::http_client()
            .get(format!("{}/test/revocations", self.issuer))
            .send()
            .await
            .expect("provider /test/revocations answers")
            .json()
            .await
            .expect("provider /test/revocations is JSON")
    }

    /// Every token the provider issued, oldest first: `{grant_type, access_token,
    /// refresh_token, id_token}` each.
    pub async fn issued(&self) -> Vec<Value> {
        super::http_client()
            .get(format!("{}/test/issued", self.issuer))
            .send()
            .await
            .expect("provider /test/issued answers")
            .json()
            .await
            .expect("provider /test/issued is JSON")
    }

    /// Makes the token endpoint misbehave: `slow` (`ms`), `garbage`, `reset`, or `off`.
    pub async fn fault(&self, kind: &str, ms: u64) {
        let resp = super::http_client()
            .post(format!("{}/test/fault?token={kind}&ms={ms}", self.issuer))
            .send()
            .await
            .expect("provider /test/fault answers");
        assert_eq!(resp.status(), 200, "fault {kind}");
    }

    /// A JWT with `header` fields over the defaults (`alg` RS256, the provider's `kid`)
    /// and `claims`, signed by the provider's key or, with `foreign_key`, by another.
    pub async fn sign(&self, header: Value, claims: Value, foreign_key: bool) -> String {
        let v: Value = super::http_client()
            .post(format!("{}/test/sign", self.issuer))
            .json(&serde_json::json!({
                "header": header, "claims": claims, "foreign_key": foreign_key
            }))
            .send()
            .await
            .expect("provider /test/sign answers")
            .json()
            .await
            .expect("provider /test/sign is JSON");
        v["token"].as_str().expect("token").to_owned()
    }

    /// Destroys every refresh token of `sub` at the provider; returns how many.
    pub async fn revoke_refresh_tokens(&self, sub: &str) -> u64 {
        let v: Value = super::http_client()
            .post(format!("{}/test/revoke-refresh?sub={sub}", self.issuer))
            .send()
            .await
            .expect("provider /test/revoke-refresh answers")
            .json()
            .await
            .expect("provider /test/revoke-refresh is JSON");
        v["revoked"].as_u64().expect("revoked is a number")
    }

    /// Merges `claims` (a JSON object; a `null` value removes that claim) into the claims
    /// of `sub` at the provider (`POST /test/claims`). Tokens issued afterwards carry them:
    /// the ID token of the next refresh, userinfo answers.
    pub async fn set_claims(&self, sub: &str, claims: Value) {
        let resp = super::http_client()
            .post(format!(
                "{}/test/claims?sub={}",
                self.issuer,
                super::browser::urlencode(sub)
            ))
            .json(&claims)
            .send()
            .await
            .expect("provider /test/claims answers");
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert_eq!(status, 200, "provider /test/claims for {sub}: {body}");
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `node tests/op/server.mjs` and waits for `{"ready":true,"issuer":…,"port":…}`.
fn spawn(gateway_origin: &str, opts: &OpOptions, port: u16) -> (Child, String, u16) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/op/server.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(script)
        .env("OP_PORT", port.to_string())
        .env("OP_CLIENT_ID", CLIENT_ID)
        .env("OP_CLIENT_SECRET", CLIENT_SECRET)
        .env("OP_CLIENT_AUTH", opts.client_auth)
        .env("OP_REDIRECT_URIS", format!("{gateway_origin}/bff/callback"))
        .env("OP_POST_LOGOUT_REDIRECT_URIS", format!("{gateway_origin}/"))
        .env("OP_ACCESS_TOKEN_TTL", opts.access_token_ttl.to_string())
        .env(
            "OP_ROTATE_REFRESH",
            if opts.rotate_refresh { "1" } else { "0" },
        )
        .env("OP_API_AUDIENCE", API_AUDIENCE)
        .env("OP_DISABLE", opts.disable)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if opts.tls {
        let pki = super::pki();
        cmd.env("OP_TLS_CERT", &pki.server_cert)
            .env("OP_TLS_KEY", &pki.server_key)
            .env("OP_TLS_CA", &pki.ca);
    }
    if opts.client_auth == "self_signed_tls_client_auth" {
        cmd.env("OP_CLIENT_CERT_FILE", &super::pki().self_signed_cert);
    }
    match &opts.client_key {
        Some(k) => cmd.env("OP_CLIENT_KEY_FILE", k),
        None => cmd.env_remove("OP_CLIENT_KEY_FILE"),
    };
    cmd.env("OP_DPOP", if opts.dpop { "1" } else { "0" })
        .env("OP_PAR", opts.par)
        .env("OP_RFC8414_ONLY", opts.rfc8414_only)
        .env(
            "OP_DROP_ERROR_ISS",
            if opts.drop_error_iss { "1" } else { "0" },
        )
        .env(
            "OP_USERINFO_CLAIMS",
            if opts.userinfo_claims { "1" } else { "0" },
        );
    match opts.refresh_token_ttl {
        Some(ttl) => cmd.env("OP_REFRESH_TOKEN_TTL", ttl.to_string()),
        None => cmd.env_remove("OP_REFRESH_TOKEN_TTL"),
    };
    if opts.backchannel {
        cmd.env(
            "OP_BACKCHANNEL_LOGOUT_URI",
            format!("{gateway_origin}/bff/backchannel-logout"),
        );
    } else {
        cmd.env_remove("OP_BACKCHANNEL_LOGOUT_URI");
    }
    match &opts.state_dir {
        Some(dir) => cmd.env("OP_STATE_DIR", dir),
        None => cmd.env_remove("OP_STATE_DIR"),
    };
    let mut child = cmd
        .spawn()
        .expect("node must be installed to run the test provider (tests/op)");

    // stdout and stderr are read on threads of their own, so a provider that never prints
    // is caught by the deadline instead of hanging the test, and a chatty one never blocks
    // on a full pipe. stderr is kept for the panic message if the start fails.
    let stdout = child.stdout.take().expect("piped stdout");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = ready_tx.send(line);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let stderr = child.stderr.take().expect("piped stderr");
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    // TOKENGATE_TEST_OP_LOG=1 shows the provider's own log as it happens.
    let echo = std::env::var_os("TOKENGATE_TEST_OP_LOG").is_some();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[op] {line}");
            }
            text.push_str(&line);
            text.push('\n');
        }
        let _ = err_tx.send(text);
    });

    let line = ready_rx.recv_timeout(READY_LIMIT).unwrap_or_default();
    let ready: Option<Value> = serde_json::from_str(&line).ok();
    let issuer = ready
        .as_ref()
        .filter(|r| r["ready"] == true)
        .and_then(|r| r["issuer"].as_str())
        .map(str::to_owned);
    let bound = ready.as_ref().and_then(|r| r["port"].as_u64());
    match (issuer, bound) {
        (Some(issuer), Some(bound)) => {
            let bound = u16::try_from(bound).expect("port fits in u16");
            (child, issuer, bound)
        }
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            // The process is gone, so its stderr ends; wait a little for the reader.
            let err = err_rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_default();
            panic!(
                "test provider did not get ready within {READY_LIMIT:?}\n\
                 stdout line: {line:?}\nstderr:\n{err}\n\
                 (did you run `npm ci` in tests/op?)"
            );
        }
    }
}
