"""SIGTERM and Ctrl-C during training: finish the step, save a checkpoint, then stop.

Spot instances and SLURM send SIGTERM some time before they kill; a terminal's Ctrl-C sends SIGINT. While
``StopSignals`` is entered, the first of either is only recorded (``received``); the ``Trainer`` checks it after
every update, saves a checkpoint and raises ``TrainingInterrupted``. A second Ctrl-C exits at once (status 130),
without a checkpoint: checkpoints are written atomically, so the previous one stays usable. The previous handlers
come back on exit, so ``train()`` changes no process-wide setting beyond its own run.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

HANDLED = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """A context manager recording the first SIGTERM/SIGINT in ``received`` (its number; None until then)."""

    def __init__(self, announce: bool = True) -> None:
        self.announce = announce  # print what happens (the main process; the others stay quiet)
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        # Python lets only the main thread set handlers; elsewhere (a notebook's worker thread) there are none.
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self.handle) for number in HANDLED}
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def handle(self, number: int, frame: FrameType | None = None) -> None:
        """The signal handler. Only ``os.write`` here: ``print`` may be mid-write when a signal lands."""
        if self.received is not None:
            if number == signal.SIGINT:
                self._say("\nSecond interrupt: exiting now, without a checkpoint.\n")
                os._exit(128 + number)
            return
        self.received = number
        self._say(
            f"\n{signal.Signals(number).name}: finishing the current step, then saving a checkpoint"
            f"{' (Ctrl-C again to exit at once)' if number == signal.SIGINT else ''}.\n"
        )

    def _say(self, text: str) -> None:
        if self.announce:
            os.write(2, text.encode())
