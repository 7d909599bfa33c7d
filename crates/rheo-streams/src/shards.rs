//! DescribeStream and ListShards: shard descriptions with lineage, and every ShardFilter.

use crate::control::page_size;
use crate::error::{Result, StreamsError};
use crate::model::{ShardFilter, ShardInfo, StreamInfo};
use crate::seqnum::SequenceNumber;
use crate::store::{Shard, Store, lock, shard_id};

impl Store {
    pub(crate) fn shard_info(shard: &Shard) -> ShardInfo {
        let number = |engine_sequence| {
            SequenceNumber {
                shard_index: shard.index,
                engine_sequence,
            }
            .to_string()
        };
        ShardInfo {
            shard_id: shard.id.clone(),
            parent_shard_id: shard.parent.map(shard_id),
            adjacent_parent_shard_id: shard.adjacent_parent.map(shard_id),
            starting_hash_key: shard.starting_hash_key,
            ending_hash_key: shard.ending_hash_key,
            starting_sequence_number: number(0),
            // The last sequence number the shard can hold: the one before its end.
            ending_sequence_number: shard
                .closed()
                .map(|closed| number(closed.end.saturating_sub(1))),
        }
    }

    /// DescribeStream: the description and a page of shards (open and closed, not expired)
    /// after `exclusive_start_shard_id`.
    pub fn describe_stream(
        &self,
        name: &str,
        limit: Option<i64>,
        exclusive_start_shard_id: &str,
    ) -> Result<(StreamInfo, Vec<ShardInfo>, bool)> {
        let limit = page_size(limit, "limit", 10_000, 100, 100)?;
        let stream = self.stream(name)?;
        let mut shards: Vec<ShardInfo> = stream
            .topology()
            .shards
            .iter()
            .filter(|shard| {
                exclusive_start_shard_id.is_empty() || shard.id.as_str() > exclusive_start_shard_id
            })
            .take(limit + 1)
            .map(|shard| Self::shard_info(shard))
            .collect();
        let has_more = shards.len() > limit;
        shards.truncate(limit);
        Ok((self.info(&stream), shards, has_more))
    }

    /// ListShards, with Kinesis's filters: AT_LATEST (open shards), AT_TRIM_HORIZON (the oldest
    /// shards still kept: those without a kept parent), FROM_TRIM_HORIZON (every kept shard,
    /// the default), AT_TIMESTAMP (shards open at the time), FROM_TIMESTAMP (those open at the
    /// time and every later one), AFTER_SHARD_ID (ids after the given one). Expired shards are
    /// never listed. A time before the stream's creation means its creation.
    pub fn list_shards(
        &self,
        name: &str,
        next_token: &str,
        exclusive_start_shard_id: &str,
        max_results: Option<i64>,
        filter: ShardFilter,
        stream_created_ms: Option<i64>,
    ) -> Result<(Vec<ShardInfo>, Option<String>)> {
        let max = page_size(max_results, "maxResults", 10_000, 1000, 10000)?;
        let (name, after, filter) = if next_token.is_empty() {
            let after = match &filter {
                ShardFilter::AfterShardId(id) if id.is_empty() => {
                    return Err(StreamsError::InvalidArgument(
                        "ShardFilter AFTER_SHARD_ID needs a ShardId".into(),
                    ));
                }
                ShardFilter::AfterShardId(id) => {
                    id.clone().max(exclusive_start_shard_id.to_string())
                }
                _ => exclusive_start_shard_id.to_string(),
            };
            (name.to_string(), after, filter)
        } else {
            if !name.is_empty() {
                return Err(StreamsError::InvalidArgument(
                    "NextToken and StreamName cannot be provided together.".into(),
                ));
            }
            let (scope, after, _) = self.inner.key.decode_next_token(next_token)?;
            self.open_next_token(next_token, &scope)?;
            // A token continues the listing it came from; its filter is in the scope.
            let (name, filter) = decode_list_scope(&scope)?;
            (name, after, filter)
        };
        let stream = self.stream(&name)?;
        self.check_created(&stream, stream_created_ms)?;
        let created_ms = lock(&stream.meta).created_ms;
        let topology = stream.topology();
        let closed_ms = |shard: &Shard| shard.closed().map(|closed| closed.closed_ms);
        let keep = |shard: &Shard| -> bool {
            match &filter {
                ShardFilter::AtLatest => shard.closed().is_none(),
                ShardFilter::AtTrimHorizon => [shard.parent, shard.adjacent_parent]
                    .into_iter()
                    .flatten()
                    .all(|parent| topology.by_index(parent).is_none()),
                ShardFilter::FromTrimHorizon | ShardFilter::AfterShardId(_) => true,
                ShardFilter::AtTimestamp(at) => {
                    let at = (*at).max(created_ms);
                    shard.created_ms <= at && closed_ms(shard).is_none_or(|closed| closed > at)
                }
                ShardFilter::FromTimestamp(at) => {
                    let at = (*at).max(created_ms);
                    closed_ms(shard).is_none_or(|closed| closed > at)
                }
            }
        };
        let mut shards: Vec<ShardInfo> = topology
            .shards
            .iter()
            .filter(|shard| after.is_empty() || shard.id > after)
            .filter(|shard| keep(shard))
            .take(max + 1)
            .map(|shard| Self::shard_info(shard))
            .collect();
        let more = shards.len() > max;
        shards.truncate(max);
        let next = more.then(|| {
            let last = &shards.last().expect("a full page").shard_id;
            self.inner.key.encode_next_token(
                &encode_list_scope(&name, &filter),
                last,
                self.now_ms(),
            )
        });
        Ok((shards, next))
    }
}

/// The scope of a ListShards token: the stream and the filter, so a next page filters alike.
fn encode_list_scope(name: &str, filter: &ShardFilter) -> String {
    let filter = match filter {
        ShardFilter::AfterShardId(_) | ShardFilter::FromTrimHorizon => "from-trim-horizon".into(),
        ShardFilter::AtTrimHorizon => "at-trim-horizon".into(),
        ShardFilter::AtLatest => "at-latest".into(),
        ShardFilter::AtTimestamp(ms) => format!("at-timestamp={ms}"),
        ShardFilter::FromTimestamp(ms) => format!("from-timestamp={ms}"),
    };
    format!("{name}|{filter}")
}

fn decode_list_scope(scope: &str) -> Result<(String, ShardFilter)> {
    let bad = || StreamsError::InvalidArgument("Invalid NextToken.".into());
    let (name, filter) = scope.split_once('|').ok_or_else(bad)?;
    let filter = match filter.split_once('=') {
        None if filter == "from-trim-horizon" => ShardFilter::FromTrimHorizon,
        None if filter == "at-trim-horizon" => ShardFilter::AtTrimHorizon,
        None if filter == "at-latest" => ShardFilter::AtLatest,
        Some(("at-timestamp", ms)) => ShardFilter::AtTimestamp(ms.parse().map_err(|_| bad())?),
        Some(("from-timestamp", ms)) => ShardFilter::FromTimestamp(ms.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok((name.to_string(), filter))
}
