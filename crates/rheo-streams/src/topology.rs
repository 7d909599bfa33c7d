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
    /// The newest push read that reached the tip, shared by caught-up sessions.
    pub(crate) recent_read: Mutex<Option<crate::subscribe::RecentRead>>,
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

    /// Announces every record durable in the log to push sessions (never moves back).
    pub(crate) fn publish(&self) {
        let tip = self.log.tip().next_sequence;
        self.published.send_if_modified(|published| {
            let moved = tip > *published;
            if moved {
                *published = tip;
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
