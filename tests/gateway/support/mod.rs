//! The test harness: a real provider, a verifying upstream, and tokengate itself served in
//! process on free loopback ports (habit 4: the server takes listeners and a shutdown
//! future), plus an HTTP browser that logs in through the provider's real form.

#![allow(dead_code)] // each test module uses a different part of the harness

pub mod browser;
pub mod capture;
pub mod dbsc;
pub mod instance;
pub mod nginx;
pub mod op;
pub mod otlp;
pub mod pki;
pub mod redis;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

pub use browser::Browser;
pub use instance::Instance;
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

/// Now, in seconds since the Unix epoch (as the gateway counts).
pub fn now() -> u64 {
    tokengate::session::unix_now()
}

/// The status of a plain GET of `url` (health and readiness probes).
pub async fn status_of(url: &str) -> u16 {
    reqwest::get(url).await.expect("request").status().as_u16()
}

pub(crate) fn init_logs() {
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
    /// Extra keys inside `[oidc]` (e.g. `logout_id_token_hint = true`); `{issuer}` stands
    /// for the provider's issuer.
    pub oidc_extra: String,
    /// `https` makes the public URL https (for a TLS listener).
    pub public_scheme: &'static str,
    /// The public URL when the browser reaches the gateway through something in front (an
    /// ingress on its own port); default: `public_scheme` and the gateway's listener.
    pub public_origin: Option<String>,
    /// The session store; tests that do not care keep `memory`.
    pub store: Store,
    /// Run the real `tokengate` binary as a child process instead of serving in process
    /// (for restarts, `kill -9` and startup errors).
    pub process: bool,
    /// Environment variables of that process beside the test's own (e.g.
    /// `TOKENGATE_LOG_FORMAT`); a restart runs without them.
    pub process_env: Vec<(&'static str, &'static str)>,
}

/// The session store of a test gateway, as `[session]` keys.
#[derive(Clone, Debug)]
pub enum Store {
    Memory,
    Embedded(std::path::PathBuf),
    Redis(String),
    RedisCluster(Vec<String>),
}

impl Store {
    fn toml(&self) -> String {
        match self {
            Store::Memory => "store = \"memory\"".into(),
            Store::Embedded(path) => {
                format!("store = \"embedded\"\npath = \"{}\"", path.display())
            }
            Store::Redis(url) => format!("store = \"redis\"\nredis_url = \"{url}\""),
            Store::RedisCluster(urls) => format!(
                "store = \"redis\"\nredis_cluster = [{}]",
                urls.iter()
                    .map(|u| format!("\"{u}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
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
            public_origin: None,
            store: Store::Memory,
            process: false,
            process_env: Vec::new(),
        }
    }
}

pub struct TestGateway {
    pub op: Op,
    pub upstream: Upstream,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The configuration with `@LISTEN@` and `@ADMIN@` standing for the listeners, so
    /// more instances (same public URL, same store) can be started from it.
    template: String,
    main: Instance,
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
        let origin = (setup.public_origin.clone())
            .unwrap_or_else(|| format!("{}://{addr}", setup.public_scheme));
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
        let template = format!(
            "[server]\nlisten = \"@LISTEN@\"\npublic_url = \"{origin}\"\nadmin_listen = \"@ADMIN@\"\n{server_extra}\n\n\
             [oidc]\nissuer = \"{issuer}\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\n\
             client_auth = \"{auth}\"\nscopes = [\"openid\", \"profile\", \"email\", \"offline_access\", \"api\"]\n\
             auth_params = {{ prompt = \"consent\" }}\n{oidc_extra}\n\n\
             [session]\nkeys = [\"{key}\"]\n{store}\n{session_extra}\n\n{extra}\n\n{routes}",
            issuer = op.issuer,
            id = op::CLIENT_ID,
            secret = op::CLIENT_SECRET,
            auth = setup.op.client_auth,
            store = setup.store.toml(),
            extra = setup.extra,
            server_extra = setup.server_extra,
            session_extra = setup.session_extra,
            oidc_extra = setup.oidc_extra.replace("{issuer}", &op.issuer),
            routes = setup.routes.replace("{upstream}", &upstream.url()),
        );
        let main = if setup.process {
            // The child binds these itself: release them first.
            drop((listener, admin_listener));
            let toml = render(&template, addr, admin);
            Instance::process_with_env(&toml, addr, admin, &setup.process_env).await
        } else {
            Instance::serve(&render(&template, addr, admin), listener, admin_listener).await
        };
        TestGateway {
            op,
            upstream,
            addr,
            admin,
            template,
            main,
        }
    }

    /// Another gateway instance on the same provider, upstream, keys and store, behind the
    /// same public URL (as behind a load balancer), served in process on its own ports.
    pub async fn another(&self) -> Instance {
        self.another_with(|toml| toml).await
    }

    /// As [`TestGateway::another`], with its configuration changed by `edit` first.
    pub async fn another_with(&self, edit: impl FnOnce(String) -> String) -> Instance {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let (a, b) = (
            listener.local_addr().expect("addr"),
            admin.local_addr().expect("admin addr"),
        );
        Instance::serve(&edit(render(&self.template, a, b)), listener, admin).await
    }

    /// The configuration of this gateway as TOML, listening on `addr` and `admin`.
    pub fn config_toml(&self, addr: SocketAddr, admin: SocketAddr) -> String {
        render(&self.template, addr, admin)
    }

    /// `kill -9` of the gateway process (`Setup::process`), at once.
    pub fn kill9(&mut self) {
        self.main.kill9();
    }

    /// Starts the gateway process again, same configuration and ports (after
    /// [`TestGateway::kill9`] or [`TestGateway::stop_process`]). Waits until ready.
    pub async fn restart_process(&mut self) {
        self.main = Instance::process(
            &self.config_toml(self.addr, self.admin),
            self.addr,
            self.admin,
        )
        .await;
    }

    /// Stops the gateway process with SIGTERM and waits for it to exit.
    pub async fn stop_process(&mut self) {
        self.main.terminate().await;
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

    /// Rewrites the gateway process's configuration file with `edit` applied to its
    /// configuration, and sends it SIGHUP (`Setup::process`).
    pub fn reload_with(&self, edit: impl FnOnce(String) -> String) {
        self.main
            .reload(&edit(self.config_toml(self.addr, self.admin)));
    }

    /// What the gateway process (`Setup::process`) has logged so far.
    pub fn log(&self) -> String {
        self.main.log()
    }

    /// Stops the gateway and waits for it to drain.
    pub async fn stop(mut self) {
        self.main.terminate().await;
    }
}

fn render(template: &str, addr: SocketAddr, admin: SocketAddr) -> String {
    template
        .replace("@LISTEN@", &addr.to_string())
        .replace("@ADMIN@", &admin.to_string())
}

/// Reads an HTTP/1.1 response head, byte by byte so nothing after it is consumed.
pub async fn read_head(conn: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut byte))
            .await
            .expect("response head in time")
            .expect("read");
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Writes `bytes` into a tunnel whose far end echoes, and reads them back.
pub async fn echoes(conn: &mut tokio::net::TcpStream, bytes: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(bytes).await.expect("write");
    let mut echo = vec![0u8; bytes.len()];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut echo))
        .await
        .expect("echo in time")
        .expect("read echo");
    assert_eq!(echo, bytes);
}

/// Reads the body of a response whose head is `head` (it has a `Content-Length`).
pub async fn read_body(conn: &mut tokio::net::TcpStream, head: &str) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("content-length");
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).await.expect("body");
    body
}
