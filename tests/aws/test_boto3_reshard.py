"""Resharding through boto3: SplitShard, MergeShards, UpdateShardCount, UpdateStreamMode,
lineage, ChildShards at the end of a closed shard, ListShards filters.
Section numbers refer to the Kinesis reference (shared/reference/kinesis-api.md)."""

import datetime
import time

from kutil import (ACCOUNT, MAX_HASH, all_shards, drain, expect_error, iterator, shard_id,
                   shard_range, stream_arn, uniform_ranges)

HALF = 2**127


def wait_active(kinesis, name):
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})


def shards_by_id(kinesis, name):
    return {s["ShardId"]: s for s in all_shards(kinesis, name)}


def read_to_end(kinesis, name, shard):
    """Reads a closed shard until GetRecords gives no next iterator; returns (records, last)."""
    records, last = drain(kinesis, iterator(kinesis, name, shard), max_calls=40)
    assert last.get("NextShardIterator") is None, "a closed shard ends"
    return records, last


def test_split_shard_lineage_and_order(kinesis, new_stream):
    name = new_stream(shards=1, prefix="split")
    before = [kinesis.put_record(StreamName=name, Data=b"%d" % i, PartitionKey="k")
              for i in range(10)]
    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(HALF))
    wait_active(kinesis, name)
    shards = shards_by_id(kinesis, name)
    assert sorted(shards) == [shard_id(0), shard_id(1), shard_id(2)]
    parent = shards[shard_id(0)]
    assert parent["SequenceNumberRange"]["EndingSequenceNumber"].isdigit()
    assert int(parent["SequenceNumberRange"]["EndingSequenceNumber"]) >= int(before[-1]["SequenceNumber"])
    low, high = shards[shard_id(1)], shards[shard_id(2)]
    assert shard_range(low) == (0, HALF - 1)
    assert shard_range(high) == (HALF, MAX_HASH)
    for child in (low, high):
        assert child["ParentShardId"] == shard_id(0)
        assert "AdjacentParentShardId" not in child
        assert "EndingSequenceNumber" not in child["SequenceNumberRange"]
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2
    assert summary["StreamStatus"] == "ACTIVE"

    # New writes go to the children, with greater sequence numbers than the parent's.
    after = [kinesis.put_record(StreamName=name, Data=b"%d" % i, PartitionKey="k")
             for i in range(10, 20)]
    child_of_k = after[0]["ShardId"]
    assert {a["ShardId"] for a in after} == {child_of_k}
    assert child_of_k in (shard_id(1), shard_id(2))
    assert min(int(a["SequenceNumber"]) for a in after) > max(int(b["SequenceNumber"]) for b in before)

    # Reading the parent to its end gives ChildShards and no next iterator; then the child.
    parent_records, last = read_to_end(kinesis, name, shard_id(0))
    assert last["ChildShards"]
    children = {c["ShardId"]: c for c in last["ChildShards"]}
    assert sorted(children) == [shard_id(1), shard_id(2)]
    for child_id, child in children.items():
        assert child["ParentShards"] == [shard_id(0)]
        assert shard_range(child) == shard_range(shards[child_id])
    child_records, _ = drain(kinesis, iterator(kinesis, name, child_of_k), want=10)
    values = [int(r["Data"]) for r in parent_records + child_records]
    assert values == list(range(20)), "per-key order holds across the split"

    # GetShardIterator on the closed parent still works (AT_SEQUENCE_NUMBER of its last record).
    it = iterator(kinesis, name, shard_id(0), "AT_SEQUENCE_NUMBER",
                  StartingSequenceNumber=before[-1]["SequenceNumber"])
    rest, last = drain(kinesis, it)
    assert [r["Data"] for r in rest] == [b"9"]
    assert last.get("NextShardIterator") is None


def test_split_shard_errors(kinesis, new_stream):
    name = new_stream(shards=1, prefix="spliterr")
    # Ref. 2.11: the key must be greater than start + 1 and less than the end.
    expect_error("InvalidArgumentException", kinesis.split_shard, StreamName=name,
                 ShardToSplit=shard_id(0), NewStartingHashKey="1",
                 match="is not both greater than one plus the shard's StartingHashKey")
    expect_error("InvalidArgumentException", kinesis.split_shard, StreamName=name,
                 ShardToSplit=shard_id(0), NewStartingHashKey=str(MAX_HASH),
                 match="less than the shard's EndingHashKey")
    expect_error("ResourceNotFoundException", kinesis.split_shard, StreamName=name,
                 ShardToSplit=shard_id(5), NewStartingHashKey=str(HALF),
                 message=f"Could not find shard {shard_id(5)} in stream {name} under account {ACCOUNT}.")
    # Nothing changed.
    assert [s["ShardId"] for s in all_shards(kinesis, name)] == [shard_id(0)]


def test_merge_shards_lineage(kinesis, new_stream):
    name = new_stream(shards=2, prefix="merge")
    low = kinesis.put_record(StreamName=name, Data=b"low", PartitionKey="a")
    high = kinesis.put_record(StreamName=name, Data=b"high", PartitionKey="a",
                              ExplicitHashKey=str(MAX_HASH))
    assert (low["ShardId"], high["ShardId"]) == (shard_id(0), shard_id(1))
    kinesis.merge_shards(StreamName=name, ShardToMerge=shard_id(0),
                         AdjacentShardToMerge=shard_id(1))
    wait_active(kinesis, name)
    shards = shards_by_id(kinesis, name)
    assert sorted(shards) == [shard_id(0), shard_id(1), shard_id(2)]
    child = shards[shard_id(2)]
    assert child["ParentShardId"] == shard_id(0)
    assert child["AdjacentParentShardId"] == shard_id(1)
    assert shard_range(child) == (0, MAX_HASH)
    for parent in (shard_id(0), shard_id(1)):
        assert "EndingSequenceNumber" in shards[parent]["SequenceNumberRange"]
        records, last = read_to_end(kinesis, name, parent)
        assert len(records) == 1
        assert [(c["ShardId"], sorted(c["ParentShards"])) for c in last["ChildShards"]] == [
            (shard_id(2), [shard_id(0), shard_id(1)])]
        assert shard_range(last["ChildShards"][0]) == (0, MAX_HASH)
    put = kinesis.put_record(StreamName=name, Data=b"merged", PartitionKey="a")
    assert put["ShardId"] == shard_id(2)


def test_merge_shards_errors(kinesis, new_stream):
    name = new_stream(shards=3, prefix="mergeerr")
    expect_error("InvalidArgumentException", kinesis.merge_shards, StreamName=name,
                 ShardToMerge=shard_id(0), AdjacentShardToMerge=shard_id(2),
                 message=f"Shards {shard_id(0)} and {shard_id(2)} in stream {name} under account "
                         f"{ACCOUNT} are not an adjacent pair of shards eligible for merging")
    expect_error("ResourceNotFoundException", kinesis.merge_shards, StreamName=name,
                 ShardToMerge=shard_id(0), AdjacentShardToMerge=shard_id(9))


def test_update_shard_count(kinesis, new_stream):
    name = new_stream(shards=2, prefix="scale")
    answer = kinesis.update_shard_count(StreamName=name, TargetShardCount=4,
                                        ScalingType="UNIFORM_SCALING")
    assert answer["StreamName"] == name
    assert answer["CurrentShardCount"] == 2
    assert answer["TargetShardCount"] == 4
    assert answer.get("StreamARN", stream_arn(name)) == stream_arn(name)
    wait_active(kinesis, name)
    open_shards = [s for s in all_shards(kinesis, name)
                   if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    assert sorted(shard_range(s) for s in open_shards) == uniform_ranges(4)
    for shard in open_shards:
        assert shard["ParentShardId"] in (shard_id(0), shard_id(1))
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 4
    # Halving back.
    answer = kinesis.update_shard_count(StreamARN=stream_arn(name), TargetShardCount=2,
                                        ScalingType="UNIFORM_SCALING")
    assert answer["CurrentShardCount"] == 4 and answer["TargetShardCount"] == 2
    wait_active(kinesis, name)
    open_shards = [s for s in all_shards(kinesis, name)
                   if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    assert sorted(shard_range(s) for s in open_shards) == uniform_ranges(2)
    # Only UNIFORM_SCALING exists.
    expect_error("ValidationException", kinesis.update_shard_count, StreamName=name,
                 TargetShardCount=3, ScalingType="RANDOM_SCALING")


def test_update_stream_mode(kinesis, new_stream):
    name = new_stream(shards=2, prefix="mode")
    arn = stream_arn(name)
    kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "ON_DEMAND"})
    wait_active(kinesis, name)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert summary["OpenShardCount"] == 2  # the mode switch keeps the shard count (ref. 2.8)
    # Reshard APIs on an on-demand stream: ValidationException (ref. 2.8, 2.11).
    expect_error("ValidationException", kinesis.split_shard, StreamName=name,
                 ShardToSplit=shard_id(0), NewStartingHashKey=str(2**126))
    expect_error("ValidationException", kinesis.merge_shards, StreamName=name,
                 ShardToMerge=shard_id(0), AdjacentShardToMerge=shard_id(1))
    expect_error("ValidationException", kinesis.update_shard_count, StreamName=name,
                 TargetShardCount=4, ScalingType="UNIFORM_SCALING")
    # Data keeps flowing.
    put = kinesis.put_record(StreamName=name, Data=b"od", PartitionKey="a")
    assert put["ShardId"] == shard_id(0)
    kinesis.update_stream_mode(StreamARN=arn, StreamModeDetails={"StreamMode": "PROVISIONED"})
    wait_active(kinesis, name)
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    # Provisioned again: resharding works.
    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**126))
    wait_active(kinesis, name)
    assert kinesis.describe_stream_summary(
        StreamName=name)["StreamDescriptionSummary"]["OpenShardCount"] == 3


def test_list_shards_filters(kinesis, new_stream):
    name = new_stream(shards=2, prefix="filters")
    time.sleep(0.05)
    before_split = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(0.05)
    kinesis.split_shard(StreamName=name, ShardToSplit=shard_id(0), NewStartingHashKey=str(2**126))
    wait_active(kinesis, name)
    time.sleep(0.05)
    after_split = datetime.datetime.now(datetime.timezone.utc)

    def ids(**filter_):
        return sorted(s["ShardId"] for s in all_shards(kinesis, name, ShardFilter=filter_))

    everything = [shard_id(i) for i in range(4)]
    assert sorted(s["ShardId"] for s in all_shards(kinesis, name)) == everything
    assert ids(Type="FROM_TRIM_HORIZON") == everything
    assert ids(Type="AT_TRIM_HORIZON") == [shard_id(0), shard_id(1)]
    assert ids(Type="AT_LATEST") == [shard_id(1), shard_id(2), shard_id(3)]
    assert ids(Type="AFTER_SHARD_ID", ShardId=shard_id(1)) == [shard_id(2), shard_id(3)]
    assert ids(Type="AT_TIMESTAMP", Timestamp=before_split) == [shard_id(0), shard_id(1)]
    assert ids(Type="AT_TIMESTAMP", Timestamp=after_split) == [shard_id(1), shard_id(2), shard_id(3)]
    assert ids(Type="FROM_TIMESTAMP", Timestamp=before_split) == everything
    assert ids(Type="FROM_TIMESTAMP", Timestamp=after_split) == [shard_id(1), shard_id(2), shard_id(3)]
