//! Group commit: appenders queue their encoded batches; one of them becomes the leader, writes
//! every waiting batch with one write and one fdatasync, and hands each waiter its result.
//!
//! Invariants:
//! - at most one leader at a time (`leader_active`);
//! - `leader_active == false` implies the queue is empty, so an appender that finds no leader
//!   leads a group that starts with its own batch;
//! - a leader that finishes with appends still queued passes leadership to the owner of the
//!   first of them (whose batch is then at the front of the next group) instead of serving
//!   them itself, so no caller waits for more than its own group and the one before it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::batch::EncodedBatch;
use crate::error::Result;

/// What an append got: its records' sequence numbers are `first_sequence..first_sequence+count`,
/// all stamped `timestamp_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Sequence number of the batch's first record.
    pub first_sequence: u64,
    /// How many records were appended.
    pub count: u32,
    /// Arrival timestamp given to every record of the batch, in ms since the Unix epoch.
    pub timestamp_ms: i64,
}

impl Appended {
    /// Sequence number of the `index`-th record of the batch.
    pub fn sequence(&self, index: u32) -> u64 {
        debug_assert!(index < self.count);
        self.first_sequence + u64::from(index)
    }
}

#[derive(Debug)]
enum SlotState {
    Waiting,
    Lead,
    Done(Result<Appended>),
}

/// A leadership token: whoever receives one must pass it to [`crate::ShardLog::lead`], which
/// writes the next group. Only the commit queue creates them.
#[derive(Debug)]
#[must_use = "a leader that does not lead stalls every queued append"]
pub struct LeaderTurn(());

impl LeaderTurn {
    /// The turn of a blocking appender that was told to lead.
    pub(crate) fn for_own_wait() -> Self {
        LeaderTurn(())
    }

    pub(crate) fn consume(self) {}
}

/// What an append submitted with a callback learns, in order: possibly `Lead` (write the next
/// group now, from a thread that may block), then always `Done`.
#[derive(Debug)]
pub enum Completion {
    /// The caller must lead the next group: pass the turn to [`crate::ShardLog::lead`].
    Lead(LeaderTurn),
    /// The append's result.
    Done(Result<Appended>),
}

/// Called (from whichever thread completes the group) with the append's [`Completion`]s.
pub type Callback = Box<dyn FnMut(Completion) + Send>;

/// Where a waiting appender learns its fate: a condition variable for a blocked thread, or a
/// callback for an asynchronous caller that holds no thread while it waits.
pub(crate) struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
    callback: Mutex<Option<Callback>>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

pub(crate) enum Wake {
    Lead,
    Done(Result<Appended>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Slot {
    fn new(callback: Option<Callback>) -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(SlotState::Waiting),
            ready: Condvar::new(),
            callback: Mutex::new(callback),
        })
    }

    fn set(&self, state: SlotState) {
        let mut callback = lock(&self.callback);
        if let Some(notify) = callback.as_mut() {
            match state {
                SlotState::Lead => notify(Completion::Lead(LeaderTurn(()))),
                SlotState::Done(result) => {
                    notify(Completion::Done(result));
                    // Done is the last call: drop the callback and what it holds.
                    callback.take();
                }
                SlotState::Waiting => {}
            }
            return;
        }
        drop(callback);
        *lock(&self.state) = state;
        self.ready.notify_one();
    }

    pub(crate) fn complete(&self, result: Result<Appended>) {
        self.set(SlotState::Done(result));
    }

    /// The result of an append whose group has been written (a leader's own).
    pub(crate) fn wait_done(&self) -> Result<Appended> {
        match self.wait() {
            Wake::Done(result) => result,
            Wake::Lead => unreachable!("a leader's own append is always in its own group"),
        }
    }

    fn wait(&self) -> Wake {
        let mut state = lock(&self.state);
        loop {
            match std::mem::replace(&mut *state, SlotState::Waiting) {
                SlotState::Waiting => {
                    state = self
                        .ready
                        .wait(state)
                        .unwrap_or_else(|poison| poison.into_inner());
                }
                SlotState::Lead => return Wake::Lead,
                SlotState::Done(result) => return Wake::Done(result),
            }
        }
    }
}

/// An append waiting to be written.
#[derive(Debug)]
pub(crate) struct PendingAppend {
    pub(crate) batch: EncodedBatch,
    pub(crate) slot: Arc<Slot>,
}

#[derive(Debug, Default)]
struct QueueState {
    pending: VecDeque<PendingAppend>,
    leader_active: bool,
    /// Set by [`CommitQueue::close`]: no append is queued any more.
    closed: bool,
}

/// The queue of appends waiting for a leader.
#[derive(Debug, Default)]
pub(crate) struct CommitQueue {
    state: Mutex<QueueState>,
    /// Signalled when the last queued group is done (for [`CommitQueue::close`]).
    idle: Condvar,
}

impl CommitQueue {
    /// Queues `batch` and blocks until either its result is known (`Done`) or the caller must
    /// lead the next group (`Lead`), in which case it must call [`CommitQueue::take_group`] and
    /// later [`CommitQueue::finish_group`].
    /// `None` if the queue is closed.
    pub(crate) fn enqueue(&self, batch: EncodedBatch) -> Option<(Arc<Slot>, Wake)> {
        let slot = Slot::new(None);
        let lead = {
            let mut state = lock(&self.state);
            if state.closed {
                return None;
            }
            state.pending.push_back(PendingAppend {
                batch,
                slot: slot.clone(),
            });
            !std::mem::replace(&mut state.leader_active, true)
        };
        if lead {
            return Some((slot, Wake::Lead));
        }
        let wake = slot.wait();
        Some((slot, wake))
    }

    /// Queues `batch` with a callback and returns at once: `Some(turn)` if the caller must lead
    /// the next group now (its own `Done` arrives through the callback while it leads).
    /// `Err(())` if the queue is closed (the callback is dropped uncalled).
    pub(crate) fn submit(
        &self,
        batch: EncodedBatch,
        callback: Callback,
    ) -> std::result::Result<Option<LeaderTurn>, ()> {
        let slot = Slot::new(Some(callback));
        let mut state = lock(&self.state);
        if state.closed {
            return Err(());
        }
        state.pending.push_back(PendingAppend { batch, slot });
        Ok((!std::mem::replace(&mut state.leader_active, true)).then_some(LeaderTurn(())))
    }

    /// Refuses every later append, then waits until the appends already queued are done.
    pub(crate) fn close(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        while state.leader_active || !state.pending.is_empty() {
            state = self
                .idle
                .wait(state)
                .unwrap_or_else(|poison| poison.into_inner());
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Accepts appends again after [`CommitQueue::close`].
    pub(crate) fn reopen(&self) {
        lock(&self.state).closed = false;
    }

    /// Takes the next group: the front append (the leader's own) and those behind it up to
    /// `max_bytes`.
    pub(crate) fn take_group(&self, max_bytes: usize) -> Vec<PendingAppend> {
        let mut state = lock(&self.state);
        let mut group = Vec::new();
        let mut bytes = 0;
        while let Some(front) = state.pending.front() {
            let size = front.batch.frame.len();
            if !group.is_empty() && bytes + size > max_bytes {
                break;
            }
            bytes += size;
            group.extend(state.pending.pop_front());
        }
        group
    }

    /// Ends the journal's turn on this queue: true if appends are still queued (the queue stays
    /// led and the journal commits them next), false if it is idle.
    pub(crate) fn finish_turn(&self) -> bool {
        let mut state = lock(&self.state);
        if state.pending.is_empty() {
            state.leader_active = false;
            self.idle.notify_all();
            return false;
        }
        true
    }

    /// Ends a leader's turn: passes leadership to the first queued append, if any.
    pub(crate) fn finish_group(&self) {
        let next = {
            let mut state = lock(&self.state);
            match state.pending.front() {
                Some(next) => Some(next.slot.clone()),
                None => {
                    state.leader_active = false;
                    self.idle.notify_all();
                    None
                }
            }
        };
        // Outside the queue lock: a callback may start the next leader on another thread.
        if let Some(slot) = next {
            slot.set(SlotState::Lead);
        }
    }
}
