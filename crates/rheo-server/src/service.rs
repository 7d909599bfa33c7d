//! The tonic service: dispatches each RPC to its handler and maps errors through
//! [`crate::error::to_status`], the only place that happens.

use rheo_proto::v1 as pb;
use rheo_proto::v1::kinesis_server::Kinesis;
use std::pin::Pin;

use futures_util::{Stream, StreamExt};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use rheo_streams::{Store, StreamsError, Subscription};
use tonic::{Request, Response, Status};

use crate::error::to_status;
use crate::handlers::{consumers, records, shards, streams, tags};
use crate::ops::Ops;
use crate::push::{PushEvent, PushStream};

/// The Kinesis gRPC service over a [`Store`] that may still be opening: until it is, every
/// call fails with UNAVAILABLE (ServiceUnavailableException).
#[derive(Debug, Clone)]
pub struct KinesisService {
    store: Arc<OnceLock<Store>>,
    ops: Arc<Ops>,
}

impl KinesisService {
    /// A service answering from `store` once it is set, recording latencies into `ops`.
    pub fn new(store: Arc<OnceLock<Store>>, ops: Arc<Ops>) -> Self {
        KinesisService { store, ops }
    }

    fn store(&self) -> Result<&Store, Status> {
        self.store.get().ok_or_else(|| to_status(not_open()))
    }

    /// Runs one call and records its latency.
    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = rheo_streams::Result<T>>,
    ) -> Reply<T> {
        let started = Instant::now();
        let result = reply(call.await);
        self.ops
            .observe_request(operation, started.elapsed().as_secs_f64());
        result
    }
}

pub(crate) fn not_open() -> StreamsError {
    StreamsError::Unavailable("the server is opening its data directory; retry shortly".into())
}

type Reply<T> = Result<Response<T>, Status>;

/// The event stream of one SubscribeToShard call: pulled by tonic as the connection takes
/// events, so a slow client holds one event, not a queue. Dropping it (the client went away)
/// ends the session.
pub(crate) type EventStream =
    Pin<Box<dyn Stream<Item = Result<pb::SubscribeToShardEvent, Status>> + Send + 'static>>;

/// Records how long the newest record of a pushed event waited since it arrived.
pub(crate) fn observe_push_delay(ops: &Ops, store: &Store, event: &rheo_streams::SubscribeEvent) {
    if let Some(newest) = event.records.iter().map(|record| record.arrival_ms).max() {
        let delay_ms = (store.clock().now_ms() - newest).max(0);
        ops.observe_push_delay(delay_ms as f64 / 1000.0);
    }
}

impl KinesisService {
    /// SubscribeToShard: the session's events, pulled as the connection takes them.
    pub(crate) async fn push_events(
        &self,
        request: Request<pb::SubscribeToShardRequest>,
    ) -> Reply<PushStream> {
        let store = self.store()?.clone();
        let started = Instant::now();
        let subscription = consumers::subscribe(&store, request.into_inner()).await;
        self.ops
            .observe_request("SubscribeToShard", started.elapsed().as_secs_f64());
        let subscription = subscription.map_err(to_status)?;
        let ops = self.ops.clone();
        let events =
            futures_util::stream::unfold(subscription, move |mut subscription: Subscription| {
                let ops = ops.clone();
                let store = store.clone();
                async move {
                    let event = subscription.next_event().await?;
                    if let Ok(event) = &event {
                        observe_push_delay(&ops, &store, event);
                    }
                    Some((event.map(PushEvent::new).map_err(to_status), subscription))
                }
            });
        Ok(Response::new(Box::pin(events)))
    }
}

fn reply<T>(result: rheo_streams::Result<T>) -> Reply<T> {
    result.map(Response::new).map_err(to_status)
}

#[tonic::async_trait]
impl Kinesis for KinesisService {
    async fn create_stream(
        &self,
        request: Request<pb::CreateStreamRequest>,
    ) -> Reply<pb::CreateStreamResponse> {
        let store = self.store()?;
        self.timed(
            "CreateStream",
            streams::create_stream(store, request.into_inner()),
        )
        .await
    }

    async fn delete_stream(
        &self,
        request: Request<pb::DeleteStreamRequest>,
    ) -> Reply<pb::DeleteStreamResponse> {
        let store = self.store()?;
        self.timed(
            "DeleteStream",
            streams::delete_stream(store, request.into_inner()),
        )
        .await
    }

    async fn list_streams(
        &self,
        request: Request<pb::ListStreamsRequest>,
    ) -> Reply<pb::ListStreamsResponse> {
        let store = self.store()?;
        self.timed("ListStreams", async {
            streams::list_streams(store, request.into_inner())
        })
        .await
    }

    async fn describe_stream_summary(
        &self,
        request: Request<pb::DescribeStreamSummaryRequest>,
    ) -> Reply<pb::DescribeStreamSummaryResponse> {
        let store = self.store()?;
        self.timed("DescribeStreamSummary", async {
            streams::describe_stream_summary(store, request.into_inner())
        })
        .await
    }

    async fn describe_stream(
        &self,
        request: Request<pb::DescribeStreamRequest>,
    ) -> Reply<pb::DescribeStreamResponse> {
        let store = self.store()?;
        self.timed("DescribeStream", async {
            streams::describe_stream(store, request.into_inner())
        })
        .await
    }

    async fn list_shards(
        &self,
        request: Request<pb::ListShardsRequest>,
    ) -> Reply<pb::ListShardsResponse> {
        let store = self.store()?;
        self.timed("ListShards", async {
            shards::list_shards(store, request.into_inner())
        })
        .await
    }

    async fn increase_stream_retention_period(
        &self,
        request: Request<pb::IncreaseStreamRetentionPeriodRequest>,
    ) -> Reply<pb::IncreaseStreamRetentionPeriodResponse> {
        let store = self.store()?;
        self.timed(
            "IncreaseStreamRetentionPeriod",
            streams::increase_retention(store, request.into_inner()),
        )
        .await
    }

    async fn decrease_stream_retention_period(
        &self,
        request: Request<pb::DecreaseStreamRetentionPeriodRequest>,
    ) -> Reply<pb::DecreaseStreamRetentionPeriodResponse> {
        let store = self.store()?;
        self.timed(
            "DecreaseStreamRetentionPeriod",
            streams::decrease_retention(store, request.into_inner()),
        )
        .await
    }

    async fn add_tags_to_stream(
        &self,
        request: Request<pb::AddTagsToStreamRequest>,
    ) -> Reply<pb::AddTagsToStreamResponse> {
        let store = self.store()?;
        self.timed(
            "AddTagsToStream",
            tags::add_tags(store, request.into_inner()),
        )
        .await
    }

    async fn remove_tags_from_stream(
        &self,
        request: Request<pb::RemoveTagsFromStreamRequest>,
    ) -> Reply<pb::RemoveTagsFromStreamResponse> {
        let store = self.store()?;
        self.timed(
            "RemoveTagsFromStream",
            tags::remove_tags(store, request.into_inner()),
        )
        .await
    }

    async fn list_tags_for_stream(
        &self,
        request: Request<pb::ListTagsForStreamRequest>,
    ) -> Reply<pb::ListTagsForStreamResponse> {
        let store = self.store()?;
        self.timed("ListTagsForStream", async {
            tags::list_tags(store, request.into_inner())
        })
        .await
    }

    async fn describe_limits(
        &self,
        _request: Request<pb::DescribeLimitsRequest>,
    ) -> Reply<pb::DescribeLimitsResponse> {
        Ok(Response::new(streams::describe_limits(self.store()?)))
    }

    async fn put_record(
        &self,
        request: Request<pb::PutRecordRequest>,
    ) -> Reply<pb::PutRecordResponse> {
        let store = self.store()?;
        self.timed(
            "PutRecord",
            records::put_record(store, request.into_inner()),
        )
        .await
    }

    async fn put_records(
        &self,
        request: Request<pb::PutRecordsRequest>,
    ) -> Reply<pb::PutRecordsResponse> {
        let store = self.store()?;
        self.timed(
            "PutRecords",
            records::put_records(store, request.into_inner()),
        )
        .await
    }

    async fn get_shard_iterator(
        &self,
        request: Request<pb::GetShardIteratorRequest>,
    ) -> Reply<pb::GetShardIteratorResponse> {
        let store = self.store()?;
        self.timed(
            "GetShardIterator",
            records::get_shard_iterator(store, request.into_inner()),
        )
        .await
    }

    async fn get_records(
        &self,
        request: Request<pb::GetRecordsRequest>,
    ) -> Reply<pb::GetRecordsResponse> {
        let store = self.store()?;
        self.timed(
            "GetRecords",
            records::get_records(store, request.into_inner()),
        )
        .await
    }

    async fn register_stream_consumer(
        &self,
        request: Request<pb::RegisterStreamConsumerRequest>,
    ) -> Reply<pb::RegisterStreamConsumerResponse> {
        let store = self.store()?;
        self.timed(
            "RegisterStreamConsumer",
            consumers::register(store, request.into_inner()),
        )
        .await
    }

    async fn deregister_stream_consumer(
        &self,
        request: Request<pb::DeregisterStreamConsumerRequest>,
    ) -> Reply<pb::DeregisterStreamConsumerResponse> {
        let store = self.store()?;
        self.timed(
            "DeregisterStreamConsumer",
            consumers::deregister(store, request.into_inner()),
        )
        .await
    }

    async fn describe_stream_consumer(
        &self,
        request: Request<pb::DescribeStreamConsumerRequest>,
    ) -> Reply<pb::DescribeStreamConsumerResponse> {
        let store = self.store()?;
        self.timed("DescribeStreamConsumer", async {
            consumers::describe(store, request.into_inner())
        })
        .await
    }

    async fn list_stream_consumers(
        &self,
        request: Request<pb::ListStreamConsumersRequest>,
    ) -> Reply<pb::ListStreamConsumersResponse> {
        let store = self.store()?;
        self.timed("ListStreamConsumers", async {
            consumers::list(store, request.into_inner())
        })
        .await
    }

    type SubscribeToShardStream = EventStream;

    /// Served by [`crate::push::route`], which the router prefers; this is the same session
    /// through the generated codec, for a service mounted without that route.
    async fn subscribe_to_shard(
        &self,
        request: Request<pb::SubscribeToShardRequest>,
    ) -> Reply<EventStream> {
        let events = self.push_events(request).await?.into_inner();
        Ok(Response::new(Box::pin(
            events.map(|event| event.map(PushEvent::into_message)),
        )))
    }

    async fn split_shard(
        &self,
        request: Request<pb::SplitShardRequest>,
    ) -> Reply<pb::SplitShardResponse> {
        let store = self.store()?;
        self.timed(
            "SplitShard",
            shards::split_shard(store, request.into_inner()),
        )
        .await
    }

    async fn merge_shards(
        &self,
        request: Request<pb::MergeShardsRequest>,
    ) -> Reply<pb::MergeShardsResponse> {
        let store = self.store()?;
        self.timed(
            "MergeShards",
            shards::merge_shards(store, request.into_inner()),
        )
        .await
    }

    async fn update_shard_count(
        &self,
        request: Request<pb::UpdateShardCountRequest>,
    ) -> Reply<pb::UpdateShardCountResponse> {
        let store = self.store()?;
        self.timed(
            "UpdateShardCount",
            shards::update_shard_count(store, request.into_inner()),
        )
        .await
    }

    async fn update_stream_mode(
        &self,
        request: Request<pb::UpdateStreamModeRequest>,
    ) -> Reply<pb::UpdateStreamModeResponse> {
        let store = self.store()?;
        self.timed(
            "UpdateStreamMode",
            shards::update_stream_mode(store, request.into_inner()),
        )
        .await
    }

    async fn start_stream_encryption(
        &self,
        request: Request<pb::StartStreamEncryptionRequest>,
    ) -> Reply<pb::StartStreamEncryptionResponse> {
        let store = self.store()?;
        self.timed(
            "StartStreamEncryption",
            streams::start_encryption(store, request.into_inner()),
        )
        .await
    }

    async fn stop_stream_encryption(
        &self,
        request: Request<pb::StopStreamEncryptionRequest>,
    ) -> Reply<pb::StopStreamEncryptionResponse> {
        let store = self.store()?;
        self.timed(
            "StopStreamEncryption",
            streams::stop_encryption(store, request.into_inner()),
        )
        .await
    }
}
