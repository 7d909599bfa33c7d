//! Memory stays bounded: the engine's heap does not grow with the amount of data stored.
//! dhat's allocator counts live heap bytes while 64 MiB are appended and read.

use std::sync::Arc;

use rheo_storage::io::StdFs;
use rheo_storage::{Durability, LogConfig, Position, RecordInput, ShardLog, SystemClock};

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

fn live() -> isize {
    dhat::HeapStats::get().curr_bytes as isize
}

#[test]
fn heap_does_not_grow_with_data_stored() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        durability: Durability::None,
        segment_max_bytes: 4 << 20,
        ..LogConfig::default()
    };
    let log = ShardLog::open(
        Arc::new(StdFs),
        dir.path(),
        config,
        Arc::new(SystemClock),
        0,
    )
    .unwrap();
    let data = vec![7u8; 1024];
    let batch: Vec<RecordInput> = (0..256)
        .map(|_| RecordInput {
            partition_key: b"key",
            explicit_hash_key: None,
            data: &data,
        })
        .collect();
    let append_mib = |mib: usize| {
        for _ in 0..mib * 4 {
            log.append(&batch).unwrap();
        }
    };
    append_mib(8);
    let after_8_mib = live();
    append_mib(56);
    let after_64_mib = live();
    let growth = after_64_mib - after_8_mib;
    eprintln!("heap after 8 MiB: {after_8_mib} B, growth over 56 MiB: {growth} B");
    // 14 more sealed segments cost a few hundred bytes of metadata each; 56 MiB of data
    // must not be on the heap.
    assert!(
        growth < 256 * 1024,
        "heap grew by {growth} bytes while 56 MiB were appended"
    );

    // Reading everything back holds no more than one read's worth at a time.
    let mut from = log.seek(Position::TrimHorizon).unwrap();
    let mut peak_during_reads = 0;
    loop {
        let outcome = log.read(from, 10_000, 1 << 20).unwrap();
        peak_during_reads = peak_during_reads.max(live() - after_64_mib);
        if outcome.records.is_empty() {
            break;
        }
        from = outcome.next_sequence;
    }
    assert_eq!(from, 64 * 1024);
    assert!(
        peak_during_reads < 4 << 20,
        "a read of at most 1 MiB of records held {peak_during_reads} heap bytes"
    );
    assert!(
        live() - after_64_mib < 256 * 1024,
        "reads leave nothing behind"
    );
}
