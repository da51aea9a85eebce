# Two commands do everything: `make run` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Build output and tools live outside the checkout, so a fresh clone reuses them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/fitness/target
export FITNESS_TOOLS_DIR ?= $(HOME)/.cache/fitness/tools
export CARGO_TERM_COLOR ?= never

.PHONY: help run stop test lint build fmt tools clean-tools

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## Provision and start the whole stack with data flowing; Ctrl-C stops it all
	@deploy/run-stack.sh

stop: ## Stop a `make run` started elsewhere
	@deploy/run-stack.sh --stop

test: lint ## fmt + clippy, then the whole suite against a private broker, registry and databases
	@deploy/test-stack.sh

lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

build: ## Build every binary (debug)
	cargo build --workspace --bins --locked

fmt: ## Format the code
	cargo fmt --all

tools: ## Install the embedded broker (nisshi) into the tools cache
	@source deploy/lib.sh && ensure_nisshi
