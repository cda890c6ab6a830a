"""Start ``app.py`` as its own process on a free local port and wait until it answers, and the headless browser
the pages are checked in (tests, benchmarks).

Running the real script, rather than importing it, exercises exactly what ``python spaces_app/app.py`` does,
including the environment variables it reads.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium: the browser the pages are checked in (no download)
BROWSER_ARGS = [  # headless in a container, nothing fetched beside the page
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(env: dict[str, str] | None = None, timeout: float = 180.0) -> Iterator[str]:
    """Run the app with ``env`` added to the environment, offline by default (``HF_HUB_OFFLINE=1``: nothing may
    download at run time); the process is stopped afterwards.

    Args:
        env: environment variables added to the app's.
        timeout: seconds the app has to answer; RuntimeError with the app's log if it exits or does not.

    Returns:
        (Yields) the app's URL.
    """
    port = free_port()
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        **(env or {}),
    }
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen([sys.executable, str(APP)], env=full_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_up(url, process, log, timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until_up(url: str, process: subprocess.Popen, log, timeout: float) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"The app exited with code {process.returncode}:\n{read_log(log)}")
        try:
            with urllib.request.urlopen(url + "/config", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"The app did not answer on {url} within {timeout:.0f} s:\n{read_log(log)}")


def read_log(log) -> str:  # noqa: ANN001
    log.flush()
    log.seek(0)
    return log.read()[-4000:]
