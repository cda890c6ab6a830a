"""What can be wrong with a source of pairs as a whole (a bad row is ``checks.BadSampleError``)."""

from __future__ import annotations


class PairsSourceError(ValueError):
    """The source exists but cannot give pairs (empty, unknown column or split, unmatched names, ...)."""


class DatasetUnavailableError(ConnectionError):
    """A Hub dataset that is neither reachable nor in the local Hugging Face cache."""
