//! `rheo bench-fanout`: put-to-delivery latency of enhanced fan-out. K registered consumers each
//! subscribe (SubscribeToShard) to every shard of a fresh stream; once every subscription has
//! had its first event, N producers put paced PutRecords batches whose records carry a send
//! timestamp, so each consumer measures put-to-delivery latency: from just before the
//! PutRecords call to the receipt of the event carrying the record. Reports put and delivered
//! rates, latency percentiles (hdrhistogram, microseconds), the server's CPU per delivered MB
//! (`--server-pid`), and checks that every consumer got every record exactly once, in order.
//!
//! Every loop is bounded: producers stop after warm-up + duration, subscriptions end when every
//! consumer has caught up (or after a drain grace) and at a hard deadline in any case. Run the
//! server with `--no-limits`, so neither the shard quotas nor push shaping bound the figures.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use rheo_proto::v1 as pb;
use rheo_proto::v1::kinesis_client::KinesisClient;
use tokio::sync::watch;
use tonic::transport::Channel;

/// Record data starts with: send time (ns since the bench's base instant), producer index,
/// the producer's record number; all little-endian. The rest is filler.
const TIMESTAMP_END: usize = 8;
const PRODUCER_END: usize = TIMESTAMP_END + 4;
const HEADER_BYTES: usize = PRODUCER_END + 8;

/// How long to wait for every subscription's first event, and for consumers to be ACTIVE.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the producers stop consumers may take to catch up.
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// Linux reports /proc CPU times in USER_HZ ticks, 100 per second on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// `rheo bench-fanout` flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BenchFanoutArgs {
    /// Registered consumers, each subscribing to every shard (0: ingest only, a CPU baseline).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Shards of the benchmark stream.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Concurrent producers (each on its own connection).
    #[arg(long, default_value_t = 4)]
    producers: usize,
    /// Records per PutRecords call.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Total put rate in records/s, paced open-loop across the producers.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Record size in bytes (at least 20: the timestamp header).
    #[arg(long, default_value_t = 1024)]
    record_bytes: usize,
    /// Measured time, e.g. `20s`.
    #[arg(long, default_value = "20s")]
    duration: String,
    /// Producing time before the measured window (its records are checked but not timed).
    #[arg(long, default_value = "2s")]
    warm_up: String,
    /// The server's process id: report its CPU time (from /proc/<pid>/stat) over the window.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Before and after the run, measure the disk's floor for the same puts in this directory
    /// (put it on the server's disk): one file standing for the node journal, each call's record
    /// written and fdatasynced at the same call rate without the server. Reports its latency and the ratios of the put and delivery
    /// p99 to it.
    #[arg(long, value_name = "DIR")]
    disk_floor: Option<std::path::PathBuf>,
    #[command(flatten)]
    endpoint: crate::client::Endpoint,
}

fn encode_header(data: &mut [u8], sent_ns: u64, producer: u32, number: u64) {
    data[..TIMESTAMP_END].copy_from_slice(&sent_ns.to_le_bytes());
    data[TIMESTAMP_END..PRODUCER_END].copy_from_slice(&producer.to_le_bytes());
    data[PRODUCER_END..HEADER_BYTES].copy_from_slice(&number.to_le_bytes());
}

/// `(sent_ns, producer, number)`, or `None` if the record is too short to be the bench's.
fn decode_header(data: &[u8]) -> Option<(u64, u32, u64)> {
    let header = data.get(..HEADER_BYTES)?;
    let sent_ns = u64::from_le_bytes(header[..TIMESTAMP_END].try_into().ok()?);
    let producer = u32::from_le_bytes(header[TIMESTAMP_END..PRODUCER_END].try_into().ok()?);
    let number = u64::from_le_bytes(header[PRODUCER_END..].try_into().ok()?);
    Some((sent_ns, producer, number))
}

/// A record's contribution to a shard's fingerprint (splitmix64 of its identity): the sum over
/// a set of records matches only if the same records were seen, whatever their order.
fn record_fingerprint(producer: u32, number: u64) -> u64 {
    let mut z = (u64::from(producer) << 48 ^ number).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `(utime, stime)` in ticks from the text of `/proc/<pid>/stat` (fields 14 and 15; the
/// command name in field 2 may hold spaces and parentheses, so count from the last `)`).
fn parse_stat_cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// CPU seconds a process has used so far, in user and in kernel mode.
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuTimes {
    user: f64,
    system: f64,
}

impl CpuTimes {
    /// Of process `pid` (`self` for this one).
    fn of(pid: &str) -> anyhow::Result<CpuTimes> {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let (user, system) =
            parse_stat_cpu_ticks(&stat).with_context(|| format!("parsing {path}"))?;
        Ok(CpuTimes {
            user: user as f64 / TICKS_PER_SECOND,
            system: system as f64 / TICKS_PER_SECOND,
        })
    }

    fn total(self) -> f64 {
        self.user + self.system
    }

    fn since(self, before: CpuTimes) -> CpuTimes {
        CpuTimes {
            user: self.user - before.user,
            system: self.system - before.system,
        }
    }
}

/// What one side saw of one shard: counts and the fingerprint of the set of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ShardTally {
    records: u64,
    fingerprint: u64,
}

impl ShardTally {
    fn add(&mut self, producer: u32, number: u64) {
        self.records += 1;
        self.fingerprint = self
            .fingerprint
            .wrapping_add(record_fingerprint(producer, number));
    }
}

/// One subscription's (consumer x shard) results.
#[derive(Debug)]
struct Delivery {
    consumer: usize,
    shard: usize,
    tally: ShardTally,
    /// Records out of order: a sequence number not above the previous one, or a producer's
    /// record number not above its previous one on this shard (duplicates count here).
    out_of_order: u64,
    foreign: u64,
    events: u64,
    resubscribes: u64,
    /// Records sent in the measured window: their count, data bytes and latencies (µs).
    window_records: u64,
    window_bytes: u64,
    latency: Histogram<u64>,
}

/// One producer's results.
#[derive(Debug)]
struct Production {
    per_shard: Vec<ShardTally>,
    failed: u64,
    window_records: u64,
    put_latency: Histogram<u64>,
}

/// Shared by the subscription tasks.
#[derive(Debug)]
struct Clock {
    base: Instant,
    /// Records sent at or after this (ns since `base`) are measured; `u64::MAX` until known.
    measure_from_ns: AtomicU64,
}

impl Clock {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

#[derive(Debug)]
struct Subscription {
    client: KinesisClient<Channel>,
    consumer: usize,
    consumer_arn: String,
    shard: usize,
    shard_id: String,
    producers: usize,
}

/// Reads one shard for one consumer until `stop` or `deadline`, resubscribing after the
/// continuation when a session ends cleanly.
async fn consume(
    mut sub: Subscription,
    clock: Arc<Clock>,
    first_events: Arc<AtomicUsize>,
    delivered: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
    deadline: Instant,
) -> anyhow::Result<Delivery> {
    let mut out = Delivery {
        consumer: sub.consumer,
        shard: sub.shard,
        tally: ShardTally::default(),
        out_of_order: 0,
        foreign: 0,
        events: 0,
        resubscribes: 0,
        window_records: 0,
        window_bytes: 0,
        latency: Histogram::new(3)?,
    };
    let mut continuation: Option<String> = None;
    let mut last_sequence = 0u128;
    let mut last_number = vec![None::<u64>; sub.producers];
    loop {
        let starting_position = match &continuation {
            None => pb::StartingPosition {
                r#type: pb::ShardIteratorType::TrimHorizon as i32,
                ..Default::default()
            },
            Some(sequence) => pb::StartingPosition {
                r#type: pb::ShardIteratorType::AfterSequenceNumber as i32,
                sequence_number: Some(sequence.clone()),
                ..Default::default()
            },
        };
        let request = pb::SubscribeToShardRequest {
            consumer_arn: sub.consumer_arn.clone(),
            shard_id: sub.shard_id.clone(),
            starting_position: Some(starting_position),
        };
        let subscribed = tokio::select! {
            _ = stop.changed() => return Ok(out),
            _ = tokio::time::sleep_until(deadline.into()) => return Ok(out),
            subscribed = sub.client.subscribe_to_shard(request) => subscribed,
        };
        let mut events = match subscribed {
            Ok(response) => response.into_inner(),
            // Within 5 s of the previous session's start: wait and take over.
            Err(status)
                if rheo_server::kinesis_name(&status).as_deref()
                    == Some("ResourceInUseException") =>
            {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            Err(status) => return Err(crate::client::explain(status)),
        };
        loop {
            let message = tokio::select! {
                _ = stop.changed() => return Ok(out),
                _ = tokio::time::sleep_until(deadline.into()) => return Ok(out),
                message = events.message() => message,
            };
            let Some(event) = message.map_err(crate::client::explain)? else {
                out.resubscribes += 1;
                break;
            };
            let received_ns = clock.now_ns();
            if out.events == 0 && out.resubscribes == 0 {
                first_events.fetch_add(1, Ordering::Relaxed);
            }
            out.events += 1;
            let measure_from_ns = clock.measure_from_ns.load(Ordering::Relaxed);
            for record in &event.records {
                let Some((sent_ns, producer, number)) = decode_header(&record.data)
                    .filter(|(_, producer, _)| (*producer as usize) < sub.producers)
                else {
                    out.foreign += 1;
                    continue;
                };
                let sequence: u128 = record.sequence_number.parse().unwrap_or(0);
                let previous = &mut last_number[producer as usize];
                if sequence <= last_sequence || previous.is_some_and(|last| number <= last) {
                    out.out_of_order += 1;
                }
                last_sequence = last_sequence.max(sequence);
                *previous = Some(previous.map_or(number, |last| last.max(number)));
                out.tally.add(producer, number);
                if sent_ns >= measure_from_ns {
                    out.window_records += 1;
                    out.window_bytes += record.data.len() as u64;
                    let micros = received_ns.saturating_sub(sent_ns) / 1000;
                    let _ = out.latency.record(micros.max(1));
                }
            }
            delivered.fetch_add(event.records.len() as u64, Ordering::Relaxed);
            match event.continuation_sequence_number {
                Some(sequence) => continuation = Some(sequence),
                // The end of a closed shard (resharded meanwhile): nothing more will come.
                None if !event.child_shards.is_empty() => return Ok(out),
                None => {}
            }
        }
    }
}

#[derive(Debug)]
struct Producer {
    client: KinesisClient<Channel>,
    stream: String,
    index: usize,
    count: usize,
    batch: usize,
    /// Records/s of this producer.
    rate: f64,
    record_bytes: usize,
    shard_index: Arc<HashMap<String, usize>>,
}

/// Puts paced batches from `started` until `stop_at`.
async fn produce(
    mut producer: Producer,
    clock: Arc<Clock>,
    started: Instant,
    stop_at: Instant,
    measure_from_ns: u64,
) -> anyhow::Result<Production> {
    let keys: Vec<String> = (0..1024)
        .map(|key| format!("p{}-{key}", producer.index))
        .collect();
    let mut out = Production {
        per_shard: vec![ShardTally::default(); producer.shard_index.len()],
        failed: 0,
        window_records: 0,
        put_latency: Histogram::new(3)?,
    };
    // Open-loop pacing: call k is due at phase + k * interval, producers staggered across the
    // interval so they do not fire together.
    let interval = producer.batch as f64 / producer.rate;
    let phase = interval * producer.index as f64 / producer.count as f64;
    let mut number = 0u64;
    for call in 0u64.. {
        let due = started + Duration::from_secs_f64(phase + call as f64 * interval);
        if due >= stop_at {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let first_number = number;
        let mut bodies: Vec<Vec<u8>> = (0..producer.batch)
            .map(|_| vec![0x42u8; producer.record_bytes])
            .collect();
        let sent_ns = clock.now_ns();
        for body in &mut bodies {
            number += 1;
            encode_header(body, sent_ns, producer.index as u32, number);
        }
        let records = bodies
            .into_iter()
            .enumerate()
            .map(|(offset, body)| pb::PutRecordsRequestEntry {
                data: Bytes::from(body),
                partition_key: keys[(first_number as usize + offset) % keys.len()].clone(),
                explicit_hash_key: None,
            })
            .collect();
        let call_started = Instant::now();
        let response = producer
            .client
            .put_records(pb::PutRecordsRequest {
                stream_name: producer.stream.clone(),
                records,
                ..Default::default()
            })
            .await;
        let _ = out
            .put_latency
            .record(call_started.elapsed().as_micros() as u64);
        let response = match response {
            Ok(response) => response.into_inner(),
            Err(status) => {
                eprintln!("put failed: {}", crate::client::explain(status));
                out.failed += producer.batch as u64;
                continue;
            }
        };
        for (offset, entry) in response.records.iter().enumerate() {
            let shard = entry
                .shard_id
                .as_ref()
                .and_then(|id| producer.shard_index.get(id));
            match shard {
                Some(&shard) => {
                    out.per_shard[shard]
                        .add(producer.index as u32, first_number + 1 + offset as u64);
                    if sent_ns >= measure_from_ns {
                        out.window_records += 1;
                    }
                }
                None => out.failed += 1,
            }
        }
    }
    Ok(out)
}

/// Registers `name` on `stream` and waits until it is ACTIVE; returns its ARN.
async fn register_consumer(
    client: &mut KinesisClient<Channel>,
    stream: &str,
    name: String,
) -> anyhow::Result<String> {
    let consumer = client
        .register_stream_consumer(pb::RegisterStreamConsumerRequest {
            stream_name: stream.to_string(),
            consumer_name: name,
            ..Default::default()
        })
        .await
        .map_err(crate::client::explain)?
        .into_inner()
        .consumer
        .context("RegisterStreamConsumer returned no consumer")?;
    let waiting_since = Instant::now();
    loop {
        let description = client
            .describe_stream_consumer(pb::DescribeStreamConsumerRequest {
                consumer_arn: consumer.consumer_arn.clone(),
                ..Default::default()
            })
            .await
            .map_err(crate::client::explain)?
            .into_inner()
            .consumer_description
            .context("DescribeStreamConsumer returned no description")?;
        if description.consumer_status == pb::ConsumerStatus::Active as i32 {
            return Ok(consumer.consumer_arn);
        }
        if waiting_since.elapsed() > SETUP_TIMEOUT {
            bail!(
                "consumer {} not ACTIVE after {SETUP_TIMEOUT:?}",
                consumer.consumer_arn
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn latency_line(name: &str, histogram: &Histogram<u64>, unit: &str) {
    if histogram.is_empty() {
        println!("{name}: no samples");
        return;
    }
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "{name}: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} {unit})",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        histogram.max() as f64 / 1000.0,
        histogram.len()
    );
}

pub(crate) async fn run(args: BenchFanoutArgs) -> anyhow::Result<std::process::ExitCode> {
    let duration = crate::config::parse_duration(&args.duration)?;
    let warm_up = crate::config::parse_duration(&args.warm_up)?;
    if args.record_bytes < HEADER_BYTES {
        bail!("--record-bytes must be at least {HEADER_BYTES} (the timestamp header)");
    }
    if args.producers == 0 || args.rate == 0 || args.shards < 1 {
        bail!("--producers, --rate and --shards must be positive");
    }
    let batch = args.batch.clamp(1, 500);
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
    let mut admin = args.endpoint.kinesis().await?;
    let stream = format!("bench-fanout-{}", std::process::id());
    let shard_ids = crate::client::create_bench_stream(&mut admin, &stream, args.shards).await?;
    let shard_index: Arc<HashMap<String, usize>> = Arc::new(
        shard_ids
            .iter()
            .enumerate()
            .map(|(index, id)| (id.clone(), index))
            .collect(),
    );
    println!(
        "stream {stream}: {} shards, {} producers x PutRecords of {batch} x {} B, target {} records/s, {} consumers ({} subscriptions), {warm_up:?} warm-up + {duration:?} measured",
        shard_ids.len(),
        args.producers,
        args.record_bytes,
        args.rate,
        args.consumers,
        args.consumers * shard_ids.len()
    );

    // Consumers: register, subscribe to every shard, wait for every first event.
    let clock = Arc::new(Clock {
        base: Instant::now(),
        measure_from_ns: AtomicU64::new(u64::MAX),
    });
    let first_events = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = watch::channel(false);
    let hard_deadline = Instant::now() + SETUP_TIMEOUT + warm_up + duration + DRAIN_GRACE;
    let mut subscriptions = Vec::new();
    for consumer in 0..args.consumers {
        let consumer_arn =
            register_consumer(&mut admin, &stream, format!("bench-consumer-{consumer}")).await?;
        let client = args.endpoint.kinesis().await?;
        for (shard, shard_id) in shard_ids.iter().enumerate() {
            let sub = Subscription {
                client: client.clone(),
                consumer,
                consumer_arn: consumer_arn.clone(),
                shard,
                shard_id: shard_id.clone(),
                producers: args.producers,
            };
            subscriptions.push(tokio::spawn(consume(
                sub,
                clock.clone(),
                first_events.clone(),
                delivered.clone(),
                stopped.clone(),
                hard_deadline,
            )));
        }
    }
    let subscribing = Instant::now();
    while first_events.load(Ordering::Relaxed) < subscriptions.len() {
        if subscribing.elapsed() > SETUP_TIMEOUT
            || subscriptions.iter().any(|task| task.is_finished())
        {
            bail!(
                "only {} of {} subscriptions had a first event",
                first_events.load(Ordering::Relaxed),
                subscriptions.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "subscribed: {} first events in {:.2} s",
        subscriptions.len(),
        subscribing.elapsed().as_secs_f64()
    );

    // Producers: warm-up, then the measured window.
    let mut producer_clients = Vec::new();
    for _ in 0..args.producers {
        producer_clients.push(args.endpoint.kinesis().await?);
    }
    let started = Instant::now() + Duration::from_millis(20);
    let measure_from = started + warm_up;
    let stop_at = measure_from + duration;
    let measure_from_ns = (measure_from - clock.base).as_nanos() as u64;
    clock
        .measure_from_ns
        .store(measure_from_ns, Ordering::Relaxed);
    let mut producers = Vec::new();
    for (index, client) in producer_clients.into_iter().enumerate() {
        let producer = Producer {
            client,
            stream: stream.clone(),
            index,
            count: args.producers,
            batch,
            rate: args.rate as f64 / args.producers as f64,
            record_bytes: args.record_bytes,
            shard_index: shard_index.clone(),
        };
        producers.push(tokio::spawn(produce(
            producer,
            clock.clone(),
            started,
            stop_at,
            measure_from_ns,
        )));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let server_pid = args.server_pid.map(|pid| pid.to_string());
    let cpu_at = |pid: &Option<String>| pid.as_deref().map(CpuTimes::of).transpose();
    let window_started = Instant::now();
    let server_cpu_before = cpu_at(&server_pid)?;
    let bench_cpu_before = CpuTimes::of("self")?;

    let mut put_per_shard = vec![ShardTally::default(); shard_ids.len()];
    let mut put_latency = Histogram::<u64>::new(3)?;
    let (mut failed, mut window_put) = (0, 0);
    for producer in producers {
        let production = producer.await.context("producer task")??;
        for (total, tally) in put_per_shard.iter_mut().zip(&production.per_shard) {
            total.records += tally.records;
            total.fingerprint = total.fingerprint.wrapping_add(tally.fingerprint);
        }
        put_latency.add(&production.put_latency)?;
        failed += production.failed;
        window_put += production.window_records;
    }
    let put_total: u64 = put_per_shard.iter().map(|tally| tally.records).sum();
    // Drain: wait until every consumer has every record (or the grace ends), then stop.
    let draining = Instant::now();
    let expected = put_total * args.consumers as u64;
    while delivered.load(Ordering::Relaxed) < expected && draining.elapsed() < DRAIN_GRACE {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let drained_in = draining.elapsed();
    let window = window_started.elapsed().as_secs_f64();
    let server_cpu = match (server_cpu_before, cpu_at(&server_pid)?) {
        (Some(before), Some(after)) => Some(after.since(before)),
        _ => None,
    };
    let bench_cpu = CpuTimes::of("self")?.since(bench_cpu_before).total();
    stop.send_replace(true);

    let mut deliveries = Vec::new();
    for subscription in subscriptions {
        deliveries.push(subscription.await.context("subscription task")??);
    }
    let mut latency = Histogram::<u64>::new(3)?;
    let (mut window_delivered, mut window_bytes, mut events, mut resubscribes) = (0, 0, 0, 0);
    for delivery in &deliveries {
        latency.add(&delivery.latency)?;
        window_delivered += delivery.window_records;
        window_bytes += delivery.window_bytes;
        events += delivery.events;
        resubscribes += delivery.resubscribes;
    }
    let seconds = duration.as_secs_f64();
    let record_mb = args.record_bytes as f64 / 1e6;
    println!(
        "put: {put_total} records ({window_put} in the window = {:.0} records/s, {:.2} MB/s); {failed} failed",
        window_put as f64 / seconds,
        window_put as f64 * record_mb / seconds
    );
    latency_line("PutRecords call latency", &put_latency, "calls");
    let delivered_mb = window_bytes as f64 / 1e6;
    println!(
        "delivered (window, all consumers): {window_delivered} records = {:.0} records/s, {:.2} MB/s; {events} events, {resubscribes} resubscribes; drained {:.0} ms after the last put",
        window_delivered as f64 / seconds,
        delivered_mb / seconds,
        drained_in.as_secs_f64() * 1000.0
    );
    latency_line("put-to-delivery latency", &latency, "records");
    if let Some(times) = server_cpu {
        let cpu = times.total();
        let per_mb = if delivered_mb > 0.0 {
            format!("{:.1} CPU-ms per delivered MB", cpu * 1000.0 / delivered_mb)
        } else {
            "nothing delivered".to_string()
        };
        // User mode is the server's own code; kernel mode holds the syscalls (fdatasync and
        // socket writes, with the loopback's receive work) and moves with the disk.
        println!(
            "server CPU: {cpu:.2} s over {window:.2} s ({:.0}% of one core; user {:.2} s, system {:.2} s); {per_mb}",
            cpu / window * 100.0,
            times.user,
            times.system
        );
    }
    println!(
        "bench CPU: {bench_cpu:.2} s over {window:.2} s ({:.0}% of one core)",
        bench_cpu / window * 100.0
    );

    let complete = completeness(&deliveries, &put_per_shard, failed, args.consumers);
    crate::disk_floor::after_run(
        floor,
        vec![
            ("PutRecords call", put_latency.value_at_quantile(0.99)),
            ("put-to-delivery", latency.value_at_quantile(0.99)),
        ],
    )
    .await?;
    admin
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: stream,
            enforce_consumer_deletion: true,
            ..Default::default()
        })
        .await
        .map_err(crate::client::explain)?;
    Ok(if complete {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Prints whether every consumer got every record put exactly once, in order per shard.
fn completeness(
    deliveries: &[Delivery],
    put_per_shard: &[ShardTally],
    failed: u64,
    consumers: usize,
) -> bool {
    let mut problems = Vec::new();
    for delivery in deliveries {
        let put = put_per_shard[delivery.shard];
        let (consumer, shard) = (delivery.consumer, delivery.shard);
        if delivery.tally != put {
            problems.push(format!(
                "consumer {consumer} shard {shard}: {} records received of {} put{}",
                delivery.tally.records,
                put.records,
                if delivery.tally.records == put.records {
                    " (different records)"
                } else {
                    ""
                }
            ));
        }
        if delivery.out_of_order > 0 || delivery.foreign > 0 {
            problems.push(format!(
                "consumer {consumer} shard {shard}: {} out of order or repeated, {} not from this bench",
                delivery.out_of_order, delivery.foreign
            ));
        }
    }
    let put: u64 = put_per_shard.iter().map(|tally| tally.records).sum();
    if problems.is_empty() {
        println!(
            "completeness: ok, each of {consumers} consumers received each of the {put} records put exactly once, in order per shard ({failed} puts failed)"
        );
        return true;
    }
    println!("completeness: FAILED ({} problems)", problems.len());
    for problem in problems.iter().take(20) {
        println!("  {problem}");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_short_records_are_refused() {
        let mut data = vec![0x42u8; 64];
        encode_header(&mut data, 123_456_789_012, 7, u64::MAX - 1);
        assert_eq!(
            decode_header(&data),
            Some((123_456_789_012, 7, u64::MAX - 1))
        );
        assert_eq!(data[HEADER_BYTES], 0x42);
        assert_eq!(decode_header(&data[..HEADER_BYTES - 1]), None);
    }

    #[test]
    fn stat_cpu_ticks_skip_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (rheo (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some((250, 75)));
        assert_eq!(parse_stat_cpu_ticks("4242 (rheo) S 1"), None);
    }

    #[test]
    fn fingerprints_tell_sets_apart_whatever_the_order() {
        let mut forward = ShardTally::default();
        let mut backward = ShardTally::default();
        for number in 1..=100 {
            forward.add(1, number);
            backward.add(1, 101 - number);
        }
        assert_eq!(forward, backward);
        let mut other = ShardTally::default();
        for number in 2..=101 {
            other.add(1, number);
        }
        assert_ne!(forward.fingerprint, other.fingerprint);
    }
}
