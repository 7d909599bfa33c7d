//! `rheo bench`: a load generator against a running server. N producers put 1 KiB records
//! (PutRecords batches, or single PutRecord calls) into a fresh stream of M shards while K
//! consumers tail it with GetRecords; then K consumers read the whole stream back from the trim
//! horizon as fast as they can. Reports records/s, MB/s and latency percentiles (hdrhistogram).
//! Run the server with `--no-limits` (and the durability policy under test).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use rheo_proto::v1 as pb;
use rheo_proto::v1::kinesis_client::KinesisClient;
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// `rheo bench` flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchArgs {
    /// Concurrent producers (each on its own connection).
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Shards of the benchmark stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Records per PutRecords call; 1 with `--single` uses PutRecord.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Use PutRecord (one record per call) instead of PutRecords.
    #[arg(long)]
    single: bool,
    /// Record size in bytes (data; the partition key adds about 10).
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// How long producers run, e.g. `10s`.
    #[arg(long, default_value = "10s")]
    duration: String,
    /// Total target rate in records/s (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Consumers tailing the stream while producers run (0: none).
    #[arg(long, default_value_t = 2)]
    consumers: usize,
    /// Consumers reading everything back after the put phase.
    #[arg(long, default_value_t = 2)]
    catch_up_consumers: usize,
    /// Before and after the run, measure the disk's floor for the same puts in this directory
    /// (put it on the server's disk): one file standing for the node journal, each call's record
    /// written and fdatasynced at the same call rate without the server. Reports its latency and the ratios of the put p99 to it.
    /// Needs `--rate`.
    #[arg(long, value_name = "DIR")]
    disk_floor: Option<std::path::PathBuf>,
    /// Encrypt the benchmark stream under this key (e.g. `alias/aws/kinesis`) before the run.
    #[arg(long, value_name = "KEY_ID")]
    encrypt: Option<String>,
    #[command(flatten)]
    endpoint: crate::client::Endpoint,
}

fn percentiles(name: &str, histogram: &Histogram<u64>) {
    if histogram.is_empty() {
        println!("{name}: no samples");
        return;
    }
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "{name}: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} calls)",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0,
        histogram.len()
    );
}

async fn connect(args: &BenchArgs) -> anyhow::Result<KinesisClient<Channel>> {
    args.endpoint.kinesis().await
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    let duration = crate::config::parse_duration(&args.duration)?;
    let batch = if args.single {
        1
    } else {
        args.batch.clamp(1, 500)
    };
    if args.disk_floor.is_some() && args.rate == 0 {
        anyhow::bail!("--disk-floor needs --rate: the floor replays the puts' call rate");
    }
    let mut admin = connect(&args).await?;
    let stream = format!("bench-{}", std::process::id());
    let shard_ids = crate::client::create_bench_stream(&mut admin, &stream, args.shards).await?;
    if let Some(key) = &args.encrypt {
        admin
            .start_stream_encryption(pb::StartStreamEncryptionRequest {
                stream_name: stream.clone(),
                encryption_type: "KMS".into(),
                key_id: key.clone(),
                ..Default::default()
            })
            .await
            .map_err(crate::client::explain)?;
        println!("stream {stream}: encrypted under {key}");
    }
    println!(
        "stream {stream}: {} shards, {} producers, {} records of {} B per call ({}), {} consumers, {}",
        args.shards,
        args.producers,
        batch,
        args.record_bytes,
        if args.single {
            "PutRecord"
        } else {
            "PutRecords"
        },
        args.consumers,
        if args.rate == 0 {
            "unthrottled".to_string()
        } else {
            format!("target {} records/s", args.rate)
        }
    );

    let floor = crate::disk_floor::before_run(
        args.disk_floor.as_ref(),
        crate::disk_floor::Pattern::puts(
            args.shards as usize,
            batch,
            args.record_bytes,
            args.rate,
            duration,
        ),
    )
    .await?;
    let put_latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let records_put = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let producing = Arc::new(AtomicBool::new(true));
    let data = Bytes::from(vec![0x42u8; args.record_bytes]);
    let started = Instant::now();
    let mut producers = Vec::new();
    for producer in 0..args.producers {
        let mut client = connect(&args).await?;
        let (stream, data, latency, records_put, failed) = (
            stream.clone(),
            data.clone(),
            put_latency.clone(),
            records_put.clone(),
            failed.clone(),
        );
        let single = args.single;
        let per_producer_rate = args.rate as f64 / args.producers as f64;
        let producer_count = args.producers;
        producers.push(tokio::spawn(async move {
            let keys: Vec<String> = (0..1024).map(|key| format!("p{producer}-{key}")).collect();
            let mut local = Histogram::<u64>::new(3).expect("histogram");
            let mut sequence = 0u64;
            let mut calls = 0u64;
            while started.elapsed() < duration {
                if per_producer_rate > 0.0 {
                    // Open-loop pacing: call k is due at k * batch / rate, producers staggered
                    // across the interval so they do not fire in bursts together.
                    let interval = batch as f64 / per_producer_rate;
                    let phase = interval * producer as f64 / producer_count as f64;
                    let due = started + Duration::from_secs_f64(phase + calls as f64 * interval);
                    tokio::time::sleep_until(due.into()).await;
                }
                calls += 1;
                let call_started = Instant::now();
                let ok = if single {
                    sequence += 1;
                    client
                        .put_record(pb::PutRecordRequest {
                            stream_name: stream.clone(),
                            data: data.clone(),
                            partition_key: keys[(sequence % keys.len() as u64) as usize].clone(),
                            ..Default::default()
                        })
                        .await
                        .map(|_| 1)
                } else {
                    let records = (0..batch)
                        .map(|_| {
                            sequence += 1;
                            // Keys cycle through a fixed set: every shard gets records, and no
                            // key is formatted per record.
                            pb::PutRecordsRequestEntry {
                                data: data.clone(),
                                partition_key: keys[(sequence % keys.len() as u64) as usize]
                                    .clone(),
                                explicit_hash_key: None,
                            }
                        })
                        .collect();
                    client
                        .put_records(pb::PutRecordsRequest {
                            stream_name: stream.clone(),
                            records,
                            ..Default::default()
                        })
                        .await
                        .map(|response| {
                            let response = response.into_inner();
                            failed
                                .fetch_add(response.failed_record_count as u64, Ordering::Relaxed);
                            batch as u64 - response.failed_record_count as u64
                        })
                };
                let _ = local.record(call_started.elapsed().as_micros() as u64);
                match ok {
                    Ok(stored) => {
                        records_put.fetch_add(stored, Ordering::Relaxed);
                    }
                    Err(status) => {
                        failed.fetch_add(batch as u64, Ordering::Relaxed);
                        eprintln!("put failed: {status}");
                    }
                }
            }
            latency
                .lock()
                .await
                .add(&local)
                .expect("same histogram shape");
        }));
    }

    // Consumers tail the stream while producers run (shards shared round robin).
    let tailed = Arc::new(AtomicU64::new(0));
    let mut tailers = Vec::new();
    for consumer in 0..args.consumers {
        let mut client = connect(&args).await?;
        let shards: Vec<String> = shard_ids
            .iter()
            .skip(consumer)
            .step_by(args.consumers.max(1))
            .cloned()
            .collect();
        let (stream, tailed, producing) = (stream.clone(), tailed.clone(), producing.clone());
        tailers.push(tokio::spawn(async move {
            let mut iterators = Vec::new();
            for shard in &shards {
                let iterator = client
                    .get_shard_iterator(pb::GetShardIteratorRequest {
                        stream_name: stream.clone(),
                        shard_id: shard.clone(),
                        shard_iterator_type: pb::ShardIteratorType::TrimHorizon as i32,
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .shard_iterator;
                iterators.push(iterator);
            }
            while producing.load(Ordering::Relaxed) {
                let mut got = 0;
                for iterator in iterators.iter_mut() {
                    let page = client
                        .get_records(pb::GetRecordsRequest {
                            shard_iterator: iterator.clone(),
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    got += page.records.len();
                    *iterator = page.next_shard_iterator.unwrap_or_default();
                }
                tailed.fetch_add(got as u64, Ordering::Relaxed);
                if got == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Ok::<_, tonic::Status>(())
        }));
    }
    for producer in producers {
        producer.await.context("producer task")?;
    }
    let put_elapsed = started.elapsed().as_secs_f64();
    producing.store(false, Ordering::Relaxed);
    for tailer in tailers {
        tailer
            .await
            .context("consumer task")?
            .map_err(crate::client::explain)?;
    }
    let put = records_put.load(Ordering::Relaxed);
    let record_mb = args.record_bytes as f64 / 1e6;
    println!(
        "put: {put} records in {put_elapsed:.1} s = {:.0} records/s, {:.1} MB/s; {} failed; tailing consumers read {}",
        put as f64 / put_elapsed,
        put as f64 * record_mb / put_elapsed,
        failed.load(Ordering::Relaxed),
        tailed.load(Ordering::Relaxed)
    );
    percentiles(
        if args.single {
            "PutRecord latency"
        } else {
            "PutRecords latency"
        },
        &*put_latency.lock().await,
    );

    // Catch-up: read everything back from the trim horizon, each consumer its share of shards.
    let read_started = Instant::now();
    let read_bytes = Arc::new(AtomicU64::new(0));
    let read_records = Arc::new(AtomicU64::new(0));
    let get_latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let mut readers = Vec::new();
    let readers_count = args.catch_up_consumers.max(1);
    for consumer in 0..readers_count {
        let mut client = connect(&args).await?;
        let shards: Vec<String> = shard_ids
            .iter()
            .skip(consumer)
            .step_by(readers_count)
            .cloned()
            .collect();
        let (stream, read_bytes, read_records, latency) = (
            stream.clone(),
            read_bytes.clone(),
            read_records.clone(),
            get_latency.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).expect("histogram");
            for shard in shards {
                let mut iterator = client
                    .get_shard_iterator(pb::GetShardIteratorRequest {
                        stream_name: stream.clone(),
                        shard_id: shard,
                        shard_iterator_type: pb::ShardIteratorType::TrimHorizon as i32,
                        ..Default::default()
                    })
                    .await?
                    .into_inner()
                    .shard_iterator;
                loop {
                    let call_started = Instant::now();
                    let page = client
                        .get_records(pb::GetRecordsRequest {
                            shard_iterator: iterator.clone(),
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    let _ = local.record(call_started.elapsed().as_micros() as u64);
                    if page.records.is_empty() {
                        break;
                    }
                    read_records.fetch_add(page.records.len() as u64, Ordering::Relaxed);
                    read_bytes.fetch_add(
                        page.records.iter().map(|r| r.data.len() as u64).sum(),
                        Ordering::Relaxed,
                    );
                    iterator = page.next_shard_iterator.unwrap_or_default();
                }
            }
            latency
                .lock()
                .await
                .add(&local)
                .expect("same histogram shape");
            Ok::<_, tonic::Status>(())
        }));
    }
    for reader in readers {
        reader
            .await
            .context("reader task")?
            .map_err(crate::client::explain)?;
    }
    let read_elapsed = read_started.elapsed().as_secs_f64();
    let bytes = read_bytes.load(Ordering::Relaxed);
    println!(
        "catch-up read: {} records, {:.1} MB in {read_elapsed:.2} s = {:.1} MB/s",
        read_records.load(Ordering::Relaxed),
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / read_elapsed
    );
    percentiles("GetRecords latency (catch-up)", &*get_latency.lock().await);
    let put_p99 = put_latency.lock().await.value_at_quantile(0.99);
    let name = if args.single {
        "PutRecord"
    } else {
        "PutRecords"
    };
    crate::disk_floor::after_run(floor, vec![(name, put_p99)]).await?;
    admin
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: stream,
            ..Default::default()
        })
        .await
        .map_err(crate::client::explain)?;
    Ok(std::process::ExitCode::SUCCESS)
}
