//! `ShardLog::open` after an unclean stop, with 1 GiB stored.
//!
//! The benchmark binary re-executes itself as a writer (`RHEO_BENCH_OPEN_WRITER` names the log
//! directory): the child appends batches of 100 records of 64 KiB with `Durability::None` and
//! the default 128 MiB segments until at least 1 GiB is stored and the active segment holds
//! 96 to 112 MiB (so recovery has a large unsynced tail to check), reports, keeps appending
//! small batches (4 records, every 2 ms), and 50 ms later is killed with SIGKILL. Then:
//! - the first open after the kill is timed once (noted, not a criterion benchmark);
//! - with `RHEO_BENCH_DROP_CACHES=1` (needs root), three opens are timed with a cold page
//!   cache: garbage appended to the newest segment, `sync`, `echo 3 > /proc/sys/vm/drop_caches`;
//! - `open-after-unclean-stop/1GiB` (criterion): before every open, 10,000 random bytes are
//!   appended to the newest segment (a torn tail, which the open truncates); only the open is
//!   timed. The page cache is warm, as after a process crash.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode};
use rheo_benches::{
    BatchData, KIB, MIB, Rng, append_garbage, bench_mode, note, open_log, scaled, scratch,
    segment_files,
};
use rheo_storage::io::StdFs;
use rheo_storage::{Durability, LogConfig, ShardLog, SystemClock};

const WRITER_DIR: &str = "RHEO_BENCH_OPEN_WRITER";
const WRITER_BYTES: &str = "RHEO_BENCH_OPEN_BYTES";
const WRITER_MIN_ACTIVE: &str = "RHEO_BENCH_OPEN_MIN_ACTIVE";
const GARBAGE_BYTES: usize = 10_000;

fn config() -> LogConfig {
    LogConfig {
        durability: Durability::None,
        ..LogConfig::default()
    }
}

fn open(dir: &Path) -> ShardLog {
    open_log(Arc::new(StdFs), dir, config(), Arc::new(SystemClock))
}

fn env_u64(name: &str) -> u64 {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set"))
        .parse()
        .unwrap_or_else(|error| panic!("{name}: {error}"))
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|error| panic!("stat {}: {error}", path.display()))
        .len()
}

/// The child: fills the log, reports, then appends small batches until killed.
fn writer(dir: &Path) {
    let target = env_u64(WRITER_BYTES);
    let min_active = env_u64(WRITER_MIN_ACTIVE);
    let log = open(dir);
    let big = BatchData::new("open-bench", 64 * KIB, 100);
    let records = big.records();
    loop {
        log.append(&records).expect("append");
        let newest = segment_files(dir).pop().expect("a segment");
        let active = file_len(&newest);
        // An upper bound too, so the small appends below cannot fill the segment and roll it.
        if log.stats().bytes >= target
            && (min_active..=min_active + 16 * MIB as u64).contains(&active)
        {
            break;
        }
    }
    let stats = log.stats();
    println!(
        "READY next_sequence={} bytes={} segments={}",
        stats.next_sequence, stats.bytes, stats.segments
    );
    let small = BatchData::new("open-bench", 64 * KIB, 4);
    let records = small.records();
    let started = Instant::now();
    // Killed long before this ends; the bound only keeps an orphan from running forever.
    while started.elapsed() < Duration::from_secs(60) {
        log.append(&records).expect("append");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kills the writer if the parent panics before it does.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the writer child and SIGKILLs it while it appends.
fn build_and_kill(dir: &Path, target: u64, min_active: u64) {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut child = Writer(
        Command::new(exe)
            .env(WRITER_DIR, dir)
            .env(WRITER_BYTES, target.to_string())
            .env(WRITER_MIN_ACTIVE, min_active.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the writer"),
    );
    let started = Instant::now();
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().expect("the writer's stdout"))
        .read_line(&mut line)
        .expect("read the writer's report");
    assert!(line.starts_with("READY"), "the writer said {line:?}");
    std::thread::sleep(Duration::from_millis(50));
    child.0.kill().expect("SIGKILL the writer");
    let status = child.0.wait().expect("reap the writer");
    note(&format!(
        "open-after-unclean-stop: writer built the log in {:.1} s, reported {}, then was killed ({status}) while appending",
        started.elapsed().as_secs_f64(),
        line.trim()
    ));
}

/// Writes dirty pages back and empties the page cache (needs root).
fn drop_caches() -> std::io::Result<()> {
    let status = Command::new("sync").status()?;
    if !status.success() {
        return Err(std::io::Error::other("sync failed"));
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3")
}

fn main() {
    if let Some(dir) = std::env::var_os(WRITER_DIR) {
        writer(Path::new(&dir));
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    let root = scratch("open");
    let dir = root.path().join("log");
    let target = scaled(1024 * MIB as u64, 16 * MIB as u64);
    let min_active = if bench_mode() { 96 * MIB as u64 } else { 0 };
    build_and_kill(&dir, target, min_active);

    // The first open after the kill: the real crash state.
    let newest = segment_files(&dir).pop().expect("a segment");
    let len_before = file_len(&newest);
    let started = Instant::now();
    let log = open(&dir);
    let first_open = started.elapsed();
    let stats = log.stats();
    drop(log);
    let newest_after = segment_files(&dir).pop().expect("a segment");
    note(&format!(
        "open-after-unclean-stop: first open after SIGKILL took {:.1} ms: {} segments, {} bytes, next sequence {}; newest segment {} bytes before the open, {} after",
        first_open.as_secs_f64() * 1e3,
        stats.segments,
        stats.bytes,
        stats.next_sequence,
        len_before,
        file_len(&newest_after)
    ));
    let expected_next = stats.next_sequence;
    let mut rng = Rng::new(7);

    if std::env::var_os("RHEO_BENCH_DROP_CACHES").is_some_and(|v| v == "1") {
        for round in 1..=3 {
            append_garbage(&newest_after, GARBAGE_BYTES, &mut rng);
            if let Err(error) = drop_caches() {
                note(&format!(
                    "open-after-unclean-stop: cannot drop the page cache ({error}); skipping cold opens"
                ));
                break;
            }
            let started = Instant::now();
            let log = open(&dir);
            let elapsed = started.elapsed();
            assert_eq!(log.tip().next_sequence, expected_next);
            note(&format!(
                "open-after-unclean-stop: cold-cache open {round} took {:.1} ms",
                elapsed.as_secs_f64() * 1e3
            ));
        }
    }

    let mut group = c.benchmark_group("open-after-unclean-stop");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sampling_mode(SamplingMode::Flat);
    let label = if bench_mode() { "1GiB" } else { "small" };
    group.bench_function(BenchmarkId::from_parameter(label), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                append_garbage(&newest_after, GARBAGE_BYTES, &mut rng);
                let started = Instant::now();
                let log = open(&dir);
                total += started.elapsed();
                assert_eq!(log.tip().next_sequence, expected_next);
                drop(log);
            }
            total
        });
    });
    group.finish();
    c.final_summary();
}
