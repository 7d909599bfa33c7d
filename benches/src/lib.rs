//! Helpers shared by the benchmark targets under `benches/benches/`: scratch directories on the
//! project's disk, a file system that counts fdatasyncs, record batches, log builders and a
//! small deterministic random number generator.
//!
//! See `benches/README.md` for what each target measures and the figures measured.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rheo_storage::io::{FileIo, Fs, LockGuard, OpenMode, StdFs};
use rheo_storage::{Clock, LogConfig, ManualClock, RecordInput, ShardLog};

/// 1 KiB.
pub const KIB: usize = 1024;
/// 1 MiB.
pub const MIB: usize = 1024 * 1024;

/// True when the binary runs as a benchmark (`cargo bench` passes `--bench`). Under
/// `cargo test --benches` each benchmark runs once, as a smoke test, and the helpers below
/// build much smaller logs.
pub fn bench_mode() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

/// `full` when benchmarking, `full / 64` (at least `min`) in test mode.
pub fn scaled(full: u64, min: u64) -> u64 {
    if bench_mode() {
        full
    } else {
        (full / 64).max(min)
    }
}

/// The workspace's `target` directory: on the same disk as the project, unlike a tmpfs `/tmp`.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// A fresh scratch directory under `target/rheo-bench-scratch`, named after `label`, removed
/// when dropped.
pub fn scratch(label: &str) -> tempfile::TempDir {
    let base = target_dir().join("rheo-bench-scratch");
    std::fs::create_dir_all(&base).expect("create the scratch base directory");
    tempfile::Builder::new()
        .prefix(&format!("{label}-"))
        .tempdir_in(base)
        .expect("create a scratch directory")
}

/// Prints a line, prefixed with the UTC time of day, to stderr and appends it to
/// `target/rheo-bench/notes.log`: figures the benchmarks measure besides criterion's
/// (group-commit write sizes, open details).
pub fn note(line: &str) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let line = format!(
        "{:02}:{:02}:{:02} {line}",
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60
    );
    eprintln!("[rheo-bench] {line}");
    let dir = target_dir().join("rheo-bench");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("notes.log"))?;
        writeln!(file, "{line}")
    });
    if let Err(error) = written {
        eprintln!("[rheo-bench] could not write notes.log: {error}");
    }
}

/// A short label for a size in bytes: `100B`, `1KiB`, `64KiB`, `1MiB`.
pub fn size_label(bytes: usize) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{}KiB", bytes / KIB)
    } else {
        format!("{bytes}B")
    }
}

/// SplitMix64: a tiny, fast, deterministic generator, good enough for choosing seek targets and
/// filling buffers.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    pub fn range_i64(&mut self, low: i64, high: i64) -> i64 {
        let span = (high - low) as u64 + 1;
        low + (self.next_u64() % span) as i64
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// The payload of one appended batch: `count` records of `record_bytes` bytes of data each,
/// under one partition key. Byte figures in the benchmarks count data bytes only (the partition
/// key, a few bytes, and the engine's framing are not counted).
#[derive(Debug, Clone)]
pub struct BatchData {
    key: Vec<u8>,
    data: Vec<u8>,
    count: usize,
}

impl BatchData {
    /// A batch of `count` records of `record_bytes` random bytes under partition key `key`.
    pub fn new(key: &str, record_bytes: usize, count: usize) -> Self {
        let seed = key
            .bytes()
            .fold(7u64, |h, b| h.wrapping_mul(31) ^ u64::from(b));
        BatchData {
            key: key.as_bytes().to_vec(),
            data: Rng::new(seed).bytes(record_bytes),
            count,
        }
    }

    /// The batch as engine input (build it once, outside timed loops).
    pub fn records(&self) -> Vec<RecordInput<'_>> {
        (0..self.count)
            .map(|_| RecordInput {
                partition_key: &self.key,
                explicit_hash_key: None,
                data: &self.data,
            })
            .collect()
    }

    /// Data bytes in the batch.
    pub fn data_bytes(&self) -> u64 {
        (self.data.len() * self.count) as u64
    }

    /// Records in the batch.
    pub fn count(&self) -> usize {
        self.count
    }
}

/// Opens (or creates) a log on `fs` in `dir`, panicking on error.
pub fn open_log(fs: Arc<dyn Fs>, dir: &Path, config: LogConfig, clock: Arc<dyn Clock>) -> ShardLog {
    ShardLog::open(fs, dir, config, clock, 0)
        .unwrap_or_else(|error| panic!("open log in {}: {error}", dir.display()))
}

/// Appends `batch` to `log` until the log holds at least `data_bytes` of record data. If a
/// clock is given it is advanced 1 ms before every append, so every batch has its own arrival
/// timestamp. Returns the number of records appended.
pub fn fill_log(
    log: &ShardLog,
    batch: &BatchData,
    data_bytes: u64,
    clock: Option<&ManualClock>,
) -> u64 {
    let records = batch.records();
    let mut written = 0;
    let mut appended = 0;
    while written < data_bytes {
        if let Some(clock) = clock {
            clock.advance_ms(1);
        }
        log.append(&records).expect("append while building a log");
        written += batch.data_bytes();
        appended += batch.count() as u64;
    }
    appended
}

/// Segment files (`*.seg`) of the log in `dir`, oldest first.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the log directory")
        .map(|entry| entry.expect("read a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    files
}

/// Appends `len` random bytes to the end of `path`: a torn, never-acknowledged tail as an
/// unclean stop in the middle of a write leaves it.
pub fn append_garbage(path: &Path, len: usize, rng: &mut Rng) {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|error| panic!("open {} to append garbage: {error}", path.display()));
    file.write_all(&rng.bytes(len))
        .expect("append garbage to a segment");
}

/// Counters kept by [`CountingFs`].
#[derive(Debug, Default)]
struct Counters {
    segment_syncs: AtomicU64,
    segment_writes: AtomicU64,
    segment_bytes: AtomicU64,
    other_syncs: AtomicU64,
}

/// What [`CountingFs`] has counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounts {
    /// `sync_data` calls on segment (`.seg`) files: one per group commit under
    /// `Durability::Sync`, plus one per segment created or sealed.
    pub segment_syncs: u64,
    /// `write_all_at` calls on segment files: one per group commit, plus one per segment header.
    pub segment_writes: u64,
    /// Bytes written to segment files.
    pub segment_bytes: u64,
    /// `sync_data` calls on other files (sealed indexes written at a roll).
    pub other_syncs: u64,
}

impl IoCounts {
    /// The counts since `earlier`.
    pub fn since(self, earlier: IoCounts) -> IoCounts {
        IoCounts {
            segment_syncs: self.segment_syncs - earlier.segment_syncs,
            segment_writes: self.segment_writes - earlier.segment_writes,
            segment_bytes: self.segment_bytes - earlier.segment_bytes,
            other_syncs: self.other_syncs - earlier.other_syncs,
        }
    }

    /// Average bytes written to segment files per segment fdatasync: the size of the write
    /// group commit formed, under `Durability::Sync`.
    pub fn bytes_per_sync(&self) -> f64 {
        self.segment_bytes as f64 / self.segment_syncs.max(1) as f64
    }
}

/// The real file system ([`StdFs`]), counting fdatasyncs and writes on the way through.
#[derive(Debug, Clone, Default)]
pub struct CountingFs {
    /// `sync_data` calls on every file so far.
    pub syncs: Arc<AtomicU64>,
    /// Bytes written to every file so far.
    pub written: Arc<AtomicU64>,
    counters: Arc<Counters>,
}

impl CountingFs {
    /// A counting file system with every count at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn counts(&self) -> IoCounts {
        let c = &self.counters;
        IoCounts {
            segment_syncs: c.segment_syncs.load(Ordering::Relaxed),
            segment_writes: c.segment_writes.load(Ordering::Relaxed),
            segment_bytes: c.segment_bytes.load(Ordering::Relaxed),
            other_syncs: c.other_syncs.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct CountingFile {
    inner: Box<dyn FileIo>,
    fs: CountingFs,
    segment: bool,
}

impl FileIo for CountingFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let len = buf.len() as u64;
        self.fs.written.fetch_add(len, Ordering::Relaxed);
        if self.segment {
            let counters = &self.fs.counters;
            counters.segment_writes.fetch_add(1, Ordering::Relaxed);
            counters.segment_bytes.fetch_add(len, Ordering::Relaxed);
        }
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.fs.syncs.fetch_add(1, Ordering::Relaxed);
        let counters = &self.fs.counters;
        let counter = if self.segment {
            &counters.segment_syncs
        } else {
            &counters.other_syncs
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }

    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
}

impl Fs for CountingFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFs.list_dir(path)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileIo>> {
        Ok(Box::new(CountingFile {
            inner: StdFs.open(path, mode)?,
            fs: self.clone(),
            segment: path.extension().is_some_and(|ext| ext == "seg"),
        }))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFs.sync_dir(path)
    }

    fn map_sealed(&self, path: &Path) -> io::Result<bytes::Bytes> {
        StdFs.map_sealed(path)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        StdFs.lock(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_labels() {
        assert_eq!(size_label(100), "100B");
        assert_eq!(size_label(KIB), "1KiB");
        assert_eq!(size_label(64 * KIB), "64KiB");
        assert_eq!(size_label(MIB), "1MiB");
        assert_eq!(size_label(1536), "1536B");
    }

    #[test]
    fn rng_ranges_stay_in_bounds() {
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let x = rng.range_i64(-5, 5);
            assert!((-5..=5).contains(&x));
        }
        assert_eq!(rng.bytes(13).len(), 13);
    }

    #[test]
    fn counting_fs_counts_group_commits() {
        let dir = scratch("lib-test");
        let fs = CountingFs::new();
        let log = open_log(
            Arc::new(fs.clone()),
            &dir.path().join("log"),
            LogConfig::default(),
            Arc::new(rheo_storage::SystemClock),
        );
        let before = fs.counts();
        let batch = BatchData::new("k", 100, 10);
        log.append(&batch.records()).unwrap();
        log.append(&batch.records()).unwrap();
        let counts = fs.counts().since(before);
        assert_eq!(counts.segment_syncs, 2);
        assert_eq!(counts.segment_writes, 2);
        assert!(counts.segment_bytes > 2 * batch.data_bytes());
    }
}
