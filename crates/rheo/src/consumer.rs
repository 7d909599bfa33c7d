//! `rheo consumer ...` (enhanced fan-out consumers) and `rheo read --consumer` (records pushed
//! by SubscribeToShard instead of polled with GetRecords).

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use rheo_proto::v1 as pb;
use tokio::sync::mpsc;

use crate::client::{Endpoint, RecordLine, explain};

/// `rheo consumer ...`
#[derive(Debug, clap::Args)]
pub(crate) struct ConsumerArgs {
    #[command(subcommand)]
    action: ConsumerAction,
    #[command(flatten)]
    endpoint: Endpoint,
}

#[derive(Debug, clap::Subcommand)]
enum ConsumerAction {
    /// Register an enhanced fan-out consumer; prints its ARN.
    Register {
        /// Stream name.
        #[arg(long)]
        stream: String,
        /// Consumer name.
        name: String,
    },
    /// List a stream's consumers.
    List {
        /// Stream name.
        #[arg(long)]
        stream: String,
    },
    /// Deregister a consumer (its subscriptions end).
    Deregister {
        /// Stream name.
        #[arg(long)]
        stream: String,
        /// Consumer name.
        name: String,
    },
}

fn status_name(status: i32) -> &'static str {
    pb::ConsumerStatus::try_from(status)
        .map(|status| status.as_str_name().trim_start_matches("CONSUMER_STATUS_"))
        .unwrap_or("?")
}

pub(crate) async fn consumer(args: ConsumerArgs) -> anyhow::Result<ExitCode> {
    let mut client = args.endpoint.kinesis().await?;
    match args.action {
        ConsumerAction::Register { stream, name } => {
            let consumer = client
                .register_stream_consumer(pb::RegisterStreamConsumerRequest {
                    stream_name: stream,
                    consumer_name: name,
                    ..Default::default()
                })
                .await
                .map_err(explain)?
                .into_inner()
                .consumer
                .context("empty response")?;
            println!("{}", consumer.consumer_arn);
        }
        ConsumerAction::List { stream } => {
            let mut next_token = String::new();
            loop {
                let page = client
                    .list_stream_consumers(pb::ListStreamConsumersRequest {
                        stream_name: stream.clone(),
                        next_token: next_token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(explain)?
                    .into_inner();
                for consumer in page.consumers {
                    println!(
                        "{}\t{}\t{}",
                        consumer.consumer_name,
                        status_name(consumer.consumer_status),
                        consumer.consumer_arn
                    );
                }
                match page.next_token {
                    Some(token) => next_token = token,
                    None => break,
                }
            }
        }
        ConsumerAction::Deregister { stream, name } => {
            client
                .deregister_stream_consumer(pb::DeregisterStreamConsumerRequest {
                    stream_name: stream,
                    consumer_name: name.clone(),
                    ..Default::default()
                })
                .await
                .map_err(explain)?;
            println!("deregistered {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a shard's subscription task reports.
enum Pushed {
    Record(String, pb::Record),
    /// The task is over: with the children if its shard is closed and was read to the end.
    Done(String, Option<Vec<pb::ChildShard>>),
    Failed(anyhow::Error),
}

/// Reads `stream` through SubscribeToShard as consumer `consumer_name`, printing each record
/// with `emit`. `shards` is the stream's listing; a shard is subscribed once its parents are
/// read to their end (children of a closed shard from its first record), so each key's
/// records come out in order across reshards (children are followed only with `lineage`). Without `follow` a shard is done once an event
/// says it is caught up; with it, sessions are renewed from their continuation.
/// What `rheo read --consumer` asked for.
pub(crate) struct PushedRead<'a> {
    pub(crate) stream: &'a str,
    pub(crate) consumer: &'a str,
    /// The stream's shard listing (or the one shard asked for).
    pub(crate) shards: Vec<pb::Shard>,
    pub(crate) start: pb::StartingPosition,
    pub(crate) follow: bool,
    /// Follow children of closed shards (when reading the whole stream).
    pub(crate) lineage: bool,
}

pub(crate) async fn read_pushed(
    endpoint: &Endpoint,
    read: PushedRead<'_>,
    emit: impl Fn(RecordLine<'_>) -> anyhow::Result<bool>,
) -> anyhow::Result<ExitCode> {
    let PushedRead {
        stream,
        consumer: consumer_name,
        shards,
        start,
        follow,
        lineage,
    } = read;
    let mut client = endpoint.kinesis().await?;
    let consumer_arn = client
        .describe_stream_consumer(pb::DescribeStreamConsumerRequest {
            stream_name: stream.to_string(),
            consumer_name: consumer_name.to_string(),
            ..Default::default()
        })
        .await
        .map_err(explain)?
        .into_inner()
        .consumer_description
        .context("empty response")?
        .consumer_arn;
    let latest = start.r#type == pb::ShardIteratorType::Latest as i32;
    let mut parents: HashMap<String, Vec<String>> = shards
        .into_iter()
        // From LATEST only open shards matter.
        .filter(|shard| {
            !latest
                || shard
                    .sequence_number_range
                    .as_ref()
                    .is_none_or(|range| range.ending_sequence_number.is_none())
        })
        .map(|shard| {
            let of = shard
                .parent_shard_id
                .into_iter()
                .chain(shard.adjacent_parent_shard_id)
                .collect();
            (shard.shard_id, of)
        })
        .collect();
    let mut started: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    // One task per shard; records reach the printer through a small channel, so a slow
    // terminal slows the subscriptions (and the server sees a slow consumer), nothing piles up.
    let (sender, mut receiver) = mpsc::channel::<Pushed>(64);
    let spawn = |shard_id: String, start: pb::StartingPosition| {
        let sender = sender.clone();
        let client = client.clone();
        let consumer_arn = consumer_arn.clone();
        tokio::spawn(async move {
            let message =
                match subscribe_shard(client, &consumer_arn, &shard_id, start, follow, &sender)
                    .await
                {
                    Ok(children) => Pushed::Done(shard_id, children),
                    Err(error) => Pushed::Failed(error),
                };
            let _ = sender.send(message).await;
        });
    };
    let mut running = 0;
    loop {
        // Start every shard whose listed parents are all done.
        let ready: Vec<String> = parents
            .iter()
            .filter(|(id, of)| {
                !started.contains(*id)
                    && of
                        .iter()
                        .all(|parent| !parents.contains_key(parent) || finished.contains(parent))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            let from = if finished.iter().any(|done| parents[&id].contains(done)) {
                // A child reached through its parents: from its first record.
                pb::StartingPosition {
                    r#type: pb::ShardIteratorType::TrimHorizon as i32,
                    ..Default::default()
                }
            } else {
                start.clone()
            };
            started.insert(id.clone());
            running += 1;
            spawn(id, from);
        }
        if running == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        match receiver.recv().await.expect("a task holds the sender") {
            Pushed::Record(shard_id, record) => {
                if !emit(RecordLine {
                    shard_id: &shard_id,
                    record: &record,
                })? {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Pushed::Done(shard_id, children) => {
                running -= 1;
                // Children are followed when reading the whole stream, not one shard.
                if let Some(children) = children.filter(|_| lineage) {
                    finished.insert(shard_id);
                    for child in children {
                        parents.entry(child.shard_id).or_insert(child.parent_shards);
                    }
                }
            }
            Pushed::Failed(error) => return Err(error),
        }
    }
}

async fn subscribe_shard(
    mut client: rheo_proto::v1::kinesis_client::KinesisClient<tonic::transport::Channel>,
    consumer_arn: &str,
    shard_id: &str,
    mut start: pb::StartingPosition,
    follow: bool,
    sender: &mpsc::Sender<Pushed>,
) -> anyhow::Result<Option<Vec<pb::ChildShard>>> {
    let mut refusals = 0;
    loop {
        let subscribed = client
            .subscribe_to_shard(pb::SubscribeToShardRequest {
                consumer_arn: consumer_arn.to_string(),
                shard_id: shard_id.to_string(),
                starting_position: Some(start.clone()),
            })
            .await;
        let mut events = match subscribed {
            Ok(response) => response.into_inner(),
            // The previous session of this consumer and shard is less than 5 s old: it clears.
            Err(status)
                if refusals < 8
                    && rheo_server::kinesis_name(&status).as_deref()
                        == Some("ResourceInUseException") =>
            {
                refusals += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(status) => return Err(explain(status)),
        };
        refusals = 0;
        while let Some(event) = events.message().await.map_err(explain)? {
            for record in event.records {
                if sender
                    .send(Pushed::Record(shard_id.to_string(), record))
                    .await
                    .is_err()
                {
                    return Ok(None);
                }
            }
            let Some(continuation) = event.continuation_sequence_number else {
                return Ok(Some(event.child_shards)); // the end of a closed shard
            };
            start = pb::StartingPosition {
                r#type: pb::ShardIteratorType::AfterSequenceNumber as i32,
                sequence_number: Some(continuation),
                timestamp_ms: None,
            };
            if !follow && event.millis_behind_latest == 0 {
                return Ok(None);
            }
        }
        if !follow {
            return Ok(None);
        }
    }
}
