"""Is this text a local path or a Hub repo id? One rule for every argument that may be either.

A text names a local path when it exists, or when it is written as one: it starts with ``/``, ``.`` or ``~``,
holds a backslash, has more than one ``/``, or ends with a checkpoint's suffix (``latest_net_G.pth``). Anything
else that the Hub accepts as a repo id (``name`` or ``user/name``) is a Hub id. A mistyped local path therefore
fails as "no such folder", not as an unknown repo on the Hub.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub.utils import HFValidationError, validate_repo_id

from ..constants import PICKLE_SUFFIXES


def looks_like_path(text: str | os.PathLike) -> bool:
    """Whether ``text`` names a local file or folder: it exists, or is written the way only paths are."""
    text = os.fspath(text)
    written_as_path = text.startswith(("/", ".", "~")) or "\\" in text or text.count("/") > 1
    return written_as_path or text.lower().endswith(PICKLE_SUFFIXES) or Path(text).expanduser().exists()


def is_hub_id(text: str | os.PathLike | None, *, namespaced: bool = False) -> bool:
    """Whether ``text`` is a Hub repo id and not a local path (see the module docstring).

    Args:
        text: a command-line argument, a config value or None.
        namespaced: accept ``user/name`` only, as the Hub's ``base_model`` metadata and a Space's model do;
            otherwise a bare ``name`` (a canonical dataset) counts too.

    Returns:
        True for a Hub id, False for a local path, None or text the Hub would refuse.
    """
    if text is None or isinstance(text, os.PathLike) or not text or looks_like_path(text):
        return False
    if namespaced and text.count("/") != 1:
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True
