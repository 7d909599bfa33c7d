//! The tonic service: dispatches each RPC to its handler and maps errors through
//! [`crate::error::to_status`], the only place that happens.

use rheo_proto::v1 as pb;
use rheo_proto::v1::kinesis_server::Kinesis;
use std::pin::Pin;

use futures_util::Stream;
use rheo_streams::{Store, Subscription};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::error::to_status;
use crate::handlers::{consumers, records, shards, streams, tags};

/// The Kinesis gRPC service over a [`Store`].
#[derive(Debug, Clone)]
pub struct KinesisService {
    store: Store,
}

impl KinesisService {
    /// A service answering from `store`.
    pub fn new(store: Store) -> Self {
        KinesisService { store }
    }
}

type Reply<T> = Result<Response<T>, Status>;

/// The event stream of one SubscribeToShard call: pulled by tonic as the connection takes
/// events, so a slow client holds one event, not a queue. Dropping it (the client went away)
/// ends the session.
pub(crate) type EventStream =
    Pin<Box<dyn Stream<Item = Result<pb::SubscribeToShardEvent, Status>> + Send + 'static>>;

fn reply<T>(result: rheo_streams::Result<T>) -> Reply<T> {
    result.map(Response::new).map_err(to_status)
}

#[tonic::async_trait]
impl Kinesis for KinesisService {
    async fn create_stream(
        &self,
        request: Request<pb::CreateStreamRequest>,
    ) -> Reply<pb::CreateStreamResponse> {
        reply(streams::create_stream(&self.store, request.into_inner()).await)
    }

    async fn delete_stream(
        &self,
        request: Request<pb::DeleteStreamRequest>,
    ) -> Reply<pb::DeleteStreamResponse> {
        reply(streams::delete_stream(&self.store, request.into_inner()).await)
    }

    async fn list_streams(
        &self,
        request: Request<pb::ListStreamsRequest>,
    ) -> Reply<pb::ListStreamsResponse> {
        reply(streams::list_streams(&self.store, request.into_inner()))
    }

    async fn describe_stream_summary(
        &self,
        request: Request<pb::DescribeStreamSummaryRequest>,
    ) -> Reply<pb::DescribeStreamSummaryResponse> {
        reply(streams::describe_stream_summary(
            &self.store,
            request.into_inner(),
        ))
    }

    async fn describe_stream(
        &self,
        request: Request<pb::DescribeStreamRequest>,
    ) -> Reply<pb::DescribeStreamResponse> {
        reply(streams::describe_stream(&self.store, request.into_inner()))
    }

    async fn list_shards(
        &self,
        request: Request<pb::ListShardsRequest>,
    ) -> Reply<pb::ListShardsResponse> {
        reply(shards::list_shards(&self.store, request.into_inner()))
    }

    async fn increase_stream_retention_period(
        &self,
        request: Request<pb::IncreaseStreamRetentionPeriodRequest>,
    ) -> Reply<pb::IncreaseStreamRetentionPeriodResponse> {
        reply(streams::increase_retention(&self.store, request.into_inner()).await)
    }

    async fn decrease_stream_retention_period(
        &self,
        request: Request<pb::DecreaseStreamRetentionPeriodRequest>,
    ) -> Reply<pb::DecreaseStreamRetentionPeriodResponse> {
        reply(streams::decrease_retention(&self.store, request.into_inner()).await)
    }

    async fn add_tags_to_stream(
        &self,
        request: Request<pb::AddTagsToStreamRequest>,
    ) -> Reply<pb::AddTagsToStreamResponse> {
        reply(tags::add_tags(&self.store, request.into_inner()).await)
    }

    async fn remove_tags_from_stream(
        &self,
        request: Request<pb::RemoveTagsFromStreamRequest>,
    ) -> Reply<pb::RemoveTagsFromStreamResponse> {
        reply(tags::remove_tags(&self.store, request.into_inner()).await)
    }

    async fn list_tags_for_stream(
        &self,
        request: Request<pb::ListTagsForStreamRequest>,
    ) -> Reply<pb::ListTagsForStreamResponse> {
        reply(tags::list_tags(&self.store, request.into_inner()))
    }

    async fn describe_limits(
        &self,
        _request: Request<pb::DescribeLimitsRequest>,
    ) -> Reply<pb::DescribeLimitsResponse> {
        Ok(Response::new(streams::describe_limits(&self.store)))
    }

    async fn put_record(
        &self,
        request: Request<pb::PutRecordRequest>,
    ) -> Reply<pb::PutRecordResponse> {
        reply(records::put_record(&self.store, request.into_inner()).await)
    }

    async fn put_records(
        &self,
        request: Request<pb::PutRecordsRequest>,
    ) -> Reply<pb::PutRecordsResponse> {
        reply(records::put_records(&self.store, request.into_inner()).await)
    }

    async fn get_shard_iterator(
        &self,
        request: Request<pb::GetShardIteratorRequest>,
    ) -> Reply<pb::GetShardIteratorResponse> {
        reply(records::get_shard_iterator(&self.store, request.into_inner()).await)
    }

    async fn get_records(
        &self,
        request: Request<pb::GetRecordsRequest>,
    ) -> Reply<pb::GetRecordsResponse> {
        reply(records::get_records(&self.store, request.into_inner()).await)
    }

    async fn register_stream_consumer(
        &self,
        request: Request<pb::RegisterStreamConsumerRequest>,
    ) -> Reply<pb::RegisterStreamConsumerResponse> {
        reply(consumers::register(&self.store, request.into_inner()).await)
    }

    async fn deregister_stream_consumer(
        &self,
        request: Request<pb::DeregisterStreamConsumerRequest>,
    ) -> Reply<pb::DeregisterStreamConsumerResponse> {
        reply(consumers::deregister(&self.store, request.into_inner()).await)
    }

    async fn describe_stream_consumer(
        &self,
        request: Request<pb::DescribeStreamConsumerRequest>,
    ) -> Reply<pb::DescribeStreamConsumerResponse> {
        reply(consumers::describe(&self.store, request.into_inner()))
    }

    async fn list_stream_consumers(
        &self,
        request: Request<pb::ListStreamConsumersRequest>,
    ) -> Reply<pb::ListStreamConsumersResponse> {
        reply(consumers::list(&self.store, request.into_inner()))
    }

    type SubscribeToShardStream = EventStream;

    async fn subscribe_to_shard(
        &self,
        request: Request<pb::SubscribeToShardRequest>,
    ) -> Reply<EventStream> {
        let subscription = consumers::subscribe(&self.store, request.into_inner())
            .await
            .map_err(to_status)?;
        let events = futures_util::stream::unfold(
            subscription,
            |mut subscription: Subscription| async move {
                let event = subscription.next_event().await?;
                Some((
                    event.map(convert::subscribe_event).map_err(to_status),
                    subscription,
                ))
            },
        );
        Ok(Response::new(Box::pin(events)))
    }

    async fn split_shard(
        &self,
        request: Request<pb::SplitShardRequest>,
    ) -> Reply<pb::SplitShardResponse> {
        reply(shards::split_shard(&self.store, request.into_inner()).await)
    }

    async fn merge_shards(
        &self,
        request: Request<pb::MergeShardsRequest>,
    ) -> Reply<pb::MergeShardsResponse> {
        reply(shards::merge_shards(&self.store, request.into_inner()).await)
    }

    async fn update_shard_count(
        &self,
        request: Request<pb::UpdateShardCountRequest>,
    ) -> Reply<pb::UpdateShardCountResponse> {
        reply(shards::update_shard_count(&self.store, request.into_inner()).await)
    }

    async fn update_stream_mode(
        &self,
        request: Request<pb::UpdateStreamModeRequest>,
    ) -> Reply<pb::UpdateStreamModeResponse> {
        reply(shards::update_stream_mode(&self.store, request.into_inner()).await)
    }
}
