"""Helpers shared by the boto3 tests: hashing, expected shard ranges, reading, error checks."""

import hashlib
import re
import time
import uuid

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"
REGION = "us-east-1"
MAX_HASH = 2**128 - 1
SEQ_RE = re.compile(r"^(0|[1-9]\d{0,128})$")


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def stream_arn(name):
    return f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def shard_id(index):
    return f"shardId-{index:012d}"


def hash_key(partition_key):
    """The 128-bit hash a partition key routes by: MD5 of its UTF-8, big-endian (ref. 2.2)."""
    return int.from_bytes(hashlib.md5(partition_key.encode("utf-8")).digest(), "big")


def uniform_ranges(count):
    """Hash ranges of a stream created with `count` shards (ref. 2.2)."""
    width = 2**128 // count
    ranges = [(i * width, (i + 1) * width - 1) for i in range(count)]
    ranges[-1] = (ranges[-1][0], MAX_HASH)
    return ranges


def shard_range(shard):
    r = shard["HashKeyRange"]
    return int(r["StartingHashKey"]), int(r["EndingHashKey"])


def expect_error(code, call, *args, status=400, message=None, match=None, **kwargs):
    """Calls call(*args, **kwargs), which must fail with Kinesis error `code` and HTTP `status`;
    `message` is compared exactly, `match` is a regular expression searched in the message."""
    with pytest.raises(ClientError) as info:
        call(*args, **kwargs)
    error = info.value.response["Error"]
    assert error["Code"] == code, f"expected {code}, got {error}"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    text = error.get("Message", "")
    if message is not None:
        assert text == message
    if match is not None:
        assert re.search(match, text), f"{match!r} not found in {text!r}"
    return error


def iterator(client, stream, shard, kind="TRIM_HORIZON", **kwargs):
    return client.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType=kind, **kwargs)["ShardIterator"]


def drain(client, shard_iterator, want=None, max_calls=40, pause=0.0, limit=None):
    """Follows GetRecords from shard_iterator. Stops when the shard ends (no next iterator),
    when `want` records have been read, or when a call is empty and caught up (0 ms behind).
    Returns (records, last response)."""
    records = []
    response = None
    for _ in range(max_calls):
        kwargs = {"ShardIterator": shard_iterator}
        if limit is not None:
            kwargs["Limit"] = limit
        response = client.get_records(**kwargs)
        records.extend(response["Records"])
        shard_iterator = response.get("NextShardIterator")
        if shard_iterator is None:
            break
        if want is not None and len(records) >= want:
            break
        if not response["Records"] and response.get("MillisBehindLatest") == 0:
            break
        if pause:
            time.sleep(pause)
    return records, response


def read_shard(client, stream, shard, kind="TRIM_HORIZON", want=None, **kwargs):
    records, _ = drain(client, iterator(client, stream, shard, kind, **kwargs), want=want)
    return records


def wait_consumer_active(client, consumer_arn, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        description = client.describe_stream_consumer(ConsumerARN=consumer_arn)["ConsumerDescription"]
        if description["ConsumerStatus"] == "ACTIVE":
            return description
        assert time.monotonic() < deadline, f"consumer still {description['ConsumerStatus']}"
        time.sleep(0.1)


def all_shards(client, stream, **kwargs):
    """Every shard ListShards gives, paged by NextToken alone as Kinesis requires."""
    page = client.list_shards(StreamName=stream, MaxResults=2, **kwargs)
    shards = list(page["Shards"])
    for _ in range(100):
        if not page.get("NextToken"):
            break
        page = client.list_shards(NextToken=page["NextToken"], MaxResults=2)
        shards.extend(page["Shards"])
    return shards


def poll_status(client, name, wanted, within=1.0):
    """Polls DescribeStreamSummary (bounded by `within` seconds) until the stream's status is
    `wanted`; returns the last status seen."""
    deadline = time.monotonic() + within
    status = None
    while time.monotonic() < deadline:
        status = client.describe_stream_summary(
            StreamName=name)["StreamDescriptionSummary"]["StreamStatus"]
        if status == wanted:
            break
        time.sleep(0.05)
    return status
