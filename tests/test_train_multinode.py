"""Two "machines" on 127.0.0.1, one process each, joined by ``accelerate launch --multi_gpu --num_machines 2`` (gloo on
the CPU): both ranks end with identical weights, only rank 0 writes files, and a run killed on both machines resumes
from its last checkpoint to the weights of the uninterrupted run; map-style and streamed data. And the trap:
``accelerate launch --cpu --num_machines 2`` starts one lone process per machine, which is refused.

The per-rank worker is ``tests/test_train_ddp.py`` run as a script (it records the rank's file writes and prints and
hashes its final weights into ``$P2P_DDP_RESULTS/rank<i>.json``). Run as a script with ``check``, this file builds an
``Accelerator`` and calls ``check_launch``, as the trainer does.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DDP_WORKER = Path(__file__).with_name("test_train_ddp.py")
TINY = [
    "--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--load_size", "36", "--crop_size", "32",
    "--val_size", "2", "--max_train_steps", "6", "--checkpointing_steps", "2", "--validation_steps", "1000",
    "--logging_steps", "1", "--num_validation_images", "2", "--dataloader_num_workers", "0", "--report_to", "none",
]  # fmt: skip
RUN_TIMEOUT = 300
LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_CPU")


def is_rank_file(name: str) -> bool:
    """The one file machine 1 writes, its own RNG state in a checkpoint (accelerate's ``random_states_1.pkl`` or
    the safetensors ``rng_state_1.safetensors``), or the temporary name it is first written under."""
    return re.fullmatch(r"(\.tmp-)?(random_states|rng_state)_1\.(pkl|safetensors)(\..+)?", name) is not None


def launch_env(**extra: str) -> dict[str, str]:
    """The environment of a launch: this checkout's package first, nothing left from an outer launcher."""
    env = {key: value for key, value in os.environ.items() if key not in LAUNCHER_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**env, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_launch() -> list[str]:
    found = shutil.which("accelerate")
    return [found, "launch"] if found else [sys.executable, "-m", "accelerate.commands.launch"]


def machine_command(rank: int, port: int, script: Path, args: list[str]) -> list[str]:
    """``accelerate launch`` of machine ``rank`` of 2, one process each, the main process on 127.0.0.1:port."""
    return [
        *accelerate_launch(), "--multi_gpu", "--num_machines", "2", "--machine_rank", str(rank),
        "--main_process_ip", "127.0.0.1", "--main_process_port", str(port), "--num_processes", "2",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(script), *args,
    ]  # fmt: skip


def start_machines(args: list[str], where: Path) -> list[subprocess.Popen]:
    """Both machines' launchers, each in a session of its own (so the test can kill all it started); reports go to
    ``where/results``, each machine's output to ``where/machine<rank>.log``."""
    (where / "results").mkdir(parents=True)
    env = launch_env(ACCELERATE_USE_CPU="1", P2P_DDP_RESULTS=str(where / "results"), OMP_NUM_THREADS="1")
    port = free_port()
    machines = []
    for rank in (0, 1):
        with open(where / f"machine{rank}.log", "w") as log:  # the child keeps its own copy of the descriptor
            command = machine_command(rank, port, DDP_WORKER, args)
            machines.append(
                subprocess.Popen(
                    command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
    return machines


def finish(machines: list[subprocess.Popen], where: Path) -> list[dict]:
    """Wait for both machines to succeed; their rank reports, rank 0 first."""
    try:
        for machine in machines:
            machine.wait(timeout=RUN_TIMEOUT)
    finally:
        kill(machines)
    logs = [(where / f"machine{rank}.log").read_text() for rank in (0, 1)]
    assert [m.returncode for m in machines] == [0, 0], "\n\n".join(log[-4000:] for log in logs)
    return [json.loads((where / "results" / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc (torchrun starts each worker in a session of its own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def kill(machines: list[subprocess.Popen]) -> None:
    """SIGKILL every process the test started that still runs: each launcher, its torchrun agent and worker."""
    doomed = [pid for machine in machines if machine.poll() is None for pid in process_tree(machine.pid)]
    for pid in doomed:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for machine in machines:
        machine.wait(timeout=60)


def parquet_shards(aligned: Path, folder: Path, shards: int = 4) -> str:
    """The side-by-side pairs of ``aligned`` as ``shards`` parquet files of imageA/imageB bytes; their glob."""
    import datasets
    from PIL import Image

    def png(image) -> dict:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    files = sorted(aligned.glob("*.png"), key=lambda p: int(p.stem))
    folder.mkdir(parents=True)
    features = datasets.Features({"imageA": datasets.Image(), "imageB": datasets.Image()})
    for shard in range(shards):
        rows = {"imageA": [], "imageB": []}
        for file in files[shard::shards]:
            with Image.open(file) as image:
                half = image.width // 2
                rows["imageA"].append(png(image.crop((0, 0, half, image.height))))
                rows["imageB"].append(png(image.crop((half, 0, image.width, image.height))))
        datasets.Dataset.from_dict(rows, features=features).to_parquet(str(folder / f"shard-{shard}.parquet"))
    return str(folder / "*.parquet")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, list[str]]:
    """Data flags per mode: 12 aligned A|B pairs, and the same pairs as 4 parquet shards for streaming."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_train_support import make_aligned_pairs

    root = tmp_path_factory.mktemp("multinode-data")
    aligned = make_aligned_pairs(root / "aligned", count=12)
    return {
        "map": ["--dataset", str(aligned)],
        "streaming": ["--dataset", parquet_shards(aligned, root / "parquet"), "--streaming", "--shuffle_buffer", "4"],
    }


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the processes to kill in /proc (Linux)")
@pytest.mark.parametrize("mode", ["map", "streaming"])
def test_two_machines_train_as_one_run_and_resume_after_both_are_killed(tmp_path, data, mode):
    args = [*data[mode], *TINY]

    # 1. uninterrupted: one 2-process run over both machines
    whole = tmp_path / "whole"
    ranks = finish(start_machines([*args, "--output_dir", str(whole / "out")], whole), whole)
    assert [r["num_processes"] for r in ranks] == [2, 2] and [r["process_index"] for r in ranks] == [0, 1]
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 6
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept the machines' replicas identical
    assert ranks[0]["writes"], "the audit hook saw no writes on rank 0: the check below would prove nothing"
    foreign = [w for w in ranks[1]["writes"] if not is_rank_file(Path(w).name)]
    assert not foreign, f"machine 1 wrote into the output folder: {foreign}"
    assert "Saved the model" in ranks[0]["stdout"] and "Saved" not in ranks[1]["stdout"]
    state = json.loads((whole / "out" / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["num_processes"] == 2
    if mode == "streaming":
        assert [s["rank"] for s in state["stream"]] == [0, 1]  # both machines' stream positions, written by rank 0

    # 2. the same run killed on both machines after its first checkpoint, then resumed on both
    output = tmp_path / "again"
    machines = start_machines([*args, "--output_dir", str(output)], tmp_path / "killed")
    first = output / "checkpoints" / "checkpoint-2" / "trainer_state.json"
    deadline = time.monotonic() + RUN_TIMEOUT
    while not first.is_file() and time.monotonic() < deadline and all(m.poll() is None for m in machines):
        time.sleep(0.02)
    kill(machines)
    assert first.is_file(), "the run ended before its first checkpoint"
    assert not (output / "checkpoints" / "checkpoint-6").exists(), "killed too late: the run had already finished"
    resumed_args = [*args, "--output_dir", str(output), "--resume_from_checkpoint", "latest"]
    resumed = finish(start_machines(resumed_args, tmp_path / "resumed"), tmp_path / "resumed")
    assert "Resumed from" in resumed[0]["stdout"]
    assert resumed[0]["global_step"] == resumed[1]["global_step"] == 6
    assert resumed[0]["weights"] == resumed[1]["weights"] == ranks[0]["weights"]  # as if never interrupted


def test_one_lone_process_of_a_two_machine_cpu_launch_is_refused(tmp_path):
    """``accelerate launch --cpu --num_machines 2`` runs the script as one independent process: refused, with the
    launch line that joins the machines."""
    port = free_port()
    command = [
        *accelerate_launch(), "--cpu", "--num_machines", "2", "--machine_rank", "1", "--main_process_ip",
        "127.0.0.1", "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no",
        __file__, "check",
    ]  # fmt: skip
    env = launch_env()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path)
    assert done.returncode != 0, done.stdout + done.stderr
    expected = (
        "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 2 --machine_rank 1 "
        f"--main_process_ip 127.0.0.1 --main_process_port {port} --mixed_precision no --dynamo_backend no {__file__} "
        "check"
    )
    assert "started this process alone" in done.stderr and expected in done.stderr, done.stderr[-3000:]

    # the launches that are fine: one process on one machine, and two processes joined into one run
    alone = [*accelerate_launch(), "--cpu", "--mixed_precision", "no", "--dynamo_backend", "no", __file__, "check"]
    done = subprocess.run(alone, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0 and "launch ok: 1 processes" in done.stdout, done.stderr[-3000:]
    joined = [*accelerate_launch(), "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port"]
    joined += [str(free_port()), "--mixed_precision", "no", "--dynamo_backend", "no", __file__, "check"]
    env = launch_env(ACCELERATE_USE_CPU="1")
    done = subprocess.run(joined, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=tmp_path)
    assert done.returncode == 0 and done.stdout.count("launch ok: 2 processes") == 2, done.stderr[-3000:]


# The environments accelerate 1.15 gave the script, as measured (the launcher's own variables only).
LONE_CPU_ENV = {"ACCELERATE_USE_CPU": "True", "ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_DYNAMO_BACKEND": "NO"}
LONE_CPU_ENV.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29555")  # --cpu --num_machines 2 --machine_rank 1 ...
JOINED_ENV = {**LONE_CPU_ENV, "ACCELERATE_USE_CPU": "1", "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "0"}
LAUNCHER_ARGV = [
    "/usr/bin/python3", "/usr/bin/accelerate", "launch", "--cpu", "--num_machines", "2", "--machine_rank", "1",
    "--main_process_ip", "127.0.0.1", "--main_process_port", "29555", "scripts/train.py", "--quick",
]  # fmt: skip


def test_check_launch_refuses_only_a_lone_process_of_a_multi_process_launch():
    from pix2pix_hub.training.launch import LaunchError, check_launch

    check_launch({}, 1)  # python scripts/train.py
    check_launch({"MASTER_ADDR": "10.0.0.1"}, 1)  # an address exported by the user, no accelerate launch
    check_launch({**LONE_CPU_ENV, "WORLD_SIZE": "1"}, 1)  # torchrun or --multi_gpu with one process
    check_launch(JOINED_ENV, 2)  # --multi_gpu --num_machines 2: joined
    lone = {key: value for key, value in LONE_CPU_ENV.items() if not key.startswith("MASTER")}
    check_launch(lone, 1)  # a plain `accelerate launch` of one process
    with pytest.raises(LaunchError) as refused:
        check_launch(LONE_CPU_ENV, 1, launcher_argv=LAUNCHER_ARGV)
    expected = (
        "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 2 --machine_rank 1 "
        "--main_process_ip 127.0.0.1 --main_process_port 29555 scripts/train.py --quick"
    )
    assert "MASTER_ADDR=127.0.0.1" in str(refused.value) and expected in str(refused.value)
    with pytest.raises(LaunchError, match="--main_process_ip 127.0.0.1 --main_process_port 29555 --num_processes"):
        check_launch(LONE_CPU_ENV, 1, launcher_argv=[])  # no launcher command line: the general form
    with pytest.raises(LaunchError, match="started 2 processes, but this one trains alone") as unjoined:
        check_launch(JOINED_ENV, 1)
    assert unjoined.value.exit_code == 2  # a usage mistake for the training command line: one line, exit 2


def _check() -> None:
    from accelerate import Accelerator

    from pix2pix_hub.training.launch import LaunchError, check_launch

    accelerator = Accelerator()
    try:
        check_launch(os.environ, accelerator.num_processes)
    except LaunchError as error:
        sys.exit(f"error: {error}")
    print(f"launch ok: {accelerator.num_processes} processes")


if __name__ == "__main__" and sys.argv[1:] == ["check"]:
    _check()
