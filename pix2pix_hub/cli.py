"""``pix2pix-hub``: every command of the package, one module each in ``pix2pix_hub/commands/``.

    pix2pix-hub translate MODEL INPUT OUTPUT          an image or a folder (recursively)
    pix2pix-hub translate MODEL OUTPUT --dataset SOURCE   the input side of a dataset's pairs
    pix2pix-hub evaluate MODEL --dataset SOURCE --split test --output_dir DIR
    pix2pix-hub export-onnx MODEL out.onnx            (--int8 --calibration DIR | --dataset SOURCE: static int8)
    pix2pix-hub convert latest_net_G.pth OUT          the authors' checkpoint as a model folder (--push_to_hub)
    pix2pix-hub train --dataset SOURCE ...            the flags of scripts/train.py (TrainingConfig's fields)
    pix2pix-hub dataset check SOURCE                  what a paired source holds, whether every pair reads
    pix2pix-hub dataset prepare SOURCE OUT            a folder of pairs as an imageA/imageB dataset (and Hub)
    pix2pix-hub space build OUT --model USER/NAME     a Gradio Space folder serving a model (and --push)

MODEL is a folder written by ``save_pretrained`` or a Hub repo id (``hub.ids`` tells them apart). One error
policy for all (``commands.policy``): one line on stderr; exit 0 done, 1 for the data (inputs skipped, a dataset or
checkpoint that cannot be used; the good outputs are still written), 2 for the usage (a flag, a path that does not
exist, an output that would replace an input, a model that cannot be loaded); ``--debug`` or ``PIX2PIX_DEBUG=1``
shows the traceback instead.

This module builds the parser and dispatches; each command registers its arguments and runs by calling the
library. ``datasets``, ``accelerate`` and ``gradio`` are imported by the commands that use them, so ``--help``
costs no more than ``import pix2pix_hub`` (torch).
"""

from __future__ import annotations

import sys

from .commands import convert, dataset, evaluate, export_onnx, space, train, translate
from .commands.policy import CommandParser, debug_wanted, guarded

COMMANDS = (translate, evaluate, export_onnx, convert, train, dataset, space)  # in the order `--help` lists them


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="pix2pix-hub",
        description="pix2pix translators: translate images, evaluate, export to ONNX, convert the authors' "
        "checkpoints, train, check and prepare datasets, build Spaces.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:  # every word after it is the training command's (argparse cannot pass "--help" on)
        return train.run_arguments(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = args.check(args)
    if problem:
        args.usage_error(problem)  # the command's own parser: its usage line and `--help` are the relevant ones
    return guarded(lambda: args.run(args), debug=debug_wanted(getattr(args, "debug", False)))


if __name__ == "__main__":
    sys.exit(main())
