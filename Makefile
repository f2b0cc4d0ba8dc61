# Quorum: `make run` serves the app with demo data; `make test` runs every check.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
SECRETS_ARG = $(if $(filter oidc,$(QUORUM_AUTH)),--secrets.files=var/secrets.toml,)
export OMP_NUM_THREADS ?= 1
# PostgreSQL tests use the local server when one answers (CI sets the URL explicitly).
QUORUM_TEST_POSTGRES_URL ?= $(shell pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && echo postgresql+psycopg://postgres@127.0.0.1:5432/test)
export QUORUM_TEST_POSTGRES_URL
# Operator commands (`quorum admin ...`) need the store named explicitly; the local default:
QUORUM_DATABASE_URL ?= sqlite:///$(CURDIR)/var/quorum.db

.PHONY: install run migrate seed test test-loaded lint typecheck cluster oidc-demo clean
OIDC_PORT ?= 9400
N ?= 2
RUNS ?= 1

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed: install it or run make PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

migrate: install
	@mkdir -p var
	QUORUM_DATABASE_URL=$(QUORUM_DATABASE_URL) $(BIN)/quorum admin db upgrade

seed: migrate
	QUORUM_DATABASE_URL=$(QUORUM_DATABASE_URL) $(BIN)/quorum admin demo seed --if-empty

run: seed
	QUORUM_DATABASE_URL=$(QUORUM_DATABASE_URL) $(BIN)/quorum admin config check
	@echo "Quorum is starting at http://127.0.0.1:$(PORT)  (Ctrl+C stops it)"
	QUORUM_DATABASE_URL=$(QUORUM_DATABASE_URL) $(BIN)/streamlit run app.py --server.port=$(PORT) --server.address=127.0.0.1 \
		--server.headless=true --browser.gatherUsageStats=false $(SECRETS_ARG) $(STREAMLIT_ARGS)

oidc-demo: seed
	@echo "Local OpenID Connect provider on http://127.0.0.1:$(OIDC_PORT); Quorum on http://127.0.0.1:$(PORT)"
	QUORUM_DATABASE_URL=$(QUORUM_DATABASE_URL) $(BIN)/python -m core.oidc_dev --port $(OIDC_PORT) --app-port $(PORT) --run-app

# HAProxy on PORT in front of N app processes on PORT+1..PORT+N (scripts/run_cluster.sh).
cluster: seed
	N=$(N) PORT=$(PORT) BIN=$(BIN) scripts/run_cluster.sh

lint: install
	$(BIN)/ruff check core pages app.py tests benchmarks
	$(BIN)/ruff format --check core pages app.py tests benchmarks
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy core

test: lint typecheck
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not e2e" $(PYTEST_ARGS)
	$(BIN)/pytest -q -p no:xdist -m e2e tests/e2e $(PYTEST_ARGS)

# The browser suite beside a CPU hog on every core, RUNS times: `make test-loaded RUNS=5`.
test-loaded: install
	BIN=$(BIN) RUNS=$(RUNS) PYTEST_ARGS="$(PYTEST_ARGS)" scripts/test_loaded.sh

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
