//! A small command-line front end to one shard log, until the `rheo` server exists.
//!
//! ```text
//! shardlog append DIR [KEY]     append each line of stdin as a record (partition key KEY)
//! shardlog read DIR [FROM]      print records from sequence FROM (default: trim horizon)
//! shardlog verify DIR           check every log under DIR and report problems
//! ```

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use rheo_storage::io::StdFs;
use rheo_storage::{LogConfig, Position, RecordInput, ShardLog, SystemClock, verify_tree};

fn open(dir: &str) -> rheo_storage::Result<ShardLog> {
    ShardLog::open(
        Arc::new(StdFs),
        dir,
        LogConfig::default(),
        Arc::new(SystemClock),
        0,
    )
}

fn run(args: &[String]) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match args {
        [command, dir, rest @ ..] if command == "append" => {
            let key = rest.first().map_or("default", String::as_str);
            let log = open(dir)?;
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let appended = log.append(&[RecordInput {
                    partition_key: key.as_bytes(),
                    explicit_hash_key: None,
                    data: line.as_bytes(),
                }])?;
                println!("{}", appended.first_sequence);
            }
            Ok(ExitCode::SUCCESS)
        }
        [command, dir, rest @ ..] if command == "read" => {
            let log = open(dir)?;
            let mut from = match rest.first() {
                Some(seq) => seq.parse()?,
                None => log.seek(Position::TrimHorizon)?,
            };
            loop {
                let outcome = log.read(from, 1000, 1 << 20)?;
                if outcome.records.is_empty() {
                    return Ok(ExitCode::SUCCESS);
                }
                for record in &outcome.records {
                    println!(
                        "{}\t{}\t{}\t{}",
                        record.sequence,
                        record.timestamp_ms,
                        String::from_utf8_lossy(&record.partition_key),
                        String::from_utf8_lossy(&record.data)
                    );
                }
                from = outcome.next_sequence;
            }
        }
        [command, dir] if command == "verify" => {
            let report = verify_tree(&StdFs, dir.as_ref())?;
            println!("{report}");
            Ok(ExitCode::from(report.exit_code()))
        }
        _ => {
            eprintln!("usage: shardlog append DIR [KEY] | read DIR [FROM] | verify DIR");
            Ok(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
