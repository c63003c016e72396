# The two entry points of the README. Each installs what the machine lacks first.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test demo deps test-deps

deps:
	@scripts/ensure-deps.sh

test-deps:
	@scripts/ensure-deps.sh test

test: test-deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --locked

demo: deps
	$(CARGO) build --locked -p shouhu
	scripts/demo.sh target/debug/shouhu
