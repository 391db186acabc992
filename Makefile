# The two commands: `make run` and `make test`. Everything else is a step they need. `make help` lists them all.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2
CHROMIUM := /usr/bin/chromium
BENCH_REPORT ?= bench/results/BENCHMARKS.md

.PHONY: help run test bench bench-docs console-screenshots clean node browser compose-tool wrk

help: ## list the targets
	@grep -E '^[a-zA-Z_.-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

node: node_modules/.package-lock.json ## install the Node clients the tests drive (supabase-js, Supabase CLI, playwright-core)

# Debian packages the tests use, installed with apt when missing and running as root; otherwise the tests that
# need them fail with one line saying how to install them.
browser: ## Debian's chromium for the browser tests (console, storage), driven by playwright-core
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium (apt) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else echo "make: $(CHROMIUM) is missing: the browser tests will fail; install it with: sudo apt-get install chromium"; fi

wrk: ## Debian's wrk, the HTTP load generator of the benchmarks (and of their smoke test)
	@if command -v wrk >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing wrk (apt) for the benchmarks"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; \
	else echo "make: wrk is missing: the benchmarks and their smoke test will fail; install it with: sudo apt-get install wrk"; fi

compose-tool: ## Debian's docker-compose, whose `config` validates docker-compose.yml (no engine needed)
	@if command -v docker-compose >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing docker-compose (apt) to validate docker-compose.yml"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null; \
	else echo "make: docker-compose is missing: the compose test will fail; install it with: sudo apt-get install docker-compose"; fi

.env: | $(STAMP)
	$(BIN)/python -m segbase.devenv > .env
	@echo "wrote .env with generated development secrets (ENV=dev)"

compose.env: | $(STAMP) ## generate the secrets docker compose needs (then: docker compose --env-file compose.env up)
	$(BIN)/python -m segbase.devenv --compose > compose.env
	@echo "wrote compose.env: docker compose --env-file compose.env up -d"

run: $(STAMP) .env ## create .venv, write a dev .env, migrate and run api + worker + beat + relay
	$(BIN)/python -m segbase.preflight
	@echo "make: the segbase command is $(BIN)/segbase (or run '. $(BIN)/activate' to put it on your PATH)"
	$(BIN)/segbase run

test: $(STAMP) node browser compose-tool wrk ## the whole suite against real PostgreSQL, Redis, processes, clients and a browser
	$(BIN)/python -m segbase.preflight --for-tests
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP) node wrk ## run the benchmarks; the report goes to bench/results/BENCHMARKS.md (untracked)
	$(BIN)/python -m bench.run --output $(BENCH_REPORT)

bench-docs: $(STAMP) node wrk ## run the benchmarks and update docs/BENCHMARKS.md
	$(BIN)/python -m bench.run --output docs/BENCHMARKS.md

console-screenshots: $(STAMP) node browser ## regenerate docs/console/*.png from a throw-away stack
	$(BIN)/python -m tests.console.docs_screenshots

clean: ## remove .venv and node_modules
	rm -rf $(VENV) node_modules .pytest_cache
