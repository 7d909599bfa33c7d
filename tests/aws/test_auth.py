"""SigV4 verification (`[auth] mode = "sigv4"`) with boto3's real signer: a server of its own
that knows one access key. Right key and secret pass; a wrong secret, an unknown key, a
tampered body, a signature that does not cover the operation and a stale signature are refused
with the errors Kinesis sends."""

import datetime
import json
import os
import urllib.error
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from botocore.exceptions import ClientError

from conftest import make_client
from rheo_server import RheoServer

ACCESS_KEY = "AKIDRHEOTEST"
SECRET = "rheo-test-secret"

AUTH_CONFIG = f"""
[auth]
mode = "sigv4"

[auth.access_keys]
{ACCESS_KEY} = "{SECRET}"
"""


@pytest.fixture(scope="module")
def verifying():
    if os.environ.get("KINESIS_ENDPOINT"):
        pytest.skip("KINESIS_ENDPOINT is set: this test needs a Rheo server of its own")
    server = RheoServer(extra_config=AUTH_CONFIG).start()
    yield server
    assert server.stop() == 0, server.log_tail()


def client(server, key, secret):
    c = make_client(server.endpoint, retries={"total_max_attempts": 1})
    c._request_signer._credentials = botocore.credentials.Credentials(key, secret)
    return c


def error_of(call):
    with pytest.raises(ClientError) as raised:
        call()
    return raised.value.response


def test_the_right_key_and_secret_are_accepted(verifying):
    ok = client(verifying, ACCESS_KEY, SECRET)
    ok.create_stream(StreamName="signed", ShardCount=1)
    ok.get_waiter("stream_exists").wait(
        StreamName="signed", WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    put = ok.put_record(StreamName="signed", Data=b"\x00signed", PartitionKey="k")
    assert put["ShardId"] == "shardId-000000000000"


def test_a_wrong_secret_is_an_invalid_signature(verifying):
    response = error_of(lambda: client(verifying, ACCESS_KEY, "not-the-secret").list_streams())
    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert response["Error"]["Message"].startswith(
        "The request signature we calculated does not match the signature you provided.")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_an_unknown_key_is_an_unrecognized_client(verifying):
    response = error_of(lambda: client(verifying, "AKIDNOBODY", SECRET).list_streams())
    assert response["Error"]["Code"] == "UnrecognizedClientException"
    assert response["Error"]["Message"] == "The security token included in the request is invalid."


def signed_request(server, body, when=None):
    """A ListStreams request signed by botocore's SigV4 signer, optionally at another time."""
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=server.endpoint + "/", data=body,
        headers={"X-Amz-Target": "Kinesis_20131202.ListStreams",
                 "Content-Type": "application/x-amz-json-1.1"})
    signer = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(ACCESS_KEY, SECRET), "kinesis", "us-east-1")
    if when is not None:
        # botocore stamps X-Amz-Date from the current time; sign as of `when` instead.
        original = botocore.auth.datetime.datetime
        class Frozen(original):
            @classmethod
            def utcnow(cls):
                return when.replace(tzinfo=None)
            @classmethod
            def now(cls, tz=None):
                return when if tz else when.replace(tzinfo=None)
        botocore.auth.datetime.datetime = Frozen
        try:
            signer.add_auth(request)
        finally:
            botocore.auth.datetime.datetime = original
    else:
        signer.add_auth(request)
    return request


def send(request, body=None):
    raw = urllib.request.Request(
        request.url, data=request.body if body is None else body,
        headers=dict(request.headers.items()), method="POST")
    try:
        with urllib.request.urlopen(raw, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_tampered_body_fails_the_signature(verifying):
    request = signed_request(verifying, b"{}")
    assert send(request)[0] == 200
    status, body = send(request, body=b'{"Limit": 1}')
    assert status == 400
    assert body["__type"] == "InvalidSignatureException"


def test_a_signature_that_leaves_the_operation_out_is_refused(verifying):
    # Signed without X-Amz-Target, which is then added: a captured request could otherwise be
    # replayed as any operation taking the same body.
    request = signed_request(verifying, b"{}")
    del request.headers["X-Amz-Target"]
    signer = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(ACCESS_KEY, SECRET), "kinesis", "us-east-1")
    del request.headers["Authorization"]
    del request.headers["X-Amz-Date"]
    signer.add_auth(request)
    assert "x-amz-target" not in request.headers["Authorization"].lower()
    request.headers["X-Amz-Target"] = "Kinesis_20131202.DeleteStream"
    status, body = send(request)
    assert status == 400
    assert body["__type"] == "InvalidSignatureException"
    assert body["message"] == "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization."


def test_a_stale_signature_is_expired(verifying):
    twenty_minutes_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    status, body = send(signed_request(verifying, b"{}", when=twenty_minutes_ago))
    assert status == 400
    # Kinesis reports a stale signature as InvalidSignatureException "Signature expired: ...".
    assert body["__type"] == "InvalidSignatureException"
    assert body["message"].startswith("Signature expired: ")


def test_a_malformed_authorization_header_is_an_incomplete_signature(endpoint):
    # Even when any signature is accepted (the default), the header must be well formed.
    raw = urllib.request.Request(
        endpoint + "/", data=b"{}", method="POST",
        headers={"X-Amz-Target": "Kinesis_20131202.ListStreams",
                 "Content-Type": "application/x-amz-json-1.1",
                 "X-Amz-Date": "20260101T000000Z",
                 "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(raw, timeout=10)
    assert raised.value.code == 400
    body = json.loads(raised.value.read())
    assert body["__type"] == "IncompleteSignatureException"
    assert "Authorization header requires 'Signature' parameter." in body["message"]
    assert "Authorization header requires 'SignedHeaders' parameter." in body["message"]


@pytest.fixture(scope="module")
def short_sessions():
    if os.environ.get("KINESIS_ENDPOINT"):
        pytest.skip("KINESIS_ENDPOINT is set: this test needs a Rheo server of its own")
    # Appended to the [fan_out] table of the suite's configuration.
    server = RheoServer(extra_config='session_lifetime = "6s"\n').start()
    yield server
    assert server.stop() == 0, server.log_tail()


def test_a_subscription_over_http_ends_cleanly_after_its_lifetime(short_sessions):
    import time
    kinesis = make_client(short_sessions.endpoint, read_timeout=30)
    kinesis.create_stream(StreamName="lifetime", ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(
        StreamName="lifetime", WaiterConfig={"Delay": 1, "MaxAttempts": 20})
    arn = kinesis.describe_stream_summary(StreamName="lifetime")[
        "StreamDescriptionSummary"]["StreamARN"]
    consumer = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName="c")["Consumer"]
    for _ in range(100):
        described = kinesis.describe_stream_consumer(ConsumerARN=consumer["ConsumerARN"])
        if described["ConsumerDescription"]["ConsumerStatus"] == "ACTIVE":
            break
        time.sleep(0.05)
    started = time.monotonic()
    response = kinesis.subscribe_to_shard(
        ConsumerARN=consumer["ConsumerARN"], ShardId="shardId-000000000000",
        StartingPosition={"Type": "LATEST"})
    events = []
    for event in response["EventStream"]:  # ends when the server ends the body
        assert "SubscribeToShardEvent" in event, event
        events.append(event["SubscribeToShardEvent"])
        assert time.monotonic() - started < 20, "the session outlived its 6 s lifetime"
    elapsed = time.monotonic() - started
    assert 5.0 <= elapsed < 15, elapsed
    # Heartbeats every second (the suite's setting) while nothing was put.
    assert len(events) >= 4
    assert all(e["ContinuationSequenceNumber"] for e in events)
