# Rheo developer commands. `make help` lists them.
.PHONY: help check fmt clippy test bench serve

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

check: fmt clippy test ## everything CI runs: formatting, lints, tests

fmt: ## check formatting
	cargo fmt --all -- --check

clippy: ## lint every target, warnings are errors
	cargo clippy --workspace --all-targets -- -D warnings

test: ## run every test
	cargo test --workspace

bench: ## run the benchmarks (slow; see benches/README.md)
	cargo bench -p rheo-benches
