//! A real `kill -9` of a server taking PutRecords into a stream of 256 shards: every record
//! it acknowledged must be read back, intact and at its sequence number, after a restart.
//! Every acknowledgement here waited for one node-wide journal commit, so this checks the
//! journal's replay into the shards' segments with real files and a real process death.
//!
//! The test re-runs its own binary as the child (selected by an environment variable): the
//! child serves on loopback and puts through the gRPC client, printing each acknowledgement.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use rheo_proto::v1 as pb;
use rheo_tests::{TestServer, create_stream, unlimited_config};

const CHILD_ENV: &str = "RHEO_SERVER_KILL9_CHILD_DIR";
const STREAM: &str = "kill9";
const SHARDS: i32 = 256;
const PRODUCERS: usize = 8;
const BATCH: usize = 50;

fn data_for(key: &str) -> Vec<u8> {
    let len = 16 + key.len() * 29 % 900;
    key.bytes().cycle().take(len).collect()
}

/// The child: a server on `dir` and producers putting until killed (or for at most 60 s),
/// printing `ACK <shard> <sequence> <key>` for each record once its call was answered.
async fn child(dir: &Path) {
    let server = TestServer::start(dir, unlimited_config()).await;
    let mut client = server.client().await;
    create_stream(&mut client, STREAM, SHARDS).await;
    println!("READY");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let mut client = server.client().await;
        producers.push(tokio::spawn(async move {
            let mut call = 0u64;
            while Instant::now() < deadline {
                let keys: Vec<String> = (0..BATCH)
                    .map(|r| format!("p{producer}-c{call}-r{r}"))
                    .collect();
                let records = keys
                    .iter()
                    .map(|key| pb::PutRecordsRequestEntry {
                        data: data_for(key).into(),
                        partition_key: key.clone(),
                        explicit_hash_key: None,
                    })
                    .collect();
                let answer = client
                    .put_records(pb::PutRecordsRequest {
                        stream_name: STREAM.into(),
                        records,
                        ..Default::default()
                    })
                    .await
                    .expect("put records")
                    .into_inner();
                let mut lines = String::new();
                for (key, result) in keys.iter().zip(&answer.records) {
                    if let (Some(shard), Some(sequence)) =
                        (&result.shard_id, &result.sequence_number)
                    {
                        lines.push_str(&format!("ACK {shard} {sequence} {key}\n"));
                    }
                }
                // One write per call so lines are never interleaved.
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(lines.as_bytes()).unwrap();
                stdout.flush().unwrap();
                call += 1;
            }
        }));
    }
    for producer in producers {
        producer.await.unwrap();
    }
}

/// Every record of `shard`, from the trim horizon to the tip.
async fn read_shard(
    client: &mut rheo_proto::v1::kinesis_client::KinesisClient<tonic::transport::Channel>,
    shard: &str,
) -> Vec<pb::Record> {
    let mut iterator = rheo_tests::trim_horizon_iterator(client, STREAM, shard).await;
    let mut records = Vec::new();
    for _ in 0..10_000 {
        let page = client
            .get_records(pb::GetRecordsRequest {
                shard_iterator: iterator.clone(),
                ..Default::default()
            })
            .await
            .expect("get records")
            .into_inner();
        let empty = page.records.is_empty();
        records.extend(page.records);
        match page.next_shard_iterator {
            Some(next) if !(empty && page.millis_behind_latest == 0) => iterator = next,
            _ => return records,
        }
    }
    panic!("shard {shard} did not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_server_with_256_shards_loses_no_acknowledged_record() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir)).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut process = rheo_tests::spawn_self(
        "kill_9_of_a_server_with_256_shards_loses_no_acknowledged_record",
        CHILD_ENV,
        dir.path(),
    );
    // SIGKILL mid-stream: calls are in flight from every producer.
    let acked: Vec<(String, String, String)> =
        rheo_tests::acks_until_killed(&mut process, 20_000, Duration::from_secs(20))
            .into_iter()
            .map(|line| {
                let mut parts = line.splitn(3, ' ');
                let mut next = || parts.next().unwrap().to_string();
                (next(), next(), next())
            })
            .collect();
    assert!(
        acked.len() >= 1000,
        "the child acknowledged records before the kill: {}",
        acked.len()
    );

    let server = TestServer::start(dir.path(), unlimited_config()).await;
    let mut client = server.client().await;
    let mut stored: HashMap<(String, String), String> = HashMap::new();
    for index in 0..SHARDS {
        let shard = format!("shardId-{index:012}");
        for record in read_shard(&mut client, &shard).await {
            assert_eq!(
                &record.data[..],
                &data_for(&record.partition_key)[..],
                "record {} is intact",
                record.partition_key
            );
            stored.insert(
                (shard.clone(), record.sequence_number),
                record.partition_key,
            );
        }
    }
    let shards_written = acked
        .iter()
        .map(|(shard, _, _)| shard.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    assert!(
        shards_written > 200,
        "the load reached most shards: {shards_written}"
    );
    for (shard, sequence, key) in &acked {
        assert_eq!(
            stored.get(&(shard.clone(), sequence.clone())),
            Some(key),
            "acknowledged record {key} ({shard}, {sequence}) survives"
        );
    }
    server.stop().await;
}
