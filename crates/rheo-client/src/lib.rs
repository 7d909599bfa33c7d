//! Helpers over Rheo's generated gRPC client (`rheo_proto::v1::kinesis_client`).
//!
//! [`LineageReader`] reads a whole stream across reshards in the order that keeps every
//! partition key's records in order: a shard is read only after every parent it has (one for
//! a split, two for a merge) has been read to its end. It learns the lineage from ListShards
//! and, while following, from the ChildShards of each parent's last GetRecords, so the caller
//! never tracks shard ids.

use std::collections::BTreeMap;
use std::time::Duration;

use rheo_proto::v1 as pb;
use rheo_proto::v1::kinesis_client::KinesisClient;
use tonic::transport::Channel;

/// Where a [`LineageReader`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record retention keeps, in every shard.
    TrimHorizon,
    /// Only records written after the reader starts.
    Latest,
    /// The first record that arrived at or after this time (ms since the epoch).
    AtTimestamp(i64),
}

/// Records of one shard, as one GetRecords call returned them.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The shard they came from.
    pub shard_id: String,
    /// In sequence order.
    pub records: Vec<pb::Record>,
    /// How far behind the tip of that shard the call was.
    pub millis_behind_latest: i64,
}

#[derive(Debug)]
struct ShardState {
    parents: Vec<String>,
    /// `None` until the shard is started (its parents are done).
    iterator: Option<String>,
    /// Listed when the reader started: it begins at the starting point. Shards found later
    /// (children of a reshard) begin at their first record.
    listed_at_start: bool,
    /// Read to the end of a closed shard.
    finished: bool,
    /// The last read returned nothing and was at the tip.
    caught_up: bool,
}

/// Reads every shard of a stream, parents before children. See the crate documentation.
#[derive(Debug)]
pub struct LineageReader {
    client: KinesisClient<Channel>,
    stream: String,
    start: Start,
    follow: bool,
    shards: BTreeMap<String, ShardState>,
    /// Where the round-robin over ready shards goes next.
    cursor: Option<String>,
    /// Pause between rounds that found nothing, when following.
    idle_pause: Duration,
}

impl LineageReader {
    /// Lists the stream's shards and prepares to read from `start`. With `follow`, [`next`]
    /// waits for new records (and new shards) instead of returning `None` once caught up.
    ///
    /// [`next`]: LineageReader::next
    pub async fn new(
        mut client: KinesisClient<Channel>,
        stream: &str,
        start: Start,
        follow: bool,
    ) -> Result<LineageReader, tonic::Status> {
        let filter = match start {
            Start::TrimHorizon => pb::ShardFilter {
                r#type: pb::ShardFilterType::FromTrimHorizon as i32,
                ..Default::default()
            },
            Start::Latest => pb::ShardFilter {
                r#type: pb::ShardFilterType::AtLatest as i32,
                ..Default::default()
            },
            Start::AtTimestamp(ms) => pb::ShardFilter {
                r#type: pb::ShardFilterType::FromTimestamp as i32,
                timestamp_ms: Some(ms),
                ..Default::default()
            },
        };
        let mut shards = BTreeMap::new();
        let mut next_token = String::new();
        loop {
            let page = client
                .list_shards(pb::ListShardsRequest {
                    stream_name: if next_token.is_empty() {
                        stream.to_string()
                    } else {
                        String::new()
                    },
                    next_token: next_token.clone(),
                    shard_filter: Some(filter.clone()),
                    ..Default::default()
                })
                .await?
                .into_inner();
            for shard in page.shards {
                let parents = shard
                    .parent_shard_id
                    .into_iter()
                    .chain(shard.adjacent_parent_shard_id)
                    .collect();
                shards.insert(
                    shard.shard_id,
                    ShardState {
                        parents,
                        iterator: None,
                        listed_at_start: true,
                        finished: false,
                        caught_up: false,
                    },
                );
            }
            if page.next_token.is_empty() {
                break;
            }
            next_token = page.next_token;
        }
        Ok(LineageReader {
            client,
            stream: stream.to_string(),
            start,
            follow,
            shards,
            cursor: None,
            idle_pause: Duration::from_millis(200),
        })
    }

    /// A shard can be read once no parent it has is still being read (parents that are not
    /// listed have expired or were before the starting point).
    fn ready(&self, id: &str) -> bool {
        let state = &self.shards[id];
        !state.finished
            && state
                .parents
                .iter()
                .all(|parent| self.shards.get(parent).is_none_or(|p| p.finished))
    }

    async fn iterator_for(&mut self, id: &str) -> Result<String, tonic::Status> {
        let start = if self.shards[id].listed_at_start {
            self.start
        } else {
            Start::TrimHorizon
        };
        let (kind, timestamp_ms) = match start {
            Start::TrimHorizon => (pb::ShardIteratorType::TrimHorizon, None),
            Start::Latest => (pb::ShardIteratorType::Latest, None),
            Start::AtTimestamp(ms) => (pb::ShardIteratorType::AtTimestamp, Some(ms)),
        };
        let response = self
            .client
            .get_shard_iterator(pb::GetShardIteratorRequest {
                stream_name: self.stream.clone(),
                shard_id: id.to_string(),
                shard_iterator_type: kind as i32,
                timestamp_ms,
                ..Default::default()
            })
            .await?;
        Ok(response.into_inner().shard_iterator)
    }

    /// The next batch of records, from a shard whose parents are done. `None` when there is
    /// nothing more to read: without `follow`, once every readable shard is caught up (or
    /// finished); with it, only if every shard is finished, which an open stream never is.
    pub async fn next(&mut self) -> Result<Option<Batch>, tonic::Status> {
        loop {
            let ready: Vec<String> = self
                .shards
                .keys()
                .filter(|id| self.ready(id))
                .cloned()
                .collect();
            if ready.is_empty() {
                return Ok(None);
            }
            if !self.follow && ready.iter().all(|id| self.shards[id].caught_up) {
                return Ok(None);
            }
            // Round-robin: the first ready shard after the cursor.
            let id = ready
                .iter()
                .find(|id| self.cursor.as_ref().is_none_or(|cursor| *id > cursor))
                .unwrap_or(&ready[0])
                .clone();
            let wrapped = self.cursor.as_ref().is_some_and(|cursor| id <= *cursor);
            if wrapped && self.follow && ready.iter().all(|id| self.shards[id].caught_up) {
                tokio::time::sleep(self.idle_pause).await;
            }
            self.cursor = Some(id.clone());
            if let Some(batch) = self.read_shard(&id).await? {
                return Ok(Some(batch));
            }
        }
    }

    /// One GetRecords on `id`; `Some` if it returned records.
    async fn read_shard(&mut self, id: &str) -> Result<Option<Batch>, tonic::Status> {
        let iterator = match self.shards[id].iterator.clone() {
            Some(iterator) => iterator,
            None => self.iterator_for(id).await?,
        };
        let page = self
            .client
            .get_records(pb::GetRecordsRequest {
                shard_iterator: iterator,
                ..Default::default()
            })
            .await?
            .into_inner();
        for child in &page.child_shards {
            self.shards
                .entry(child.shard_id.clone())
                .or_insert_with(|| ShardState {
                    parents: child.parent_shards.clone(),
                    iterator: None,
                    listed_at_start: false,
                    finished: false,
                    caught_up: false,
                });
        }
        let state = self.shards.get_mut(id).expect("a known shard");
        state.caught_up = page.records.is_empty() && page.millis_behind_latest == 0;
        match page.next_shard_iterator {
            Some(next) => state.iterator = Some(next),
            None => state.finished = true,
        }
        if page.records.is_empty() {
            return Ok(None);
        }
        Ok(Some(Batch {
            shard_id: id.to_string(),
            records: page.records,
            millis_behind_latest: page.millis_behind_latest,
        }))
    }
}
