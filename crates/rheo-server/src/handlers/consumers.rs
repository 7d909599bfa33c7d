//! RegisterStreamConsumer, DeregisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers, SubscribeToShard.

use rheo_proto::v1 as pb;
use rheo_streams::{ConsumerRef, Result, Store, StreamsError, Subscription};

use crate::convert;
use crate::handlers::records::iterator_start;

pub(crate) async fn register(
    store: &Store,
    request: pb::RegisterStreamConsumerRequest,
) -> Result<pb::RegisterStreamConsumerResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    let consumer = store
        .register_consumer(&name, &request.consumer_name)
        .await?;
    Ok(pb::RegisterStreamConsumerResponse {
        consumer: Some(convert::consumer(consumer)),
    })
}

pub(crate) async fn deregister(
    store: &Store,
    request: pb::DeregisterStreamConsumerRequest,
) -> Result<pb::DeregisterStreamConsumerResponse> {
    store
        .deregister_consumer(&ConsumerRef {
            stream_name: request.stream_name,
            stream_arn: request.stream_arn,
            consumer_name: request.consumer_name,
            consumer_arn: request.consumer_arn,
        })
        .await?;
    Ok(pb::DeregisterStreamConsumerResponse {})
}

pub(crate) fn describe(
    store: &Store,
    request: pb::DescribeStreamConsumerRequest,
) -> Result<pb::DescribeStreamConsumerResponse> {
    let consumer = store.describe_consumer(&ConsumerRef {
        stream_name: request.stream_name,
        stream_arn: request.stream_arn,
        consumer_name: request.consumer_name,
        consumer_arn: request.consumer_arn,
    })?;
    Ok(pb::DescribeStreamConsumerResponse {
        consumer_description: Some(convert::consumer_description(consumer)),
    })
}

pub(crate) fn list(
    store: &Store,
    request: pb::ListStreamConsumersRequest,
) -> Result<pb::ListStreamConsumersResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    let page = store.list_consumers(
        &name,
        &request.next_token,
        request.max_results.map(i64::from),
        request.stream_creation_timestamp_ms,
    )?;
    Ok(pb::ListStreamConsumersResponse {
        consumers: page.consumers.into_iter().map(convert::consumer).collect(),
        next_token: page.next_token,
    })
}

pub(crate) async fn subscribe(
    store: &Store,
    request: pb::SubscribeToShardRequest,
) -> Result<Subscription> {
    let position = request
        .starting_position
        .ok_or_else(|| StreamsError::InvalidArgument("StartingPosition is required".into()))?;
    let start = iterator_start(
        super::known(
            position.r#type,
            "startingPosition.type",
            super::records::ITERATOR_TYPES,
        )?,
        position.sequence_number,
        position.timestamp_ms,
    )?;
    store
        .subscribe_to_shard(&request.consumer_arn, &request.shard_id, start)
        .await
}
