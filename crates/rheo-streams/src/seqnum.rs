//! Kinesis sequence numbers: decimal strings made from the shard's index and the storage
//! engine's per-shard sequence number.
//!
//! `sequence = (shard_index + 1) * 2^64 + engine_sequence`. Within a shard they increase with
//! the engine's numbers; across shards they never collide; a shard created later (a higher
//! index, as resharding children get) has larger numbers than every earlier shard. They stay
//! stable across restarts because both parts are stored.

use crate::error::{Result, StreamsError};

/// A decoded sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SequenceNumber {
    /// The shard's index (`shardId-<index>`).
    pub shard_index: u32,
    /// The storage engine's sequence number within that shard.
    pub engine_sequence: u64,
}

impl SequenceNumber {
    /// The number as a 128-bit integer.
    pub fn value(&self) -> u128 {
        ((u128::from(self.shard_index) + 1) << 64) | u128::from(self.engine_sequence)
    }

    /// Checks the shape of a client's sequence number, `0|([1-9]\d{0,128})`; `field` names it
    /// in the error. Whether this server issued it is [`SequenceNumber::parse`]'s later check.
    pub fn check_shape(text: &str, field: &str) -> Result<()> {
        let well_formed = !text.is_empty()
            && text.len() <= 129
            && text.bytes().all(|byte| byte.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        if well_formed {
            return Ok(());
        }
        Err(StreamsError::Validation(format!(
            "1 validation error detected: Value '{text}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,128}})"
        )))
    }

    /// Parses a client's sequence number; `field` names it in the error.
    pub fn parse(text: &str, field: &str) -> Result<SequenceNumber> {
        Self::check_shape(text, field)?;
        let invalid = || {
            StreamsError::InvalidArgument(format!(
                "{field} {text} is not a sequence number this server issued"
            ))
        };
        let value: u128 = text.parse().map_err(|_| invalid())?;
        let high = value >> 64;
        if high == 0 || high > u128::from(u32::MAX) + 1 {
            return Err(invalid());
        }
        Ok(SequenceNumber {
            shard_index: (high - 1) as u32,
            engine_sequence: value as u64,
        })
    }
}

impl std::fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.value())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_orders_by_shard_then_sequence() {
        let a = SequenceNumber {
            shard_index: 0,
            engine_sequence: 5,
        };
        let b = SequenceNumber {
            shard_index: 0,
            engine_sequence: 6,
        };
        let child = SequenceNumber {
            shard_index: 1,
            engine_sequence: 0,
        };
        assert_eq!(a.to_string(), "18446744073709551621");
        assert_eq!(SequenceNumber::parse(&a.to_string(), "x"), Ok(a));
        assert!(a.value() < b.value() && b.value() < child.value());
        let max = SequenceNumber {
            shard_index: u32::MAX,
            engine_sequence: u64::MAX,
        };
        assert_eq!(SequenceNumber::parse(&max.to_string(), "x"), Ok(max));
    }

    #[test]
    fn foreign_numbers_are_rejected() {
        assert!(matches!(
            SequenceNumber::parse("12", "x"),
            Err(StreamsError::InvalidArgument(_))
        ));
        assert!(matches!(
            SequenceNumber::parse("abc", "x"),
            Err(StreamsError::Validation(_))
        ));
        assert!(matches!(
            SequenceNumber::parse(&"9".repeat(60), "x"),
            Err(StreamsError::InvalidArgument(_))
        ));
    }
}
