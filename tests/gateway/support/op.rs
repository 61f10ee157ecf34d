//! The real test OpenID Provider (tests/op, `oidc-provider` on Node.js) as a child process.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub const CLIENT_ID: &str = "gateway";
pub const CLIENT_SECRET: &str = "gateway-secret";
pub const API_AUDIENCE: &str = "https://api.tokengate.test";

/// Settings of one provider process.
#[derive(Clone, Debug)]
pub struct OpOptions {
    pub access_token_ttl: u64,
    pub rotate_refresh: bool,
    pub client_auth: &'static str,
}

impl Default for OpOptions {
    fn default() -> Self {
        OpOptions {
            access_token_ttl: 300,
            rotate_refresh: true,
            client_auth: "client_secret_basic",
        }
    }
}

pub struct Op {
    child: Child,
    pub issuer: String,
}

impl Op {
    /// Starts the provider for a gateway whose public origin is `gateway_origin`, and
    /// waits for its ready line.
    pub fn start(gateway_origin: &str, opts: &OpOptions) -> Op {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/op/server.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .env("OP_PORT", "0")
            .env("OP_REDIRECT_URIS", format!("{gateway_origin}/bff/callback"))
            .env("OP_POST_LOGOUT_REDIRECT_URIS", format!("{gateway_origin}/"))
            .env("OP_ACCESS_TOKEN_TTL", opts.access_token_ttl.to_string())
            .env(
                "OP_ROTATE_REFRESH",
                if opts.rotate_refresh { "1" } else { "0" },
            )
            .env("OP_CLIENT_AUTH", opts.client_auth)
            .env("OP_API_AUDIENCE", API_AUDIENCE)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node must be installed to run the test provider");
        let stdout = child.stdout.take().expect("piped stdout");
        // The ready line, read on a thread so a provider that never prints is caught by
        // the deadline instead of hanging the test.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) if !line.is_empty() => line,
            _ => {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("test provider did not start: {err}");
            }
        };
        let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
        let issuer = ready["issuer"].as_str().expect("issuer").to_owned();
        // Keep draining stderr so the provider never blocks on a full pipe.
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut sink = Vec::new();
                let _ = err.read_to_end(&mut sink);
            });
        }
        Op { child, issuer }
    }

    /// `/test/stats` of the provider.
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/test/stats", self.issuer))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }

    pub async fn refresh_grants(&self) -> u64 {
        self.stats().await["grants"]["refresh_token"]
            .as_u64()
            .unwrap_or(0)
    }

    /// Tokens the provider's revocation endpoint received.
    pub async fn revocations(&self) -> Vec<Value> {
        reqwest::get(format!("{}/test/revocations", self.issuer))
            .await
            .expect("revocations")
            .json()
            .await
            .expect("revocations json")
    }

    /// Destroys every refresh token of `sub` at the provider.
    pub async fn revoke_refresh_tokens(&self, sub: &str) -> u64 {
        let v: Value = reqwest::Client::new()
            .post(format!("{}/test/revoke-refresh?sub={sub}", self.issuer))
            .send()
            .await
            .expect("revoke")
            .json()
            .await
            .expect("revoke json");
        v["revoked"].as_u64().unwrap_or(0)
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
