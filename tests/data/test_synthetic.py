from __future__ import annotations

import numpy as np
import pytest

from hfm.data import load_data


def _features(subset: object) -> np.ndarray:
    images = [np.asarray(subset.image(i), dtype=np.float64) for i in range(len(subset))]  # type: ignore[attr-defined]
    return np.stack([img.mean(axis=-1).reshape(-1) / 255.0 for img in images])


def test_deterministic_and_seed_dependent() -> None:
    a = load_data({"type": "synthetic", "n_per_class": 4, "seed": 1})
    b = load_data({"type": "synthetic", "n_per_class": 4, "seed": 1})
    c = load_data({"type": "synthetic", "n_per_class": 4, "seed": 2})
    assert a.fingerprint == b.fingerprint
    np.testing.assert_array_equal(a.train.image(5), b.train.image(5))
    assert not np.array_equal(a.train.image(5), c.train.image(5))
    image = a.train.image(0)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert a.classes == ["blob", "horizontal stripes", "checkerboard"]
    assert np.bincount(a.train.labels).tolist() == [4, 4, 4]
    assert (len(a.val), len(a.test)) == (30, 60)


def test_learnable_from_raw_pixels_with_few_shots() -> None:
    """A linear probe on pixels beats chance (1/4) clearly with 16 shots per class."""
    from sklearn.linear_model import LogisticRegression

    splits = load_data({"type": "synthetic", "n_classes": 4, "n_per_class": 16, "n_test_per_class": 25})
    model = LogisticRegression(max_iter=2000).fit(_features(splits.train), splits.train.labels)
    accuracy = float((model.predict(_features(splits.test)) == splits.test.labels).mean())
    assert accuracy > 0.5, accuracy


@pytest.mark.slow
def test_a_probe_on_a_random_twin_beats_chance_clearly() -> None:
    """Measured: about 0.63 accuracy for 3 classes (chance 0.33) with 16 shots per class."""
    import torch
    from sklearn.linear_model import LogisticRegression

    import hfm
    from hfm.data import ImageDataset

    backbone = hfm.load_backbone("general/dinov2-small", twin=True)
    splits = load_data({"type": "synthetic", "n_classes": 3, "n_per_class": 16, "n_test_per_class": 25})

    def embed(subset: object) -> np.ndarray:
        dataset = ImageDataset(subset, backbone.transform)  # type: ignore[arg-type]
        with torch.no_grad():
            return backbone(torch.stack([dataset[i][0] for i in range(len(dataset))])).numpy()

    model = LogisticRegression(max_iter=3000).fit(embed(splits.train), splits.train.labels)
    accuracy = float((model.predict(embed(splits.test)) == splits.test.labels).mean())
    assert accuracy > 0.5, accuracy
