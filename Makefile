# The two quick-start commands: `make demo` and `make test`. Both build .venv on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# PyTorch is used only as a reference in tests; pin the CPU build so pip never pulls a CUDA wheel.
TORCH := torch==2.13.0
# Real MLX (CPU wheel) is the other reference (tests/oracle/); pinned to the version of ../shared/mlx_tests' baseline.
MLX := mlx[cpu]==0.32.4

.PHONY: test demo lint format clean venv bench gpu-check

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[test,distributed,tensorboard,export]'
	$(BIN)/pip install -e '.[fast]' || echo "oneDNN (the fast extra) not installable here: the NumPy kernels run"
	$(BIN)/pip install '$(TORCH)' || echo "torch $(TORCH) not installable here: torch comparisons will be skipped"
	$(BIN)/pip install '$(MLX)' || echo "mlx $(MLX) not installable here: MLX comparisons will be skipped"
	touch $@

# The demo needs only the data and train extras (no test tools, no torch).
$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[data,train]'
	touch $@

venv: $(VENV)/.installed-test

# mypy checks the files listed under [tool.mypy] in pyproject.toml (chainrule/core and every
# package's public entry point).
lint: venv
	$(BIN)/ruff check chainrule tests benchmarks examples tools
	$(BIN)/ruff format --check chainrule tests benchmarks examples tools
	$(BIN)/mypy

# The second run is every in-process suite again with the strict CuPy stand-in as the default
# GPU (chainrule/core/strict_backend.py; chainrule.torch tensors are made on "cuda"): a NumPy
# leak anywhere they reach fails here. (The example programs start processes of their own:
# tests/test_examples.py runs them on the stand-in itself; the benchmark harness is left out.)
STRICT_SUITES = tests/core tests/nn tests/optimizers tests/train tests/data tests/torch tests/viz \
	tests/cli tests/pitfalls tests/oracle tests/test_checkpoint.py tests/test_io.py \
	tests/test_utils.py tests/distributed/test_distributed_single.py
test: venv lint
	$(BIN)/python -m pytest -q
	CHAINRULE_TEST_BACKEND=strict CHAINRULE_DEVICE=gpu $(BIN)/python -m pytest -q -p no:cacheprovider $(STRICT_SUITES)

format: venv
	$(BIN)/ruff format chainrule tests benchmarks examples tools
	$(BIN)/ruff check --fix chainrule tests benchmarks examples tools

# Train an MLP on scikit-learn's bundled digits (no download); prints the test metrics and
# where the weights and the training plot are. Re-running replaces runs/digits.
demo: $(VENV)/.installed-demo
	$(BIN)/chainrule train --data digits --out runs/digits --overwrite

bench: venv
	$(BIN)/python benchmarks/suite.py

clean:
	rm -rf $(VENV) build *.egg-info

# The GPU check (docs/gpu.md), for a machine with an NVIDIA GPU and CuPy but no network and no
# venv: prepare .gpu_check/ where ../shared exists (`python3 tools/gpu_check.py --prepare`),
# carry it there, then `make gpu-check` writes gpu_check_results.md (under 8 minutes).
gpu-check:
	PYTHONPATH=. $(PY) tools/gpu_check.py
