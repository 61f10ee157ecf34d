//! One running gateway: served in this process (habit 4: listeners and a shutdown future
//! in, the real server out), or the real `tokengate` binary as a child process, for what
//! only a process can show — a restart, a `kill -9`, a startup error and its exit code.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long a gateway may take to answer `/readyz` with 200.
const READY_LIMIT: Duration = Duration::from_secs(20);

pub struct Instance {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    run: Run,
}

enum Run {
    InProcess {
        stop: Option<oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<()>>,
    },
    Process {
        child: Option<Child>,
        /// The config file, the child's stderr and its log (stdout) live here.
        dir: tempfile::TempDir,
    },
}

impl Instance {
    /// Serves `toml` in process on the given listeners; waits until ready.
    pub async fn serve(toml: &str, listener: TcpListener, admin: TcpListener) -> Instance {
        super::init_logs();
        let config = tokengate::config::Config::from_toml_str(toml)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{toml}"));
        let addr = listener.local_addr().expect("addr");
        let admin_addr = admin.local_addr().expect("admin addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = tokengate::app::serve(config, vec![listener], admin, shutdown).await {
                panic!("gateway failed to start: {e}");
            }
        });
        let mut instance = Instance {
            addr,
            admin: admin_addr,
            run: Run::InProcess {
                stop: Some(stop),
                task: Some(task),
            },
        };
        instance.wait_ready().await;
        instance
    }

    /// Runs the `tokengate` binary on `toml` (which must listen on `addr` and `admin`);
    /// waits until ready.
    pub async fn process(toml: &str, addr: SocketAddr, admin: SocketAddr) -> Instance {
        Instance::process_with_env(toml, addr, admin, &[]).await
    }

    /// As [`Instance::process`], with these environment variables added.
    pub async fn process_with_env(
        toml: &str,
        addr: SocketAddr,
        admin: SocketAddr,
        env: &[(&str, &str)],
    ) -> Instance {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = spawn_binary(toml, &dir, env);
        let mut instance = Instance {
            addr,
            admin,
            run: Run::Process {
                child: Some(child),
                dir,
            },
        };
        instance.wait_ready().await;
        instance
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Waits until `/readyz` answers 200; if the gateway ends first, fails with its reason
    /// instead of a bare timeout.
    async fn wait_ready(&mut self) {
        let ready = self.admin_url("/readyz");
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            if reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            match &mut self.run {
                Run::InProcess { task, .. } if task.as_ref().is_some_and(|t| t.is_finished()) => {
                    let task = task.take().expect("task");
                    match task.await {
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        _ => panic!("the gateway stopped before it was ready"),
                    }
                }
                Run::Process { child, dir } => {
                    if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                        panic!(
                            "tokengate exited with {status} before it was ready:\n{}",
                            stderr_of(dir)
                        );
                    }
                }
                Run::InProcess { .. } => {}
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for the gateway to be ready at {ready}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the gateway process has logged so far (its stdout). Only a process instance
    /// has a log of its own: in-process gateways share the test's.
    pub fn log(&self) -> String {
        match &self.run {
            Run::Process { dir, .. } => {
                std::fs::read_to_string(dir.path().join("stdout")).unwrap_or_default()
            }
            Run::InProcess { .. } => panic!("only a gateway process (Setup::process) has a log"),
        }
    }

    /// `kill -9`: the process ends at once, mid-whatever-it-was-doing.
    pub fn kill9(&mut self) {
        if let Run::Process { child, .. } = &mut self.run {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// `kill -HUP` of a process after its configuration file is replaced by `toml`: the
    /// configuration reload an operator does.
    pub fn reload(&self, toml: &str) {
        let Run::Process { child, dir } = &self.run else {
            panic!("only a gateway process reloads on SIGHUP");
        };
        let child = child.as_ref().expect("the process runs");
        std::fs::write(dir.path().join("tokengate.toml"), toml).expect("write the config");
        let sent = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(sent.success(), "kill -HUP");
    }

    /// A graceful stop: SIGTERM to a process, the shutdown signal in process; waits for
    /// the end.
    pub async fn terminate(&mut self) {
        match &mut self.run {
            Run::InProcess { stop, task } => {
                if let Some(s) = stop.take() {
                    let _ = s.send(());
                }
                if let Some(t) = task.take() {
                    let _ = t.await;
                }
            }
            Run::Process { child, .. } => {
                if let Some(mut c) = child.take() {
                    let _ = Command::new("kill")
                        .args(["-TERM", &c.id().to_string()])
                        .status();
                    let _ = tokio::task::block_in_place(|| c.wait());
                }
            }
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        match &mut self.run {
            Run::InProcess { stop, .. } => {
                if let Some(s) = stop.take() {
                    let _ = s.send(());
                }
            }
            Run::Process { .. } => self.kill9(),
        }
    }
}

fn spawn_binary(toml: &str, dir: &tempfile::TempDir, env: &[(&str, &str)]) -> Child {
    let config = dir.path().join("tokengate.toml");
    std::fs::File::create(&config)
        .and_then(|mut f| f.write_all(toml.as_bytes()))
        .expect("write the config");
    let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
    let stdout = std::fs::File::create(dir.path().join("stdout")).expect("stdout file");
    Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start the tokengate binary")
}

fn stderr_of(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
}

/// Runs the binary on `toml` expecting it to refuse to start; returns its exit code and
/// stderr. Panics if it is still running after 20 s.
pub fn run_expecting_exit(toml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = spawn_binary(toml, &dir, &[]);
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code(), stderr_of(&dir));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("tokengate kept running; expected a startup error");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
