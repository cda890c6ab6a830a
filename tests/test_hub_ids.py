"""``hub.ids``: the one rule for "is this argument a local path or a Hub repo id"."""

from __future__ import annotations

from pathlib import Path

import pytest

from pix2pix_hub.hub.ids import is_hub_id, looks_like_path
from pix2pix_hub.hub.model_info import dataset_name


@pytest.mark.parametrize("text", ["huggan/facades", "user/model-v2.1", "facades"])
def test_hub_ids(text):
    assert is_hub_id(text) and not looks_like_path(text)


@pytest.mark.parametrize(
    "text", ["./facades", "../data/facades", "/data/facades", "~/facades", "a/b/c", "C:\\data", "latest_net_G.pth"]
)
def test_texts_written_as_paths_are_paths(text):
    assert looks_like_path(text) and not is_hub_id(text)


def test_an_existing_folder_is_a_path_even_when_it_reads_as_an_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user" / "facades").mkdir(parents=True)
    assert not is_hub_id("user/facades") and is_hub_id("user/other")
    assert not is_hub_id(Path("user/other"))  # a Path object is a path by its type


def test_namespaced_needs_user_and_name_and_the_hub_refuses_bad_ids():
    assert is_hub_id("facades") and not is_hub_id("facades", namespaced=True)
    assert is_hub_id("user/facades", namespaced=True)
    for refused in ("user/a--b", "user/", "-x", "", None):
        assert not is_hub_id(refused)


def test_the_model_facts_use_the_rule(tmp_path):
    assert dataset_name("huggan/facades") == "huggan/facades"
    assert dataset_name(str(tmp_path / "facades" / "train")) == "facades"
    assert dataset_name("data/pairs/facades") == "facades"  # not on disk, but a path: never published as it is
