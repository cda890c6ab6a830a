"""A local Hugging Face Hub for tests: olah serving plain git repos over real HTTP on 127.0.0.1.

    with HubMirror(tmp_path) as hub:
        hub.add_model("user/facades", model_folder)
        hub.add_dataset("user/pairs", dataset_folder)
        run_python(code, HF_ENDPOINT=hub.endpoint, HF_HOME=...)

huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once at import, so Hub code runs in a fresh interpreter
(``run_python``) with those variables set. olah refuses uploads: push tests replace ``HfApi`` instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def git_commit_folder(folder: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-q", "-m", "upload")


class HubMirror:
    """Serve model and dataset folders as Hub repos; olah runs in offline mode, so nothing leaves the machine."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.mirrors = self.root / "mirrors"
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def _add(self, kind: str, repo_id: str, folder: Path) -> None:
        destination = self.mirrors / kind / repo_id
        shutil.copytree(folder, destination)
        git_commit_folder(destination)

    def add_model(self, repo_id: str, folder: Path) -> None:
        self._add("models", repo_id, folder)

    def add_dataset(self, repo_id: str, folder: Path) -> None:
        self._add("datasets", repo_id, folder)

    def __enter__(self) -> HubMirror:
        self.mirrors.mkdir(parents=True, exist_ok=True)
        config = self.root / "olah.toml"
        config.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {self.port}\n'
            f'mirror-netloc = "127.0.0.1:{self.port}"\nmirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
            f'repos-path = "{self.root / "olah-cache"}"\nmirrors-path = ["{self.mirrors}"]\n'
            "[accessibility]\noffline = true\n"
        )
        log = open(self.root / "olah.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [sys.executable, "-m", "olah.server", "-c", str(config)], cwd=self.root, stdout=log, stderr=log
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited: {(self.root / 'olah.log').read_text()[-2000:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return self
            except OSError as error:
                if getattr(error, "code", None):  # an HTTP error status means the server is up
                    return self
                time.sleep(0.3)
        self.__exit__()
        raise TimeoutError("olah did not start within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def run_python(code: str, timeout: float = 300, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (in ``cwd``) with extra environment variables; raises on failure."""
    full_env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1", **env}
    result = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    if result.returncode != 0:
        raise AssertionError(f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
