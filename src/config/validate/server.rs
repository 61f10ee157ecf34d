//! `[server]`, and `[forward_auth]`, whose listener must differ from the server's two.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Checker;
use crate::config::raw::{RawForwardAuth, RawServer};
use crate::config::{ForwardAuthConfig, ServerConfig, TlsFiles};

/// `server.listen` and `server.admin_listen`, which must differ.
pub(super) fn listeners(c: &mut Checker, s: &RawServer) -> (SocketAddr, SocketAddr) {
    let listen = c.socket("server.listen", s.listen.as_deref(), "127.0.0.1:8080");
    let admin_listen = c.socket(
        "server.admin_listen",
        s.admin_listen.as_deref(),
        "127.0.0.1:9090",
    );
    if listen == admin_listen && listen.port() != 0 {
        c.fail("server.admin_listen", "must differ from server.listen");
    }
    (listen, admin_listen)
}

/// `[forward_auth]`: its own listener, apart from `listen` and `admin_listen`.
pub(super) fn forward_auth(
    c: &mut Checker,
    f: &RawForwardAuth,
    listen: SocketAddr,
    admin_listen: SocketAddr,
) -> ForwardAuthConfig {
    let Some(text) = f.listen.as_deref() else {
        c.fail(
            "forward_auth.listen",
            "is required (e.g. \"127.0.0.1:8070\")",
        );
        return ForwardAuthConfig { listen };
    };
    let at = c.socket("forward_auth.listen", Some(text), text);
    // Its answers carry tokens: sharing a port with the public side would serve them
    // to browsers.
    for (other, key) in [
        (listen, "server.listen"),
        (admin_listen, "server.admin_listen"),
    ] {
        if at == other && at.port() != 0 {
            c.fail("forward_auth.listen", format!("must differ from {key}"));
        }
    }
    ForwardAuthConfig { listen: at }
}

/// The rest of `[server]`, once [`listeners`] has read the two addresses. `None` when
/// `server.public_url` is invalid (a problem already reported).
pub(super) fn server(
    c: &mut Checker,
    s: &RawServer,
    listen: SocketAddr,
    admin_listen: SocketAddr,
) -> Option<ServerConfig> {
    let public_url = public_url(c, s, listen);
    let tls = s.tls.as_ref().map(|t| {
        for (key, file) in [("server.tls.cert", &t.cert), ("server.tls.key", &t.key)] {
            if std::fs::metadata(file).is_err() {
                c.fail(key, format!("cannot read file {file:?}"));
            }
        }
        TlsFiles {
            cert: PathBuf::from(&t.cert),
            key: PathBuf::from(&t.key),
        }
    });
    let mut header_read_timeout = c.duration(
        "server.header_read_timeout",
        s.header_read_timeout.as_deref(),
        "10s",
    );
    // hyper adds it to the clock for every request head: a limit past what an `Instant`
    // can hold would fail every connection rather than be no limit.
    if header_read_timeout > Duration::from_secs(86_400) {
        c.fail("server.header_read_timeout", "must be at most 1 day");
        header_read_timeout = Duration::from_secs(86_400);
    }
    let max_header_bytes = c.int(
        "server.max_header_bytes",
        s.max_header_bytes,
        16384,
        8192,
        1 << 20,
    ) as usize;
    let max_headers = c.int("server.max_headers", s.max_headers, 100, 1, 1000) as usize;
    let shutdown_grace = c.duration("server.shutdown_grace", s.shutdown_grace.as_deref(), "10s");
    let trusted_proxies = trusted_proxies(c, s);
    let max_connections = c.int(
        "server.max_connections",
        s.max_connections,
        10_000,
        1,
        10_000_000,
    ) as usize;
    let workers = s
        .workers
        .map(|n| c.int("server.workers", Some(n), 1, 1, 1024) as usize);
    public_url.map(|public_url| ServerConfig {
        listen,
        public_origin: public_url.origin().ascii_serialization(),
        secure_cookies: public_url.scheme() == "https",
        public_url,
        admin_listen,
        tls,
        header_read_timeout,
        max_header_bytes,
        max_headers,
        shutdown_grace,
        trusted_proxies,
        max_connections,
        workers,
    })
}

/// `server.public_url`: an origin without path or credentials; `http://` + `listen` when
/// unset.
fn public_url(c: &mut Checker, s: &RawServer, listen: SocketAddr) -> Option<url::Url> {
    let default_public = format!("http://{listen}");
    let public_text = s.public_url.clone().unwrap_or(default_public);
    let public_url = c.http_url("server.public_url", &public_text);
    if let Some(u) = &public_url {
        if u.path() != "/" {
            c.fail(
                "server.public_url",
                format!("{public_text:?} must be an origin without a path"),
            );
        }
        if !u.username().is_empty() || u.password().is_some() {
            c.fail("server.public_url", "must not carry credentials");
        }
    }
    public_url
}

/// `server.trusted_proxies`: addresses and CIDR blocks.
fn trusted_proxies(c: &mut Checker, s: &RawServer) -> Vec<ipnet::IpNet> {
    s.trusted_proxies
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, text)| match parse_cidr(text) {
            Some(net) => Some(net),
            None => {
                c.fail(
                    &format!("server.trusted_proxies[{i}]"),
                    format!("{text:?} is not an address or CIDR block (e.g. \"10.0.0.0/8\")"),
                );
                None
            }
        })
        .collect()
}

/// `10.0.0.0/8`, `::1/128`, or a bare address (one host).
fn parse_cidr(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}
