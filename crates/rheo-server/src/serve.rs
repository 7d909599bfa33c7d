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

use std::future::Future;
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

/// Serves `router` on every connection `incoming` accepts (through `tls` if given) until
/// `stop` resolves, then waits for the open connections to finish their in-flight requests.
pub(crate) async fn serve_connections(
    incoming: TcpIncoming,
    router: axum::Router,
    tls: Option<TlsAcceptor>,
    stop: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let mut incoming = Box::pin(incoming);
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = incoming.next() => {
                let stream = match accepted {
                    Some(Ok(stream)) => stream,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "accepting a connection failed");
                        continue;
                    }
                    None => break,
                };
                let builder = builder.clone();
                let router = router.clone();
                let watcher = graceful.watcher();
                match &tls {
                    None => {
                        tokio::spawn(serve_one(builder, stream, router, watcher));
                    }
                    Some(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        tokio::spawn(async move {
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(stream)) => serve_one(builder, stream, router, watcher).await,
                                Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
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
