"""Data without ../shared: the packaged tabular files, Keras' MNIST cache, and the clear errors."""

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from keras_legc.errors import InvalidArgumentError
from legc_research import datasets as ds

SPLIT_FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


@pytest.fixture
def no_data_dir(monkeypatch, tmp_path):
    """No LEGC_DATA_DIR and an empty Keras home: what a fresh clone on a new machine has."""
    monkeypatch.delenv("LEGC_DATA_DIR", raising=False)
    monkeypatch.delenv("LEGC_OFFLINE", raising=False)  # the fetch tests use a local server
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path


def test_packaged_files_match_the_published_checksums_and_sums_file():
    sums = dict(
        reversed(line.split("  ", 1))
        for line in (ds.PACKAGE_DATA / "SHA256SUMS").read_text().splitlines()
    )
    assert sorted(sums) == sorted(ds.PACKAGED)
    licences = (ds.PACKAGE_DATA / "LICENSES.md").read_text()
    for rel in ds.PACKAGED:
        digest = hashlib.sha256((ds.PACKAGE_DATA / rel).read_bytes()).hexdigest()
        assert digest == sums[rel] == ds.SHA256[rel]
        assert rel in licences
    # what is not shipped is named there too, with how to get it
    assert "titanic_train.csv" in licences and "vowel.csv" in licences
    assert not (ds.PACKAGE_DATA / "legcnet/vowel.csv").exists()
    assert not (ds.PACKAGE_DATA / "legcnet/titanic_train.csv").exists()


@pytest.mark.parametrize("name", ["iris", "iris3f", "banknote", "cancer"])
@pytest.mark.parametrize("mode", ["paper", "clean"])
def test_package_data_gives_the_same_arrays_as_the_data_folder(
    name, mode, paper_data_dir, no_data_dir
):
    packaged = ds.paper_dataset(name, preprocessing=mode)
    from_folder = ds.paper_dataset(name, paper_data_dir, preprocessing=mode)
    for field in SPLIT_FIELDS:
        np.testing.assert_array_equal(getattr(packaged, field), getattr(from_folder, field))


def test_tables_of_the_paper_come_from_the_package(no_data_dir):
    from legc_research.results_report import paper_tables

    tables = paper_tables(None)
    assert {"cancer", "iris"} <= set(tables)


@pytest.mark.parametrize("name, words", [("titanic", "Kaggle"), ("vowel", "licence")])
def test_unshipped_datasets_say_why_and_how_to_get_them(name, words, no_data_dir):
    with pytest.raises(InvalidArgumentError, match=f"not shipped.*{words}.*Fix: .*LEGC_DATA_DIR"):
        ds.paper_dataset(name, no_data_dir / "empty")


def test_a_corrupt_copy_in_the_data_folder_is_refused(tmp_path, no_data_dir):
    (tmp_path / "legcnet").mkdir()
    (tmp_path / "legcnet/Iris.csv").write_text("Id,a\n1,2\n")
    with pytest.raises(InvalidArgumentError, match="SHA-256.*Fix"):
        ds.paper_dataset("iris", tmp_path)


# ---- MNIST: $LEGC_DATA_DIR, else Keras' cache (fetched when online), else one clear line ---------


def _npz_from_idx(root: Path, path: Path) -> bytes:
    """An mnist.npz laid out as Keras' (x_test, y_test) made from the t10k IDX files."""
    with gzip.open(root / ds.MNIST_FILES[0]) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(root / ds.MNIST_FILES[1]) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_test=x, y_test=y, x_train=x[:10], y_train=y[:10])
    return path.read_bytes()


def test_mnist_from_the_keras_cache_equals_the_idx_files(mnist_dir, no_data_dir, monkeypatch):
    cache = ds.keras_mnist_cache()
    assert cache == no_data_dir / "keras_home" / "datasets" / "mnist.npz"
    data = _npz_from_idx(mnist_dir, cache)
    # the real Keras file has KERAS_MNIST_SHA256; this one is rebuilt from the same images
    monkeypatch.setattr(ds, "KERAS_MNIST_SHA256", hashlib.sha256(data).hexdigest())
    from_cache = ds.mnist_test_split(None, seed=3, n_train=8000)
    from_idx = ds.mnist_test_split(mnist_dir, seed=3, n_train=8000)
    for field in SPLIT_FIELDS:
        np.testing.assert_array_equal(getattr(from_cache, field), getattr(from_idx, field))


def test_a_keras_cache_with_another_checksum_is_refused(mnist_dir, no_data_dir):
    _npz_from_idx(mnist_dir, ds.keras_mnist_cache())  # not Keras' bytes: its SHA-256 differs
    with pytest.raises(InvalidArgumentError, match="SHA-256.*delete it"):
        ds.mnist_t10k(None)


def test_offline_and_absent_mnist_is_one_line_naming_the_fix(no_data_dir, monkeypatch):
    monkeypatch.setattr(ds, "KERAS_MNIST_URL", "http://127.0.0.1:9/mnist.npz")  # refused at once
    with pytest.raises(InvalidArgumentError) as info:
        ds.mnist_t10k(None)
    message = str(info.value)
    assert "\n" not in message and "Fix: " in message and "LEGC_DATA_DIR" in message
    assert str(ds.keras_mnist_cache()) in message
    assert not ds.keras_mnist_cache().exists()
    with pytest.raises(InvalidArgumentError, match="not fetched"):
        ds.mnist_t10k(None, fetch=False)
    monkeypatch.setenv("LEGC_OFFLINE", "1")
    with pytest.raises(InvalidArgumentError, match="not fetched: LEGC_OFFLINE is set.*Fix: "):
        ds.mnist_t10k(None)


def _serve(body: bytes):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's name)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_mnist_is_fetched_into_the_keras_cache_and_checked(
    mnist_dir, no_data_dir, monkeypatch, tmp_path
):
    body = _npz_from_idx(mnist_dir, tmp_path / "served" / "mnist.npz")
    server = _serve(body)
    try:
        monkeypatch.setattr(ds, "KERAS_MNIST_URL", f"http://127.0.0.1:{server.server_port}/m.npz")
        monkeypatch.setattr(ds, "KERAS_MNIST_SHA256", "0" * 64)  # a tampered download
        with pytest.raises(InvalidArgumentError, match="nothing was written"):
            ds.mnist_t10k(None)
        assert not ds.keras_mnist_cache().exists()
        monkeypatch.setattr(ds, "KERAS_MNIST_SHA256", hashlib.sha256(body).hexdigest())
        x, y = ds.mnist_t10k(None)
    finally:
        server.shutdown()
    assert ds.keras_mnist_cache().read_bytes() == body
    x_idx, y_idx = ds.mnist_t10k(mnist_dir)
    np.testing.assert_array_equal(x, x_idx)
    np.testing.assert_array_equal(y, y_idx)
