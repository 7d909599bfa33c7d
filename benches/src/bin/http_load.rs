//! `http-load`: PutRecords / GetRecords throughput and latency through the Kinesis HTTP wire
//! protocol (AWS JSON 1.1: `POST /`, `X-Amz-Target: Kinesis_20131202.<Op>`, base64 `Data`, a
//! dummy SigV4 `Authorization` header), so that Rheo and the local emulators (kinesalite,
//! kinesis-mock) are driven by exactly the same client. See benches/emulators-run.sh.
//!
//! What it measures, in order:
//! 1. CreateStream with `--shards` shards, then DescribeStreamSummary polling until ACTIVE.
//! 2. Put phase: `--producers` concurrent loops, each sending one PutRecords at a time with
//!    `--batch` records of `--record-size` bytes (distinct partition keys) for `--duration-secs`.
//!    A record is acknowledged when its PutRecords answered 200 and it was not counted in
//!    `FailedRecordCount`. Latency is per PutRecords call.
//! 3. Catch-up read: per shard, GetShardIterator(TRIM_HORIZON) then GetRecords (`--get-limit`)
//!    until a call returns no records with `MillisBehindLatest` 0, bounded by
//!    `--read-timeout-secs`. Every record's data is decoded and compared with what was put.
//!    Latency is per GetRecords call; throughput is over the whole catch-up wall time.
//!
//! It prints records/s, MB/s (decimal, data bytes only) and p50/p99 latency for puts and gets,
//! failed records, HTTP errors, CPU seconds (its own, and the server's with `--server-pid`),
//! whether the read returned exactly the acknowledged records, then one `SUMMARY {json}` line.
//! Exit status: 0, 1 when the read does not match, 2 when the run could not proceed.
//! HTTP/1.1 with keep-alive through hyper-util's pooled client (one connection per call in flight).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
#[command(about = "Kinesis JSON-over-HTTP PutRecords/GetRecords load generator")]
struct Args {
    /// Base URL of the Kinesis HTTP endpoint, e.g. http://127.0.0.1:4567
    #[arg(long)]
    endpoint: String,
    /// Name printed in the report and the summary line.
    #[arg(long, default_value = "server")]
    label: String,
    /// Stream to create (default: a fresh `http-load-<pid>-<ms>`).
    #[arg(long)]
    stream: Option<String>,
    #[arg(long, default_value_t = 4)]
    shards: u32,
    #[arg(long, default_value_t = 8)]
    producers: usize,
    /// Records per PutRecords call.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Data bytes per record.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Length of the put phase.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// GetRecords `Limit`.
    #[arg(long, default_value_t = 10_000)]
    get_limit: u32,
    /// Upper bound on the whole catch-up read.
    #[arg(long, default_value_t = 180)]
    read_timeout_secs: u64,
    /// Upper bound on one HTTP call.
    #[arg(long, default_value_t = 60)]
    request_timeout_secs: u64,
    /// Upper bound on waiting for the new stream to be ACTIVE.
    #[arg(long, default_value_t = 30)]
    create_timeout_secs: u64,
    /// The server's process id, to report its CPU seconds per phase too (from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Debug, Clone)]
struct Kinesis {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: hyper::Uri,
    timeout: Duration,
}

impl Kinesis {
    /// One Kinesis call; `Err` carries a short description (HTTP status and body, or transport).
    async fn call(&self, operation: &str, body: Vec<u8>) -> Result<Bytes, String> {
        let (date, day) = amz_date();
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{day}/us-east-1/kinesis/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature={:064}",
            0
        );
        let request = hyper::Request::post(self.uri.clone())
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("Kinesis_20131202.{operation}"))
            .header("x-amz-date", date)
            .header("authorization", authorization)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self.client.request(request).await;
            let response = response.map_err(|e| format!("{operation}: {e:?}"))?;
            let status = response.status();
            let body = response.into_body().collect().await;
            let body = body.map_err(|e| format!("{operation}: {e}"))?.to_bytes();
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                return Err(format!("{operation}: HTTP {status}: {text}"));
            }
            Ok(body)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("{operation}: no answer within {:?}", self.timeout))?
    }

    /// One call whose JSON answer is parsed as `T` (an empty body, as CreateStream's, is null).
    async fn typed<T: DeserializeOwned>(&self, operation: &str, body: String) -> Result<T, String> {
        let bytes = self.call(operation, body.into_bytes()).await?;
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| format!("{operation}: bad JSON: {e}"))
    }

    async fn json(&self, operation: &str, body: Value) -> Result<Value, String> {
        self.typed(operation, body.to_string()).await
    }
}

/// `X-Amz-Date` (`YYYYMMDDTHHMMSSZ`) and the credential-scope day for the current UTC time.
fn amz_date() -> (String, String) {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let day = format!("{y:04}{m:02}{d:02}");
    let time = format!("{:02}{:02}{:02}", rem / 3600, rem / 60 % 60, rem % 60);
    (format!("{day}T{time}Z"), day)
}

/// User + system CPU seconds of a process, from /proc/<pid>/stat (0 where unreadable).
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the parenthesised command name; utime and stime are fields 14 and 15 of the line.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks = rest.split_whitespace().skip(11).take(2);
    ticks.flat_map(str::parse::<f64>).sum::<f64>() / 100.0
}

/// CPU seconds so far of (this client, the server).
fn cpu_now(args: &Args) -> (f64, f64) {
    let server = args
        .server_pid
        .map_or(0.0, |pid| cpu_secs(&pid.to_string()));
    (cpu_secs("self"), server)
}

fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// What the producers, or the shard readers, saw (shared by the tasks of one phase).
#[derive(Debug)]
struct Tally {
    latency_us: Histogram<u64>,
    calls: u64,
    records: u64,
    bytes: u64,
    failed_records: u64,
    http_errors: u64,
    corrupt: u64,
    first_error: Option<String>,
}

type Shared = Arc<Mutex<Tally>>;

impl Tally {
    fn shared() -> Shared {
        let latency_us = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Arc::new(Mutex::new(Tally {
            latency_us,
            calls: 0,
            records: 0,
            bytes: 0,
            failed_records: 0,
            http_errors: 0,
            corrupt: 0,
            first_error: None,
        }))
    }

    fn error(&mut self, error: String) {
        self.calls += 1;
        self.http_errors += 1;
        self.first_error.get_or_insert(error);
    }

    /// One successful call of `latency` that brought or acknowledged records.
    fn ok(&mut self, latency: Duration, records: u64, bytes: u64) {
        self.latency_us
            .saturating_record(latency.as_micros() as u64);
        self.calls += 1;
        self.records += records;
        self.bytes += bytes;
    }

    /// Prints the phase's figures and returns them as JSON.
    fn report(&self, what: &str, wall: Duration, cpu: (f64, f64)) -> Value {
        let secs = wall.as_secs_f64().max(1e-9);
        let ms = |q: f64| round(self.latency_us.value_at_quantile(q) as f64 / 1000.0);
        let (per_s, mb_s) = (self.records as f64 / secs, self.bytes as f64 / secs / 1e6);
        let Tally {
            records,
            calls,
            failed_records,
            http_errors,
            corrupt,
            ..
        } = self;
        let (p50, p99, max, client, server) = (ms(0.5), ms(0.99), ms(1.0), cpu.0, cpu.1);
        println!(
            "{what}: {records} records in {secs:.2} s = {per_s:.0} records/s, {mb_s:.2} MB/s; \
             {calls} calls, latency p50 {p50} ms p99 {p99} ms max {max} ms; failed records \
             {failed_records}, HTTP errors {http_errors}, corrupt {corrupt}; cpu s client \
             {client:.2} server {server:.2}"
        );
        if let Some(error) = &self.first_error {
            println!("{what}: first error: {error}");
        }
        json!({
            "records": self.records, "seconds": round(secs), "calls": self.calls,
            "records_per_s": round(per_s), "mb_per_s": round(mb_s),
            "p50_ms": ms(0.5), "p99_ms": ms(0.99), "max_ms": ms(1.0),
            "failed_records": self.failed_records, "http_errors": self.http_errors,
            "corrupt_records": self.corrupt, "first_error": self.first_error,
            "cpu_secs": {"client": round(cpu.0), "server": round(cpu.1)},
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsOutput {
    #[serde(default)]
    failed_record_count: u64,
    records: Vec<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordsOutput {
    records: Vec<RecordOut>,
    next_shard_iterator: Option<String>,
    millis_behind_latest: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordOut {
    data: String,
}

/// What every task of one phase shares.
#[derive(Debug, Clone)]
struct Phase {
    kinesis: Kinesis,
    args: &'static Args,
    stream: &'static str,
    end: Instant,
    tally: Shared,
}

/// Record data: a fixed, non-repeating pattern, checked on the way back.
fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 7 + i / 251) as u8).collect()
}

async fn produce(phase: Phase, id: usize) {
    let Phase {
        kinesis,
        args,
        stream,
        end,
        tally,
    } = phase;
    let data = BASE64.encode(payload(args.record_size));
    let batch = args.batch as u64;
    let mut sequence = 0u64;
    while Instant::now() < end {
        let mut body = String::with_capacity(args.batch * (data.len() + 48) + 64);
        write!(body, r#"{{"StreamName":"{stream}","Records":["#).expect("string write");
        for i in 0..args.batch {
            let comma = if i == 0 { "" } else { "," };
            sequence += 1;
            write!(
                body,
                r#"{comma}{{"Data":"{data}","PartitionKey":"p{id}-{sequence}"}}"#
            )
            .expect("string write");
        }
        body.push_str("]}");
        let started = Instant::now();
        let answer = kinesis.typed::<PutRecordsOutput>("PutRecords", body).await;
        let (latency, size) = (started.elapsed(), args.record_size as u64);
        match answer {
            Ok(output) if output.records.len() == args.batch => {
                let acknowledged = batch - output.failed_record_count.min(batch);
                let mut tally = tally.lock().expect("tally lock");
                tally.ok(latency, acknowledged, acknowledged * size);
                tally.failed_records += output.failed_record_count;
            }
            answer => {
                let error = answer.map_or_else(
                    |e| e,
                    |o| format!("PutRecords: {} results", o.records.len()),
                );
                tally.lock().expect("tally lock").error(error);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn read_shard(phase: Phase, shard: String) {
    let Phase {
        kinesis,
        args,
        stream,
        end,
        tally,
    } = phase;
    let expected = payload(args.record_size);
    let request =
        json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"});
    let mut iterator = match kinesis.json("GetShardIterator", request).await {
        Ok(answer) => answer["ShardIterator"].as_str().map(str::to_owned),
        Err(error) => {
            tally.lock().expect("tally lock").error(error);
            None
        }
    };
    let mut consecutive_errors = 0;
    while let Some(current) = iterator.take() {
        if Instant::now() >= end {
            let error = format!("{shard}: catch-up read stopped by --read-timeout-secs");
            tally.lock().expect("tally lock").error(error);
            break;
        }
        let request = json!({"ShardIterator": current, "Limit": args.get_limit}).to_string();
        let started = Instant::now();
        let answer = kinesis
            .typed::<GetRecordsOutput>("GetRecords", request)
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(error) => {
                tally.lock().expect("tally lock").error(error);
                consecutive_errors += 1;
                if consecutive_errors < 20 {
                    iterator = Some(current);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                continue;
            }
        };
        consecutive_errors = 0;
        let latency = started.elapsed();
        let (count, mut bytes, mut corrupt) = (output.records.len() as u64, 0, 0);
        for record in &output.records {
            let data = BASE64.decode(record.data.as_bytes()).unwrap_or_default();
            bytes += data.len() as u64;
            corrupt += u64::from(data != expected);
        }
        let mut tally = tally.lock().expect("tally lock");
        tally.ok(latency, count, bytes);
        tally.corrupt += corrupt;
        if count == 0 && output.millis_behind_latest.unwrap_or(0) == 0 {
            break;
        }
        iterator = output.next_shard_iterator;
    }
}

async fn create_stream(kinesis: &Kinesis, args: &Args, stream: &str) -> Result<(), String> {
    let request = json!({"StreamName": stream, "ShardCount": args.shards});
    kinesis.json("CreateStream", request).await?;
    let deadline = Instant::now() + Duration::from_secs(args.create_timeout_secs);
    loop {
        let request = json!({"StreamName": stream});
        let summary = kinesis.json("DescribeStreamSummary", request).await?;
        let status = summary["StreamDescriptionSummary"]["StreamStatus"]
            .as_str()
            .unwrap_or("?");
        if status == "ACTIVE" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "stream {stream} still {status} after {}s",
                args.create_timeout_secs
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn join(tasks: Vec<tokio::task::JoinHandle<()>>) -> Result<(), String> {
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

async fn run(args: &'static Args) -> Result<bool, String> {
    let uri = format!("{}/", args.endpoint.trim_end_matches('/'));
    let kinesis = Kinesis {
        client: Client::builder(TokioExecutor::new()).build_http(),
        uri: uri
            .parse()
            .map_err(|e| format!("bad --endpoint {uri}: {e}"))?,
        timeout: Duration::from_secs(args.request_timeout_secs),
    };
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let default_name = || format!("http-load-{}-{millis}", std::process::id());
    let stream: &'static str = args.stream.clone().unwrap_or_else(default_name).leak();
    let Args {
        label,
        endpoint,
        shards,
        producers,
        batch,
        record_size,
        ..
    } = args;
    println!(
        "http-load [{label}] {endpoint}: stream {stream}, {shards} shards, {producers} producers \
         x PutRecords of {batch} x {record_size} B, {} s",
        args.duration_secs
    );
    create_stream(&kinesis, args, stream).await?;

    let (cpu0, started) = (cpu_now(args), Instant::now());
    let end = started + Duration::from_secs(args.duration_secs);
    let phase = Phase {
        kinesis: kinesis.clone(),
        args,
        stream,
        end,
        tally: Tally::shared(),
    };
    let producers = (0..args.producers).map(|id| tokio::spawn(produce(phase.clone(), id)));
    join(producers.collect()).await?;
    let (wall, cpu1) = (started.elapsed(), cpu_now(args));
    let (put_summary, acknowledged) = {
        let put = phase.tally.lock().expect("tally lock");
        let cpu = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
        (put.report("put", wall, cpu), put.records)
    };

    // ListShards answers at most 1,000 shards a page: follow NextToken (bounded).
    let mut shard_ids: Vec<String> = Vec::new();
    let mut page = kinesis
        .json("ListShards", json!({"StreamName": stream}))
        .await?;
    for _ in 0..1000 {
        let shards = page["Shards"].as_array().cloned().unwrap_or_default();
        shard_ids.extend(
            shards
                .iter()
                .filter_map(|s| s["ShardId"].as_str().map(str::to_owned)),
        );
        let Some(token) = page["NextToken"].as_str().map(str::to_owned) else {
            break;
        };
        page = kinesis
            .json("ListShards", json!({"NextToken": token}))
            .await?;
    }
    let ids = shard_ids.into_iter();
    let started = Instant::now();
    let end = started + Duration::from_secs(args.read_timeout_secs);
    let phase = Phase {
        kinesis,
        args,
        stream,
        end,
        tally: Tally::shared(),
    };
    let readers = ids.map(|shard| tokio::spawn(read_shard(phase.clone(), shard)));
    join(readers.collect()).await?;
    let (wall, cpu2) = (started.elapsed(), cpu_now(args));
    let get = phase.tally.lock().expect("tally lock");
    let get_summary = get.report("get", wall, (cpu2.0 - cpu1.0, cpu2.1 - cpu1.1));

    let matches = get.records == acknowledged && get.corrupt == 0;
    let read = get.records;
    let verdict = if matches {
        "exact match, no corrupt data"
    } else {
        "MISMATCH"
    };
    println!("check: acknowledged {acknowledged} records, read back {read} ({verdict})");
    let summary = json!({
        "label": args.label, "endpoint": args.endpoint, "stream": stream, "shards": args.shards,
        "producers": args.producers, "batch": args.batch, "record_size": args.record_size,
        "duration_secs": args.duration_secs, "put": put_summary, "get": get_summary,
        "read_matches_acknowledged": matches,
    });
    println!("SUMMARY {summary}");
    Ok(matches)
}

#[tokio::main]
async fn main() {
    let args: &'static Args = Box::leak(Box::new(Args::parse()));
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("http-load [{}]: {error}", args.label);
            std::process::exit(2);
        }
    }
}
