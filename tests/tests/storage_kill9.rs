//! A real `kill -9` of a process that appends under load: every append it reported as
//! acknowledged must be there, intact, after reopening, and verify must find no corruption.
//!
//! The test re-runs its own binary as the child (selected by an environment variable), so the
//! child is the same code with no extra build target.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rheo_storage::io::StdFs;
use rheo_storage::{LogConfig, Position, RecordInput, ShardLog, SystemClock, verify_tree};

const CHILD_ENV: &str = "RHEO_KILL9_CHILD_DIR";
const THREADS: usize = 4;

fn config() -> LogConfig {
    LogConfig {
        segment_max_bytes: 256 * 1024,
        ..LogConfig::default()
    }
}

fn data_for(key: &str) -> Vec<u8> {
    let len = 64 + key.len() * 37 % 2000;
    key.bytes().cycle().take(len).collect()
}

/// The child: append from several threads until killed (or for at most 60 s), printing
/// `ACK <sequence> <key>` for each record once its append returned.
fn child(dir: &Path) {
    let log =
        Arc::new(ShardLog::open(Arc::new(StdFs), dir, config(), Arc::new(SystemClock), 0).unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let log = log.clone();
            scope.spawn(move || {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let keys: Vec<String> = (0..1 + i % 5)
                        .map(|r| format!("t{thread}-{i}-{r}"))
                        .collect();
                    let datas: Vec<Vec<u8>> = keys.iter().map(|key| data_for(key)).collect();
                    let records: Vec<RecordInput> = keys
                        .iter()
                        .zip(&datas)
                        .map(|(key, data)| RecordInput {
                            partition_key: key.as_bytes(),
                            explicit_hash_key: None,
                            data,
                        })
                        .collect();
                    let appended = log.append(&records).unwrap();
                    let mut lines = String::new();
                    for (index, key) in keys.iter().enumerate() {
                        lines.push_str(&format!("ACK {} {key}\n", appended.sequence(index as u32)));
                    }
                    // One write per batch so lines are never interleaved.
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(lines.as_bytes()).unwrap();
                    stdout.flush().unwrap();
                    i += 1;
                }
            });
        }
    });
}

#[test]
fn kill_9_under_load_loses_no_acknowledged_record() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut process = rheo_tests::spawn_self(
        "kill_9_under_load_loses_no_acknowledged_record",
        CHILD_ENV,
        dir.path(),
    );
    // SIGKILL mid-stream: appends are in flight in every thread.
    let acked: Vec<(u64, String)> =
        rheo_tests::acks_until_killed(&mut process, 3000, Duration::from_secs(20))
            .into_iter()
            .map(|line| {
                let (seq, key) = line.split_once(' ').unwrap();
                (seq.parse().unwrap(), key.to_string())
            })
            .collect();
    assert!(
        acked.len() >= 100,
        "the child acknowledged appends before the kill"
    );

    let report = verify_tree(&StdFs, dir.path()).unwrap();
    assert_eq!(report.corruptions(), 0, "{report:?}");
    let log = ShardLog::open(
        Arc::new(StdFs),
        dir.path(),
        config(),
        Arc::new(SystemClock),
        0,
    )
    .unwrap();
    let mut records = Vec::new();
    let mut from = log.seek(Position::TrimHorizon).unwrap();
    loop {
        let outcome = log.read(from, 10_000, 8 << 20).unwrap();
        if outcome.records.is_empty() {
            break;
        }
        from = outcome.next_sequence;
        records.extend(outcome.records);
    }
    for (index, record) in records.iter().enumerate() {
        assert_eq!(record.sequence, index as u64);
        let key = std::str::from_utf8(&record.partition_key).unwrap();
        assert_eq!(
            &record.data[..],
            &data_for(key)[..],
            "record {key} is intact"
        );
    }
    for (seq, key) in &acked {
        let record = records
            .get(*seq as usize)
            .unwrap_or_else(|| panic!("acknowledged record {seq} lost"));
        assert_eq!(std::str::from_utf8(&record.partition_key).unwrap(), key);
    }
}
