//! A real full disk: a server whose data directory is a small tmpfs (in a private mount
//! namespace of its own) is written to until the disk is full. Puts are refused with the
//! retryable ServiceUnavailableException, nothing refused is acknowledged or stored, and once
//! space is freed the same shard takes writes again without a restart.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Duration;

use rheo_proto::v1 as pb;
use rheo_proto::v1::kinesis_client::KinesisClient;
use rheo_tests::{TestServer, create_stream, reason, unlimited_config};

const CHILD_ENV: &str = "RHEO_DISK_FULL_CHILD";
const TEST: &str = "a_full_disk_refuses_writes_clearly_and_heals_when_space_is_freed";
/// The tmpfs: small enough to fill in a second, big enough for a server to start.
const DISK: &str = "24m";
/// Taken by the child before the server starts, given back when the parent says FREE.
const BALLAST_BYTES: usize = 6 << 20;
const RECORD_BYTES: usize = 256 << 10;

/// The child, inside its own mount namespace with `dir` a fresh tmpfs: a server on it, with a
/// journal that rotates and checkpoints every MiB (so rotations and checkpoints meet the full
/// disk too). Prints `READY <addr>`, frees the ballast on `FREE`, stops on end of input or
/// after 60 s.
async fn child(dir: &Path) {
    let ballast = dir.join("ballast");
    std::fs::write(&ballast, vec![7u8; BALLAST_BYTES]).expect("write the ballast");
    let mut config = unlimited_config();
    config.journal.checkpoint_bytes = 1 << 20;
    let server = TestServer::start(&dir.join("data"), config).await;
    println!("READY {}", server.addr);
    let commands = tokio::task::spawn_blocking(move || {
        for line in std::io::stdin().lock().lines() {
            if line.unwrap_or_default().trim() == "FREE" {
                std::fs::remove_file(&ballast).expect("free the ballast");
                println!("FREED");
            }
        }
    });
    let _ = tokio::time::timeout(Duration::from_secs(60), commands).await;
    server.stop().await;
}

/// Whether this machine lets a process mount a tmpfs in a mount namespace of its own.
fn can_mount_tmpfs() -> bool {
    let probe = tempfile::tempdir().unwrap();
    std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=1m rheo-probe "$0""#)
        .arg(probe.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

async fn put(
    client: &mut KinesisClient<tonic::transport::Channel>,
    data: Vec<u8>,
) -> Result<pb::PutRecordResponse, tonic::Status> {
    client
        .put_record(pb::PutRecordRequest {
            stream_name: "full".into(),
            data: data.into(),
            partition_key: "k".into(),
            ..Default::default()
        })
        .await
        .map(|answer| answer.into_inner())
}

#[tokio::test]
async fn a_full_disk_refuses_writes_clearly_and_heals_when_space_is_freed() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir)).await;
        return;
    }
    if !can_mount_tmpfs() {
        // Needs CAP_SYS_ADMIN (root in CI); the storage tests inject ENOSPC on every write.
        eprintln!("SKIPPED: this machine does not allow mounting a tmpfs in a mount namespace");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut server = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            r#"mount -t tmpfs -o size={DISK} rheo-full "$1" && exec "$0" {TEST} --exact --nocapture --test-threads=1"#
        ))
        .arg(std::env::current_exe().unwrap())
        .arg(dir.path())
        .env(CHILD_ENV, dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the server in its own mount namespace");
    let mut lines = std::io::BufReader::new(server.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the server starts").unwrap();
        // libtest prints `test <name> ... ` before the child's own output, on the same line.
        if let Some((_, addr)) = line.split_once("READY ") {
            break addr.trim().to_owned();
        }
    };
    let mut client = KinesisClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    create_stream(&mut client, "full", 1).await;

    // Fill the disk: every acknowledged record is remembered.
    let mut acked = Vec::new();
    let refused = loop {
        assert!(acked.len() < 200, "the 24 MiB disk never filled");
        let data = vec![acked.len() as u8; RECORD_BYTES];
        match put(&mut client, data).await {
            Ok(_) => acked.push(acked.len() as u8),
            Err(status) => break status,
        }
    };
    assert_eq!(
        reason(&refused),
        "ServiceUnavailableException",
        "{refused:?}"
    );
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains("disk is full"), "{refused:?}");
    assert!(acked.len() >= 4, "only {} records fit", acked.len());
    // Still full: refused the same way (not poisoned), and PutRecords says so per record.
    let again = put(&mut client, vec![1; RECORD_BYTES]).await.unwrap_err();
    assert_eq!(reason(&again), "ServiceUnavailableException", "{again:?}");
    let batch = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "full".into(),
            records: vec![pb::PutRecordsRequestEntry {
                data: vec![2; RECORD_BYTES].into(),
                partition_key: "k".into(),
                explicit_hash_key: None,
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.failed_record_count, 1);
    let failed = &batch.records[0];
    assert_eq!(failed.error_code.as_deref(), Some("InternalFailure"));
    assert!(
        failed
            .error_message
            .as_deref()
            .unwrap_or("")
            .contains("disk is full"),
        "{failed:?}"
    );

    // Space is back: the same shard takes writes again, no restart.
    writeln!(server.stdin.as_mut().unwrap(), "FREE").unwrap();
    loop {
        let line = lines.next().expect("the server frees space").unwrap();
        if line.contains("FREED") {
            break;
        }
    }
    let healed = put(&mut client, vec![0xEE; RECORD_BYTES]).await;
    assert!(
        healed.is_ok(),
        "writes resume once space is free: {healed:?}"
    );

    // Exactly the acknowledged records, then the healed one: nothing refused was stored.
    let mut read = Vec::new();
    let iterator = rheo_tests::trim_horizon_iterator(&mut client, "full", "shardId-000000000000");
    let mut iterator = Some(iterator.await);
    while let Some(at) = iterator.take() {
        let page = client
            .get_records(pb::GetRecordsRequest {
                shard_iterator: at,
                // 2 MiB a page, under the client's 4 MiB message limit.
                limit: Some(8),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        read.extend(page.records.iter().map(|record| record.data[0]));
        if !page.records.is_empty() {
            iterator = page.next_shard_iterator;
        }
    }
    let mut expected = acked.clone();
    expected.push(0xEE);
    assert_eq!(read, expected);
    // Closed from this runtime (which must keep running to close the connection), the
    // server stops at once.
    drop(client);
    drop(server.stdin.take());
    let stopped = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap();
    assert!(stopped.unwrap().success(), "the server stopped cleanly");
}
