//! The accept loop of a port that speaks gRPC and the Kinesis HTTP protocol.
//!
//! Each connection is HTTP/1.1 or HTTP/2: over TLS, ALPN offers `h2` and `http/1.1`; in clear
//! text, HTTP/2 with prior knowledge is told apart from HTTP/1.1 by its first bytes
//! (hyper-util's `auto` builder). Requests are routed by path: gRPC methods live at
//! `/<package.Service>/<Method>`, and Kinesis requests are `POST /`, which the router's
//! fallback hands to the Kinesis front end. On shutdown the listener closes at once and every
//! open connection finishes its in-flight requests (HTTP/2 GOAWAY, HTTP/1 close after the
//! current response). Each connection writes through a [`crate::coalesce::CoalescingIo`], so
//! frames queued on it in the same scheduler turn share one write.
//!
//! Connections are bounded ([`crate::ConnectionLimits`]): beyond `max_connections` (counted
//! over every port) a new one is closed at once; one that sends nothing for `idle_timeout`
//! (no first byte, no next HTTP/1.1 request, an HTTP/2 ping unanswered) is closed. When
//! accepting fails for lack of file descriptors or memory, the loop backs off instead of
//! spinning, and the descriptors held by open shard logs are never given up to clients.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::TcpIncoming;

/// A TLS handshake that takes longer than this is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP/2 client has to answer a keep-alive ping.
const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// Backing off after an accept failed for lack of resources: from this, doubling, up to 1 s.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The connection limits and the permits of the connections open, shared by every port.
#[derive(Debug, Clone)]
pub(crate) struct OpenConnections {
    limits: crate::ConnectionLimits,
    permits: Arc<tokio::sync::Semaphore>,
}

impl OpenConnections {
    pub(crate) fn new(limits: crate::ConnectionLimits) -> Self {
        OpenConnections {
            limits,
            permits: Arc::new(tokio::sync::Semaphore::new(limits.max_connections)),
        }
    }
}

/// True for accept errors that say the process or system is out of a resource (descriptors,
/// memory, buffers): retrying at once would only spin.
fn out_of_resources(error: &std::io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM on Linux.
    matches!(error.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Serves `router` on every connection `incoming` accepts (through `tls` if given) until
/// `stop` resolves, then waits for the open connections to finish their in-flight requests.
pub(crate) async fn serve_connections(
    incoming: TcpIncoming,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    open: OpenConnections,
    stop: impl Future<Output = ()>,
) {
    let idle = open.limits.idle_timeout;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(idle)
        .keep_alive_timeout(PING_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let mut incoming = Box::pin(incoming);
    let mut stop = std::pin::pin!(stop);
    let mut backoff = ACCEPT_BACKOFF;
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = incoming.next() => {
                let stream = match accepted {
                    Some(Ok(stream)) => {
                        backoff = ACCEPT_BACKOFF;
                        stream
                    }
                    Some(Err(error)) if out_of_resources(&error) => {
                        if backoff == ACCEPT_BACKOFF {
                            tracing::warn!(%error, "accepting connections failed for lack of resources; backing off");
                        }
                        tokio::select! {
                            () = &mut stop => break,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                        continue;
                    }
                    Some(Err(error)) => {
                        tracing::debug!(%error, "accepting a connection failed");
                        continue;
                    }
                    None => break,
                };
                let Ok(permit) = open.permits.clone().try_acquire_owned() else {
                    tracing::debug!(max = open.limits.max_connections, "connection refused: the connection limit is reached");
                    drop(stream);
                    continue;
                };
                let builder = builder.clone();
                let router = router.clone();
                let watcher = graceful.watcher();
                match &tls {
                    None => {
                        tokio::spawn(async move {
                            // A connection that never sends a byte never reaches hyper's
                            // timers (the protocol is told by its first bytes): close it here.
                            let mut first = [0u8; 1];
                            match tokio::time::timeout(idle, stream.peek(&mut first)).await {
                                Ok(Ok(read)) if read > 0 => {
                                    serve_one(builder, stream, router, watcher).await;
                                }
                                Ok(_) => {}
                                Err(_) => tracing::debug!("closing a connection that sent nothing"),
                            }
                            drop(permit);
                        });
                    }
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        let deadline = HANDSHAKE_TIMEOUT.min(idle);
                        tokio::spawn(async move {
                            match tokio::time::timeout(deadline, handshake).await {
                                Ok(Ok(stream)) => serve_one(builder, stream, router, watcher).await,
                                Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                            drop(permit);
                        });
                    }
                }
            }
        }
    }
    // Dropping the listener first makes new connections fail fast instead of hanging.
    drop(incoming);
    graceful.shutdown().await;
}

async fn serve_one<IO>(
    builder: Builder<TokioExecutor>,
    stream: IO,
    router: axum::Router,
    watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let stream = crate::coalesce::CoalescingIo::new(stream);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(error) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(%error, "connection ended with an error");
    }
}
