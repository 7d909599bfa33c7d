"""Start and stop a real `rheo serve` on free loopback ports over a temporary data directory.

Used by conftest.py (as a module) and by run.sh (as a launcher for cli.sh):

    python tests/aws/rheo_server.py [--limits] -- COMMAND [ARGS...]

starts a server, runs COMMAND with KINESIS_ENDPOINT=http://127.0.0.1:PORT in its environment,
stops the server with SIGTERM and exits with COMMAND's status (or 1 if the server did not stop
cleanly).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Settings that make the suite fast and deterministic: consumers ACTIVE and reshards done at
# once (both are the defaults, spelled out so that a change of default does not slow the suite),
# and a heartbeat of 1 s so that push subscriptions never sit silent for long.
CONFIG = """\
reshard_delay = "0s"

[fan_out]
activation_delay = "0s"
heartbeat = "1s"
takeover_after = "5s"
"""

# The second server (limits on, testbed clock) imitates Kinesis's asynchronous transitions, so
# that UPDATING and CREATING can be observed.
LIMITED_CONFIG = """\
reshard_delay = "1500ms"

[fan_out]
activation_delay = "1500ms"
heartbeat = "1s"
takeover_after = "5s"
"""


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rheo_binary():
    return os.environ.get("RHEO_BIN", str(ROOT / "target/debug/rheo"))


class RheoServer:
    """One `rheo serve` process.

    limits=False adds --no-limits (the main suite reads in tight loops); limits=True keeps the
    per-shard limits on, runs the testbed clock and delays reshards and consumer activation,
    for the throttling, expiry, retention and state-transition tests.
    """

    def __init__(self, limits=False, extra_config=""):
        self.limits = limits
        self.extra_config = extra_config
        self.binary = rheo_binary()
        self.workdir = Path(tempfile.mkdtemp(prefix="rheo-aws-"))
        self.data_dir = self.workdir / "data"
        self.log_path = self.workdir / "server.log"
        self.port = free_port()
        self.metrics_port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = None
        self._log = None

    def start(self, timeout=30):
        config = self.workdir / "rheo.toml"
        config.write_text((LIMITED_CONFIG if self.limits else CONFIG) + self.extra_config)
        args = [
            self.binary, "serve",
            "--config", str(config),
            "--data-dir", str(self.data_dir),
            "--listen", f"127.0.0.1:{self.port}",
            "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
        ]
        if self.limits:
            args += ["--testbed-clock", "--min-retention-hours", "1"]
        else:
            args += ["--no-limits"]
        self._log = open(self.log_path, "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("RHEO_")}
        self.process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                self.process.wait()
                raise RuntimeError(f"rheo serve did not become ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def advance_clock(self, duration):
        """Moves the testbed clock forward, e.g. "6m", "25h" (only with limits=True)."""
        subprocess.run(
            [self.binary, "clock", "advance", duration, "--endpoint", self.endpoint],
            check=True, timeout=30, capture_output=True,
        )

    def stop(self, timeout=30):
        """SIGTERM; returns the exit status (0 on a graceful shutdown)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            status = "killed after SIGTERM timeout"
        self._log.close()
        if status == 0:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return status


def main(argv):
    limits = False
    if argv and argv[0] == "--limits":
        limits = True
        argv = argv[1:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    server = RheoServer(limits=limits).start()
    try:
        env = dict(os.environ, KINESIS_ENDPOINT=server.endpoint)
        status = subprocess.run(argv, env=env, timeout=300).returncode
    finally:
        stopped = server.stop()
    if stopped != 0:
        print(f"rheo serve did not stop cleanly ({stopped}); log in {server.workdir}:\n"
              f"{server.log_tail()}", file=sys.stderr)
        return status or 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
