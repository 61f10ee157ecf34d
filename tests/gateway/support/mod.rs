//! The test harness: a real provider, a verifying upstream, and tokengate itself served in
//! process on free loopback ports (habit 4: the server takes listeners and a shutdown
//! future), plus an HTTP browser that logs in through the provider's real form.

#![allow(dead_code)] // each test module uses a different part of the harness

pub mod browser;
pub mod op;
pub mod pki;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use browser::Browser;
pub use op::{Op, OpOptions};
pub use pki::{http_client, pki};
pub use upstream::Upstream;

/// Waits until `check` is true, polling every 50 ms; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// How to set up a gateway for a test.
pub struct Setup {
    pub op: OpOptions,
    /// Extra TOML appended to the generated configuration (e.g. an `[upstream]` table).
    pub extra: String,
    /// The `[[route]]` tables; `{upstream}` stands for the test upstream's URL. Default:
    /// `/api` → upstream with `token = "user"`, `/` → upstream with `token = "none"`.
    pub routes: String,
    /// `session.keys`; default: one fresh key.
    pub key: Option<String>,
    /// Extra keys inside `[server]` (e.g. `tls = {…}`, limits).
    pub server_extra: String,
    /// Extra keys inside `[session]` (e.g. `idle_timeout`).
    pub session_extra: String,
    /// Extra keys inside `[oidc]` (e.g. `logout_id_token_hint = true`).
    pub oidc_extra: String,
    /// `https` makes the public URL https (for a TLS listener).
    pub public_scheme: &'static str,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            op: OpOptions::default(),
            extra: String::new(),
            routes: "[[route]]\npath = \"/api\"\nupstream = \"{upstream}\"\ntoken = \"user\"\n\n\
                     [[route]]\npath = \"/\"\nupstream = \"{upstream}\"\ntoken = \"none\"\n"
                .into(),
            key: None,
            server_extra: String::new(),
            session_extra: String::new(),
            oidc_extra: String::new(),
            public_scheme: "http",
        }
    }
}

pub struct TestGateway {
    pub op: Op,
    pub upstream: Upstream,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn fresh_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(tokengate::crypto::random_bytes::<32>())
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        TestGateway::start_with(Setup::default()).await
    }

    pub async fn start_with(setup: Setup) -> TestGateway {
        init_logs();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let addr = listener.local_addr().expect("addr");
        let admin = admin_listener.local_addr().expect("admin addr");
        let origin = format!("{}://{addr}", setup.public_scheme);
        let op = {
            // The provider's start blocks (a child process and its ready line): keep it
            // off the runtime's worker threads, which other gateways in this test use.
            let (origin, opts) = (origin.clone(), setup.op.clone());
            match tokio::task::spawn_blocking(move || Op::start(&origin, &opts)).await {
                Ok(op) => op,
                // Keep the provider's own failure message (with its stderr).
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("starting the test provider: {e}"),
            }
        };
        let upstream = Upstream::start(&op.issuer).await;
        let key = setup.key.unwrap_or_else(fresh_key);
        let toml = format!(
            "[server]\nlisten = \"{addr}\"\npublic_url = \"{origin}\"\nadmin_listen = \"{admin}\"\n{server_extra}\n\n\
             [oidc]\nissuer = \"{issuer}\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\n\
             client_auth = \"{auth}\"\nscopes = [\"openid\", \"profile\", \"email\", \"offline_access\", \"api\"]\n\
             auth_params = {{ prompt = \"consent\" }}\n{oidc_extra}\n\n\
             [session]\nkeys = [\"{key}\"]\nstore = \"memory\"\n{session_extra}\n\n{extra}\n\n{routes}",
            issuer = op.issuer,
            id = op::CLIENT_ID,
            secret = op::CLIENT_SECRET,
            auth = setup.op.client_auth,
            extra = setup.extra,
            server_extra = setup.server_extra,
            session_extra = setup.session_extra,
            oidc_extra = setup.oidc_extra,
            routes = setup.routes.replace("{upstream}", &upstream.url()),
        );
        let config = tokengate::config::Config::from_toml_str(&toml)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{toml}"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = tokengate::app::serve(config, listener, admin_listener, shutdown).await
            {
                panic!("gateway failed to start: {e}");
            }
        });
        let mut gw = TestGateway {
            op,
            upstream,
            addr,
            admin,
            stop: Some(stop),
            task: Some(task),
        };
        gw.wait_ready().await;
        gw
    }

    /// Waits until `/readyz` answers 200; if the gateway task ends first, fails with its
    /// reason instead of a bare timeout.
    async fn wait_ready(&mut self) {
        let ready = self.admin_url("/readyz");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            if self.task.as_ref().is_some_and(|t| t.is_finished()) {
                let task = self.task.take().expect("task");
                match task.await {
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    _ => panic!("the gateway stopped before it was ready"),
                }
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the gateway to be ready at {ready}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// The `/metrics` page.
    pub async fn metrics_text(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// A browser logged in as `user` (password `<user>-password`), landed on `/`.
    pub async fn logged_in(&self, user: &str) -> Browser {
        let b = Browser::default();
        let landed = b
            .login(&self.url(""), user, &format!("{user}-password"), "/")
            .await;
        assert_eq!(landed.url, self.url("/"), "login should land on returnUrl");
        assert!(
            b.cookie("tokengate").is_some(),
            "login sets the session cookie"
        );
        b
    }

    /// Stops the gateway and waits for it to drain.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
