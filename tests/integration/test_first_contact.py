"""First contact (issue 18): file modes under the umask, the benchmark's own peak RSS, tools/export
without TensorFlow, and a quiet ``legc``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import _io

ROOT = Path(__file__).resolve().parents[2]


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


# --- 2. the benchmark reports its own peak RSS, not its parent's ---------------------------------


@pytest.fixture(scope="module")
def tflite_model(tmp_path_factory):
    from keras_legc.keras.export import export_tflite
    from keras_legc.keras.flavour import keras

    k = keras()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.layers.Input(shape=(8,)), k.layers.Dense(4, activation="relu")])
    path = tmp_path_factory.mktemp("tflite") / "m.tflite"
    export_tflite(model, path)
    return path


TF_PARENT = """
import json, os, subprocess, sys
import tensorflow as tf
tf.reduce_sum(tf.ones((512, 512)))  # TensorFlow loaded and used: a parent of ~1 GB peak
os.umask(0o027)
proc = subprocess.run([sys.executable, "edge/bench.py", sys.argv[1], "--runs", "20",
                       "--json", sys.argv[2]], capture_output=True, text=True)
hwm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")]
print(json.dumps({"rc": proc.returncode, "err": proc.stderr, "parent_peak": hwm[0]}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_bench_peak_rss_is_its_own_when_started_from_a_tensorflow_parent(tflite_model, tmp_path):
    import json

    out = tmp_path / "m.bench.json"
    proc = subprocess.run(
        [sys.executable, "-c", TF_PARENT, str(tflite_model), str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    parent = json.loads(proc.stdout.strip().splitlines()[-1])
    assert parent["rc"] == 0, parent["err"]
    result = json.loads(out.read_text())
    assert result["tensorflow_imported"] is False
    assert result["peak_rss_source"] == "VmHWM"
    peak, parent_peak = result["peak_rss_bytes"], parent["parent_peak"]
    # Python + numpy + the interpreter is ~30-100 MiB; the TF parent is several hundred MiB.
    assert 10 * 2**20 < peak < 250 * 2**20, peak / 2**20
    assert parent_peak > 3 * peak, (parent_peak / 2**20, peak / 2**20)
    # The --json file is written with the umask's mode (0o666 & ~0o027), not mkstemp's 0600.
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


# --- 3. tools/export without TensorFlow: one line naming the fix ---------------------------------


def _python_without_tensorflow() -> list[str] | None:
    """A python that cannot import TensorFlow: the device venv, or the system python isolated."""
    import shutil

    candidates = (
        [[os.environ["LEGC_DEVICE_PYTHON"]]] if os.environ.get("LEGC_DEVICE_PYTHON") else []
    )
    candidates += [[p, "-I"] for p in ("/usr/bin/python3", shutil.which("python3")) if p]
    for cmd in candidates:
        try:
            probe = subprocess.run(
                [*cmd, "-c", "import tensorflow"], capture_output=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode != 0 and b"ModuleNotFoundError" in probe.stderr:
            return cmd
    return None


def test_tools_export_without_tensorflow_says_the_fix_in_one_line(tmp_path):
    python = _python_without_tensorflow()
    if python is None:
        pytest.skip("no python without TensorFlow here (LEGC_DEVICE_PYTHON unset, system has TF)")
    (tmp_path / "m.keras").write_bytes(b"junk")
    proc = subprocess.run(
        [*python, str(ROOT / "tools" / "export"), str(tmp_path / "m.keras"), str(tmp_path / "m.tflite")],
        capture_output=True, text=True, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "cannot import" in lines[0]
    assert "Fix: run" in lines[0] and "tools/export" in lines[0]
    assert not (tmp_path / "m.tflite").exists()


# --- 5. legc is quiet by default: no TensorFlow C++ start-up lines, errors still print -----------


def _legc(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keras_legc.cli", *args], capture_output=True, text=True,
        cwd=ROOT, timeout=300, env={**os.environ, **(env or {})},
    )  # fmt: skip


TF_NATIVE_LINES = ("E0000", "cuInit", "I0000", "absl::InitializeLog", "cudart_stub")


def test_legc_hides_tensorflow_startup_lines_but_not_errors(tmp_path):
    import zipfile

    # A .keras zip that names Keras 2 but holds no model: TensorFlow starts, then loading fails.
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as z:
        z.writestr("metadata.json", '{"keras_version": "2.21.0"}')
        z.writestr("config.json", "{}")
    env = {"LEGC_VERBOSE": "", "TF_CPP_MIN_LOG_LEVEL": ""}
    quiet = _legc("export", str(tmp_path / "bad.keras"), str(tmp_path / "m.tflite"), env=env)
    assert quiet.returncode == 2  # bad input: one exit code for every legc command
    assert "ModelStructureError" in quiet.stderr and "Fix:" in quiet.stderr
    assert not [
        line for line in quiet.stderr.splitlines() if any(s in line for s in TF_NATIVE_LINES)
    ]
    verbose = _legc(
        "--verbose", "export", str(tmp_path / "bad.keras"), str(tmp_path / "m.tflite"), env=env
    )
    assert verbose.returncode == 2 and "ModelStructureError" in verbose.stderr
    assert any(s in verbose.stderr for s in ("I0000", "absl::InitializeLog")), verbose.stderr


def test_quiet_startup_hides_the_cuinit_line_and_keeps_tensorflow_working():
    script = (
        "import sys; from keras_legc._quiet import quiet_tensorflow_startup\n"
        "quiet_tensorflow_startup()\n"
        "import tensorflow as tf\n"
        "assert type(tf.__spec__.loader).__name__ != '_QuietLoader'\n"
        "print(float(tf.reduce_sum(tf.ones((3, 3)))))\n"
        "print('after import', file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "9.0"
    assert proc.stderr.strip().splitlines() == ["after import"], proc.stderr
