# The two commands of the quick start. Each sets up a virtual environment in .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test test-sanitize bench bench-kernels generated figures clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/symconv demo

# The linter and the type checker first (seconds), then the suite, one worker per core (pytest-xdist), a test
# file per worker at a time so that the kernels a file shares are compiled once.
test: $(BIN)/.installed
	$(BIN)/ruff check --no-cache symconv tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The kernels and the hostile-argument tests under AddressSanitizer and UndefinedBehaviorSanitizer, their runtimes
# preloaded (tests/sanitizers.py); fails on any report. A few minutes: every kernel is compiled anew.
test-sanitize: $(BIN)/.installed
	$(BIN)/python tests/sanitizers.py --numprocesses=auto

# Rewrite generated/ (kernels of the catalogue and its README); tests/test_render.py fails when it is stale.
generated: $(BIN)/.installed
	$(BIN)/python -m symconv.catalogue generated

# The README's pictures of the passes (docs/figures/): the textbook 3x3/2x2 case and the 5x5/3x3 stride-2 case.
figures: $(BIN)/.installed
	$(BIN)/symconv figure --pass forward --frame 2 -o docs/figures/textbook_forward.png
	$(BIN)/symconv figure --pass grad_input --frame 5 -o docs/figures/textbook_grad_input.png
	$(BIN)/symconv figure --input 5x5 --kernel 3x3 --stride 2 --pass forward --frame 2 -o docs/figures/stride2_forward.png
	$(BIN)/symconv figure --input 5x5 --kernel 3x3 --stride 2 --pass grad_weight --frame 2 -o docs/figures/stride2_grad_weight.png
	$(BIN)/symconv figure --input 5x5 --kernel 3x3 --stride 2 --pass grad_input --frame 7 -o docs/figures/stride2_grad_input.png

bench: $(BIN)/.installed
	$(BIN)/symconv bench --symbolic

# The compiled kernels against PyTorch CPU (if installed) and NumPy, 1 and 2 threads; a quick run, < 1 min.
bench-kernels: $(BIN)/.installed
	$(BIN)/symconv bench --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
