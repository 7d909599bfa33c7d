//! Opaque, tamper-proof tokens: shard iterators and pagination tokens.
//!
//! A token is `base64url(payload || HMAC-SHA256(key, payload)[..16])`. The key is 32 random
//! bytes kept in the data directory, so tokens survive a restart and cannot be forged or
//! altered without it. The payload carries the issue time, so expiry needs no server state.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Result, StreamsError};

/// The longest shard iterator Kinesis accepts, in characters.
pub(crate) const MAX_ITERATOR_CHARS: usize = 512;

const MAC_LEN: usize = 16;
const ITERATOR_VERSION: u8 = 1;
const NEXT_TOKEN_VERSION: u8 = 2;

/// The secret that signs tokens.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        TokenKey(bytes)
    }

    fn mac(&self, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(payload);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    fn seal(&self, payload: Vec<u8>) -> String {
        let mut bytes = payload;
        let mac = self.mac(&bytes);
        bytes.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn open(&self, token: &str) -> Option<Vec<u8>> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() < MAC_LEN + 1 {
            return None;
        }
        let (payload, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        // Constant-time comparison through the MAC crate.
        let mut check = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        check.update(payload);
        check.verify_truncated_left(mac).ok()?;
        Some(payload.to_vec())
    }

    /// Encodes a shard iterator.
    pub fn encode_iterator(&self, iterator: &ShardIterator) -> String {
        let mut payload = vec![ITERATOR_VERSION];
        payload.extend_from_slice(&iterator.incarnation.to_le_bytes());
        payload.extend_from_slice(&iterator.shard_index.to_le_bytes());
        payload.extend_from_slice(&iterator.position.to_le_bytes());
        payload.extend_from_slice(&iterator.issued_ms.to_le_bytes());
        payload.extend_from_slice(iterator.stream.as_bytes());
        self.seal(payload)
    }

    /// Decodes a shard iterator; a forged, altered or malformed one is InvalidArgument.
    pub fn decode_iterator(&self, token: &str) -> Result<ShardIterator> {
        let invalid = || StreamsError::InvalidArgument("Invalid ShardIterator.".to_string());
        if token.is_empty() || token.len() > MAX_ITERATOR_CHARS {
            return Err(invalid());
        }
        let payload = self.open(token).ok_or_else(invalid)?;
        if payload.len() < 29 || payload[0] != ITERATOR_VERSION {
            return Err(invalid());
        }
        let u64_at =
            |at: usize| u64::from_le_bytes(payload[at..at + 8].try_into().expect("8 bytes"));
        Ok(ShardIterator {
            incarnation: u64_at(1),
            shard_index: u32::from_le_bytes(payload[9..13].try_into().expect("4 bytes")),
            position: u64_at(13),
            issued_ms: u64_at(21) as i64,
            stream: String::from_utf8(payload[29..].to_vec()).map_err(|_| invalid())?,
        })
    }

    /// Encodes a pagination token: where to continue (`after`) in a listing of `scope`.
    pub fn encode_next_token(&self, scope: &str, after: &str, issued_ms: i64) -> String {
        let mut payload = vec![NEXT_TOKEN_VERSION];
        payload.extend_from_slice(&issued_ms.to_le_bytes());
        payload.extend_from_slice(&(scope.len() as u32).to_le_bytes());
        payload.extend_from_slice(scope.as_bytes());
        payload.extend_from_slice(after.as_bytes());
        self.seal(payload)
    }

    /// Decodes a pagination token into (scope, after, issued_ms).
    pub fn decode_next_token(&self, token: &str) -> Result<(String, String, i64)> {
        let invalid = || StreamsError::InvalidArgument(format!("Invalid NextToken: {token}"));
        let payload = self.open(token).ok_or_else(invalid)?;
        if payload.len() < 13 || payload[0] != NEXT_TOKEN_VERSION {
            return Err(invalid());
        }
        let issued = i64::from_le_bytes(payload[1..9].try_into().expect("8 bytes"));
        let scope_len = u32::from_le_bytes(payload[9..13].try_into().expect("4 bytes")) as usize;
        let rest = &payload[13..];
        if rest.len() < scope_len {
            return Err(invalid());
        }
        let scope = String::from_utf8(rest[..scope_len].to_vec()).map_err(|_| invalid())?;
        let after = String::from_utf8(rest[scope_len..].to_vec()).map_err(|_| invalid())?;
        Ok((scope, after, issued))
    }
}

/// What a shard iterator says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIterator {
    /// The stream's name.
    pub stream: String,
    /// Which incarnation of that name: a re-created stream has another.
    pub incarnation: u64,
    /// The shard.
    pub shard_index: u32,
    /// The engine sequence number the next read starts at.
    pub position: u64,
    /// When the iterator was issued, ms since the epoch (server clock).
    pub issued_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::from_bytes([7; 32])
    }

    #[test]
    fn iterators_round_trip_and_resist_tampering() {
        let iterator = ShardIterator {
            stream: "orders".into(),
            incarnation: 99,
            shard_index: 3,
            position: 12345,
            issued_ms: 1_700_000_000_000,
        };
        let token = key().encode_iterator(&iterator);
        assert!(token.len() <= 512);
        assert_eq!(key().decode_iterator(&token), Ok(iterator.clone()));
        let other_key = TokenKey::from_bytes([8; 32]);
        assert!(matches!(
            other_key.decode_iterator(&token),
            Err(StreamsError::InvalidArgument(_))
        ));
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[14] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(bytes);
        assert!(
            key().decode_iterator(&altered).is_err(),
            "a changed position is detected"
        );
        assert!(key().decode_iterator("not a token").is_err());
        assert!(key().decode_iterator("").is_err());
    }

    #[test]
    fn next_tokens_round_trip() {
        let token = key().encode_next_token("orders", "shardId-000000000004", 42);
        assert_eq!(
            key().decode_next_token(&token),
            Ok(("orders".into(), "shardId-000000000004".into(), 42))
        );
        assert!(
            key().decode_iterator(&token).is_err(),
            "a next token is not an iterator"
        );
    }
}
