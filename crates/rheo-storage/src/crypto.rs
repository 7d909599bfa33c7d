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
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};
use crate::format::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seeded_crc};
use crate::io::Fs;

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

/// What a key file records besides the wrapped key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyFileInfo {
    pub(crate) base_seq: u64,
    pub(crate) key_id: String,
    pub(crate) version: u32,
    pub(crate) context: String,
}

// Key file layout (see FORMAT.md).
const KEY_MAGIC: [u8; 8] = *b"RHEOKEY\0";
const KEY_FORMAT_VERSION: u16 = 1;
const KF_MAGIC: usize = 0;
const KF_VERSION: usize = KF_MAGIC + 8;
const KF_KEY_ID_LEN: usize = KF_VERSION + 2;
const KF_CONTEXT_LEN: usize = KF_KEY_ID_LEN + 2;
const KF_RESERVED: usize = KF_CONTEXT_LEN + 2;
const KF_BASE_SEQ: usize = KF_RESERVED + 2;
const KF_KEK_VERSION: usize = KF_BASE_SEQ + 8;
const KF_NONCE: usize = KF_KEK_VERSION + 4;
const KF_WRAPPED: usize = KF_NONCE + NONCE_LEN;
const KF_FIXED_LEN: usize = KF_WRAPPED + KEY_LEN + TAG_LEN;
const KF_CRC_LEN: usize = 4;

/// One segment's data key, ready to seal and open batches.
pub(crate) struct SegmentKey {
    cipher: LessSafeKey,
    pub(crate) key_id: String,
    /// The key-encryption key version its file is wrapped with (raised by a rewrap).
    pub(crate) version: AtomicU32,
    /// Made by this process: only such a key may seal new batches.
    pub(crate) fresh: bool,
}

impl fmt::Debug for SegmentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentKey")
            .field("key_id", &self.key_id)
            .field("version", &self.version)
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

/// What a key file's wrapping binds: the file's segment, log, key and version.
fn wrap_aad(info: &KeyFileInfo) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + info.context.len() + info.key_id.len());
    aad.extend_from_slice(b"RHEOKEY1");
    aad.extend_from_slice(&info.base_seq.to_le_bytes());
    aad.extend_from_slice(&info.version.to_le_bytes());
    aad.extend_from_slice(&(info.context.len() as u32).to_le_bytes());
    aad.extend_from_slice(info.context.as_bytes());
    aad.extend_from_slice(info.key_id.as_bytes());
    aad
}

/// Encodes a key file holding `data_key` wrapped by `kek`.
fn encode_key_file(info: &KeyFileInfo, data_key: &[u8; KEY_LEN], kek: &KeyMaterial) -> Vec<u8> {
    let nonce: [u8; NONCE_LEN] = random();
    let mut wrapped = data_key.to_vec();
    let tag = aead_key(&kek.0)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(wrap_aad(info)),
            &mut wrapped,
        )
        .expect("sealing 32 bytes cannot fail");
    let mut file = vec![0u8; KF_FIXED_LEN];
    file[KF_MAGIC..KF_MAGIC + 8].copy_from_slice(&KEY_MAGIC);
    put_u16(&mut file, KF_VERSION, KEY_FORMAT_VERSION);
    put_u16(&mut file, KF_KEY_ID_LEN, info.key_id.len() as u16);
    put_u16(&mut file, KF_CONTEXT_LEN, info.context.len() as u16);
    put_u64(&mut file, KF_BASE_SEQ, info.base_seq);
    put_u32(&mut file, KF_KEK_VERSION, info.version);
    file[KF_NONCE..KF_WRAPPED].copy_from_slice(&nonce);
    file[KF_WRAPPED..KF_WRAPPED + KEY_LEN].copy_from_slice(&wrapped);
    file[KF_WRAPPED + KEY_LEN..KF_FIXED_LEN].copy_from_slice(tag.as_ref());
    file.extend_from_slice(info.key_id.as_bytes());
    file.extend_from_slice(info.context.as_bytes());
    let crc = seeded_crc(info.base_seq, &file);
    file.extend_from_slice(&crc.to_le_bytes());
    file
}

/// A parsed, checksummed key file (not yet unwrapped).
#[derive(Debug, Clone)]
pub(crate) struct KeyFile {
    pub(crate) info: KeyFileInfo,
    nonce: [u8; NONCE_LEN],
    wrapped: [u8; KEY_LEN + TAG_LEN],
}

impl KeyFile {
    /// Parses and checks a key file; the error says which check failed.
    pub(crate) fn decode(bytes: &[u8]) -> Result<KeyFile, String> {
        if bytes.len() < KF_FIXED_LEN + KF_CRC_LEN {
            return Err(format!("key file is only {} bytes", bytes.len()));
        }
        if bytes[KF_MAGIC..KF_MAGIC + 8] != KEY_MAGIC {
            return Err("bad magic in key file".into());
        }
        let base_seq = get_u64(bytes, KF_BASE_SEQ);
        let (body, crc) = bytes.split_at(bytes.len() - KF_CRC_LEN);
        if get_u32(crc, 0) != seeded_crc(base_seq, body) {
            return Err("key file checksum mismatch".into());
        }
        let version = get_u16(bytes, KF_VERSION);
        if version != KEY_FORMAT_VERSION {
            return Err(format!(
                "unsupported key file version {version} (this build reads {KEY_FORMAT_VERSION})"
            ));
        }
        let key_id_len = usize::from(get_u16(bytes, KF_KEY_ID_LEN));
        let context_len = usize::from(get_u16(bytes, KF_CONTEXT_LEN));
        if body.len() != KF_FIXED_LEN + key_id_len + context_len {
            return Err("key file length does not match its header".into());
        }
        let text = |from: usize, len: usize| {
            String::from_utf8(body[from..from + len].to_vec())
                .map_err(|_| "key file names are not UTF-8".to_string())
        };
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[KF_NONCE..KF_WRAPPED]);
        let mut wrapped = [0u8; KEY_LEN + TAG_LEN];
        wrapped.copy_from_slice(&bytes[KF_WRAPPED..KF_FIXED_LEN]);
        Ok(KeyFile {
            info: KeyFileInfo {
                base_seq,
                key_id: text(KF_FIXED_LEN, key_id_len)?,
                version: get_u32(bytes, KF_KEK_VERSION),
                context: text(KF_FIXED_LEN + key_id_len, context_len)?,
            },
            nonce,
            wrapped,
        })
    }

    /// The data key, unwrapped with `kek`.
    fn unwrap(&self, kek: &KeyMaterial) -> Result<[u8; KEY_LEN], KeyFault> {
        let mut in_out = self.wrapped;
        let opened = aead_key(&kek.0)
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(wrap_aad(&self.info)),
                &mut in_out,
            )
            .map_err(|_| KeyFault::WrongKey {
                key_id: self.info.key_id.clone(),
                version: self.info.version,
            })?;
        let mut key = [0u8; KEY_LEN];
        key.copy_from_slice(opened);
        Ok(key)
    }
}

fn key_error(path: &Path, fault: KeyFault) -> Error {
    Error::Key {
        path: path.to_path_buf(),
        fault,
    }
}

/// A fresh data key for a segment about to be created, wrapped but not yet written.
#[derive(Debug)]
pub(crate) struct PreparedKey {
    base_seq: u64,
    file: Vec<u8>,
    key: Arc<SegmentKey>,
}

/// Makes a fresh data key for segment `base_seq` under `key_id`'s current version. Only asks
/// the keyring: a refusal fails here, before anything is written.
pub(crate) fn prepare_key(
    dir: &Path,
    encryption: &Encryption,
    key_id: &str,
    base_seq: u64,
) -> Result<PreparedKey> {
    let (version, kek) = encryption
        .keys
        .current(key_id)
        .map_err(|fault| key_error(&dir.join(key_name(base_seq)), fault))?;
    let data_key: [u8; KEY_LEN] = random();
    let info = KeyFileInfo {
        base_seq,
        key_id: key_id.to_string(),
        version,
        context: encryption.context.clone(),
    };
    Ok(PreparedKey {
        base_seq,
        file: encode_key_file(&info, &data_key, &kek),
        key: Arc::new(SegmentKey {
            cipher: aead_key(&data_key),
            key_id: key_id.to_string(),
            version: AtomicU32::new(version),
            fresh: true,
        }),
    })
}

impl PreparedKey {
    /// Writes the key file atomically (its segment is created after it).
    pub(crate) fn write(self, fs: &dyn Fs, dir: &Path) -> Result<Arc<SegmentKey>> {
        crate::io::write_atomically(fs, dir, &key_name(self.base_seq), &self.file)?;
        Ok(self.key)
    }
}

/// Reads and checks a segment's key file (no keyring needed).
pub(crate) fn read_key_file(fs: &dyn Fs, path: &Path, base_seq: u64) -> Result<KeyFile> {
    let bytes = match crate::io::read_whole(fs, path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::corruption(
                path,
                0,
                "the segment is encrypted but its key file is missing",
            ));
        }
        Err(error) => return Err(Error::io("read", path, error)),
    };
    let file = KeyFile::decode(&bytes).map_err(|reason| Error::corruption(path, 0, reason))?;
    if file.info.base_seq != base_seq {
        return Err(Error::corruption(
            path,
            0,
            format!(
                "key file names segment {} but belongs to {base_seq}",
                file.info.base_seq
            ),
        ));
    }
    Ok(file)
}

/// Reads a segment's key file and unwraps its data key with the keyring.
pub(crate) fn load_key(
    fs: &dyn Fs,
    path: &Path,
    base_seq: u64,
    encryption: Option<&Encryption>,
) -> Result<Arc<SegmentKey>> {
    let file = read_key_file(fs, path, base_seq)?;
    let info = &file.info;
    let Some(encryption) = encryption else {
        return Err(key_error(path, KeyFault::NotFound(info.key_id.clone())));
    };
    if info.context != encryption.context {
        return Err(Error::corruption(
            path,
            0,
            format!(
                "key file belongs to log {:?}, not {:?}",
                info.context, encryption.context
            ),
        ));
    }
    let kek = encryption
        .keys
        .version(&info.key_id, info.version)
        .map_err(|fault| key_error(path, fault))?;
    let data_key = file.unwrap(&kek).map_err(|fault| key_error(path, fault))?;
    Ok(Arc::new(SegmentKey {
        cipher: aead_key(&data_key),
        key_id: info.key_id.clone(),
        version: AtomicU32::new(info.version),
        fresh: false,
    }))
}

/// Rewraps a key file under the current version of its key-encryption key, if it is older.
/// The data key (and so every batch) is unchanged. Returns the new version if the file was
/// rewritten.
pub(crate) fn rewrap(
    fs: &dyn Fs,
    dir: &Path,
    base_seq: u64,
    encryption: &Encryption,
) -> Result<Option<u32>> {
    let path = dir.join(key_name(base_seq));
    let file = read_key_file(fs, &path, base_seq)?;
    let (current, kek) = encryption
        .keys
        .current(&file.info.key_id)
        .map_err(|fault| key_error(&path, fault))?;
    if current <= file.info.version {
        return Ok(None);
    }
    let old = encryption
        .keys
        .version(&file.info.key_id, file.info.version)
        .map_err(|fault| key_error(&path, fault))?;
    let data_key = file.unwrap(&old).map_err(|fault| key_error(&path, fault))?;
    let info = KeyFileInfo {
        version: current,
        ..file.info
    };
    crate::io::write_atomically(
        fs,
        dir,
        &key_name(base_seq),
        &encode_key_file(&info, &data_key, &kek),
    )?;
    Ok(Some(current))
}

/// What a batch's sealing binds: its header fields (sequence range, timestamp, flags) and the
/// segment it belongs to. The data key binds the log.
fn batch_aad(segment_base: u64, base_seq: u64, timestamp_ms: i64, count: u32) -> [u8; 36] {
    let mut aad = [0u8; 36];
    aad[..4].copy_from_slice(b"RHB1");
    aad[4..12].copy_from_slice(&segment_base.to_le_bytes());
    aad[12..20].copy_from_slice(&base_seq.to_le_bytes());
    aad[20..28].copy_from_slice(&timestamp_ms.to_le_bytes());
    aad[28..32].copy_from_slice(&count.to_le_bytes());
    aad[32..36].copy_from_slice(&crate::format::BATCH_FLAG_ENCRYPTED.to_le_bytes());
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
                Aad::from(batch_aad(segment_base, base_seq, timestamp_ms, count)),
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
                Aad::from(batch_aad(segment_base, base_seq, timestamp_ms, count)),
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

    pub(crate) fn set_version(&self, version: u32) {
        if let Some(key) = &*crate::log::lock(&self.loaded) {
            key.version.store(version, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::TestKeys;

    #[test]
    fn key_files_round_trip_and_bind_their_segment_and_log() {
        let keys = TestKeys::with("k1");
        let (_, kek) = keys.current("k1").unwrap();
        let info = KeyFileInfo {
            base_seq: 7,
            key_id: "k1".into(),
            version: 1,
            context: "orders.1/shardId-000000000000".into(),
        };
        let data_key = [9u8; KEY_LEN];
        let bytes = encode_key_file(&info, &data_key, &kek);
        let file = KeyFile::decode(&bytes).unwrap();
        assert_eq!(file.info, info);
        assert_eq!(file.unwrap(&kek).unwrap(), data_key);
        // Another key's material does not open it.
        let other = KeyMaterial([1u8; KEY_LEN]);
        assert!(matches!(
            file.unwrap(&other),
            Err(KeyFault::WrongKey { .. })
        ));
        // A file relabelled for another log fails to unwrap even with a fixed-up checksum.
        let mut moved = file.clone();
        moved.info.context = "orders.1/shardId-000000000001".into();
        assert!(moved.unwrap(&kek).is_err());
        // A flipped byte is a checksum failure.
        let mut damaged = bytes.clone();
        damaged[KF_WRAPPED] ^= 1;
        assert!(
            KeyFile::decode(&damaged)
                .unwrap_err()
                .contains("checksum mismatch")
        );
    }

    #[test]
    fn sealed_batches_open_only_where_and_as_they_were_written() {
        let key = SegmentKey {
            cipher: aead_key(&[3u8; KEY_LEN]),
            key_id: "k".into(),
            version: AtomicU32::new(1),
            fresh: true,
        };
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
        let mut flipped = body.to_vec();
        flipped[2] ^= 0x40;
        assert_eq!(key.open(100, 105, 42, 3, &flipped), None, "tampered");
    }
}
