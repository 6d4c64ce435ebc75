"""Faults that must stay contained (issue 19): hostile export files read by the edge runner,
full disks, two processes on one output, untrusted model files.

The edge runner is a standalone tool: bad input exits 2 with ``legc-edge: error:``, never a
traceback or a crash of the interpreter.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from legc_edge.bench import EdgeError, load_reference

from tests import catalogue as C

FUZZ = settings(
    max_examples=int(os.environ.get("LEGC_FUZZ_EXAMPLES", "40")),  # tools/reliability_doc.py: more
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """A real export: m.tflite, m.json, m.reference.npz."""
    return C.exported(tmp_path_factory.mktemp("export"))


@st.composite
def damaged(draw, data: bytes, keep: int = 0) -> bytes:
    """``data`` truncated, bit-flipped, spliced or overwritten (its first ``keep`` bytes kept)."""
    kind = draw(st.sampled_from(["truncate", "flip", "splice", "int32_max", "random"]))
    n = len(data)
    if kind == "truncate":
        return data[: draw(st.integers(keep, n - 1))]
    out = bytearray(data)
    at = draw(st.integers(keep, n - 4))
    if kind == "flip":
        for pos in draw(st.lists(st.integers(keep, n - 1), min_size=1, max_size=8)):
            out[pos] ^= draw(st.integers(1, 255))
    elif kind == "splice":
        out[at:at] = draw(st.binary(min_size=1, max_size=64))
    elif kind == "int32_max":  # a size or index field turned huge
        out[at : at + 4] = b"\xff\xff\xff\x7f"
    else:
        out[keep:] = draw(st.binary(max_size=2048))
    return bytes(out)


# -- the export's reference, as the edge runner reads it -------------------------------------
def test_damaged_references_exit_2_never_crash(export, tmp_path, record_property):
    original = export.with_suffix(".reference.npz").read_bytes()
    seen = []

    @FUZZ
    @given(raw=damaged(original))
    def check(raw):
        path = tmp_path / "ref.npz"
        path.write_bytes(raw)
        try:
            ref = load_reference(path)
        except EdgeError as exc:
            assert "Fix" in str(exc)
            seen.append("refused")
        else:
            assert {"inputs", "keras_outputs", "atol"} <= set(ref)
            seen.append("loaded")

    check()
    assert "refused" in seen
    record_property("inputs_tried", len(seen))  # for tools/reliability_doc.py


@pytest.mark.parametrize(
    "change, names",
    [
        ({"atol": np.array("x")}, "atol holds <U1"),
        ({"atol": np.array([1.0, 2.0])}, "not one finite non-negative"),
        ({"atol": np.array(-1.0)}, "not one finite non-negative"),
        ({"inputs": np.zeros(3, np.float32)}, "not a batch"),
        ({"keras_outputs": np.zeros((1, 2), np.float32)}, "1 outputs for"),
        ({"keras_outputs": np.float32(np.nan)}, "0 outputs for"),
        ({}, "NaN or inf"),
    ],
)
def test_type_confused_references_exit_2(export, tmp_path, change, names):
    with np.load(export.with_suffix(".reference.npz")) as data:
        ref = {k: data[k] for k in data.files}
    np.savez(tmp_path / "ref.npz", **{**ref, **change})
    if not change:  # NaN inputs of the right shape
        np.savez(tmp_path / "ref.npz", **{**ref, "inputs": np.full_like(ref["inputs"], np.nan)})
    out = subprocess.run(
        [sys.executable, "-m", "legc_edge.bench", str(export), "--reference",
         str(tmp_path / "ref.npz"), "--runs", "2", "--warmup", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert "legc-edge: error:" in out.stderr and names in out.stderr and "Fix" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_reference_claiming_1e12_values_is_refused_before_allocating(export, tmp_path):
    import zipfile

    from tests.unit.test_fuzz_loaders import forged_member, rewrite_member  # one forger

    path = tmp_path / "ref.npz"
    path.write_bytes(export.with_suffix(".reference.npz").read_bytes())
    rewrite_member(path, "inputs.npy", forged_member((10**6, 10**6)), zipfile.ZIP_STORED)
    with pytest.raises(EdgeError, match=r"claims shape \(1000000, 1000000\)"):
        load_reference(path)


# -- a damaged .tflite in the edge runner ----------------------------------------------------
CHILD = textwrap.dedent(
    """
    import contextlib, io, sys
    from pathlib import Path
    from legc_edge.bench import main
    for f in sorted(Path(sys.argv[1]).glob("*.tflite")):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([str(f), "--runs", "2", "--warmup", "0"])
        print(f.name, code, repr(err.getvalue()[-1000:]), flush=True)
    """
)


def test_damaged_tflite_files_exit_0_or_2_never_crash(export, tmp_path, record_property):
    """One child runs every damaged model (a crash there names the file it died on)."""
    original = export.read_bytes()
    cases = tmp_path / "cases"
    cases.mkdir()
    counter = iter(range(10**6))

    @FUZZ
    @given(raw=damaged(original, keep=8))  # keep the TFL3 identifier: reach the interpreter
    def collect(raw):
        (cases / f"c{next(counter):03d}.tflite").write_bytes(raw)

    collect()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(cases)], capture_output=True, text=True, timeout=300
    )
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and len(lines) == len(list(cases.iterdir())), (
        f"the edge runner crashed (exit {out.returncode}) after {lines[-1:]}: {out.stderr[-800:]}"
    )
    record_property("inputs_tried", len(lines))  # for tools/reliability_doc.py
    codes = [int(line.split()[1]) for line in lines]
    assert set(codes) <= {0, 2}, lines
    assert codes.count(2) > len(codes) // 2
    for line in lines:
        if line.split()[1] == "2":
            assert "legc-edge: error:" in line and "Traceback" not in line, line


# -- full disks ------------------------------------------------------------------------------
def run_child(code: str, *args) -> subprocess.CompletedProcess:
    """Run ``FULL_DISK`` then ``code`` in a child Python; it must exit 0."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FULL_DISK) + textwrap.dedent(code), *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    return out


FULL_DISK = """
    import resource, signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG

    def disk_full_beyond(n_bytes):
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
"""


def test_a_write_that_fails_part_way_keeps_the_previous_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    out = run_child(
        """
        import sys
        from keras_legc._io import atomic_write_bytes
        disk_full_beyond(4096)
        try:
            atomic_write_bytes(sys.argv[1], b"x" * 100_000, overwrite=True)
        except OSError as exc:
            print("ERROR", exc)
        """,
        target,
    )
    assert "ERROR [Errno 27] could not write" in out.stdout
    assert "the previous file is kept" in out.stdout and "Fix" in out.stdout
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temp file left


def test_recording_that_cannot_save_keeps_training_and_warns_once(tmp_path):
    run = tmp_path / "run"
    out = run_child(
        """
        import sys, warnings
        import numpy as np
        from keras_legc.core.recorder import Recorder
        from keras_legc.core._compiled import compiled
        values = iter(np.linspace(0.5, 0.0, 100))  # a target that moves: no flat-target warning
        rec = Recorder(["a"], {"a": (20, 10)}, window=10, target=lambda: next(values),
                       run_dir=sys.argv[1], background=False)
        compiled("_lyapunov_kernel")  # numba's cache is written (or loaded) before the disk fills
        disk_full_beyond(3000)  # the first save succeeded; now the disk is full
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rng = np.random.default_rng(0)
            for epoch in range(4):
                for step in range(30):
                    rec.step([rng.normal(size=(20, 10))])
                rec.end_epoch()
            history = rec.finish()
        print("WINDOWS", history.n_windows)
        for w in caught:
            print("WARNING", w.category.__name__, w.message)
        """,
        run,
    )
    warned = [line for line in out.stdout.splitlines() if line.startswith("WARNING")]
    assert len(warned) == 1, out.stdout
    assert "LegcWarning" in warned[0] and "could not write the recording" in warned[0]
    assert "training goes on" in warned[0] and "Fix" in warned[0]
    assert "WINDOWS 13" in out.stdout  # every window, in memory
    import warnings

    import keras_legc as kl

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kl.LegcWarning)
        on_disk = kl.History.load(run)  # the last complete save, still readable
    assert on_disk.n_windows < 13


# -- two processes, one output ---------------------------------------------------------------
HOLD_RECORDING = """
    import sys
    import numpy as np
    from keras_legc.core.recorder import Recorder
    rec = Recorder(["a"], {"a": (3, 2)}, window=5, target=lambda: 0.5, run_dir=sys.argv[1])
    print("READY", flush=True)
    sys.stdin.readline()  # hold the run_dir until told to finish
    for step in range(12):
        rec.step([np.full((3, 2), np.sin(step))])
    print("WINDOWS", rec.finish().n_windows, flush=True)
"""


def start_holder(code: str, *args) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "READY"
    return proc


def test_a_second_process_recording_into_the_same_run_dir_is_refused(tmp_path):
    run = tmp_path / "run"
    first = start_holder(HOLD_RECORDING, run)
    try:
        second = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(HOLD_RECORDING).replace(
                'run_dir=sys.argv[1])', 'run_dir=sys.argv[1], overwrite=True)'), str(run)],
            input="\n", capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode != 0
        assert "OutputExistsError" in second.stderr
        assert (
            f"process {first.pid} " in second.stderr and "is recording into it now" in second.stderr
        )
        assert "Fix" in second.stderr
    finally:
        out, _ = first.communicate("\n", timeout=120)
    assert first.returncode == 0 and "WINDOWS 2" in out  # the first one was not disturbed
    assert not (tmp_path / ".run.lock").exists()  # released at finish
    subprocess.run(  # and the run_dir is free again for the next process
        [sys.executable, "-c", textwrap.dedent(HOLD_RECORDING).replace(
            'run_dir=sys.argv[1])', 'run_dir=sys.argv[1], overwrite=True)'), str(run)],
        input="\n", check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_second_process_exporting_to_the_same_path_is_refused(tmp_path):
    out = tmp_path / "m.tflite"
    holder = start_holder(
        """
        import sys
        from keras_legc._io import TargetLock
        with TargetLock(sys.argv[1], "exporting to"):  # what export_tflite holds while it works
            print("READY", flush=True)
            sys.stdin.readline()
        """,
        out,
    )
    try:
        with pytest.raises(Exception) as info:
            from keras_legc.keras.export import export_tflite

            export_tflite(C.mlp(), out)
        from keras_legc.errors import OutputExistsError

        assert isinstance(info.value, OutputExistsError)
        assert f"process {holder.pid} " in str(info.value)
        assert "is exporting to it now" in str(info.value) and "Fix" in str(info.value)
        assert not out.exists()
    finally:
        holder.communicate("\n", timeout=60)
    from keras_legc.keras.export import export_tflite

    export_tflite(C.mlp(), out)  # free again once the other process is done
    assert out.exists() and not (tmp_path / ".m.tflite.lock").exists()


# -- untrusted model files -------------------------------------------------------------------
@pytest.fixture(scope="module")
def lambda_models(tmp_path_factory):
    """The same model with a Lambda layer saved as .keras and as .h5."""
    import warnings

    from keras_legc.keras.flavour import keras

    k = keras()
    tmp = tmp_path_factory.mktemp("lambda")
    model = k.Sequential(
        [
            k.layers.Input((6,)),
            k.layers.Dense(5),
            k.layers.Lambda(lambda x: x * 2),
            k.layers.Dense(2),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .h5 is legacy
        model.save(tmp / "lam.keras")
        model.save(tmp / "lam.h5")
    return tmp


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_model_files_with_code_are_refused_unless_unsafe(lambda_models, suffix):
    import keras_legc as kl
    from keras_legc.errors import ModelStructureError

    path = lambda_models / f"lam{suffix}"
    with pytest.raises(ModelStructureError, match=r"Lambda.*executes Python code.*unsafe=True"):
        kl.load_model(path, compile=False)
    model = kl.load_model(path, compile=False, unsafe=True)
    assert [type(layer).__name__ for layer in model.layers][1] == "Lambda"


def test_models_without_code_load_as_before(tmp_path):
    import keras_legc as kl

    for suffix in (".keras", ".h5"):
        C.mlp().save(tmp_path / f"m{suffix}")
        assert len(kl.load_model(tmp_path / f"m{suffix}", compile=False).layers) == 2


def test_cli_export_refuses_code_unless_unsafe_load(lambda_models, tmp_path):
    with pytest.raises(C.SubprocessError) as info:
        C.cli("export", str(lambda_models / "lam.keras"), str(tmp_path / "a.tflite"))
    assert "ModelStructureError" in str(info.value) and "--unsafe-load" in str(info.value)
    out = C.cli(
        "export", str(lambda_models / "lam.keras"), str(tmp_path / "b.tflite"), "--unsafe-load"
    )
    assert "verification" in out and (tmp_path / "b.tflite").exists()


# -- tests that bite (issue 19) --------------------------------------------------------------
def test_export_verification_fails_when_the_tflite_differs(tmp_path, monkeypatch):
    """float16 weights against a tolerance far below float16's precision: verification fails,
    says so, and the CLI exits 3; the edge runner fails a tampered reference with exit 3."""
    import keras_legc as kl
    from keras_legc.keras import export as E

    monkeypatch.setitem(E.TOLERANCE, "float16", 1e-9)
    with pytest.warns(kl.LegcWarning, match="differs from the Keras model"):
        report = E.export_tflite(C.mlp(), tmp_path / "f16.tflite", quantization="float16")
    assert report["verification"]["ok"] is False
    assert report["verification"]["max_abs_error"] > 1e-9
    with pytest.raises(C.SubprocessError, match="exit 3|OVER TOLERANCE"):
        C.cli("export", *map(str, [save_mlp(tmp_path), tmp_path / "cli.tflite"]), "-q", "float16")

    model = C.exported(tmp_path, "ok")
    ref = model.with_suffix(".reference.npz")
    with np.load(ref) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez(ref, **{**arrays, "keras_outputs": arrays["keras_outputs"] + 0.5})
    out = subprocess.run(
        [sys.executable, "-m", "legc_edge.bench", str(model), "--runs", "2", "--warmup", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 3, out.stdout + out.stderr


def save_mlp(tmp_path: Path) -> Path:
    C.mlp().save(tmp_path / "mlp.keras")
    return tmp_path / "mlp.keras"


def test_int8_calibration_uses_the_users_representative_data(tmp_path):
    """Inputs near 50, far from a standard normal: calibrating on them gives a small error,
    calibrating on standard-normal rows (what a random calibration would use) a large one."""
    import warnings

    from keras_legc.keras.export import export_tflite
    from keras_legc.keras.flavour import keras

    k = keras()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.layers.Input((6,)), k.layers.Dense(8, activation="relu"),
                          k.layers.Dense(2)])  # fmt: skip
    rng = np.random.default_rng(0)
    user = (50 + rng.normal(size=(200, 6))).astype(np.float32)
    reference = (50 + rng.normal(size=(16, 6))).astype(np.float32)
    errors = {}
    for name, data in {
        "user": user,
        "normal": rng.normal(size=(200, 6)).astype(np.float32),
    }.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = export_tflite(
                model, tmp_path / f"{name}.tflite", quantization="int8",
                representative_data=data, reference_inputs=reference,
            )  # fmt: skip
        errors[name] = report["verification"]["max_abs_error"]
    assert errors["user"] < errors["normal"] / 10, errors
    assert errors["normal"] > 1.0, errors  # random calibration clips inputs near 50 to ~3


def test_paper_mode_keeps_degenerate_weights():
    import keras_legc as kl

    rng = np.random.default_rng(1)
    le = rng.normal(size=(40, 20))
    le[:5] = 0.25  # five weights whose LE never changes: no valid Granger test
    scores = C.quiet(kl.score, C.history(k_windows=20, le=le), max_lag=2)
    assert (scores.degenerate[:5] > 0).all() and (scores.degenerate[5:] == 0).all()
    mask = C.quiet(scores.mask, alpha=0.05)
    flat = np.concatenate([mask[n].ravel() for n in mask.layers])
    assert flat[:5].all()  # kept, although their p-value is NaN
    assert not flat[5:].all()  # while non-causal testable weights are pruned


def test_per_lag_pvalues_of_a_series_degenerate_at_some_lags_are_nan():
    """x alternates a, b: at lag 1 a fine cause; at lag 2, x_{t-1} + x_{t-2} is constant, so the
    design is collinear with the intercept. Documented: NaN at every lag, min p-value NaN."""
    from keras_legc.core.granger import COLLINEAR_CAUSE, OK, granger_test

    x = np.tile([1.0, 3.0], 15)
    y = np.random.default_rng(0).normal(size=30)
    alone = granger_test(x[None], y, max_lag=1)
    assert alone.degenerate[0] == OK and np.isfinite(alone.per_lag[0, 0])
    both = granger_test(x[None], y, max_lag=2)
    assert both.degenerate[0] == COLLINEAR_CAUSE
    assert np.isnan(both.per_lag[0]).all() and np.isnan(both.pvalues[0])


def test_kernels_compile_when_numbas_cache_cannot_be_written(tmp_path, monkeypatch):
    # an empty cache folder: the kernels are compiled and numba tries to save them, into a full disk
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cache"))
    out = run_child(
        """
        import warnings
        import numpy as np
        from keras_legc.core.lyapunov import windowed_lyapunov
        from keras_legc.core.granger import granger_pvalues
        from keras_legc.testing.reference import windowed_lyapunov_reference
        rng = np.random.default_rng(0)
        series = rng.normal(size=(6, 60))
        disk_full_beyond(1024)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            le = windowed_lyapunov(series, 20)
            p = granger_pvalues(rng.normal(size=(6, 30)), rng.normal(size=30), 2)
        print("EQUAL", np.array_equal(le, windowed_lyapunov_reference(series, 20)))
        print("FINITE", bool(np.isfinite(p).all()))
        for w in caught:
            print("WARNING", w.category.__name__, w.message)
        """
    )
    assert "EQUAL True" in out.stdout and "FINITE True" in out.stdout, out.stdout
    warned = [line for line in out.stdout.splitlines() if line.startswith("WARNING")]
    assert len(warned) == 1, out.stdout  # once per process, not once per kernel
    assert "could not write the compiled kernels' cache" in warned[0] and "Fix" in warned[0]
