# The two commands of the quick start. Each sets up a virtual environment in .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench bench-kernels generated clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/symconv demo

# The linter and the type checker first (seconds), then the suite.
test: $(BIN)/.installed
	$(BIN)/ruff check symconv tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

# Rewrite generated/ (kernels of the catalogue and its README); tests/test_render.py fails when it is stale.
generated: $(BIN)/.installed
	$(BIN)/python -m symconv.catalogue generated

bench: $(BIN)/.installed
	$(BIN)/symconv bench --symbolic

# The compiled kernels against PyTorch CPU (if installed) and NumPy, 1 and 2 threads; a quick run, < 1 min.
bench-kernels: $(BIN)/.installed
	$(BIN)/symconv bench --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
