//! Background work on every shard log: retention, age-based rolls, interval fsyncs, expiry of
//! closed shards; and syncing everything at shutdown.

use std::sync::Arc;

use rheo_storage::ShardLog;

use crate::error::Result;
use crate::meta;
use crate::store::{Shard, Store, Stream, Topology, blocking, lock, remove_shard_dirs};

impl Store {
    /// Every shard log of every stream.
    fn all_logs(&self) -> Vec<Arc<ShardLog>> {
        self.registry()
            .values()
            .flat_map(|stream| {
                stream
                    .topology()
                    .shards
                    .iter()
                    .map(|shard| shard.log.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Runs retention, age-based rolls and interval fsyncs on every shard log, expires closed
    /// shards whose data is all past retention, and takes up a changed keyring file (rewrapping
    /// data keys after a rotation). Call about once a second ([`Store::spawn_maintenance`]
    /// does).
    pub async fn maintain(&self) {
        let store = self.clone();
        let _ = blocking(move || {
            store.refresh_keyring();
            Ok(())
        })
        .await;
        let streams: Vec<Arc<Stream>> = self.registry().values().cloned().collect();
        for stream in streams {
            if let Err(error) = self.expire_shards(&stream).await {
                tracing::error!(stream = %stream.name, %error, "expiring shards failed");
            }
        }
        let logs = self.all_logs();
        let _ = blocking(move || {
            for log in logs {
                if let Err(error) = log.maintain() {
                    tracing::error!(dir = %log.dir().display(), %error, "maintenance failed");
                }
            }
            Ok(())
        })
        .await;
    }

    /// Closed shards whose newest record is past retention expire: they are marked in the
    /// metadata (no longer listed or readable), then their logs are deleted.
    async fn expire_shards(&self, stream: &Arc<Stream>) -> Result<()> {
        let retention_ms = i64::from(lock(&stream.meta).retention_hours) * 3_600_000;
        let now = self.now_ms();
        let due = |shard: &Shard| {
            shard
                .closed()
                .is_some_and(|closed| now - closed.closed_ms >= retention_ms)
        };
        if !stream.topology().shards.iter().any(|shard| due(shard)) {
            return Ok(());
        }
        let _control = self.inner.control.lock().await;
        let topology = stream.topology();
        let expired: Vec<u32> = topology
            .shards
            .iter()
            .filter(|shard| due(shard))
            .map(|shard| shard.index)
            .collect();
        let mut updated = lock(&stream.meta).clone();
        for shard in updated.shards.iter_mut() {
            shard.expired |= expired.contains(&shard.index);
        }
        let dir = stream.dir.clone();
        let to_write = updated.clone();
        blocking(move || meta::write(&dir, &to_write)).await?;
        *lock(&stream.meta) = updated;
        stream.set_topology(Topology::new(
            topology
                .shards
                .iter()
                .filter(|shard| !expired.contains(&shard.index))
                .cloned()
                .collect(),
        ));
        let dir = stream.dir.clone();
        blocking(move || {
            remove_shard_dirs(&dir, &expired)?;
            tracing::info!(stream = %dir.display(), shards = ?expired, "expired shards removed");
            Ok(())
        })
        .await
    }

    /// Starts a task that calls [`Store::maintain`] every second until the store is dropped.
    pub fn spawn_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Store { inner }.maintain().await;
            }
        })
    }

    /// Makes everything appended durable (for shutdown under relaxed durability).
    pub async fn sync_all(&self) -> Result<()> {
        let logs = self.all_logs();
        blocking(move || {
            for log in logs {
                log.sync()?;
            }
            Ok(())
        })
        .await
    }
}
