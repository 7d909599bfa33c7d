//! CreateStream, DeleteStream, ListStreams, DescribeStreamSummary, DescribeStream,
//! Increase/DecreaseStreamRetentionPeriod, DescribeLimits.

use rheo_proto::v1 as pb;
use rheo_streams::{CreateStream, LimitsOverride, Result, Store, StreamMode};

use crate::convert;

pub(crate) async fn create_stream(
    store: &Store,
    request: pb::CreateStreamRequest,
) -> Result<pb::CreateStreamResponse> {
    let mode = match super::known(
        request.stream_mode,
        "streamModeDetails.streamMode",
        "PROVISIONED, ON_DEMAND",
    )? {
        pb::StreamMode::Unspecified => None,
        pb::StreamMode::Provisioned => Some(StreamMode::Provisioned),
        pb::StreamMode::OnDemand => Some(StreamMode::OnDemand),
    };
    store
        .create_stream(CreateStream {
            name: request.stream_name,
            shard_count: request.shard_count.map(i64::from),
            mode,
            tags: request.tags.into_iter().collect(),
            max_record_size_kib: request.max_record_size_in_kib.map(i64::from),
            retention_hours: request.retention_period_hours.map(i64::from),
            limits: request
                .shard_limits
                .map(|limits| LimitsOverride {
                    enabled: limits.enabled,
                    write_bytes_per_sec: limits.write_bytes_per_sec,
                    write_records_per_sec: limits.write_records_per_sec,
                    read_bytes_per_sec: limits.read_bytes_per_sec,
                    read_calls_per_sec: limits.read_calls_per_sec,
                })
                .unwrap_or_default(),
        })
        .await?;
    Ok(pb::CreateStreamResponse {})
}

pub(crate) async fn delete_stream(
    store: &Store,
    request: pb::DeleteStreamRequest,
) -> Result<pb::DeleteStreamResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    store
        .delete_stream(&name, request.enforce_consumer_deletion)
        .await?;
    Ok(pb::DeleteStreamResponse {})
}

pub(crate) fn list_streams(
    store: &Store,
    request: pb::ListStreamsRequest,
) -> Result<pb::ListStreamsResponse> {
    let page = store.list_streams(
        request.limit.map(i64::from),
        &request.exclusive_start_stream_name,
        &request.next_token,
    )?;
    Ok(pb::ListStreamsResponse {
        stream_names: page.streams.iter().map(|info| info.name.clone()).collect(),
        has_more_streams: page.has_more,
        next_token: page.next_token.unwrap_or_default(),
        stream_summaries: page
            .streams
            .into_iter()
            .map(convert::stream_summary)
            .collect(),
    })
}

pub(crate) fn describe_stream_summary(
    store: &Store,
    request: pb::DescribeStreamSummaryRequest,
) -> Result<pb::DescribeStreamSummaryResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    Ok(pb::DescribeStreamSummaryResponse {
        stream_description_summary: Some(convert::summary(store.describe_stream_summary(&name)?)),
    })
}

pub(crate) fn describe_stream(
    store: &Store,
    request: pb::DescribeStreamRequest,
) -> Result<pb::DescribeStreamResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    let (info, shards, has_more_shards) = store.describe_stream(
        &name,
        request.limit.map(i64::from),
        &request.exclusive_start_shard_id,
    )?;
    Ok(pb::DescribeStreamResponse {
        stream_description: Some(pb::StreamDescription {
            stream_name: info.name,
            stream_arn: info.arn,
            stream_status: convert::status(info.status),
            stream_mode: convert::mode(info.mode),
            shards: shards.into_iter().map(convert::shard).collect(),
            has_more_shards,
            retention_period_hours: info.retention_hours as i32,
            stream_creation_timestamp_ms: info.created_ms,
            encryption_type: info.encryption.type_name().into(),
            key_id: info.encryption.key_id().map(str::to_string),
        }),
    })
}

pub(crate) async fn increase_retention(
    store: &Store,
    request: pb::IncreaseStreamRetentionPeriodRequest,
) -> Result<pb::IncreaseStreamRetentionPeriodResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    store
        .change_retention(&name, i64::from(request.retention_period_hours), true)
        .await?;
    Ok(pb::IncreaseStreamRetentionPeriodResponse {})
}

pub(crate) async fn decrease_retention(
    store: &Store,
    request: pb::DecreaseStreamRetentionPeriodRequest,
) -> Result<pb::DecreaseStreamRetentionPeriodResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    store
        .change_retention(&name, i64::from(request.retention_period_hours), false)
        .await?;
    Ok(pb::DecreaseStreamRetentionPeriodResponse {})
}

pub(crate) async fn start_encryption(
    store: &Store,
    request: pb::StartStreamEncryptionRequest,
) -> Result<pb::StartStreamEncryptionResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    store
        .start_stream_encryption(&name, &request.encryption_type, &request.key_id)
        .await?;
    Ok(pb::StartStreamEncryptionResponse {})
}

pub(crate) async fn stop_encryption(
    store: &Store,
    request: pb::StopStreamEncryptionRequest,
) -> Result<pb::StopStreamEncryptionResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    store
        .stop_stream_encryption(&name, &request.encryption_type, &request.key_id)
        .await?;
    Ok(pb::StopStreamEncryptionResponse {})
}

pub(crate) fn describe_limits(store: &Store) -> pb::DescribeLimitsResponse {
    let limits = store.describe_limits();
    pb::DescribeLimitsResponse {
        shard_limit: limits.shard_limit as i32,
        open_shard_count: limits.open_shard_count as i32,
        on_demand_stream_count: limits.on_demand_stream_count as i32,
        on_demand_stream_count_limit: limits.on_demand_stream_count_limit as i32,
    }
}
