"""``pix2pix-hub space build OUT --model user/name (--wheel W | --git_url URL | --static) [--push user/space]``.

The Gradio folder (app, entry point, README front matter, requirements) is ``hub.space_build``'s; the static one
(``--static``: the page, onnxruntime-web, the model's facts; the model runs in the visitor's browser) is
``hub.static_space``'s.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..fileio import check_output_apart, check_replaceable
from ..hub.space_build import build_space
from ..hub.static_space import build_static_space
from .policy import EXIT_OK, EXIT_USAGE, CommandError, add_command, reported_as


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
        "a pinned --git_url. With --static: a static Space instead (sdk: static), whose page runs the model's ONNX "
        "graph in the visitor's browser with onnxruntime-web (vendored from the npm registry at a pinned version).",
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
    static = build.add_argument_group("static Space (--static)")
    static.add_argument(
        "--static", action="store_true", help="a static Space running the model in the browser (no --wheel/--git_url)"
    )
    static.add_argument(
        "--model_dir", default=None, help="a local copy of --model to read its facts from, instead of the Hub"
    )
    static.add_argument(
        "--model_base",
        default=None,
        metavar="URL",
        help="where the page downloads the model (default: the Hub)",
    )


def run_build(args: argparse.Namespace) -> int:
    """0 written (and pushed); 2 the arguments (model id, wheel or git URL, a non-empty OUT or one not apart from
    the wheel, no Gradio)."""
    if args.static:
        return run_static(args)
    if args.model_dir or args.model_base:
        raise CommandError("--model_dir and --model_base are options of a static Space: add --static.")
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


def run_static(args: argparse.Namespace) -> int:
    """``--static``: 0 written (and pushed); 2 the arguments (model id or folder, a non-empty OUT, options of the
    Gradio Space, no onnxruntime-web to vendor)."""
    if args.wheel or args.git_url or args.space_id:
        raise CommandError(
            "--wheel, --git_url and --space_id are for the Gradio Space: a static Space installs nothing."
        )
    # OSError: also a model the Hub does not have, or cannot be reached for (its message names the model).
    with reported_as(EXIT_USAGE, ValueError, OSError, RuntimeError):
        check_output_apart(args.out, {"--model_dir": args.model_dir})
        check_replaceable(args.out, overwrite=args.overwrite)
        folder = build_static_space(
            args.out,
            args.model,
            model_dir=args.model_dir,
            model_base=args.model_base,
            push=args.push,
            license=args.license,
            private=args.private,
            overwrite=args.overwrite,
        )
    print(f"Wrote the static Space folder {folder} (open it through a web server; see docs/space.md).")
    if args.push:
        print(f"Pushed to https://huggingface.co/spaces/{args.push}")
    return EXIT_OK
