"""Checks the deployment artifacts where this machine allows (run by `make check-deploy`):

- the systemd unit with `systemd-analyze verify` (any warning fails), if systemd-analyze exists;
- the Kubernetes manifests and the compose file: parsed, and the fields operators rely on
  (probes on /healthz and /readyz, a volume claim, a grace period longer than the drain,
  resource requests, a non-root user) checked;
- the Dockerfile: parsed, multi-stage, non-root runtime user, the ports and the data volume;
- the Grafana dashboard: valid JSON, every panel querying a rheo metric (the Rust test
  `server_ops` checks that every metric it uses is on a live /metrics).

No Dockerfile linter installs from this machine's registries and no container engine or
cluster runs here, so the image is not built and the manifests are not applied; deploy/README.md
says so."""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from dockerfile_parse import DockerfileParser

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)


def systemd_unit():
    if shutil.which("systemd-analyze") is None:
        print("systemd-analyze not found: the unit is not verified")
        return
    binary = ROOT / "target/debug/rheo"
    with tempfile.TemporaryDirectory() as tmp:
        unit = Path(tmp) / "rheo.service"
        text = (DEPLOY / "systemd/rheo.service").read_text()
        # verify checks that ExecStart exists: point it at the binary the tests built.
        unit.write_text(text.replace("/usr/local/bin/rheo", str(binary)))
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
        )
        output = (result.stdout + result.stderr).strip()
        check(result.returncode == 0 and not output, f"systemd-analyze verify: {output}")


def kubernetes():
    docs = [d for d in yaml.safe_load_all((DEPLOY / "kubernetes/rheo.yaml").read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    check(set(kinds) == {"ConfigMap", "Service", "StatefulSet"}, f"kinds: {sorted(kinds)}")
    sts = kinds["StatefulSet"]["spec"]
    pod = sts["template"]["spec"]
    container = pod["containers"][0]
    check(pod.get("terminationGracePeriodSeconds", 30) >= 60, "grace period under 60 s")
    check(pod["securityContext"].get("runAsNonRoot") is True, "pod may run as root")
    check(sts.get("volumeClaimTemplates"), "no PersistentVolumeClaim template")
    check(container["resources"].get("requests"), "no resource requests")
    probes = {name: container.get(name, {}).get("httpGet", {}) for name in
              ("livenessProbe", "readinessProbe", "startupProbe")}
    check(probes["livenessProbe"].get("path") == "/healthz", "liveness is not /healthz")
    check(probes["readinessProbe"].get("path") == "/readyz", "readiness is not /readyz")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    check(ports == {"grpc": 4567, "metrics": 4568}, f"container ports {ports}")
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    check("/var/lib/rheo" in mounts, "the data directory is not on the volume")
    config = kinds["ConfigMap"]["data"]["rheo.toml"]
    check('metrics_listen = "0.0.0.0:4568"' in config, "metrics not reachable by the kubelet")


def compose():
    spec = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = spec["services"]["rheo"]
    check(any(v.startswith("rheo-data:/var/lib/rheo") for v in service["volumes"]), "no data volume")
    check("rheo-data" in spec.get("volumes", {}), "the volume is not declared")
    check(service.get("stop_grace_period") == "60s", "stop grace period is not 60s")


def dockerfile():
    parser = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    instructions = parser.structure
    stages = [i for i in instructions if i["instruction"] == "FROM"]
    check(len(stages) >= 2, "the image build is not multi-stage")
    last_from = max(i["startline"] for i in stages)
    runtime = [i for i in instructions if i["startline"] > last_from]
    users = [i["value"] for i in runtime if i["instruction"] == "USER"]
    check(users and not users[-1].split(":")[0] in ("root", "0"), f"runtime user {users}")
    exposed = " ".join(i["value"] for i in runtime if i["instruction"] == "EXPOSE").split()
    check({"4567", "4568"} <= set(exposed), f"exposed ports {exposed}")
    check(any(i["instruction"] == "VOLUME" and "/var/lib/rheo" in i["value"] for i in runtime),
          "no data volume")
    check(any(i["instruction"] == "HEALTHCHECK" for i in runtime), "no HEALTHCHECK")


def dashboard():
    board = json.loads((DEPLOY / "grafana/rheo-dashboard.json").read_text())
    check(board.get("panels"), "no panels")
    exprs = [t.get("expr", "") for p in board["panels"] for t in p.get("targets", [])]
    check(exprs and all(re.search(r"rheo_[a-z_]+", e) for e in exprs), "a panel without a rheo query")
    ids = [p["id"] for p in board["panels"]]
    check(len(ids) == len(set(ids)), "duplicate panel ids")


for step in (systemd_unit, kubernetes, compose, dockerfile, dashboard):
    try:
        step()
    except Exception as error:  # a parse error or a missing field is a failure too
        failures.append(f"{step.__name__}: {error!r}")

if failures:
    print("deployment artifacts: FAILED", *failures, sep="\n  ")
    sys.exit(1)
print("deployment artifacts: ok")
