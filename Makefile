# The two commands a new user needs: `make demo` and `make test`. Both install what they need first, into the
# interpreter that runs them: `python3` (an activated venv's, conda's, or the system's) unless PYTHON=... is given.
PYTHON ?= python3

.PHONY: demo test lint bench gpu-check

demo:
	PYTHON=$(PYTHON) bash scripts/install.sh train
	$(PYTHON) scripts/train.py --quick --dataset ../shared/data/facades/train --output_dir outputs/facades-quick

test:
	PYTHON=$(PYTHON) bash scripts/install.sh dev
	$(PYTHON) -m pytest -q

lint:
	ruff check . && ruff format --check .

# The paper step and one image, default path against a plain eager loop; bf16 only where the CPU has it natively
# (--include_emulated runs it anyway). Each variant's process is bounded by --max_seconds: a few minutes on 2 cores.
bench:
	$(PYTHON) benchmarks/bench_train.py --steps 5 --max_seconds 45

# On a machine with one GPU (under 8 minutes): the CUDA-marked tests, the paper step with each speed switch,
# images/s, the facades schedule's projected wall time, inference at 256/512/1024; JSON in GPU_CHECK_OUT.
GPU_CHECK_OUT ?= benchmarks/results/gpu-check.json
gpu-check:
	$(PYTHON) benchmarks/bench_gpu.py --json_out $(GPU_CHECK_OUT)
