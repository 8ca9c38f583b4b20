# thaw — every entry point. `make demo` and `make test` work on a fresh clone
# with Rust, Python 3, Node and the PostgreSQL server binaries installed.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Build outputs and tool caches live outside the clone, so CI's warm runs are fast.
export THAW_CACHE ?= $(HOME)/.cache/thaw
export CARGO_TARGET_DIR ?= $(THAW_CACHE)/target
export CARGO_TERM_COLOR ?= never

# Inside a harness (THAW_HARNESS=1, e.g. the one `make test` starts for all its steps) a step
# uses its services; run on its own, a step starts its own.
HARNESS = $(if $(filter 1,$(THAW_HARNESS)),,python3 tests/harness.py run --)
THAW := $(CARGO_TARGET_DIR)/release/thaw
VISITS ?= 100000
SEED ?= 42

.PHONY: help build build-cli demo test test-steps test-repository test-emulator test-rust test-models test-infra bench lint fmt

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## release build of the CLI and the Lambda binaries
	cargo build --release --workspace --bins

build-cli: ## release build of the thaw CLI only
	cargo build --release -p thaw

demo: build-cli ## seed the emulator, run the nightly job twice (initial + incremental), print the reports
	VISITS=$(VISITS) SEED=$(SEED) THAW=$(THAW) STAGED=$(STAGED) $(HARNESS) bash tests/demo.sh

test: ## the whole test suite (what CI runs): the steps below inside one harness (PostgreSQL, emulator, S3 started once)
	python3 tests/harness.py run -- $(MAKE) --no-print-directory test-steps

test-steps: test-repository test-emulator lint test-rust test-models test-infra sfn-local-test

test-repository: ## no references outside the repo, every docs § reference resolves, no Lambda links test-only crates
	python3 tests/check_repository.py

# The harness creates the venv (tests/emulator/requirements.txt, with pytest) before it runs the command.
test-emulator: ## pytest: the emulator's stages, COPY INTO @stage unload and LIST against the harness's S3 server (seconds)
	$(HARNESS) $(THAW_CACHE)/venv/bin/pytest -q -p no:cacheprovider tests/emulator/tests

test-rust: ## Rust unit + integration tests against a private PostgreSQL and the emulator
	cargo build --workspace --tests --features thaw-engine/failpoints
	$(HARNESS) bash tests/run-rust-tests.sh

test-models: ## literal models of the legacy system (tests/*_model.py) against the real thaw, fixed seeds
	cargo build --workspace --tests --features thaw-engine/failpoints
	$(HARNESS) bash tests/run-models.sh

bench: build-cli ## throughput benchmarks (ratios against a baseline measured in the same run)
	cargo build --release -p thaw-engine --example bench_loader
	cargo build --release -p thaw-engine --example parquet_copy_baseline
	$(HARNESS) bash tests/bench.sh

lint: ## clippy with warnings as errors
	cargo clippy --workspace --all-targets -- -D warnings

fmt: ## format the Rust code
	cargo fmt --all

-include infra/infra.mk

test-infra: ## CDK assertions, cdk-nag, cfn-lint, checkov, asl-validator (when infra/ is present)
	@if [ -f infra/infra.mk ]; then $(MAKE) --no-print-directory infra-test; else echo "infra: not present"; fi
