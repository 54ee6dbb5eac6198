# `make demo` and `make test` set everything up themselves (a .venv next to this file).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

# torch==2.13.0 first: on a CPU machine that pins the CPU build, so the rest of the
# dependencies resolve around it instead of pulling a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/featurebias demo

# Two pytest workers on two cores, one BLAS/OpenMP thread each (no oversubscription).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q -n 2

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Side-by-side timings against peer libraries; ratios land in benchmarks/results/.
bench: $(STAMP)
	for b in erasure hooks probes similarity training linearisation distributed; do \
		$(PY) benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
