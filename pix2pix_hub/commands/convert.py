"""``pix2pix-hub convert latest_net_G.pth OUT``: the authors' checkpoint as a model folder (and on the Hub).

Reading, architecture inference and the folder are ``hub.authors``'s; the architecture flags are the authors'
option names, one per ``AUTHORS_FLAGS``, typed as the layout functions take them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, get_args, get_type_hints

from ..constants import DIRECTIONS, NORMS
from ..fileio import check_output_apart, check_replaceable
from ..hub.authors import checkpoint_direction, convert_authors_checkpoint
from ..hub.authors_layout import AUTHORS_FLAGS, authors_discriminator_layout, authors_generator_layout
from ..inference.pipeline import push_folder
from .options import add_push_options, hub_repo, push_problem
from .policy import EXIT_OK, EXIT_USAGE, add_command, reported_as

EXAMPLES = {"netG": "unet_256, resnet_9blocks...", "netD": "basic, n_layers or pixel"}


def flag_kinds() -> dict[str, type]:
    """Each of the authors' flags with its type (``int``, ``str``, ``bool``), read from the layout functions."""
    hints = {**get_type_hints(authors_generator_layout), **get_type_hints(authors_discriminator_layout)}
    return {name: next(kind for kind in get_args(hints[name]) if kind is not type(None)) for name in AUTHORS_FLAGS}


def register(subparsers: Any) -> None:
    convert = add_command(
        subparsers,
        "convert",
        run,
        help="the authors' latest_net_G.pth (junyanz/pytorch-CycleGAN-and-pix2pix) as a safetensors model folder",
        description="Read the authors' checkpoint with torch.load(weights_only=True) (a file that needs full "
        "unpickling is refused), infer its architecture from its keys and shapes, and write a model folder that "
        "Pix2Pix.from_pretrained loads. Architecture flags (the authors' names) override what is inferred.",
    )
    convert.add_argument("source", help="the authors' generator checkpoint, e.g. latest_net_G.pth")
    convert.add_argument("output", help="the model folder to write")
    convert.add_argument(
        "--direction",
        choices=DIRECTIONS,
        default=None,
        help="the side of the data it takes (default: that of the authors' published model the path names, if any)",
    )
    convert.add_argument("--discriminator", default=None, help="the matching latest_net_D.pth, kept for fine-tuning")
    convert.add_argument("--base_model", default=None, help="origin recorded in the card (default: the file name)")
    add_push_options(convert, "the folder")
    convert.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT folder")
    architecture = convert.add_argument_group("architecture (the authors' option names; default: inferred)")
    for name, kind in flag_kinds().items():
        if kind is bool:  # store_const, not store_true: unset must mean "infer", since False would force it off
            architecture.add_argument(f"--{name}", action="store_const", const=True, default=None)
        elif name == "norm":
            architecture.add_argument("--norm", choices=NORMS, default=None)
        else:
            architecture.add_argument(f"--{name}", type=kind, default=None, help=EXAMPLES.get(name))
    convert.set_defaults(check=push_problem)


def run(args: argparse.Namespace) -> int:
    flags = {name: getattr(args, name) for name in AUTHORS_FLAGS if getattr(args, name) is not None}
    with reported_as(EXIT_USAGE, FileExistsError):  # before anything is read or written
        check_output_apart(args.output, {"SOURCE": args.source, "--discriminator": args.discriminator})
        check_replaceable(args.output, overwrite=args.overwrite)
    repo = hub_repo(args)
    direction, note = checkpoint_direction(args.source, args.direction)  # never recorded or unknown silently
    with reported_as(EXIT_USAGE, FileNotFoundError):  # SOURCE or --discriminator does not exist
        folder = convert_authors_checkpoint(
            args.source,
            args.output,
            direction=direction,
            discriminator_path=args.discriminator,
            base_model=args.base_model,
            repo_id=repo,
            **flags,
        )
    print(f"Wrote {folder} (load it with Pix2Pix.from_pretrained({str(folder)!r})).", file=sys.stderr)
    if note:
        print(note, file=sys.stderr)
    if args.push_to_hub:
        url = push_folder(folder, repo)  # the folder just written, as it is: the model is not written again
        print(f"Pushed to the Hub: {url}", file=sys.stderr)
    return EXIT_OK
