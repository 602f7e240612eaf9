# Xinyidai — the two commands a fresh machine needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO := XINYIDAI_ENV=development $(BIN)/flask --app wsgi

.PHONY: demo test setup python assets translations browser-deps lint audit test-sqlite test-postgres i18n

## demo: install, migrate, seed and serve the demo portal at http://127.0.0.1:5000 (SQLite)
demo: setup
	$(DEMO) db upgrade
	$(DEMO) seed-demo
	$(DEMO) run --host 127.0.0.1 --port 5000

## test: lint, type-check, then the whole suite on SQLite and again on PostgreSQL
test: setup browser-deps lint test-sqlite test-postgres

setup: python assets translations

python: $(BIN)/.installed
$(BIN)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test,dev]'
	touch $@

# Browser assets come pinned from the npm registry (package-lock.json) and are copied
# into app/static/vendor/, which is not committed.
assets: app/static/vendor/.installed
app/static/vendor/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p app/static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/@picocss/pico/css/pico.min.css \
		node_modules/chart.js/dist/chart.umd.min.js app/static/vendor/
	touch $@

translations: python
	$(BIN)/pybabel compile --use-fuzzy -d app/translations 2>&1 | grep -v '^compiling' || true
	test -f app/translations/zh/LC_MESSAGES/messages.mo

# Debian's Chromium for Playwright (its own browser download cannot work here) and CJK
# fonts so screenshots show Chinese; redis-server for the Celery tests (tests/jobs start
# their own on a free port).
browser-deps:
	@if ! command -v chromium >/dev/null || ! fc-list 2>/dev/null | grep -qi 'Noto Sans CJK' \
		|| ! command -v redis-server >/dev/null; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-noto-cjk \
			redis-server >/dev/null; \
	fi
	@chromium --version

lint: python
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r app models ml --severity-level medium
	$(MAKE) --no-print-directory audit

# Known vulnerabilities in the pinned set. --strict fails when any package could not be
# checked (for instance when the vulnerability service cannot be reached), so an audit that
# did not happen never passes as "no known vulnerabilities". PIP_AUDIT_UNREACHABLE_OK=1
# downgrades exactly that case to a loud warning; real findings fail either way.
audit: python
	@set -o pipefail; out=$$($(BIN)/pip-audit --strict --no-deps --disable-pip --progress-spinner off \
		-r constraints.txt 2>&1); rc=$$?; echo "$$out" | grep -v -e '--no-deps is supported' -e 'pip-compile'; \
	if [ $$rc -ne 0 ]; then \
		if echo "$$out" | grep -q 'Found [0-9]* known vulnerabilit'; then \
			echo "pip-audit: KNOWN VULNERABILITIES in constraints.txt (see above)"; exit 1; \
		elif [ "$(PIP_AUDIT_UNREACHABLE_OK)" = 1 ]; then \
			echo "################################################################"; \
			echo "# WARNING: pip-audit could NOT check the dependencies: its       #"; \
			echo "# vulnerability service is unreachable from this machine.        #"; \
			echo "################################################################"; \
		else \
			echo "pip-audit FAILED: the dependencies could not be audited (see above)."; \
			echo "Set PIP_AUDIT_UNREACHABLE_OK=1 to go on without the audit."; exit 1; \
		fi; \
	fi

test-sqlite: setup
	$(BIN)/pytest --cov=app --cov=models --cov=ml --cov-report=term:skip-covered

# tests/ml touch no database, so the PostgreSQL pass leaves them out.
test-postgres: setup
	TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest --ignore=tests/ml

## i18n: extract messages and update the catalogs (then translate the new zh entries)
i18n: python
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
		--project Xinyidai -o app/translations/messages.pot .
	$(BIN)/pybabel update -i app/translations/messages.pot -d app/translations --no-fuzzy-matching
