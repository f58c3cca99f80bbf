from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hfm.backbones.transforms import ImageTransform
from hfm.data import Augment, AugmentConfig, ImageDataset, episode, load_data

TRANSFORM = ImageTransform(input_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def test_items_are_tensor_label_index_and_pickle(image_folder: Path) -> None:
    splits = load_data({"type": "folder", "root": str(image_folder)})
    shots = episode(splits, 2, seed=0)
    dataset = ImageDataset(shots.subset(splits.train), TRANSFORM)
    image, label, index = dataset[1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label == int(shots.labels[1]) and index == 1
    clone = pickle.loads(pickle.dumps(dataset))
    assert torch.equal(clone[1][0], image)
    batches = list(DataLoader(dataset, batch_size=4, num_workers=1))
    assert sum(len(b[1]) for b in batches) == len(shots)


def test_synthetic_dataset_in_a_loader() -> None:
    splits = load_data({"type": "synthetic", "n_per_class": 4})
    dataset = ImageDataset(splits.train, TRANSFORM, augment=Augment())
    images, labels, indices = next(iter(DataLoader(dataset, batch_size=12, num_workers=1)))
    assert images.shape == (12, 3, 32, 32)
    assert labels.tolist() == splits.train.labels.tolist() and indices.tolist() == list(range(12))


def test_augmentations_change_training_images_only() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    augment = Augment({"crop_scale": (0.6, 0.9), "rotation": 20, "hflip": True, "brightness": 0.3})
    torch.manual_seed(0)
    out = augment(image)
    assert out.size == image.size and not np.array_equal(np.asarray(out), np.asarray(image))
    off = Augment(AugmentConfig(crop_scale=(1.0, 1.0), hflip=False, rotation=0, brightness=0, contrast=0))
    assert np.array_equal(np.asarray(off(image)), np.asarray(image))
    restored = pickle.loads(pickle.dumps(augment))
    assert restored.config == augment.config and restored(image).size == image.size
