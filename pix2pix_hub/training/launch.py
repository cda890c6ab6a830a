"""Is this process the run the launcher was asked for? The one trap of ``accelerate launch`` checked here.

``accelerate launch --cpu`` (or a CPU config without mpirun) starts ONE plain process per machine, whatever
``--num_machines`` or ``--num_processes`` say: each machine then trains a model of its own, with no error, and saves
it. That launcher exports no number of machines; what it leaves is ``MASTER_ADDR``/``MASTER_PORT`` (set only when
more than one process or machine was asked for) without the ``WORLD_SIZE`` that every real multi-process launch
(torchrun, which ``accelerate launch --multi_gpu`` runs, or mpirun) gives each process. Measured with accelerate
1.15: ``--cpu --num_machines 2`` sets ``MASTER_ADDR`` and no ``WORLD_SIZE``; ``--multi_gpu --num_machines 2`` sets
``WORLD_SIZE=2``, ``RANK`` and ``LOCAL_RANK``; a plain ``accelerate launch`` sets neither address nor size.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, Sequence

# Every ``accelerate launch`` exports these; a process started otherwise (python, torchrun alone) has neither.
LAUNCHER_VARIABLES = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND")
# Process counts of the launchers that start several processes (torchrun, Intel MPI / MPICH, Open MPI, MVAPICH).
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
TRUE_WORDS = ("1", "true", "yes")
GENERIC_COMMAND = (
    "accelerate launch --multi_gpu --num_machines N --machine_rank R --main_process_ip {address} "
    "--main_process_port {port} --num_processes TOTAL scripts/train.py ..."
)


class LaunchError(RuntimeError):
    """The launcher was asked for several processes or machines, but this run has one process."""

    exit_code = 2  # a usage mistake: the training command line prints the message alone and exits with 2


def check_launch(
    env: Mapping[str, str] = os.environ, num_processes: int = 1, launcher_argv: Sequence[str] | None = None
) -> None:
    """Raise ``LaunchError`` when ``accelerate launch`` was asked for several machines or processes (``env`` holds
    ``MASTER_ADDR`` and no process count) but the run has ``num_processes == 1``; the message shows the command
    that starts them. ``launcher_argv``: the launcher's command line (default: the parent process's, if readable).
    """
    if num_processes > 1 or not any(name in env for name in LAUNCHER_VARIABLES):
        return
    sizes = [int(env[name]) for name in WORLD_SIZE_VARIABLES if env.get(name, "").isdigit()]
    if sizes:
        if max(sizes) > 1:
            raise LaunchError(
                f"The launcher started {max(sizes)} processes, but this one trains alone: Accelerate did not join "
                "them (on a CPU, set ACCELERATE_USE_CPU=1 for `accelerate launch --multi_gpu`)."
            )
        return  # a multi-process launcher asked for one process: fine
    if "MASTER_ADDR" not in env:
        return
    argv = list(launcher_argv) if launcher_argv is not None else parent_command()
    raise LaunchError(
        f"`accelerate launch` was asked for several processes or machines (it set MASTER_ADDR={env['MASTER_ADDR']}), "
        "but started this process alone: with --cpu (or a CPU config without mpirun) every machine runs its own "
        "independent one-process training that saves its own model. Start one process per machine that join "
        f"into one run instead, on each machine with its own --machine_rank:\n  {corrected_command(argv, env)}\n"
        "(on GPUs without ACCELERATE_USE_CPU=1; --num_processes counts the processes of all machines). "
        "See docs/training.md. To train in one process on purpose, unset MASTER_ADDR."
    )


def parent_command(pid: int | None = None) -> list[str]:
    """The command line of process ``pid`` (default: the parent, i.e. the launcher); empty where unreadable."""
    try:
        with open(f"/proc/{pid or os.getppid()}/cmdline", "rb") as file:
            raw = file.read()
    except OSError:
        return []
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def corrected_command(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """``argv`` (``... accelerate launch --cpu ...``) as a launch that joins its processes: ``--multi_gpu`` for
    ``--cpu`` (with ``ACCELERATE_USE_CPU=1``), at least one process per machine. Without a launcher command line:
    the general form, with the address and port this process was given."""
    if "launch" not in argv:
        port = env.get("MASTER_PORT", "PORT")
        return "ACCELERATE_USE_CPU=1 " + GENERIC_COMMAND.format(address=env.get("MASTER_ADDR", "IP"), port=port)
    args = list(argv[argv.index("launch") + 1 :])
    on_cpu = "--cpu" in args or "--use_cpu" in args or env.get("ACCELERATE_USE_CPU", "").lower() in TRUE_WORDS
    args = [arg for arg in args if arg not in ("--cpu", "--use_cpu", "--multi_gpu")]
    machines, processes = _flag_value(args, "--num_machines"), _flag_value(args, "--num_processes")
    front = ["--multi_gpu"]  # launcher flags go before the script, in any order
    if machines is not None and (processes is None or processes < machines):
        if processes is not None:
            del args[args.index("--num_processes") : args.index("--num_processes") + 2]
        front += ["--num_processes", str(machines)]
    prefix = "ACCELERATE_USE_CPU=1 " if on_cpu else ""
    return prefix + "accelerate launch " + shlex.join(front + args)


def _flag_value(args: list[str], flag: str) -> int | None:
    if flag in args and args.index(flag) + 1 < len(args) and args[args.index(flag) + 1].isdigit():
        return int(args[args.index(flag) + 1])
    return None
