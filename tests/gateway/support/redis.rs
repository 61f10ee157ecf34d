//! Real `redis-server` processes for the tests: one standalone server, or a 3-node Redis
//! Cluster, on free loopback ports, each in a temporary directory, stopped on drop. Tests
//! that only need keys of their own may share one of each with the whole test process
//! (`shared`): those are stopped when the process ends, however it ends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a server may take to answer PING, and a cluster to reach `cluster_state:ok`.
const READY_LIMIT: Duration = Duration::from_secs(20);

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// Also `--cluster-port` for a cluster node.
    bus_port: u16,
    cluster: bool,
    /// Run under [`WATCHDOG`]: stopped, and its directory removed, when this process ends.
    for_process: bool,
    dir: tempfile::TempDir,
}

/// `sh -c WATCHDOG sh DIR redis-server ARGS…`: runs the server, and stops it and removes
/// DIR once its stdin (a pipe from the test process) reaches end of file, which happens
/// when the test process ends, even killed; it exits with the server.
const WATCHDOG: &str = r#"dir=$1; shift
"$@" & pid=$!
exec 3<&0
( read -r _ <&3; kill "$pid" 2>/dev/null
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; rm -rf "$dir" ) &
wait "$pid""#;

/// A port nothing listens on right now (the kernel's pick, released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl RedisServer {
    /// A standalone server; blocks until it answers PING.
    pub fn start() -> RedisServer {
        RedisServer::launch(false, false)
    }

    /// The standalone server of this test process, started by the first test that asks
    /// (blocking), then shared by every test until the process ends. Its users keep to
    /// keys of their own, and do not count on hearing only their own change notices.
    pub fn shared() -> &'static RedisServer {
        static SHARED: OnceLock<RedisServer> = OnceLock::new();
        SHARED.get_or_init(|| RedisServer::launch(false, true))
    }

    fn launch(cluster: bool, for_process: bool) -> RedisServer {
        let mut server = RedisServer {
            child: None,
            port: free_port(),
            bus_port: free_port(),
            cluster,
            for_process,
            dir: tempfile::tempdir().expect("tempdir"),
        };
        server.spawn();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let dir = self.dir.path();
        let mut cmd = if self.for_process {
            let mut sh = Command::new("sh");
            sh.args(["-c", WATCHDOG, "sh"]).arg(dir).arg("redis-server");
            sh
        } else {
            Command::new("redis-server")
        };
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"));
        if self.cluster {
            cmd.args(["--cluster-enabled", "yes"])
                .args(["--cluster-port", &self.bus_port.to_string()])
                .arg("--cluster-config-file")
                .arg(dir.join("nodes.conf"));
        }
        let stdin = if self.for_process {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let child = cmd
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + READY_LIMIT;
        while command(self.port, &["PING"]).as_deref() != Some("+PONG") {
            if let Some(Some(status)) = self.child.as_mut().map(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "redis-server on port {} exited with {status}:\n{}",
                    self.port,
                    log_of(dir)
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer PING:\n{}",
                self.port,
                log_of(dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server the way an operator would (`SHUTDOWN SAVE`): its data is written
    /// to its directory, so [`RedisServer::restart`] brings it back with every key.
    pub fn stop_saving(&mut self) {
        let _ = command(self.port, &["SHUTDOWN", "SAVE"]);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// Starts the server again on its port, from its directory. Blocks until ready.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback ports.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts the nodes, joins them with `redis-cli --cluster create`, and waits until
    /// every node reports `cluster_state:ok`. Blocks.
    pub fn start() -> RedisCluster {
        RedisCluster::launch(false)
    }

    /// The cluster of this test process, shared as [`RedisServer::shared`] is.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| RedisCluster::launch(true))
    }

    fn launch(for_process: bool) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| RedisServer::launch(true, for_process))
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (it comes with redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + READY_LIMIT;
        for node in &nodes {
            while !command(node.port, &["CLUSTER", "INFO"])
                .is_some_and(|info| info.contains("cluster_state:ok"))
            {
                assert!(
                    Instant::now() < deadline,
                    "cluster node {} never reached cluster_state:ok",
                    node.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { nodes }
    }

    /// The `session.redis_cluster` list: every node's URL.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// Sends one command in RESP and returns the raw reply (simple string line, or a bulk
/// string's payload); `None` if the server does not answer.
fn command(port: u16, args: &[&str]) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.write_all(req.as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if complete(&reply) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&reply).into_owned();
    match text.strip_prefix('$') {
        Some(bulk) => bulk
            .split_once("\r\n")
            .map(|(_, body)| body.trim_end().to_owned()),
        None => Some(text.trim_end().to_owned()),
    }
}

/// True once `reply` holds a whole simple-string or bulk-string reply.
fn complete(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    let Some((head, body)) = text.split_once("\r\n") else {
        return false;
    };
    match head.strip_prefix('$') {
        Some(len) => len
            .parse::<usize>()
            .map_or(true, |len| body.len() >= len + 2),
        None => true,
    }
}

fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default()
}
