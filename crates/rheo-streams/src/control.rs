//! The control plane around streams: ListStreams, retention, tags, DescribeLimits, and the
//! durable metadata updates they share.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Result, StreamsError};
use crate::meta::{self, StreamMeta, StreamMode};
use crate::model::{Limits, StreamInfo, StreamPage};
use crate::store::{MAX_TAGS, Store, Stream, blocking, lock};

impl Store {
    /// ListStreams.
    pub fn list_streams(
        &self,
        limit: Option<i64>,
        exclusive_start: &str,
        next_token: &str,
    ) -> Result<StreamPage> {
        let limit = page_size(limit, "limit", 10_000, 100, 100)?;
        let after = if next_token.is_empty() {
            exclusive_start.to_string()
        } else {
            self.open_next_token(next_token, "")?
        };
        let streams = self.registry();
        let mut page: Vec<StreamInfo> = streams
            .range::<str, _>((
                std::ops::Bound::Excluded(after.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take(limit + 1)
            .map(|(_, stream)| self.info(stream))
            .collect();
        let has_more = page.len() > limit;
        page.truncate(limit);
        let next_token = has_more.then(|| {
            let last = &page.last().expect("a full page").name;
            self.inner.key.encode_next_token("", last, self.now_ms())
        });
        Ok(StreamPage {
            streams: page,
            has_more,
            next_token,
        })
    }

    /// IncreaseStreamRetentionPeriod (`increase`) or DecreaseStreamRetentionPeriod.
    pub async fn change_retention(&self, name: &str, hours: i64, increase: bool) -> Result<()> {
        let stream = self.stream(name)?;
        let current = lock(&stream.meta).retention_hours;
        let hours_u32 = self.check_retention_hours(hours)?;
        if increase && hours_u32 <= current {
            return Err(StreamsError::InvalidArgument(format!(
                "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
            )));
        }
        if !increase && hours_u32 >= current {
            return Err(StreamsError::InvalidArgument(format!(
                "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
            )));
        }
        self.update_meta(&stream, move |meta| {
            meta.retention_hours = hours_u32;
            Ok(())
        })
        .await?;
        for shard in &stream.topology().shards {
            shard
                .log
                .set_retention(std::time::Duration::from_secs(u64::from(hours_u32) * 3600))?;
        }
        Ok(())
    }

    /// Applies `change` to a copy of the stream's metadata, writes it durably, then publishes it.
    pub(crate) async fn update_meta(
        &self,
        stream: &Arc<Stream>,
        change: impl FnOnce(&mut StreamMeta) -> Result<()>,
    ) -> Result<()> {
        let _control = self.inner.control.lock().await;
        let mut updated = lock(&stream.meta).clone();
        change(&mut updated)?;
        let dir = stream.dir.clone();
        let to_write = updated.clone();
        blocking(move || meta::write(&dir, &to_write)).await?;
        *lock(&stream.meta) = updated;
        Ok(())
    }

    /// AddTagsToStream.
    pub async fn add_tags(&self, name: &str, tags: BTreeMap<String, String>) -> Result<()> {
        if tags.is_empty() {
            return Err(StreamsError::Validation(
                "1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length greater than or equal to 1".into(),
            ));
        }
        validate_tags(&tags)?;
        let stream = self.stream(name)?;
        self.update_meta(&stream, move |meta| {
            let mut merged = meta.tags.clone();
            merged.extend(tags);
            if merged.len() > MAX_TAGS {
                return Err(StreamsError::InvalidArgument(format!(
                    "Failed to add tags to stream {name}: a stream can have at most {MAX_TAGS} tags, this would make {}",
                    merged.len()
                )));
            }
            meta.tags = merged;
            Ok(())
        })
        .await
    }

    /// RemoveTagsFromStream; missing keys are ignored.
    pub async fn remove_tags(&self, name: &str, keys: Vec<String>) -> Result<()> {
        if keys.is_empty() || keys.len() > MAX_TAGS {
            return Err(StreamsError::Validation(format!(
                "1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: Member must have length between 1 and {MAX_TAGS}, got {}",
                keys.len()
            )));
        }
        let stream = self.stream(name)?;
        self.update_meta(&stream, move |meta| {
            for key in &keys {
                meta.tags.remove(key);
            }
            Ok(())
        })
        .await
    }

    /// ListTagsForStream: tags after `exclusive_start`, at most `limit` (1..=50, default 50).
    pub fn list_tags(
        &self,
        name: &str,
        exclusive_start: &str,
        limit: Option<i64>,
    ) -> Result<(Vec<(String, String)>, bool)> {
        let limit = page_size(limit, "limit", 50, 50, 50)?;
        let stream = self.stream(name)?;
        let meta = lock(&stream.meta);
        let mut tags: Vec<(String, String)> = meta
            .tags
            .iter()
            .filter(|(key, _)| exclusive_start.is_empty() || key.as_str() > exclusive_start)
            .take(limit + 1)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let more = tags.len() > limit;
        tags.truncate(limit);
        Ok((tags, more))
    }

    /// DescribeLimits.
    pub fn describe_limits(&self) -> Limits {
        let streams = self.registry();
        Limits {
            shard_limit: self.inner.config.shard_limit,
            open_shard_count: streams
                .values()
                .map(|stream| stream.topology().open.len() as u32)
                .sum(),
            on_demand_stream_count: streams
                .values()
                .filter(|stream| lock(&stream.meta).mode == StreamMode::OnDemand)
                .count() as u32,
            on_demand_stream_count_limit: self.inner.config.on_demand_stream_limit,
        }
    }
}

/// A page size from a request: `default` when absent, refused outside `1..=max_accepted`, and
/// at most `cap` in effect (Kinesis accepts some limits it never fills, such as ListStreams').
pub(crate) fn page_size(
    value: Option<i64>,
    field: &str,
    max_accepted: i64,
    default: usize,
    cap: usize,
) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(value) if (1..=max_accepted).contains(&value) => Ok((value as usize).min(cap)),
        Some(value) => Err(StreamsError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must have value between 1 and {max_accepted}"
        ))),
    }
}

pub(crate) fn validate_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    let allowed = |text: &str| {
        text.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_./=+-%@".contains(c))
    };
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 || !allowed(key) {
            return Err(StreamsError::InvalidArgument(format!(
                "Tag key '{key}' must be 1 to 128 Unicode letters, digits, white space or _ . / = + - % @"
            )));
        }
        if value.chars().count() > 256 || !allowed(value) {
            return Err(StreamsError::InvalidArgument(format!(
                "Tag value '{value}' of key '{key}' must be at most 256 Unicode letters, digits, white space or _ . / = + - % @"
            )));
        }
    }
    Ok(())
}
