"""Two real processes (gloo DDP on the CPU) through `accelerate launch`: both ranks end with the same weights and
only rank 0 writes into the output folder or prints.

Run as a script, this file is the per-rank worker: it records every file-system write under the output folder
(Python audit hooks) and what the rank printed, runs scripts/train.py, and reports to ``$P2P_DDP_RESULTS``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
WRITE_EVENTS = ("os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "shutil.copyfile", "os.truncate")
# The one file a non-main rank must write: its own RNG state inside the checkpoint (through fileio, so under a
# temporary name first).
RANK_FILE = "rng_state_1.safetensors"


def written_by_rank(name: str) -> bool:
    return name == RANK_FILE or name.startswith(f".tmp-{RANK_FILE}.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_train_in_lockstep_and_only_rank0_writes(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_support import make_aligned_pairs

    data = make_aligned_pairs(tmp_path / "pairs", count=10)
    output = tmp_path / "out"
    results = tmp_path / "results"
    results.mkdir()
    launcher = [shutil.which("accelerate") or "accelerate"]
    if shutil.which("accelerate") is None:
        launcher = [sys.executable, "-m", "accelerate.commands.launch"]
    else:
        launcher.append("launch")
    command = [
        *launcher, "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_port", str(free_port()), __file__,
        "--dataset", str(data), "--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--load_size", "36",
        "--crop_size", "32", "--val_size", "2", "--max_train_steps", "4", "--checkpointing_steps", "2",
        "--validation_steps", "2", "--logging_steps", "1", "--num_validation_images", "2",
        "--dataloader_num_workers", "0", "--output_dir", str(output),
    ]  # fmt: skip
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "P2P_DDP_RESULTS": str(results), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    ranks = [json.loads((results / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["num_processes"] for r in ranks] == [2, 2]
    assert [r["process_index"] for r in ranks] == [0, 1]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept both replicas identical
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 4
    assert all(r["sync_norm"] for r in ranks)  # batch norm statistics span both processes
    # 8 training pairs, 2 processes at batch 1: 4 updates per epoch
    assert (
        json.loads((output / "checkpoints" / "checkpoint-4" / "trainer_state.json").read_text())["num_processes"] == 2
    )
    assert (output / "checkpoints" / "checkpoint-4" / RANK_FILE).is_file()
    assert (output / "checkpoints" / "checkpoint-4" / "rng_state_0.safetensors").is_file()

    assert ranks[0]["writes"], "the audit hook saw no writes on rank 0: the check below would prove nothing"
    assert any(written_by_rank(Path(w).name) for w in ranks[1]["writes"])  # the hook does see rank 1's writes
    foreign = [w for w in ranks[1]["writes"] if not written_by_rank(Path(w).name)]
    assert not foreign, f"rank 1 wrote into the output folder: {foreign}"
    assert "validation L1" in ranks[0]["stdout"] and "validation" not in ranks[1]["stdout"]
    assert "Saved the model" in ranks[0]["stdout"] and "Saved" not in ranks[1]["stdout"]
    assert list((output / "logs").rglob("events.out.tfevents.*"))

    from pix2pix_hub import Pix2Pix

    assert Pix2Pix.from_pretrained(output).in_channels == 3


# ----- the worker -----------------------------------------------------------------------------------------------
def _worker(argv: list[str]) -> None:
    import runpy

    output = Path(argv[argv.index("--output_dir") + 1]).resolve()
    writes: list[str] = []

    def under_output(path) -> bool:
        try:
            return isinstance(path, (str, bytes, os.PathLike)) and Path(os.fsdecode(path)).resolve().is_relative_to(
                output
            )
        except (OSError, ValueError):
            return False

    def audit(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing and under_output(path):
                writes.append(os.fsdecode(path))
        elif event == "os.mkdir" and args and under_output(args[0]):
            if not os.path.isdir(args[0]):  # accelerate's save_state calls makedirs(exist_ok=True): a no-op here
                writes.append(os.fsdecode(args[0]))
        elif event in WRITE_EVENTS and args and under_output(args[0]):
            writes.append(os.fsdecode(args[0]))

    sys.addaudithook(audit)
    printed = io.StringIO()

    class Tee(io.TextIOBase):
        def __init__(self, stream):
            self.stream = stream

        def write(self, text):
            printed.write(text)
            return self.stream.write(text)

        def flush(self):
            self.stream.flush()

    sys.stdout = Tee(sys.stdout)
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "train.py"), run_name="train_script")
    result = script["main"](argv)
    sys.stdout = sys.stdout.stream

    import torch

    from pix2pix_hub.training.sync_norm import AllReduceBatchNorm2d

    digest = hashlib.sha256()
    for module in (result.pix2pix.generator, result.pix2pix.discriminator):
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    report = {
        "num_processes": result.num_processes,
        "process_index": result.process_index,
        "global_step": result.global_step,
        "weights": digest.hexdigest(),
        "sync_norm": any(isinstance(m, AllReduceBatchNorm2d) for m in result.pix2pix.generator.modules()),
        "writes": sorted(set(writes)),
        "stdout": printed.getvalue(),
    }
    results = Path(os.environ["P2P_DDP_RESULTS"])
    (results / f"rank{result.process_index}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    _worker(sys.argv[1:])
