"""Data plane through boto3: PutRecord(s), GetShardIterator, GetRecords and their errors.
Section numbers refer to the Kinesis reference (shared/reference/kinesis-api.md)."""

import datetime
import time

import pytest

from kutil import (ACCOUNT, SEQ_RE, drain, expect_error, hash_key, iterator, read_shard, shard_id,
                   stream_arn, uniform_ranges, unique)

UTC = datetime.timezone.utc


def shard_of(partition_key, count):
    h = hash_key(partition_key)
    for index, (low, high) in enumerate(uniform_ranges(count)):
        if low <= h <= high:
            return shard_id(index)
    raise AssertionError("unreachable")


def test_md5_of_a_is_the_reference_value():
    # Guards the test helper itself (ref. 2.2 example).
    assert hash_key("a") == 16955237001963240173058271559858726497


def test_put_record_routes_by_md5_and_explicit_hash_key(kinesis, new_stream):
    name = new_stream(shards=2, prefix="route")
    answer = kinesis.put_record(StreamName=name, Data=b"hello", PartitionKey="a")
    assert answer["ShardId"] == shard_id(0)  # MD5("a") is in the lower half
    assert SEQ_RE.match(answer["SequenceNumber"])
    assert answer.get("EncryptionType", "NONE") == "NONE"
    for key in ["b", "c", "customer-17", "ключ", "🙂"]:
        got = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey=key)["ShardId"]
        assert got == shard_of(key, 2), key
    # ExplicitHashKey overrides the key's hash; both ends of each range are inclusive.
    for explicit, expected in [(0, 0), (2**127 - 1, 0), (2**127, 1), (2**128 - 1, 1)]:
        got = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="a",
                                 ExplicitHashKey=str(explicit))["ShardId"]
        assert got == shard_id(expected), explicit
    # PutRecord by StreamARN.
    by_arn = kinesis.put_record(StreamARN=stream_arn(name), Data=b"x", PartitionKey="a")
    assert by_arn["ShardId"] == shard_id(0)


def test_explicit_hash_key_out_of_range(kinesis, new_stream):
    name = new_stream(prefix="ehk")
    too_big = str(2**128)
    expect_error(
        "InvalidArgumentException", kinesis.put_record, StreamName=name, Data=b"x",
        PartitionKey="a", ExplicitHashKey=too_big,
        message="Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. "
                f"Specified value was {too_big}")
    # Not a decimal number at all: schema validation (ref. 2.2 pattern, 2.11 (b)).
    expect_error("ValidationException", kinesis.put_record, StreamName=name, Data=b"x",
                 PartitionKey="a", ExplicitHashKey="12ab")


def test_sequence_numbers_increase_and_sequence_number_for_ordering(kinesis, new_stream):
    name = new_stream(prefix="ordering")
    previous = None
    sequence_numbers = []
    for i in range(10):
        kwargs = {"SequenceNumberForOrdering": previous} if previous else {}
        answer = kinesis.put_record(StreamName=name, Data=b"%d" % i, PartitionKey="k", **kwargs)
        sequence_numbers.append(int(answer["SequenceNumber"]))
        previous = answer["SequenceNumber"]
    assert sequence_numbers == sorted(set(sequence_numbers))
    records = read_shard(kinesis, name, shard_id(0), want=10)
    assert [r["Data"] for r in records] == [b"%d" % i for i in range(10)]
    assert [int(r["SequenceNumber"]) for r in records] == sequence_numbers
    # A SequenceNumberForOrdering that is no sequence number at all is refused (ref. 2.3).
    expect_error("ValidationException", kinesis.put_record, StreamName=name, Data=b"x",
                 PartitionKey="k", SequenceNumberForOrdering="not-a-number")


def test_put_records_results_match_request_order(kinesis, new_stream):
    name = new_stream(shards=2, prefix="batch")
    entries = [{"Data": b"record %d" % i, "PartitionKey": f"key-{i}"} for i in range(20)]
    entries[3]["ExplicitHashKey"] = str(2**128 - 1)
    answer = kinesis.put_records(StreamName=name, Records=entries)
    assert answer["FailedRecordCount"] == 0
    assert len(answer["Records"]) == 20
    for entry, result in zip(entries, answer["Records"]):
        expected = shard_id(1) if "ExplicitHashKey" in entry else shard_of(entry["PartitionKey"], 2)
        assert result["ShardId"] == expected
        assert SEQ_RE.match(result["SequenceNumber"])
        assert "ErrorCode" not in result
    # Each result's sequence number is the one its own entry got.
    by_sequence = {}
    for shard in (shard_id(0), shard_id(1)):
        for record in read_shard(kinesis, name, shard, want=20):
            by_sequence[record["SequenceNumber"]] = record
    assert len(by_sequence) == 20
    for entry, result in zip(entries, answer["Records"]):
        record = by_sequence[result["SequenceNumber"]]
        assert record["Data"] == entry["Data"]
        assert record["PartitionKey"] == entry["PartitionKey"]
    # Sequence numbers are unique across the stream (ref. 2.3).
    assert len({r["SequenceNumber"] for r in answer["Records"]}) == 20


def test_put_records_by_arn(kinesis, new_stream):
    name = new_stream(prefix="batcharn")
    answer = kinesis.put_records(StreamARN=stream_arn(name),
                                 Records=[{"Data": b"a", "PartitionKey": "a"}])
    assert answer["FailedRecordCount"] == 0
    assert answer["Records"][0]["ShardId"] == shard_id(0)


def test_put_records_count_limits(kinesis, kinesis_raw, new_stream):
    name = new_stream(prefix="batchlimit")
    entries = [{"Data": b"x", "PartitionKey": "k"} for _ in range(501)]
    expect_error("ValidationException", kinesis.put_records, StreamName=name, Records=entries,
                 match="records")
    assert kinesis.put_records(StreamName=name, Records=entries[:500])["FailedRecordCount"] == 0
    expect_error("ValidationException", kinesis_raw.put_records, StreamName=name, Records=[])


def test_partition_key_length(kinesis, kinesis_raw, new_stream):
    name = new_stream(prefix="pk")
    expect_error("ValidationException", kinesis.put_record, StreamName=name, Data=b"x",
                 PartitionKey="k" * 257, match="partitionKey")
    expect_error("ValidationException", kinesis_raw.put_record, StreamName=name, Data=b"x",
                 PartitionKey="", match="partitionKey")
    expect_error("ValidationException", kinesis.put_records, StreamName=name,
                 Records=[{"Data": b"x", "PartitionKey": "ok"},
                          {"Data": b"x", "PartitionKey": "k" * 257}], match="partitionKey")
    # 256 characters are fine, counted as characters, not bytes.
    kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k" * 256)
    kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="é" * 256)
    records = read_shard(kinesis, name, shard_id(0), want=2)
    assert [r["PartitionKey"] for r in records] == ["k" * 256, "é" * 256]


def test_record_size_limit(kinesis, new_stream):
    # Ref. 2.2: data + partition key <= 1 MiB by default.
    name = new_stream(prefix="size")
    key = "k"
    kinesis.put_record(StreamName=name, Data=b"\x01" * (1048576 - len(key)), PartitionKey=key)
    expect_error("ValidationException", kinesis.put_record, StreamName=name,
                 Data=b"\x01" * (1048576 - len(key) + 1), PartitionKey=key)
    records = read_shard(kinesis, name, shard_id(0), want=1)
    assert len(records) == 1 and len(records[0]["Data"]) == 1048575


def test_binary_data_round_trips(kinesis, new_stream):
    name = new_stream(prefix="binary")
    blobs = [bytes(range(256)), b"\xff\xfe\xfd\x00\x80", "naïve ☃".encode("utf-8"), b"\x00" * 7,
             bytes(range(255, -1, -1)) * 40]
    put = [kinesis.put_record(StreamName=name, Data=blob, PartitionKey="bin")["SequenceNumber"]
           for blob in blobs]
    batch = kinesis.put_records(StreamName=name, Records=[
        {"Data": blob, "PartitionKey": "bin"} for blob in blobs])
    records = read_shard(kinesis, name, shard_id(0), want=10)
    assert [r["Data"] for r in records] == blobs + blobs
    assert [r["SequenceNumber"] for r in records[:5]] == put
    assert [r["SequenceNumber"] for r in records[5:]] == [r["SequenceNumber"] for r in batch["Records"]]
    now = datetime.datetime.now(UTC)
    for record in records:
        assert record["PartitionKey"] == "bin"
        assert abs((record["ApproximateArrivalTimestamp"] - now).total_seconds()) < 60
        assert record.get("EncryptionType", "NONE") == "NONE"


def test_empty_data_round_trips(kinesis, new_stream):
    # The model's Data blob has min length 0.
    name = new_stream(prefix="empty")
    kinesis.put_record(StreamName=name, Data=b"", PartitionKey="k")
    records = read_shard(kinesis, name, shard_id(0), want=1)
    assert [r["Data"] for r in records] == [b""]


def put_spaced(kinesis, name, count, gap=0.03):
    """Puts count records to shard 0 of name, gap seconds apart; returns their read-back form."""
    for i in range(count):
        kinesis.put_record(StreamName=name, Data=b"r%d" % i, PartitionKey="k")
        time.sleep(gap)
    records = read_shard(kinesis, name, shard_id(0), want=count)
    assert [r["Data"] for r in records] == [b"r%d" % i for i in range(count)]
    return records


def test_iterator_types(kinesis, new_stream):
    name = new_stream(prefix="iters")
    records = put_spaced(kinesis, name, 5)
    seqs = [r["SequenceNumber"] for r in records]
    shard = shard_id(0)

    def data(kind, **kwargs):
        return [r["Data"] for r in read_shard(kinesis, name, shard, kind, **kwargs)]

    assert data("TRIM_HORIZON") == [b"r0", b"r1", b"r2", b"r3", b"r4"]
    assert data("AT_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2]) == [b"r2", b"r3", b"r4"]
    assert data("AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[2]) == [b"r3", b"r4"]
    assert data("AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=seqs[4]) == []

    # AT_TIMESTAMP: the first record at or after the time (ref. 2.6).
    arrival = [r["ApproximateArrivalTimestamp"] for r in records]
    assert data("AT_TIMESTAMP", Timestamp=arrival[3]) == [b"r3", b"r4"]
    just_after_r1 = arrival[1] + datetime.timedelta(milliseconds=1)
    assert data("AT_TIMESTAMP", Timestamp=just_after_r1) == [b"r2", b"r3", b"r4"]
    # Older than the trim horizon: acts as TRIM_HORIZON.
    old = datetime.datetime(2001, 1, 1, tzinfo=UTC)
    assert data("AT_TIMESTAMP", Timestamp=old) == [b"r0", b"r1", b"r2", b"r3", b"r4"]

    # LATEST reads only what comes after it was issued.
    latest = iterator(kinesis, name, shard, "LATEST")
    first = kinesis.get_records(ShardIterator=latest)
    assert first["Records"] == []
    assert first["MillisBehindLatest"] == 0
    kinesis.put_record(StreamName=name, Data=b"new", PartitionKey="k")
    got, _ = drain(kinesis, first["NextShardIterator"], want=1)
    assert [r["Data"] for r in got] == [b"new"]
    # The iterator issued before the put still reads from where it was, the new record included.
    got, _ = drain(kinesis, latest, want=1)
    assert [r["Data"] for r in got] == [b"new"]


def test_get_shard_iterator_by_arn(kinesis, new_stream):
    name = new_stream(prefix="itarn")
    kinesis.put_record(StreamName=name, Data=b"a", PartitionKey="k")
    it = kinesis.get_shard_iterator(StreamARN=stream_arn(name), ShardId=shard_id(0),
                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    assert [r["Data"] for r in kinesis.get_records(ShardIterator=it, StreamARN=stream_arn(name))["Records"]] == [b"a"]


def test_iterator_errors(kinesis, kinesis_raw, new_stream):
    name = new_stream(shards=2, prefix="iterr")
    s0 = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="a")  # shard 0
    assert s0["ShardId"] == shard_id(0)
    s1 = kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="a",
                            ExplicitHashKey=str(2**128 - 1))
    assert s1["ShardId"] == shard_id(1)
    # An unknown shard (ref. 2.11).
    expect_error("ResourceNotFoundException", kinesis.get_shard_iterator, StreamName=name,
                 ShardId=shard_id(7), ShardIteratorType="TRIM_HORIZON",
                 match=f"{shard_id(7)}.*{name}")
    # A sequence number the server never issued, or one of another shard (ref. 2.3).
    expect_error("InvalidArgumentException", kinesis.get_shard_iterator, StreamName=name,
                 ShardId=shard_id(0), ShardIteratorType="AT_SEQUENCE_NUMBER",
                 StartingSequenceNumber="12345")
    expect_error("InvalidArgumentException", kinesis.get_shard_iterator, StreamName=name,
                 ShardId=shard_id(0), ShardIteratorType="AT_SEQUENCE_NUMBER",
                 StartingSequenceNumber=s1["SequenceNumber"])
    # Not a sequence number at all: schema validation.
    expect_error("ValidationException", kinesis.get_shard_iterator, StreamName=name,
                 ShardId=shard_id(0), ShardIteratorType="AT_SEQUENCE_NUMBER",
                 StartingSequenceNumber="abc")
    # An unknown iterator type.
    expect_error("ValidationException", kinesis_raw.get_shard_iterator, StreamName=name,
                 ShardId=shard_id(0), ShardIteratorType="SOMEWHERE")


def test_forged_iterators_are_invalid(kinesis, new_stream):
    name = new_stream(prefix="forged")
    kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    real = iterator(kinesis, name, shard_id(0))
    assert 1 <= len(real) <= 512
    expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator="forged",
                 message="Invalid ShardIterator.")
    expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator="A" * 200,
                 message="Invalid ShardIterator.")
    # A real iterator with one character changed in the middle.
    middle = len(real) // 2
    swapped = "B" if real[middle] != "B" else "C"
    tampered = real[:middle] + swapped + real[middle + 1:]
    expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator=tampered,
                 message="Invalid ShardIterator.")
    # The real one works, and stays usable after use (ref. 2.6).
    assert len(kinesis.get_records(ShardIterator=real)["Records"]) == 1
    assert len(kinesis.get_records(ShardIterator=real)["Records"]) == 1


def test_get_records_limit_and_next_iterator(kinesis, new_stream):
    name = new_stream(prefix="limit")
    kinesis.put_records(StreamName=name, Records=[
        {"Data": b"%d" % i, "PartitionKey": "k"} for i in range(7)])
    it = iterator(kinesis, name, shard_id(0))
    seen = []
    for expected in ([b"0", b"1", b"2"], [b"3", b"4", b"5"], [b"6"], []):
        answer = kinesis.get_records(ShardIterator=it, Limit=3)
        assert [r["Data"] for r in answer["Records"]] == expected
        seen.extend(answer["Records"])
        assert answer["NextShardIterator"]  # an open shard always gives one (ref. 2.6)
        it = answer["NextShardIterator"]
    assert answer["MillisBehindLatest"] == 0
    assert "ChildShards" not in answer or answer["ChildShards"] == []
    assert [int(r["SequenceNumber"]) for r in seen] == sorted(int(r["SequenceNumber"]) for r in seen)
    # Limit above 10,000 (ref. 2.5).
    expect_error("InvalidArgumentException", kinesis.get_records, ShardIterator=it, Limit=10001)
    # 10,000 itself is fine.
    kinesis.get_records(ShardIterator=it, Limit=10000)


def test_millis_behind_latest(kinesis, new_stream):
    name = new_stream(prefix="behind")
    kinesis.put_record(StreamName=name, Data=b"first", PartitionKey="k")
    time.sleep(0.5)
    kinesis.put_record(StreamName=name, Data=b"second", PartitionKey="k")
    answer = kinesis.get_records(ShardIterator=iterator(kinesis, name, shard_id(0)), Limit=1)
    assert [r["Data"] for r in answer["Records"]] == [b"first"]
    assert answer["MillisBehindLatest"] > 0
    rest = kinesis.get_records(ShardIterator=answer["NextShardIterator"])
    assert [r["Data"] for r in rest["Records"]] == [b"second"]
    assert rest["MillisBehindLatest"] == 0


def test_iterator_of_deleted_stream_is_not_found(kinesis):
    name = unique("gone")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")
    it = iterator(kinesis, name, shard_id(0))
    kinesis.delete_stream(StreamName=name)
    kinesis.get_waiter("stream_not_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    expect_error("ResourceNotFoundException", kinesis.get_records, ShardIterator=it)


@pytest.mark.parametrize("count", [1, 3])
def test_records_spread_over_shards_are_all_readable(kinesis, new_stream, count):
    name = new_stream(shards=count, prefix="spread")
    keys = [f"user-{i}" for i in range(60)]
    answer = kinesis.put_records(StreamName=name, Records=[
        {"Data": k.encode(), "PartitionKey": k} for k in keys])
    assert answer["FailedRecordCount"] == 0
    read = {}
    for index in range(count):
        for record in read_shard(kinesis, name, shard_id(index), want=60):
            assert shard_of(record["PartitionKey"], count) == shard_id(index)
            read[record["PartitionKey"]] = record["Data"]
    assert read == {k: k.encode() for k in keys}


def test_account_in_messages(kinesis):
    # The account id Rheo reports is the configured one (000000000000 by default).
    name = unique("acct")
    expect_error("ResourceNotFoundException", kinesis.describe_stream_summary, StreamName=name,
                 match=f"under account {ACCOUNT}")
