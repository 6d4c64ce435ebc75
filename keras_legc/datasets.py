"""Datasets: the embedded default (no files, no network) and loaders for local data folders."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_legc.errors import InvalidArgumentError


@dataclass
class Split:
    """Train/validation/test arrays (float32 features, int64 labels) and a description."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    n_classes: int
    description: str


def breast_cancer(seed: int = 0, val: float = 0.2, test: float = 0.2) -> Split:
    """sklearn's Wisconsin diagnostic breast cancer data (569 x 30, 2 classes), embedded in sklearn.

    Stratified train/validation/test split with ``seed``; features standardised with statistics of
    the training part only.
    """
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    return _split(
        x, y, seed, val, test, "breast_cancer", "sklearn load_breast_cancer (WDBC), 569 x 30"
    )


def mnist_test_split(
    data_dir: str | os.PathLike | None = None, seed: int = 0, n_train: int = 8000
) -> Split:
    """The 10,000-image MNIST test set split stratified into train/validation (offline MNIST).

    ``data_dir`` (or ``$LEGC_DATA_DIR``) must hold ``mnist/t10k-images-idx3-ubyte.gz`` and
    ``mnist/t10k-labels-idx1-ubyte.gz``. Pixels are scaled to [0, 1] and flattened to 784.
    The validation part doubles as the test part (there is no third split in 10k images).
    """
    root = Path(data_dir or os.environ.get("LEGC_DATA_DIR", ""))
    images, labels = (
        root / "mnist/t10k-images-idx3-ubyte.gz",
        root / "mnist/t10k-labels-idx1-ubyte.gz",
    )
    if not images.exists() or not labels.exists():
        raise InvalidArgumentError(
            f"MNIST files not found under {root or '(no data dir)'} (expected {images.name} and "
            f"{labels.name} in mnist/). Fix: pass data_dir or set LEGC_DATA_DIR to the folder "
            "holding mnist/."
        )
    with gzip.open(images) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0
    with gzip.open(labels) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    rng = np.random.default_rng(seed)
    train_idx, val_idx = _stratified(y, n_train / len(y), rng)
    return Split(
        x[train_idx], y[train_idx], x[val_idx], y[val_idx], x[val_idx], y[val_idx],
        "mnist_t10k", 10,
        f"MNIST t10k split {len(train_idx)} train / {len(val_idx)} val=test, seed {seed}",
    )  # fmt: skip


def _stratified(y: np.ndarray, fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    first, second = [], []
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        cut = int(round(fraction * len(idx)))
        first.append(idx[:cut])
        second.append(idx[cut:])
    return rng.permutation(np.concatenate(first)), rng.permutation(np.concatenate(second))


def _split(x, y, seed, val, test, name, description) -> Split:
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise InvalidArgumentError(
            f"val and test fractions must be in (0, 1) and sum below 1, got {val}, {test}."
        )
    rng = np.random.default_rng(seed)
    y = np.asarray(y, dtype=np.int64)
    rest, test_idx = _stratified(y, 1.0 - test, rng)
    train_rel, val_rel = _stratified(y[rest], 1.0 - val / (1.0 - test), rng)
    train_idx, val_idx = rest[train_rel], rest[val_rel]
    mean, std = x[train_idx].mean(axis=0), x[train_idx].std(axis=0)
    std[std == 0] = 1.0

    def scale(idx):
        return ((x[idx] - mean) / std).astype(np.float32)

    return Split(
        scale(train_idx), y[train_idx], scale(val_idx), y[val_idx], scale(test_idx), y[test_idx],
        name, int(y.max()) + 1,
        f"{description}; stratified {len(train_idx)}/{len(val_idx)}/{len(test_idx)} "
        f"train/val/test, seed {seed}, standardised on train",
    )  # fmt: skip
