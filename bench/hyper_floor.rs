//! The floor under tokengate's proxying: the least a reverse proxy built on hyper can do.
//!
//! Each client connection gets one upstream connection of its own (no pool, no lock) and
//! every request on it is passed through unchanged: no route, no header rewrite, no
//! session, no span, no metrics, no timers. What this serves per second on one core is
//! what hyper's HTTP/1 server and client and tokio's current-thread runtime cost by
//! themselves; bench/hyper-floor.sh measures it beside nginx.
//!
//!   hyper_floor LISTEN_ADDR UPSTREAM_ADDR

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
    let (Some(listen), Some(upstream)) = (
        args.first().and_then(|a| a.parse::<SocketAddr>().ok()),
        args.get(1).and_then(|a| a.parse::<SocketAddr>().ok()),
    ) else {
        eprintln!("usage: hyper_floor LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
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
    runtime.block_on(serve(listen, upstream));
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hyper_floor: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
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
