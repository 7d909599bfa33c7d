//! Operator commands that talk to a running server with the generated gRPC client.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use rheo_client::{LineageReader, Start};
use rheo_proto::v1 as pb;
use rheo_proto::v1::admin_client::AdminClient;
use rheo_proto::v1::kinesis_client::KinesisClient;
use tonic::transport::Channel;

/// Where the server is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Endpoint {
    /// The server's gRPC address.
    #[arg(
        long,
        env = "RHEO_ENDPOINT",
        default_value = "http://127.0.0.1:4567",
        global = true
    )]
    endpoint: String,
    /// PEM certificate to trust for an https:// endpoint, besides the system's roots (for a
    /// server with a self-signed or private-CA certificate).
    #[arg(long, env = "RHEO_CA_CERT", global = true)]
    ca_cert: Option<std::path::PathBuf>,
}

impl Endpoint {
    /// A channel to the server: TLS for https:// endpoints, trusting the system's roots and
    /// `--ca-cert`.
    pub(crate) async fn channel(&self) -> anyhow::Result<Channel> {
        let mut endpoint = tonic::transport::Endpoint::from_shared(self.endpoint.clone())
            .with_context(|| format!("endpoint {:?} is not a URL", self.endpoint))?;
        if self.endpoint.starts_with("https://") {
            let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
            if let Some(path) = &self.ca_cert {
                let pem = std::fs::read(path)
                    .with_context(|| format!("reading the CA certificate {}", path.display()))?;
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
            }
            endpoint = endpoint.tls_config(tls).context("setting up TLS")?;
        }
        endpoint
            .connect()
            .await
            .with_context(|| format!("connecting to {}", self.endpoint))
    }

    pub(crate) async fn kinesis(&self) -> anyhow::Result<KinesisClient<Channel>> {
        let client = KinesisClient::new(self.channel().await?);
        Ok(client.max_decoding_message_size(rheo_server::MAX_MESSAGE_BYTES))
    }
}

pub(crate) fn explain(status: tonic::Status) -> anyhow::Error {
    let name = rheo_server::kinesis_name(&status).unwrap_or_else(|| format!("{:?}", status.code()));
    anyhow::anyhow!("{name}: {}", status.message())
}

/// `rheo stream ...`
#[derive(Debug, clap::Args)]
pub(crate) struct StreamArgs {
    #[command(subcommand)]
    action: StreamAction,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(Debug, clap::Subcommand)]
enum StreamAction {
    /// Create a stream.
    Create {
        /// Stream name.
        name: String,
        /// Number of shards.
        #[arg(long, default_value_t = 1)]
        shards: i32,
        /// Create an on-demand stream (4 shards) instead.
        #[arg(long)]
        on_demand: bool,
        /// Retention in hours.
        #[arg(long)]
        retention_hours: Option<i32>,
    },
    /// List streams.
    List,
    /// Describe a stream and its shards.
    Describe {
        /// Stream name.
        name: String,
    },
    /// Split an open shard in two (at the middle of its hash keys unless `--at` says where).
    Split {
        /// Stream name.
        name: String,
        /// The shard to split.
        #[arg(long)]
        shard: String,
        /// The decimal hash key where the upper child starts.
        #[arg(long)]
        at: Option<String>,
    },
    /// Merge two adjacent open shards into one.
    Merge {
        /// Stream name.
        name: String,
        /// One shard.
        shard: String,
        /// The shard next to it.
        adjacent: String,
    },
    /// Rescale to a number of shards with equal hash-key ranges (half to double the current).
    Scale {
        /// Stream name.
        name: String,
        /// The shard count wanted.
        #[arg(long)]
        shards: i32,
    },
    /// Switch the capacity mode: `provisioned` or `on-demand`.
    Mode {
        /// Stream name.
        name: String,
        /// `provisioned` or `on-demand`.
        mode: String,
    },
    /// Encrypt every record written from now on under a key of the server's keyring.
    Encrypt {
        /// Stream name.
        name: String,
        /// A key id, key ARN, alias or alias ARN.
        #[arg(long, default_value = "alias/aws/kinesis")]
        key: String,
    },
    /// Store records written from now on unencrypted (stored ones stay encrypted).
    Unencrypt {
        /// Stream name.
        name: String,
        /// The key the stream is encrypted with, in any form `encrypt` takes.
        #[arg(long, default_value = "alias/aws/kinesis")]
        key: String,
    },
    /// Delete a stream and its data.
    Delete {
        /// Stream name.
        name: String,
        /// Deregister its enhanced fan-out consumers too (refused otherwise while any exist).
        #[arg(long)]
        enforce_consumer_deletion: bool,
    },
}

pub(crate) async fn stream(args: StreamArgs) -> anyhow::Result<ExitCode> {
    let mut client = args.endpoint.kinesis().await?;
    match args.action {
        StreamAction::Encrypt { name, key } => {
            client
                .start_stream_encryption(pb::StartStreamEncryptionRequest {
                    stream_name: name.clone(),
                    encryption_type: "KMS".into(),
                    key_id: key.clone(),
                    ..Default::default()
                })
                .await
                .map_err(explain)?;
            println!("{name}: records written from now on are encrypted under {key}");
        }
        StreamAction::Unencrypt { name, key } => {
            client
                .stop_stream_encryption(pb::StopStreamEncryptionRequest {
                    stream_name: name.clone(),
                    encryption_type: "KMS".into(),
                    key_id: key,
                    ..Default::default()
                })
                .await
                .map_err(explain)?;
            println!("{name}: records written from now on are stored unencrypted");
        }
        StreamAction::Create {
            name,
            shards,
            on_demand,
            retention_hours,
        } => {
            let request = pb::CreateStreamRequest {
                stream_name: name.clone(),
                shard_count: (!on_demand).then_some(shards),
                stream_mode: if on_demand {
                    pb::StreamMode::OnDemand
                } else {
                    pb::StreamMode::Provisioned
                } as i32,
                retention_period_hours: retention_hours,
                ..Default::default()
            };
            client.create_stream(request).await.map_err(explain)?;
            println!("created {name}");
        }
        StreamAction::List => {
            let mut next_token = String::new();
            loop {
                let page = client
                    .list_streams(pb::ListStreamsRequest {
                        next_token: next_token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(explain)?
                    .into_inner();
                for name in page.stream_names {
                    println!("{name}");
                }
                if !page.has_more_streams {
                    break;
                }
                next_token = page.next_token;
            }
        }
        StreamAction::Describe { name } => {
            let summary = client
                .describe_stream_summary(pb::DescribeStreamSummaryRequest {
                    stream_name: name.clone(),
                    ..Default::default()
                })
                .await
                .map_err(explain)?
                .into_inner()
                .stream_description_summary
                .context("empty response")?;
            println!("name:       {}", summary.stream_name);
            println!("arn:        {}", summary.stream_arn);
            println!(
                "status:     {}",
                pb::StreamStatus::try_from(summary.stream_status)
                    .map(|s| s.as_str_name())
                    .unwrap_or("?")
            );
            println!(
                "mode:       {}",
                pb::StreamMode::try_from(summary.stream_mode)
                    .map(|s| s.as_str_name())
                    .unwrap_or("?")
            );
            println!("retention:  {} hours", summary.retention_period_hours);
            match &summary.key_id {
                Some(key) => println!("encryption: {} ({key})", summary.encryption_type),
                None => println!("encryption: {}", summary.encryption_type),
            }
            println!("max record: {} KiB", summary.max_record_size_in_kib);
            for shard in list_shards(&mut client, &name).await? {
                let range = shard.hash_key_range.unwrap_or_default();
                let closed = shard
                    .sequence_number_range
                    .and_then(|range| range.ending_sequence_number)
                    .map_or(String::new(), |end| format!("  closed at {end}"));
                let parents: Vec<String> = shard
                    .parent_shard_id
                    .into_iter()
                    .chain(shard.adjacent_parent_shard_id)
                    .collect();
                let parents = if parents.is_empty() {
                    String::new()
                } else {
                    format!("  from {}", parents.join(" + "))
                };
                println!(
                    "{}  hash keys {}..={}{parents}{closed}",
                    shard.shard_id, range.starting_hash_key, range.ending_hash_key
                );
            }
        }
        StreamAction::Split { name, shard, at } => {
            let at = match at {
                Some(at) => at,
                None => {
                    let found = list_shards(&mut client, &name)
                        .await?
                        .into_iter()
                        .find(|s| s.shard_id == shard)
                        .with_context(|| format!("no shard {shard} in stream {name}"))?;
                    let range = found.hash_key_range.unwrap_or_default();
                    let start: u128 = range.starting_hash_key.parse()?;
                    let end: u128 = range.ending_hash_key.parse()?;
                    (start + (end - start) / 2 + 1).to_string()
                }
            };
            client
                .split_shard(pb::SplitShardRequest {
                    stream_name: name.clone(),
                    shard_to_split: shard.clone(),
                    new_starting_hash_key: at.clone(),
                    ..Default::default()
                })
                .await
                .map_err(explain)?;
            println!("split {shard} of {name} at {at}");
        }
        StreamAction::Merge {
            name,
            shard,
            adjacent,
        } => {
            client
                .merge_shards(pb::MergeShardsRequest {
                    stream_name: name.clone(),
                    shard_to_merge: shard.clone(),
                    adjacent_shard_to_merge: adjacent.clone(),
                    ..Default::default()
                })
                .await
                .map_err(explain)?;
            println!("merged {shard} and {adjacent} of {name}");
        }
        StreamAction::Scale { name, shards } => {
            let response = client
                .update_shard_count(pb::UpdateShardCountRequest {
                    stream_name: name.clone(),
                    target_shard_count: shards,
                    scaling_type: "UNIFORM_SCALING".into(),
                    ..Default::default()
                })
                .await
                .map_err(explain)?
                .into_inner();
            println!(
                "scaled {name} from {} to {} shards",
                response.current_shard_count, response.target_shard_count
            );
        }
        StreamAction::Mode { name, mode } => {
            let stream_mode = match mode.as_str() {
                "provisioned" => pb::StreamMode::Provisioned,
                "on-demand" => pb::StreamMode::OnDemand,
                other => bail!("mode must be provisioned or on-demand, got {other:?}"),
            };
            client
                .update_stream_mode(pb::UpdateStreamModeRequest {
                    stream_name: name.clone(),
                    stream_mode: stream_mode as i32,
                    ..Default::default()
                })
                .await
                .map_err(explain)?;
            println!("{name} is now {mode}");
        }
        StreamAction::Delete {
            name,
            enforce_consumer_deletion,
        } => {
            client
                .delete_stream(pb::DeleteStreamRequest {
                    stream_name: name.clone(),
                    enforce_consumer_deletion,
                    ..Default::default()
                })
                .await
                .map_err(explain)?;
            println!("deleted {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Creates provisioned stream `stream` with `shards` shards (limits as the server sets them)
/// and returns its shard ids: how the load generators start.
pub(crate) async fn create_bench_stream(
    client: &mut KinesisClient<Channel>,
    stream: &str,
    shards: i32,
) -> anyhow::Result<Vec<String>> {
    client
        .create_stream(pb::CreateStreamRequest {
            stream_name: stream.to_string(),
            shard_count: Some(shards),
            ..Default::default()
        })
        .await
        .map_err(explain)?;
    Ok(list_shards(client, stream)
        .await?
        .into_iter()
        .map(|shard| shard.shard_id)
        .collect())
}

pub(crate) async fn list_shards(
    client: &mut KinesisClient<Channel>,
    stream: &str,
) -> anyhow::Result<Vec<pb::Shard>> {
    let mut shards = Vec::new();
    let mut next_token = String::new();
    loop {
        let request = if next_token.is_empty() {
            pb::ListShardsRequest {
                stream_name: stream.to_string(),
                ..Default::default()
            }
        } else {
            pb::ListShardsRequest {
                next_token: next_token.clone(),
                ..Default::default()
            }
        };
        let page = client
            .list_shards(request)
            .await
            .map_err(explain)?
            .into_inner();
        shards.extend(page.shards);
        if page.next_token.is_empty() {
            return Ok(shards);
        }
        next_token = page.next_token;
    }
}

/// `rheo put`
#[derive(Debug, clap::Args)]
pub(crate) struct PutArgs {
    /// Stream name.
    #[arg(long)]
    stream: String,
    /// Partition key of every record [default: the line itself].
    #[arg(long)]
    partition_key: Option<String>,
    #[command(flatten)]
    endpoint: Endpoint,
}

pub(crate) async fn put(args: PutArgs) -> anyhow::Result<ExitCode> {
    let mut client = args.endpoint.kinesis().await?;
    let mut batch = Vec::new();
    let mut lines = std::io::stdin().lock().lines();
    let mut failed = 0;
    loop {
        let line = lines.next().transpose()?;
        if let Some(line) = &line {
            if line.is_empty() {
                continue;
            }
            batch.push(pb::PutRecordsRequestEntry {
                partition_key: args
                    .partition_key
                    .clone()
                    .unwrap_or_else(|| line.chars().take(256).collect()),
                data: bytes::Bytes::from(line.clone().into_bytes()),
                explicit_hash_key: None,
            });
        }
        if batch.len() == 500 || (line.is_none() && !batch.is_empty()) {
            let response = client
                .put_records(pb::PutRecordsRequest {
                    stream_name: args.stream.clone(),
                    records: std::mem::take(&mut batch),
                    ..Default::default()
                })
                .await
                .map_err(explain)?
                .into_inner();
            for record in response.records {
                match (record.shard_id, record.sequence_number, record.error_code) {
                    (Some(shard), Some(sequence), _) => println!("{shard}\t{sequence}"),
                    (_, _, error) => {
                        failed += 1;
                        eprintln!(
                            "failed: {} {}",
                            error.unwrap_or_default(),
                            record.error_message.unwrap_or_default()
                        );
                    }
                }
            }
        }
        if line.is_none() {
            break;
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `rheo read`
#[derive(Debug, clap::Args)]
pub(crate) struct ReadArgs {
    /// Stream name.
    #[arg(long)]
    stream: String,
    /// Only this shard [default: every shard, parents before children across reshards].
    #[arg(long)]
    shard: Option<String>,
    /// Where to start: `trim-horizon`, `latest`, `at-timestamp:<ms>` or `at-sequence:<n>`.
    #[arg(long, default_value = "trim-horizon")]
    from: String,
    /// Keep reading new records until interrupted.
    #[arg(long)]
    follow: bool,
    /// Output: `text` (tab-separated) or `json` (one object per line, data in base64).
    #[arg(long, default_value = "text")]
    output: String,
    /// Have records pushed to this registered consumer (SubscribeToShard) instead of polling.
    #[arg(long)]
    consumer: Option<String>,
    #[command(flatten)]
    endpoint: Endpoint,
}

/// One record to print, with its shard.
pub(crate) struct RecordLine<'a> {
    pub(crate) shard_id: &'a str,
    pub(crate) record: &'a pb::Record,
}

impl RecordLine<'_> {
    fn format(&self, json: bool) -> String {
        let record = self.record;
        if json {
            serde_json::json!({
                "shard_id": self.shard_id,
                "sequence_number": record.sequence_number,
                "partition_key": record.partition_key,
                "arrival_ms": record.approximate_arrival_timestamp_ms,
                "data": base64::engine::general_purpose::STANDARD.encode(&record.data),
            })
            .to_string()
        } else {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                self.shard_id,
                record.sequence_number,
                record.approximate_arrival_timestamp_ms,
                record.partition_key,
                String::from_utf8_lossy(&record.data)
            )
        }
    }
}

pub(crate) async fn read(args: ReadArgs) -> anyhow::Result<ExitCode> {
    if args.output != "text" && args.output != "json" {
        bail!("--output must be text or json, got {:?}", args.output);
    }
    let mut client = args.endpoint.kinesis().await?;
    let listing = list_shards(&mut client, &args.stream).await?;
    let listing: Vec<pb::Shard> = match &args.shard {
        Some(only) => listing
            .into_iter()
            .filter(|shard| &shard.shard_id == only)
            .map(|shard| pb::Shard {
                // One shard asked for: no lineage to follow.
                parent_shard_id: None,
                adjacent_parent_shard_id: None,
                ..shard
            })
            .collect(),
        None => listing,
    };
    if let (Some(only), true) = (&args.shard, listing.is_empty()) {
        bail!("no shard {only} in stream {}", args.stream);
    }
    let shard_ids: Vec<String> = listing.iter().map(|s| s.shard_id.clone()).collect();
    let (kind, sequence, timestamp) = match args.from.split_once(':') {
        None if args.from == "trim-horizon" => (pb::ShardIteratorType::TrimHorizon, None, None),
        None if args.from == "latest" => (pb::ShardIteratorType::Latest, None, None),
        Some(("at-timestamp", ms)) => (
            pb::ShardIteratorType::AtTimestamp,
            None,
            Some(ms.parse::<i64>().context("timestamp in ms")?),
        ),
        Some(("at-sequence", n)) => (
            pb::ShardIteratorType::AtSequenceNumber,
            Some(n.to_string()),
            None,
        ),
        _ => bail!(
            "--from must be trim-horizon, latest, at-timestamp:<ms> or at-sequence:<n>, got {:?}",
            args.from
        ),
    };
    let json = args.output == "json";
    if let Some(consumer) = &args.consumer {
        let start = pb::StartingPosition {
            r#type: kind as i32,
            sequence_number: sequence,
            timestamp_ms: timestamp,
        };
        let read = crate::consumer::PushedRead {
            stream: &args.stream,
            consumer,
            shards: listing,
            start,
            follow: args.follow,
            lineage: args.shard.is_none(),
        };
        return crate::consumer::read_pushed(&args.endpoint, read, |line| emit(&line.format(json)))
            .await;
    }
    // Every shard: parents are read to their end before their children, across reshards, so
    // each partition key's records come out in order.
    let lineage_start = match kind {
        _ if args.shard.is_some() => None,
        pb::ShardIteratorType::TrimHorizon => Some(Start::TrimHorizon),
        pb::ShardIteratorType::Latest => Some(Start::Latest),
        pb::ShardIteratorType::AtTimestamp => timestamp.map(Start::AtTimestamp),
        _ => None,
    };
    if let Some(start) = lineage_start {
        let mut reader = LineageReader::new(client, &args.stream, start, args.follow)
            .await
            .map_err(explain)?;
        while let Some(batch) = reader.next().await.map_err(explain)? {
            for record in &batch.records {
                let line = RecordLine {
                    shard_id: &batch.shard_id,
                    record,
                };
                if !emit(&line.format(json))? {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut iterators = Vec::new();
    for shard_id in &shard_ids {
        let iterator = client
            .get_shard_iterator(pb::GetShardIteratorRequest {
                stream_name: args.stream.clone(),
                shard_id: shard_id.clone(),
                shard_iterator_type: kind as i32,
                starting_sequence_number: sequence.clone(),
                timestamp_ms: timestamp,
                ..Default::default()
            })
            .await
            .map_err(explain)?
            .into_inner()
            .shard_iterator;
        iterators.push((shard_id.clone(), Some(iterator)));
    }
    loop {
        let mut any_records = false;
        for (shard_id, iterator) in iterators.iter_mut() {
            let Some(current) = iterator.take() else {
                continue;
            };
            let page = client
                .get_records(pb::GetRecordsRequest {
                    shard_iterator: current,
                    ..Default::default()
                })
                .await
                .map_err(explain)?
                .into_inner();
            any_records |= !page.records.is_empty();
            for record in &page.records {
                let line = RecordLine { shard_id, record }.format(json);
                if !emit(&line)? {
                    // The reader of our output went away (`rheo read | head`): stop quietly.
                    return Ok(ExitCode::SUCCESS);
                }
            }
            *iterator = page.next_shard_iterator;
        }
        if !any_records {
            if !args.follow || iterators.iter().all(|(_, iterator)| iterator.is_none()) {
                return Ok(ExitCode::SUCCESS);
            }
            // Kinesis allows 5 GetRecords calls per second per shard.
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Writes one line to stdout; `Ok(false)` if stdout is a closed pipe.
fn emit(line: &str) -> anyhow::Result<bool> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// `rheo clock advance <duration>`
#[derive(Debug, clap::Args)]
pub(crate) struct ClockArgs {
    #[command(subcommand)]
    action: ClockAction,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(Debug, clap::Subcommand)]
enum ClockAction {
    /// Move the server's clock forward, e.g. `36h`, `90m`, `2d`.
    Advance {
        /// How far.
        by: String,
    },
}

pub(crate) async fn clock(args: ClockArgs) -> anyhow::Result<ExitCode> {
    let ClockAction::Advance { by } = args.action;
    let advance = crate::config::parse_duration(&by)?;
    let mut client = AdminClient::new(args.endpoint.channel().await?);
    let response = client
        .advance_clock(pb::AdvanceClockRequest {
            advance_ms: advance.as_millis() as i64,
        })
        .await
        .map_err(explain)?
        .into_inner();
    println!(
        "server time is now {} ({} ahead of real time)",
        rheo_streams::format_time(response.now_ms),
        humanize(response.offset_ms)
    );
    Ok(ExitCode::SUCCESS)
}

fn humanize(ms: i64) -> String {
    let hours = ms / 3_600_000;
    let minutes = ms % 3_600_000 / 60_000;
    format!("{hours}h{minutes:02}m")
}
