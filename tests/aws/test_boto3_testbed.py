"""Against a second Rheo server that has the per-shard limits on (Rheo's default), the testbed
clock, and a reshard delay and consumer activation delay of 1.5 s: throttling, iterator and
token expiry, retention, UPDATING and CREATING states. Section numbers refer to the Kinesis
reference (shared/reference/kinesis-api.md)."""

import datetime
import re
import threading
import time

from kutil import ACCOUNT, drain, expect_error, iterator, poll_status, shard_id, stream_arn

UTC = datetime.timezone.utc


def test_put_records_partial_failure_under_throttling(limited, limited_stream):
    client = limited.client
    name = limited_stream(prefix="throttle")
    # One shard takes 1,000 records/s (ref. 2.5); 500-record batches back to back exceed it.
    throttled = None
    total_ok = 0
    for batch in range(6):
        entries = [{"Data": b"%d-%d" % (batch, i), "PartitionKey": f"k{i}"} for i in range(500)]
        answer = client.put_records(StreamName=name, Records=entries)
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert len(answer["Records"]) == 500
        failed = [r for r in answer["Records"] if "ErrorCode" in r]
        assert answer["FailedRecordCount"] == len(failed)
        total_ok += 500 - len(failed)
        if failed:
            throttled = answer
            break
    assert throttled is not None, "3,000 records in well under a few seconds were all accepted"
    assert throttled["FailedRecordCount"] > 0
    message = (f"Rate exceeded for shard {shard_id(0)} in stream {name} "
               f"under account {ACCOUNT}.")
    for result in throttled["Records"]:
        if "ErrorCode" in result:
            assert result["ErrorCode"] == "ProvisionedThroughputExceededException"
            assert result["ErrorMessage"] == message
            assert "SequenceNumber" not in result
        else:
            assert result["ShardId"] == shard_id(0)
            assert result["SequenceNumber"].isdigit()
    # Only the accepted records were written.
    records, _ = drain(client, iterator(client, name, shard_id(0)), want=total_ok, pause=0.25,
                       max_calls=20)
    assert len(records) == total_ok


def test_put_record_throttled_by_bytes(limited, limited_stream):
    client = limited.client
    name = limited_stream(prefix="bytes")
    data = b"\x00" * (600 * 1024)
    # 1 MiB/s per shard (ref. 2.5): the second or third 600 KiB record in a row is refused.
    errors = []
    for _ in range(3):
        try:
            client.put_record(StreamName=name, Data=data, PartitionKey="k")
        except client.exceptions.ProvisionedThroughputExceededException as error:
            errors.append(error)
            break
    assert errors, "1.8 MiB in one shard within a moment was accepted"
    assert errors[0].response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_get_records_throttled_over_five_calls_per_second(limited, limited_stream):
    client = limited.client
    name = limited_stream(prefix="reads")
    client.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    it = iterator(client, name, shard_id(0))
    error = None
    for _ in range(12):
        try:
            client.get_records(ShardIterator=it)
        except client.exceptions.ProvisionedThroughputExceededException as raised:
            error = raised.response["Error"]
            break
    assert error is not None, "12 GetRecords calls in a moment were all served"
    # Ref. 2.11 example: "Rate exceeded for Shard - 123456789012/stream/shardId-000000000003".
    assert re.fullmatch(rf"Rate exceeded for Shard - {ACCOUNT}/.+/{shard_id(0)}", error["Message"])


def test_expired_iterator_and_next_token(limited, limited_stream):
    client = limited.client
    name = limited_stream(shards=3, prefix="expiry")
    client.put_record(StreamName=name, Data=b"x", PartitionKey="k", ExplicitHashKey="0")
    it = iterator(client, name, shard_id(0))
    token = client.list_shards(StreamName=name, MaxResults=1)["NextToken"]
    limited.advance_clock("6m")
    # Ref. 2.6: 300 s after issue an iterator is expired.
    expect_error(
        "ExpiredIteratorException", client.get_records, ShardIterator=it,
        match=r"^Iterator expired\. The iterator was created at time .+ while right now it is .+ "
              r"which is further in the future than the tolerated delay of 300000 milliseconds\.$")
    # Ref. 2.10: ListShards NextToken lives 300 s.
    expect_error("ExpiredNextTokenException", client.list_shards, NextToken=token)
    # A fresh iterator works.
    assert len(client.get_records(ShardIterator=iterator(client, name, shard_id(0)))["Records"]) == 1


def test_retention_hides_old_records(limited, limited_stream):
    client = limited.client
    name = limited_stream(prefix="retention")
    client.put_record(StreamName=name, Data=b"old", PartitionKey="k")
    time.sleep(0.25)
    assert [r["Data"] for r in drain(client, iterator(client, name, shard_id(0)), want=1)[0]] == [b"old"]
    limited.advance_clock("25h")  # past the default 24 h retention
    time.sleep(0.25)
    assert drain(client, iterator(client, name, shard_id(0)), pause=0.25, max_calls=3)[0] == []
    client.put_record(StreamName=name, Data=b"new", PartitionKey="k")
    time.sleep(0.25)
    records, _ = drain(client, iterator(client, name, shard_id(0)), want=1, pause=0.25, max_calls=4)
    assert [r["Data"] for r in records] == [b"new"]
    # AT_TIMESTAMP before the trim horizon acts as TRIM_HORIZON (ref. 2.6).
    time.sleep(0.25)
    old = datetime.datetime(2001, 1, 1, tzinfo=UTC)
    records, _ = drain(client, iterator(client, name, shard_id(0), "AT_TIMESTAMP", Timestamp=old),
                       want=1, pause=0.25, max_calls=4)
    assert [r["Data"] for r in records] == [b"new"]
    # The testbed's minimum retention is 1 hour; decreasing hides records older than that.
    client.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=1)
    limited.advance_clock("2h")
    time.sleep(0.25)
    assert drain(client, iterator(client, name, shard_id(0)), pause=0.25, max_calls=3)[0] == []


def test_stream_is_updating_while_a_reshard_runs(limited, limited_stream):
    client = limited.client
    name = limited_stream(shards=2, prefix="updating")
    outcome = {}

    def split():
        try:
            client.split_shard(StreamName=name, ShardToSplit=shard_id(0),
                               NewStartingHashKey=str(2**126))
            outcome["ok"] = True
        except Exception as error:  # noqa: BLE001 - reported below
            outcome["error"] = error

    thread = threading.Thread(target=split, daemon=True)
    thread.start()
    status = poll_status(client, name, "UPDATING")
    assert status == "UPDATING", "the stream is UPDATING while the reshard is delayed (ref. 2.9)"
    # Another reshard meanwhile (ref. 2.9 / 4).
    expect_error("ResourceInUseException", client.merge_shards, StreamName=name,
                 ShardToMerge=shard_id(0), AdjacentShardToMerge=shard_id(1),
                 message=f"Stream {name} under account {ACCOUNT} not ACTIVE, instead in state UPDATING")
    # Writes and reads keep working during UPDATING.
    put = client.put_record(StreamName=name, Data=b"during", PartitionKey="k",
                            ExplicitHashKey=str(2**128 - 1))
    assert put["ShardId"] == shard_id(1)
    thread.join(15)
    assert outcome.get("ok"), outcome
    # The waiter sees ACTIVE again.
    client.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
    assert client.describe_stream_summary(
        StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 3


def test_consumer_is_creating_then_active(limited, limited_stream):
    client = limited.client
    name = limited_stream(prefix="creating")
    arn = stream_arn(name)
    consumers = [client.register_stream_consumer(StreamARN=arn, ConsumerName=f"c{i}")["Consumer"]
                 for i in range(5)]
    assert [c["ConsumerStatus"] for c in consumers] == ["CREATING"] * 5
    assert client.describe_stream_consumer(
        ConsumerARN=consumers[0]["ConsumerARN"])["ConsumerDescription"]["ConsumerStatus"] == "CREATING"
    # Ref. 3: at most 5 consumers of a stream in CREATING; a 6th -> LimitExceededException.
    expect_error("LimitExceededException", client.register_stream_consumer, StreamARN=arn,
                 ConsumerName="c5")
    deadline = time.monotonic() + 10
    while True:
        statuses = [c["ConsumerStatus"] for c in client.list_stream_consumers(StreamARN=arn)["Consumers"]]
        if statuses == ["ACTIVE"] * 5:
            break
        assert time.monotonic() < deadline, statuses
        time.sleep(0.2)
    client.register_stream_consumer(StreamARN=arn, ConsumerName="c5")
