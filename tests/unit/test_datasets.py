"""legc_research.datasets: IDX reading and Fashion-MNIST (official split, held-out validation)."""

import gzip
import shutil

import numpy as np
import pytest

from keras_legc.errors import InvalidArgumentError
from legc_research import datasets as ds

FASHION = ds.find_data_dir(required=ds.FASHION_FILES)
needs_fashion = pytest.mark.skipif(FASHION is None, reason="needs LEGC_DATA_DIR/fashion-mnist")


def _parse(path, header: int) -> np.ndarray:
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=header)


@needs_fashion
def test_read_idx_matches_a_direct_parse_and_refuses_other_files(tmp_path):
    images = ds.read_idx(FASHION / ds.FASHION_FILES[2])  # t10k images
    labels = ds.read_idx(FASHION / ds.FASHION_FILES[3])
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    np.testing.assert_array_equal(images.ravel(), _parse(FASHION / ds.FASHION_FILES[2], 16))
    np.testing.assert_array_equal(labels, _parse(FASHION / ds.FASHION_FILES[3], 8))
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"not an idx file")
    with pytest.raises(InvalidArgumentError, match="not a uint8 IDX file"):
        ds.read_idx(bad)


@needs_fashion
def test_fashion_mnist_split_is_official_stratified_and_disjoint():
    s = ds.fashion_mnist(FASHION, seed=0, n_val=5000)
    assert s.x_train.shape == (55000, 28, 28, 1) and s.x_val.shape == (5000, 28, 28, 1)
    assert s.x_test.shape == (10000, 28, 28, 1) and s.x_train.dtype == np.float32
    assert 0.0 <= s.x_train.min() and s.x_train.max() <= 1.0
    assert np.bincount(s.y_val).tolist() == [500] * 10  # stratified
    np.testing.assert_array_equal(s.y_test, _parse(FASHION / ds.FASHION_FILES[3], 8))
    # validation and training images are distinct rows of the 60,000 (same multiset together)
    all_train = _parse(FASHION / ds.FASHION_FILES[0], 16).reshape(-1, 784)
    ours = np.concatenate([s.x_train, s.x_val]).reshape(-1, 784)
    assert np.isclose(ours.sum(), all_train.sum(dtype=np.float64) / 255.0, rtol=1e-6)
    assert sorted(np.concatenate([s.y_train, s.y_val]).tolist()) == sorted(
        _parse(FASHION / ds.FASHION_FILES[1], 8).tolist()
    )
    other = ds.fashion_mnist(FASHION, seed=1, n_val=5000)
    assert not np.array_equal(other.y_val, s.y_val)  # the seed chooses the validation images


def test_missing_or_corrupt_fashion_mnist_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("LEGC_DATA_DIR", raising=False)
    with pytest.raises(InvalidArgumentError, match="Fashion-MNIST not found.*LEGC_DATA_DIR"):
        ds.fashion_mnist(tmp_path)
    if FASHION is None:
        return
    copy = tmp_path / "fashion-mnist"
    shutil.copytree(FASHION / "fashion-mnist", copy)
    with gzip.open(copy / "t10k-labels-idx1-ubyte.gz", "ab") as f:
        f.write(b"\0")  # one more byte: another checksum
    with pytest.raises(InvalidArgumentError, match="SHA-256"):
        ds.fashion_mnist(tmp_path)
