//! The Admin service: the testbed clock.

use std::sync::{Arc, OnceLock};

use rheo_proto::v1 as pb;
use rheo_proto::v1::admin_server::Admin;
use rheo_storage::{Clock, OffsetClock};
use rheo_streams::{Store, StreamsError};
use tonic::{Request, Response, Status};

use crate::error::to_status;

/// Admin calls. `clock` is set only when the server runs on the testbed clock.
#[derive(Debug, Clone)]
pub struct AdminService {
    clock: Option<OffsetClock>,
    store: Arc<OnceLock<Store>>,
}

impl AdminService {
    /// An admin service over `store` (once it is open); pass the testbed clock if the store
    /// runs on one.
    pub fn new(clock: Option<OffsetClock>, store: Arc<OnceLock<Store>>) -> Self {
        AdminService { clock, store }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn advance_clock(
        &self,
        request: Request<pb::AdvanceClockRequest>,
    ) -> Result<Response<pb::AdvanceClockResponse>, Status> {
        let Some(clock) = &self.clock else {
            return Err(to_status(StreamsError::ResourceInUse(
                "the clock can only be moved when the server runs with the testbed clock (--testbed-clock)".into(),
            )));
        };
        let advance_ms = request.into_inner().advance_ms;
        if advance_ms <= 0 {
            return Err(to_status(StreamsError::InvalidArgument(format!(
                "advance_ms must be positive, got {advance_ms}"
            ))));
        }
        clock.advance_ms(advance_ms);
        // Subscriptions waiting for a heartbeat or their end re-check against the new time.
        if let Some(store) = self.store.get() {
            store.clock_moved();
        }
        tracing::info!(
            advance_ms,
            offset_ms = clock.offset_ms(),
            "testbed clock advanced"
        );
        Ok(Response::new(pb::AdvanceClockResponse {
            now_ms: clock.now_ms(),
            offset_ms: clock.offset_ms(),
        }))
    }
}
