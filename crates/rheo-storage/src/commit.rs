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

/// Where a waiting appender learns its fate.
#[derive(Debug)]
pub(crate) struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

pub(crate) enum Wake {
    Lead,
    Done(Result<Appended>),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Slot {
    fn new() -> Arc<Slot> {
        Arc::new(Slot {
            state: Mutex::new(SlotState::Waiting),
            ready: Condvar::new(),
        })
    }

    fn set(&self, state: SlotState) {
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
}

/// The queue of appends waiting for a leader.
#[derive(Debug, Default)]
pub(crate) struct CommitQueue {
    state: Mutex<QueueState>,
}

impl CommitQueue {
    /// Queues `batch` and blocks until either its result is known (`Done`) or the caller must
    /// lead the next group (`Lead`), in which case it must call [`CommitQueue::take_group`] and
    /// later [`CommitQueue::finish_group`].
    pub(crate) fn enqueue(&self, batch: EncodedBatch) -> (Arc<Slot>, Wake) {
        let slot = Slot::new();
        let lead = {
            let mut state = lock(&self.state);
            state.pending.push_back(PendingAppend {
                batch,
                slot: slot.clone(),
            });
            !std::mem::replace(&mut state.leader_active, true)
        };
        if lead {
            return (slot, Wake::Lead);
        }
        let wake = slot.wait();
        (slot, wake)
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

    /// Ends a leader's turn: passes leadership to the first queued append, if any.
    pub(crate) fn finish_group(&self) {
        let mut state = lock(&self.state);
        match state.pending.front() {
            Some(next) => next.slot.set(SlotState::Lead),
            None => state.leader_active = false,
        }
    }
}
