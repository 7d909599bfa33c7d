//! ListShards and the reshard calls: SplitShard, MergeShards, UpdateShardCount,
//! UpdateStreamMode.

use rheo_proto::v1 as pb;
use rheo_streams::{Result, ShardFilter, Store, StreamMode, StreamsError};

use crate::convert;

pub(crate) fn list_shards(
    store: &Store,
    request: pb::ListShardsRequest,
) -> Result<pb::ListShardsResponse> {
    let name = if request.next_token.is_empty() {
        store.resolve_name(&request.stream_name, &request.stream_arn)?
    } else {
        request.stream_name.clone()
    };
    let filter = match request.shard_filter {
        None => ShardFilter::FromTrimHorizon,
        Some(filter) => {
            let timestamp = || {
                filter.timestamp_ms.ok_or_else(|| {
                    StreamsError::InvalidArgument(
                        "ShardFilter AT_TIMESTAMP and FROM_TIMESTAMP need a Timestamp".into(),
                    )
                })
            };
            let kind = super::known(
                filter.r#type,
                "shardFilter.type",
                "AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP",
            )?;
            match kind {
                pb::ShardFilterType::Unspecified | pb::ShardFilterType::FromTrimHorizon => {
                    ShardFilter::FromTrimHorizon
                }
                pb::ShardFilterType::AfterShardId => {
                    ShardFilter::AfterShardId(filter.shard_id.clone())
                }
                pb::ShardFilterType::AtTrimHorizon => ShardFilter::AtTrimHorizon,
                pb::ShardFilterType::AtLatest => ShardFilter::AtLatest,
                pb::ShardFilterType::AtTimestamp => ShardFilter::AtTimestamp(timestamp()?),
                pb::ShardFilterType::FromTimestamp => ShardFilter::FromTimestamp(timestamp()?),
            }
        }
    };
    let (shards, next_token) = store.list_shards(
        &name,
        &request.next_token,
        &request.exclusive_start_shard_id,
        request.max_results.map(i64::from),
        filter,
        request.stream_creation_timestamp_ms,
    )?;
    Ok(pb::ListShardsResponse {
        shards: shards.into_iter().map(convert::shard).collect(),
        next_token: next_token.unwrap_or_default(),
    })
}

pub(crate) async fn split_shard(
    store: &Store,
    request: pb::SplitShardRequest,
) -> Result<pb::SplitShardResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    store
        .split_shard(
            &name,
            &request.shard_to_split,
            &request.new_starting_hash_key,
        )
        .await?;
    Ok(pb::SplitShardResponse {})
}

pub(crate) async fn merge_shards(
    store: &Store,
    request: pb::MergeShardsRequest,
) -> Result<pb::MergeShardsResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    store
        .merge_shards(
            &name,
            &request.shard_to_merge,
            &request.adjacent_shard_to_merge,
        )
        .await?;
    Ok(pb::MergeShardsResponse {})
}

pub(crate) async fn update_shard_count(
    store: &Store,
    request: pb::UpdateShardCountRequest,
) -> Result<pb::UpdateShardCountResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    let (current, target) = store
        .update_shard_count(
            &name,
            i64::from(request.target_shard_count),
            &request.scaling_type,
        )
        .await?;
    Ok(pb::UpdateShardCountResponse {
        stream_arn: store.stream_arn(&name),
        stream_name: name,
        current_shard_count: current as i32,
        target_shard_count: target as i32,
    })
}

pub(crate) async fn update_stream_mode(
    store: &Store,
    request: pb::UpdateStreamModeRequest,
) -> Result<pb::UpdateStreamModeResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    let mode = match super::known(
        request.stream_mode,
        "streamModeDetails.streamMode",
        "PROVISIONED, ON_DEMAND",
    )? {
        pb::StreamMode::Provisioned => StreamMode::Provisioned,
        pb::StreamMode::OnDemand => StreamMode::OnDemand,
        pb::StreamMode::Unspecified => {
            return Err(StreamsError::Validation(
                "1 validation error detected: Value at 'streamModeDetails.streamMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]".into(),
            ));
        }
    };
    store.update_stream_mode(&name, mode).await?;
    Ok(pb::UpdateStreamModeResponse {})
}
