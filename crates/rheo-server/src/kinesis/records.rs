//! The data-plane and consumer operations of the Kinesis HTTP front end: PutRecord,
//! PutRecords, GetShardIterator, GetRecords and the four consumer calls, each decoding its
//! input, calling the gRPC service's handler and encoding the answer.

use rheo_proto::v1 as pb;
use rheo_streams::Store;
use serde::Serialize;

use super::convert;
use super::model::{
    ConsumerInput, GetRecordsInput, GetShardIteratorInput, PutRecordInput, PutRecordsInput,
    PutRecordsResultEntry,
};
use super::operations::{Answer, answer, decode, domain, empty};
use super::wire::Format;
use crate::handlers::{consumers, records};

pub(super) async fn put_record(store: &Store, format: Format, input: PutRecordInput) -> Answer {
    let request = pb::PutRecordRequest {
        stream_name: input.stream_name,
        stream_arn: input.stream_arn,
        data: input.data.0,
        partition_key: input.partition_key,
        explicit_hash_key: input.explicit_hash_key,
        sequence_number_for_ordering: input.sequence_number_for_ordering,
    };
    let response = domain(records::put_record(store, request).await)?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        shard_id: String,
        sequence_number: String,
        encryption_type: &'static str,
    }
    answer(
        format,
        &Output {
            shard_id: response.shard_id,
            sequence_number: response.sequence_number,
            encryption_type: convert::encryption_type(&response.encryption_type),
        },
    )
}

pub(super) async fn put_records(store: &Store, format: Format, input: PutRecordsInput) -> Answer {
    domain(rheo_streams::check_put_records_count(input.records.len))?;
    let request = pb::PutRecordsRequest {
        stream_name: input.stream_name,
        stream_arn: input.stream_arn,
        records: input
            .records
            .items
            .into_iter()
            .map(|entry| pb::PutRecordsRequestEntry {
                data: entry.data.0,
                partition_key: entry.partition_key,
                explicit_hash_key: entry.explicit_hash_key,
            })
            .collect(),
    };
    let response = domain(records::put_records(store, request).await)?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        failed_record_count: i32,
        records: Vec<PutRecordsResultEntry>,
        encryption_type: &'static str,
    }
    answer(
        format,
        &Output {
            failed_record_count: response.failed_record_count,
            records: response
                .records
                .into_iter()
                .map(|entry| PutRecordsResultEntry {
                    sequence_number: entry.sequence_number,
                    shard_id: entry.shard_id,
                    error_code: entry.error_code,
                    error_message: entry.error_message,
                })
                .collect(),
            encryption_type: convert::encryption_type(&response.encryption_type),
        },
    )
}

pub(super) async fn get_shard_iterator(
    store: &Store,
    format: Format,
    input: GetShardIteratorInput,
) -> Answer {
    let request = pb::GetShardIteratorRequest {
        stream_name: input.stream_name,
        stream_arn: input.stream_arn,
        shard_id: input.shard_id,
        shard_iterator_type: convert::iterator_type(&input.shard_iterator_type) as i32,
        starting_sequence_number: input.starting_sequence_number,
        timestamp_ms: input.timestamp.map(|at| at.0),
    };
    let response = domain(records::get_shard_iterator(store, request).await)?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        shard_iterator: String,
    }
    answer(
        format,
        &Output {
            shard_iterator: response.shard_iterator,
        },
    )
}

pub(super) async fn get_records(store: &Store, format: Format, input: GetRecordsInput) -> Answer {
    let request = pb::GetRecordsRequest {
        shard_iterator: input.shard_iterator,
        stream_arn: input.stream_arn,
        limit: input.limit,
    };
    let response = domain(records::get_records(store, request).await)?;
    let records: Vec<super::model::Record> =
        response.records.into_iter().map(convert::record).collect();
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Rest {
        #[serde(skip_serializing_if = "Option::is_none")]
        next_shard_iterator: Option<String>,
        millis_behind_latest: i64,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        child_shards: Vec<super::model::ChildShard>,
    }
    let rest = Rest {
        next_shard_iterator: response.next_shard_iterator,
        millis_behind_latest: response.millis_behind_latest,
        child_shards: response
            .child_shards
            .into_iter()
            .map(convert::child_shard)
            .collect(),
    };
    Ok(Some(format.encode_with_records(&records, &rest)))
}

pub(super) async fn consumer_call(
    store: &Store,
    operation: &str,
    format: Format,
    body: &[u8],
) -> Answer {
    let input: ConsumerInput = decode(format, body)?;
    match operation {
        "RegisterStreamConsumer" => {
            let request = pb::RegisterStreamConsumerRequest {
                stream_name: String::new(),
                stream_arn: input.stream_arn,
                consumer_name: input.consumer_name,
            };
            let response = domain(consumers::register(store, request).await)?;
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Output {
                consumer: super::model::Consumer,
            }
            let consumer = convert::consumer(response.consumer.unwrap_or_default());
            answer(format, &Output { consumer })
        }
        "DeregisterStreamConsumer" => {
            let request = pb::DeregisterStreamConsumerRequest {
                stream_name: String::new(),
                stream_arn: input.stream_arn,
                consumer_name: input.consumer_name,
                consumer_arn: input.consumer_arn,
            };
            empty(consumers::deregister(store, request).await)
        }
        "DescribeStreamConsumer" => {
            let request = pb::DescribeStreamConsumerRequest {
                stream_name: String::new(),
                stream_arn: input.stream_arn,
                consumer_name: input.consumer_name,
                consumer_arn: input.consumer_arn,
            };
            let response = domain(consumers::describe(store, request))?;
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Output {
                consumer_description: super::model::Consumer,
            }
            let consumer_description =
                convert::consumer_description(response.consumer_description.unwrap_or_default());
            answer(
                format,
                &Output {
                    consumer_description,
                },
            )
        }
        _ => {
            let request = pb::ListStreamConsumersRequest {
                stream_name: String::new(),
                stream_arn: input.stream_arn,
                next_token: input.next_token.unwrap_or_default(),
                max_results: input.max_results,
                stream_creation_timestamp_ms: input.stream_creation_timestamp.map(|at| at.0),
            };
            let response = domain(consumers::list(store, request))?;
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Output {
                consumers: Vec<super::model::Consumer>,
                #[serde(skip_serializing_if = "Option::is_none")]
                next_token: Option<String>,
            }
            answer(
                format,
                &Output {
                    consumers: response
                        .consumers
                        .into_iter()
                        .map(convert::consumer)
                        .collect(),
                    next_token: response.next_token,
                },
            )
        }
    }
}
