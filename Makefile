# The two commands a new user needs: `make demo` and `make test`. Both install what they need first, into the
# interpreter that runs them: `python3` (an activated venv's, conda's, or the system's) unless PYTHON=... is given.
PYTHON ?= python3

.PHONY: demo test lint bench

demo:
	PYTHON=$(PYTHON) bash scripts/install.sh train
	$(PYTHON) scripts/train.py --quick --dataset ../shared/data/facades/train --output_dir outputs/facades-quick

test:
	PYTHON=$(PYTHON) bash scripts/install.sh dev
	$(PYTHON) -m pytest -q

lint:
	ruff check . && ruff format --check .

bench:
	$(PYTHON) benchmarks/bench_train.py --steps 5
