//! A real nginx (Debian's, which has `auth_request`) in front of the gateway: its own
//! configuration and temporary files in a directory of its own, in the foreground and in
//! one process, as bench/lib.sh's `nginx_start` runs it (never the system's service).
//! Stopped when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Nginx {
    pub addr: SocketAddr,
    child: Child,
    dir: tempfile::TempDir,
}

/// A loopback address no one listens on now, for a server that binds it itself (nginx,
/// the forward-auth listener). Another process could take it before then; the kernel
/// hands out ports at random, so that is rare enough for tests.
pub fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Debian installs nginx in /usr/sbin, which a non-root `PATH` may lack.
fn binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|candidate| candidate.is_file());
    found.expect("nginx is needed (apt-get install nginx; scripts/test installs it as root)")
}

impl Nginx {
    /// nginx listening on `addr` with `http` inside its `http` block (the caller's
    /// `server` blocks and maps); waits until it accepts connections.
    pub async fn start(addr: SocketAddr, http: &str) -> Nginx {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        // One process (`master_process off`): no workers switching to another user, who
        // could not reach this directory, and nothing left behind when it is killed.
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             access_log off;\n\
             client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
             {http}\n}}\n"
        );
        let conf = conf.replace("@LISTEN@", &addr.to_string());
        std::fs::write(dir.path().join("nginx.conf"), &conf).expect("write nginx.conf");
        let child = Command::new(binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { addr, child, dir };
        nginx.wait_ready().await;
        nginx
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What nginx logged (warnings and errors).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("nginx exited with {status}:\n{}", self.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {} in time:\n{}",
                self.addr,
                self.error_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
