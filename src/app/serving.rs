//! Serving the gateway: the public listeners, one worker each, the admin and forward-auth
//! listeners, and the drain at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::reload::{reload_on_hangup, Current};
use crate::config::Config;
use crate::gateway::{Gateway, StartError};
use crate::server::listener::{self, Limits, SharedLimits};
use crate::shutdown;

/// The public listening sockets for `workers` workers on `addr`: one each, all bound to
/// the same address with `SO_REUSEPORT`, so that the kernel spreads new connections over
/// them and no two workers wait on one socket.
pub fn bind_public(
    addr: SocketAddr,
    workers: usize,
) -> std::io::Result<Vec<std::net::TcpListener>> {
    (0..workers.max(1))
        .map(|_| {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&addr.into())?;
            socket.listen(1024)?;
            Ok(socket.into())
        })
        .collect()
}

/// Serves the gateway until `shutdown` resolves, then drains: the public side on
/// `listeners`, one worker each, and the admin endpoints on `admin`. Provider discovery
/// runs in the background meanwhile.
///
/// A worker is a current-thread runtime serving its listener, with upstream pools of its
/// own: a request is accepted, authorised, sent upstream and answered on one thread, and
/// the workers share only the gateway (its session cache and stores, its keys). The first
/// listener is served on the caller's runtime, which also runs the admin listener,
/// discovery and the stores' background tasks; each other on a thread of its own. (On one
/// core, tokio's work-stealing scheduler with one worker served about 30 % fewer proxied
/// requests per second than the current-thread one, for the same instructions per
/// request: docs/benchmarks.md.)
pub async fn serve(
    config: Config,
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    serve_reloading(config, None, listeners, admin, shutdown).await
}

/// [`serve`], and with `reload_from`, a configuration reload from that file on every
/// `SIGHUP` (see `reload::reload`).
pub async fn serve_reloading(
    config: Config,
    reload_from: Option<PathBuf>,
    listeners: Vec<TcpListener>,
    admin: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let tls = public_tls(&config)?;
    let limits: SharedLimits = Arc::new(ArcSwap::from_pointee(limits_of(&config)));
    let gw = Arc::new(Gateway::new(config, listeners.len())?);
    let forward_auth = bind_forward_auth(&gw.config).await?;
    let current = Arc::new(Current::new(gw.clone(), limits.clone()));
    current.discover(&gw);
    let reloads = reload_from.map(|path| tokio::spawn(reload_on_hangup(path, current.clone())));

    let (trigger, stop) = shutdown::channel();
    let part = Worker {
        current: current.clone(),
        tls,
        limits: limits.clone(),
        stop: stop.clone(),
    };
    let (public, others) = part.spawn_all(listeners)?;
    // Forward auth on its own listener, never the public one: its answers carry tokens.
    let forward_auth = forward_auth.map(|listener| {
        spawn_forward_auth(listener, current.clone(), limits.clone(), stop.clone())
    });
    let admin = spawn_admin(admin, current.clone(), limits, stop);
    drop(gw);
    shutdown.await;
    tracing::info!("shutting down: no new connections, draining in-flight requests");
    trigger.fire();
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    current.stop_discovery();
    let _ = tokio::join!(public, admin);
    if let Some(forward_auth) = forward_auth {
        let _ = forward_auth.await;
    }
    for finished in others {
        // Err: the worker's thread ended without a word (its runtime failed); either way
        // it is done.
        let _ = finished.await;
    }
    // The spans of the last requests, before the process ends.
    let telemetry = current.gateway.load().telemetry.clone();
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    Ok(())
}

/// The TLS acceptor of the public listeners, when `server.tls` is set.
fn public_tls(config: &Config) -> Result<Option<tokio_rustls::TlsAcceptor>, StartError> {
    Ok(match &config.server.tls {
        Some(files) => {
            Some(listener::tls_acceptor(&files.cert, &files.key).map_err(StartError::Config)?)
        }
        None => None,
    })
}

/// Serves the forward-auth endpoint on `listener` with the current gateway.
fn spawn_forward_auth(
    listener: TcpListener,
    current: Arc<Current>,
    limits: SharedLimits,
    stop: shutdown::Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(listener::run(
        listener,
        0,
        None,
        limits,
        stop,
        Arc::default(),
        move |req, _| {
            let gw = current.gateway.load_full();
            async move { crate::forward_auth::handle(&gw, req).await }
        },
    ))
}

/// Serves the admin endpoints on `admin` with the current gateway.
fn spawn_admin(
    admin: TcpListener,
    current: Arc<Current>,
    limits: SharedLimits,
    stop: shutdown::Shutdown,
) -> JoinHandle<()> {
    let open = Arc::default();
    tokio::spawn(listener::run(
        admin,
        0,
        None,
        limits,
        stop,
        open,
        move |req, _| {
            let gw = current.gateway.load_full();
            async move { crate::admin::handle(&gw, req).await }
        },
    ))
}

/// The forward-auth listener, when `[forward_auth]` is set. Bound here rather than by the
/// caller like the public and admin ones, so that every caller of [`serve`] (the binary,
/// the tests) gets it from the configuration alone.
async fn bind_forward_auth(config: &Config) -> Result<Option<TcpListener>, StartError> {
    let Some(fa) = &config.forward_auth else {
        return Ok(None);
    };
    let listener = TcpListener::bind(fa.listen).await.map_err(|e| {
        StartError::Config(format!(
            "forward_auth.listen: cannot listen on {}: {e}",
            fa.listen
        ))
    })?;
    tracing::info!(listen = %fa.listen, "forward auth listening");
    Ok(Some(listener))
}

pub(super) fn limits_of(config: &Config) -> Limits {
    Limits {
        header_read_timeout: config.server.header_read_timeout,
        max_header_bytes: config.server.max_header_bytes,
        max_headers: config.server.max_headers,
        shutdown_grace: config.server.shutdown_grace,
        max_connections: config.server.max_connections,
    }
}

/// What every worker serves with: the current gateway, TLS, the limits and the shutdown
/// signal.
#[derive(Clone)]
struct Worker {
    current: Arc<Current>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: SharedLimits,
    stop: shutdown::Shutdown,
}

impl Worker {
    /// A worker for each of `listeners`: the first served on the current runtime, each
    /// other on a thread of its own (see [`serve`]). Their tasks, to wait for at shutdown.
    fn spawn_all(
        self,
        listeners: Vec<TcpListener>,
    ) -> Result<(JoinHandle<()>, Vec<tokio::sync::oneshot::Receiver<()>>), StartError> {
        let mut listeners = listeners.into_iter();
        let first = listeners
            .next()
            .ok_or_else(|| StartError::Config("server.listen: no listener to serve".into()))?;
        let mut others = Vec::new();
        for (i, listener) in listeners.enumerate() {
            // The socket moves to the worker's own runtime, to be woken by that one's poller.
            others.push(self.clone().spawn_thread(i + 1, listener.into_std()?)?);
        }
        let public = tokio::spawn(self.serve(0, first));
        Ok((public, others))
    }

    /// Serves `listener` as worker `index` on the current runtime, until shutdown.
    fn serve(self, index: usize, listener: TcpListener) -> impl Future<Output = ()> + Send {
        let Worker {
            current,
            tls,
            limits,
            stop,
        } = self;
        let gw = current.gateway.load();
        gw.metrics.add_runtime(tokio::runtime::Handle::current());
        let open = gw.metrics.connections.clone();
        listener::run(
            listener,
            index,
            tls,
            limits,
            stop,
            open,
            move |req, conn| super::dispatch::handle(current.gateway.load_full(), req, conn),
        )
    }

    /// Worker `index` on a thread of its own with a current-thread runtime; the receiver
    /// resolves when it has drained and stopped.
    fn spawn_thread(
        self,
        index: usize,
        listener: std::net::TcpListener,
    ) -> std::io::Result<tokio::sync::oneshot::Receiver<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (done, finished) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("tokengate-worker-{index}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => self.serve(index, listener).await,
                        Err(e) => {
                            tracing::error!(worker = index, error = %e, "worker cannot listen")
                        }
                    }
                });
                // Dropped here, after its runtime: the receiver learns the worker is done.
                drop(runtime);
                let _ = done.send(());
            })?;
        Ok(finished)
    }
}
