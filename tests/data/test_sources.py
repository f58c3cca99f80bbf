from __future__ import annotations

import pytest

from hfm.data.sources import AutoSplit, NpzSource, SyntheticSource, parse_source
from hfm.errors import ConfigError


def test_parse_picks_the_block_by_type() -> None:
    block = parse_source({"type": "npz", "path": "x.npz", "group_key": "source_image"})
    assert isinstance(block, NpzSource)
    assert block.group_key == "source_image"
    assert block.split == AutoSplit()
    assert isinstance(parse_source({"type": "synthetic", "seed": 3}), SyntheticSource)


def test_a_block_passes_through() -> None:
    block = SyntheticSource(seed=1)
    assert parse_source(block) is block


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"type": "npz", "path": "x.npz", "pth": 1}, "data.pth: unknown key"),
        ({"type": "nope"}, "'type' must be one of"),
        ({"path": "x.npz"}, "'type' must be one of"),
        ({"type": "npz"}, "exactly one of 'path'"),
        ({"type": "npz", "path": "a.npz", "name": "breastmnist"}, "exactly one of 'path'"),
        ({"type": "hf"}, "exactly one of 'id'"),
        ({"type": "dicom"}, "exactly one of 'root'"),
        ({"type": "folder", "root": "x", "on_error": "ignore"}, "data.on_error"),
        ({"type": "folder", "root": "x", "split": {"val": 0.6, "test": 0.5}}, "leave nothing for train"),
        ({"type": "synthetic", "n_classes": 1}, "data.n_classes"),
        ("synthetic", "expected a source block"),
    ],
)
def test_bad_blocks_are_one_line_config_errors(source: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_source(source)
    assert "\n" not in str(info.value)
