//! The gRPC SubscribeToShard route, with a codec that encodes each event's records once.
//!
//! Caught-up sessions of one shard push the same records (see [`PushedRecords`]). The codec
//! generated for the service would turn them into protobuf messages and encode them once per
//! session; this one keeps the records' encoding beside them, so the first session to send
//! them encodes them and the others copy those bytes. A protobuf message may be encoded as the
//! concatenation of encodings of parts of it (repeated fields append, the other fields are set
//! once), so an event is written as its records' shared bytes followed by the encoding of the
//! rest: continuation, MillisBehindLatest and ChildShards, which differ per session.
//! [`route`] mounts it at the method's path, where the router prefers it to the generated
//! service's catch-all route; everything else about the call (decoding the request, message
//! size limits, statuses in trailers) is tonic's.

use std::future::Future;
use std::pin::Pin;

use bytes::{BufMut, Bytes};
use futures_util::Stream;
use prost::Message;
use rheo_proto::v1 as pb;
use rheo_streams::{PushedRecords, RecordOut, SubscribeEvent};
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::server::ServerStreamingService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstDecoder;

use crate::convert;
use crate::service::KinesisService;

/// One event on its way to the client: the records, shared with the other sessions that push
/// them, and the rest of the message.
#[derive(Debug)]
pub(crate) struct PushEvent {
    records: PushedRecords,
    rest: pb::SubscribeToShardEvent,
}

/// The events of one session, as the route's codec sends them.
pub(crate) type PushStream =
    Pin<Box<dyn Stream<Item = Result<PushEvent, Status>> + Send + 'static>>;

impl PushEvent {
    pub(crate) fn new(event: SubscribeEvent) -> Self {
        PushEvent {
            records: event.records,
            rest: pb::SubscribeToShardEvent {
                records: Vec::new(),
                continuation_sequence_number: event.continuation_sequence_number,
                millis_behind_latest: event.millis_behind_latest as i64,
                child_shards: convert::child_shards(event.child_shards),
            },
        }
    }

    /// The whole message, for the generated service's codec.
    pub(crate) fn into_message(self) -> pb::SubscribeToShardEvent {
        pb::SubscribeToShardEvent {
            records: self.records.iter().cloned().map(convert::record).collect(),
            ..self.rest
        }
    }

    /// Writes the event's protobuf encoding: the records' (made once per [`PushedRecords`])
    /// and then the rest's.
    fn encode(&self, buf: &mut impl BufMut) {
        buf.put_slice(self.records.encoded(encode_records));
        self.rest
            .encode(buf)
            .expect("a growable buffer always has room");
    }
}

/// The `records` field of an event holding `records`: an event with nothing else set.
fn encode_records(records: &[RecordOut]) -> Bytes {
    pb::SubscribeToShardEvent {
        records: records.iter().cloned().map(convert::record).collect(),
        ..pb::SubscribeToShardEvent::default()
    }
    .encode_to_vec()
    .into()
}

/// Decodes the request as the generated codec does; encodes [`PushEvent`]s.
#[derive(Debug, Clone, Copy, Default)]
struct EventCodec;

impl Codec for EventCodec {
    type Encode = PushEvent;
    type Decode = pb::SubscribeToShardRequest;
    type Encoder = EventEncoder;
    type Decoder = ProstDecoder<pb::SubscribeToShardRequest>;

    fn encoder(&mut self) -> EventEncoder {
        EventEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::default()
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct EventEncoder;

impl Encoder for EventEncoder {
    type Item = PushEvent;
    type Error = Status;

    fn encode(&mut self, event: PushEvent, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        event.encode(buf);
        Ok(())
    }
}

struct SubscribeMethod(KinesisService);

impl ServerStreamingService<pb::SubscribeToShardRequest> for SubscribeMethod {
    type Response = PushEvent;
    type ResponseStream = PushStream;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<PushStream>, Status>> + Send + 'static>>;

    fn call(&mut self, request: Request<pb::SubscribeToShardRequest>) -> Self::Future {
        let service = self.0.clone();
        Box::pin(async move { service.push_events(request).await })
    }
}

/// The method's path.
pub(crate) const PATH: &str = "/rheo.v1.Kinesis/SubscribeToShard";

/// The route serving [`PATH`] (gRPC calls are POSTs), with the same message size limits as
/// the rest of the service.
pub(crate) fn route(
    service: KinesisService,
    max_message_bytes: usize,
) -> axum::routing::MethodRouter {
    axum::routing::post(move |request: axum::extract::Request| async move {
        let mut grpc = tonic::server::Grpc::new(EventCodec)
            .apply_max_message_size_config(Some(max_message_bytes), Some(max_message_bytes));
        grpc.server_streaming(SubscribeMethod(service), request)
            .await
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rheo_streams::ShardInfo;

    fn record(sequence: &str, data: &'static [u8], key: &str) -> RecordOut {
        RecordOut {
            sequence_number: sequence.into(),
            arrival_ms: 1_700_000_000_123,
            data: Bytes::from_static(data),
            partition_key: key.into(),
            encrypted: key == "k2",
        }
    }

    fn encoded(event: &PushEvent) -> pb::SubscribeToShardEvent {
        let mut bytes = Vec::new();
        event.encode(&mut bytes);
        pb::SubscribeToShardEvent::decode(bytes.as_slice()).expect("decodes")
    }

    #[test]
    fn shared_records_and_per_session_fields_decode_as_one_event() {
        let records = PushedRecords::new(vec![
            record(
                "49000000000000000000000000000000000000000000000001",
                b"a",
                "k1",
            ),
            record(
                "49000000000000000000000000000000000000000000000002",
                b"",
                "k2",
            ),
        ]);
        // Two sessions at the same position, one caught up and one behind.
        let first = PushEvent::new(SubscribeEvent {
            records: records.clone(),
            continuation_sequence_number: Some("4900...02".into()),
            millis_behind_latest: 0,
            child_shards: Vec::new(),
        });
        let second = PushEvent::new(SubscribeEvent {
            records: records.clone(),
            continuation_sequence_number: Some("4900...02".into()),
            millis_behind_latest: 1500,
            child_shards: Vec::new(),
        });
        let first_decoded = encoded(&first);
        assert_eq!(first_decoded, first.into_message());
        assert_eq!(first_decoded.records.len(), 2);
        assert_eq!(first_decoded.records[1].partition_key, "k2");
        assert_eq!(first_decoded.records[0].encryption_type, "NONE");
        assert_eq!(first_decoded.records[1].encryption_type, "KMS");
        let second_decoded = encoded(&second);
        assert_eq!(second_decoded.millis_behind_latest, 1500);
        assert_eq!(second_decoded.records, first_decoded.records);
        assert_eq!(second_decoded, second.into_message());
    }

    #[test]
    fn heartbeat_and_final_events_encode_without_records() {
        let heartbeat = PushEvent::new(SubscribeEvent {
            records: PushedRecords::default(),
            continuation_sequence_number: Some("1".into()),
            millis_behind_latest: 0,
            child_shards: Vec::new(),
        });
        assert_eq!(encoded(&heartbeat), heartbeat.into_message());
        let last = PushEvent::new(SubscribeEvent {
            records: PushedRecords::new(vec![record("7", b"x", "k")]),
            continuation_sequence_number: None,
            millis_behind_latest: 0,
            child_shards: vec![ShardInfo {
                shard_id: "shardId-000000000001".into(),
                parent_shard_id: Some("shardId-000000000000".into()),
                adjacent_parent_shard_id: None,
                starting_hash_key: 0,
                ending_hash_key: u128::MAX,
                starting_sequence_number: "0".into(),
                ending_sequence_number: None,
            }],
        });
        let decoded = encoded(&last);
        assert_eq!(decoded.continuation_sequence_number, None);
        assert_eq!(decoded.child_shards.len(), 1);
        assert_eq!(decoded, last.into_message());
    }
}
