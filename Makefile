# The two commands: `make run` and `make test`. Everything else is a step they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2

.PHONY: run test test-fast bench lint clean node chromium

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

node: node_modules/.package-lock.json

# The browser tests drive Debian's chromium through playwright-core (which never downloads a browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && apt-get install -y -q chromium; \
	  else echo "chromium is missing: install it (apt-get install chromium) for the browser tests" >&2; fi; }

.env: | $(STAMP)
	$(BIN)/python -m segbase.devenv > .env
	@echo "wrote .env with generated development secrets (ENV=dev)"

run: $(STAMP) .env
	$(BIN)/python -m segbase.preflight
	$(BIN)/segbase run

test: $(STAMP) node chromium
	$(BIN)/python -m segbase.preflight --for-tests
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP) node
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) node_modules .pytest_cache
