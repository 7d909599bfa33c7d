//! SubscribeToShard: push sessions of enhanced fan-out consumers.
//!
//! A [`Subscription`] is pulled, not pushed into a queue: the front end asks for the next event
//! when its transport can take one. So a stalled consumer holds at most one event and its
//! position, never a growing buffer; it reads from the log (the mapped segments every reader
//! shares) when it is behind, and it never slows producers or other consumers. While caught
//! up it sleeps on the shard's published position, raised when a put call's records are
//! durable on every shard the call wrote to (so one call wakes a consumer's sessions on those
//! shards together): no polling, no CPU while idle. Dropping it frees everything at once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rheo_storage::Record;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

use crate::data::{MAX_GET_RECORDS, child_shards, records_out};
use crate::error::{Result, StreamsError};
use crate::limits::Bucket;
use crate::meta::ConsumerMeta;
use crate::metrics::add;
use crate::model::{ConsumerRef, ConsumerStatus, IteratorStart, PushedRecords, SubscribeEvent};
use crate::seqnum::SequenceNumber;
use crate::store::{Shard, Store, Stream, lock, validate_identifier};

/// Why a session was ended from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// A newer subscription of the same consumer and shard took over.
    TakenOver,
    /// The consumer was deregistered.
    ConsumerDeregistered,
    /// The stream was deleted.
    StreamDeleted,
    /// The server is shutting down: the session completes cleanly.
    ServerStopping,
}

/// Sessions of one stream, by consumer (name and ARN seconds) and shard index.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_key: HashMap<(String, i64, u32), Session>,
}

#[derive(Debug)]
struct Session {
    started_ms: i64,
    /// The subscription holds the only receiver: once it is dropped the session is over.
    end: watch::Sender<Option<Ended>>,
    /// MillisBehindLatest of its last event (for metrics).
    millis_behind: Arc<AtomicU64>,
}

impl Sessions {
    /// `(consumer, shard index, millis behind)` of every live session.
    pub(crate) fn live(&self) -> Vec<(String, u32, u64)> {
        self.by_key
            .iter()
            .filter(|(_, session)| session.live())
            .map(|((consumer, _, shard), session)| {
                (
                    consumer.clone(),
                    *shard,
                    session.millis_behind.load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}

impl Session {
    fn live(&self) -> bool {
        !self.end.is_closed()
    }
}

impl Stream {
    /// Ends the live sessions of `consumer` (every consumer if `None`).
    pub(crate) fn end_sessions(&self, consumer: Option<&ConsumerMeta>, why: Ended) {
        let mut sessions = lock(&self.sessions);
        sessions.by_key.retain(|(name, secs, _), session| {
            let matches = consumer
                .is_none_or(|consumer| consumer.name == *name && consumer.arn_secs == *secs);
            if matches {
                session.end.send_replace(Some(why));
            }
            !matches
        });
    }

    fn live_sessions(&self) -> usize {
        lock(&self.sessions)
            .by_key
            .values()
            .filter(|session| session.live())
            .count()
    }
}

/// The records of a shard's newest read that reached the tip, shared by the shard's push
/// sessions: when several consumers are caught up, one reads and decodes each commit and the
/// others take the same records (and the front end's encoding of them, see [`PushedRecords`]).
#[derive(Debug)]
pub(crate) struct RecentRead {
    from: u64,
    next: u64,
    bytes: usize,
    millis_behind: u64,
    records: PushedRecords,
}

impl Shard {
    fn recent_read(&self, from: u64, max_bytes: usize) -> Option<RecentRead> {
        lock(&self.recent_read)
            .as_ref()
            .filter(|recent| recent.from == from && recent.bytes <= max_bytes)
            .map(|recent| RecentRead {
                records: recent.records.clone(),
                ..*recent
            })
    }

    fn keep_recent_read(&self, read: RecentRead) {
        *lock(&self.recent_read) = Some(read);
    }
}

/// Records a caught-up session reads on the async worker; further behind, it reads on the
/// blocking pool, since those pages may have to come from disk.
const INLINE_READ_RECORDS: u64 = 4096;

impl Store {
    /// SubscribeToShard: checks the consumer (it must be ACTIVE), the shard and the starting
    /// position, applies the 5-second rule (a second subscription of the same consumer and
    /// shard sooner than that fails with ResourceInUse; later, it takes over and the earlier
    /// one ends with ResourceInUse), and returns the session.
    pub async fn subscribe_to_shard(
        &self,
        consumer_arn: &str,
        shard_id: &str,
        start: IteratorStart,
    ) -> Result<Subscription> {
        validate_identifier(shard_id, "shardId")?;
        start.check_shape("startingPosition.sequenceNumber")?;
        let (stream, consumer) = self.find_consumer(&ConsumerRef {
            consumer_arn: consumer_arn.to_string(),
            ..ConsumerRef::default()
        })?;
        if self.consumer_status(&consumer) != ConsumerStatus::Active {
            return Err(StreamsError::ResourceInUse(format!(
                "Consumer {consumer_arn} is not ACTIVE yet"
            )));
        }
        let shard = self.find_shard(&stream, shard_id)?;
        let position = self.resolve_start(&stream, &shard, &start).await?;

        let fan_out = &self.inner.config.fan_out;
        let now = self.now_ms();
        let takeover_ms = fan_out.takeover_after.as_millis() as i64;
        let (end, ended) = watch::channel(None);
        let millis_behind = Arc::new(AtomicU64::new(0));
        {
            let mut sessions = lock(&stream.sessions);
            sessions
                .by_key
                .retain(|_, session| session.live() || now - session.started_ms < takeover_ms);
            let key = (consumer.name.clone(), consumer.arn_secs, shard.index);
            if let Some(earlier) = sessions.by_key.get(&key) {
                if now - earlier.started_ms < takeover_ms {
                    return Err(StreamsError::ResourceInUse(format!(
                        "Another subscription of consumer {consumer_arn} to shard {shard_id} started {} ms ago; a new one may take over {takeover_ms} ms after it",
                        now - earlier.started_ms
                    )));
                }
                earlier.end.send_replace(Some(Ended::TakenOver));
            }
            sessions.by_key.insert(
                key,
                Session {
                    started_ms: now,
                    end,
                    millis_behind: millis_behind.clone(),
                },
            );
        }
        tracing::debug!(consumer = %consumer_arn, shard = %shard_id, position, "subscribed");
        let signals = FuturesUnordered::new();
        signals.push(wait_for(ended.clone(), Signal::Ended));
        signals.push(wait_for(shard.closed.subscribe(), Signal::Closed));
        signals.push(wait_for(
            self.inner.clock_moved.subscribe(),
            Signal::ClockMoved,
        ));
        Ok(Subscription {
            store: self.clone(),
            tip: shard.published.subscribe(),
            signals,
            timer: Box::pin(tokio::time::sleep(fan_out.heartbeat)),
            shard,
            consumer_arn: consumer_arn.to_string(),
            position,
            ended,
            end_gone: false,
            started_ms: now,
            last_event_ms: None,
            bucket: fan_out.rate_bytes_per_sec.map(Bucket::new),
            millis_behind,
            done: false,
            stream,
        })
    }

    /// Subscriptions currently open (sessions whose client has not gone away).
    pub fn active_subscriptions(&self) -> usize {
        self.registry()
            .values()
            .map(|stream| stream.live_sessions())
            .sum()
    }

    /// Ends every subscription cleanly (graceful shutdown: their streams complete so clients
    /// resubscribe, as after a session's lifetime).
    pub fn end_all_subscriptions(&self) {
        for stream in self.registry().values() {
            stream.end_sessions(None, Ended::ServerStopping);
        }
    }

    /// Tells waiting subscriptions that the clock jumped (the testbed's AdvanceClock), so
    /// heartbeats and session lifetimes are re-checked at once instead of at the next timer.
    pub fn clock_moved(&self) {
        self.inner.clock_moved.send_modify(|moves| *moves += 1);
    }
}

/// A change a waiting session must look at besides new records: it was ended from outside
/// (or its registry entry dropped), its shard was closed, or the testbed's clock jumped.
/// Rare, so each waits in [`Subscription::signals`], which polls only the ones that were woken:
/// a session that wakes for every commit does not re-register them each time.
enum Signal {
    Ended(watch::Receiver<Option<Ended>>, bool),
    Closed(watch::Receiver<Option<crate::meta::ShardClosed>>, bool),
    ClockMoved(watch::Receiver<u64>, bool),
}

type SignalWait = Pin<Box<dyn Future<Output = Signal> + Send>>;

/// Waits for the next change of `receiver` and hands it back in its [`Signal`] variant, with
/// whether its sender is gone.
fn wait_for<T: Send + Sync + 'static>(
    mut receiver: watch::Receiver<T>,
    signal: fn(watch::Receiver<T>, bool) -> Signal,
) -> SignalWait {
    Box::pin(async move {
        let gone = receiver.changed().await.is_err();
        signal(receiver, gone)
    })
}

/// One SubscribeToShard session. Call [`Subscription::next_event`] until it returns `None`.
pub struct Subscription {
    store: Store,
    shard: Arc<Shard>,
    consumer_arn: String,
    /// The engine sequence number of the next record to deliver.
    position: u64,
    /// The shard's published position (see `Shard::published`).
    tip: watch::Receiver<u64>,
    /// Read at each turn; a clone of it waits in `signals`.
    ended: watch::Receiver<Option<Ended>>,
    end_gone: bool,
    /// The rare wake-ups (see [`Signal`]), re-armed after each fires.
    signals: FuturesUnordered<SignalWait>,
    /// The next heartbeat or the end of the session's lifetime, whichever is first. Kept across
    /// waits and moved only when it must fire sooner: firing early just means one more look.
    timer: Pin<Box<Sleep>>,
    started_ms: i64,
    last_event_ms: Option<i64>,
    bucket: Option<Bucket>,
    /// Shared with the session registry, for metrics.
    millis_behind: Arc<AtomicU64>,
    done: bool,
    /// Keeps the stream (and so the session registry) alive while the session runs.
    stream: Arc<Stream>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("consumer_arn", &self.consumer_arn)
            .field("shard", &self.shard.id)
            .field("position", &self.position)
            .field("started_ms", &self.started_ms)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// The next event: at once if records are waiting (or this is the first event), when new
    /// records are committed, or a heartbeat when none arrived for the heartbeat interval.
    /// `None` when the session is over (its lifetime passed, or the server is stopping); an
    /// error ends it too (taken over, consumer deregistered, stream deleted, storage failure).
    pub async fn next_event(&mut self) -> Option<Result<SubscribeEvent>> {
        let fan_out = self.store.inner.config.fan_out.clone();
        let lifetime_ms = fan_out.session_lifetime.as_millis() as i64;
        let heartbeat_ms = fan_out.heartbeat.as_millis() as i64;
        loop {
            if self.done {
                return None;
            }
            let ended = *self.ended.borrow();
            if let Some(why) = ended {
                self.done = true;
                return self.ending_error(why).map(Err);
            }
            if self.end_gone {
                self.done = true;
                return None;
            }
            let now = self.store.now_ms();
            let expires_ms = self.started_ms + lifetime_ms;
            if now >= expires_ms {
                self.done = true;
                return None;
            }
            let tip = *self.tip.borrow_and_update();
            if self.position < tip {
                if let Some(wait) = self.bucket.as_ref().and_then(Bucket::time_to_credit) {
                    // Shaped: wait for credit, but still notice an ending.
                    self.timer.as_mut().reset(Instant::now() + wait);
                    tokio::select! {
                        () = &mut self.timer => {}
                        Some(signal) = self.signals.next() => self.rearm(signal),
                    }
                    continue;
                }
                // An event takes no more than the credit left (at least one record).
                let max_bytes = match &self.bucket {
                    Some(bucket) => fan_out.event_max_bytes.min(bucket.available() as usize),
                    None => fan_out.event_max_bytes,
                };
                return Some(self.read_event(now, tip, max_bytes.max(1)).await);
            }
            if self.shard.ended_at(self.position) {
                // Every record of the closed shard was delivered: name its children and end.
                self.done = true;
                return Some(Ok(SubscribeEvent {
                    records: PushedRecords::default(),
                    continuation_sequence_number: None,
                    millis_behind_latest: 0,
                    child_shards: child_shards(&self.stream.topology(), self.shard.index),
                }));
            }
            let heartbeat_due = self.last_event_ms.map_or(now, |last| last + heartbeat_ms);
            if now >= heartbeat_due {
                self.last_event_ms = Some(now);
                return Some(Ok(self.event(PushedRecords::default(), 0)));
            }
            let wait = Duration::from_millis((heartbeat_due.min(expires_ms) - now) as u64);
            let deadline = Instant::now() + wait;
            if self.timer.is_elapsed() || self.timer.deadline() > deadline {
                self.timer.as_mut().reset(deadline);
            }
            tokio::select! {
                _ = self.tip.changed() => {}
                Some(signal) = self.signals.next() => self.rearm(signal),
                () = &mut self.timer => {}
            }
        }
    }

    /// Waits again for a signal that fired, unless its sender is gone: a gone session entry
    /// ends the session; a gone shard or store has nothing more to say.
    fn rearm(&mut self, signal: Signal) {
        match signal {
            Signal::Ended(_, true) => self.end_gone = true,
            Signal::Ended(receiver, false) => self.signals.push(wait_for(receiver, Signal::Ended)),
            Signal::Closed(receiver, false) => {
                self.signals.push(wait_for(receiver, Signal::Closed))
            }
            Signal::ClockMoved(receiver, false) => {
                self.signals.push(wait_for(receiver, Signal::ClockMoved))
            }
            Signal::Closed(_, true) | Signal::ClockMoved(_, true) => {}
        }
    }

    async fn read_event(&mut self, now: i64, tip: u64, max_bytes: usize) -> Result<SubscribeEvent> {
        // Shared records are never older than retention, as a read's are not.
        let retained_from = now - self.shard.log.retention().as_millis() as i64;
        let recent = self
            .shard
            .recent_read(self.position, max_bytes)
            .filter(|recent| {
                recent
                    .records
                    .first()
                    .is_none_or(|first| first.arrival_ms >= retained_from)
            });
        let (records, next, millis_behind) = match recent {
            // Another session just read the same records: share them.
            Some(recent) => (
                recent.records,
                recent.next,
                if recent.next >= tip {
                    0
                } else {
                    recent.millis_behind
                },
            ),
            None => self.read_log(tip, max_bytes).await?,
        };
        let bytes: usize = records
            .iter()
            .map(|record| record.data.len() + record.partition_key.len())
            .sum();
        if let Some(bucket) = &self.bucket {
            bucket.charge(bytes as u64);
        }
        let counters = &self.shard.counters;
        add(&counters.records_pushed, records.len() as u64);
        add(&counters.bytes_pushed, bytes as u64);
        self.millis_behind.store(millis_behind, Ordering::Relaxed);
        self.position = next;
        self.last_event_ms = Some(now);
        let mut event = self.event(records, millis_behind);
        if self.shard.ended_at(self.position) {
            // The last records of a closed shard: this is the final event.
            self.done = true;
            event.continuation_sequence_number = None;
            event.child_shards = child_shards(&self.stream.topology(), self.shard.index);
        }
        Ok(event)
    }

    /// Reads from the log at the session's position; a read that reaches the tip is kept for
    /// the shard's other sessions, which usually want exactly those records next.
    async fn read_log(&mut self, tip: u64, max_bytes: usize) -> Result<(PushedRecords, u64, u64)> {
        let from = self.position;
        let place = if tip - from <= INLINE_READ_RECORDS {
            crate::engine::Where::Inline
        } else {
            crate::engine::Where::BlockingPool
        };
        let outcome =
            crate::engine::read(&self.shard.log, from, MAX_GET_RECORDS, max_bytes, place).await?;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(error) => {
                self.done = true;
                tracing::error!(consumer = %self.consumer_arn, shard = %self.shard.id, %error, "subscription read failed");
                return Err(error.into());
            }
        };
        let bytes: usize = outcome.records.iter().map(Record::size).sum();
        let records = PushedRecords::new(records_out(self.shard.index, outcome.records));
        if outcome.next_sequence >= tip {
            self.shard.keep_recent_read(RecentRead {
                from,
                next: outcome.next_sequence,
                bytes,
                millis_behind: outcome.millis_behind_latest,
                records: records.clone(),
            });
        }
        Ok((records, outcome.next_sequence, outcome.millis_behind_latest))
    }

    fn event(&self, records: PushedRecords, millis_behind_latest: u64) -> SubscribeEvent {
        // The last record delivered (or the one before the position): resuming AFTER it
        // continues exactly here. After records, that is the last one's, already formatted.
        let before_position = || {
            SequenceNumber {
                shard_index: self.shard.index,
                engine_sequence: self.position.saturating_sub(1),
            }
            .to_string()
        };
        let continuation = match records.last() {
            Some(last) => {
                debug_assert_eq!(last.sequence_number, before_position());
                last.sequence_number.clone()
            }
            None => before_position(),
        };
        SubscribeEvent {
            records,
            continuation_sequence_number: Some(continuation),
            millis_behind_latest,
            child_shards: Vec::new(),
        }
    }

    fn ending_error(&self, why: Ended) -> Option<StreamsError> {
        let shard = &self.shard.id;
        let arn = &self.consumer_arn;
        match why {
            Ended::TakenOver => Some(StreamsError::ResourceInUse(format!(
                "A newer subscription of consumer {arn} to shard {shard} took over this one"
            ))),
            Ended::ConsumerDeregistered => Some(StreamsError::ResourceNotFound(format!(
                "Consumer {arn} was deregistered"
            ))),
            Ended::StreamDeleted => Some(StreamsError::ResourceNotFound(format!(
                "The stream of consumer {arn} was deleted"
            ))),
            Ended::ServerStopping => None,
        }
    }
}

#[cfg(test)]
#[path = "subscribe_tests.rs"]
mod tests;
