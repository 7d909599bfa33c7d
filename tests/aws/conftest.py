"""Fixtures of the AWS-client conformance suite: a real `rheo serve` (or KINESIS_ENDPOINT) and
boto3 clients pointed at it.

- KINESIS_ENDPOINT=http://HOST:PORT runs the suite against a server that is already running
  instead of starting one (the tests that need their own Rheo server with limits and the testbed
  clock are then skipped).
- RHEO_BIN names the rheo binary (default target/debug/rheo).
"""

import os

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kutil import unique
from rheo_server import RheoServer

EXTERNAL = os.environ.get("KINESIS_ENDPOINT")


def make_client(endpoint, **config):
    settings = dict(
        # total_max_attempts counts the first attempt: 1 means no retries at all (botocore's
        # max_attempts counts retries, so max_attempts=1 would still retry throttled calls).
        retries={"total_max_attempts": 1},
        connect_timeout=5,
        read_timeout=20,
    )
    settings.update(config)
    return boto3.client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(**settings),
    )


def _stop(server):
    status = server.stop()
    assert status == 0, f"rheo serve did not stop cleanly ({status}):\n{server.log_tail()}"


@pytest.fixture(scope="session")
def endpoint():
    """The endpoint URL of the server under test (limits off, real clock)."""
    if EXTERNAL:
        yield EXTERNAL.rstrip("/")
        return
    server = RheoServer(limits=False).start()
    yield server.endpoint
    _stop(server)


@pytest.fixture(scope="session")
def kinesis(endpoint):
    return make_client(endpoint)


@pytest.fixture(scope="session")
def kinesis_raw(endpoint):
    """A client that skips botocore's own parameter checks, so the server's are tested."""
    return make_client(endpoint, parameter_validation=False)


@pytest.fixture(scope="session")
def limited():
    """A second Rheo server with the per-shard limits on and the testbed clock; `.client` is a
    boto3 client for it, `.advance_clock("6m")` moves its clock."""
    if EXTERNAL:
        pytest.skip("KINESIS_ENDPOINT is set: these tests need a Rheo server of their own")
    server = RheoServer(limits=True).start()
    server.client = make_client(server.endpoint)
    yield server
    _stop(server)


def wait_active(client, name):
    client.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 20})


class StreamFactory:
    def __init__(self, client):
        self.client = client
        self.names = []

    def __call__(self, shards=1, prefix="s", on_demand=False, **kwargs):
        name = unique(prefix)
        if on_demand:
            kwargs["StreamModeDetails"] = {"StreamMode": "ON_DEMAND"}
        else:
            kwargs["ShardCount"] = shards
        self.client.create_stream(StreamName=name, **kwargs)
        self.names.append(name)
        wait_active(self.client, name)
        return name

    def cleanup(self):
        for name in self.names:
            try:
                self.client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
            except ClientError:
                pass


@pytest.fixture()
def new_stream(kinesis):
    """new_stream(shards=1, prefix="s", on_demand=False, **CreateStream args) -> an ACTIVE
    stream's name; deleted after the test."""
    factory = StreamFactory(kinesis)
    yield factory
    factory.cleanup()


@pytest.fixture()
def limited_stream(limited):
    factory = StreamFactory(limited.client)
    yield factory
    factory.cleanup()
