# The two commands a new user needs: `make demo` and `make test`. Both install what they need first.
PYTHON ?= python3

.PHONY: demo test lint bench

demo:
	bash scripts/install.sh train
	$(PYTHON) scripts/train.py --quick --dataset ../shared/data/facades/train --output_dir outputs/facades-quick

test:
	bash scripts/install.sh dev
	$(PYTHON) -m pytest -q

lint:
	ruff check . && ruff format --check .

bench:
	$(PYTHON) benchmarks/bench_train.py --steps 5
