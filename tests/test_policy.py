"""The revision and the two opt-ins travel as one frozen LoadPolicy from the user to the download and loaders."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import hfm
from hfm import recipes
from hfm.errors import BackboneNotCachedError
from hfm.policy import LoadPolicy


def test_the_policy_is_frozen_and_off_by_default() -> None:
    policy = LoadPolicy()
    assert (policy.revision, policy.trust_remote_code, policy.allow_pickle) == (None, False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.allow_pickle = True  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs", [{"allow_pickle": "yes"}, {"trust_remote_code": 1}, {"revision": ""}, {"revision": 3}]
)
def test_a_truthy_non_bool_does_not_switch_an_opt_in_on(kwargs: dict) -> None:
    with pytest.raises(TypeError, match="LoadPolicy"):
        LoadPolicy(**kwargs)


def test_a_catalog_pin_fills_only_a_missing_revision() -> None:
    assert LoadPolicy().pinned("abc").revision == "abc"
    assert LoadPolicy(revision="main").pinned("abc").revision == "main"
    assert LoadPolicy(allow_pickle=True).pinned("abc") == LoadPolicy(revision="abc", allow_pickle=True)
    assert LoadPolicy(trust_remote_code=True).download_patterns()[-1] == "*.py"
    assert "*.py" not in LoadPolicy().download_patterns()


def test_policy_and_loose_keywords_do_not_mix() -> None:
    with pytest.raises(TypeError, match="not both"):
        hfm.load_backbone("acme/model", policy=LoadPolicy(), allow_pickle=True)


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[LoadPolicy]:
    """Record the policy every snapshot resolution gets, and stop there."""
    from hfm.hub import download

    seen: list[LoadPolicy] = []

    def resolve(repo_id: str, *, policy: LoadPolicy = LoadPolicy(), **kwargs: object) -> object:
        seen.append(policy)
        raise BackboneNotCachedError("stop")

    monkeypatch.setattr(download, "resolve_snapshot", resolve)
    return seen


def test_the_documented_keywords_and_a_recipe_reach_the_download_as_one_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _spy(monkeypatch)
    with pytest.raises(BackboneNotCachedError):
        hfm.load_backbone("acme/model", revision="v2", trust_remote_code=True, allow_pickle=True)
    block = recipes.BackboneBlock(name="acme/model", revision="v2", trust_remote_code=True, allow_pickle=True)
    with pytest.raises(BackboneNotCachedError):
        hfm.load_backbone(block.name, policy=block.policy)
    with pytest.raises(BackboneNotCachedError):
        hfm.load_backbone("ophthalmology/retfound-cfp")  # a catalog entry: its pin fills the revision
    expected = LoadPolicy(revision="v2", trust_remote_code=True, allow_pickle=True)
    assert seen[:2] == [expected, expected]
    assert seen[2] == LoadPolicy(revision="refs/pr/2")


def test_no_loose_opt_ins_below_the_public_functions() -> None:
    """Below the user-facing keywords, the download and the loaders take the policy, not three arguments."""
    from hfm.backbones.loaders import build_from_folder
    from hfm.backbones.loaders.clip_loader import build_open_clip
    from hfm.backbones.loaders.hf_loader import build_transformers
    from hfm.backbones.loaders.timm_loader import build_timm
    from hfm.hub.download import resolve_snapshot

    for function in (resolve_snapshot, build_from_folder, build_timm, build_transformers, build_open_clip):
        parameters = set(inspect.signature(function).parameters)
        assert "policy" in parameters, function.__name__
        assert not parameters & {"trust_remote_code", "allow_pickle"}, function.__name__
