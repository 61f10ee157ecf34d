//! The client for calls to the OpenID Provider: discovery, JWKS, token, revocation.
//!
//! It follows no redirects (a provider endpoint that redirects is misconfigured, and
//! following would send client credentials wherever the redirect points), bounds the
//! whole exchange in time and the answer in size, and reports a 5xx answer as an error
//! of its own kind so the refresh logic can tell "provider down" from "grant refused".
//! A connection is used again only while it has been idle for less than [`IDLE_REUSE`].

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::net::{connector, Connector};

/// Largest provider answer read (discovery documents and JWKS are a few KiB).
const MAX_BODY: usize = 1 << 20;

/// How long a connection to the provider may sit idle and still carry the next request:
/// less than the keep-alive of the servers providers run on (Node.js and Apache close an
/// idle connection after 5 s, gunicorn after 2 s). A request sent on a connection at the
/// moment its server closes it is lost, and a refresh grant is not one to send twice
/// (a rotated refresh token may already be spent): the refresh would answer 503. Calls
/// to the provider are few, and a new connection for one after a quiet second costs a
/// handshake.
pub const IDLE_REUSE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum ProviderHttpError {
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    #[error("provider did not answer in time")]
    Timeout,
    #[error("provider answered {0}")]
    ServerError(http::StatusCode),
    #[error("provider answer unreadable: {0}")]
    Body(String),
}

pub struct ProviderHttp {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

impl ProviderHttp {
    /// `tls` carries the roots to trust and, for mutual TLS, the client certificate.
    pub fn new(
        connect_timeout: Duration,
        timeout: Duration,
        tls: rustls::ClientConfig,
    ) -> ProviderHttp {
        ProviderHttp {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(IDLE_REUSE)
                .pool_timer(TokioTimer::new())
                .build(connector(connect_timeout, tls)),
            timeout,
        }
    }

    /// Sends one request and reads the whole (bounded) answer.
    pub async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, ProviderHttpError> {
        let request = request.map(|b| Full::new(Bytes::from(b)));
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| ProviderHttpError::Unreachable(e.to_string()))?;
            let (parts, body) = response.into_parts();
            if parts.status.is_server_error() {
                return Err(ProviderHttpError::ServerError(parts.status));
            }
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| ProviderHttpError::Body(e.to_string()))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ProviderHttpError::Timeout)?
    }
}

/// Lets the openidconnect crate send its requests through this client.
impl<'c> openidconnect::AsyncHttpClient<'c> for ProviderHttp {
    type Error = ProviderHttpError;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<http::Response<Vec<u8>>, ProviderHttpError>>
                + Send
                + 'c,
        >,
    >;

    fn call(&'c self, request: http::Request<Vec<u8>>) -> Self::Future {
        Box::pin(self.send(request))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::{ProviderHttp, IDLE_REUSE};

    /// A keep-alive HTTP/1.1 server answering `ok` to every request; counts connections.
    async fn server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while let Ok(n @ 1..) = conn.read(&mut buf).await {
                        seen.extend_from_slice(&buf[..n]);
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if conn.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    async fn get(http: &ProviderHttp, addr: std::net::SocketAddr) {
        let request = http::Request::get(format!("http://{addr}/"))
            .body(Vec::new())
            .expect("request");
        let answer = http.send(request).await.expect("answer");
        assert_eq!(answer.body(), b"ok");
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_reuse_limit_is_not_used_again() {
        let tls = crate::net::tls_client_config(&[], None).expect("tls");
        let http = ProviderHttp::new(Duration::from_secs(5), Duration::from_secs(5), tls);
        let (addr, accepted) = server().await;
        get(&http, addr).await;
        get(&http, addr).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "back to back: one connection"
        );
        // The scenario itself is a connection left idle past the limit.
        tokio::time::sleep(IDLE_REUSE + Duration::from_millis(200)).await;
        get(&http, addr).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "after the idle limit, a new connection"
        );
    }
}
