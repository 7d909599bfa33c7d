//! SubscribeToShard over HTTP: an `application/vnd.amazon.eventstream` body that starts with
//! the `initial-response` event botocore requires, carries one SubscribeToShardEvent message per
//! event of the session, ends with an exception message if the session fails (a takeover, a
//! deregistered consumer), and ends cleanly when the session's lifetime is over or the shard
//! is closed and finished. The body is pulled by the connection: a slow client holds one event,
//! and a client that goes away drops the session.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use rheo_awswire::eventstream;
use rheo_proto::v1 as pb;
use rheo_streams::{Store, StreamsError, Subscription};
use serde::Serialize;

use super::convert;
use super::model::{EventRest, Record, SubscribeToShardInput};
use super::wire::Format;
use crate::error::WireError;
use crate::handlers::consumers;
use crate::ops::Ops;

const EVENT_STREAM_CONTENT_TYPE: &str = "application/vnd.amazon.eventstream";

/// Opens the session and answers with its event stream; a refused subscription (unknown
/// consumer, ResourceInUse within 5 s, a bad position) is an ordinary error answer.
pub(crate) async fn subscribe(
    store: &Store,
    ops: &Arc<Ops>,
    format: Format,
    body: &[u8],
) -> Result<Response, WireError> {
    let input: SubscribeToShardInput = format.decode(body).map_err(WireError::serialization)?;
    let starting_position = input
        .starting_position
        .map(|position| pb::StartingPosition {
            r#type: convert::iterator_type(&position.kind) as i32,
            sequence_number: position.sequence_number,
            timestamp_ms: position.timestamp.map(|at| at.0),
        });
    let request = pb::SubscribeToShardRequest {
        consumer_arn: input.consumer_arn,
        shard_id: input.shard_id,
        starting_position,
    };
    let started = Instant::now();
    let subscription = consumers::subscribe(store, request).await;
    ops.observe_request("SubscribeToShard", started.elapsed().as_secs_f64());
    let subscription = subscription.map_err(WireError::from_domain)?;

    #[derive(Serialize)]
    struct NoMembers {}
    let initial =
        eventstream::initial_response(format.content_type(), &format.encode(&NoMembers {}))
            .map_err(|error| WireError::from_domain(StreamsError::Internal(error.to_string())))?;
    let session = Session {
        subscription: Some(subscription),
        store: store.clone(),
        ops: ops.clone(),
        format,
    };
    let events = futures_util::stream::unfold(session, Session::next_frame);
    let frames = futures_util::stream::iter([Ok::<Bytes, std::io::Error>(initial)]).chain(events);
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, EVENT_STREAM_CONTENT_TYPE)],
        Body::from_stream(frames),
    )
        .into_response())
}

struct Session {
    /// `None` once the session has ended with an exception message.
    subscription: Option<Subscription>,
    store: Store,
    ops: Arc<Ops>,
    format: Format,
}

impl Session {
    async fn next_frame(mut self) -> Option<(Result<Bytes, std::io::Error>, Session)> {
        let subscription = self.subscription.as_mut()?;
        let frame = match subscription.next_event().await? {
            Ok(event) => {
                crate::service::observe_push_delay(&self.ops, &self.store, &event);
                let records: Vec<Record> = event
                    .records
                    .iter()
                    .cloned()
                    .map(|record| convert::record(crate::convert::record(record)))
                    .collect();
                let rest = EventRest {
                    continuation_sequence_number: event.continuation_sequence_number,
                    millis_behind_latest: event.millis_behind_latest as i64,
                    child_shards: event
                        .child_shards
                        .into_iter()
                        .map(|child| convert::child_shard(crate::convert::child_shard(child)))
                        .collect(),
                };
                eventstream::event(
                    "SubscribeToShardEvent",
                    self.format.content_type(),
                    &self.format.encode_with_records(&records, &rest),
                )
            }
            Err(error) => {
                // The session is over: say why in the stream, then end it.
                self.subscription = None;
                let error = WireError::from_domain(error);
                #[derive(Serialize)]
                struct Message<'a> {
                    message: &'a str,
                }
                eventstream::exception(
                    error.name,
                    self.format.content_type(),
                    &self.format.encode(&Message {
                        message: &error.message,
                    }),
                )
            }
        };
        // An event is capped far below the format's 24 MiB, so encoding fails only on a bug;
        // failing the body then ends the response abruptly, which the client sees.
        Some((frame.map_err(std::io::Error::other), self))
    }
}
