"""Every Python snippet a card shows runs as written, against twins in a pre-populated offline Hub cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import huggingface_hub.constants as hf_constants
import pytest
import torch

import hfm
from hfm.backbones.catalog import get_spec
from hfm.backbones.twins import write_twin
from hfm.hub.cards import render_card

_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def _cache_repo(repo_id: str, files: Path) -> Path:
    """Put ``files`` into the Hub cache as the snapshot of ``repo_id`` (what a download would have left)."""
    root = Path(os.environ["HF_HUB_CACHE"]) / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    shutil.copytree(files, root / "snapshots" / commit)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return root / "snapshots" / commit


def _snippets(card: str) -> list[str]:
    return [block for block in _BLOCK.findall(card) if block.strip()]


BACKBONES = {
    "timm": "pathology/h-optimus-0",
    "timm-headless-spec": "ophthalmology/retfound-cfp",  # its spec already says num_classes=0
    "timm-layer-paths": "pathology/uni2-h",  # its spec names layers by dotted path
    "transformers": "pathology/hibou-b",
}


@pytest.mark.parametrize("backbone", list(BACKBONES.values()), ids=list(BACKBONES))
def test_every_card_snippet_runs(backbone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hub.conftest import make_adapter

    # Plain huggingface_hub calls (the snippet's) read the import-time constant; point it at this test's cache.
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", os.environ["HF_HUB_CACHE"])

    adapter = make_adapter(tmp_path / "adapter", "lora", backbone)
    spec = get_spec(backbone)
    write_twin(spec, Path(os.environ["HF_HUB_CACHE"]))  # the base model, as a download would cache it
    _cache_repo("lab/snippet-lora", adapter)
    config = json.loads((adapter / "hfm_config.json").read_text())
    size = int(config["preprocessing"].get("input_size") or config["backbone"]["spec"]["input_size"])
    images = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))

    card = str(render_card(adapter, repo_id="lab/snippet-lora"))
    snippets = _snippets(card)
    assert len(snippets) == 2, "the card shows the hfm snippet and the plain one"
    expected = hfm.load_adapter(adapter).eval()(images)
    for code in snippets:
        compile(code, "<card snippet>", "exec")  # a repeated keyword is a SyntaxError here
        scope: dict[str, object] = {"images": images}
        with torch.no_grad():
            exec(code, scope)  # noqa: S102 - the card's own snippet, run against twins
        if "logits" in scope:
            torch.testing.assert_close(scope["logits"], expected, rtol=1e-4, atol=1e-5)
        else:
            assert tuple(scope["probs"].shape) == (2, 3)  # type: ignore[attr-defined]
