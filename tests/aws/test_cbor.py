"""The wire protocol itself (ref. section 5), with raw HTTP requests: CBOR 1.1 bodies encoded and
decoded by cbor2 (independent of the server's codec), and JSON 1.1 envelope details: request IDs,
error bodies, unknown operations, missing authentication, malformed bodies."""

import base64
import http.client
import json
import time
import urllib.parse

import cbor2
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kutil import ACCOUNT, shard_id, unique

CBOR = "application/x-amz-cbor-1.1"
JSON = "application/x-amz-json-1.1"
CREDENTIALS = Credentials("AKIDEXAMPLE", "secret")


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case names
        self.body = body

    def cbor(self):
        return cbor2.loads(self.body)

    def json(self):
        return json.loads(self.body)


def call(endpoint, operation, body, content_type=JSON, sign=True, target=None):
    """POST / with X-Amz-Target; the body is bytes, already encoded."""
    url = endpoint + "/"
    headers = {
        "Content-Type": content_type,
        "X-Amz-Target": target or f"Kinesis_20131202.{operation}",
    }
    if sign:
        request = AWSRequest(method="POST", url=url, data=body, headers=headers)
        SigV4Auth(CREDENTIALS, "kinesis", "us-east-1").add_auth(request)
        headers = dict(request.headers.items())
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=20)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
    finally:
        connection.close()


def cbor_call(endpoint, operation, payload, expect=200):
    answer = call(endpoint, operation, cbor2.dumps(payload), CBOR)
    assert answer.status == expect, (answer.status, answer.body)
    if answer.body:
        assert answer.headers["content-type"].startswith(CBOR)
    return answer


def json_call(endpoint, operation, payload, expect=200, **kwargs):
    answer = call(endpoint, operation, json.dumps(payload).encode(), JSON, **kwargs)
    assert answer.status == expect, (answer.status, answer.body)
    return answer


@pytest.fixture()
def cbor_stream(endpoint, kinesis):
    name = unique("cbor")
    cbor_call(endpoint, "CreateStream", {"StreamName": name, "ShardCount": 1})
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
    yield name
    kinesis.delete_stream(StreamName=name)


def test_cbor_put_and_get_records(endpoint, cbor_stream):
    name = cbor_stream
    data = b"\x00\xff\xfe binary \x80\x81 not utf-8 \xc3\x28"
    before_ms = int(time.time() * 1000)
    put = cbor_call(endpoint, "PutRecord",
                    {"StreamName": name, "PartitionKey": "k", "Data": data}).cbor()
    assert put["ShardId"] == shard_id(0)
    assert isinstance(put["SequenceNumber"], str) and put["SequenceNumber"].isdigit()

    batch = cbor_call(endpoint, "PutRecords", {"StreamName": name, "Records": [
        {"PartitionKey": "k", "Data": b"\x01\x02"}, {"PartitionKey": "k", "Data": b""}]}).cbor()
    assert batch["FailedRecordCount"] == 0
    assert len(batch["Records"]) == 2

    it = cbor_call(endpoint, "GetShardIterator", {
        "StreamName": name, "ShardId": shard_id(0), "ShardIteratorType": "TRIM_HORIZON",
    }).cbor()["ShardIterator"]
    assert isinstance(it, str)
    answer = cbor_call(endpoint, "GetRecords", {"ShardIterator": it, "Limit": 10})
    got = answer.cbor()
    records = got["Records"]
    assert [r["Data"] for r in records] == [data, b"\x01\x02", b""]
    for record in records:
        assert isinstance(record["Data"], bytes), "CBOR blobs are byte strings, not base64"
    first = records[0]
    assert first["SequenceNumber"] == put["SequenceNumber"]
    assert first["PartitionKey"] == "k"
    stamp = first["ApproximateArrivalTimestamp"]
    # Ref. 5.2: timestamps in CBOR are integer epoch milliseconds.
    assert type(stamp) is int, f"{stamp!r} is not an integer"
    assert before_ms - 5000 <= stamp <= int(time.time() * 1000) + 5000
    assert isinstance(got["MillisBehindLatest"], int)
    assert isinstance(got["NextShardIterator"], str)

    # AT_TIMESTAMP with an integer millisecond timestamp (ref. 5.2) starts at that record.
    second_stamp = records[1]["ApproximateArrivalTimestamp"]
    it = cbor_call(endpoint, "GetShardIterator", {
        "StreamName": name, "ShardId": shard_id(0), "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": second_stamp,
    }).cbor()["ShardIterator"]
    later = cbor_call(endpoint, "GetRecords", {"ShardIterator": it}).cbor()["Records"]
    assert [r["Data"] for r in later][-2:] == [b"\x01\x02", b""]
    assert all(r["ApproximateArrivalTimestamp"] >= second_stamp for r in later)


def test_cbor_timestamp_with_tag_1_as_java_sdks_send_it(endpoint, cbor_stream):
    # The Java SDKs (v1 and v2 SdkCborGenerator.writeValue) write a request timestamp as CBOR
    # tag 1 around the integer epoch milliseconds; KCL sends AT_TIMESTAMP and ShardFilter
    # timestamps that way. It must mean the same instant as the bare integer.
    name = cbor_stream
    cbor_call(endpoint, "PutRecord", {"StreamName": name, "PartitionKey": "k", "Data": b"one"})
    time.sleep(0.02)
    cbor_call(endpoint, "PutRecord", {"StreamName": name, "PartitionKey": "k", "Data": b"two"})
    it = cbor_call(endpoint, "GetShardIterator", {
        "StreamName": name, "ShardId": shard_id(0), "ShardIteratorType": "TRIM_HORIZON",
    }).cbor()["ShardIterator"]
    records = cbor_call(endpoint, "GetRecords", {"ShardIterator": it}).cbor()["Records"]
    second = records[1]["ApproximateArrivalTimestamp"]
    assert second > records[0]["ApproximateArrivalTimestamp"]
    it = cbor_call(endpoint, "GetShardIterator", {
        "StreamName": name, "ShardId": shard_id(0), "ShardIteratorType": "AT_TIMESTAMP",
        "Timestamp": cbor2.CBORTag(1, second),
    }).cbor()["ShardIterator"]
    tagged = cbor_call(endpoint, "GetRecords", {"ShardIterator": it}).cbor()["Records"]
    assert [r["Data"] for r in tagged] == [b"two"]


def test_cbor_describe_stream_summary_timestamp(endpoint, cbor_stream):
    summary = cbor_call(endpoint, "DescribeStreamSummary",
                        {"StreamName": cbor_stream}).cbor()["StreamDescriptionSummary"]
    assert summary["StreamName"] == cbor_stream
    assert summary["StreamStatus"] == "ACTIVE"
    created = summary["StreamCreationTimestamp"]
    assert type(created) is int
    assert abs(created - time.time() * 1000) < 120_000


def test_cbor_error_shape(endpoint):
    name = unique("nocbor")
    answer = call(endpoint, "DescribeStream", cbor2.dumps({"StreamName": name}), CBOR)
    assert answer.status == 400
    assert answer.headers["content-type"].startswith(CBOR)
    assert "x-amzn-requestid" in answer.headers
    error = answer.cbor()
    assert isinstance(error, dict)
    assert error["__type"] == "ResourceNotFoundException"
    assert error["message"] == f"Stream {name} under account {ACCOUNT} not found."


def test_json_envelope_request_id_and_error_body(endpoint):
    ok = json_call(endpoint, "ListStreams", {})
    assert ok.headers["content-type"].startswith(JSON)
    assert ok.headers.get("x-amzn-requestid")
    assert isinstance(ok.json()["StreamNames"], list)
    again = json_call(endpoint, "ListStreams", {})
    assert again.headers["x-amzn-requestid"] != ok.headers["x-amzn-requestid"]

    name = unique("nojson")
    error = json_call(endpoint, "DescribeStreamSummary", {"StreamName": name}, expect=400)
    assert error.headers.get("x-amzn-requestid")
    assert error.headers["content-type"].startswith(JSON)
    body = error.json()
    assert set(body) == {"__type", "message"}
    assert body["__type"] == "ResourceNotFoundException"
    assert body["message"] == f"Stream {name} under account {ACCOUNT} not found."


def test_json_empty_output_and_encodings(endpoint, kinesis):
    name = unique("rawjson")
    created = json_call(endpoint, "CreateStream", {"StreamName": name, "ShardCount": 1})
    assert created.headers.get("x-amzn-requestid")
    assert created.body.strip() in (b"", b"{}")
    try:
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
        data = b"\xff\x00raw"
        json_call(endpoint, "PutRecord", {"StreamName": name, "PartitionKey": "k",
                                          "Data": base64.b64encode(data).decode()})
        it = json_call(endpoint, "GetShardIterator", {
            "StreamName": name, "ShardId": shard_id(0), "ShardIteratorType": "TRIM_HORIZON",
        }).json()["ShardIterator"]
        record = json_call(endpoint, "GetRecords", {"ShardIterator": it}).json()["Records"][0]
        # Ref. 5.1: blobs are base64 strings, timestamps epoch seconds as a JSON number.
        assert base64.b64decode(record["Data"]) == data
        stamp = record["ApproximateArrivalTimestamp"]
        assert isinstance(stamp, (int, float)) and not isinstance(stamp, bool)
        assert abs(stamp - time.time()) < 60
    finally:
        kinesis.delete_stream(StreamName=name)


def test_unknown_operation(endpoint):
    answer = json_call(endpoint, None, {}, target="Kinesis_20131202.NoSuchOperation", expect=400)
    assert answer.json()["__type"] == "UnknownOperationException"
    assert answer.headers.get("x-amzn-requestid")


def test_missing_authentication_token(endpoint):
    # 400, as kinesalite answers JSON requests (its status codes were copied from real Kinesis
    # responses); the 403 of the reference's common-errors table is what AWS's XML services
    # and kinesalite's invalid-content-type path send.
    answer = json_call(endpoint, "ListStreams", {}, sign=False, expect=400)
    body = answer.json()
    assert body["__type"] == "MissingAuthenticationTokenException"
    assert body["message"] == "Missing Authentication Token"


def test_malformed_json_body(endpoint):
    answer = call(endpoint, "ListStreams", b"{not json", JSON)
    assert answer.status == 400
    assert answer.json()["__type"] == "SerializationException"


def test_malformed_cbor_body(endpoint):
    answer = call(endpoint, "ListStreams", b"\xff\xff\xff", CBOR)
    assert answer.status == 400
    assert answer.cbor()["__type"] == "SerializationException"
