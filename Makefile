# Rheo developer commands. `make help` lists them.
.PHONY: help check fmt clippy test test-python test-aws test-js check-deploy bench serve

VENV := target/python-venv

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

check: fmt clippy test test-python test-aws test-js check-deploy ## everything CI runs: formatting, lints, Rust, Python, AWS-client and JS tests, deployment files

fmt: ## check formatting
	cargo fmt --all -- --check

clippy: ## lint every target, warnings are errors
	cargo clippy --workspace --all-targets -- -D warnings

test: ## run every Rust test
	cargo test --workspace

test-python: ## the Python grpcio client against the real server (creates a venv in target/)
	cargo build -p rheo
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
	RHEO_BIN=target/debug/rheo $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/python

test-aws: ## boto3, raw CBOR/JSON and the AWS CLI against the Kinesis HTTP API (venv in target/)
	cargo build -p rheo
	tests/aws/run.sh

test-js: ## the AWS SDK for JavaScript v3 over HTTP/2 against the Kinesis HTTP API (needs Node.js >= 20)
	cargo build -p rheo
	tests/js/run.sh

check-deploy: ## check the deployment files in deploy/ (systemd-analyze, manifests, dashboard)
	cargo build -p rheo
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r deploy/requirements.txt
	$(VENV)/bin/python deploy/check.py

serve: ## run the server with the embedded defaults (./rheo-data, 127.0.0.1:4567)
	cargo run --release -p rheo -- serve

bench: ## run the benchmarks (slow; see benches/README.md)
	cargo bench -p rheo-benches
