"""First contact (issue 18): file modes under the umask, the benchmark's own peak RSS, tools/export
without TensorFlow, and a quiet ``legc``."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import _io

ROOT = Path(__file__).resolve().parents[1]


# --- 1. every writer respects the umask ---------------------------------------------------------


def _save_keras(path: Path) -> None:
    from keras_legc.keras.flavour import keras

    k = keras()
    model = k.Sequential([k.layers.Input(shape=(3,)), k.layers.Dense(2)])
    kl.save_model(model, path)


WRITERS = {
    "json": lambda p: _io.atomic_write_json(p.with_suffix(".json"), {"a": 1}),
    "npz": lambda p: _io.write_npz(p.with_suffix(".npz"), {"format": "x"}, {"w": np.ones(3)}),
    "bytes": lambda p: _io.atomic_write_bytes(p.with_suffix(".tflite"), b"TFL3"),
    "keras": lambda p: _save_keras(p.with_suffix(".keras")),
}


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring the previous one afterwards."""
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_written_files_get_the_mode_open_would_give(tmp_path, umask, kind, mask):
    umask(mask)
    WRITERS[kind](tmp_path / "out")
    (written,) = [p for p in tmp_path.iterdir()]  # the temp file is gone
    assert not written.name.startswith(".")
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~mask, oct(written.stat().st_mode)


def test_overwrite_takes_the_umask_mode_not_the_old_files(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "h.json"
    path.write_text("{}")
    path.chmod(0o600)
    _io.atomic_write_json(path, {"b": 2}, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert not list(tmp_path.glob(".h.json.*"))


def test_create_temp_file_names_are_recognised_as_stale(tmp_path):
    for suffix in (".tmp", ".tmp.keras"):
        fd, tmp = _io.create_temp_file(tmp_path / "m.keras", suffix)
        os.close(fd)
        assert Path(tmp) in _io.stale_temp_files(tmp_path / "m.keras")
    assert len(_io.remove_stale_temp_files(tmp_path / "m.keras")) == 2
