# telesurg set-up and everyday commands. Each target creates .venv on first use and reinstalls
# only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)  ## run the headless demo (scripted experts solve every task; PNGs in demo_out/)
	$(VENV)/bin/telesurg demo $(ARGS)

test: $(STAMP) lint  ## lint, then the whole test suite
	$(VENV)/bin/python -m pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)  ## environment throughput next to panda-gym (installs the baseline into .venv)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -r bench/requirements.txt
	$(VENV)/bin/python bench/env_throughput.py $(ARGS)

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache *.egg-info
