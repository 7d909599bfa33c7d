//! Every on-disk byte layout, mirroring `FORMAT.md`. Offsets are chained constants so a field
//! cannot silently overlap its neighbour. All integers are little-endian.
//!
//! Checksums are CRC-32 (IEEE, `crc32fast`) seeded with the segment's base sequence number, so
//! bytes left over from another segment can never validate in this one.

/// Format version written into every file header of a plaintext segment and every index.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Format version of an encrypted segment's header (its flags say so; see FORMAT.md).
pub(crate) const ENCRYPTED_FORMAT_VERSION: u16 = 2;
/// Segment header flag: the segment is encrypted and has a key file.
pub(crate) const SEGMENT_FLAG_ENCRYPTED: u32 = 1;
/// Batch header flag: the body is sealed with the segment's data key.
pub(crate) const BATCH_FLAG_ENCRYPTED: u32 = 1;

/// Magic at offset 0 of a segment (data) file.
pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"RHEOSEG\0";
/// Magic at offset 0 of an index file.
pub(crate) const INDEX_MAGIC: [u8; 8] = *b"RHEOIDX\0";

// File header, shared by segment and index files (40 bytes).
pub(crate) const FH_MAGIC: usize = 0;
pub(crate) const FH_VERSION: usize = FH_MAGIC + 8;
pub(crate) const FH_RESERVED: usize = FH_VERSION + 2;
pub(crate) const FH_BASE_SEQ: usize = FH_RESERVED + 6;
pub(crate) const FH_BASE_TS: usize = FH_BASE_SEQ + 8;
pub(crate) const FH_FLAGS: usize = FH_BASE_TS + 8;
pub(crate) const FH_CRC: usize = FH_FLAGS + 4;
pub(crate) const FILE_HEADER_LEN: usize = FH_CRC + 4;

// Batch header (48 bytes), followed by `body_len` bytes of records.
pub(crate) const BATCH_MAGIC: [u8; 4] = *b"RHB1";
pub(crate) const BH_MAGIC: usize = 0;
pub(crate) const BH_HEADER_CRC: usize = BH_MAGIC + 4;
pub(crate) const BH_BODY_CRC: usize = BH_HEADER_CRC + 4;
pub(crate) const BH_BODY_LEN: usize = BH_BODY_CRC + 4;
pub(crate) const BH_BASE_SEQ: usize = BH_BODY_LEN + 4;
pub(crate) const BH_TIMESTAMP: usize = BH_BASE_SEQ + 8;
pub(crate) const BH_COUNT: usize = BH_TIMESTAMP + 8;
pub(crate) const BH_FLAGS: usize = BH_COUNT + 4;
pub(crate) const BH_SYNCED_LEN: usize = BH_FLAGS + 4;
pub(crate) const BATCH_HEADER_LEN: usize = BH_SYNCED_LEN + 8;
/// The header checksum covers the header from here to its end.
pub(crate) const BH_CRC_COVERS_FROM: usize = BH_BODY_CRC;

// Record framing inside a batch body (8-byte head, then optional hash key, key, data).
pub(crate) const RH_DATA_LEN: usize = 0;
pub(crate) const RH_KEY_LEN: usize = RH_DATA_LEN + 4;
pub(crate) const RH_FLAGS: usize = RH_KEY_LEN + 2;
pub(crate) const RH_RESERVED: usize = RH_FLAGS + 1;
pub(crate) const RECORD_HEAD_LEN: usize = RH_RESERVED + 1;
pub(crate) const RECORD_FLAG_HASH_KEY: u8 = 1;
pub(crate) const HASH_KEY_LEN: usize = 16;

// Index entry (24 bytes).
pub(crate) const IE_SEQ: usize = 0;
pub(crate) const IE_TIMESTAMP: usize = IE_SEQ + 8;
pub(crate) const IE_POSITION: usize = IE_TIMESTAMP + 8;
pub(crate) const INDEX_ENTRY_LEN: usize = IE_POSITION + 8;

// Seal footer of a sealed index file (48 bytes).
pub(crate) const SEAL_MAGIC: [u8; 4] = *b"SEAL";
pub(crate) const SF_ENTRY_COUNT: usize = 0;
pub(crate) const SF_DATA_LEN: usize = SF_ENTRY_COUNT + 8;
pub(crate) const SF_NEXT_SEQ: usize = SF_DATA_LEN + 8;
pub(crate) const SF_FIRST_TS: usize = SF_NEXT_SEQ + 8;
pub(crate) const SF_LAST_TS: usize = SF_FIRST_TS + 8;
pub(crate) const SF_MAGIC: usize = SF_LAST_TS + 8;
pub(crate) const SF_CRC: usize = SF_MAGIC + 4;
pub(crate) const SEAL_FOOTER_LEN: usize = SF_CRC + 4;

pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([buf[at], buf[at + 1]])
}

pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut bytes = [0; 4];
    bytes.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(bytes)
}

pub(crate) fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(bytes)
}

pub(crate) fn get_i64(buf: &[u8], at: usize) -> i64 {
    get_u64(buf, at) as i64
}

pub(crate) fn put_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_u64(buf: &mut [u8], at: usize, value: u64) {
    buf[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

pub(crate) fn put_i64(buf: &mut [u8], at: usize, value: i64) {
    put_u64(buf, at, value as u64);
}

/// A CRC-32 hasher seeded with a segment's base sequence number.
pub(crate) fn seeded_hasher(segment_base: u64) -> crc32fast::Hasher {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&segment_base.to_le_bytes());
    hasher
}

/// CRC of `bytes` seeded with `segment_base`.
pub(crate) fn seeded_crc(segment_base: u64, bytes: &[u8]) -> u32 {
    let mut hasher = seeded_hasher(segment_base);
    hasher.update(bytes);
    hasher.finalize()
}

/// The header at the start of every segment and index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    /// Sequence number of the segment's first record (also its file name).
    pub(crate) base_seq: u64,
    /// The log's newest arrival timestamp when the segment was created, so timestamps stay
    /// monotonic across restarts even when every record has been deleted.
    pub(crate) base_ts: i64,
    /// An encrypted segment (version 2, flag set): its batches are sealed under the data key in
    /// its key file. Always false for index files.
    pub(crate) encrypted: bool,
}

impl FileHeader {
    pub(crate) fn encode(&self, magic: [u8; 8]) -> [u8; FILE_HEADER_LEN] {
        let mut buf = [0; FILE_HEADER_LEN];
        buf[FH_MAGIC..FH_MAGIC + 8].copy_from_slice(&magic);
        if self.encrypted {
            put_u16(&mut buf, FH_VERSION, ENCRYPTED_FORMAT_VERSION);
            put_u32(&mut buf, FH_FLAGS, SEGMENT_FLAG_ENCRYPTED);
        } else {
            put_u16(&mut buf, FH_VERSION, FORMAT_VERSION);
        }
        put_u64(&mut buf, FH_BASE_SEQ, self.base_seq);
        put_i64(&mut buf, FH_BASE_TS, self.base_ts);
        let crc = seeded_crc(self.base_seq, &buf[..FH_CRC]);
        put_u32(&mut buf, FH_CRC, crc);
        buf
    }

    /// Parses and checks a header; the error says which check failed.
    pub(crate) fn decode(buf: &[u8], magic: [u8; 8]) -> Result<FileHeader, String> {
        if buf.len() < FILE_HEADER_LEN {
            return Err(format!(
                "file header is {} bytes, expected {FILE_HEADER_LEN}",
                buf.len()
            ));
        }
        if buf[FH_MAGIC..FH_MAGIC + 8] != magic {
            return Err("bad magic in file header".to_string());
        }
        let mut header = FileHeader {
            base_seq: get_u64(buf, FH_BASE_SEQ),
            base_ts: get_i64(buf, FH_BASE_TS),
            encrypted: false,
        };
        if get_u32(buf, FH_CRC) != seeded_crc(header.base_seq, &buf[..FH_CRC]) {
            return Err("file header checksum mismatch".to_string());
        }
        let version = get_u16(buf, FH_VERSION);
        let flags = get_u32(buf, FH_FLAGS);
        match version {
            FORMAT_VERSION if flags == 0 => {}
            ENCRYPTED_FORMAT_VERSION
                if magic == SEGMENT_MAGIC && flags == SEGMENT_FLAG_ENCRYPTED =>
            {
                header.encrypted = true;
            }
            FORMAT_VERSION | ENCRYPTED_FORMAT_VERSION => {
                return Err(format!("unknown file header flags {flags:#x}"));
            }
            _ => {
                return Err(format!(
                    "unsupported format version {version} (this build reads {FORMAT_VERSION} and {ENCRYPTED_FORMAT_VERSION})"
                ));
            }
        }
        Ok(header)
    }
}

/// A batch header, as decoded from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) body_crc: u32,
    pub(crate) body_len: u32,
    pub(crate) base_seq: u64,
    pub(crate) timestamp_ms: i64,
    pub(crate) count: u32,
    /// Length of the segment file that was durable when this batch was written. Recovery uses it
    /// to tell a torn tail (nothing durable is lost) from corruption (a durable batch is bad).
    pub(crate) synced_len: u64,
    /// [`BATCH_FLAG_ENCRYPTED`] or zero.
    pub(crate) flags: u32,
}

impl BatchHeader {
    /// Total bytes the batch occupies on disk.
    pub(crate) fn total_len(&self) -> u64 {
        BATCH_HEADER_LEN as u64 + u64::from(self.body_len)
    }

    /// True if the body is sealed with the segment's data key.
    pub(crate) fn encrypted(&self) -> bool {
        self.flags & BATCH_FLAG_ENCRYPTED != 0
    }

    /// Sequence number one past the batch's last record.
    pub(crate) fn next_seq(&self) -> u64 {
        self.base_seq + u64::from(self.count)
    }

    pub(crate) fn encode(&self, segment_base: u64) -> [u8; BATCH_HEADER_LEN] {
        let mut buf = [0; BATCH_HEADER_LEN];
        buf[BH_MAGIC..BH_MAGIC + 4].copy_from_slice(&BATCH_MAGIC);
        put_u32(&mut buf, BH_BODY_CRC, self.body_crc);
        put_u32(&mut buf, BH_BODY_LEN, self.body_len);
        put_u64(&mut buf, BH_BASE_SEQ, self.base_seq);
        put_i64(&mut buf, BH_TIMESTAMP, self.timestamp_ms);
        put_u32(&mut buf, BH_COUNT, self.count);
        put_u32(&mut buf, BH_FLAGS, self.flags);
        put_u64(&mut buf, BH_SYNCED_LEN, self.synced_len);
        let crc = seeded_crc(segment_base, &buf[BH_CRC_COVERS_FROM..]);
        put_u32(&mut buf, BH_HEADER_CRC, crc);
        buf
    }

    /// Parses a header and checks its magic and checksum (not the body's).
    pub(crate) fn decode(buf: &[u8], segment_base: u64) -> Result<BatchHeader, String> {
        if buf.len() < BATCH_HEADER_LEN {
            return Err("batch header runs past the end of the file".to_string());
        }
        let buf = &buf[..BATCH_HEADER_LEN];
        if buf[BH_MAGIC..BH_MAGIC + 4] != BATCH_MAGIC {
            return Err("bad batch magic".to_string());
        }
        if get_u32(buf, BH_HEADER_CRC) != seeded_crc(segment_base, &buf[BH_CRC_COVERS_FROM..]) {
            return Err("batch header checksum mismatch".to_string());
        }
        let header = BatchHeader {
            body_crc: get_u32(buf, BH_BODY_CRC),
            body_len: get_u32(buf, BH_BODY_LEN),
            base_seq: get_u64(buf, BH_BASE_SEQ),
            timestamp_ms: get_i64(buf, BH_TIMESTAMP),
            count: get_u32(buf, BH_COUNT),
            synced_len: get_u64(buf, BH_SYNCED_LEN),
            flags: get_u32(buf, BH_FLAGS),
        };
        if header.count == 0 {
            return Err("batch holds no records".to_string());
        }
        if header.flags & !BATCH_FLAG_ENCRYPTED != 0 {
            return Err("unknown batch flags".to_string());
        }
        Ok(header)
    }
}

/// One sparse index entry: the batch starting at `position` holds `seq` and was written at
/// `timestamp_ms`. Entries are ordered by all three at once, because sequence numbers increase
/// and timestamps never decrease within a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub(crate) seq: u64,
    pub(crate) timestamp_ms: i64,
    pub(crate) position: u64,
}

impl IndexEntry {
    pub(crate) fn encode(&self) -> [u8; INDEX_ENTRY_LEN] {
        let mut buf = [0; INDEX_ENTRY_LEN];
        put_u64(&mut buf, IE_SEQ, self.seq);
        put_i64(&mut buf, IE_TIMESTAMP, self.timestamp_ms);
        put_u64(&mut buf, IE_POSITION, self.position);
        buf
    }

    pub(crate) fn decode(buf: &[u8]) -> IndexEntry {
        IndexEntry {
            seq: get_u64(buf, IE_SEQ),
            timestamp_ms: get_i64(buf, IE_TIMESTAMP),
            position: get_u64(buf, IE_POSITION),
        }
    }
}

/// What a sealed segment holds, as recorded in its index footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealFooter {
    pub(crate) entry_count: u64,
    pub(crate) data_len: u64,
    pub(crate) next_seq: u64,
    pub(crate) first_ts: i64,
    pub(crate) last_ts: i64,
}

impl SealFooter {
    /// Encodes the footer; `preceding` is the index file's header and entries, which the
    /// footer's checksum also covers.
    pub(crate) fn encode(&self, segment_base: u64, preceding: &[u8]) -> [u8; SEAL_FOOTER_LEN] {
        let mut buf = [0; SEAL_FOOTER_LEN];
        put_u64(&mut buf, SF_ENTRY_COUNT, self.entry_count);
        put_u64(&mut buf, SF_DATA_LEN, self.data_len);
        put_u64(&mut buf, SF_NEXT_SEQ, self.next_seq);
        put_i64(&mut buf, SF_FIRST_TS, self.first_ts);
        put_i64(&mut buf, SF_LAST_TS, self.last_ts);
        buf[SF_MAGIC..SF_MAGIC + 4].copy_from_slice(&SEAL_MAGIC);
        let mut hasher = seeded_hasher(segment_base);
        hasher.update(preceding);
        hasher.update(&buf[..SF_CRC]);
        put_u32(&mut buf, SF_CRC, hasher.finalize());
        buf
    }

    /// Decodes the footer at the end of a whole sealed index file and checks its checksum.
    pub(crate) fn decode(file: &[u8], segment_base: u64) -> Result<SealFooter, String> {
        if file.len() < FILE_HEADER_LEN + SEAL_FOOTER_LEN
            || !(file.len() - FILE_HEADER_LEN - SEAL_FOOTER_LEN).is_multiple_of(INDEX_ENTRY_LEN)
        {
            return Err("index file has no seal footer".to_string());
        }
        let footer_at = file.len() - SEAL_FOOTER_LEN;
        let buf = &file[footer_at..];
        if buf[SF_MAGIC..SF_MAGIC + 4] != SEAL_MAGIC {
            return Err("index file has no seal footer".to_string());
        }
        let mut hasher = seeded_hasher(segment_base);
        hasher.update(&file[..footer_at + SF_CRC]);
        if get_u32(buf, SF_CRC) != hasher.finalize() {
            return Err("seal footer checksum mismatch".to_string());
        }
        let footer = SealFooter {
            entry_count: get_u64(buf, SF_ENTRY_COUNT),
            data_len: get_u64(buf, SF_DATA_LEN),
            next_seq: get_u64(buf, SF_NEXT_SEQ),
            first_ts: get_i64(buf, SF_FIRST_TS),
            last_ts: get_i64(buf, SF_LAST_TS),
        };
        if footer.entry_count != ((footer_at - FILE_HEADER_LEN) / INDEX_ENTRY_LEN) as u64 {
            return Err("seal footer entry count does not match the file".to_string());
        }
        Ok(footer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_have_the_documented_sizes() {
        assert_eq!(FILE_HEADER_LEN, 40);
        assert_eq!(BATCH_HEADER_LEN, 48);
        assert_eq!(RECORD_HEAD_LEN, 8);
        assert_eq!(INDEX_ENTRY_LEN, 24);
        assert_eq!(SEAL_FOOTER_LEN, 48);
    }

    #[test]
    fn file_header_round_trips_and_rejects_damage() {
        for encrypted in [false, true] {
            let header = FileHeader {
                base_seq: 42,
                base_ts: 1_700_000_000_000,
                encrypted,
            };
            let bytes = header.encode(SEGMENT_MAGIC);
            assert_eq!(FileHeader::decode(&bytes, SEGMENT_MAGIC), Ok(header));
            assert_eq!(
                get_u16(&bytes, FH_VERSION),
                if encrypted { 2 } else { 1 },
                "a plaintext segment keeps version 1, so earlier builds still read it"
            );
            assert!(FileHeader::decode(&bytes, INDEX_MAGIC).is_err());
            for at in 0..FILE_HEADER_LEN {
                let mut damaged = bytes;
                damaged[at] ^= 1;
                assert!(
                    FileHeader::decode(&damaged, SEGMENT_MAGIC).is_err(),
                    "byte {at}"
                );
            }
        }
    }

    #[test]
    fn batch_header_checksum_is_seeded_with_the_segment() {
        let header = BatchHeader {
            body_crc: 7,
            body_len: 100,
            base_seq: 10,
            timestamp_ms: 5,
            count: 3,
            synced_len: 40,
            flags: BATCH_FLAG_ENCRYPTED,
        };
        let bytes = header.encode(10);
        assert_eq!(BatchHeader::decode(&bytes, 10), Ok(header));
        assert!(
            BatchHeader::decode(&bytes, 0).is_err(),
            "stale bytes from another segment"
        );
        for at in 0..BATCH_HEADER_LEN {
            let mut damaged = bytes;
            damaged[at] ^= 0x80;
            assert!(BatchHeader::decode(&damaged, 10).is_err(), "byte {at}");
        }
    }

    #[test]
    fn seal_footer_covers_the_entries() {
        let mut file = FileHeader {
            base_seq: 0,
            base_ts: 0,
            encrypted: false,
        }
        .encode(INDEX_MAGIC)
        .to_vec();
        file.extend_from_slice(
            &IndexEntry {
                seq: 0,
                timestamp_ms: 1,
                position: 40,
            }
            .encode(),
        );
        let footer = SealFooter {
            entry_count: 1,
            data_len: 200,
            next_seq: 5,
            first_ts: 1,
            last_ts: 2,
        };
        let encoded = footer.encode(0, &file);
        file.extend_from_slice(&encoded);
        assert_eq!(SealFooter::decode(&file, 0), Ok(footer));
        file[FILE_HEADER_LEN + 3] ^= 1;
        assert!(SealFooter::decode(&file, 0).is_err());
    }
}
