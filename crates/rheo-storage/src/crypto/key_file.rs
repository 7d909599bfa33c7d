//! Key files (`N.key`): a segment's data key wrapped by a key-encryption key, and the steps
//! that make, read, unwrap and rewrap them. Layout in FORMAT.md, "Key file".

use std::path::Path;
use std::sync::Arc;

use ring::aead::{Aad, NONCE_LEN, Nonce};

use super::{
    Encryption, KEY_LEN, KeyFault, KeyMaterial, SegmentKey, TAG_LEN, aead_key, key_name, random,
};
use crate::error::{Error, Result};
use crate::format::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seeded_crc};
use crate::io::Fs;

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
            context: encryption.context.clone(),
            key_id: key_id.to_string(),
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
        context: info.context.clone(),
        key_id: info.key_id.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyProvider;
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
}
