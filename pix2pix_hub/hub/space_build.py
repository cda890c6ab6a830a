"""``pix2pix-hub space build OUT --model user/name``: a Gradio Space folder that builds on the Hub as it is.

The folder holds the app (``app.py``, ``model_service.py``, ``facade_palette.py``, shipped inside the wheel as
``pix2pix_hub/space_app/`` or read from ``spaces_app/`` in a source checkout), an entry point ``start.py`` that
serves the model the Space was built for, a ``README.md`` whose front matter the Hub reads (sdk, sdk_version =
the installed Gradio's, app_file, ``models:``, ``preload_from_hub``, ``suggested_hardware: cpu-basic``, tags) and
a ``requirements.txt`` that installs pix2pix-hub from where a Space can get it, which is not the package index:

    wheel=   the wheel is copied into the folder and required by its URL inside the Space repo
             (``https://huggingface.co/spaces/<space>/resolve/main/<wheel>``): a Space installs requirements.txt
             before it copies its own files in, so a relative path would not be found
    git_url= a pinned git URL (``git+https://github.com/OWNER/pix2pix-hub@<tag or commit>``)

Both are checked as pip on the Space will read them: the wheel's own ``*.dist-info/METADATA`` must name pix2pix-hub
at the version its file name says, and every line of ``requirements.txt`` must parse as a requirement
(``packaging``), pix2pix-hub required once.

``push="user/space"`` creates the Space (Gradio SDK) and uploads the folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from email.parser import HeaderParser
from importlib import metadata as package_metadata
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import HfApi, SpaceCardData
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..fileio import atomic_directory, check_output_apart, check_replaceable, write_text
from .ids import is_hub_id

APP_FILES = ("app.py", "model_service.py", "facade_palette.py")
ENTRY_POINT = "start.py"
SPACE_TAGS = ["pix2pix", "image-to-image", "gan", "pix2pix-hub", "gradio"]
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
PACKAGE = "pix2pix-hub"
BUILD_WHEEL = "build one with: python -m pip wheel --no-deps . -w dist"

START_PY = '''"""Entry point of this Space, written by `pix2pix-hub space build`: the app serves {model_id!r} unless the
Space variable MODEL_ID names another model."""

import os
import runpy
from pathlib import Path

os.environ.setdefault("MODEL_ID", {model_id!r})
runpy.run_path(str(Path(__file__).with_name("app.py")), run_name="__main__")
'''


def app_source() -> Path:
    """Where the app files are: inside the installed package (wheel), or ``spaces_app/`` of a source checkout."""
    package = Path(__file__).resolve().parents[1]  # pix2pix_hub/: this module is in its hub/ folder
    for candidate in (package / "space_app", package.parent / "spaces_app"):
        if all((candidate / name).is_file() for name in APP_FILES):
            return candidate
    raise FileNotFoundError(
        f"the Space app ({', '.join(APP_FILES)}) is neither in {package / 'space_app'} nor in a source checkout; "
        "reinstall pix2pix-hub."
    )


def gradio_version() -> str:
    """The installed Gradio's version: the Space runs the Gradio the app was tested with."""
    try:
        return package_metadata.version("gradio")
    except package_metadata.PackageNotFoundError:
        raise RuntimeError(
            "Gradio is not installed, so the Space's sdk_version is unknown: pip install 'pix2pix-hub[space]', "
            "or pass sdk_version."
        ) from None


def package_requirement(wheel: Path | None, git_url: str | None, space_id: str | None) -> str:
    """The requirements.txt line that installs pix2pix-hub on the Space."""
    if (wheel is None) == (git_url is None):
        raise ValueError(
            "pass exactly one of wheel (a built pix2pix-hub wheel, copied into the Space) or git_url (a pinned "
            "git+https://.../pix2pix-hub@<tag or commit>): pix2pix-hub is not on the package index."
        )
    if git_url is not None:
        return git_requirement(git_url)
    if not wheel.is_file():
        raise FileNotFoundError(f"no wheel at {wheel} ({BUILD_WHEEL}).")
    check_wheel(wheel)
    if space_id is None:
        raise ValueError(
            "a wheel is installed from the Space repo's own URL, which needs the Space id: pass push='user/space' "
            "(or space_id='user/space' to push it yourself later)."
        )
    return f"pix2pix-hub @ https://huggingface.co/spaces/{space_id}/resolve/main/{wheel.name}"


def git_requirement(git_url: str) -> str:
    """``pix2pix-hub @ git_url``, once the requirements parser reads exactly that back: one URL, pinned to a tag
    or commit, with nothing after it (pip options, markers, a second line)."""
    line = f"{PACKAGE} @ {git_url}"
    try:
        parsed = Requirement(line)
    except InvalidRequirement as error:
        reason = str(error).splitlines()[0]
        raise ValueError(
            f"git_url {git_url!r} does not make a valid requirement ({reason}): pass the URL alone, "
            "git+https://host/owner/repo@<tag or commit>, without pip options."
        ) from None
    if parsed.url != git_url or parsed.marker is not None or parsed.extras or git_url.split() != [git_url]:
        raise ValueError(
            f"git_url {git_url!r} is read as more than a URL (a marker, extras, white space or a second line): "
            "pass the URL alone, git+https://host/owner/repo@<tag or commit>."
        )
    parts = urlsplit(git_url)
    repo, _, revision = parts.path.rstrip("/").rpartition("/")[2].partition("@")
    if not parts.scheme.startswith("git+") or not parts.netloc or not repo or not revision:
        raise ValueError(f"git_url {git_url!r} must be pinned: git+https://host/owner/repo@<tag or commit>.")
    return line


def check_wheel(wheel: Path) -> None:
    """Refuse a file pip would not install as the pix2pix-hub the requirement names: not a wheel, a damaged one,
    another package's, or one whose metadata disagrees with its file name."""
    try:
        name, version, _, _ = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename:
        raise ValueError(f"{wheel} is not a wheel file name (NAME-VERSION-TAGS.whl); {BUILD_WHEEL}.") from None
    try:
        with zipfile.ZipFile(wheel) as archive:
            found = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            text = archive.read(found[0]).decode("utf-8") if len(found) == 1 else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, EOFError) as error:
        raise ValueError(f"{wheel} is not a readable wheel ({error}); {BUILD_WHEEL}.") from None
    if text is None:
        raise ValueError(f"{wheel} is not a readable wheel (no single *.dist-info/METADATA in it); {BUILD_WHEEL}.")
    fields = HeaderParser().parsestr(text)
    meta_name, meta_version = fields.get("Name", ""), fields.get("Version", "")
    if canonicalize_name(meta_name) != PACKAGE:
        raise ValueError(f"{wheel} is a wheel of {meta_name!r}, not of pix2pix-hub; {BUILD_WHEEL} in pix2pix-hub.")
    try:
        same = canonicalize_name(name) == PACKAGE and Version(meta_version) == version
    except InvalidVersion:
        same = False
    if not same:
        raise ValueError(
            f"{wheel}: its file name says {name} {version}, its metadata {meta_name} {meta_version} (a renamed "
            f"wheel, which pip refuses); use the wheel as it was built ({BUILD_WHEEL})."
        )


def requirements_text(requirement: str) -> str:
    """requirements.txt for the Space, checked line by line with the requirements parser pip uses: every line
    parses, and pix2pix-hub is required exactly once."""
    lines = [
        "# Written by pix2pix-hub space build. Gradio itself comes from sdk_version in README.md.",
        "# CPU wheels of torch: a cpu-basic Space does not need the multi-GB CUDA build.",
        f"--extra-index-url {TORCH_INDEX}",
        "torch>=2.1",
        *requirement.split("\n"),
    ]
    names = []
    for line in lines:
        if line.startswith(("#", "--")):
            continue
        try:
            names.append(canonicalize_name(Requirement(line).name))
        except InvalidRequirement:
            raise ValueError(f"requirements.txt would hold {line!r}, not a valid requirement.") from None
    if names.count(PACKAGE) != 1 or len(names) != 2:
        raise ValueError(f"requirements.txt would require {', '.join(names)}, not torch and pix2pix-hub once each.")
    return "\n".join([*lines, ""])


def readme_text(model_id: str, *, sdk_version: str, license: str | None, how: str) -> str:
    """The Space card: the front matter the Hub reads to build and link the Space, then a short description."""
    name = model_id.split("/")[-1]
    data = SpaceCardData(
        title=f"pix2pix {name}",
        sdk="gradio",
        sdk_version=sdk_version,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        app_file=ENTRY_POINT,
        license=license or "other",
        models=[model_id],
        tags=SPACE_TAGS,
        emoji="🏛️",
        colorFrom="blue",
        colorTo="yellow",
        pinned=False,
        short_description=f"pix2pix image-to-image: {name}"[:60],
        preload_from_hub=[model_id],  # downloaded while the Space builds, not by the first visitor
        suggested_hardware="cpu-basic",
    )
    body = f"""# pix2pix: {name}

Image-to-image translation with [pix2pix](https://arxiv.org/abs/1611.07004) (Isola et al., CVPR 2017), serving
the model [{model_id}](https://huggingface.co/{model_id}) with pix2pix-hub.
Upload an image of any size (the output has the same size), or paint a facade label map.

Built by `{how}`. The Space variable `MODEL_ID` serves another model; `DIRECTION`, `MAX_PIXELS`,
`CONCURRENCY_LIMIT`, `QUEUE_SIZE` and `MAX_FILE_SIZE` are described in pix2pix-hub's `docs/space.md`.
"""
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def build_space(
    out: str | os.PathLike,
    model_id: str,
    *,
    wheel: str | os.PathLike | None = None,
    git_url: str | None = None,
    push: str | None = None,
    space_id: str | None = None,
    license: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    sdk_version: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a deployable Space folder for the Hub model ``model_id`` at ``out``, whole or not at all.

    Args:
        out: the folder to write; a non-empty one needs ``overwrite=True``; one that is, holds or lies inside the
            wheel is refused (``fileio.OutputOverlap``), as is a non-empty current folder.
        model_id: the Hub model the Space serves (``user/name``).
        wheel, git_url: where the Space installs pix2pix-hub from, exactly one (see the module docstring).
        push: ``"user/space"``: also create that Space and upload the folder.
        space_id: the Space the folder is for (default: ``push``); a wheel's URL needs it.
        license, private, token: the Space card's license; the Space repo's visibility and the Hub token.
        sdk_version: the Gradio version the Space runs (default: the installed one).
        overwrite: replace a non-empty ``out``.

    Returns:
        The folder's path.
    """
    if not is_hub_id(model_id, namespaced=True):
        raise ValueError(f"model_id {model_id!r} must be a Hub model id (user/name): the Space downloads it.")
    target = Path(out).expanduser()
    wheel_path = Path(wheel).expanduser() if wheel is not None else None
    check_output_apart(target, {"wheel": wheel_path}, what="out")  # replaced whole: never over the wheel it copies
    check_replaceable(target, overwrite=overwrite, what="out")
    requirement = package_requirement(wheel_path, git_url, space_id or push)
    how = "pix2pix-hub space build OUT --model " + model_id + (" --git_url ..." if git_url else " --wheel ...")
    readme = readme_text(model_id, sdk_version=sdk_version or gradio_version(), license=license, how=how)
    source = app_source()
    with atomic_directory(target) as staging:
        for name in APP_FILES:
            shutil.copyfile(source / name, staging / name)
        write_text(staging / ENTRY_POINT, START_PY.format(model_id=model_id))
        write_text(staging / "README.md", readme)
        write_text(staging / "requirements.txt", requirements_text(requirement))
        if wheel_path is not None:
            shutil.copyfile(wheel_path, staging / wheel_path.name)
    if push:
        push_space(target, push, private=private, token=token)
    return target


def push_space(
    folder: Path, space_id: str, *, sdk: str = "gradio", private: bool | None = None, token: str | None = None
) -> str:
    """Create the Space ``space_id`` (``sdk``: ``gradio`` or ``static``) if needed and upload ``folder``; returns the
    Space's URL."""
    api = HfApi(token=token)
    repo = api.create_repo(space_id, repo_type="space", space_sdk=sdk, private=private, exist_ok=True)
    message = "Build the static Space" if sdk == "static" else "Build the pix2pix Space"
    api.upload_folder(repo_id=repo.repo_id, repo_type="space", folder_path=str(folder), commit_message=message)
    return f"https://huggingface.co/spaces/{repo.repo_id}"
