//! A stream's shards: each shard's place in the key space, lineage, log, limits and counters,
//! and the topology (all kept shards, the open ones by hash range) a reshard replaces whole.

use std::sync::{Arc, Mutex, RwLock};

use rheo_storage::ShardLog;

use crate::limits::ShardLimiter;
use crate::meta::ShardClosed;

/// One shard: its place in the key space, its lineage and its log.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) index: u32,
    pub(crate) id: String,
    pub(crate) starting_hash_key: u128,
    pub(crate) ending_hash_key: u128,
    /// For a child of a split or merge: the parent's index.
    pub(crate) parent: Option<u32>,
    /// For a child of a merge: the other parent's index.
    pub(crate) adjacent_parent: Option<u32>,
    /// When the stream or the reshard that made it created it, ms since the epoch.
    pub(crate) created_ms: i64,
    pub(crate) log: Arc<ShardLog>,
    /// Its throughput limits (one limiter is shared by every shard of an on-demand stream);
    /// replaced when the stream's mode changes.
    pub(crate) limiter: RwLock<Arc<ShardLimiter>>,
    /// Set once a reshard closed the shard; push sessions wait on it as on the log's tip.
    pub(crate) closed: tokio::sync::watch::Sender<Option<ShardClosed>>,
    /// Traffic, throttling and lag, for metrics.
    pub(crate) counters: crate::metrics::ShardCounters,
    /// The position push sessions deliver up to: raised once a put call that wrote here has its
    /// records durable on every shard it wrote to, so the call's records are announced on all
    /// of them at once (and a consumer's sessions on those shards send together).
    pub(crate) published: tokio::sync::watch::Sender<u64>,
    /// What `published` is computed from (see [`Shard::announce`]).
    pub(crate) announced: Mutex<Announced>,
    /// The newest push read that reached the tip, shared by caught-up sessions.
    pub(crate) recent_read: Mutex<Option<crate::subscribe::RecentRead>>,
}

/// A shard's announcements: the furthest end a finished put call announced, and the first
/// sequence of each call still waiting for its other shards (with how many calls hold there).
#[derive(Debug)]
pub(crate) struct Announced {
    pub(crate) end: u64,
    pub(crate) holds: std::collections::BTreeMap<u64, u32>,
}

impl Announced {
    fn hold(&mut self, first: u64) {
        *self.holds.entry(first).or_default() += 1;
    }

    /// Releases the hold at `held`, raises the announced end to `end`, and returns how far push
    /// sessions may now deliver: the announced end, but not past the first record still held.
    fn release(&mut self, held: Option<u64>, end: Option<u64>) -> u64 {
        if let Some(first) = held
            && let std::collections::btree_map::Entry::Occupied(mut entry) = self.holds.entry(first)
        {
            *entry.get_mut() -= 1;
            if *entry.get() == 0 {
                entry.remove();
            }
        }
        if let Some(end) = end {
            self.end = self.end.max(end);
        }
        match self.holds.first_key_value() {
            Some((&first_held, _)) => first_held.min(self.end),
            None => self.end,
        }
    }

    /// Nothing held; everything before `tip` announced.
    pub(crate) fn at(tip: u64) -> Mutex<Announced> {
        Mutex::new(Announced {
            end: tip,
            holds: Default::default(),
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Shard {
    pub(crate) fn limiter(&self) -> Arc<ShardLimiter> {
        self.limiter
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    pub(crate) fn set_limiter(&self, limiter: Arc<ShardLimiter>) {
        *self
            .limiter
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = limiter;
    }

    /// Holds back the records from `first` on: a put call's append here is durable, but the
    /// call's appends on other shards are not yet. Released by [`Shard::announce`].
    pub(crate) fn hold(&self, first: u64) {
        lock(&self.announced).hold(first);
    }

    /// A put call that wrote here is durable on every shard it wrote to: its records here end
    /// before `end` (if its append here succeeded) and its hold at `held` (if any) is released.
    /// Push sessions may then deliver up to the furthest end announced so far, but never into
    /// the records of a call still held: a call's records appear on all its shards together.
    pub(crate) fn announce(&self, held: Option<u64>, end: Option<u64>) {
        let mut announced = lock(&self.announced);
        let target = announced.release(held, end);
        // Under the lock, so two announcements never publish out of order.
        self.published.send_if_modified(|published| {
            let moved = target > *published;
            if moved {
                *published = target;
            }
            moved
        });
    }

    pub(crate) fn closed(&self) -> Option<ShardClosed> {
        *self.closed.borrow()
    }

    /// True when `position` is past the last record of a closed shard.
    pub(crate) fn ended_at(&self, position: u64) -> bool {
        self.closed().is_some() && position >= self.log.tip().next_sequence
    }
}

/// A stream's shards at one moment: replaced whole by a reshard.
#[derive(Debug, Default)]
pub(crate) struct Topology {
    /// Every shard not expired, by index.
    pub(crate) shards: Vec<Arc<Shard>>,
    /// The open shards, by hash-key range: together they cover the key space exactly.
    pub(crate) open: Vec<Arc<Shard>>,
}

impl Topology {
    pub(crate) fn new(mut shards: Vec<Arc<Shard>>) -> Topology {
        shards.sort_by_key(|shard| shard.index);
        let mut open: Vec<Arc<Shard>> = shards
            .iter()
            .filter(|shard| shard.closed().is_none())
            .cloned()
            .collect();
        open.sort_by_key(|shard| shard.starting_hash_key);
        Topology { shards, open }
    }

    /// The open shard whose hash-key range holds `hash`.
    pub(crate) fn route(&self, hash: u128) -> &Arc<Shard> {
        let at = self
            .open
            .partition_point(|shard| shard.ending_hash_key < hash);
        &self.open[at.min(self.open.len() - 1)]
    }

    pub(crate) fn shard(&self, shard_id: &str) -> Option<&Arc<Shard>> {
        self.shards.iter().find(|shard| shard.id == shard_id)
    }

    pub(crate) fn by_index(&self, index: u32) -> Option<&Arc<Shard>> {
        self.shards
            .binary_search_by_key(&index, |shard| shard.index)
            .ok()
            .map(|at| &self.shards[at])
    }

    /// The shards a reshard made from `index`.
    pub(crate) fn children_of(&self, index: u32) -> Vec<&Arc<Shard>> {
        self.shards
            .iter()
            .filter(|shard| shard.parent == Some(index) || shard.adjacent_parent == Some(index))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Announced;

    #[test]
    fn a_later_call_never_announces_a_held_call_s_records() {
        let mut announced = Announced::at(1).into_inner().unwrap();
        // Call A (two shards) is durable here at 1..11, its other shard not yet.
        announced.hold(1);
        // Call B (this shard only) at 11..15 is announced: nothing of A may show.
        assert_eq!(announced.release(None, Some(15)), 1);
        // A's other shard is durable: A and B show together.
        assert_eq!(announced.release(Some(1), Some(11)), 15);
        // A failed call announces nothing and moves nothing back.
        assert_eq!(announced.release(None, None), 15);
    }

    #[test]
    fn holds_at_the_same_position_are_counted() {
        let mut announced = Announced::at(5).into_inner().unwrap();
        announced.hold(5);
        announced.hold(5);
        assert_eq!(announced.release(Some(5), Some(9)), 5, "one hold is left");
        assert_eq!(announced.release(Some(5), Some(7)), 9);
    }
}
