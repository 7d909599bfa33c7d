//! Rheo's gRPC server: thin tonic adapters over [`rheo_streams::Store`].
//!
//! [`run`] serves on a listener until `shutdown` resolves: stop accepting, end push
//! subscriptions cleanly, let in-flight calls finish, then sync every shard log. Tests start it on `127.0.0.1:0`; the `rheo` binary adds
//! flags, logging and signals around it.

mod admin;
mod convert;
mod error;
mod handlers;
mod service;

use std::future::Future;
use std::time::Duration;

use rheo_proto::v1::admin_server::AdminServer;
use rheo_proto::v1::kinesis_server::KinesisServer;
use rheo_storage::OffsetClock;
use rheo_streams::Store;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

pub use admin::AdminService;
pub use error::{ERROR_DOMAIN, kinesis_name, to_status};
pub use service::KinesisService;

/// Largest gRPC message accepted or sent: a 10 MiB PutRecords or GetRecords plus framing.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Serves `store` on `listener` until `shutdown` resolves, then syncs the store.
/// `testbed_clock` is the store's clock when the server runs as a retention testbed; the Admin
/// service then lets clients move it forward.
pub async fn run(
    listener: TcpListener,
    store: Store,
    testbed_clock: Option<OffsetClock>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<KinesisServer<KinesisService>>().await;
    // Reflection in both versions: grpcurl and older tools still ask v1alpha.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rheo_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder().build_v1()?;
    let reflection_alpha = reflection_builder().build_v1alpha()?;
    let kinesis = KinesisServer::new(KinesisService::new(store.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let admin = AdminServer::new(AdminService::new(testbed_clock, store.clone()));
    let maintenance = store.spawn_maintenance();
    tracing::info!(address = %listener.local_addr()?, "serving gRPC");
    // Small responses must not wait for delayed ACKs (Nagle's algorithm costs 40 ms a call).
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));
    let served = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(kinesis)
        .add_service(admin)
        .serve_with_incoming_shutdown(incoming, async {
            shutdown.await;
            // Push sessions would hold the drain open for up to their lifetime: end them
            // cleanly now, as a session's lifetime ends, so clients resubscribe.
            store.end_all_subscriptions();
            health
                .set_not_serving::<KinesisServer<KinesisService>>()
                .await;
            tracing::info!("shutting down: finishing in-flight calls");
        })
        .await;
    maintenance.abort();
    store.sync_all().await?;
    tracing::info!("shut down cleanly");
    served?;
    Ok(())
}
