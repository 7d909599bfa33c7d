//! ListShards.

use rheo_proto::v1 as pb;
use rheo_streams::{Result, ShardFilter, Store, StreamsError};

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
            match filter.r#type() {
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
    )?;
    Ok(pb::ListShardsResponse {
        shards: shards.into_iter().map(convert::shard).collect(),
        next_token: next_token.unwrap_or_default(),
    })
}
