//! Resharding: SplitShard, MergeShards, UpdateShardCount (uniform scaling) and
//! UpdateStreamMode.
//!
//! Every reshard is planned as pairwise splits and merges on a copy of the stream's metadata,
//! then applied in one step:
//! 1. the children's logs are created (a crash here leaves directories the next start removes:
//!    the reshard did not happen);
//! 2. under the stream's gate (puts wait), each parent's log is closed for writes: its queued
//!    appends are committed and synced, and its end becomes final;
//! 3. the new metadata is written atomically (the commit point: before it the old shape is on
//!    disk, after it the new one);
//! 4. the new topology is published and puts resume, routed to the children.
//!
//! A step that fails without the process dying (a full disk, an I/O error) is undone before
//! puts resume: the old metadata is written again if the new one may have reached the disk,
//! then the parents are reopened for writes and the children's directories removed, so the
//! stream keeps its old shape and the reshard can be retried. If even the old metadata cannot
//! be written, the parents stay closed until a restart (see [`Store::undo_reshard`]).
//!
//! So a record goes to a parent before its end or to a child, never both, never lost; every
//! child's sequence numbers are above its parents' (a higher shard index); and the open shards
//! always cover the key space exactly, because each pairwise step keeps that true.
//!
//! UpdateShardCount splits every open shard at each new uniform boundary inside it, then merges
//! the pieces of each new range pairwise. That is Kinesis's scheme with its short-lived
//! intermediate shards, which are created closed and empty, so readers pass through them at
//! once; doubling and halving need no intermediates. All steps are one atomic change.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Result, StreamsError};
use crate::hashing::{check_hash_key_shape, initial_ranges};
use crate::meta::{self, ShardClosed, ShardMeta, StreamMeta, StreamMode};
use crate::model::StreamStatus;
use crate::store::{Shard, Store, Stream, Topology, lock, shard_id, validate_identifier};

/// Most shards a stream can be scaled to with UpdateShardCount.
const MAX_SHARDS_PER_STREAM: i64 = 10_000;
/// UpdateShardCount calls allowed per stream in a rolling 24 hours.
const SCALINGS_PER_DAY: usize = 10;
/// UpdateStreamMode calls allowed per stream in a rolling 24 hours.
const MODE_CHANGES_PER_DAY: usize = 2;
pub(crate) const DAY_MS: i64 = 86_400_000;

/// Puts a stream back to ACTIVE when a reshard ends, however it ends.
pub(crate) struct Updating<'a>(&'a Stream);

impl Drop for Updating<'_> {
    fn drop(&mut self) {
        *lock(&self.0.status) = StreamStatus::Active;
    }
}

/// A reshard being planned on a copy of the metadata.
struct Plan {
    meta: StreamMeta,
    next_index: u32,
    now: i64,
}

/// A shard's range in a plan.
#[derive(Debug, Clone, Copy)]
struct Range {
    index: u32,
    start: u128,
    end: u128,
}

fn parse_key(text: &str) -> u128 {
    text.parse()
        .expect("hash keys in metadata were checked at open")
}

impl Plan {
    fn new(meta: StreamMeta, now: i64) -> Plan {
        let next_index = meta.shards.iter().map(|s| s.index + 1).max().unwrap_or(0);
        Plan {
            meta,
            next_index,
            now,
        }
    }

    /// Open shards by hash range.
    fn open(&self) -> Vec<Range> {
        let mut open: Vec<Range> = self
            .meta
            .shards
            .iter()
            .filter(|s| s.closed.is_none() && !s.expired)
            .map(|s| Range {
                index: s.index,
                start: parse_key(&s.starting_hash_key),
                end: parse_key(&s.ending_hash_key),
            })
            .collect();
        open.sort_by_key(|range| range.start);
        open
    }

    fn shard_mut(&mut self, index: u32) -> &mut ShardMeta {
        self.meta
            .shards
            .iter_mut()
            .find(|s| s.index == index)
            .expect("planned shards exist")
    }

    fn add(&mut self, start: u128, end: u128, parent: u32, adjacent_parent: Option<u32>) -> Range {
        let index = self.next_index;
        self.next_index += 1;
        self.meta.shards.push(ShardMeta {
            index,
            starting_hash_key: start.to_string(),
            ending_hash_key: end.to_string(),
            created_ms: self.now,
            parent: Some(parent),
            adjacent_parent,
            // Filled in when the reshard is applied.
            closed: None,
            expired: false,
        });
        Range { index, start, end }
    }

    /// Marks `index` closed (its end is filled in when applied).
    fn close(&mut self, index: u32) {
        let now = self.now;
        self.shard_mut(index).closed = Some(ShardClosed {
            end: 0,
            closed_ms: now,
        });
    }

    /// Splits open shard `range` so the upper child starts at `at`.
    fn split(&mut self, range: Range, at: u128) -> (Range, Range) {
        self.close(range.index);
        let lower = self.add(range.start, at - 1, range.index, None);
        let upper = self.add(at, range.end, range.index, None);
        (lower, upper)
    }

    /// Merges open shards `shard` and `adjacent` (adjacent ranges, either order).
    fn merge(&mut self, shard: Range, adjacent: Range) -> Range {
        self.close(shard.index);
        self.close(adjacent.index);
        self.add(
            shard.start.min(adjacent.start),
            shard.end.max(adjacent.end),
            shard.index,
            Some(adjacent.index),
        )
    }
}

impl Store {
    /// Takes the stream from ACTIVE to UPDATING, or refuses with ResourceInUse.
    pub(crate) fn start_updating<'a>(&self, stream: &'a Stream) -> Result<Updating<'a>> {
        let mut status = lock(&stream.status);
        if *status != StreamStatus::Active {
            return Err(StreamsError::ResourceInUse(format!(
                "Stream {} under account {} not ACTIVE, instead in state {}",
                stream.name,
                self.inner.config.account_id,
                status.name()
            )));
        }
        *status = StreamStatus::Updating;
        Ok(Updating(stream))
    }

    fn provisioned_only(&self, stream: &Stream, operation: &str) -> Result<()> {
        if lock(&stream.meta).mode == StreamMode::OnDemand {
            return Err(StreamsError::Validation(format!(
                "{operation} is only supported for streams in PROVISIONED mode; stream {} is ON_DEMAND",
                stream.name
            )));
        }
        Ok(())
    }

    fn open_range(&self, stream: &Stream, plan: &Plan, id: &str) -> Result<Range> {
        let shard = plan
            .meta
            .shards
            .iter()
            .find(|s| shard_id(s.index) == id && !s.expired)
            .ok_or_else(|| {
                StreamsError::ResourceNotFound(format!(
                    "Could not find shard {id} in stream {} under account {}.",
                    stream.name, self.inner.config.account_id
                ))
            })?;
        if shard.closed.is_some() {
            return Err(StreamsError::ResourceInUse(format!(
                "Shard {id} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting",
                stream.name, self.inner.config.account_id
            )));
        }
        Ok(Range {
            index: shard.index,
            start: parse_key(&shard.starting_hash_key),
            end: parse_key(&shard.ending_hash_key),
        })
    }

    fn check_shard_limit(&self, stream: &Stream, added_open: i64) -> Result<()> {
        let limits = self.describe_limits();
        if i64::from(limits.open_shard_count) + added_open > i64::from(limits.shard_limit) {
            return Err(StreamsError::LimitExceeded(format!(
                "Reshard of stream {} would exceed the shard limit for the account: {} shards open, {} more requested, limit {}",
                stream.name, limits.open_shard_count, added_open, limits.shard_limit
            )));
        }
        Ok(())
    }

    /// SplitShard: closes `shard_to_split` and opens two children, the upper one starting at
    /// `new_starting_hash_key`.
    pub async fn split_shard(
        &self,
        name: &str,
        shard_to_split: &str,
        new_starting_hash_key: &str,
    ) -> Result<()> {
        validate_identifier(shard_to_split, "shardToSplit")?;
        check_hash_key_shape(new_starting_hash_key, "newStartingHashKey")?;
        let stream = self.stream(name)?;
        self.provisioned_only(&stream, "SplitShard")?;
        let at = parse_hash_key(new_starting_hash_key)?;
        let _updating = self.start_updating(&stream)?;
        let mut plan = Plan::new(lock(&stream.meta).clone(), self.now_ms());
        let parent = self.open_range(&stream, &plan, shard_to_split)?;
        if !(parent.start.saturating_add(1) < at && at < parent.end) {
            return Err(StreamsError::InvalidArgument(format!(
                "NewStartingHashKey {at} used in SplitShard() on shard {shard_to_split} in stream {name} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                self.inner.config.account_id, parent.start, parent.end
            )));
        }
        self.check_shard_limit(&stream, 1)?;
        plan.split(parent, at);
        self.apply_reshard(&stream, plan).await
    }

    /// MergeShards: closes two adjacent open shards and opens one child over both ranges.
    pub async fn merge_shards(&self, name: &str, shard: &str, adjacent: &str) -> Result<()> {
        validate_identifier(shard, "shardToMerge")?;
        validate_identifier(adjacent, "adjacentShardToMerge")?;
        let stream = self.stream(name)?;
        self.provisioned_only(&stream, "MergeShards")?;
        let _updating = self.start_updating(&stream)?;
        let mut plan = Plan::new(lock(&stream.meta).clone(), self.now_ms());
        let first = self.open_range(&stream, &plan, shard)?;
        let second = self.open_range(&stream, &plan, adjacent)?;
        let touching = first.end.checked_add(1) == Some(second.start)
            || second.end.checked_add(1) == Some(first.start);
        if first.index == second.index || !touching {
            return Err(StreamsError::InvalidArgument(format!(
                "Shards {shard} and {adjacent} in stream {name} under account {} are not an adjacent pair of shards eligible for merging",
                self.inner.config.account_id
            )));
        }
        plan.merge(first, second);
        self.apply_reshard(&stream, plan).await
    }

    /// UpdateShardCount with UNIFORM_SCALING: returns the shard counts before and after.
    pub async fn update_shard_count(
        &self,
        name: &str,
        target: i64,
        scaling_type: &str,
    ) -> Result<(u32, u32)> {
        if scaling_type != "UNIFORM_SCALING" {
            return Err(StreamsError::Validation(format!(
                "1 validation error detected: Value '{scaling_type}' at 'scalingType' failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]"
            )));
        }
        if target < 1 {
            return Err(StreamsError::Validation(format!(
                "1 validation error detected: Value '{target}' at 'targetShardCount' failed to satisfy constraint: Member must have value greater than or equal to 1"
            )));
        }
        let stream = self.stream(name)?;
        self.provisioned_only(&stream, "UpdateShardCount")?;
        let _updating = self.start_updating(&stream)?;
        let now = self.now_ms();
        let mut plan = Plan::new(lock(&stream.meta).clone(), now);
        let current = plan.open().len() as i64;
        let too_many = target > MAX_SHARDS_PER_STREAM;
        if target > 2 * current || 2 * target < current || too_many {
            return Err(StreamsError::LimitExceeded(format!(
                "UpdateShardCount of stream {name} from {current} to {target} shards is out of bounds: the target must be at least half and at most double the current count, and at most {MAX_SHARDS_PER_STREAM}"
            )));
        }
        plan.meta.scalings_ms.retain(|at| now - at < DAY_MS);
        if plan.meta.scalings_ms.len() >= SCALINGS_PER_DAY {
            return Err(StreamsError::LimitExceeded(format!(
                "Stream {name} was already scaled {SCALINGS_PER_DAY} times in the last 24 hours"
            )));
        }
        self.check_shard_limit(&stream, target - current)?;
        plan.meta.scalings_ms.push(now);
        let boundaries: Vec<u128> = initial_ranges(target as u32)
            .into_iter()
            .skip(1)
            .map(|(start, _)| start)
            .collect();
        // Split at every new boundary that falls inside an open shard.
        for &at in &boundaries {
            if let Some(range) = plan
                .open()
                .into_iter()
                .find(|range| range.start < at && at <= range.end)
            {
                plan.split(range, at);
            }
        }
        // Merge the pieces of each new range, pairwise from the left.
        for (start, end) in initial_ranges(target as u32) {
            let mut pieces = plan
                .open()
                .into_iter()
                .filter(|range| range.start >= start && range.end <= end);
            let Some(mut merged) = pieces.next() else {
                continue;
            };
            for piece in pieces {
                merged = plan.merge(merged, piece);
            }
        }
        self.apply_reshard(&stream, plan).await?;
        Ok((current as u32, target as u32))
    }

    /// UpdateStreamMode: PROVISIONED keeps per-shard limits; ON_DEMAND shares four shards'
    /// worth of limits across the stream and refuses reshard calls. The shards stay.
    pub async fn update_stream_mode(&self, name: &str, mode: StreamMode) -> Result<()> {
        let stream = self.stream(name)?;
        let _updating = self.start_updating(&stream)?;
        let now = self.now_ms();
        let account = &self.inner.config.account_id;
        self.update_meta(&stream, |updated| {
            if updated.mode == mode {
                return Err(StreamsError::InvalidArgument(format!(
                    "Stream {name} under account {account} is already in mode {mode:?}"
                )));
            }
            if mode == StreamMode::OnDemand {
                let limits = self.describe_limits();
                if limits.on_demand_stream_count >= limits.on_demand_stream_count_limit {
                    return Err(StreamsError::LimitExceeded(format!(
                        "The account already has {} on-demand streams, the limit",
                        limits.on_demand_stream_count
                    )));
                }
            }
            updated.mode_changes_ms.retain(|at| now - at < DAY_MS);
            if updated.mode_changes_ms.len() >= MODE_CHANGES_PER_DAY {
                return Err(StreamsError::LimitExceeded(format!(
                    "The mode of stream {name} was already changed {MODE_CHANGES_PER_DAY} times in the last 24 hours"
                )));
            }
            updated.mode_changes_ms.push(now);
            updated.mode = mode;
            Ok(())
        })
        .await?;
        let limiters = self.limiters(&lock(&stream.meta));
        for shard in &stream.topology().shards {
            shard.set_limiter(limiters(shard.index));
        }
        tracing::info!(stream = %name, ?mode, "changed stream mode");
        Ok(())
    }

    /// Applies a plan: see the module documentation for the steps and why they are safe.
    async fn apply_reshard(&self, stream: &Arc<Stream>, mut plan: Plan) -> Result<()> {
        let delay = self.inner.config.reshard_delay;
        if delay > Duration::ZERO {
            tokio::time::sleep(delay).await;
        }
        let _control = self.inner.control.lock().await;
        let before = stream.topology();
        let new: Vec<ShardMeta> = plan
            .meta
            .shards
            .iter()
            .filter(|s| !s.expired && before.by_index(s.index).is_none())
            .cloned()
            .collect();
        let parents: Vec<Arc<Shard>> = plan
            .meta
            .shards
            .iter()
            .filter(|s| s.closed.is_some())
            .filter_map(|s| before.by_index(s.index))
            .filter(|shard| shard.closed().is_none())
            .cloned()
            .collect();

        // 1. The children's logs (intermediates are closed at once: they never get a record).
        let limiters = self.limiters(&plan.meta);
        let store = self.clone();
        let dir = stream.dir.clone();
        let meta_now = plan.meta.clone();
        let children = crate::store::blocking(move || {
            let mut opened = Vec::with_capacity(new.len());
            for shard in &new {
                let mut open_meta = shard.clone();
                open_meta.closed = None;
                opened.push(store.open_shard(
                    &dir,
                    &meta_now,
                    &open_meta,
                    limiters(shard.index),
                )?);
            }
            Ok(opened)
        })
        .await?;
        self.crash_point("children created")?;

        // 2. Close the parents under the gate: puts wait; queued ones are committed first.
        let gate = stream.gate.write().await;
        let closing: Vec<Arc<Shard>> = parents
            .iter()
            .chain(children.iter().filter(|child| {
                plan.meta
                    .shards
                    .iter()
                    .any(|s| s.index == child.index && s.closed.is_some())
            }))
            .cloned()
            .collect();
        let mut commit_tried = false;
        let committed = async {
            let ends = crate::store::blocking(move || {
                closing
                    .iter()
                    .map(|shard| Ok((shard.index, shard.log.close_writes()?)))
                    .collect::<Result<Vec<(u32, u64)>>>()
            })
            .await?;
            for (index, end) in &ends {
                if let Some(closed) = plan.shard_mut(*index).closed.as_mut() {
                    closed.end = *end;
                }
            }
            self.crash_point("parents closed")?;

            // 3. The commit point: the new shape, written atomically.
            let dir = stream.dir.clone();
            let to_write = plan.meta.clone();
            commit_tried = true;
            crate::store::blocking(move || meta::write(&dir, &to_write)).await?;
            self.crash_point("metadata written")?;
            Ok::<_, StreamsError>(ends)
        }
        .await;
        let ends = match committed {
            Ok(ends) => ends,
            Err(error) => {
                self.undo_reshard(stream, &parents, children, commit_tried)
                    .await;
                return Err(error);
            }
        };

        // 4. Publish: closed shards wake their push sessions; puts route to the children.
        let closed_by_index = |index: u32| {
            plan.meta
                .shards
                .iter()
                .find(|s| s.index == index)
                .and_then(|s| s.closed)
        };
        for shard in before.shards.iter().chain(children.iter()) {
            if let Some(closed) = closed_by_index(shard.index) {
                shard.closed.send_replace(Some(closed));
            }
        }
        let mut shards = before.shards.clone();
        shards.extend(children);
        stream.set_topology(Topology::new(shards));
        *lock(&stream.meta) = plan.meta;
        drop(gate);
        tracing::info!(
            stream = %stream.name,
            open = stream.topology().open.len(),
            closed = ends.len(),
            "resharded"
        );
        Ok(())
    }

    /// Undoes a reshard that failed between closing its parents and its commit point, with the
    /// stream's gate still held: the stream must keep its old shape, writable. If the new
    /// metadata may have reached the disk (its write was tried: a failure after the rename, an
    /// fsync of the directory, say, leaves that unknown), the old metadata is written again
    /// first; only once the disk surely holds the old shape are the parents reopened for
    /// writes and the children's directories removed. If that write fails too, the parents
    /// stay closed (puts to their key ranges fail until a restart, which finds one shape or the
    /// other, each consistent): writing to them could put records after an end the new shape
    /// has recorded.
    async fn undo_reshard(
        &self,
        stream: &Arc<Stream>,
        parents: &[Arc<Shard>],
        children: Vec<Arc<Shard>>,
        commit_tried: bool,
    ) {
        if commit_tried {
            let dir = stream.dir.clone();
            let old = lock(&stream.meta).clone();
            let rewritten = match self.crash_point("metadata restored") {
                Ok(()) => crate::store::blocking(move || meta::write(&dir, &old)).await,
                Err(error) => Err(error),
            };
            if let Err(error) = rewritten {
                let closed: Vec<&str> = parents.iter().map(|shard| shard.id.as_str()).collect();
                tracing::error!(stream = %stream.name, %error, shards = ?closed, "a reshard failed at its commit point and could not be undone: these shards refuse writes until the server restarts");
                return;
            }
        }
        for parent in parents {
            if let Err(error) = parent.log.reopen_writes() {
                tracing::error!(stream = %stream.name, shard = %parent.id, %error, "a shard closed by a failed reshard stays closed");
            }
        }
        let indexes: Vec<u32> = children.iter().map(|child| child.index).collect();
        drop(children);
        let dir = stream.dir.clone();
        let removed =
            crate::store::blocking(move || crate::store::remove_shard_dirs(&dir, &indexes)).await;
        if let Err(error) = removed {
            // The next start removes them: the metadata does not list them.
            tracing::warn!(stream = %stream.name, %error, "could not remove the shards of a failed reshard");
        }
        tracing::warn!(stream = %stream.name, "a failed reshard was undone: the stream keeps its shape");
    }

    /// A crash injected by tests between the steps of a reshard.
    #[cfg(test)]
    fn crash_point(&self, step: &'static str) -> Result<()> {
        if lock(&self.inner.crash_at).contains(&step) {
            return Err(StreamsError::Internal(format!(
                "injected crash after {step}"
            )));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn crash_point(&self, _step: &'static str) -> Result<()> {
        Ok(())
    }
}

/// A NewStartingHashKey whose shape was checked: a decimal that must fit in 128 bits.
fn parse_hash_key(text: &str) -> Result<u128> {
    text.parse::<u128>().map_err(|_| {
        StreamsError::InvalidArgument(format!(
            "NewStartingHashKey {text} is not in the hash key range [0, 2^128-1]"
        ))
    })
}

#[cfg(test)]
#[path = "reshard_tests.rs"]
mod tests;
