# Two commands set everything up: `make serve` and `make test` (see README.md).
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: serve test lint install-serve install-dev bench soak train-polyp train-camvid clean

# uv itself comes from PyPI into a private folder when the machine has none.
.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# Serving needs only the core + ONNX Runtime (CPU); --inexact keeps the dev/train extras if present.
install-serve: $(UV)
	$(UV) sync --frozen --inexact --extra cpu --no-default-groups

install-dev: $(UV)
	$(UV) sync --frozen --extra cpu --group train --group dev

serve: install-serve
	$(VENV) -m service --host $(HOST) --port $(PORT)

test: lint
	$(VENV) -m pytest $(PYTEST_ARGS)

# ruff's rules and settings are in pyproject.toml; `make test` runs this first.
lint: install-dev
	$(VENV) -m ruff check .

bench: install-dev
	$(VENV) -m benchmarks
	$(VENV) -m benchmarks.training_speed

# Not part of `make test`: 10,000 requests against a real server; minutes on tiny models, up to an hour on 512x512 ones.
soak: install-dev
	SOAK_REQUESTS=$${SOAK_REQUESTS:-10000} $(VENV) -m pytest tests/reliability/test_soak.py -s $(PYTEST_ARGS)

train-polyp: install-dev
	$(VENV) -m training.train --config training/configs/polyp.toml

train-camvid: install-dev
	$(VENV) -m training.train --config training/configs/camvid.toml

clean:
	rm -rf .venv .tools .pytest_cache
