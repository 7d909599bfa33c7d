"""Server-side encryption through boto3: StartStreamEncryption and StopStreamEncryption with
every KeyId form, EncryptionType in describes, put answers and records, the keyring managed by
`rheo keys` (disable, enable, rotate, retire, alias) on a server of its own, the 25-per-day
limit, UPDATING during the change, and no plaintext of an encrypted stream anywhere under the
data directory. Section numbers refer to the Kinesis reference
(shared/reference/kinesis-api.md; 1b, 1c, 2.9, 2.10, 6)."""

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import StreamFactory, make_client
from kutil import (ACCOUNT, REGION, drain, expect_error, iterator, poll_status, read_shard,
                   shard_id, stream_arn, unique)
from rheo_server import RheoServer

DEFAULT_ALIAS = "alias/aws/kinesis"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Data that exercises every byte value, an empty record and a record of a few KiB.
PAYLOADS = [bytes(range(256)), b"", b"\x00" * 7, os.urandom(5000)]


def key_arn(key, region=REGION, account=ACCOUNT):
    return f"arn:aws:kms:{region}:{account}:key/{key}"


def alias_arn(alias, region=REGION, account=ACCOUNT):
    return f"arn:aws:kms:{region}:{account}:{alias}"


# ---------------------------------------------------------------------------------------------
# A server of this module's own: its data directory and keyring are known.


@pytest.fixture(scope="module")
def server():
    if os.environ.get("KINESIS_ENDPOINT"):
        pytest.skip("KINESIS_ENDPOINT is set: these tests need a Rheo server of their own")
    own = RheoServer().start()
    own.client = make_client(own.endpoint)
    yield own
    status = own.stop()
    assert status == 0, f"rheo serve did not stop cleanly ({status}):\n{own.log_tail()}"


@pytest.fixture()
def streams(server):
    """streams(shards=1, prefix="s") -> an ACTIVE stream on the module's server."""
    factory = StreamFactory(server.client)
    yield factory
    factory.cleanup()


def keys(server, *args, check=True):
    """Runs `rheo keys --data-dir <the server's data dir> ARGS...`."""
    done = subprocess.run([server.binary, "keys", "--data-dir", str(server.data_dir), *args],
                          capture_output=True, text=True, timeout=30)
    if check:
        assert done.returncode == 0, f"rheo keys {args} failed: {done.stdout}{done.stderr}"
    return done


def create_key(server, alias=None):
    """`rheo keys create [--alias ALIAS]`; returns the new key id (a UUID)."""
    args = ["create"] + (["--alias", alias] if alias else [])
    out = keys(server, *args).stdout.strip()
    match = re.fullmatch(r"created key (\S+)" + (rf" \({re.escape(alias)}\)" if alias else ""),
                         out)
    assert match, f"unexpected output of rheo keys create: {out!r}"
    assert UUID_RE.match(match.group(1)), f"key id {match.group(1)!r} is not a UUID"
    return match.group(1)


def retry_while(code, call, timeout=10):
    """Calls call() until it stops failing with error `code` (the server takes up keyring file
    changes at its next maintenance pass, about a second); returns its answer."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except ClientError as error:
            if error.response["Error"]["Code"] != code or time.monotonic() > deadline:
                raise
        time.sleep(0.05)


def start(client, name, key, **kwargs):
    return client.start_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=key,
                                          **kwargs)


def start_new_key(client, name, key):
    """StartStreamEncryption with a key just made by `rheo keys`, once the server knows it."""
    return retry_while("KMSNotFoundException", lambda: start(client, name, key))


@pytest.fixture(scope="module")
def own_key(server):
    """A key of the module's server with the alias `alias/<unique>`, known to the server."""
    alias = f"alias/{unique('own')}"
    key = create_key(server, alias)
    probe = StreamFactory(server.client)
    try:
        start_new_key(server.client, probe(prefix="probe"), key)
    finally:
        probe.cleanup()
    return key, alias


def encryption_of(client, name):
    """(EncryptionType, KeyId or None) as DescribeStream and DescribeStreamSummary report them;
    both must agree."""
    full = client.describe_stream(StreamName=name)["StreamDescription"]
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert full["StreamStatus"] == "ACTIVE" and summary["StreamStatus"] == "ACTIVE"
    one = (full.get("EncryptionType"), full.get("KeyId"))
    other = (summary.get("EncryptionType"), summary.get("KeyId"))
    assert one == other, f"DescribeStream says {one}, DescribeStreamSummary {other}"
    return one


def files_containing(directory, needle):
    """Every file under `directory` whose bytes contain `needle`."""
    found = []
    for root, _dirs, names in os.walk(directory):
        for file in names:
            path = os.path.join(root, file)
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
            except (FileNotFoundError, IsADirectoryError):
                continue  # removed (a compacted journal file) between listing and reading
            if needle in data:
                found.append(os.path.relpath(path, directory))
    return found


def all_records(client, name, shards=1):
    return [r for i in range(shards) for r in read_shard(client, name, shard_id(i))]


# ---------------------------------------------------------------------------------------------
# On the suite's shared server, with the key every Rheo server has (alias/aws/kinesis).


def test_start_and_stop_encryption_round_trip(kinesis, new_stream):
    name = new_stream(shards=2, prefix="sse")
    assert encryption_of(kinesis, name) == ("NONE", None)
    before = kinesis.put_record(StreamName=name, Data=b"plain before", PartitionKey="a")
    assert before["EncryptionType"] == "NONE"

    answer = start(kinesis, name, DEFAULT_ALIAS)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    # Ref. 1c: no output shape.
    assert set(answer) == {"ResponseMetadata"}
    assert encryption_of(kinesis, name) == ("KMS", DEFAULT_ALIAS)

    # Partition keys that land in both shards (hashes of "a" and "b" are in different halves).
    written = []
    for i, data in enumerate(PAYLOADS):
        put = kinesis.put_record(StreamName=name, Data=data, PartitionKey="ab"[i % 2])
        assert put["EncryptionType"] == "KMS"
        written.append((put["SequenceNumber"], data))
    batch = [{"Data": b"batch %d" % i, "PartitionKey": f"key-{i}"} for i in range(20)]
    puts = kinesis.put_records(StreamName=name, Records=batch)
    assert puts["FailedRecordCount"] == 0
    assert puts["EncryptionType"] == "KMS"
    written += [(r["SequenceNumber"], e["Data"]) for r, e in zip(puts["Records"], batch)]
    assert {r["ShardId"] for r in puts["Records"]} == {shard_id(0), shard_id(1)}

    stop = kinesis.stop_stream_encryption(StreamName=name, EncryptionType="KMS",
                                          KeyId=DEFAULT_ALIAS)
    assert set(stop) == {"ResponseMetadata"}
    assert encryption_of(kinesis, name) == ("NONE", None)
    after = kinesis.put_record(StreamName=name, Data=b"plain after", PartitionKey="b")
    assert after["EncryptionType"] == "NONE"
    after_batch = kinesis.put_records(StreamName=name,
                                      Records=[{"Data": b"plain batch", "PartitionKey": "a"}])
    assert after_batch["EncryptionType"] == "NONE"

    records = {r["SequenceNumber"]: r for r in all_records(kinesis, name, shards=2)}
    assert len(records) == 1 + len(written) + 2
    assert records[before["SequenceNumber"]]["EncryptionType"] == "NONE"
    assert records[before["SequenceNumber"]]["Data"] == b"plain before"
    for sequence, data in written:
        assert records[sequence]["EncryptionType"] == "KMS", records[sequence]
        assert records[sequence]["Data"] == data
    assert records[after["SequenceNumber"]]["EncryptionType"] == "NONE"
    assert records[after["SequenceNumber"]]["Data"] == b"plain after"
    assert records[after_batch["Records"][0]["SequenceNumber"]]["EncryptionType"] == "NONE"


def test_encrypted_records_reach_subscribers(kinesis, new_stream):
    name = new_stream(prefix="ssesub")
    start(kinesis, name, DEFAULT_ALIAS)
    sent = [kinesis.put_record(StreamName=name, Data=b"\xffsub %d" % i, PartitionKey="k")
            for i in range(3)]
    consumer = kinesis.register_stream_consumer(StreamARN=stream_arn(name),
                                                ConsumerName="sse-reader")["Consumer"]
    deadline = time.monotonic() + 10
    while kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])[
            "ConsumerDescription"]["ConsumerStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, "consumer never became ACTIVE"
        time.sleep(0.1)
    response = kinesis.subscribe_to_shard(ConsumerARN=consumer["ConsumerARN"],
                                          ShardId=shard_id(0),
                                          StartingPosition={"Type": "TRIM_HORIZON"})
    received = []
    done = threading.Event()

    def read():
        try:
            for event in response["EventStream"]:
                received.extend(event.get("SubscribeToShardEvent", {}).get("Records", []))
                if len(received) >= 3:
                    break
        finally:
            done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), f"only {len(received)} records pushed in 10 s"
    response["EventStream"].close()
    assert [r["SequenceNumber"] for r in received] == [s["SequenceNumber"] for s in sent]
    assert [r["Data"] for r in received] == [b"\xffsub 0", b"\xffsub 1", b"\xffsub 2"]
    assert [r["EncryptionType"] for r in received] == ["KMS"] * 3


def test_default_key_by_stream_arn(kinesis, new_stream):
    name = new_stream(prefix="ssearn")
    kinesis.start_stream_encryption(StreamARN=stream_arn(name), EncryptionType="KMS",
                                    KeyId=DEFAULT_ALIAS)
    assert encryption_of(kinesis, name) == ("KMS", DEFAULT_ALIAS)
    put = kinesis.put_record(StreamARN=stream_arn(name), Data=b"by arn", PartitionKey="k")
    assert put["EncryptionType"] == "KMS"
    kinesis.stop_stream_encryption(StreamARN=stream_arn(name), EncryptionType="KMS",
                                   KeyId=DEFAULT_ALIAS)
    assert encryption_of(kinesis, name) == ("NONE", None)


def test_encryption_request_errors(kinesis, new_stream):
    name = new_stream(prefix="sseerr")
    missing = unique("missing")
    expect_error("ResourceNotFoundException", start, kinesis, missing, DEFAULT_ALIAS,
                 message=f"Stream {missing} under account {ACCOUNT} not found.")
    expect_error("ResourceNotFoundException", kinesis.stop_stream_encryption,
                 StreamName=missing, EncryptionType="KMS", KeyId=DEFAULT_ALIAS,
                 message=f"Stream {missing} under account {ACCOUNT} not found.")
    expect_error("KMSNotFoundException", start, kinesis, name, str(uuid.uuid4()))
    expect_error("KMSNotFoundException", start, kinesis, name, f"alias/{unique('nokey')}")
    expect_error("KMSNotFoundException", start, kinesis, name, key_arn(uuid.uuid4()))
    # The right alias in another region or account is not this server's key.
    expect_error("KMSNotFoundException", start, kinesis, name,
                 alias_arn(DEFAULT_ALIAS, region="eu-west-1"))
    expect_error("KMSNotFoundException", start, kinesis, name,
                 alias_arn(DEFAULT_ALIAS, account="111111111111"))
    for call in (kinesis.start_stream_encryption, kinesis.stop_stream_encryption):
        expect_error("ValidationException", call, StreamName=name, EncryptionType="AES256",
                     KeyId=DEFAULT_ALIAS, match="encryptionType")
        expect_error("InvalidArgumentException", call, StreamName=name, EncryptionType="NONE",
                     KeyId=DEFAULT_ALIAS)
    # None of this changed the stream.
    assert encryption_of(kinesis, name) == ("NONE", None)
    assert kinesis.put_record(StreamName=name, Data=b"x", PartitionKey="k")[
        "EncryptionType"] == "NONE"


# ---------------------------------------------------------------------------------------------
# On the module's own server: keys made with `rheo keys`.


def test_default_keyring_is_created_with_the_default_alias(server):
    assert (server.data_dir / "keyring.json").is_file()
    listing = keys(server, "list").stdout
    line = next((l for l in listing.splitlines() if DEFAULT_ALIAS in l), None)
    assert line, f"{DEFAULT_ALIAS} missing from rheo keys list:\n{listing}"
    key = line.split()[0]
    assert UUID_RE.match(key), line
    assert "enabled" in line.split()


@pytest.mark.parametrize("form", ["id", "key-arn", "alias", "alias-arn", "default-alias",
                                  "default-alias-arn"])
def test_every_key_id_form(server, streams, own_key, form):
    client = server.client
    key, alias = own_key
    key_id = {
        "id": key,
        "key-arn": key_arn(key),
        "alias": alias,
        "alias-arn": alias_arn(alias),
        "default-alias": DEFAULT_ALIAS,
        "default-alias-arn": alias_arn(DEFAULT_ALIAS),
    }[form]
    name = streams(prefix="form")
    client.start_stream_encryption(StreamARN=stream_arn(name), EncryptionType="KMS",
                                   KeyId=key_id)
    assert encryption_of(client, name) == ("KMS", key_id)
    put = client.put_record(StreamName=name, Data=b"form " + form.encode(), PartitionKey="k")
    assert put["EncryptionType"] == "KMS"
    [record] = read_shard(client, name, shard_id(0))
    assert (record["Data"], record["EncryptionType"]) == (b"form " + form.encode(), "KMS")
    # Stop names the key in the same form.
    client.stop_stream_encryption(StreamARN=stream_arn(name), EncryptionType="KMS",
                                  KeyId=key_id)
    assert encryption_of(client, name) == ("NONE", None)


def test_own_key_in_another_region_or_account_is_not_found(server, streams, own_key):
    client = server.client
    key, alias = own_key
    name = streams(prefix="foreign")
    for key_id in (key_arn(key, region="us-west-2"), key_arn(key, account="123456789012"),
                   alias_arn(alias, region="us-west-2"), alias_arn(alias, account="123456789012")):
        expect_error("KMSNotFoundException", start, client, name, key_id)
    assert encryption_of(client, name) == ("NONE", None)


def test_alias_made_with_rheo_keys_alias(server, streams):
    client = server.client
    key = create_key(server)
    alias = f"alias/{unique('later')}"
    assert keys(server, "alias", alias, key).returncode == 0
    assert alias in next(l for l in keys(server, "list").stdout.splitlines() if key in l)
    name = streams(prefix="aliased")
    start_new_key(client, name, alias_arn(alias))
    assert encryption_of(client, name) == ("KMS", alias_arn(alias))
    assert client.put_record(StreamName=name, Data=b"a", PartitionKey="k")[
        "EncryptionType"] == "KMS"


def test_disabled_key_refuses_puts_until_enabled(server, streams):
    client = server.client
    alias = f"alias/{unique('dis')}"
    key = create_key(server, alias)
    name = streams(prefix="disabled")
    other = streams(prefix="disabled2")
    start_new_key(client, name, key)
    stored = [client.put_record(StreamName=name, Data=b"before disable", PartitionKey="k")]

    keys(server, "disable", alias)
    assert "DISABLED" in next(l for l in keys(server, "list").stdout.splitlines() if key in l)
    deadline = time.monotonic() + 10
    while True:
        try:
            stored.append(client.put_record(StreamName=name, Data=b"before disable",
                                            PartitionKey="k"))
        except ClientError as error:
            assert error.response["Error"]["Code"] == "KMSDisabledException", error.response
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            break
        assert time.monotonic() < deadline, "puts still accepted 10 s after rheo keys disable"
        time.sleep(0.05)
    expect_error("KMSDisabledException", client.put_records, StreamName=name,
                 Records=[{"Data": b"refused", "PartitionKey": "k"}])
    expect_error("KMSDisabledException", client.put_record, StreamName=name, Data=b"refused",
                 PartitionKey="k")
    # A disabled key cannot be applied to another stream either, by id or by alias.
    expect_error("KMSDisabledException", start, client, other, key)
    expect_error("KMSDisabledException", start, client, other, alias)
    assert encryption_of(client, other) == ("NONE", None)
    # The stream still names the key; what is stored stays readable.
    assert encryption_of(client, name) == ("KMS", key)
    records = read_shard(client, name, shard_id(0))
    assert [r["SequenceNumber"] for r in records] == [s["SequenceNumber"] for s in stored]
    assert all(r["Data"] == b"before disable" and r["EncryptionType"] == "KMS" for r in records)

    keys(server, "enable", key)
    put = retry_while("KMSDisabledException", lambda: client.put_record(
        StreamName=name, Data=b"after enable", PartitionKey="k"))
    assert put["EncryptionType"] == "KMS"
    assert client.put_records(StreamName=name, Records=[
        {"Data": b"after enable", "PartitionKey": "k"}])["FailedRecordCount"] == 0
    records = read_shard(client, name, shard_id(0))
    # The refused puts wrote nothing.
    assert [r["Data"] for r in records] == [b"before disable"] * len(stored) + [b"after enable"] * 2
    assert all(r["EncryptionType"] == "KMS" for r in records)
    start(client, other, alias)
    assert encryption_of(client, other) == ("KMS", alias)


def test_at_most_25_encryption_starts_per_day(server, streams, own_key):
    client = server.client
    key, alias = own_key
    name = streams(prefix="limit")
    forms = [key, key_arn(key), alias, alias_arn(alias), DEFAULT_ALIAS]
    for i in range(25):
        start(client, name, forms[i % len(forms)])
    assert encryption_of(client, name) == ("KMS", forms[24 % len(forms)])
    expect_error("LimitExceededException", start, client, name, key)
    assert encryption_of(client, name) == ("KMS", forms[24 % len(forms)])
    # Stop names the stream's own key: another one is refused.
    expect_error("InvalidArgumentException", client.stop_stream_encryption,
                 StreamName=name, EncryptionType="KMS", KeyId=key)
    # Stops are counted apart (ref. 2.10: 25 starts and 25 stops).
    client.stop_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=forms[24 % len(forms)])
    assert encryption_of(client, name) == ("NONE", None)
    expect_error("LimitExceededException", start, client, name, key)
    assert encryption_of(client, name) == ("NONE", None)


def test_no_plaintext_of_encrypted_streams_on_disk(server, streams, own_key):
    client = server.client
    key, _alias = own_key
    secret = f"secret-{uuid.uuid4().hex}".encode()
    secret_key = f"pk-{uuid.uuid4().hex}"
    plain = f"plain-{uuid.uuid4().hex}".encode()
    plain_after_stop = f"stopped-{uuid.uuid4().hex}".encode()

    name = streams(shards=2, prefix="disk")
    start(client, name, key)
    client.put_record(StreamName=name, Data=secret + b" single", PartitionKey=secret_key)
    batch = [{"Data": secret + b" batch %d" % i, "PartitionKey": f"{secret_key}-{i}"}
             for i in range(50)]
    # A large record too: the marker repeated over 256 KiB.
    batch.append({"Data": secret * (256 * 1024 // len(secret)), "PartitionKey": secret_key})
    answer = client.put_records(StreamName=name, Records=batch)
    assert answer["FailedRecordCount"] == 0
    assert {r["ShardId"] for r in answer["Records"]} == {shard_id(0), shard_id(1)}

    control = streams(prefix="diskplain")
    client.put_record(StreamName=control, Data=plain, PartitionKey="k")

    # Everything reads back, encrypted, byte for byte.
    records = all_records(client, name, shards=2)
    assert sorted(r["Data"] for r in records) == sorted(
        [secret + b" single"] + [e["Data"] for e in batch])
    assert {r["PartitionKey"] for r in records} == {secret_key} | {e["PartitionKey"] for e in batch}
    assert {r["EncryptionType"] for r in records} == {"KMS"}

    assert files_containing(server.data_dir, plain), \
        "the unencrypted control record is nowhere under the data directory: the search is blind"
    assert files_containing(server.data_dir, secret) == []
    assert files_containing(server.data_dir, secret_key.encode()) == []

    # After StopStreamEncryption new records of the same stream are stored as written.
    client.stop_stream_encryption(StreamName=name, EncryptionType="KMS", KeyId=key)
    client.put_record(StreamName=name, Data=plain_after_stop, PartitionKey="k")
    assert files_containing(server.data_dir, plain_after_stop)
    assert files_containing(server.data_dir, secret) == []


def test_shards_made_by_a_reshard_encrypt_too(server, streams, own_key):
    client = server.client
    _key, alias = own_key
    secret = f"child-{uuid.uuid4().hex}".encode()
    name = streams(prefix="resharded")
    start(client, name, alias)
    client.update_shard_count(StreamName=name, TargetShardCount=2, ScalingType="UNIFORM_SCALING")
    deadline = time.monotonic() + 10
    while client.describe_stream_summary(StreamName=name)[
            "StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert encryption_of(client, name) == ("KMS", alias)
    open_shards = [s["ShardId"] for s in client.list_shards(StreamName=name)["Shards"]
                   if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    assert len(open_shards) == 2 and shard_id(0) not in open_shards
    batch = [{"Data": secret + b" %d" % i, "PartitionKey": f"p{i}"} for i in range(20)]
    answer = client.put_records(StreamName=name, Records=batch)
    assert answer["FailedRecordCount"] == 0 and answer["EncryptionType"] == "KMS"
    assert {r["ShardId"] for r in answer["Records"]} == set(open_shards)
    records = [r for shard in open_shards for r in read_shard(client, name, shard)]
    assert sorted(r["Data"] for r in records) == sorted(e["Data"] for e in batch)
    assert {r["EncryptionType"] for r in records} == {"KMS"}
    assert files_containing(server.data_dir, secret) == []


# ---------------------------------------------------------------------------------------------
# Rotation, retirement and a restart on the same data directory.


def sigterm(server):
    """Stops `server` with SIGTERM, keeping its data directory (RheoServer.stop removes it)."""
    server.process.send_signal(signal.SIGTERM)
    status = server.process.wait(timeout=30)
    server._log.close()
    assert status == 0, f"rheo serve did not stop cleanly ({status}):\n{server.log_tail()}"


def restarted(old):
    """A new `rheo serve` on `old`'s data directory (and work directory, so that its stop
    removes both)."""
    new = RheoServer()
    shutil.rmtree(new.workdir, ignore_errors=True)
    new.workdir, new.data_dir = old.workdir, old.data_dir
    new.log_path = old.workdir / "server-restarted.log"
    return new.start()


def test_rotation_retirement_and_restart_keep_records_readable():
    if os.environ.get("KINESIS_ENDPOINT"):
        pytest.skip("KINESIS_ENDPOINT is set: this test needs a Rheo server of its own")
    first = RheoServer().start()
    second = None
    try:
        client = make_client(first.endpoint)
        secret = f"rotated-{uuid.uuid4().hex}".encode()
        name = unique("rotate")
        client.create_stream(StreamName=name, ShardCount=1)
        client.get_waiter("stream_exists").wait(StreamName=name,
                                                WaiterConfig={"Delay": 1, "MaxAttempts": 20})
        plain = f"unencrypted-{uuid.uuid4().hex}".encode()
        client.put_record(StreamName=name, Data=plain, PartitionKey="k")
        start(client, name, DEFAULT_ALIAS)
        written = [plain]
        for i in range(5):
            written.append(secret + b" v1 %d" % i)
            client.put_record(StreamName=name, Data=written[-1], PartitionKey="k")

        out = keys(first, "rotate", DEFAULT_ALIAS).stdout.strip()
        assert out == f"{DEFAULT_ALIAS} is now at version 2"
        # The running server rewraps the stored data keys: version 1 stops being needed.
        deadline = time.monotonic() + 10
        while True:
            listing = keys(first, "list").stdout
            version1 = next(l for l in listing.splitlines() if l.strip().startswith("version 1"))
            if "no stored data needs it" in version1:
                break
            assert time.monotonic() < deadline, f"version 1 still needed after 10 s:\n{listing}"
            time.sleep(0.1)
        for i in range(5):
            written.append(secret + b" v2 %d" % i)
            put = client.put_record(StreamName=name, Data=written[-1], PartitionKey="k")
            assert put["EncryptionType"] == "KMS"
        assert keys(first, "retire", DEFAULT_ALIAS, "1").stdout.strip() == \
            f"retired version 1 of {DEFAULT_ALIAS}"
        records = read_shard(client, name, shard_id(0))
        assert [r["Data"] for r in records] == written

        sigterm(first)
        # After a clean shutdown (everything flushed) still no plaintext.
        assert files_containing(first.data_dir, secret) == []
        assert files_containing(first.data_dir, plain)

        second = restarted(first)
        client = make_client(second.endpoint)
        assert encryption_of(client, name) == ("KMS", DEFAULT_ALIAS)
        records = read_shard(client, name, shard_id(0))
        assert [r["Data"] for r in records] == written
        assert [r["EncryptionType"] for r in records] == ["NONE"] + ["KMS"] * 10
        put = client.put_record(StreamName=name, Data=secret + b" after restart",
                                PartitionKey="k")
        assert put["EncryptionType"] == "KMS"
        assert read_shard(client, name, shard_id(0), "AT_SEQUENCE_NUMBER",
                          StartingSequenceNumber=put["SequenceNumber"])[0]["Data"] == \
            secret + b" after restart"
    finally:
        if second is not None:
            status = second.stop()
            assert status == 0, f"restarted rheo serve did not stop cleanly:\n{second.log_tail()}"
        elif first.process.poll() is None:
            first.stop()
        else:
            shutil.rmtree(first.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# UPDATING while the change is made, on the limited server (1.5 s reshard delay).


def test_stream_is_updating_while_encryption_starts(limited, limited_stream):
    client = limited.client
    name = limited_stream(prefix="sseupdating")
    outcome = {}

    def run():
        began = time.monotonic()
        try:
            outcome["answer"] = start(client, name, DEFAULT_ALIAS)
        except Exception as error:  # noqa: BLE001 - reported below
            outcome["error"] = error
        outcome["took"] = time.monotonic() - began

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    status = poll_status(client, name, "UPDATING")
    assert status == "UPDATING", "the stream is UPDATING while encryption starts (ref. 1b)"
    in_use = f"Stream {name} under account {ACCOUNT} not ACTIVE, instead in state UPDATING"
    expect_error("ResourceInUseException", start, client, name, DEFAULT_ALIAS, message=in_use)
    expect_error("ResourceInUseException", client.stop_stream_encryption, StreamName=name,
                 EncryptionType="KMS", KeyId=DEFAULT_ALIAS, message=in_use)
    # Writes keep working during UPDATING (ref. 2.9).
    during = client.put_record(StreamName=name, Data=b"during", PartitionKey="k")
    thread.join(10)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome
    # The call returns once the stream is ACTIVE again, encrypted.
    summary = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE"
    assert (summary["EncryptionType"], summary["KeyId"]) == ("KMS", DEFAULT_ALIAS)
    after = client.put_record(StreamName=name, Data=b"after", PartitionKey="k")
    assert after["EncryptionType"] == "KMS"
    records, _ = drain(client, iterator(client, name, shard_id(0)), want=2, pause=0.25,
                       max_calls=10)
    assert [r["Data"] for r in records] == [b"during", b"after"]
    assert records[1]["EncryptionType"] == "KMS"
    assert records[0]["SequenceNumber"] == during["SequenceNumber"]
