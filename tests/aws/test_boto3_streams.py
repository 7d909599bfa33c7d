"""Control plane through boto3: stream lifecycle, listing and paging, retention, tags, limits.
Section numbers refer to the Kinesis reference (shared/reference/kinesis-api.md)."""

import datetime
import resource

import boto3
import pytest
from botocore.config import Config

from kutil import (ACCOUNT, expect_error, shard_id, shard_range, stream_arn, uniform_ranges,
                   unique)


def near_now(when, slack=120):
    now = datetime.datetime.now(datetime.timezone.utc)
    return abs((when - now).total_seconds()) < slack


def test_create_provisioned_stream_and_describe(kinesis, new_stream):
    name = new_stream(shards=3, prefix="describe")
    description = kinesis.describe_stream(StreamName=name)["StreamDescription"]
    assert description["StreamName"] == name
    assert description["StreamARN"] == stream_arn(name)
    assert description["StreamStatus"] == "ACTIVE"
    assert description["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert description["RetentionPeriodHours"] == 24
    assert description["HasMoreShards"] is False
    assert description.get("EncryptionType", "NONE") == "NONE"
    assert near_now(description["StreamCreationTimestamp"])
    shards = description["Shards"]
    # Ref. 2.2: N = 3 splits the key space at floor(2^128/3) boundaries, the last ends at 2^128-1.
    assert [s["ShardId"] for s in shards] == [shard_id(i) for i in range(3)]
    assert [shard_range(s) for s in shards] == [
        (0, 113427455640312821154458202477256070484),
        (113427455640312821154458202477256070485, 226854911280625642308916404954512140969),
        (226854911280625642308916404954512140970, 340282366920938463463374607431768211455),
    ]
    for shard in shards:
        assert "ParentShardId" not in shard
        assert "AdjacentParentShardId" not in shard
        assert shard["SequenceNumberRange"]["StartingSequenceNumber"].isdigit()
        assert "EndingSequenceNumber" not in shard["SequenceNumberRange"]


def test_create_on_demand_stream(kinesis, new_stream):
    name = new_stream(on_demand=True, prefix="ondemand")
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["OpenShardCount"] >= 1
    shards = kinesis.list_shards(StreamName=name)["Shards"]
    assert len(shards) == summary["OpenShardCount"]
    # The open shards cover the key space without gaps (ref. 2.2 invariant).
    ranges = sorted(shard_range(s) for s in shards)
    assert ranges[0][0] == 0 and ranges[-1][1] == 2**128 - 1
    assert all(a[1] + 1 == b[0] for a, b in zip(ranges, ranges[1:]))


def test_describe_stream_summary(kinesis, new_stream):
    name = new_stream(shards=2, prefix="summary")
    summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamName"] == name
    assert summary["StreamARN"] == stream_arn(name)
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert summary["RetentionPeriodHours"] == 24
    assert summary["OpenShardCount"] == 2
    assert summary["ConsumerCount"] == 0
    assert summary.get("EncryptionType", "NONE") == "NONE"
    assert summary["MaxRecordSizeInKiB"] == 1024
    assert near_now(summary["StreamCreationTimestamp"])
    # The same stream addressed by its ARN.
    by_arn = kinesis.describe_stream_summary(StreamARN=stream_arn(name))["StreamDescriptionSummary"]
    assert by_arn["StreamName"] == name


def test_create_existing_stream_is_resource_in_use(kinesis, new_stream):
    name = new_stream(prefix="twice")
    expect_error("ResourceInUseException", kinesis.create_stream, StreamName=name, ShardCount=1,
                 message=f"Stream {name} under account {ACCOUNT} already exists.")


@pytest.mark.parametrize("bad", ["has/slash", "x" * 129, "spaces are bad"])
def test_invalid_stream_name_is_validation_error(kinesis, bad):
    expect_error("ValidationException", kinesis.create_stream, StreamName=bad, ShardCount=1,
                 match="streamName")


@pytest.mark.parametrize("operation, extra", [
    ("describe_stream", {}),
    ("describe_stream_summary", {}),
    ("list_shards", {}),
    ("delete_stream", {}),
    ("put_record", {"Data": b"x", "PartitionKey": "k"}),
    ("put_records", {"Records": [{"Data": b"x", "PartitionKey": "k"}]}),
    ("get_shard_iterator", {"ShardId": "shardId-000000000000", "ShardIteratorType": "LATEST"}),
    ("increase_stream_retention_period", {"RetentionPeriodHours": 48}),
    ("add_tags_to_stream", {"Tags": {"a": "b"}}),
    ("list_tags_for_stream", {}),
])
def test_unknown_stream_is_resource_not_found(kinesis, operation, extra):
    name = unique("missing")
    expect_error("ResourceNotFoundException", getattr(kinesis, operation), StreamName=name,
                 message=f"Stream {name} under account {ACCOUNT} not found.", **extra)


def test_delete_stream_and_waiters(kinesis):
    name = unique("waiters")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    # Default waiter configuration: the first poll already sees ACTIVE on Rheo.
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"MaxAttempts": 3})
    kinesis.put_record(StreamName=name, Data=b"old", PartitionKey="k")
    kinesis.delete_stream(StreamName=name)
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    expect_error("ResourceNotFoundException", kinesis.describe_stream, StreamName=name)
    assert name not in kinesis.list_streams()["StreamNames"]
    # The name can be used again, and the new stream starts empty.
    kinesis.create_stream(StreamName=name, ShardCount=1)
    try:
        kinesis.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
        it = kinesis.get_shard_iterator(StreamName=name, ShardId=shard_id(0),
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        assert kinesis.get_records(ShardIterator=it)["Records"] == []
    finally:
        kinesis.delete_stream(StreamName=name)


def test_delete_stream_by_arn(kinesis):
    name = unique("delarn")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    kinesis.delete_stream(StreamARN=stream_arn(name))
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})


def test_list_streams_pages(kinesis, new_stream):
    prefix = unique("list")
    names = sorted(new_stream(prefix=prefix) for _ in range(3))
    first = kinesis.list_streams(Limit=1)
    assert len(first["StreamNames"]) == 1
    assert first["HasMoreStreams"] is True
    assert first["NextToken"]
    # The paginator, one stream per page, sees every stream exactly once.
    seen = []
    for page in kinesis.get_paginator("list_streams").paginate(PaginationConfig={"PageSize": 1}):
        assert len(page["StreamNames"]) <= 1
        seen.extend(page["StreamNames"])
        for summary in page.get("StreamSummaries", []):
            assert summary["StreamARN"] == stream_arn(summary["StreamName"])
    assert len(seen) == len(set(seen))
    assert set(names) <= set(seen)
    # StreamSummaries carry the status, mode and creation time.
    everything = kinesis.list_streams(Limit=100)
    summaries = {s["StreamName"]: s for s in everything["StreamSummaries"]}
    ours = summaries[names[0]]
    assert ours["StreamStatus"] == "ACTIVE"
    assert ours["StreamModeDetails"] == {"StreamMode": "PROVISIONED"}
    assert near_now(ours["StreamCreationTimestamp"])
    # ExclusiveStartStreamName continues after the named stream (names are listed in order).
    after = kinesis.list_streams(ExclusiveStartStreamName=names[0], Limit=100)["StreamNames"]
    assert names[0] not in after
    assert names[1] in after and names[2] in after


def test_describe_stream_pages_shards(kinesis, new_stream):
    name = new_stream(shards=5, prefix="dspage")
    page = kinesis.describe_stream(StreamName=name, Limit=2)["StreamDescription"]
    assert [s["ShardId"] for s in page["Shards"]] == [shard_id(0), shard_id(1)]
    assert page["HasMoreShards"] is True
    page = kinesis.describe_stream(StreamName=name, Limit=2,
                                   ExclusiveStartShardId=shard_id(1))["StreamDescription"]
    assert [s["ShardId"] for s in page["Shards"]] == [shard_id(2), shard_id(3)]
    assert page["HasMoreShards"] is True
    page = kinesis.describe_stream(StreamName=name, Limit=2,
                                   ExclusiveStartShardId=shard_id(3))["StreamDescription"]
    assert [s["ShardId"] for s in page["Shards"]] == [shard_id(4)]
    assert page["HasMoreShards"] is False
    # The paginator follows HasMoreShards with the last shard's ID (ref. 1b).
    ids = []
    pages = 0
    for result in kinesis.get_paginator("describe_stream").paginate(
            StreamName=name, PaginationConfig={"PageSize": 2}):
        pages += 1
        ids.extend(s["ShardId"] for s in result["StreamDescription"]["Shards"])
    assert ids == [shard_id(i) for i in range(5)]
    assert pages == 3


def test_list_shards_pages_with_next_token(kinesis, new_stream):
    name = new_stream(shards=5, prefix="lspage")
    first = kinesis.list_shards(StreamName=name, MaxResults=2)
    assert [s["ShardId"] for s in first["Shards"]] == [shard_id(0), shard_id(1)]
    assert first["NextToken"]
    # A NextToken is used without the stream name.
    second = kinesis.list_shards(NextToken=first["NextToken"], MaxResults=2)
    assert [s["ShardId"] for s in second["Shards"]] == [shard_id(2), shard_id(3)]
    third = kinesis.list_shards(NextToken=second["NextToken"], MaxResults=2)
    assert [s["ShardId"] for s in third["Shards"]] == [shard_id(4)]
    assert "NextToken" not in third or third["NextToken"] is None
    shards = first["Shards"] + second["Shards"] + third["Shards"]
    assert [shard_range(s) for s in shards] == uniform_ranges(5)
    # ExclusiveStartShardId.
    rest = kinesis.list_shards(StreamName=name, ExclusiveStartShardId=shard_id(2))["Shards"]
    assert [s["ShardId"] for s in rest] == [shard_id(3), shard_id(4)]


def test_list_shards_rejects_bad_next_token(kinesis_raw):
    expect_error("InvalidArgumentException", kinesis_raw.list_shards, NextToken="not-a-token")


def test_list_shards_next_token_with_stream_name_is_refused(kinesis, new_stream):
    # The model: "Don't specify StreamName or StreamCreationTimestamp if you specify NextToken";
    # Kinesis answers InvalidArgumentException "NextToken and StreamName cannot be provided
    # together." (seen in botocore#2009 and the Go/Java reports that cite it). This is also why
    # boto3's list_shards paginator fails on Kinesis past the first page: the suite pages by hand.
    name = new_stream(shards=3, prefix="lsboth")
    token = kinesis.list_shards(StreamName=name, MaxResults=1)["NextToken"]
    expect_error("InvalidArgumentException", kinesis.list_shards, StreamName=name, NextToken=token,
                 message="NextToken and StreamName cannot be provided together.")


def test_retention_period(kinesis, new_stream):
    name = new_stream(prefix="retention")

    def hours():
        return kinesis.describe_stream_summary(
            StreamName=name)["StreamDescriptionSummary"]["RetentionPeriodHours"]

    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=48)
    assert hours() == 48
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=36)
    assert hours() == 36
    kinesis.increase_stream_retention_period(StreamARN=stream_arn(name), RetentionPeriodHours=8760)
    assert hours() == 8760
    kinesis.decrease_stream_retention_period(StreamName=name, RetentionPeriodHours=24)
    assert hours() == 24
    # Ref. 2.7: wrong direction or out of [24, 8760] -> InvalidArgumentException.
    kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=36)
    expect_error("InvalidArgumentException", kinesis.increase_stream_retention_period,
                 StreamName=name, RetentionPeriodHours=30)
    expect_error("InvalidArgumentException", kinesis.decrease_stream_retention_period,
                 StreamName=name, RetentionPeriodHours=40)
    expect_error("InvalidArgumentException", kinesis.decrease_stream_retention_period,
                 StreamName=name, RetentionPeriodHours=23)
    expect_error("InvalidArgumentException", kinesis.increase_stream_retention_period,
                 StreamName=name, RetentionPeriodHours=8761)
    assert hours() == 36


def test_tags(kinesis, new_stream):
    name = new_stream(prefix="tags", Tags={"team": "data", "env": "test"})
    listed = kinesis.list_tags_for_stream(StreamName=name)
    assert {t["Key"]: t["Value"] for t in listed["Tags"]} == {"team": "data", "env": "test"}
    assert listed["HasMoreTags"] is False

    kinesis.add_tags_to_stream(StreamName=name, Tags={"a": "1", "b": "2", "team": "platform"})
    listed = kinesis.list_tags_for_stream(StreamName=name)
    assert {t["Key"]: t["Value"] for t in listed["Tags"]} == {
        "team": "platform", "env": "test", "a": "1", "b": "2"}

    # Paging by Limit and ExclusiveStartTagKey (keys in order).
    first = kinesis.list_tags_for_stream(StreamName=name, Limit=2)
    assert len(first["Tags"]) == 2
    assert first["HasMoreTags"] is True
    rest = kinesis.list_tags_for_stream(StreamName=name,
                                        ExclusiveStartTagKey=first["Tags"][-1]["Key"])
    assert rest["HasMoreTags"] is False
    keys = [t["Key"] for t in first["Tags"] + rest["Tags"]]
    assert sorted(keys) == ["a", "b", "env", "team"]
    assert len(keys) == 4

    # Removing: missing keys are ignored (ref. 2.10).
    kinesis.remove_tags_from_stream(StreamName=name, TagKeys=["a", "team", "no-such-key"])
    listed = kinesis.list_tags_for_stream(StreamARN=stream_arn(name))
    assert {t["Key"]: t["Value"] for t in listed["Tags"]} == {"env": "test", "b": "2"}


def test_describe_limits_counts_shards_and_on_demand_streams(kinesis, new_stream):
    before = kinesis.describe_limits()
    # The default 20,000, lowered by `rheo serve` to what its open-file limit holds (3 files a
    # shard beside 4,096 for connections); the server inherits this process's hard limit.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    fits = 20000 if hard == resource.RLIM_INFINITY else min(20000, (hard - 4096) // 3)
    assert before["ShardLimit"] == fits
    assert before["OnDemandStreamCountLimit"] == 50
    new_stream(shards=3, prefix="limits")
    after = kinesis.describe_limits()
    assert after["OpenShardCount"] == before["OpenShardCount"] + 3
    assert after["OnDemandStreamCount"] == before["OnDemandStreamCount"]
    new_stream(on_demand=True, prefix="limits-od")
    last = kinesis.describe_limits()
    assert last["OnDemandStreamCount"] == before["OnDemandStreamCount"] + 1


def test_temporary_credentials_and_request_ids(endpoint):
    # SigV4 with a session token (X-Amz-Security-Token), as STS credentials sign (ref. 5.1).
    client = boto3.client(
        "kinesis", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="ASIAEXAMPLE", aws_secret_access_key="secret",
        aws_session_token="session-token-example",
        config=Config(retries={"total_max_attempts": 1}))
    answer = client.list_streams()
    assert isinstance(answer["StreamNames"], list)
    # botocore reads x-amzn-RequestId into ResponseMetadata.
    assert answer["ResponseMetadata"]["RequestId"]
    assert answer["ResponseMetadata"]["HTTPHeaders"]["content-type"].startswith(
        "application/x-amz-json-1.1")
