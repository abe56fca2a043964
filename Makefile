# qalqan — everyday commands.
#
#   make demo        run the standalone pipeline (the README's first command)
#   make test        the whole test suite against the real local stack (CI runs this)
#   make bench       every hot-path benchmark, printing events/s (parse, buffer,
#                    collector pipeline, sigma, correlation, detector stage 1,
#                    ClickHouse insert, the detector service through Kafka)
#   make lint        rustfmt --check, clippy -D warnings, shellcheck
#   make stack-up / stack-down / stack-status   the local Kafka, ClickHouse, Prometheus
#
# `make test` installs missing build packages (as root), starts the stack
# services that are not already running, runs every test step, and stops what
# it started — also when a step fails — exiting with the failing status.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# rustup installs cargo here; CI's environment may not have it on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)

CARGO ?= cargo

# CI builds once from a clean clone: incremental caches would only cost disk.
ifdef CI
export CARGO_INCREMENTAL := 0
endif
STACK := deploy/local/stack
DEMO_ARGS ?= --demo

.PHONY: help demo test test-steps test-format test-rust test-rules test-chdb test-deploy test-dashboards bench build-deps lint stack-up stack-down stack-status

help:
	@sed -n '3,8p' Makefile | sed 's/^# \{0,1\}//'

## demo: the standalone pipeline (collector + detector in one process).
## Runs `qalqan-detector standalone --demo`; override with DEMO_ARGS="--input FILE".
demo:
	$(CARGO) run --release -p qalqan-detector --bin qalqan-detector -- standalone $(DEMO_ARGS)

## test: everything CI checks. Add new steps to test-steps.
test: build-deps
	deploy/local/with-stack $(MAKE) --no-print-directory test-steps

test-steps: test-format test-rust test-rules test-chdb test-deploy test-dashboards

## test-format: rustfmt is cheap, so CI refuses unformatted code early.
test-format:
	$(CARGO) fmt --all -- --check

## test-rust: build every binary first (tests run other packages' binaries
## through qalqan_testkit::cargo_bin), then all unit and integration tests.
## Benchmarks are compiled (so they cannot rot) but not run: they measure
## speed, which is reported from `make bench`, never asserted.
test-rust:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --lib --bins --tests
	$(CARGO) test --workspace --benches --no-run

## test-rules: every rule in rules/ loads without rejection, has tests, and passes them.
test-rules:
	$(CARGO) run --quiet -p qalqan-detector --bin qalqan-detector -- rules check --strict rules
	$(CARGO) run --quiet -p qalqan-detector --bin qalqan-detector -- rules test rules --require-tests

## test-deploy: container file, Kubernetes manifests, YAML and systemd units.
test-deploy:
	deploy/validate

## test-chdb: the modern DDL and the sink's rows in an in-process modern ClickHouse.
test-chdb:
	tests/chdb/run

## test-dashboards: the Prometheus alerting rules load (promtool check) and
## behave (promtool unit tests in dashboards/prometheus/tests/), and the
## committed Grafana JSON is what dashboards/tools/build_dashboards.py writes.
## The dashboards' SQL and PromQL run against real services in test-rust
## (detector/tests/dashboards_sql.rs, dashboards_promql.rs) and test-chdb.
## promtool comes with Debian's prometheus package (the stack installs it).
DASHBOARD_RULES = $(filter-out %test.yml,$(wildcard dashboards/prometheus/*.yml))
test-dashboards:
	@command -v promtool >/dev/null || { echo "test-dashboards: promtool missing: apt-get install prometheus" >&2; exit 1; }
	promtool check rules $(DASHBOARD_RULES)
	promtool test rules dashboards/prometheus/tests/*.yml
	python3 dashboards/tools/build_dashboards.py --check

## bench: release builds, realistic data from ../shared/data; the ones that
## need Kafka or ClickHouse run inside the local stack.
bench:
	$(CARGO) bench -p qalqan-core --bench parse
	$(CARGO) bench -p qalqan-sigma --bench corpus
	$(CARGO) bench -p qalqan-correlation --bench correlation
	$(CARGO) bench -p qalqan-collector --bench buffer
	$(CARGO) bench -p qalqan-detector --bench stage1
	deploy/local/with-stack $(CARGO) bench -p qalqan-collector --bench pipeline
	deploy/local/with-stack $(CARGO) bench -p qalqan-detector --bench clickhouse_insert
	deploy/local/with-stack $(CARGO) bench -p qalqan-detector --bench service

build-deps:
	deploy/local/build-deps

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	@if command -v shellcheck >/dev/null; then \
		shellcheck deploy/local/stack deploy/local/with-stack deploy/local/build-deps deploy/kafka/qalqan-kafka deploy/kafka/make-certs .ci/run; \
	else echo "lint: shellcheck not installed (apt-get install shellcheck), shell scripts not checked"; fi

stack-up:
	$(STACK) up

stack-down:
	$(STACK) down

stack-status:
	$(STACK) status
