//! The one seam between the Kinesis model and the storage engine: every append, read and seek
//! of a shard log that a request makes goes through this module (opening, closing, syncing and
//! maintaining logs stay with the control plane that owns them).
//!
//! Where the work runs, the one rule:
//! - **Appends**: a call's records for one shard are encoded on the async worker when they are
//!   at most [`ENCODE_INLINE_BYTES`], else on the blocking pool; the write and the fdatasync
//!   run on the node journal's commit thread; the caller is woken once per put call, however
//!   many shards it spans, and holds no thread meanwhile. (A log opened without a journal
//!   hands its caller a leader turn, which runs on the blocking pool: tests and tools only.)
//! - **Reads**: on the blocking pool, since pages may have to come from disk; a caller that
//!   knows the range is small and hot (a caught-up push session) may read inline.
//! - **Seeks**: on the blocking pool (an index walk and a batch header read).

use std::sync::Arc;

use rheo_storage::{Callback, Completion, Position, ReadOutcome, RecordInput, ShardLog};

use crate::data::Routed;
use crate::error::{Result, StreamsError};
use crate::store::Shard;

/// A call's records for one shard larger than this are encoded on the blocking pool.
pub(crate) const ENCODE_INLINE_BYTES: usize = 256 * 1024;

/// What an append got from the engine.
pub(crate) type AppendResult = std::result::Result<rheo_storage::Appended, rheo_storage::Error>;

/// Where a read runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Where {
    /// On the calling async worker: only for a few records likely in the page cache.
    Inline,
    /// On the blocking pool.
    BlockingPool,
}

fn worker_failed(error: tokio::task::JoinError) -> StreamsError {
    StreamsError::Internal(format!("worker failed: {error}"))
}

/// Queues the records `indexes` of `routed` on `shard`'s log as one batch. `on_done` gets the
/// result from the commit's callback (on the journal's commit thread), whether or not anyone
/// still waits for the call; it is dropped uncalled if the batch is refused before it is
/// queued (that refusal is this function's error).
pub(crate) async fn append(
    shard: Arc<Shard>,
    routed: Arc<Vec<Routed>>,
    indexes: Vec<usize>,
    on_done: impl FnOnce(AppendResult) + Send + 'static,
) -> Result<()> {
    let runtime = tokio::runtime::Handle::current();
    let log_for_lead = shard.log.clone();
    let mut on_done = Some(on_done);
    let callback: Callback = Box::new(move |completion| match completion {
        Completion::Lead(turn) => {
            let log = log_for_lead.clone();
            runtime.spawn_blocking(move || log.lead(turn));
        }
        Completion::Done(result) => {
            if let Some(on_done) = on_done.take() {
                on_done(result);
            }
        }
    });
    let bytes: usize = indexes.iter().map(|&i| routed[i].entry.data.len()).sum();
    let submit = move || {
        let inputs: Vec<RecordInput> = indexes
            .iter()
            .map(|&index| RecordInput {
                partition_key: routed[index].entry.partition_key.as_bytes(),
                explicit_hash_key: routed[index].hash_key,
                data: &routed[index].entry.data,
            })
            .collect();
        let turn = shard.log.submit(&inputs, callback)?;
        Ok::<_, StreamsError>((shard, turn))
    };
    let submitted = if bytes <= ENCODE_INLINE_BYTES {
        submit()
    } else {
        tokio::task::spawn_blocking(submit)
            .await
            .map_err(worker_failed)?
    };
    let (shard, turn) = submitted?;
    if let Some(turn) = turn {
        let log = shard.log.clone();
        tokio::task::spawn_blocking(move || log.lead(turn));
    }
    Ok(())
}

/// Reads up to `max_records` records and about `max_bytes` bytes from `from`.
pub(crate) async fn read(
    log: &Arc<ShardLog>,
    from: u64,
    max_records: usize,
    max_bytes: usize,
    place: Where,
) -> Result<rheo_storage::Result<ReadOutcome>> {
    let log = log.clone();
    let read = move || log.read(from, max_records, max_bytes);
    match place {
        Where::Inline => Ok(read()),
        Where::BlockingPool => tokio::task::spawn_blocking(read)
            .await
            .map_err(worker_failed),
    }
}

/// Resolves a position to the sequence number a read from it starts at.
pub(crate) async fn seek(
    log: &Arc<ShardLog>,
    position: Position,
) -> Result<rheo_storage::Result<u64>> {
    let log = log.clone();
    tokio::task::spawn_blocking(move || log.seek(position))
        .await
        .map_err(worker_failed)
}
