"""Hostile files for every loader (issue 19): corrupt, truncated, oversized and type-confused.

Each loader of an untrusted file (History.load with its window journal, Scores.load, Mask.load)
must either load it or raise its ``keras_legc`` error naming the problem (with a Fix) - never
another exception, a hang or a huge allocation. A file whose header claims 10^12 weights is
refused from its header, before any memory is touched.
"""

import io
import json
import os
import shutil
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_legc as kl
from keras_legc._io import read_npz, write_npz
from keras_legc.core.history import JOURNAL_FORMAT, JOURNAL_NAME, RowJournal, journal_index
from keras_legc.errors import HistoryError, MaskMismatchError
from tests import catalogue as C

FUZZ = settings(
    max_examples=int(os.environ.get("LEGC_FUZZ_EXAMPLES", "60")),  # tools/reliability_doc.py: more
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=4), kids, max_size=4)
    ),
    max_leaves=8,
)


# -- valid files to start from ---------------------------------------------------------------
@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A history run_dir with a window journal, a scores file and a mask file, all valid."""
    tmp = tmp_path_factory.mktemp("originals")
    run = C.saved_history(tmp, k_windows=10)
    hist = kl.History.load(run)
    index = journal_index(
        JOURNAL_FORMAT, hist.layers, hist.shapes, window=20, overlap=0.1, every=1, target=[]
    )
    journal = RowJournal(run, JOURNAL_NAME, index, overwrite=True)
    for k in range(12):  # two windows more than the complete save: the journal is used
        journal.append(np.random.default_rng(k).normal(size=hist.n_weights))
        journal.commit(target=[0.5 - 0.01 * j for j in range(k + 1)])
    journal.close()
    scores = C.quiet(kl.score, hist, max_lag=2)
    scores.save(tmp / "scores.npz")
    scores.mask(0.5).save(tmp / "mask.npz")
    return tmp


def loaders(root: Path):
    """``{file: (load(), error class)}`` for the files under ``root``."""
    run = root / "run"
    history = (lambda: kl.History.load(run), HistoryError)
    return {
        "run/history.npz": history,
        f"run/{JOURNAL_NAME}.json": history,
        f"run/{JOURNAL_NAME}.f32": history,
        "scores.npz": (lambda: kl.Scores.load(root / "scores.npz"), HistoryError),
        "mask.npz": (lambda: kl.Mask.load(root / "mask.npz"), MaskMismatchError),
    }


def loads_or_refuses(load, error) -> None:
    """``load()`` works, or raises ``error`` whose message names a fix; nothing else."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", kl.LegcWarning)
            load()
    except error as exc:
        assert "Fix" in str(exc), str(exc)


def fresh_copy(originals: Path, tmp_path: Path, n: int) -> Path:
    root = tmp_path / f"case{n}"
    shutil.copytree(originals, root)
    return root


# -- byte-level damage -----------------------------------------------------------------------
@st.composite
def damage(draw, data: bytes) -> bytes:
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "random", "empty", "append"]))
    n = len(data)
    if kind == "truncate":
        return data[: draw(st.integers(0, n - 1))]
    if kind == "flip":
        out = bytearray(data)
        for pos in draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8)):
            out[pos] ^= draw(st.integers(1, 255))
        return bytes(out)
    if kind == "splice":
        at = draw(st.integers(0, n))
        return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]
    if kind == "append":
        return data + draw(st.binary(min_size=1, max_size=64))
    if kind == "random":
        return draw(st.binary(max_size=512))
    return b""


FILES = sorted(loaders(Path(".")))
counter = iter(range(10**9))


@pytest.mark.parametrize("name", FILES)
@FUZZ
@given(data=st.data())
def test_damaged_bytes_load_or_refuse(originals, tmp_path, name, data):
    root = fresh_copy(originals, tmp_path, next(counter))
    target = root / name
    target.write_bytes(data.draw(damage(target.read_bytes())))
    loads_or_refuses(*loaders(root)[name])


# -- type-confused records -------------------------------------------------------------------
def rewrite_meta(path: Path, key: str, value) -> None:
    """Rewrite the .npz at ``path`` with its meta's ``key`` set to ``value`` (arrays kept)."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
    meta[key] = value
    write_npz(path, meta, arrays, overwrite=True)


NPZ_KEYS = {
    "run/history.npz": ["layers", "shapes", "window", "overlap", "every", "n_snapshots",
                        "n_windows", "has_initial_weights", "n_initial_weights", "version"],
    "scores.npz": ["layers", "shapes", "max_lag", "test", "lags", "info", "version"],
    "mask.npz": ["layers", "info", "version", "format"],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NPZ_KEYS))
@FUZZ
@given(data=st.data())
def test_type_confused_meta_load_or_refuse(originals, tmp_path, name, data):
    root = fresh_copy(originals, tmp_path, next(counter))
    rewrite_meta(root / name, data.draw(st.sampled_from(NPZ_KEYS[name])), data.draw(JSON))
    loads_or_refuses(*loaders(root)[name])


@FUZZ
@given(key=st.sampled_from(["format", "layers", "shapes", "n_rows", "n_weights", "target"]),
       value=JSON)  # fmt: skip
def test_type_confused_journal_index_load_or_refuse(originals, tmp_path, key, value):
    root = fresh_copy(originals, tmp_path, next(counter))
    index_path = root / "run" / f"{JOURNAL_NAME}.json"
    index = json.loads(index_path.read_text())
    index[key] = value
    index_path.write_text(json.dumps(index))
    loads_or_refuses(*loaders(root)["run/history.npz"])


@pytest.mark.parametrize("name", sorted(NPZ_KEYS))
@FUZZ
@given(dtype=st.sampled_from(["U3", "S2", "V4", "c8", "bool", "int64", "float16"]),
       shape=st.lists(st.integers(0, 3), max_size=3))  # fmt: skip
def test_arrays_of_another_type_or_shape_load_or_refuse(originals, tmp_path, name, dtype, shape):
    root = fresh_copy(originals, tmp_path, next(counter))
    path = root / name
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["__meta__"]))
        arrays = {k: data[k] for k in data.files if k != "__meta__"}
    first = sorted(arrays)[0]
    arrays[first] = np.zeros(shape, dtype=dtype)
    write_npz(path, meta, arrays, overwrite=True)
    loads_or_refuses(*loaders(root)[name])


# -- oversized claims ------------------------------------------------------------------------
def forged_member(shape, dtype="<f4", payload=b"\0" * 64) -> bytes:
    """An .npy member whose header claims ``shape`` but holds only ``payload``."""
    header = repr({"descr": dtype, "fortran_order": False, "shape": tuple(shape)}).encode()
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload


def rewrite_member(path: Path, member: str, raw: bytes, compress: int) -> None:
    """Replace one member of the .npz at ``path`` with ``raw`` (other members kept)."""
    with zipfile.ZipFile(path) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members[member] = raw
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as z:
        for k, v in members.items():
            z.writestr(k, v)
    path.write_bytes(buf.getvalue())


ARRAY = {"run/history.npz": "le.npy", "scores.npz": "pvalues.npy", "mask.npz": "layer_0.npy"}


@pytest.mark.parametrize("name", sorted(ARRAY))
@pytest.mark.parametrize("compress", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_header_claiming_1e12_weights_is_refused_before_allocating(
    originals, tmp_path, name, compress
):
    root = fresh_copy(originals, tmp_path, next(counter))
    rewrite_member(root / name, ARRAY[name], forged_member((10**6, 10**6)), compress)
    load, error = loaders(root)[name]
    with pytest.raises(error, match=r"claims shape \(1000000, 1000000\).*truncated or forged"):
        load()


def test_a_zip_member_claiming_a_huge_inflated_size_is_refused(originals, tmp_path):
    """A deflated member whose declared size is far beyond what deflate can produce (zip bomb)."""
    root = fresh_copy(originals, tmp_path, next(counter))
    path = root / "mask.npz"
    rewrite_member(path, "layer_0.npy", forged_member((4,), "|u1", b"\1" * 4), zipfile.ZIP_DEFLATED)
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("layer_0.npy")
    # patch the uncompressed size in the local header and the central directory to 2 GiB
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        at = raw.find(sig)
        while at >= 0:
            name_at = at + (30 if sig == b"PK\x03\x04" else 46)
            if raw[name_at : name_at + len(info.filename)] == info.filename.encode():
                size_at = at + (22 if sig == b"PK\x03\x04" else 24)
                raw[size_at : size_at + 4] = struct.pack("<I", 2**31)
            at = raw.find(sig, at + 4)
    path.write_bytes(bytes(raw))
    with pytest.raises(MaskMismatchError, match="claims 2147483648 bytes"):
        kl.Mask.load(path)


def test_a_journal_index_claiming_1e12_rows_is_refused(originals, tmp_path):
    root = fresh_copy(originals, tmp_path, next(counter))
    index_path = root / "run" / f"{JOURNAL_NAME}.json"
    index = json.loads(index_path.read_text())
    index.update(n_rows=10**12, target=[0.5] * 3)
    index_path.write_text(json.dumps(index))
    with pytest.warns(kl.LegcWarning, match="ignoring the window journal"):
        hist = kl.History.load(root / "run")
    assert hist.n_windows == 10  # the last complete save


def test_an_oversized_journal_index_is_refused_unread(originals, tmp_path, monkeypatch):
    import keras_legc.core.history as H

    root = fresh_copy(originals, tmp_path, next(counter))
    monkeypatch.setattr(H, "MAX_INDEX_BYTES", 100)
    with pytest.warns(kl.LegcWarning, match="more than any index holds"):
        assert kl.History.load(root / "run").n_windows == 10


def test_read_npz_refuses_a_plain_npy_and_non_numbers(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(ValueError, match="not an .npz archive"):
        read_npz(tmp_path / "a.npy", "keras_legc.mask", 1)
    write_npz(tmp_path / "s.npz", {"format": "f", "version": 1}, {"x": np.array(["a"])})
    with pytest.raises(ValueError, match="holds <U1, not numbers"):
        read_npz(tmp_path / "s.npz", "f", 1)


def test_valid_files_still_load(originals):
    with pytest.warns(kl.LegcWarning, match="12 windows completed"):
        assert kl.History.load(originals / "run").n_windows == 12
    assert kl.Scores.load(originals / "scores.npz").layers == ["a", "b"]
    assert kl.Mask.load(originals / "mask.npz").layers == ["a", "b"]


def test_a_journal_index_without_its_target_falls_back_to_the_last_save(originals, tmp_path):
    """Found by the fuzz campaign at 2,000 inputs (a damaged key): a KeyError, now refused."""
    root = fresh_copy(originals, tmp_path, next(counter))
    index_path = root / "run" / f"{JOURNAL_NAME}.json"
    index = json.loads(index_path.read_text())
    del index["target"]
    index_path.write_text(json.dumps(index))
    with pytest.warns(kl.LegcWarning, match="records no target series"):
        hist = kl.History.load(root / "run")
    assert hist.n_windows == 10  # the last complete save, not the journal's 12 windows
