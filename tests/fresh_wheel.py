"""A freshly built wheel of this checkout, installed into a new virtual environment that sees the running
environment's packages (torch, gradio, ...) but not the checkout.

    wheel = build_wheel(tmp_path / "dist")
    python = venv_with_this_environment(tmp_path / "venv", cwd=work, env=offline_env())
    run(python, "-m", "pip", "install", "--no-deps", "--ignore-installed", wheel, cwd=work, env=env)

``venv --system-site-packages`` is not enough: inside a user's venv (or conda env, or uv venv) "system" means
the base interpreter, which has no torch. The new venv instead gets a ``.pth`` file naming the running
interpreter's site directories. Python reads ``.pth`` files only in site directories, not in the directories a
``.pth`` adds, so an editable install of the checkout (a ``.pth`` or finder in those site directories) stays
invisible and ``pix2pix_hub`` comes from the wheel.
"""

from __future__ import annotations

import importlib.util
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def offline_env(**extra: str) -> dict[str, str]:
    """This environment without PYTHONPATH (nothing from the checkout) and without any package index."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, "PIP_NO_INDEX": "1", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def run(*command: str | Path, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def build_wheel(destination: Path) -> Path:
    """``pip wheel`` of this checkout, offline (the build backend must be installed: no build isolation)."""
    pytest.importorskip("hatchling", reason="building the wheel offline needs hatchling installed")
    command = ["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(destination)]
    run(sys.executable, *command, cwd=destination.parent, env=offline_env())
    return next(destination.glob("pix2pix_hub-*.whl"))


def site_directories() -> list[str]:
    """The running interpreter's site directories that are on its path, in path order.

    Its own (a venv's, a conda env's), the base interpreter's where a venv includes them, the user's where
    enabled; never a directory that a ``.pth`` file added (such as the checkout of an editable install).
    """
    paths = sysconfig.get_paths()
    candidates = [*site.getsitepackages(), paths["purelib"], paths["platlib"]]
    if site.ENABLE_USER_SITE:
        candidates.append(site.getusersitepackages())
    wanted = {os.path.abspath(path) for path in candidates}
    found = [os.path.abspath(entry) for entry in sys.path if entry and os.path.abspath(entry) in wanted]
    # Where the path holds them under other spellings, the interpreter's own install scheme still applies.
    found += [os.path.abspath(paths[key]) for key in ("purelib", "platlib")]
    return list(dict.fromkeys(path for path in found if os.path.isdir(path)))


def venv_with_this_environment(venv: Path, cwd: Path, env: dict[str, str]) -> Path:
    """A new venv at ``venv`` whose ``python`` imports what this interpreter imports, bar the checkout.

    Args:
        venv: where to create it.
        cwd, env: the working directory and environment of the ``venv`` command.

    Returns:
        The venv's ``python``.
    """
    # pip is reused from this environment when it has one (a uv venv may not): no network, a faster start.
    without_pip = ["--without-pip"] if importlib.util.find_spec("pip") else []
    run(sys.executable, "-m", "venv", *without_pip, venv, cwd=cwd, env=env)
    python = venv / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=cwd, env=env)
    Path(purelib.strip(), "running-environment.pth").write_text("\n".join(site_directories()) + "\n")
    return python


def assert_imported_from(python: Path, venv: Path, cwd: Path, env: dict[str, str]) -> None:
    """``pix2pix_hub`` imports in ``python`` from ``venv`` (the wheel), not from the checkout."""
    where = run(python, "-c", "import pix2pix_hub; print(pix2pix_hub.__file__)", cwd=cwd, env=env).strip()
    assert where.startswith(str(venv)), where
