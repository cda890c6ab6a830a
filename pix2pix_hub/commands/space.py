"""``pix2pix-hub space build OUT --model user/name (--wheel W | --git_url URL) [--push user/space]``.

The folder (app, entry point, README front matter, requirements) is ``hub.space_build``'s.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..fileio import check_output_apart, check_replaceable
from ..hub.space_build import build_space
from .policy import EXIT_OK, EXIT_USAGE, add_command, reported_as


def register(subparsers: Any) -> None:
    space = subparsers.add_parser("space", help="Gradio Spaces: build (and push) a Space serving a model")
    actions = space.add_subparsers(dest="space_command", required=True, metavar="ACTION")
    build = add_command(
        actions,
        "build",
        run_build,
        help="write a Space folder (app, README front matter, requirements) that builds on the Hub",
        description="Write a Gradio Space folder serving --model. pix2pix-hub is installed on the Space from "
        "--wheel (copied into the folder, required by its URL in the Space repo: needs --push or --space_id) or "
        "a pinned --git_url.",
    )
    build.add_argument("out", help="the folder to write")
    build.add_argument("--model", required=True, metavar="USER/NAME", help="the Hub model the Space serves")
    build.add_argument("--wheel", default=None, help="a pix2pix-hub wheel (python -m pip wheel --no-deps . -w dist)")
    build.add_argument("--git_url", default=None, help="git+https://.../pix2pix-hub@<tag or commit> instead")
    build.add_argument("--push", default=None, metavar="USER/SPACE", help="create this Space and upload the folder")
    build.add_argument("--space_id", default=None, metavar="USER/SPACE", help="the Space it is for (no push)")
    build.add_argument("--private", action="store_true", default=None, help="create the Space private")
    build.add_argument("--license", default=None, help="the Space's license (default: other)")
    build.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT")


def run_build(args: argparse.Namespace) -> int:
    """0 written (and pushed); 2 the arguments (model id, wheel or git URL, a non-empty OUT or one not apart from
    the wheel, no Gradio)."""
    with reported_as(EXIT_USAGE, ValueError, FileNotFoundError, FileExistsError, RuntimeError):
        check_output_apart(args.out, {"--wheel": args.wheel})  # before anything is read or written
        check_replaceable(args.out, overwrite=args.overwrite)
        folder = build_space(
            args.out,
            args.model,
            wheel=args.wheel,
            git_url=args.git_url,
            push=args.push,
            space_id=args.space_id,
            license=args.license,
            private=args.private,
            overwrite=args.overwrite,
        )
    print(f"Wrote the Space folder {folder}.")
    if args.push:
        print(f"Pushed to https://huggingface.co/spaces/{args.push}")
    return EXIT_OK
