//! Model-based property test: random sequences of append, read, seek, reopen, roll, clock
//! moves, retention changes and maintenance against an in-memory model: a plain log on real
//! files, and a journaled log on the simulated file system, where journal checkpoints and
//! machine crashes (everything unsynced lost, then the journal replayed) join the mix.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::io::sim::{CrashMode, SimFs};
use crate::{Journal, JournalConfig, Position};

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        size: usize,
    },
    Read {
        from_permille: u64,
        max_records: usize,
        max_bytes: usize,
    },
    SeekTimestamp {
        back_ms: i64,
    },
    Reopen,
    Roll,
    Advance {
        ms: i64,
    },
    SetRetentionHours(u64),
    Maintain,
    /// Journaled: start a new journal file and wait for the old one's checkpoint.
    Checkpoint,
    /// Journaled: the machine dies (nothing unsynced survives) and the node restarts. A plain
    /// log reopens instead (its `None` policy may lose acknowledged records by design).
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..400).prop_map(|(records, size)| Op::Append { records, size }),
        4 => (0u64..=1000, 1usize..40, 1usize..3000)
            .prop_map(|(from_permille, max_records, max_bytes)| Op::Read { from_permille, max_records, max_bytes }),
        2 => (0i64..4 * 3_600_000).prop_map(|back_ms| Op::SeekTimestamp { back_ms }),
        1 => Just(Op::Reopen),
        1 => Just(Op::Roll),
        3 => (0i64..40 * 60_000).prop_map(|ms| Op::Advance { ms }),
        1 => (1u64..4).prop_map(Op::SetRetentionHours),
        1 => Just(Op::Maintain),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Crash),
    ]
}

#[derive(Debug, Clone)]
struct ModelRecord {
    ts: i64,
    key: Vec<u8>,
    data: Vec<u8>,
}

struct Model {
    records: Vec<ModelRecord>,
    retention_ms: i64,
    floor: u64,
}

impl Model {
    fn horizon(&mut self, now: i64, first_on_disk: u64) -> u64 {
        let cutoff = now - self.retention_ms;
        let by_time = self
            .records
            .iter()
            .position(|r| r.ts >= cutoff)
            .unwrap_or(self.records.len()) as u64;
        self.floor = self.floor.max(by_time).max(first_on_disk);
        self.floor.min(self.records.len() as u64)
    }
}

fn config() -> LogConfig {
    LogConfig {
        durability: crate::Durability::None,
        segment_max_bytes: 2048,
        segment_max_age: Duration::from_secs(1800),
        retention: Duration::from_secs(2 * 3600),
        index_interval_bytes: 200,
        ..small_config()
    }
}

/// What the model runs against: a plain log on real files, or a journaled one on the
/// simulated file system.
enum Place {
    Plain(tempfile::TempDir),
    Journaled(SimFs),
}

const NODE_JOURNAL: &str = "/node/journal";
const NODE_LOG: &str = "/node/shard";

/// The log under test, and its journal if it has one (fields drop in order: the log first,
/// then the journal drains and checkpoints it).
struct Subject {
    log: Arc<ShardLog>,
    journal: Option<Journal>,
}

fn open_subject(place: &Place, clock: &ManualClock) -> Subject {
    match place {
        Place::Plain(dir) => Subject {
            log: Arc::new(open_std(dir.path(), config(), clock)),
            journal: None,
        },
        Place::Journaled(sim) => {
            let fs: Arc<dyn Fs> = Arc::new(sim.clone());
            let journal = Journal::open(
                fs.clone(),
                NODE_JOURNAL,
                JournalConfig {
                    checkpoint_bytes: 4096,
                    ..JournalConfig::default()
                },
            )
            .unwrap();
            let log = ShardLog::open_journaled(
                &journal,
                "model",
                fs,
                NODE_LOG,
                LogConfig {
                    durability: crate::Durability::Sync,
                    ..config()
                },
                Arc::new(clock.clone()),
                0,
            )
            .unwrap();
            journal.finish_recovery().unwrap();
            Subject {
                log,
                journal: Some(journal),
            }
        }
    }
}

fn run(ops: Vec<Op>, journaled: bool) {
    let mut place = if journaled {
        Place::Journaled(SimFs::new())
    } else {
        Place::Plain(tempfile::tempdir().unwrap())
    };
    let clock = ManualClock::new(T0);
    let mut log = Some(open_subject(&place, &clock));
    let mut model = Model {
        records: Vec::new(),
        retention_ms: 2 * 3_600_000,
        floor: 0,
    };
    for (step, op) in ops.into_iter().enumerate() {
        let current = &log.as_ref().unwrap().log;
        match op {
            Op::Append { records, size } => {
                let start = model.records.len();
                let keys: Vec<Vec<u8>> = (0..records)
                    .map(|i| format!("s{step}-{i}").into_bytes())
                    .collect();
                let datas: Vec<Vec<u8>> = keys
                    .iter()
                    .map(|k| payload(std::str::from_utf8(k).unwrap(), size))
                    .collect();
                let inputs: Vec<RecordInput> = keys
                    .iter()
                    .zip(&datas)
                    .map(|(key, data)| RecordInput {
                        partition_key: key,
                        explicit_hash_key: None,
                        data,
                    })
                    .collect();
                let appended = current.append(&inputs).unwrap();
                assert_eq!(appended.first_sequence, start as u64);
                assert_eq!(appended.timestamp_ms, clock.now_ms());
                for (key, data) in keys.into_iter().zip(datas) {
                    model.records.push(ModelRecord {
                        ts: appended.timestamp_ms,
                        key,
                        data,
                    });
                }
            }
            Op::Read {
                from_permille,
                max_records,
                max_bytes,
            } => {
                let from = model.records.len() as u64 * from_permille / 1000;
                let horizon = model.horizon(clock.now_ms(), current.stats().first_sequence);
                let outcome = current.read(from, max_records, max_bytes).unwrap();
                let mut expected = Vec::new();
                let mut bytes = 0;
                for (seq, record) in model
                    .records
                    .iter()
                    .enumerate()
                    .skip(from.max(horizon) as usize)
                {
                    let size = record.key.len() + record.data.len();
                    if expected.len() == max_records
                        || (!expected.is_empty() && bytes + size > max_bytes)
                    {
                        break;
                    }
                    bytes += size;
                    expected.push((seq as u64, record));
                }
                assert_eq!(
                    outcome.records.len(),
                    expected.len(),
                    "step {step}: read from {from}"
                );
                for (got, (seq, want)) in outcome.records.iter().zip(&expected) {
                    assert_eq!(got.sequence, *seq);
                    assert_eq!(got.timestamp_ms, want.ts);
                    assert_eq!(&got.partition_key[..], &want.key[..]);
                    assert_eq!(&got.data[..], &want.data[..]);
                }
                let next = expected
                    .last()
                    .map_or(from.max(horizon), |(seq, _)| seq + 1);
                assert_eq!(outcome.next_sequence, next);
                if next == model.records.len() as u64 {
                    assert_eq!(outcome.millis_behind_latest, 0);
                } else {
                    let age = clock.now_ms() - model.records[next as usize].ts;
                    assert_eq!(outcome.millis_behind_latest, age as u64);
                }
            }
            Op::SeekTimestamp { back_ms } => {
                let target = clock.now_ms() - back_ms;
                let horizon = model.horizon(clock.now_ms(), current.stats().first_sequence);
                let by_time = model
                    .records
                    .iter()
                    .position(|r| r.ts >= target)
                    .unwrap_or(model.records.len()) as u64;
                assert_eq!(
                    current.seek(Position::AtTimestamp(target)).unwrap(),
                    by_time.max(horizon)
                );
                assert_eq!(current.seek(Position::TrimHorizon).unwrap(), horizon);
                assert_eq!(
                    current.seek(Position::Latest).unwrap(),
                    model.records.len() as u64
                );
            }
            Op::Reopen | Op::Crash => {
                if let (Op::Crash, Place::Journaled(sim)) = (&op, &place) {
                    let image = sim.crash_image(CrashMode::DropUnsynced);
                    sim.crash_now();
                    drop(log.take());
                    place = Place::Journaled(image);
                } else {
                    drop(log.take());
                }
                let reopened = open_subject(&place, &clock);
                reopened
                    .log
                    .set_retention(Duration::from_millis(model.retention_ms as u64))
                    .unwrap();
                // The engine forgets the hidden-but-kept records' floor across restarts; the
                // model follows what is on disk.
                model.floor = reopened.log.stats().first_sequence;
                assert_eq!(
                    reopened.log.tip().next_sequence,
                    model.records.len() as u64,
                    "step {step}: every acknowledged record is back after {op:?}"
                );
                log = Some(reopened);
            }
            Op::Checkpoint => {
                if let Some(journal) = &log.as_ref().unwrap().journal {
                    journal.checkpoint_now().unwrap();
                }
            }
            Op::Roll => current.roll_now().unwrap(),
            Op::Advance { ms } => clock.advance_ms(ms),
            Op::SetRetentionHours(hours) => {
                current
                    .set_retention(Duration::from_secs(hours * 3600))
                    .unwrap();
                model.retention_ms = hours as i64 * 3_600_000;
            }
            Op::Maintain => {
                current.maintain().unwrap();
            }
        }
    }
    let report = match &place {
        Place::Plain(dir) => crate::verify_tree(&StdFs, dir.path()).unwrap(),
        Place::Journaled(sim) => crate::verify_tree(sim, Path::new(NODE_LOG)).unwrap(),
    };
    assert_eq!(report.findings().count(), 0, "{report:?}");
}

proptest! {
    // 48 cases by default; PROPTEST_CASES=2000 for a deeper run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_log_behaves_like_its_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops, false);
    }

    #[test]
    fn a_journaled_log_behaves_like_its_model_through_checkpoints_and_crashes(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        run(ops, true);
    }
}
