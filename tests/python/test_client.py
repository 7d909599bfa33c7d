"""The any-language promise: a Python client generated from proto/ with grpcio-tools creates a
stream, puts and reads records, encrypts a stream, and branches on the Kinesis error names the
server sends."""

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def kinesis_error(error):
    """The Kinesis exception name in the status's google.rpc.ErrorInfo."""
    status = rpc_status.from_call(error)
    assert status is not None, "the status carries details"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            assert info.domain == "kinesis.rheo"
            return info.reason
    raise AssertionError("no ErrorInfo in the status")


@pytest.fixture()
def client(pb, server):
    kinesis_pb2, kinesis_pb2_grpc = pb
    with grpc.insecure_channel(server) as channel:
        yield kinesis_pb2, kinesis_pb2_grpc.KinesisStub(channel)


def test_create_put_read(client):
    pb2, stub = client
    stub.CreateStream(pb2.CreateStreamRequest(stream_name="py-stream", shard_count=2))
    summary = stub.DescribeStreamSummary(pb2.DescribeStreamSummaryRequest(stream_name="py-stream"))
    assert summary.stream_description_summary.stream_status == pb2.ACTIVE
    assert summary.stream_description_summary.open_shard_count == 2

    put = stub.PutRecord(pb2.PutRecordRequest(stream_name="py-stream", partition_key="a", data=b"hello"))
    assert put.shard_id == "shardId-000000000000"  # MD5("a") is in the lower half
    batch = stub.PutRecords(pb2.PutRecordsRequest(
        stream_name="py-stream",
        records=[pb2.PutRecordsRequestEntry(partition_key="a", data=b"world %d" % i) for i in range(3)],
    ))
    assert batch.failed_record_count == 0
    assert [int(r.sequence_number) for r in batch.records] == sorted(int(r.sequence_number) for r in batch.records)

    iterator = stub.GetShardIterator(pb2.GetShardIteratorRequest(
        stream_name="py-stream", shard_id=put.shard_id, shard_iterator_type=pb2.TRIM_HORIZON,
    )).shard_iterator
    records = stub.GetRecords(pb2.GetRecordsRequest(shard_iterator=iterator)).records
    assert [r.data for r in records] == [b"hello", b"world 0", b"world 1", b"world 2"]
    assert records[0].sequence_number == put.sequence_number

    after = stub.GetShardIterator(pb2.GetShardIteratorRequest(
        stream_name="py-stream", shard_id=put.shard_id,
        shard_iterator_type=pb2.AFTER_SEQUENCE_NUMBER, starting_sequence_number=put.sequence_number,
    )).shard_iterator
    assert len(stub.GetRecords(pb2.GetRecordsRequest(shard_iterator=after)).records) == 3


def test_errors_carry_kinesis_names(client):
    pb2, stub = client
    with pytest.raises(grpc.RpcError) as missing:
        stub.DescribeStreamSummary(pb2.DescribeStreamSummaryRequest(stream_name="no-such-stream"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert kinesis_error(missing.value) == "ResourceNotFoundException"

    stub.CreateStream(pb2.CreateStreamRequest(stream_name="py-errors", shard_count=1))
    with pytest.raises(grpc.RpcError) as duplicate:
        stub.CreateStream(pb2.CreateStreamRequest(stream_name="py-errors", shard_count=1))
    assert kinesis_error(duplicate.value) == "ResourceInUseException"

    with pytest.raises(grpc.RpcError) as long_key:
        stub.PutRecord(pb2.PutRecordRequest(stream_name="py-errors", partition_key="k" * 257, data=b"x"))
    assert kinesis_error(long_key.value) == "ValidationException"

    with pytest.raises(grpc.RpcError) as forged:
        stub.GetRecords(pb2.GetRecordsRequest(shard_iterator="forged"))
    assert kinesis_error(forged.value) == "InvalidArgumentException"
    assert forged.value.details() == "Invalid ShardIterator."


def test_subscribe_to_shard_pushes_records(client):
    pb2, stub = client
    stub.CreateStream(pb2.CreateStreamRequest(stream_name="py-fanout", shard_count=1))
    stream_arn = stub.DescribeStreamSummary(
        pb2.DescribeStreamSummaryRequest(stream_name="py-fanout")
    ).stream_description_summary.stream_arn
    consumer = stub.RegisterStreamConsumer(
        pb2.RegisterStreamConsumerRequest(stream_arn=stream_arn, consumer_name="py-reader")
    ).consumer
    assert consumer.consumer_status == pb2.CONSUMER_STATUS_CREATING
    assert consumer.consumer_arn.startswith(stream_arn + "/consumer/py-reader:")
    described = stub.DescribeStreamConsumer(
        pb2.DescribeStreamConsumerRequest(consumer_arn=consumer.consumer_arn)
    ).consumer_description
    assert described.consumer_status == pb2.CONSUMER_STATUS_ACTIVE

    first = stub.PutRecord(pb2.PutRecordRequest(stream_name="py-fanout", partition_key="k", data=b"before"))
    events = stub.SubscribeToShard(pb2.SubscribeToShardRequest(
        consumer_arn=consumer.consumer_arn,
        shard_id="shardId-000000000000",
        starting_position=pb2.StartingPosition(type=pb2.TRIM_HORIZON),
    ), timeout=30)
    received = []
    last = None
    for event in events:
        received.extend(r.data for r in event.records)
        last = event.continuation_sequence_number
        if received == [b"before"]:
            # Subscribed and caught up: records put now are pushed.
            stub.PutRecords(pb2.PutRecordsRequest(
                stream_name="py-fanout",
                records=[pb2.PutRecordsRequestEntry(partition_key="k", data=b"pushed %d" % i) for i in range(2)],
            ))
        if len(received) >= 3:
            break
    events.cancel()
    assert received == [b"before", b"pushed 0", b"pushed 1"]
    assert int(last) > int(first.sequence_number)

    # A second subscription within 5 seconds is refused with the Kinesis name.
    with pytest.raises(grpc.RpcError) as in_use:
        next(iter(stub.SubscribeToShard(pb2.SubscribeToShardRequest(
            consumer_arn=consumer.consumer_arn,
            shard_id="shardId-000000000000",
            starting_position=pb2.StartingPosition(type=pb2.LATEST),
        ), timeout=30)))
    assert kinesis_error(in_use.value) == "ResourceInUseException"


def test_server_side_encryption(client):
    pb2, stub = client
    stub.CreateStream(pb2.CreateStreamRequest(stream_name="py-sealed", shard_count=1))
    with pytest.raises(grpc.RpcError) as unknown:
        stub.StartStreamEncryption(pb2.StartStreamEncryptionRequest(
            stream_name="py-sealed", encryption_type="KMS", key_id="alias/not-there"))
    assert unknown.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert kinesis_error(unknown.value) == "KMSNotFoundException"

    stub.StartStreamEncryption(pb2.StartStreamEncryptionRequest(
        stream_name="py-sealed", encryption_type="KMS", key_id="alias/aws/kinesis"))
    summary = stub.DescribeStreamSummary(
        pb2.DescribeStreamSummaryRequest(stream_name="py-sealed")).stream_description_summary
    assert (summary.encryption_type, summary.key_id) == ("KMS", "alias/aws/kinesis")
    put = stub.PutRecord(pb2.PutRecordRequest(stream_name="py-sealed", partition_key="a", data=b"sealed"))
    assert put.encryption_type == "KMS"
    stub.StopStreamEncryption(pb2.StopStreamEncryptionRequest(
        stream_name="py-sealed", encryption_type="KMS", key_id="alias/aws/kinesis"))
    after = stub.PutRecord(pb2.PutRecordRequest(stream_name="py-sealed", partition_key="a", data=b"plain"))
    assert after.encryption_type == "NONE"

    iterator = stub.GetShardIterator(pb2.GetShardIteratorRequest(
        stream_name="py-sealed", shard_id=put.shard_id, shard_iterator_type=pb2.TRIM_HORIZON,
    )).shard_iterator
    records = stub.GetRecords(pb2.GetRecordsRequest(shard_iterator=iterator)).records
    assert [(r.data, r.encryption_type) for r in records] == [(b"sealed", "KMS"), (b"plain", "NONE")]
