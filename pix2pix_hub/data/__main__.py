"""``python -m pix2pix_hub.data SOURCE ...`` is ``pix2pix-hub dataset check SOURCE ...``: what a paired source holds,
whether every pair reads, a preview grid (``pix2pix_hub/commands/dataset.py``)."""

from __future__ import annotations

import sys

from ..cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    """The check's exit status: 0 every pair reads, 1 some do not, 2 the source cannot be opened as asked."""
    return cli_main(["dataset", "check", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
