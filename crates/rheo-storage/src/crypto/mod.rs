//! Encryption at rest: envelope encryption of segments.
//!
//! Each encrypted segment has its own 256-bit **data key**, made when the segment is created and
//! used only while that one process writes it (a restart or a key change starts a new segment).
//! The data key is stored only wrapped (AES-256-GCM) by a **key-encryption key** from the
//! operator's keyring, in the segment's key file `N.key`; batches are sealed with AES-256-GCM
//! under the data key. The keyring itself is not this crate's business: it reaches the engine
//! through [`KeyProvider`]. Byte layouts are in FORMAT.md, "Encryption at rest".
//!
//! Nonces: a batch's nonce is its base sequence number, which never repeats within one data
//! key's life (one segment, one process). Key-file wraps use random nonces (a key-encryption
//! key wraps one data key per segment: far below the 2^32 random-nonce bound).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::Result;
use crate::io::Fs;

mod key_file;

pub(crate) use key_file::{PreparedKey, load_key, prepare_key, read_key_file, rewrap};

/// Length of keys (data keys and key-encryption keys): AES-256.
pub const KEY_LEN: usize = 32;
/// Bytes an encrypted batch body grows by: the GCM tag.
pub(crate) const TAG_LEN: usize = 16;

/// Key files end in this.
pub(crate) const KEY_SUFFIX: &str = ".key";

/// `00000000000000000042.key`: the key file of segment 42.
pub(crate) fn key_name(base_seq: u64) -> String {
    format!("{base_seq:020}{KEY_SUFFIX}")
}

/// 256 bits of key material. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial(pub [u8; KEY_LEN]);

impl KeyMaterial {
    /// Fresh material from the operating system's random source.
    pub fn generate() -> KeyMaterial {
        KeyMaterial(random())
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(..)")
    }
}

/// Why a key-encryption key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFault {
    /// The keyring has no key with this id.
    #[error("key {0} is not in the keyring")]
    NotFound(String),
    /// The key exists but is disabled: it wraps no new data keys.
    #[error("key {0} is disabled")]
    Disabled(String),
    /// The keyring holds the key but not the version stored data was wrapped with.
    #[error("the keyring has no version {version} of key {key_id}")]
    VersionMissing {
        /// The key.
        key_id: String,
        /// The version the data needs.
        version: u32,
    },
    /// The keyring's material for this version does not open the wrapped data key: the keyring
    /// holds different material under that name, or the key file was altered.
    #[error(
        "version {version} of key {key_id} does not unwrap the data key (wrong key material, or the key file was altered)"
    )]
    WrongKey {
        /// The key.
        key_id: String,
        /// The version tried.
        version: u32,
    },
}

/// The operator's key-encryption keys, as the engine needs them.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The version and material new data keys of `key_id` are wrapped with.
    fn current(&self, key_id: &str) -> Result<(u32, KeyMaterial), KeyFault>;
    /// The material of one version of `key_id`, to unwrap data keys stored under it. A disabled
    /// key still unwraps (stored data stays readable).
    fn version(&self, key_id: &str, version: u32) -> Result<KeyMaterial, KeyFault>;
}

/// How a log encrypts: the keyring and what binds its key files to this log.
#[derive(Debug, Clone)]
pub struct Encryption {
    /// Where key-encryption keys come from.
    pub keys: Arc<dyn KeyProvider>,
    /// Names the log in every key file and in the data keys' wrapping (the service uses its
    /// journal key, `<stream>.<incarnation>/<shard>`): a key file moved to another log does not
    /// unwrap there.
    pub context: String,
    /// The key-encryption key new segments are encrypted under when the log opens (`None`:
    /// plaintext). [`crate::ShardLog::set_encryption_key`] changes it later.
    pub key_id: Option<String>,
}

/// One segment's data key, ready to seal and open batches.
pub(crate) struct SegmentKey {
    cipher: LessSafeKey,
    /// The log it belongs to (the key file's context), bound into every batch's sealing.
    pub(crate) context: String,
    pub(crate) key_id: String,
    /// Made by this process: only such a key may seal new batches.
    pub(crate) fresh: bool,
}

impl fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentKey")
            .field("key_id", &self.key_id)
            .field("fresh", &self.fresh)
            .finish_non_exhaustive()
    }
}

fn aead_key(bytes: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key"))
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source failed");
    bytes
}

/// What a batch's sealing binds: its header fields (sequence range, timestamp, flags), the
/// segment it belongs to and the log (stream and shard) whose context the key file names.
fn batch_aad(
    context: &str,
    segment_base: u64,
    base_seq: u64,
    timestamp_ms: i64,
    count: u32,
) -> Vec<u8> {
    let mut aad = Vec::with_capacity(40 + context.len());
    aad.extend_from_slice(b"RHB1");
    aad.extend_from_slice(&segment_base.to_le_bytes());
    aad.extend_from_slice(&base_seq.to_le_bytes());
    aad.extend_from_slice(&timestamp_ms.to_le_bytes());
    aad.extend_from_slice(&count.to_le_bytes());
    aad.extend_from_slice(&crate::format::BATCH_FLAG_ENCRYPTED.to_le_bytes());
    aad.extend_from_slice(&(context.len() as u32).to_le_bytes());
    aad.extend_from_slice(context.as_bytes());
    aad
}

fn batch_nonce(base_seq: u64) -> Nonce {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..8].copy_from_slice(&base_seq.to_le_bytes());
    Nonce::assume_unique_for_key(nonce)
}

impl SegmentKey {
    /// Encrypts a batch body in place and appends the tag.
    pub(crate) fn seal(
        &self,
        segment_base: u64,
        base_seq: u64,
        timestamp_ms: i64,
        count: u32,
        body: &mut Vec<u8>,
        body_at: usize,
    ) {
        debug_assert!(self.fresh, "only a key made by this process seals batches");
        let tag = self
            .cipher
            .seal_in_place_separate_tag(
                batch_nonce(base_seq),
                Aad::from(batch_aad(
                    &self.context,
                    segment_base,
                    base_seq,
                    timestamp_ms,
                    count,
                )),
                &mut body[body_at..],
            )
            .expect("a batch body is far below AES-GCM's length limit");
        body.extend_from_slice(tag.as_ref());
    }

    /// Decrypts a sealed body; `None` if it fails authentication.
    pub(crate) fn open(
        &self,
        segment_base: u64,
        base_seq: u64,
        timestamp_ms: i64,
        count: u32,
        sealed: &[u8],
    ) -> Option<Vec<u8>> {
        let mut in_out = sealed.to_vec();
        let len = self
            .cipher
            .open_in_place(
                batch_nonce(base_seq),
                Aad::from(batch_aad(
                    &self.context,
                    segment_base,
                    base_seq,
                    timestamp_ms,
                    count,
                )),
                &mut in_out,
            )
            .ok()?
            .len();
        in_out.truncate(len);
        Some(in_out)
    }
}

/// A sealed segment's data key, unwrapped on first use and kept; a failure is retried on the
/// next read (the operator may have fixed the keyring meanwhile).
#[derive(Debug)]
pub(crate) struct KeySlot {
    fs: Arc<dyn Fs>,
    pub(crate) path: PathBuf,
    pub(crate) base_seq: u64,
    encryption: Option<Encryption>,
    loaded: Mutex<Option<Arc<SegmentKey>>>,
}

impl KeySlot {
    pub(crate) fn new(
        fs: Arc<dyn Fs>,
        dir: &Path,
        base_seq: u64,
        encryption: Option<&Encryption>,
        loaded: Option<Arc<SegmentKey>>,
    ) -> KeySlot {
        KeySlot {
            fs,
            path: dir.join(key_name(base_seq)),
            base_seq,
            encryption: encryption.cloned(),
            loaded: Mutex::new(loaded),
        }
    }

    pub(crate) fn get(&self) -> Result<Arc<SegmentKey>> {
        let mut loaded = crate::log::lock(&self.loaded);
        if let Some(key) = &*loaded {
            return Ok(key.clone());
        }
        let key = load_key(
            &*self.fs,
            &self.path,
            self.base_seq,
            self.encryption.as_ref(),
        )?;
        *loaded = Some(key.clone());
        Ok(key)
    }

    /// The key, if it was loaded.
    pub(crate) fn loaded(&self) -> Option<Arc<SegmentKey>> {
        crate::log::lock(&self.loaded).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_batches_open_only_where_and_as_they_were_written() {
        let sealing = |context: &str| SegmentKey {
            cipher: aead_key(&[3u8; KEY_LEN]),
            context: context.into(),
            key_id: "k".into(),
            fresh: true,
        };
        let key = sealing("s.1/shardId-000000000000");
        let mut frame = b"headerplaintext records".to_vec();
        key.seal(100, 105, 42, 3, &mut frame, 6);
        assert_eq!(frame.len(), 23 + TAG_LEN);
        assert!(!frame.windows(9).any(|w| w == b"plaintext"));
        let body = &frame[6..];
        assert_eq!(
            key.open(100, 105, 42, 3, body).as_deref(),
            Some(&b"plaintext records"[..])
        );
        assert_eq!(key.open(101, 105, 42, 3, body), None, "another segment");
        assert_eq!(key.open(100, 106, 42, 3, body), None, "another sequence");
        assert_eq!(key.open(100, 105, 43, 3, body), None, "another timestamp");
        assert_eq!(key.open(100, 105, 42, 2, body), None, "another count");
        let other_shard = sealing("s.1/shardId-000000000001");
        assert_eq!(
            other_shard.open(100, 105, 42, 3, body),
            None,
            "another log, even under the same data key"
        );
        let mut flipped = body.to_vec();
        flipped[2] ^= 0x40;
        assert_eq!(key.open(100, 105, 42, 3, &flipped), None, "tampered");
    }
}
