//! Routing: partition keys to 128-bit hash keys, and the hash-key ranges of new streams.

use md5::{Digest, Md5};

use crate::error::{Result, StreamsError};

/// MD5 of the UTF-8 partition key, read as a big-endian unsigned 128-bit integer.
pub fn hash_partition_key(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

/// Checks the shape of a hash key given by a client (`field` names it in the error): a decimal
/// `0|([1-9]\d{0,38})`. Whether it fits in 128 bits is a later, semantic check.
pub(crate) fn check_hash_key_shape(text: &str, field: &str) -> Result<()> {
    let well_formed = !text.is_empty()
        && text.len() <= 39
        && text.bytes().all(|byte| byte.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    if well_formed {
        return Ok(());
    }
    Err(StreamsError::Validation(format!(
        "1 validation error detected: Value '{text}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: 0|([1-9]\\d{{0,38}})"
    )))
}

/// Parses an ExplicitHashKey: a decimal `0|([1-9]\d{0,38})` in `[0, 2^128-1]`.
pub fn parse_explicit_hash_key(text: &str) -> Result<u128> {
    check_hash_key_shape(text, "explicitHashKey")?;
    text.parse::<u128>().map_err(|_| {
        StreamsError::InvalidArgument(format!(
            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
        ))
    })
}

/// The inclusive hash-key ranges of a new stream of `shards` shards: `floor(2^128 / n)` wide,
/// the last one ending at `2^128 - 1`.
pub fn initial_ranges(shards: u32) -> Vec<(u128, u128)> {
    debug_assert!(shards > 0);
    if shards <= 1 {
        return vec![(0, u128::MAX)];
    }
    let n = u128::from(shards);
    // floor(2^128 / n) without overflowing: (2^128 - 1) / n, plus one when n divides 2^128.
    let width = u128::MAX / n + u128::from((u128::MAX % n) == n - 1);
    (0..n)
        .map(|i| {
            let start = i * width;
            let end = if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * width - 1
            };
            (start, end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_routing_matches_kinesis() {
        assert_eq!(
            hash_partition_key("a"),
            16955237001963240173058271559858726497
        );
    }

    #[test]
    fn three_shards_split_the_space_as_kinesis_does() {
        let ranges = initial_ranges(3);
        assert_eq!(ranges[0], (0, 113427455640312821154458202477256070484));
        assert_eq!(
            ranges[1],
            (
                113427455640312821154458202477256070485,
                226854911280625642308916404954512140969
            )
        );
        assert_eq!(
            ranges[2],
            (226854911280625642308916404954512140970, u128::MAX)
        );
    }

    #[test]
    fn powers_of_two_divide_exactly() {
        assert_eq!(initial_ranges(1), vec![(0, u128::MAX)]);
        let two = initial_ranges(2);
        assert_eq!(two[0], (0, (1u128 << 127) - 1));
        assert_eq!(two[1], (1u128 << 127, u128::MAX));
        let ranges = initial_ranges(7);
        for pair in ranges.windows(2) {
            assert_eq!(pair[0].1 + 1, pair[1].0, "no gap, no overlap");
        }
    }

    #[test]
    fn explicit_hash_keys_are_checked() {
        assert_eq!(parse_explicit_hash_key("0"), Ok(0));
        assert_eq!(
            parse_explicit_hash_key(&u128::MAX.to_string()),
            Ok(u128::MAX)
        );
        let too_big = "340282366920938463463374607431768211456";
        assert!(
            matches!(parse_explicit_hash_key(too_big), Err(StreamsError::InvalidArgument(m)) if m.contains("[0, 2^128-1]"))
        );
        assert!(matches!(
            parse_explicit_hash_key("01"),
            Err(StreamsError::Validation(_))
        ));
        assert!(matches!(
            parse_explicit_hash_key("-1"),
            Err(StreamsError::Validation(_))
        ));
        assert!(matches!(
            parse_explicit_hash_key(""),
            Err(StreamsError::Validation(_))
        ));
    }
}
