# The two commands a user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: install install-test run sandbox test test-fast bench clean vendor

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

install-test: $(VENV)/.installed-test

$(VENV)/.installed-test: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(VENV)/.installed $@

run: install
	$(BIN)/mailrelease run --host $(HOST) --port $(PORT) $(ARGS)

sandbox: install
	$(BIN)/mailrelease run --host $(HOST) --port $(PORT) --sandbox

AMP_VALIDATOR := tests/amp_validator/validator_wasm.js

# The official AMP validator (Node.js), which the AMP tests compare the pre-flight with.
$(AMP_VALIDATOR): tests/amp_validator/package-lock.json tests/amp_validator/setup.sh
	tests/amp_validator/setup.sh

AXE := tests/browser/axe/node_modules/axe-core/axe.min.js

# axe-core, the accessibility checker the browser tests run on every page.
$(AXE): tests/browser/axe/package-lock.json
	cd tests/browser/axe && npm ci --silent --no-audit --no-fund

test: install-test $(AMP_VALIDATOR) $(AXE)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The unit tier alone (no sockets, no processes): seconds, for while you work.
test-fast: install-test
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

# Browser libraries are served from app/static/vendor (no CDN); this refreshes the copies
# from the npm registry after a version change in app/static/vendor/package.json.
vendor:
	cd app/static/vendor && npm install --ignore-scripts --no-audit --no-fund \
	  && cp node_modules/chart.js/dist/chart.umd.min.js . \
	  && cp node_modules/chart.js/LICENSE.md chart.js.LICENSE.md && rm -rf node_modules

clean:
	rm -rf $(VENV) .pytest_cache
