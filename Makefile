# The two README commands are `make run` and `make test`; both set up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CARGO_MANIFEST := appliance/proxy/Cargo.toml
export PATH := $(HOME)/.cargo/bin:$(PATH)
export CARGO_TARGET_DIR := $(CURDIR)/target

.PHONY: setup run test lint test-slow test-image test-fleet fmt image image-repro delivery-lint

setup:
	@bash tools/setup.sh

run: setup
	$(VENV)/bin/zeroserve run --config examples/Caddyfile

# Everything but the slow suites (the engine's cargo tests, then pytest), plus lint.
# pytest's exit 5 (nothing collected) is reported as such and fails the run.
test: setup lint
	nice cargo test --quiet --manifest-path $(CARGO_MANIFEST)
	@$(PY) -m pytest -q; rc=$$?; \
	  if [ $$rc = 5 ]; then echo "make test: pytest collected no tests" >&2; fi; exit $$rc

lint: setup
	cargo fmt --manifest-path $(CARGO_MANIFEST) --check
	nice cargo clippy --quiet --manifest-path $(CARGO_MANIFEST) --all-targets -- -D warnings
	$(VENV)/bin/ruff check appliance/agent tests bench
	$(VENV)/bin/ruff format --check appliance/agent tests bench

fmt: setup
	cargo fmt --manifest-path $(CARGO_MANIFEST)
	$(VENV)/bin/ruff format appliance/agent tests bench

test-slow: setup
	$(PY) -m pytest -q -m slow

# Delivery (image/, playbooks/, Vagrantfile): owned by the delivery issue.
delivery-lint: setup
	cd playbooks && ansible-lint
	VAGRANT_DOTFILE_PATH=$$(mktemp -d) vagrant validate

image: setup
	bash image/deps.sh
	nice bash image/build.sh

# Two builds of HEAD must give the same sha256 for every output.
image-repro: setup
	bash image/deps.sh
	nice bash image/repro.sh

# Builds the image of the working tree first (a cached build takes a few minutes).
test-image: image
	$(PY) -m pytest -q -m slow tests/delivery/test_image.py

test-fleet: setup
	bash image/deps.sh
	$(PY) -m pytest -q -m slow tests/delivery/test_fleet.py
