"""Enhanced fan-out through boto3: consumer registration and SubscribeToShard over HTTP/1.1
(botocore parses the event stream). Section numbers refer to the Kinesis reference
(shared/reference/kinesis-api.md)."""

import datetime
import re
import threading
import time

import pytest
from botocore.exceptions import ClientError

from kutil import (ACCOUNT, MAX_HASH, REGION, expect_error, shard_id, stream_arn, unique,
                   wait_consumer_active)

UTC = datetime.timezone.utc


def consumer_arn_re(stream, consumer):
    return re.compile(
        rf"^arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{re.escape(stream)}/consumer/"
        rf"{re.escape(consumer)}:\d+$")


def register(kinesis, stream, consumer):
    answer = kinesis.register_stream_consumer(StreamARN=stream_arn(stream), ConsumerName=consumer)
    return answer["Consumer"]


def test_register_describe_list_deregister(kinesis, new_stream):
    name = new_stream(prefix="efo")
    consumer = register(kinesis, name, "billing")
    assert consumer["ConsumerName"] == "billing"
    assert consumer_arn_re(name, "billing").match(consumer["ConsumerARN"])
    assert consumer["ConsumerStatus"] in ("CREATING", "ACTIVE")
    created = consumer["ConsumerCreationTimestamp"]
    assert abs((created - datetime.datetime.now(UTC)).total_seconds()) < 60
    # The ARN ends with the registration time in epoch seconds (ref. 2.1).
    assert abs(int(consumer["ConsumerARN"].rsplit(":", 1)[1]) - created.timestamp()) <= 1

    description = wait_consumer_active(kinesis, consumer["ConsumerARN"])
    assert description["ConsumerName"] == "billing"
    assert description["ConsumerARN"] == consumer["ConsumerARN"]
    assert description["StreamARN"] == stream_arn(name)
    # By stream ARN and name, and by all three when they agree.
    by_name = kinesis.describe_stream_consumer(
        StreamARN=stream_arn(name), ConsumerName="billing")["ConsumerDescription"]
    assert by_name["ConsumerARN"] == consumer["ConsumerARN"]
    kinesis.describe_stream_consumer(StreamARN=stream_arn(name), ConsumerName="billing",
                                     ConsumerARN=consumer["ConsumerARN"])

    # The same name again in the same stream.
    expect_error("ResourceInUseException", kinesis.register_stream_consumer,
                 StreamARN=stream_arn(name), ConsumerName="billing")

    others = [register(kinesis, name, n) for n in ("audit", "search")]
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["ConsumerCount"] == 3
    first = kinesis.list_stream_consumers(StreamARN=stream_arn(name), MaxResults=1)
    assert len(first["Consumers"]) == 1 and first["NextToken"]
    listed = []
    for page in kinesis.get_paginator("list_stream_consumers").paginate(
            StreamARN=stream_arn(name), PaginationConfig={"PageSize": 1}):
        assert len(page["Consumers"]) <= 1
        listed.extend(page["Consumers"])
    assert sorted(c["ConsumerName"] for c in listed) == ["audit", "billing", "search"]
    assert {c["ConsumerARN"] for c in listed} == {
        consumer["ConsumerARN"], *(o["ConsumerARN"] for o in others)}
    for c in listed:
        assert c["ConsumerStatus"] in ("CREATING", "ACTIVE")

    # Deregister by ARN, and by stream ARN + name.
    kinesis.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    kinesis.deregister_stream_consumer(StreamARN=stream_arn(name), ConsumerName="audit")
    deadline = time.monotonic() + 10
    while True:
        names = [c["ConsumerName"] for c in kinesis.list_stream_consumers(
            StreamARN=stream_arn(name))["Consumers"]]
        if names == ["search"]:
            break
        assert time.monotonic() < deadline, names
        time.sleep(0.2)
    expect_error("ResourceNotFoundException", kinesis.describe_stream_consumer,
                 ConsumerARN=consumer["ConsumerARN"])

    # Registering a name again gives a new ARN (ref. 2.1).
    again = register(kinesis, name, "billing")
    assert again["ConsumerARN"] != consumer["ConsumerARN"]
    assert consumer_arn_re(name, "billing").match(again["ConsumerARN"])


def test_consumer_errors(kinesis, new_stream):
    name = new_stream(prefix="efoerr")
    missing = unique("missing")
    expect_error("ResourceNotFoundException", kinesis.register_stream_consumer,
                 StreamARN=stream_arn(missing), ConsumerName="c")
    expect_error("ResourceNotFoundException", kinesis.describe_stream_consumer,
                 StreamARN=stream_arn(name), ConsumerName="nobody")
    expect_error("ResourceNotFoundException", kinesis.list_stream_consumers,
                 StreamARN=stream_arn(missing))
    expect_error("ValidationException", kinesis.register_stream_consumer,
                 StreamARN=stream_arn(name), ConsumerName="bad name/")


def test_delete_stream_with_consumers_needs_enforce(kinesis):
    name = unique("efodel")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    consumer = register(kinesis, name, "c1")
    try:
        expect_error("ResourceInUseException", kinesis.delete_stream, StreamName=name)
        assert kinesis.describe_stream_summary(
            StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE"
        kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        kinesis.get_waiter("stream_not_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
        expect_error("ResourceNotFoundException", kinesis.describe_stream_consumer,
                     ConsumerARN=consumer["ConsumerARN"])
    finally:
        try:
            kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
        except Exception:
            pass


class Subscription:
    """Reads a SubscribeToShard event stream on a thread, so the test never blocks on it."""

    def __init__(self, kinesis, consumer_arn, shard, position):
        self.response = kinesis.subscribe_to_shard(
            ConsumerARN=consumer_arn, ShardId=shard, StartingPosition=position)
        self.events = []
        self.error = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for event in self.response["EventStream"]:
                self.events.append(event)
                if len(self.events) >= 200:
                    break
        except Exception as error:  # noqa: BLE001 - reported to the test
            self.error = error
        finally:
            self.done.set()

    def shard_events(self):
        return [e["SubscribeToShardEvent"] for e in self.events if "SubscribeToShardEvent" in e]

    def records(self):
        return [r for e in self.shard_events() for r in e["Records"]]

    def wait_for(self, condition, timeout=15):
        deadline = time.monotonic() + timeout
        while not condition(self):
            if self.done.is_set() and not condition(self):
                raise AssertionError(f"the event stream ended early: {self.error!r} {self.events}")
            assert time.monotonic() < deadline, f"timed out; events so far: {self.events}"
            time.sleep(0.05)

    def close(self):
        self.response["EventStream"].close()
        self.done.wait(10)


@pytest.fixture()
def subscriptions():
    opened = []
    yield opened
    for subscription in opened:
        subscription.close()


def test_subscribe_to_shard_delivers_old_and_new_records(kinesis, new_stream, subscriptions):
    name = new_stream(prefix="sub")
    before = [kinesis.put_record(StreamName=name, Data=b"before %d" % i, PartitionKey="k")
              for i in range(3)]
    consumer = register(kinesis, name, "reader")
    wait_consumer_active(kinesis, consumer["ConsumerARN"])
    sub = Subscription(kinesis, consumer["ConsumerARN"], shard_id(0), {"Type": "TRIM_HORIZON"})
    subscriptions.append(sub)
    assert sub.response["ResponseMetadata"]["HTTPStatusCode"] == 200
    sub.wait_for(lambda s: len(s.records()) >= 3)
    first = sub.shard_events()[0]
    assert set(first) >= {"Records", "ContinuationSequenceNumber", "MillisBehindLatest"}
    # Records put after subscribing arrive too, binary data intact.
    after = [kinesis.put_record(StreamName=name, Data=bytes([0xff, i, 0x00]), PartitionKey="k")
             for i in range(2)]
    sub.wait_for(lambda s: len(s.records()) >= 5)
    records = sub.records()
    assert [r["Data"] for r in records] == [b"before 0", b"before 1", b"before 2",
                                            b"\xff\x00\x00", b"\xff\x01\x00"]
    assert [r["SequenceNumber"] for r in records] == [
        a["SequenceNumber"] for a in before + after]
    for record in records:
        assert record["PartitionKey"] == "k"
        assert abs((record["ApproximateArrivalTimestamp"]
                    - datetime.datetime.now(UTC)).total_seconds()) < 60
    events = sub.shard_events()
    continuation = [int(e["ContinuationSequenceNumber"]) for e in events]
    assert continuation == sorted(continuation), "ContinuationSequenceNumber never goes back"
    last_with_records = [e for e in events if e["Records"]][-1]
    assert int(last_with_records["ContinuationSequenceNumber"]) >= int(after[-1]["SequenceNumber"])
    assert all(isinstance(e["MillisBehindLatest"], int) for e in events)
    assert events[-1]["MillisBehindLatest"] == 0
    # With no new records the stream keeps sending (heartbeat) events with a continuation number.
    count = len(events)
    sub.wait_for(lambda s: len(s.shard_events()) > count, timeout=12)
    assert sub.shard_events()[-1]["Records"] == []
    assert sub.shard_events()[-1]["ContinuationSequenceNumber"]


def test_subscribe_resumes_after_continuation(kinesis, new_stream, subscriptions):
    name = new_stream(shards=2, prefix="subresume")
    puts = [kinesis.put_record(StreamName=name, Data=b"%d" % i, PartitionKey="a")
            for i in range(4)]
    assert {p["ShardId"] for p in puts} == {shard_id(0)}
    consumer = register(kinesis, name, "resumer")
    wait_consumer_active(kinesis, consumer["ConsumerARN"])
    sub = Subscription(kinesis, consumer["ConsumerARN"], shard_id(0), {
        "Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": puts[1]["SequenceNumber"]})
    subscriptions.append(sub)
    sub.wait_for(lambda s: len(s.records()) >= 2)
    assert [r["Data"] for r in sub.records()] == [b"2", b"3"]
    # AT_TIMESTAMP far in the past starts at the oldest record.
    other = register(kinesis, name, "timestamps")
    wait_consumer_active(kinesis, other["ConsumerARN"])
    old = Subscription(kinesis, other["ConsumerARN"], shard_id(0), {
        "Type": "AT_TIMESTAMP", "Timestamp": datetime.datetime(2001, 1, 1, tzinfo=UTC)})
    subscriptions.append(old)
    old.wait_for(lambda s: len(s.records()) >= 4)
    assert [r["Data"] for r in old.records()] == [b"0", b"1", b"2", b"3"]


def test_second_subscription_within_five_seconds_is_in_use(kinesis, new_stream, subscriptions):
    name = new_stream(prefix="subtwice")
    consumer = register(kinesis, name, "only")
    wait_consumer_active(kinesis, consumer["ConsumerARN"])
    sub = Subscription(kinesis, consumer["ConsumerARN"], shard_id(0), {"Type": "LATEST"})
    subscriptions.append(sub)
    sub.wait_for(lambda s: len(s.events) >= 1)
    expect_error("ResourceInUseException", kinesis.subscribe_to_shard,
                 ConsumerARN=consumer["ConsumerARN"], ShardId=shard_id(0),
                 StartingPosition={"Type": "LATEST"})


def test_subscribe_errors(kinesis, new_stream):
    name = new_stream(prefix="suberr")
    fake = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}/consumer/nobody:1700000000"
    expect_error("ResourceNotFoundException", kinesis.subscribe_to_shard, ConsumerARN=fake,
                 ShardId=shard_id(0), StartingPosition={"Type": "LATEST"})
    consumer = register(kinesis, name, "c")
    wait_consumer_active(kinesis, consumer["ConsumerARN"])
    expect_error("ResourceNotFoundException", kinesis.subscribe_to_shard,
                 ConsumerARN=consumer["ConsumerARN"], ShardId=shard_id(3),
                 StartingPosition={"Type": "LATEST"})


def test_subscription_of_split_shard_ends_with_child_shards(kinesis, new_stream, subscriptions):
    name = new_stream(prefix="subsplit")
    kinesis.put_record(StreamName=name, Data=b"parent", PartitionKey="k")
    consumer = register(kinesis, name, "lineage")
    wait_consumer_active(kinesis, consumer["ConsumerARN"])
    sub = Subscription(kinesis, consumer["ConsumerARN"], shard_id(0), {"Type": "TRIM_HORIZON"})
    subscriptions.append(sub)
    sub.wait_for(lambda s: len(s.records()) >= 1)
    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**127))
    # Ref. 3: the final event carries ChildShards and no ContinuationSequenceNumber; then the
    # stream ends.
    sub.wait_for(lambda s: s.done.is_set(), timeout=15)
    assert sub.error is None, sub.error
    final = sub.shard_events()[-1]
    assert final.get("ContinuationSequenceNumber") is None
    children = sorted(final["ChildShards"], key=lambda c: c["ShardId"])
    assert [c["ShardId"] for c in children] == [shard_id(1), shard_id(2)]
    assert all(c["ParentShards"] == [shard_id(0)] for c in children)
    assert children[0]["HashKeyRange"] == {
        "StartingHashKey": "0", "EndingHashKey": str(2**127 - 1)}
    assert children[1]["HashKeyRange"] == {
        "StartingHashKey": str(2**127), "EndingHashKey": str(MAX_HASH)}
    assert [r["Data"] for r in sub.records()] == [b"parent"]


def test_at_most_twenty_consumers_per_stream(kinesis, new_stream):
    name = new_stream(prefix="twenty")
    for i in range(20):
        register(kinesis, name, f"c{i:02d}")
    # Ref. 3: 20 consumers per stream.
    expect_error("LimitExceededException", kinesis.register_stream_consumer,
                 StreamARN=stream_arn(name), ConsumerName="c20")


def test_deregistering_ends_subscription_with_resource_not_found(kinesis, new_stream,
                                                                 subscriptions):
    name = new_stream(prefix="subdereg")
    consumer = register(kinesis, name, "leaving")
    wait_consumer_active(kinesis, consumer["ConsumerARN"])
    sub = Subscription(kinesis, consumer["ConsumerARN"], shard_id(0), {"Type": "LATEST"})
    subscriptions.append(sub)
    sub.wait_for(lambda s: len(s.events) >= 1)
    kinesis.deregister_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
    # Ref. 3: an in-stream ResourceNotFoundException event, which botocore raises.
    assert sub.done.wait(10), "the subscription did not end"
    assert isinstance(sub.error, ClientError), repr(sub.error)
    assert sub.error.response["Error"]["Code"] == "ResourceNotFoundException"


def test_later_subscription_takes_over(kinesis, new_stream, subscriptions):
    name = new_stream(prefix="takeover")
    consumer = register(kinesis, name, "twice")
    wait_consumer_active(kinesis, consumer["ConsumerARN"])
    first = Subscription(kinesis, consumer["ConsumerARN"], shard_id(0), {"Type": "TRIM_HORIZON"})
    subscriptions.append(first)
    first.wait_for(lambda s: len(s.events) >= 1)
    time.sleep(5.3)
    # Ref. 3: 5 s or more later a new subscription takes over; the earlier one fails with
    # ResourceInUseException.
    second = Subscription(kinesis, consumer["ConsumerARN"], shard_id(0), {"Type": "TRIM_HORIZON"})
    subscriptions.append(second)
    assert first.done.wait(10), "the earlier subscription did not end"
    assert isinstance(first.error, ClientError), repr(first.error)
    assert first.error.response["Error"]["Code"] == "ResourceInUseException"
    kinesis.put_record(StreamName=name, Data=b"for the new one", PartitionKey="k")
    second.wait_for(lambda s: len(s.records()) >= 1)
    assert [r["Data"] for r in second.records()] == [b"for the new one"]
