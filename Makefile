# The two entry points of the README. Each installs what the machine lacks first.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: test demo bench deps test-deps bench-deps

deps:
	@scripts/ensure-deps.sh

test-deps:
	@scripts/ensure-deps.sh test

bench-deps:
	@scripts/ensure-deps.sh bench

test: test-deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) test --workspace --locked

demo: deps
	$(CARGO) build --locked -p shouhu
	scripts/demo.sh target/debug/shouhu

# The surge benchmark (loadtests/README.md): the standard scenario against the origin
# directly, nginx and shouhu; prints the summary table, writes target/bench/standard-*/.
bench: bench-deps
	$(CARGO) build --release --locked -p shouhu -p shouhu-loadtest
	target/release/shouhu-loadtest run --scenario loadtests/scenarios/standard.toml $(BENCH_ARGS)
