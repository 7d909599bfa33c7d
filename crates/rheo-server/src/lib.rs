//! Rheo's gRPC server: thin tonic adapters over [`rheo_streams::Store`].
//!
//! [`run`] serves on a listener while the store opens and until `shutdown` resolves: then it
//! stops accepting, ends push subscriptions cleanly, lets in-flight calls finish, and syncs
//! every shard log. [`serve_ops`] serves `/metrics`, `/healthz` and `/readyz` beside it. Tests
//! start both on `127.0.0.1:0`; the `rheo` binary adds flags, logging and signals around them.

mod admin;
mod coalesce;
mod convert;
mod deadline;
mod error;
mod handlers;
mod kinesis;
mod ops;
mod push;
mod serve;
mod service;
mod tls;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rheo_proto::v1::admin_server::AdminServer;
use rheo_proto::v1::kinesis_server::KinesisServer;
use rheo_storage::OffsetClock;
use rheo_streams::Store;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

pub use admin::AdminService;
pub use error::{ERROR_DOMAIN, kinesis_name, to_status};
pub use kinesis::Authentication;
pub use ops::{Ops, serve_ops};
pub use service::KinesisService;
pub use tls::{TlsError, TlsFiles};

/// Largest gRPC message accepted or sent: a 10 MiB PutRecords or GetRecords plus framing.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How [`run`] serves, besides the listener and the store.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// The store's clock when the server runs as a retention testbed: the Admin service then
    /// lets clients move it forward.
    pub testbed_clock: Option<OffsetClock>,
    /// Health and metrics, shared with the operations endpoint ([`serve_ops`]).
    pub ops: Arc<Ops>,
    /// After a shutdown signal, how long to keep serving while reporting not ready, so load
    /// balancers stop sending calls before the server stops accepting them. Default: 0.
    pub shutdown_delay: Duration,
    /// How Kinesis HTTP requests are authenticated. Default: any well-formed SigV4 header.
    pub authentication: Authentication,
    /// Serve TLS (ALPN `h2`, `http/1.1`) with this certificate and key, on every port `run`
    /// serves. Default: clear text.
    pub tls: Option<TlsFiles>,
    /// Serve the Kinesis HTTP API on this listener only, and gRPC alone on the main one.
    /// Default: both on the main listener.
    pub kinesis_listener: Option<TcpListener>,
    /// How long a request may take to send its body after its headers: a Kinesis HTTP request is
    /// then refused with 408 RequestTimeoutException, a gRPC call with DEADLINE_EXCEEDED.
    /// Default ([`None`]): [`REQUEST_BODY_TIMEOUT`].
    pub request_body_timeout: Option<Duration>,
    /// How many client connections may be open, and when an idle one is closed.
    pub connections: ConnectionLimits,
}

/// Bounds on client connections, over every port [`run`] serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once; a connection accepted beyond it is closed at once.
    /// Default: 2,048 (under the 4,096 file descriptors `rheo serve` keeps beside its shards).
    pub max_connections: usize,
    /// A connection is closed when it sends nothing for this long: before its first byte (or
    /// TLS handshake), and between HTTP/1.1 requests; an HTTP/2 connection is pinged after this
    /// long without traffic and closed if the client does not answer. Default: 60 s.
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 2048,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The default deadline for receiving a request body: a client that trickles a body would
/// otherwise hold its connection and buffer indefinitely.
pub const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves on `listener` until `shutdown` resolves. The gRPC port (with the health service
/// saying NOT_SERVING, and Kinesis calls failing with UNAVAILABLE) comes up at once, while
/// `opening` opens the store; once it has, the server is ready. On shutdown: not ready, wait
/// `shutdown_delay`, end push sessions, stop accepting, finish in-flight calls, sync every log.
pub async fn run(
    listener: TcpListener,
    opening: impl Future<Output = rheo_streams::Result<Store>> + Send,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let ServeOptions {
        testbed_clock,
        ops,
        shutdown_delay,
        authentication,
        tls,
        kinesis_listener,
        request_body_timeout,
        connections,
    } = options;
    let tls = tls.map(|files| files.acceptor()).transpose()?;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<KinesisServer<KinesisService>>()
        .await;
    // Reflection in both versions: grpcurl and older tools still ask v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rheo_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1()?;
    let reflection_alpha = reflection_builder().build_v1alpha()?;
    let opened: Arc<OnceLock<Store>> = Arc::default();
    let kinesis_service = KinesisService::new(opened.clone(), ops.clone());
    let kinesis = KinesisServer::new(kinesis_service.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let admin = AdminServer::new(AdminService::new(testbed_clock, opened.clone()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let body_timeout = request_body_timeout.unwrap_or(REQUEST_BODY_TIMEOUT);
    let grpc = tonic::service::Routes::new(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(kinesis)
        .add_service(admin)
        .prepare()
        .into_axum_router()
        .route(push::PATH, push::route(kinesis_service, MAX_MESSAGE_BYTES))
        .layer(axum::middleware::map_request(
            move |request: axum::extract::Request| async move {
                deadline::limit_body(request, body_timeout)
            },
        ));
    let http = kinesis::KinesisHttp {
        store: opened.clone(),
        ops: ops.clone(),
        authentication: Arc::new(authentication),
        body_timeout,
    };
    // gRPC methods are routed by path; everything else is the Kinesis HTTP protocol.
    let kinesis_http = move |request| kinesis::handle(http.clone(), request);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut ports = Vec::new();
    match kinesis_listener {
        None => {
            tracing::info!(address = %listener.local_addr()?, scheme, "serving gRPC and the Kinesis HTTP API");
            ports.push((listener, grpc.fallback(kinesis_http)));
        }
        Some(kinesis_listener) => {
            tracing::info!(address = %listener.local_addr()?, scheme, "serving gRPC");
            tracing::info!(address = %kinesis_listener.local_addr()?, scheme, "serving the Kinesis HTTP API");
            ports.push((listener, grpc));
            ports.push((kinesis_listener, axum::Router::new().fallback(kinesis_http)));
        }
    }
    let mut servers = Vec::new();
    let open = serve::OpenConnections::new(connections);
    for (listener, router) in ports {
        // Small responses must not wait for delayed ACKs (Nagle's algorithm costs 40 ms a call).
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(60)));
        let mut stopped = stopped.clone();
        let tls = tls.clone();
        let open = open.clone();
        servers.push(tokio::spawn(async move {
            serve::serve_connections(incoming, router, tls, open, async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await;
        }));
    }
    let serving = tokio::spawn(async move {
        for server in servers {
            server.await?;
        }
        Ok::<(), tokio::task::JoinError>(())
    });
    let stop_serving = |stop: tokio::sync::watch::Sender<bool>| async move {
        let _ = stop.send(true);
        serving.await
    };

    tokio::pin!(shutdown);
    let store = tokio::select! {
        opened = opening => match opened {
            Ok(store) => store,
            Err(error) => {
                let _ = stop_serving(stop).await;
                return Err(Box::new(error));
            }
        },
        () = &mut shutdown => {
            tracing::info!("shut down while opening the data directory");
            stop_serving(stop).await??;
            return Ok(());
        }
    };
    let _ = opened.set(store.clone());
    ops.serving(store.clone());
    health.set_serving::<KinesisServer<KinesisService>>().await;
    let maintenance = store.spawn_maintenance();
    tracing::info!("ready");

    shutdown.await;
    ops.stopping();
    health
        .set_not_serving::<KinesisServer<KinesisService>>()
        .await;
    if !shutdown_delay.is_zero() {
        tracing::info!(?shutdown_delay, "shutting down: not ready, still serving");
        tokio::time::sleep(shutdown_delay).await;
    }
    // Push sessions would hold the drain open for up to their lifetime: end them cleanly now,
    // as a session's lifetime ends, so clients resubscribe.
    store.end_all_subscriptions();
    tracing::info!("shutting down: finishing in-flight calls");
    let served = stop_serving(stop).await;
    maintenance.abort();
    store.sync_all().await?;
    tracing::info!("shut down cleanly");
    served??;
    Ok(())
}
