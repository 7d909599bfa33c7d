//! The read path: positions (sequence, timestamp, trim horizon, tip), reads bounded by a record
//! count and a byte budget, and how far a reader is behind.
//!
//! Reads work on a snapshot [`View`] and take no lock the writer needs. Every batch a read
//! returns records from is checked against its checksum; a bad one is reported as corruption
//! and nothing past it is served.

use std::sync::atomic::Ordering;

use crate::batch::{self, ReadBudget, Record};
use crate::crypto::KeySlot;
use crate::error::{Error, Result};
use crate::format::{BatchHeader, FILE_HEADER_LEN};
use crate::log::{ShardLog, View, read_lock};
use crate::segment::{BatchReader, IndexView, Source, TimeLookup};
use bytes::Bytes;

/// Where to start reading, in the terms of Kinesis's shard iterator types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// The oldest record retention still shows.
    TrimHorizon,
    /// Just after the newest record: only records appended from now on.
    Latest,
    /// The record with this sequence number, or the first after it if it is gone.
    AtSequence(u64),
    /// The first record after this sequence number.
    AfterSequence(u64),
    /// The first record whose arrival timestamp is at or after this many ms since the epoch.
    AtTimestamp(i64),
}

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Records in sequence order.
    pub records: Vec<Record>,
    /// Where the next read should start.
    pub next_sequence: u64,
    /// How far behind the tip this read is: 0 when caught up, otherwise the age (by the
    /// engine's clock) of the oldest record not yet read.
    pub millis_behind_latest: u64,
}

/// The newest end of a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// Sequence number the next appended record will get.
    pub next_sequence: u64,
    /// Arrival timestamp of the newest record.
    pub last_timestamp_ms: i64,
}

/// A segment of a view, sealed or active, with what a reader needs of it.
struct SegmentRef<'a> {
    base_seq: u64,
    next_seq: u64,
    end: u64,
    source: &'a Source,
    path: &'a std::path::Path,
    sealed_index: Option<IndexView<'a>>,
    view: &'a View,
    key: Option<&'a KeySlot>,
}

impl SegmentRef<'_> {
    fn reader(&self) -> BatchReader<'_> {
        BatchReader::new(self.source, self.path, self.base_seq, self.end)
            .encrypted(self.key.is_some())
    }

    /// The records' body of a checked batch: decrypted if the segment is encrypted.
    fn plaintext(&self, position: u64, header: &BatchHeader, body: Bytes) -> Result<Bytes> {
        let Some(slot) = self.key else {
            return Ok(body);
        };
        let key = slot.get()?;
        key.open(
            self.base_seq,
            header.base_seq,
            header.timestamp_ms,
            header.count,
            &body,
        )
        .map(Bytes::from)
        .ok_or_else(|| {
            Error::corruption(
                self.path,
                position,
                "encrypted batch fails authentication: altered, or copied from another place",
            )
        })
    }

    fn position_for_seq(&self, seq: u64) -> u64 {
        let found = match &self.sealed_index {
            Some(index) => index.position_for_seq(seq),
            None => IndexView::Owned(&read_lock(&self.view.active.entries)).position_for_seq(seq),
        };
        found.unwrap_or(FILE_HEADER_LEN as u64)
    }

    fn lookup_timestamp(&self, timestamp_ms: i64) -> TimeLookup {
        match &self.sealed_index {
            Some(index) => index.lookup_timestamp(timestamp_ms),
            None => IndexView::Owned(&read_lock(&self.view.active.entries))
                .lookup_timestamp(timestamp_ms),
        }
    }

    fn is_empty(&self) -> bool {
        self.end <= FILE_HEADER_LEN as u64
    }
}

impl View {
    fn segments(&self) -> usize {
        self.sealed.len() + 1
    }

    fn segment(&self, index: usize) -> SegmentRef<'_> {
        match self.sealed.get(index) {
            Some(sealed) => SegmentRef {
                base_seq: sealed.base_seq,
                next_seq: sealed.next_seq,
                end: sealed.data_len,
                source: &sealed.source,
                path: &sealed.path,
                sealed_index: Some(sealed.index()),
                view: self,
                key: sealed.key.as_deref(),
            },
            None => SegmentRef {
                base_seq: self.active.base_seq,
                next_seq: self.next_seq,
                end: self.active_len,
                source: &self.active.source,
                path: &self.active.path,
                sealed_index: None,
                view: self,
                key: self.active.key.as_deref(),
            },
        }
    }

    /// The segment holding `seq` (the active one if `seq` is at or past its base).
    fn segment_index_for_seq(&self, seq: u64) -> usize {
        self.sealed
            .partition_point(|segment| segment.next_seq <= seq)
    }

    fn first_seq_on_disk(&self) -> u64 {
        self.sealed
            .first()
            .map_or(self.active.base_seq, |segment| segment.base_seq)
    }

    /// Sequence number of the first record with arrival timestamp >= `timestamp_ms`, or the tip.
    fn seq_for_timestamp(&self, timestamp_ms: i64) -> Result<u64> {
        let index = self
            .sealed
            .partition_point(|segment| segment.last_ts < timestamp_ms);
        for index in index..self.segments() {
            let segment = self.segment(index);
            if segment.is_empty() {
                continue;
            }
            let mut position = match segment.lookup_timestamp(timestamp_ms) {
                TimeLookup::Found(seq) => return Ok(seq),
                TimeLookup::WalkFrom(position) => position.unwrap_or(FILE_HEADER_LEN as u64),
            };
            let mut reader = segment.reader();
            while position < reader.end() {
                let header = reader.header(position)?;
                if header.timestamp_ms >= timestamp_ms {
                    return Ok(header.base_seq);
                }
                position += header.total_len();
            }
        }
        Ok(self.next_seq)
    }

    /// Arrival timestamp of the record `seq` (which must be below the tip).
    fn timestamp_of(&self, seq: u64) -> Result<i64> {
        let segment = self.segment(self.segment_index_for_seq(seq));
        let mut reader = segment.reader();
        let mut position = segment.position_for_seq(seq);
        while position < reader.end() {
            let header = reader.header(position)?;
            if header.next_seq() > seq {
                return Ok(header.timestamp_ms);
            }
            position += header.total_len();
        }
        Err(Error::corruption(
            segment.path,
            position,
            format!("sequence {seq} is not in the segment that should hold it"),
        ))
    }
}

impl ShardLog {
    /// The newest end of the log.
    pub fn tip(&self) -> Tip {
        let view = self.view();
        Tip {
            next_sequence: view.next_seq,
            last_timestamp_ms: view.last_ts,
        }
    }

    /// Sequence number of the oldest record reads may return. Exact: it is the first record
    /// whose arrival time is within retention, even inside a segment not yet deleted.
    pub fn trim_horizon(&self) -> Result<u64> {
        self.horizon(&self.view())
    }

    fn horizon(&self, view: &View) -> Result<u64> {
        let cutoff = self
            .clock
            .now_ms()
            .saturating_sub(self.retention().as_millis() as i64);
        let by_time = view.seq_for_timestamp(cutoff)?;
        let horizon = by_time
            .max(view.first_seq_on_disk())
            .max(self.horizon_floor.load(Ordering::SeqCst));
        self.horizon_floor.fetch_max(horizon, Ordering::SeqCst);
        Ok(horizon.min(view.next_seq))
    }

    /// Resolves a position to the sequence number a read should start from.
    pub fn seek(&self, position: Position) -> Result<u64> {
        let view = self.view();
        let horizon = self.horizon(&view)?;
        let seq = match position {
            Position::TrimHorizon => horizon,
            Position::Latest => view.next_seq,
            Position::AtSequence(seq) => self.check_in_range(&view, seq)?,
            Position::AfterSequence(seq) => {
                if seq >= view.next_seq {
                    return Err(beyond_tip(seq, view.next_seq));
                }
                seq + 1
            }
            Position::AtTimestamp(timestamp_ms) => view.seq_for_timestamp(timestamp_ms)?,
        };
        Ok(seq.max(horizon))
    }

    fn check_in_range(&self, view: &View, seq: u64) -> Result<u64> {
        if seq > view.next_seq {
            return Err(beyond_tip(seq, view.next_seq));
        }
        Ok(seq)
    }

    /// Reads up to `max_records` records (and about `max_bytes` of keys and data; at least one
    /// record if any is there) starting at sequence `from`. Records hidden by retention are
    /// skipped: a read never returns a record older than retention.
    pub fn read(&self, from: u64, max_records: usize, max_bytes: usize) -> Result<ReadOutcome> {
        let view = self.view();
        let from = self.check_in_range(&view, from)?;
        let mut seq = from.max(self.horizon(&view)?);
        let mut budget = ReadBudget::new(max_records, max_bytes);
        let mut records = Vec::new();
        if let Err(error) = read_into(&view, &mut seq, &mut budget, &mut records) {
            if matches!(error, Error::Corruption { .. }) {
                self.recorder
                    .corruptions
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if records.is_empty() {
                return Err(error);
            }
            // Serve what precedes the damage; the next read starts at it and gets the error.
            tracing::error!(dir = %self.dir.display(), %error, "read stopped at corruption");
        }
        let millis_behind_latest = if seq >= view.next_seq {
            0
        } else {
            let age = self.clock.now_ms().saturating_sub(view.timestamp_of(seq)?);
            age.max(0) as u64
        };
        Ok(ReadOutcome {
            records,
            next_sequence: seq,
            millis_behind_latest,
        })
    }
}

fn beyond_tip(seq: u64, next: u64) -> Error {
    Error::InvalidArgument(format!(
        "sequence number {seq} is beyond the tip of the log (next is {next})"
    ))
}

/// Reads from `*seq` into `out`, advancing `*seq` past every record taken.
fn read_into(
    view: &View,
    seq: &mut u64,
    budget: &mut ReadBudget,
    out: &mut Vec<Record>,
) -> Result<()> {
    while *seq < view.next_seq && !budget.exhausted() {
        let segment = view.segment(view.segment_index_for_seq(*seq));
        let mut reader = segment.reader().streaming();
        let mut position = segment.position_for_seq(*seq);
        let mut expected_base: Option<u64> = None;
        while position < reader.end() && !budget.exhausted() {
            let header = reader.header(position)?;
            if let Some(expected) = expected_base
                && header.base_seq != expected
            {
                return Err(Error::corruption(
                    segment.path,
                    position,
                    format!(
                        "batch starts at sequence {} where {expected} was expected",
                        header.base_seq
                    ),
                ));
            }
            if expected_base.is_none() && header.base_seq > *seq {
                return Err(Error::corruption(
                    segment.path,
                    position,
                    format!("index points past sequence {seq}"),
                ));
            }
            expected_base = Some(header.next_seq());
            if header.next_seq() > *seq {
                let (header, body) = reader.batch(position)?;
                let body = segment.plaintext(position, &header, body)?;
                *seq = batch::decode_into(&header, &body, *seq, budget, out)
                    .map_err(|reason| Error::corruption(segment.path, position, reason))?;
                if *seq < header.next_seq() {
                    return Ok(());
                }
            }
            position += header.total_len();
        }
        if position >= reader.end() && *seq < segment.next_seq {
            return Err(Error::corruption(
                segment.path,
                position,
                format!(
                    "segment ends at sequence {seq} but should hold records up to {}",
                    segment.next_seq
                ),
            ));
        }
    }
    Ok(())
}
