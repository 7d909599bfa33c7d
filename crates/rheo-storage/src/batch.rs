//! Records and their framing inside a batch body.
//!
//! An appended batch becomes one frame: a [`BatchHeader`] and a body of records. The body is
//! encoded and checksummed by the appending thread, outside every lock; the group-commit leader
//! only fills in the header (sequence number, timestamp) and combines the body's checksum with
//! the segment seed.

use bytes::Bytes;

use crate::config::{LogConfig, MAX_BATCH_BYTES, MAX_PARTITION_KEY_BYTES};
use crate::error::{Error, Result};
use crate::format::{
    BATCH_HEADER_LEN, BatchHeader, HASH_KEY_LEN, RECORD_FLAG_HASH_KEY, RECORD_HEAD_LEN,
    RH_DATA_LEN, RH_FLAGS, RH_KEY_LEN, get_u16, get_u32, put_u16, put_u32,
};

/// A record to append.
#[derive(Debug, Clone, Copy)]
pub struct RecordInput<'a> {
    /// The partition key's bytes (UTF-8 at the service level; opaque here). 1 to 1024 bytes.
    pub partition_key: &'a [u8],
    /// A hash key that overrides the partition key's hash, stored as given.
    pub explicit_hash_key: Option<u128>,
    /// The data blob.
    pub data: &'a [u8],
}

/// A stored record, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's sequence number in its log.
    pub sequence: u64,
    /// When the engine accepted the record, in milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The partition key.
    pub partition_key: Bytes,
    /// The explicit hash key, if the producer gave one.
    pub explicit_hash_key: Option<u128>,
    /// The data blob. Reads of sealed plaintext segments share the memory map: no copy is
    /// made.
    pub data: Bytes,
    /// The record was stored encrypted (and decrypted for this read).
    pub encrypted: bool,
}

impl Record {
    /// The bytes this record counts against read budgets: partition key plus data.
    pub fn size(&self) -> usize {
        self.partition_key.len() + self.data.len()
    }
}

/// A batch encoded by its appender: header space followed by the body, plus the body's
/// unseeded checksum state.
#[derive(Debug)]
pub(crate) struct EncodedBatch {
    pub(crate) frame: Vec<u8>,
    pub(crate) body_crc: crc32fast::Hasher,
    pub(crate) count: u32,
}

/// Validates and encodes `records`, naming the first offending record.
pub(crate) fn encode(records: &[RecordInput<'_>], config: &LogConfig) -> Result<EncodedBatch> {
    if records.is_empty() {
        return Err(Error::InvalidArgument(
            "a batch needs at least one record".into(),
        ));
    }
    let mut body_len = 0usize;
    for (index, record) in records.iter().enumerate() {
        if record.partition_key.is_empty() || record.partition_key.len() > MAX_PARTITION_KEY_BYTES {
            return Err(Error::InvalidArgument(format!(
                "record {index}: partition key must be 1..={MAX_PARTITION_KEY_BYTES} bytes, got {}",
                record.partition_key.len()
            )));
        }
        let size = record.partition_key.len() + record.data.len();
        if size > config.max_record_bytes {
            return Err(Error::InvalidArgument(format!(
                "record {index}: {size} bytes (partition key plus data) exceeds the maximum record size of {} bytes",
                config.max_record_bytes
            )));
        }
        body_len += RECORD_HEAD_LEN
            + size
            + if record.explicit_hash_key.is_some() {
                HASH_KEY_LEN
            } else {
                0
            };
    }
    if body_len > MAX_BATCH_BYTES {
        return Err(Error::InvalidArgument(format!(
            "batch body of {body_len} bytes exceeds the maximum of {MAX_BATCH_BYTES} bytes"
        )));
    }
    let count = u32::try_from(records.len())
        .map_err(|_| Error::InvalidArgument("too many records in one batch".into()))?;
    let mut frame = Vec::with_capacity(BATCH_HEADER_LEN + body_len);
    frame.resize(BATCH_HEADER_LEN, 0);
    for record in records {
        let mut head = [0u8; RECORD_HEAD_LEN];
        put_u32(&mut head, RH_DATA_LEN, record.data.len() as u32);
        put_u16(&mut head, RH_KEY_LEN, record.partition_key.len() as u16);
        if record.explicit_hash_key.is_some() {
            head[RH_FLAGS] = RECORD_FLAG_HASH_KEY;
        }
        frame.extend_from_slice(&head);
        if let Some(hash_key) = record.explicit_hash_key {
            frame.extend_from_slice(&hash_key.to_le_bytes());
        }
        frame.extend_from_slice(record.partition_key);
        frame.extend_from_slice(record.data);
    }
    debug_assert_eq!(frame.len(), BATCH_HEADER_LEN + body_len);
    let mut body_crc = crc32fast::Hasher::new();
    body_crc.update(&frame[BATCH_HEADER_LEN..]);
    Ok(EncodedBatch {
        frame,
        body_crc,
        count,
    })
}

/// Decodes the records of a checksummed body, appending those with `sequence >= from_seq` to
/// `out` until `max_records` are there or `max_bytes` would be exceeded (one record is always
/// taken when `out` is empty). Returns the sequence number after the last record taken, or an
/// error string if the body's structure is inconsistent with its header.
pub(crate) fn decode_into(
    header: &BatchHeader,
    body: &Bytes,
    from_seq: u64,
    budget: &mut ReadBudget,
    out: &mut Vec<Record>,
) -> Result<u64, String> {
    let mut at = 0usize;
    let mut seq = header.base_seq;
    for _ in 0..header.count {
        let head = body
            .get(at..at + RECORD_HEAD_LEN)
            .ok_or("record head runs past the batch body")?;
        let data_len = get_u32(head, RH_DATA_LEN) as usize;
        let key_len = usize::from(get_u16(head, RH_KEY_LEN));
        let flags = head[RH_FLAGS];
        if flags & !RECORD_FLAG_HASH_KEY != 0 {
            return Err("unknown record flags".into());
        }
        let hash_len = if flags & RECORD_FLAG_HASH_KEY != 0 {
            HASH_KEY_LEN
        } else {
            0
        };
        let key_at = at + RECORD_HEAD_LEN + hash_len;
        let data_at = key_at + key_len;
        let end = data_at + data_len;
        if end > body.len() {
            return Err("record runs past the batch body".into());
        }
        if seq >= from_seq {
            if !budget.admit(key_len + data_len) {
                return Ok(seq);
            }
            let explicit_hash_key = (hash_len != 0).then(|| {
                let mut bytes = [0u8; HASH_KEY_LEN];
                bytes.copy_from_slice(&body[at + RECORD_HEAD_LEN..key_at]);
                u128::from_le_bytes(bytes)
            });
            out.push(Record {
                sequence: seq,
                timestamp_ms: header.timestamp_ms,
                partition_key: body.slice(key_at..data_at),
                explicit_hash_key,
                data: body.slice(data_at..end),
                encrypted: header.encrypted(),
            });
        }
        at = end;
        seq += 1;
    }
    if at != body.len() {
        return Err("batch body is longer than its records".into());
    }
    Ok(seq)
}

/// Limits of one read: a record count and a byte budget. The first record is always admitted,
/// so a record larger than the byte budget cannot stall a reader.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadBudget {
    pub(crate) records_left: usize,
    pub(crate) bytes_left: usize,
    pub(crate) taken: usize,
}

impl ReadBudget {
    pub(crate) fn new(max_records: usize, max_bytes: usize) -> Self {
        ReadBudget {
            records_left: max_records,
            bytes_left: max_bytes,
            taken: 0,
        }
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.records_left == 0
    }

    fn admit(&mut self, size: usize) -> bool {
        if self.records_left == 0 || (size > self.bytes_left && self.taken > 0) {
            self.records_left = 0;
            return false;
        }
        self.records_left -= 1;
        self.bytes_left = self.bytes_left.saturating_sub(size);
        self.taken += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_for(batch: &EncodedBatch, base_seq: u64) -> BatchHeader {
        BatchHeader {
            body_crc: 0,
            body_len: (batch.frame.len() - BATCH_HEADER_LEN) as u32,
            base_seq,
            timestamp_ms: 99,
            count: batch.count,
            synced_len: 0,
            flags: 0,
        }
    }

    #[test]
    fn records_round_trip_with_and_without_hash_keys() {
        let records = [
            RecordInput {
                partition_key: b"a",
                explicit_hash_key: None,
                data: b"first",
            },
            RecordInput {
                partition_key: b"bb",
                explicit_hash_key: Some(u128::MAX - 3),
                data: b"",
            },
        ];
        let batch = encode(&records, &LogConfig::default()).unwrap();
        let header = header_for(&batch, 10);
        let body = Bytes::from(batch.frame[BATCH_HEADER_LEN..].to_vec());
        let mut out = Vec::new();
        let next = decode_into(
            &header,
            &body,
            0,
            &mut ReadBudget::new(10, 1 << 20),
            &mut out,
        );
        assert_eq!(next, Ok(12));
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].sequence, &out[0].data[..]), (10, &b"first"[..]));
        assert_eq!(out[1].explicit_hash_key, Some(u128::MAX - 3));
        assert_eq!(&out[1].partition_key[..], b"bb");

        let mut from_second = Vec::new();
        decode_into(
            &header,
            &body,
            11,
            &mut ReadBudget::new(10, 1 << 20),
            &mut from_second,
        )
        .unwrap();
        assert_eq!(from_second.len(), 1);
        assert_eq!(from_second[0].sequence, 11);
    }

    #[test]
    fn byte_budget_stops_before_the_record_that_overflows_it() {
        let data = [7u8; 100];
        let records = vec![
            RecordInput {
                partition_key: b"k",
                explicit_hash_key: None,
                data: &data,
            };
            5
        ];
        let batch = encode(&records, &LogConfig::default()).unwrap();
        let header = header_for(&batch, 0);
        let body = Bytes::from(batch.frame[BATCH_HEADER_LEN..].to_vec());
        let mut out = Vec::new();
        let next = decode_into(&header, &body, 0, &mut ReadBudget::new(10, 250), &mut out);
        assert_eq!((next, out.len()), (Ok(2), 2));
        let mut one = Vec::new();
        let next = decode_into(&header, &body, 0, &mut ReadBudget::new(10, 1), &mut one);
        assert_eq!(
            (next, one.len()),
            (Ok(1), 1),
            "the first record always fits"
        );
    }

    #[test]
    fn bad_input_is_refused_with_the_record_named() {
        let config = LogConfig {
            max_record_bytes: 10,
            ..LogConfig::default()
        };
        let too_big = RecordInput {
            partition_key: b"key",
            explicit_hash_key: None,
            data: b"12345678",
        };
        let error = encode(&[too_big], &config).unwrap_err().to_string();
        assert!(error.contains("record 0: 11 bytes"), "{error}");
        let empty_key = RecordInput {
            partition_key: b"",
            explicit_hash_key: None,
            data: b"",
        };
        assert!(encode(&[empty_key], &config).is_err());
        assert!(encode(&[], &config).is_err());
    }
}
