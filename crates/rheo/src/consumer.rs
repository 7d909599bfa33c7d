//! `rheo consumer ...` (enhanced fan-out consumers) and `rheo read --consumer` (records pushed
//! by SubscribeToShard instead of polled with GetRecords).

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

/// Reads `shard_ids` of `stream` through SubscribeToShard as consumer `consumer_name`,
/// printing each record with `emit`. Without `follow` a shard is done once an event says it is
/// caught up; with it, sessions are renewed from their continuation until interrupted.
pub(crate) async fn read_pushed(
    endpoint: &Endpoint,
    stream: &str,
    consumer_name: &str,
    shard_ids: Vec<String>,
    start: pb::StartingPosition,
    follow: bool,
    emit: impl Fn(RecordLine<'_>) -> anyhow::Result<bool>,
) -> anyhow::Result<ExitCode> {
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
    // One task per shard; records reach the printer through a small channel, so a slow
    // terminal slows the subscriptions (and the server sees a slow consumer), nothing piles up.
    let (sender, mut receiver) = mpsc::channel::<anyhow::Result<(String, pb::Record)>>(64);
    for shard_id in shard_ids {
        let sender = sender.clone();
        let client = client.clone();
        let consumer_arn = consumer_arn.clone();
        let start = start.clone();
        tokio::spawn(async move {
            let result =
                subscribe_shard(client, &consumer_arn, &shard_id, start, follow, &sender).await;
            if let Err(error) = result {
                let _ = sender.send(Err(error)).await;
            }
        });
    }
    drop(sender);
    while let Some(item) = receiver.recv().await {
        let (shard_id, record) = item?;
        if !emit(RecordLine {
            shard_id: &shard_id,
            record: &record,
        })? {
            return Ok(ExitCode::SUCCESS);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn subscribe_shard(
    mut client: rheo_proto::v1::kinesis_client::KinesisClient<tonic::transport::Channel>,
    consumer_arn: &str,
    shard_id: &str,
    mut start: pb::StartingPosition,
    follow: bool,
    sender: &mpsc::Sender<anyhow::Result<(String, pb::Record)>>,
) -> anyhow::Result<()> {
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
                    .send(Ok((shard_id.to_string(), record)))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
            let Some(continuation) = event.continuation_sequence_number else {
                return Ok(()); // the end of a closed shard
            };
            start = pb::StartingPosition {
                r#type: pb::ShardIteratorType::AfterSequenceNumber as i32,
                sequence_number: Some(continuation),
                timestamp_ms: None,
            };
            if !follow && event.millis_behind_latest == 0 {
                return Ok(());
            }
        }
        if !follow {
            return Ok(());
        }
    }
}
