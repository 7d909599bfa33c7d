"""Fixtures for the Python client test: generate the client from proto/ with grpcio-tools and
run the real `rheo serve` binary on a free loopback port over a temporary data directory."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pb():
    """Generates rheo/v1/kinesis_pb2(_grpc).py into a temporary directory and imports them."""
    out = Path(tempfile.mkdtemp(prefix="rheo-py-"))
    from grpc_tools import protoc

    proto_root = ROOT / "proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(proto_root / "rheo/v1/kinesis.proto"),
    ])
    assert status == 0, "protoc failed"
    for package in (out / "rheo", out / "rheo/v1"):
        (package / "__init__.py").touch()
    sys.path.insert(0, str(out))
    from rheo.v1 import kinesis_pb2, kinesis_pb2_grpc

    return kinesis_pb2, kinesis_pb2_grpc


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    """The real server, stopped with SIGTERM at the end (it must exit 0)."""
    binary = os.environ.get("RHEO_BIN", str(ROOT / "target/debug/rheo"))
    data_dir = tempfile.mkdtemp(prefix="rheo-data-")
    port = free_port()
    metrics_port = free_port()
    process = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}",
         "--metrics-listen", f"127.0.0.1:{metrics_port}"],
        stderr=subprocess.PIPE,
    )
    address = f"127.0.0.1:{port}"
    # Ready once /readyz answers 200: the gRPC port opens before the data directory does.
    deadline = time.time() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"rheo serve did not start: {process.stderr.read().decode()}")
        time.sleep(0.05)
    yield address
    process.terminate()
    assert process.wait(timeout=30) == 0, "graceful shutdown exits 0"
