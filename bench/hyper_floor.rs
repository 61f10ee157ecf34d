//! The floor under tokengate's proxying: the least a reverse proxy built on hyper can do.
//!
//! Each client connection gets one upstream connection of its own (no pool, no lock) and
//! every request on it is passed through unchanged: no route, no header rewrite, no
//! session, no span, no metrics, no timers. What this serves per second on one core is
//! what hyper's HTTP/1 server and client and tokio's current-thread runtime cost by
//! themselves; bench/hyper-floor.sh measures it beside nginx.
//!
//!   hyper_floor LISTEN_ADDR UPSTREAM_ADDR
//!
//! Without addresses (as `cargo test` runs it) it checks itself: one request through it
//! to an upstream of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::client::conn::http1 as client;
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hyper_floor: {e}");
            std::process::exit(1);
        }
    };
    if args.is_empty() {
        runtime.block_on(self_check());
        return;
    }
    let (Some(listen), Some(upstream)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
    ) else {
        eprintln!("usage: hyper_floor LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let listener = match runtime.block_on(TcpListener::bind(listen)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hyper_floor: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    // SIGTERM ends it by returning from main, so that an instrumented build writes its
    // profile (bench/hyper-floor.sh with PGO=1).
    runtime.block_on(async {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            eprintln!("hyper_floor: cannot handle SIGTERM");
            std::process::exit(1);
        };
        tokio::select! {
            () = serve(listener, upstream) => {}
            _ = term.recv() => {}
        }
    });
}

/// One request through the floor to an upstream answering `ok`.
async fn self_check() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let upstream_addr = upstream.local_addr().expect("upstream address");
    tokio::spawn(async move {
        while let Ok((conn, _)) = upstream.accept().await {
            tokio::spawn(async move {
                let ok = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"ok"),
                    )))
                });
                let _ = server::Builder::new()
                    .serve_connection(TokioIo::new(conn), ok)
                    .await;
            });
        }
    });
    let floor = TcpListener::bind("127.0.0.1:0").await.expect("bind floor");
    let floor_addr = floor.local_addr().expect("floor address");
    tokio::spawn(serve(floor, upstream_addr));
    let mut client = TcpStream::connect(floor_addr).await.expect("connect");
    client
        .write_all(b"GET /x HTTP/1.1\r\nHost: floor\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    client.read_to_string(&mut answer).await.expect("read");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
        "through the floor: {answer:?}"
    );
    println!("hyper_floor: one request passed through");
}

async fn serve(listener: TcpListener, upstream: SocketAddr) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let _ = inbound.set_nodelay(true);
            let Ok(outbound) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = outbound.set_nodelay(true);
            let Ok((sender, conn)) = client::handshake(TokioIo::new(outbound)).await else {
                return;
            };
            tokio::spawn(conn);
            // One request at a time per HTTP/1.1 connection: the lock is never contended.
            let sender = Arc::new(Mutex::new(sender));
            let svc = service_fn(move |req: Request<Incoming>| {
                let sender = sender.clone();
                async move {
                    let mut sender = sender.lock().await;
                    sender.ready().await?;
                    let resp: Response<Incoming> = sender.send_request(req).await?;
                    Ok::<_, hyper::Error>(resp)
                }
            });
            let _ = server::Builder::new()
                .serve_connection(TokioIo::new(inbound), svc)
                .await;
        });
    }
}
