//! The data plane: PutRecord(s), GetShardIterator, GetRecords.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rheo_storage::{Position, Record};

use crate::error::{Result, StreamsError};
use crate::hashing::{check_hash_key_shape, hash_partition_key, parse_explicit_hash_key};
use crate::limits::ShardLimiter;
use crate::metrics::add;
use crate::model::{
    IteratorStart, PutEntry, PutOutcome, RecordOut, RecordsPage, ShardInfo, format_time,
};
use crate::seqnum::SequenceNumber;
use crate::store::{Shard, Store, Stream, validate_identifier};
use crate::token::{MAX_ITERATOR_CHARS, ShardIterator};

/// Most records in one PutRecords call.
pub const MAX_PUT_RECORDS: usize = 500;
/// Most bytes (data plus partition keys) in one PutRecords call.
pub const MAX_PUT_RECORDS_BYTES: usize = 10 * 1024 * 1024;
/// Most records one GetRecords call returns.
pub const MAX_GET_RECORDS: usize = 10_000;
/// Most bytes one GetRecords call returns.
pub const MAX_GET_RECORDS_BYTES: usize = 10 * 1024 * 1024;

/// A validated record with its shard.
pub(crate) struct Routed {
    pub(crate) shard: Arc<Shard>,
    pub(crate) entry: PutEntry,
    pub(crate) hash_key: Option<u128>,
}

/// The input's shape, checked before the stream is looked up, as Kinesis validates a request
/// before it runs it: a bad partition key length or explicit hash key shape is a
/// ValidationException even for an unknown stream.
fn validate_shape(entry: &PutEntry, index: usize) -> Result<()> {
    let key_chars = entry.partition_key.chars().count();
    if !(1..=256).contains(&key_chars) {
        return Err(StreamsError::Validation(format!(
            "1 validation error detected: Value at 'records.{index}.member.partitionKey' failed to satisfy constraint: Member must have length between 1 and 256, got {key_chars}"
        )));
    }
    if let Some(key) = &entry.explicit_hash_key {
        check_hash_key_shape(key, &format!("records.{index}.member.explicitHashKey"))?;
    }
    Ok(())
}

/// What depends on the stream: the record size limit, and the explicit hash key.
fn validate_entry(stream: &Stream, entry: &PutEntry, index: usize) -> Result<Option<u128>> {
    let size = entry.partition_key.len() + entry.data.len();
    let max = stream.max_record_bytes();
    if size > max {
        return Err(StreamsError::Validation(format!(
            "1 validation error detected: Value at 'records.{index}.member.data' failed to satisfy constraint: Member must have length less than or equal to {max} together with its partition key, got {size} bytes"
        )));
    }
    entry
        .explicit_hash_key
        .as_deref()
        .map(parse_explicit_hash_key)
        .transpose()
}

/// One put call's appends, one per shard it writes to. Each append's result is kept here by
/// the commit's callback; the last one to finish announces the call's records to push sessions
/// on every shard at once (so a consumer's sessions on those shards wake together and their
/// events leave in one write, see the server's connection layer) and wakes the caller once,
/// however many shards the call spans. The announcement does not depend on the caller, who may
/// have gone away. Until then each shard the call is durable on holds the call's records back,
/// so no later call's announcement on that shard shows them early.
struct Call {
    remaining: AtomicUsize,
    /// The shards the call writes to, and each one's append result once it is done.
    shards: Vec<(
        Arc<Shard>,
        std::sync::Mutex<Option<crate::engine::AppendResult>>,
    )>,
    /// Fired when every append is done.
    finished: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

/// The first and end (exclusive) engine sequence of an append's records.
fn range(appended: &rheo_storage::Appended) -> (u64, u64) {
    let first = appended.first_sequence;
    (first, first + u64::from(appended.count))
}

/// One append's share of a [`Call`] (the `at`-th shard): counted off when the append is done,
/// or when it is dropped without finishing (a closed log refused it).
struct ShareOfCall {
    call: Option<Arc<Call>>,
    at: usize,
}

impl ShareOfCall {
    /// The append is done with `result`, or was never queued (`None`).
    fn done(&mut self, result: Option<crate::engine::AppendResult>) {
        let Some(call) = self.call.take() else {
            return;
        };
        // A call of one shard needs no hold: it is announced the moment its append is done.
        let spans_shards = call.shards.len() > 1;
        let (shard, slot) = &call.shards[self.at];
        if let Some(result) = result {
            if let Ok(appended) = &result
                && spans_shards
            {
                shard.hold(appended.first_sequence);
            }
            *crate::store::lock(slot) = Some(result);
        }
        if call.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            for (shard, slot) in &call.shards {
                match crate::store::lock(slot).as_ref() {
                    Some(Ok(appended)) => {
                        let (first, end) = range(appended);
                        shard.announce(spans_shards.then_some(first), Some(end));
                    }
                    _ => shard.announce(None, None),
                }
            }
            if let Some(finished) = crate::store::lock(&call.finished).take() {
                let _ = finished.send(());
            }
        }
    }
}

impl Drop for ShareOfCall {
    fn drop(&mut self) {
        self.done(None);
    }
}

impl Store {
    /// PutRecords: validates every record (a bad one fails the whole call, nothing is written),
    /// then writes each shard's records as one batch. Per-record results come back in request
    /// order; a record refused by a shard's throughput limit fails alone.
    pub async fn put_records(&self, name: &str, entries: Vec<PutEntry>) -> Result<Vec<PutOutcome>> {
        check_put_records_count(entries.len())?;
        for (index, entry) in entries.iter().enumerate() {
            validate_shape(entry, index)?;
        }
        let stream = self.stream(name)?;
        self.check_put_key(&stream)?;
        let total: usize = entries
            .iter()
            .map(|entry| entry.partition_key.len() + entry.data.len())
            .sum();
        if total > MAX_PUT_RECORDS_BYTES {
            return Err(StreamsError::InvalidArgument(format!(
                "Records size exceeds {MAX_PUT_RECORDS_BYTES} bytes: the request carries {total} bytes of data and partition keys"
            )));
        }
        let mut validated = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            let hash_key = validate_entry(&stream, &entry, index)?;
            let hash = hash_key.unwrap_or_else(|| hash_partition_key(&entry.partition_key));
            validated.push((entry, hash_key, hash));
        }
        // Routed and queued under the reshard gate: each record goes to a shard that is open
        // until its batch is queued, and a reshard closes a parent only after that.
        let gate = stream.gate.read().await;
        let topology = stream.topology();
        let routed: Vec<Routed> = validated
            .into_iter()
            .map(|(entry, hash_key, hash)| Routed {
                shard: topology.route(hash).clone(),
                entry,
                hash_key,
            })
            .collect();

        let mut outcomes: Vec<Option<PutOutcome>> = vec![None; routed.len()];
        // Group admitted records by shard, keeping request order within each shard; each
        // shard's limiter is looked up once per call, not once per record.
        let mut by_shard: Vec<(Arc<Shard>, Arc<ShardLimiter>, Vec<usize>)> = Vec::new();
        let mut slot_of: std::collections::HashMap<u32, usize> = Default::default();
        for (index, record) in routed.iter().enumerate() {
            let at = *slot_of.entry(record.shard.index).or_insert_with(|| {
                by_shard.push((record.shard.clone(), record.shard.limiter(), Vec::new()));
                by_shard.len() - 1
            });
            let (shard, limiter, indexes) = &mut by_shard[at];
            let size = (record.entry.partition_key.len() + record.entry.data.len()) as u64;
            if limiter.admit_write(1, size) {
                indexes.push(index);
                continue;
            }
            add(&shard.counters.throttled_writes, 1);
            outcomes[index] = Some(PutOutcome::Failed {
                error_code: "ProvisionedThroughputExceededException".into(),
                error_message: format!(
                    "Rate exceeded for shard {} in stream {name} under account {}.",
                    shard.id, self.inner.config.account_id
                ),
            });
        }
        let routed = Arc::new(routed);
        // Shards whose records were all throttled get no append.
        by_shard.retain(|(_, _, indexes)| !indexes.is_empty());
        let (finished, all_done) = tokio::sync::oneshot::channel();
        let call = Arc::new(Call {
            remaining: AtomicUsize::new(by_shard.len()),
            shards: by_shard
                .iter()
                .map(|(shard, _, _)| (shard.clone(), std::sync::Mutex::new(None)))
                .collect(),
            finished: std::sync::Mutex::new(Some(finished)),
        });
        let mut pending = Vec::with_capacity(by_shard.len());
        for (at, (shard, _, indexes)) in by_shard.into_iter().enumerate() {
            let mut share = ShareOfCall {
                call: Some(call.clone()),
                at,
            };
            let submitted = crate::engine::append(
                shard.clone(),
                routed.clone(),
                indexes.clone(),
                move |result| share.done(Some(result)),
            )
            .await;
            pending.push((at, shard, indexes, submitted));
        }
        drop(gate);
        if !pending.is_empty() {
            // Every share counts off, stored, failed or refused, so this always fires.
            let _ = all_done.await;
        }
        for (at, shard, indexes, submitted) in pending {
            let result = match submitted {
                Ok(()) => match crate::store::lock(&call.shards[at].1).take() {
                    Some(appended) => appended.map_err(StreamsError::from),
                    None => Err(StreamsError::Internal(
                        "the group commit dropped this append".into(),
                    )),
                },
                Err(error) => Err(error),
            };
            match result {
                Ok(appended) => {
                    add(&shard.counters.records_in, indexes.len() as u64);
                    add(
                        &shard.counters.bytes_in,
                        indexes
                            .iter()
                            .map(|&i| {
                                (routed[i].entry.partition_key.len() + routed[i].entry.data.len())
                                    as u64
                            })
                            .sum(),
                    );
                    for (offset, index) in indexes.into_iter().enumerate() {
                        let sequence = SequenceNumber {
                            shard_index: shard.index,
                            engine_sequence: appended.sequence(offset as u32),
                        };
                        outcomes[index] = Some(PutOutcome::Stored {
                            shard_id: shard.id.clone(),
                            sequence_number: sequence.to_string(),
                        });
                    }
                }
                Err(error) => {
                    // PutRecords' per-record ErrorCode is ProvisionedThroughputExceededException
                    // or InternalFailure; a full disk says so in the message, and PutRecord
                    // turns it into a retryable ServiceUnavailableException.
                    let exhausted = matches!(&error, StreamsError::Unavailable(message) if message == crate::error::OUT_OF_RESOURCES);
                    let error_message = if exhausted {
                        crate::error::OUT_OF_RESOURCES
                    } else {
                        tracing::error!(stream = %name, shard = %shard.id, %error, "append failed");
                        "Internal Service Failure"
                    };
                    for index in indexes {
                        outcomes[index] = Some(PutOutcome::Failed {
                            error_code: "InternalFailure".into(),
                            error_message: error_message.into(),
                        });
                    }
                }
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every record has an outcome"))
            .collect())
    }

    /// PutRecord: one record; throttling or a storage failure fails the call.
    pub async fn put_record(
        &self,
        name: &str,
        entry: PutEntry,
        sequence_number_for_ordering: Option<&str>,
    ) -> Result<(String, String)> {
        if let Some(previous) = sequence_number_for_ordering {
            // Any later record of the same shard gets a larger number; parse it to refuse junk.
            SequenceNumber::parse(previous, "sequenceNumberForOrdering")?;
        }
        // put_records validates the record and fails the call on bad input.
        match self.put_records(name, vec![entry]).await?.remove(0) {
            PutOutcome::Stored {
                shard_id,
                sequence_number,
            } => Ok((shard_id, sequence_number)),
            PutOutcome::Failed {
                error_code,
                error_message,
            } if error_code == "ProvisionedThroughputExceededException" => {
                Err(StreamsError::ProvisionedThroughputExceeded(error_message))
            }
            PutOutcome::Failed { error_message, .. }
                if error_message == crate::error::OUT_OF_RESOURCES =>
            {
                Err(StreamsError::Unavailable(error_message))
            }
            PutOutcome::Failed { error_message, .. } => Err(StreamsError::Internal(error_message)),
        }
    }

    fn iterator_for(&self, stream: &Stream, shard: &Shard, position: u64) -> String {
        self.inner.key.encode_iterator(&ShardIterator {
            stream: stream.name.clone(),
            incarnation: stream.incarnation,
            shard_index: shard.index,
            position,
            issued_ms: self.now_ms(),
        })
    }

    /// Resolves where a GetShardIterator or SubscribeToShard starts in `shard`: the engine
    /// sequence number of the first record to read.
    pub(crate) async fn resolve_start(
        &self,
        stream: &Stream,
        shard: &Shard,
        start: &IteratorStart,
    ) -> Result<u64> {
        let shard_id = &shard.id;
        let name = &stream.name;
        let check_shard = |text: &str| -> Result<u64> {
            let sequence = SequenceNumber::parse(text, "startingSequenceNumber")?;
            if sequence.shard_index != shard.index {
                return Err(StreamsError::InvalidArgument(format!(
                    "Invalid StartingSequenceNumber. It encodes a different shardId than {shard_id} in stream {name} under account {}: {text}",
                    self.inner.config.account_id
                )));
            }
            Ok(sequence.engine_sequence)
        };
        let position = match start {
            IteratorStart::AtSequenceNumber(text) => Position::AtSequence(check_shard(text)?),
            IteratorStart::AfterSequenceNumber(text) => Position::AfterSequence(check_shard(text)?),
            IteratorStart::AtTimestamp(ms) => Position::AtTimestamp(*ms),
            IteratorStart::TrimHorizon => Position::TrimHorizon,
            IteratorStart::Latest => Position::Latest,
        };
        crate::engine::seek(&shard.log, position)
            .await?
            .map_err(|error| match error {
                rheo_storage::Error::InvalidArgument(_) => StreamsError::InvalidArgument(format!(
                    "StartingSequenceNumber on shard {shard_id} in stream {name} under account {} is beyond the newest record",
                    self.inner.config.account_id
                )),
                other => other.into(),
            })
    }

    /// GetShardIterator.
    pub async fn get_shard_iterator(
        &self,
        name: &str,
        shard_id: &str,
        start: IteratorStart,
    ) -> Result<String> {
        validate_identifier(shard_id, "shardId")?;
        start.check_shape("startingSequenceNumber")?;
        let stream = self.stream(name)?;
        let shard = self.find_shard(&stream, shard_id)?;
        let resolved = self.resolve_start(&stream, &shard, &start).await?;
        Ok(self.iterator_for(&stream, &shard, resolved))
    }

    /// GetRecords. `stream_arn`, if not empty, must name the stream the iterator belongs to.
    pub async fn get_records(
        &self,
        iterator: &str,
        limit: Option<i64>,
        stream_arn: &str,
    ) -> Result<RecordsPage> {
        if !(1..=MAX_ITERATOR_CHARS).contains(&iterator.len()) {
            return Err(StreamsError::Validation(format!(
                "1 validation error detected: Value at 'shardIterator' failed to satisfy constraint: Member must have length between 1 and {MAX_ITERATOR_CHARS}, got {}",
                iterator.len()
            )));
        }
        let limit = match limit {
            None => MAX_GET_RECORDS,
            Some(limit) if (1..=MAX_GET_RECORDS as i64).contains(&limit) => limit as usize,
            Some(limit) => {
                return Err(StreamsError::InvalidArgument(format!(
                    "Limit must be between 1 and {MAX_GET_RECORDS}, got {limit}"
                )));
            }
        };
        let named = if stream_arn.is_empty() {
            None
        } else {
            Some(self.resolve_name("", stream_arn)?)
        };
        let decoded = self.inner.key.decode_iterator(iterator)?;
        if let Some(named) = named
            && named != decoded.stream
        {
            return Err(StreamsError::InvalidArgument(format!(
                "StreamARN {stream_arn} names stream {named}, but the shard iterator belongs to stream {}",
                decoded.stream
            )));
        }
        let now = self.now_ms();
        let ttl = self.inner.config.iterator_ttl.as_millis() as i64;
        if now - decoded.issued_ms > ttl {
            return Err(StreamsError::ExpiredIterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ttl} milliseconds.",
                format_time(decoded.issued_ms),
                format_time(now)
            )));
        }
        let stream = self.stream(&decoded.stream)?;
        if stream.incarnation != decoded.incarnation {
            return Err(StreamsError::ResourceNotFound(format!(
                "The shard iterator was issued for an earlier stream named {} that has been deleted",
                decoded.stream
            )));
        }
        let topology = stream.topology();
        let shard = topology
            .by_index(decoded.shard_index)
            .cloned()
            .ok_or_else(|| {
                StreamsError::ResourceNotFound(format!(
                    "Shard {} in stream {} under account {} has expired: its data is past retention",
                    crate::store::shard_id(decoded.shard_index),
                    stream.name,
                    self.inner.config.account_id
                ))
            })?;
        let limiter = shard.limiter();
        if limiter.enabled && (!limiter.read_bytes.has_credit() || !limiter.read_calls.try_take(1))
        {
            add(&shard.counters.throttled_reads, 1);
            return Err(StreamsError::ProvisionedThroughputExceeded(format!(
                "Rate exceeded for Shard - {}/{}/{}",
                self.inner.config.account_id, stream.name, shard.id
            )));
        }
        let outcome = crate::engine::read(
            &shard.log,
            decoded.position,
            limit,
            MAX_GET_RECORDS_BYTES,
            crate::engine::Where::BlockingPool,
        )
        .await??;
        let bytes: usize = outcome.records.iter().map(|record| record.size()).sum();
        if limiter.enabled {
            limiter.read_bytes.charge(bytes as u64);
        }
        add(&shard.counters.records_polled, outcome.records.len() as u64);
        add(&shard.counters.bytes_polled, bytes as u64);
        shard.counters.polled_millis_behind.store(
            outcome.millis_behind_latest,
            std::sync::atomic::Ordering::Relaxed,
        );
        // At the end of a closed shard: no next iterator, and the children to read next.
        let ended = shard.ended_at(outcome.next_sequence);
        Ok(RecordsPage {
            records: records_out(shard.index, outcome.records),
            next_shard_iterator: (!ended)
                .then(|| self.iterator_for(&stream, &shard, outcome.next_sequence)),
            millis_behind_latest: outcome.millis_behind_latest,
            child_shards: if ended {
                child_shards(&topology, shard.index)
            } else {
                Vec::new()
            },
        })
    }
}

/// Records as read from shard `shard_index`'s log, in the model's form.
/// PutRecords takes 1 to [`MAX_PUT_RECORDS`] records: the check, for front ends that count a
/// request's records before they decode them all.
pub fn check_put_records_count(count: usize) -> Result<()> {
    if count == 0 || count > MAX_PUT_RECORDS {
        return Err(StreamsError::Validation(format!(
            "1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length between 1 and {MAX_PUT_RECORDS}, got {count}"
        )));
    }
    Ok(())
}

pub(crate) fn records_out(shard_index: u32, records: Vec<Record>) -> Vec<RecordOut> {
    records
        .into_iter()
        .map(|record| RecordOut {
            sequence_number: SequenceNumber {
                shard_index,
                engine_sequence: record.sequence,
            }
            .to_string(),
            arrival_ms: record.timestamp_ms,
            data: record.data,
            partition_key: String::from_utf8_lossy(&record.partition_key).into_owned(),
            encrypted: record.encrypted,
        })
        .collect()
}

/// The children of shard `index`, as GetRecords and SubscribeToShard report them at its end.
pub(crate) fn child_shards(topology: &crate::store::Topology, index: u32) -> Vec<ShardInfo> {
    topology
        .children_of(index)
        .into_iter()
        .map(|child| Store::shard_info(child))
        .collect()
}
