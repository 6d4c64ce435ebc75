"""The device-side runner (edge/bench.py) in-process, with the real LiteRT interpreter and the tiny
committed models of tests/data/edge (no TensorFlow): every check, exit code, statistic and JSON
field, so that mutation testing (tools/mutation.py, which runs tests/unit only) reaches it.

The runner is imported as ``edge.bench`` (not ``legc_edge.bench``): under mutmut the repository
root is its ``mutants/`` copy, so this name is the mutated file. Expected values are worked out by
hand or with numpy from the inputs; the Keras outputs in each ``.reference.npz`` were computed by
Keras at export (tests/data/edge/make_fixtures.py), independently of this runner.
"""

import argparse
import importlib.metadata
import json
import os
import resource
import shutil
import subprocess
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

try:
    from edge import bench
except ModuleNotFoundError:  # `pytest` started without the repository root on sys.path
    sys.path.append(str(Path(__file__).resolve().parents[2]))
    from edge import bench

DATA = Path(__file__).resolve().parents[1] / "data" / "edge"
LITERT = importlib.metadata.version("ai-edge-litert")
FAST = ["--runs", "3", "--warmup", "1"]


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def models(tmp_path) -> Path:
    """A private copy of the fixture models (tests add and damage sidecars)."""
    for path in DATA.iterdir():
        if path.suffix in (".tflite", ".json", ".npz"):
            shutil.copy(path, tmp_path / path.name)
    return tmp_path


@pytest.fixture
def only_litert(monkeypatch):
    """tflite-runtime absent (whatever this machine has): its import fails."""
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)


@pytest.fixture
def no_runtime(only_litert, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)


@pytest.fixture
def both_runtimes(monkeypatch):
    """tflite-runtime present: the real LiteRT interpreter under tflite_runtime's module name."""
    import ai_edge_litert
    import ai_edge_litert.interpreter

    monkeypatch.setitem(sys.modules, "tflite_runtime", ai_edge_litert)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", ai_edge_litert.interpreter)


@pytest.fixture
def keep_affinity():
    allowed = os.sched_getaffinity(0)
    yield allowed
    os.sched_setaffinity(0, allowed)


@pytest.fixture
def address_limit():
    """Set this process's RLIMIT_AS soft limit (MB) for a test; restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)

    def set_mb(mb: float) -> None:
        resource.setrlimit(resource.RLIMIT_AS, (int(mb * 2**20), hard))

    yield set_mb
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def vm(field: str) -> int:
    """A ``/proc/self/status`` field in kB, read here independently of the runner."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def said(text: str) -> str:
    """Whitespace-normalised text (help and messages wrap)."""
    return " ".join(text.split())


def edge_error(fn, *args, **kwargs) -> str:
    with pytest.raises(bench.EdgeError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def run_main(capsys, *argv) -> tuple[int, str, str]:
    code = bench.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, said(out.err)


def write_ref(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def reference(name: str = "dense") -> dict:
    with np.load(DATA / f"{name}.reference.npz") as data:
        return {k: data[k] for k in data.files}


# -- runtimes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, canonical",
    [("tflite-runtime", "tflite_runtime"), ("tflite_runtime", "tflite_runtime"),
     ("ai-edge-litert", "litert"), ("litert", "litert"), ("auto", "auto"), ("both", "both")],
)  # fmt: skip
def test_canonical_runtime_names(name, canonical):
    assert bench.canonical_runtime(name) == canonical


def test_an_unknown_runtime_names_the_choices():
    msg = edge_error(bench.canonical_runtime, "tflite")
    assert msg.startswith("unknown runtime 'tflite'")
    assert "Fix: use auto, litert, tflite-runtime or both." in msg


def test_available_runtimes_follow_what_imports(monkeypatch):
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    assert bench.available_runtimes() == ["litert"]
    import ai_edge_litert.interpreter

    monkeypatch.setitem(sys.modules, "tflite_runtime", sys.modules["ai_edge_litert"])
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", ai_edge_litert.interpreter)
    assert bench.available_runtimes() == ["litert", "tflite_runtime"]
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    assert bench.available_runtimes() == ["tflite_runtime"]


def test_resolve_runtimes_with_litert_only(only_litert):
    assert bench.resolve_runtimes("auto") == ["litert"]
    assert bench.resolve_runtimes("ai-edge-litert") == ["litert"]
    for name in ("both", "tflite-runtime"):
        msg = edge_error(bench.resolve_runtimes, name)
        assert f"--runtime {bench.canonical_runtime(name)} needs tflite_runtime, which" in msg
        assert "is not installed (found: litert)." in msg
        assert (
            "Fix: pip install tflite-runtime==2.14.0 numpy<2, or pick an installed runtime." in msg
        )


def test_resolve_runtimes_with_none_installed(no_runtime):
    msg = edge_error(bench.resolve_runtimes, "auto")
    assert msg.startswith("no TFLite interpreter is installed. Fix: pip install ai-edge-litert (or")
    assert msg.endswith("(or tflite-runtime on devices that only have that).")
    msg = edge_error(bench.resolve_runtimes, "both")
    assert "needs litert, tflite_runtime, which is not installed (found: none)" in msg
    assert "pip install ai-edge-litert tflite-runtime==2.14.0 numpy<2, or pick" in msg
    assert "pip install ai-edge-litert, or pick" in edge_error(bench.resolve_runtimes, "litert")


def test_resolve_runtimes_with_both_installed(both_runtimes):
    assert bench.resolve_runtimes("auto") == ["litert"]  # the first installed
    assert bench.resolve_runtimes("both") == ["litert", "tflite_runtime"]
    assert bench.resolve_runtimes("tflite-runtime") == ["tflite_runtime"]
    assert bench.resolve_runtimes("litert") == ["litert"]


# -- constraints ----------------------------------------------------------------------------------
def test_no_constraints_apply_nothing():
    assert bench.apply_constraints() == {}
    assert bench.apply_constraints(None, None) == {}


def test_pin_core(keep_affinity):
    core = max(keep_affinity)
    assert bench.apply_constraints(pin_core=core) == {"pinned_core": core}
    assert os.sched_getaffinity(0) == {core}


def test_pin_core_outside_the_allowed_set(keep_affinity):
    bad = max(keep_affinity) + 1000
    msg = edge_error(bench.apply_constraints, pin_core=bad)
    assert f"--pin-core {bad} is not a core this process may use ({sorted(keep_affinity)})" in msg
    assert msg.endswith("Fix: pass one of those.")
    assert os.sched_getaffinity(0) == keep_affinity


@pytest.mark.parametrize("mb", [0, -5.0])
def test_memory_limit_must_be_positive(mb):
    with pytest.raises(bench.EdgeError) as info:
        bench.apply_constraints(memory_limit_mb=mb)
    assert type(info.value) is bench.EdgeError  # not MemoryLimitError: a usage error (exit 2)
    assert f"--memory-limit-mb must be positive, got {mb}. Fix: pass e.g. 512." == str(info.value)
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY


def test_memory_limit_below_what_the_process_maps():
    with pytest.raises(bench.MemoryLimitError) as info:
        bench.apply_constraints(memory_limit_mb=1.5)
    msg = str(info.value)
    assert msg.startswith("--memory-limit-mb 1.5 is below what this process already maps (")
    mapped = float(msg.split("maps (")[1].split(" MB")[0])
    assert abs(mapped - vm("VmSize") / 1024) < 64  # the process's own size, in MB
    assert msg.endswith("). Fix: raise the limit above that; it caps the whole process.")
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY


def test_memory_limit_is_applied_in_bytes(address_limit):
    before = vm("VmSize") / 1024
    applied = bench.apply_constraints(memory_limit_mb=2**20)  # 1 TiB: never hit
    after = vm("VmSize") / 1024
    assert applied["memory_limit_mb"] == 2**20 and set(applied) == {
        "memory_limit_mb", "address_space_before_mb"}  # fmt: skip
    assert min(before, after) - 16 <= applied["address_space_before_mb"] <= max(before, after) + 16
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == 2**40


def test_address_space_is_vmsize_in_mb():
    for _ in range(20):  # a read between two equal ones (no other thread mapping meanwhile)
        before, got, after = vm("VmSize"), bench._address_space_mb(), vm("VmSize")
        if before == after:
            break
    assert got == before / 1024


CHILD = """
import importlib.util, resource, sys
spec = importlib.util.spec_from_file_location("edge.bench", sys.argv[1])  # its name (mutmut)
bench = importlib.util.module_from_spec(spec); spec.loader.exec_module(bench)
current = bench._address_space_mb()
{body}
"""


def run_child(body: str) -> subprocess.CompletedProcess:
    """Code with process-wide effects (a hard memory limit) in a child Python, on this bench."""
    return subprocess.run(
        [sys.executable, "-c", CHILD.format(body=body), bench.__file__],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_memory_limit_is_clamped_to_the_hard_limit_and_equal_to_the_size_is_refused():
    assert bench.apply_constraints() == {}  # (so that mutation testing runs this test)
    child = run_child(
        "try:\n"
        "    bench.apply_constraints(memory_limit_mb=current)\n"
        "    print('accepted')\n"
        "except bench.MemoryLimitError:\n"
        "    print('refused')\n"
        "hard = int((current + 4096) * 2**20)\n"
        "resource.setrlimit(resource.RLIMIT_AS, (hard, hard))\n"
        "applied = bench.apply_constraints(memory_limit_mb=current + 8192)\n"
        "print(resource.getrlimit(resource.RLIMIT_AS) == (hard, hard), applied['memory_limit_mb']"
        " == current + 8192, bench._limited())"
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["refused", "True", "True", "True"]


# -- the interpreter ------------------------------------------------------------------------------
def test_load_interpreter_from_a_path_bytes_or_bytearray():
    want = reference()
    data = (DATA / "dense.tflite").read_bytes()
    for model in (DATA / "dense.tflite", str(DATA / "dense.tflite"), data, bytearray(data)):
        interp, runtime, notes = bench.load_interpreter(model)
        assert (runtime, notes) == ("litert", [])
        got = bench.run_model(interp, want["inputs"])
        np.testing.assert_allclose(got, want["keras_outputs"], atol=1e-5)


@pytest.mark.parametrize("threads", [None, 0, 1, 2, "2"])
def test_load_interpreter_threads(threads):
    interp, runtime, _ = bench.load_interpreter(DATA / "dense.tflite", "litert", threads)
    assert runtime == "litert" and interp.get_input_details()[0]["shape"].tolist() == [1, 4]


def test_load_interpreter_refuses_negative_threads():
    msg = edge_error(bench.load_interpreter, DATA / "dense.tflite", threads=-1)
    assert "the litert interpreter cannot load this model: num_threads should >= 1." in msg


def test_load_interpreter_loads_one_runtime(both_runtimes):
    msg = edge_error(bench.load_interpreter, DATA / "dense.tflite", "both")
    assert msg.startswith("load_interpreter loads one runtime; pick litert or tflite-runtime.")
    assert edge_error(bench.load_interpreter, DATA / "dense.tflite", "nope").startswith(
        "unknown runtime 'nope'"
    )
    _, runtime, _ = bench.load_interpreter(DATA / "dense.tflite", "tflite-runtime")
    assert runtime == "tflite_runtime"
    _, runtime, _ = bench.load_interpreter(DATA / "dense.tflite", "auto")
    assert runtime == "litert"


def test_a_delegate_that_cannot_prepare_falls_back_to_builtin_ops():
    interp, _, notes = bench.load_interpreter(DATA / "int8sparse.tflite")
    assert len(notes) == 1 and notes[0].startswith("default delegate failed (")
    assert notes[0].endswith("); using builtin ops without delegates")
    assert "XNNPack" in notes[0] and "\n" not in notes[0]
    ref = reference("int8sparse")
    err = np.abs(bench.run_model(interp, ref["inputs"]) - ref["keras_outputs"]).max()
    assert err <= float(ref["atol"])


@pytest.mark.parametrize(
    "damage", [lambda b: b[: len(b) // 2], lambda b: b[:8] + bytes(300), lambda b: b"xxxxTFL3"]
)
def test_a_damaged_model_is_a_clear_error(damage):
    msg = edge_error(bench.load_interpreter, damage((DATA / "dense.tflite").read_bytes()))
    assert msg.startswith("the litert interpreter cannot load this model: ")
    assert msg.endswith(
        ". Fix: export the model again with legc export; the file is damaged, or not a model this "
        "runtime supports."
    )
    assert "\n" not in msg


def test_an_arena_over_the_memory_limit_is_a_memory_error(address_limit):
    """tile.tflite needs a 64 MiB activation arena: under a limit 24 MB above this process's size
    LiteRT's allocate_tensors fails (with an empty message), which is the limit, not damage."""
    limit = bench._address_space_mb() + 24
    address_limit(limit)
    with pytest.raises(bench.MemoryLimitError) as info:
        bench.load_interpreter(DATA / "tile.tflite")
    msg = str(info.value)
    assert msg.startswith("the litert interpreter ran out of memory trying to load the model")
    assert f"under the memory limit ({limit:.0f} MB of address space for the whole process)" in msg
    assert "Fix: raise --memory-limit-mb, or shrink the model" in msg


def test_an_ordinary_load_error_under_a_memory_limit_stays_an_edge_error(address_limit):
    address_limit(2**20)
    with pytest.raises(bench.EdgeError) as info:
        bench.load_interpreter(b"xxxxTFL3")
    assert type(info.value) is bench.EdgeError and "cannot load this model" in str(info.value)


def test_one_line():
    assert bench._one_line(ValueError("a\n  b\tc.")) == "a b c"
    assert bench._one_line(ValueError("x" * 240)) == "x" * 240
    assert bench._one_line(ValueError("x" * 241)) == "x" * 237 + "..."
    assert bench._one_line(ValueError("abcdef"), limit=5) == "ab..."
    assert bench._one_line(ValueError("a..")) == "a"


def test_limited_and_the_memory_message(address_limit):
    assert bench._limited() is False
    address_limit(2**20)
    assert bench._limited() is True
    msg = bench._memory_message("the thing", "chew")
    assert msg == said(
        "the thing ran out of memory trying to chew the model under the memory limit (1048576 MB "
        "of address space for the whole process). The model does not fit this constrained "
        "profile. Fix: raise --memory-limit-mb, or shrink the model (neuron pruning, int8)."
    )


# -- running, quantizing --------------------------------------------------------------------------
def test_quantize_by_hand():
    detail = {"dtype": np.int8, "quantization": (0.5, 3)}
    # round(x / 0.5 + 3): 3, 5, -197 -> -128, 203 -> 127, 3.52 -> 4, 2.5 -> 2 (half to even)
    x = np.array([0.0, 1.0, -100.0, 100.0, 0.26, -0.25])
    q = bench._quantize(x, detail)
    assert q.dtype == np.int8 and q.tolist() == [3, 5, -128, 127, 4, 2]
    u = bench._quantize(
        np.array([-5.0, 0.0, 200.0]), {"dtype": np.uint8, "quantization": (1.0, 10)}
    )
    assert u.dtype == np.uint8 and u.tolist() == [5, 10, 210]
    assert bench._quantize(np.array([-20.0, 500.0]), {"dtype": np.uint8, "quantization": (1.0, 0)}
                           ).tolist() == [0, 255]  # fmt: skip
    f = bench._quantize(np.array([1.25], dtype=np.float64), {"dtype": np.float32})
    assert f.dtype == np.float32 and f.tolist() == [1.25]


def test_dequantize_by_hand():
    y = bench._dequantize(np.array([3, 5, -128], dtype=np.int8), {"dtype": np.int8,
                                                                  "quantization": (0.5, 3)})  # fmt: skip
    assert y.dtype == np.float32 and y.tolist() == [0.0, 1.0, -65.5]
    z = bench._dequantize(np.array([1.5], dtype=np.float16), {"dtype": np.float16})
    assert z.dtype == np.float32 and z.tolist() == [1.5]


def test_run_model_matches_keras_float_and_int8_io():
    for name, atol in (("dense", 1e-5), ("int8io", None)):
        ref = reference(name)
        interp, _, _ = bench.load_interpreter(DATA / f"{name}.tflite")
        got = bench.run_model(interp, ref["inputs"])
        assert got.shape == ref["keras_outputs"].shape and got.dtype == np.float32
        np.testing.assert_allclose(got, ref["keras_outputs"], atol=atol or float(ref["atol"]))
    # int8 in and out: the outputs are multiples of the output scale (dequantised int8 values)
    detail = interp.get_output_details()[0]
    assert detail["dtype"] == np.int8
    scale, zero = detail["quantization"]
    steps = got / scale + zero
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-3)
    # ... and differ from a float run of the same weights by at most the quantization error
    np.testing.assert_allclose(got, reference("dense")["keras_outputs"], atol=0.1)


def test_sample_is_the_first_reference_row_or_a_seeded_normal():
    ref = reference()
    inp = {"shape": np.array([1, 4])}
    np.testing.assert_array_equal(bench._sample(ref, inp, 0), ref["inputs"][0])
    s = bench._sample(None, inp, 7)
    assert s.dtype == np.float32 and s.shape == (4,)
    np.testing.assert_array_equal(s, np.random.default_rng(7).normal(size=4).astype(np.float32))
    assert not np.array_equal(s, bench._sample(None, inp, 8))


# -- the reference file ---------------------------------------------------------------------------
def test_load_reference_reads_the_arrays():
    ref = bench.load_reference(DATA / "dense.reference.npz")
    want = reference()
    assert set(ref) == set(want)
    for key in want:
        np.testing.assert_array_equal(ref[key], want[key])


def test_load_reference_errors(tmp_path):
    missing = tmp_path / "no.reference.npz"
    msg = edge_error(bench.load_reference, missing)
    assert msg == (f"reference file {missing} does not exist. Fix: pass the .reference.npz "
                   "written by legc export.")  # fmt: skip
    text = tmp_path / "text.npz"
    text.write_text("hello")
    msg = edge_error(bench.load_reference, text)
    assert msg == (f"{text} is not a readable reference file (not an .npz archive: truncated, or "
                   "another kind of file). Fix: export the model again.")  # fmt: skip
    ref = reference()
    del ref["atol"], ref["inputs"]
    msg = edge_error(bench.load_reference, write_ref(tmp_path / "lacks.npz", **ref))
    assert msg.endswith("lacks ['atol', 'inputs']: not a legc export reference. Fix: export the "
                        "model again.")  # fmt: skip
    ref = reference()
    ref["atol"] = np.float64(np.nan)
    msg = edge_error(bench.load_reference, write_ref(tmp_path / "nan.npz", **ref))
    assert msg.startswith(f"{tmp_path / 'nan.npz'} is not a usable reference: tolerance atol=")
    assert msg.endswith("is not one finite non-negative number. Fix: export the model again.")


def good_ref(**changes) -> dict:
    ref = {"inputs": np.zeros((3, 4)), "keras_outputs": np.zeros((3, 2)), "atol": np.float64(0.1)}
    ref.update(changes)
    return ref


MEAN_ATOL_PROBLEM = "tolerance mean_atol={mean_atol!r} is not one finite non-negative number"


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"inputs": np.array([["a"] * 4] * 3)}, "inputs holds <U1, not numbers"),
        ({"keras_outputs": np.zeros((3, 2), complex)}, "keras_outputs holds complex128, not numbers"),
        ({"atol": np.array("x")}, "atol holds <U1, not numbers"),
        ({"inputs": np.zeros(4)}, "inputs of shape (4,), not a batch of at least one sample"),
        ({"inputs": np.zeros((0, 4))}, "inputs of shape (0, 4), not a batch of at least one sample"),
        ({"keras_outputs": np.float32(1)}, "0 outputs for 3 inputs"),
        ({"keras_outputs": np.zeros((2, 2))}, "2 outputs for 3 inputs"),
        ({"atol": np.array([0.1, 0.2])}, "tolerance atol={atol!r} is not one finite non-negative number"),
        ({"atol": np.float64(np.inf)}, "tolerance atol={atol!r} is not one finite non-negative number"),
        ({"atol": np.float64(-1e-9)}, "tolerance atol={atol!r} is not one finite non-negative number"),
        ({"inputs": np.full((3, 4), np.nan)}, "NaN or inf in the reference inputs or outputs"),
        ({"keras_outputs": np.array([[0, 1], [0, np.inf], [0, 0]])},
         "NaN or inf in the reference inputs or outputs"),
        ({"mean_atol": np.float64(np.nan)}, MEAN_ATOL_PROBLEM),
        ({"mean_atol": np.array(["x"])}, MEAN_ATOL_PROBLEM),
        ({"mean_atol": np.float64(-0.1)}, MEAN_ATOL_PROBLEM),
        ({"mean_atol": np.array([0.1, 0.2])}, MEAN_ATOL_PROBLEM),
    ],
)  # fmt: skip
def test_reference_problems(changes, problem):
    ref = good_ref(**changes)
    assert bench._reference_problem(ref) == problem.format(
        atol=ref["atol"], mean_atol=ref.get("mean_atol")
    )


@pytest.mark.parametrize(
    "changes",
    [{}, {"atol": np.float64(0)}, {"atol": np.array([[0.5]])}, {"inputs": np.ones((1, 4), bool),
     "keras_outputs": np.ones(1, np.int8)}, {"inputs": np.ones((3, 2, 2), np.uint8)},
     {"mean_atol": np.float64(0.025)}, {"mean_atol": np.float64(0)}],
)  # fmt: skip
def test_usable_references(changes):
    assert bench._reference_problem(good_ref(**changes)) is None


def npz_bytes(folder: Path, arrays: dict, compressed: bool) -> bytes:
    path = folder / "arrays.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path.read_bytes()


def patch_central_sizes(data: bytes, compress_size: int | None, file_size: int) -> bytes:
    """The zip's central directory entry (one member) claiming other sizes than it holds."""
    at = data.rindex(b"PK\x01\x02")
    out = bytearray(data)
    if compress_size is not None:
        out[at + 20 : at + 24] = compress_size.to_bytes(4, "little")
    out[at + 24 : at + 28] = file_size.to_bytes(4, "little")
    return bytes(out)


def test_npz_headers_refuse_a_zip_bomb(tmp_path):
    data = npz_bytes(tmp_path, {"x": np.zeros(1000)}, compressed=True)
    (tmp_path / "a.npz").write_bytes(data)
    info = zipfile.ZipFile(tmp_path / "a.npz").infolist()[0]
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        bench.check_npz_headers(archive)  # the real one passes
    bomb = tmp_path / "bomb.npz"
    bomb.write_bytes(patch_central_sizes(data, None, 1101 * info.compress_size))
    with zipfile.ZipFile(bomb) as archive, pytest.raises(ValueError) as err:
        bench.check_npz_headers(archive)
    assert str(err.value) == (f"member 'x.npy' claims {1101 * info.compress_size} bytes from "
                              f"{info.compress_size} compressed: not a real array")  # fmt: skip
    # exactly 1100x is allowed (then the header check finds the claimed data present)
    edge = tmp_path / "edge.npz"
    edge.write_bytes(patch_central_sizes(data, None, 1100 * info.compress_size))
    with zipfile.ZipFile(edge) as archive:
        bench.check_npz_headers(archive)
    # a member claiming 0 compressed bytes counts as 1
    zero = tmp_path / "zero.npz"
    zero.write_bytes(patch_central_sizes(data, 0, 1101))
    with zipfile.ZipFile(zero) as archive, pytest.raises(ValueError) as err:
        bench.check_npz_headers(archive)
    assert str(err.value) == "member 'x.npy' claims 1101 bytes from 0 compressed: not a real array"
    msg = edge_error(bench.load_reference, bomb)
    assert "claims" in msg and "not a real array" in msg


def test_npz_headers_refuse_a_forged_shape(tmp_path):
    # 10000 float64 (80,000 bytes; large enough that reading the header does not reach the end
    # of the member, where zipfile would check the CRC of the forged bytes)
    data = npz_bytes(tmp_path, {"x": np.arange(10000.0)}, compressed=False)
    forged = tmp_path / "forged.npz"
    forged.write_bytes(data.replace(b"(10000,)", b"(10001,)", 1))  # 8 bytes more than it holds
    with zipfile.ZipFile(forged) as archive, pytest.raises(ValueError) as err:
        bench.check_npz_headers(archive)
    assert str(err.value) == ("member 'x.npy' claims shape (10001,) of float64 (80008 bytes) but "
                              "holds 80000 bytes: truncated or forged header")  # fmt: skip
    ok = tmp_path / "ok.npz"
    ok.write_bytes(data)
    with zipfile.ZipFile(ok) as archive:
        bench.check_npz_headers(archive)


def test_npz_headers_versions(tmp_path):
    import io

    for version, accepted in (((1, 0), True), ((2, 0), True), ((3, 0), False)):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.arange(3.0), version=version)
        path = tmp_path / f"v{version[0]}.npz"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("x.npy", buf.getvalue())
        with zipfile.ZipFile(path) as archive:
            if accepted:
                bench.check_npz_headers(archive)
            else:
                with pytest.raises(ValueError) as err:
                    bench.check_npz_headers(archive)
                assert str(err.value) == "member 'x.npy' is .npy version 3"


# -- the output check -----------------------------------------------------------------------------
def dense_interp():
    return bench.load_interpreter(DATA / "dense.tflite")[0]


def test_check_outputs_of_a_good_model():
    ref = reference()
    check = bench.check_outputs(dense_interp(), ref)
    want, tfl = ref["keras_outputs"], ref["tflite_outputs"]  # tflite_outputs: the export's run
    assert check["max_abs_error"] == pytest.approx(np.abs(tfl - want).max(), abs=1e-7)
    scale = max(1.0, np.abs(want).max())
    assert check["relative_error"] == pytest.approx(check["max_abs_error"] / scale)
    assert check["atol"] == float(ref["atol"]) == 1e-4
    assert check["reference_std"] == pytest.approx(np.std(want))
    assert check["output_std"] == pytest.approx(np.std(tfl), rel=1e-6)
    assert check["ok"] is True and check["collapsed"] is False and check["constant"] is False
    assert check["n_reference"] == 6


def test_check_outputs_error_and_tolerance():
    ref = reference()
    got = bench.run_model(dense_interp(), ref["inputs"])
    ref["keras_outputs"] = got.copy()
    ref["keras_outputs"][2, 1] += 0.5  # one output off by 0.5
    ref["atol"] = np.float64(0.5)
    check = bench.check_outputs(dense_interp(), ref)
    assert check["max_abs_error"] == pytest.approx(0.5, abs=1e-6)
    ref["atol"] = np.float64(check["max_abs_error"])  # error == atol passes
    assert bench.check_outputs(dense_interp(), ref)["ok"] is True
    ref["atol"] = np.float64(np.nextafter(check["max_abs_error"], 0))
    assert bench.check_outputs(dense_interp(), ref)["ok"] is False
    # large outputs: the relative error divides by max |keras output| (here 10 + the largest)
    ref["keras_outputs"] = got.copy()
    ref["keras_outputs"][0, 0] = 10.0 + np.abs(got).max()
    check = bench.check_outputs(dense_interp(), ref)
    assert check["relative_error"] == pytest.approx(
        np.abs(got - ref["keras_outputs"]).max() / ref["keras_outputs"][0, 0]
    )
    # small outputs: divided by 1
    ref["keras_outputs"] = got * 0.01
    check = bench.check_outputs(dense_interp(), ref)
    assert check["relative_error"] == pytest.approx(np.abs(got * 0.99).max(), rel=1e-6)


def _judge_by_loop(want, got, atol, mean_atol=None):
    """judge_outputs' rule written out element by element, as the reference."""
    rows_w = [list(np.ravel(r)) for r in want]
    rows_g = [list(np.ravel(r)) for r in got]
    diffs = [abs(float(a) - float(b)) for rw, rg in zip(rows_w, rows_g, strict=True)
             for a, b in zip(rw, rg, strict=True)]  # fmt: skip
    err, mean = max(diffs), sum(diffs) / len(diffs)
    top1 = None
    if len(rows_w[0]) >= 2:
        top1 = sum(rw.index(max(rw)) == rg.index(max(rg))
                   for rw, rg in zip(rows_w, rows_g, strict=True)) / len(rows_w)  # fmt: skip
    return (err <= atol if mean_atol is None else mean <= mean_atol), err, mean, top1


@pytest.mark.parametrize("shape", [(16, 10), (8, 2), (7, 10), (12, 1), (9, 2, 3), (1, 4)])
def test_judge_outputs_against_a_loop(shape):
    rng = np.random.default_rng(sum(shape))
    for trial in range(40):
        want = rng.random(shape)
        got = want + rng.normal(0, [0.001, 0.01, 0.05, 0.3][trial % 4], size=shape)
        if trial % 5 == 0:
            got[: len(got) // 2] = got[: len(got) // 2, ::-1]  # top outputs moved on half the rows
        for atol, mean_atol in [(0.1, None), (0.1, 0.025), (1.0, 0.05), (0.01, 0.2), (0.1, 0.0)]:
            judged = bench.judge_outputs(want, got, atol, mean_atol)
            ok, err, mean, top1 = _judge_by_loop(want, got, atol, mean_atol)
            assert judged["ok"] is ok and judged["rule"] == ("max" if mean_atol is None else "mean")
            assert judged["max_abs_error"] == pytest.approx(err, rel=1e-12)
            assert judged["mean_abs_error"] == pytest.approx(mean, rel=1e-12)
            assert judged["top1_agreement"] == (None if top1 is None else pytest.approx(top1))


def test_judge_outputs_edges():
    want = np.array([[0.1, 0.9]] * 8)
    off_one = want.copy()
    off_one[3] = [0.6, 0.4]  # one input of 8 near its boundary: large error, top output moved
    assert bench.judge_outputs(want, off_one, 0.1)["ok"] is False  # max rule: refused
    mean_ok = bench.judge_outputs(want, off_one, 0.1, mean_atol=0.0625)
    assert mean_ok["ok"] is True and mean_ok["top1_agreement"] == 7 / 8
    assert bench.judge_outputs(want, off_one, 0.1, mean_atol=np.nextafter(0.0625, 0))["ok"] is False
    # nearly tied outputs (an untrained model): every top output flips on a tiny error, which the
    # mean rule passes (the top outputs are reported, not judged)
    tied = np.array([[0.5 + 1e-4, 0.5 - 1e-4]] * 8)
    flipped = bench.judge_outputs(tied, tied[:, ::-1], 0.1, mean_atol=0.025)
    assert flipped["ok"] is True and flipped["top1_agreement"] == 0.0
    one = bench.judge_outputs(np.zeros((9, 1)), np.full((9, 1), 0.01), 0.0, 0.01)
    assert one["ok"] is True and one["top1_agreement"] is None
    assert bench.judge_outputs(want, want, 0.0, mean_atol=0.0)["ok"] is True


def test_check_outputs_mean_rule_with_a_real_interpreter():
    """A reference with mean_atol (export's int8 default): the device check applies the mean
    rule to what the runtime computes, and says which statistic failed."""
    ref = reference()
    got = bench.run_model(dense_interp(), ref["inputs"])
    ref["keras_outputs"] = got.copy()
    ref["keras_outputs"][2, 1] += 0.5  # one output off by 0.5: over a max tolerance of 0.1
    ref["tflite_outputs"] = got.copy()
    ref["atol"] = np.float64(0.1)
    assert bench.check_outputs(dense_interp(), ref)["ok"] is False
    mean = 0.5 / got.size
    ref["mean_atol"] = np.float64(mean * 1.000001)
    check = bench.check_outputs(dense_interp(), ref)
    assert check["ok"] is True and check["rule"] == "mean"
    assert check["mean_abs_error"] == pytest.approx(mean, rel=1e-5)
    assert bench._judged(check).startswith(f"mean |error| {check['mean_abs_error']:.3g} <= ")
    ref["mean_atol"] = np.float64(mean * 0.99)
    check = bench.check_outputs(dense_interp(), ref)
    assert check["ok"] is False and bench._judged(check).startswith(
        f"mean |error| {check['mean_abs_error']:.3g} > "
    )


def test_check_outputs_against_the_export_run():
    # the reference keeps the file's outputs as LiteRT computed them at export: the check says
    # how far this runtime is from that run, and how far that run was from Keras
    ref = reference()
    got = bench.run_model(dense_interp(), ref["inputs"])
    ref["tflite_outputs"] = got.copy()
    ref["tflite_outputs"][1, 0] += np.float32(0.125)
    check = bench.check_outputs(dense_interp(), ref)
    assert check["max_abs_diff_from_export_run"] == pytest.approx(0.125, abs=1e-6)
    want = ref["keras_outputs"]
    assert check["export_run_error"] == pytest.approx(np.abs(ref["tflite_outputs"] - want).max())
    for gone in ({k: v for k, v in ref.items() if k != "tflite_outputs"},  # an older reference
                 ref | {"tflite_outputs": got[:2]},  # another shape
                 ref | {"tflite_outputs": got.astype(object)}):  # not numbers  # fmt: skip
        check = bench.check_outputs(dense_interp(), gone)
        assert check["max_abs_diff_from_export_run"] is None and check["export_run_error"] is None


def test_check_outputs_collapse():
    """Collapsed: the runtime's outputs spread less than 5% of the reference's."""
    ref = reference()
    got = bench.run_model(dense_interp(), ref["inputs"])
    mean = got.mean()
    for factor, collapsed in ((19.0, False), (21.0, True)):
        # the reference spreads `factor` times as much as what the runtime computes
        ref["keras_outputs"] = (mean + factor * (got - mean)).astype(np.float32)
        ref["atol"] = np.float64(1e9)
        check = bench.check_outputs(dense_interp(), ref)
        assert check["reference_std"] == pytest.approx(factor * np.std(got), rel=1e-5)
        assert check["collapsed"] is collapsed and check["ok"] is (not collapsed)
    # one reference row: no spread to compare
    one = {k: v[:1] for k, v in ref.items() if k != "atol"} | {"atol": np.float64(1e9)}
    assert bench.check_outputs(dense_interp(), one)["collapsed"] is False


def test_check_outputs_constant():
    flat = bench.load_interpreter(DATA / "flat.tflite")[0]
    ref = reference("flat")
    check = bench.check_outputs(flat, ref)
    assert check["constant"] is True and check["ok"] is True
    assert check["output_std"] == 0.0  # every output is its bias, 0.5
    assert check["collapsed"] is False  # the reference is constant too (std 0)
    # identical reference inputs cannot tell a constant model
    same = dict(ref, inputs=np.repeat(ref["inputs"][:1], 6, axis=0))
    assert bench.check_outputs(flat, same)["constant"] is False
    assert bench.check_outputs(flat, {k: v[:1] if v.ndim else v for k, v in ref.items()})[
        "constant"] is False  # fmt: skip
    # one input differing in one feature is enough to tell
    rows = np.repeat(ref["inputs"][:1], 6, axis=0)
    rows[3, 2] += 1.0
    assert bench.check_outputs(flat, dict(ref, inputs=rows))["constant"] is True
    assert bench.check_outputs(dense_interp(), dict(reference(), inputs=rows,
                               keras_outputs=np.zeros((6, 3))))["constant"] is False  # fmt: skip


def test_check_outputs_wrong_reference():
    ref = reference()
    msg = edge_error(bench.check_outputs, dense_interp(), dict(ref, inputs=np.zeros((6, 5))))
    assert msg == ("the reference inputs have shape (5,) but the model takes (4,): the reference "
                   "belongs to another model. Fix: pass the .reference.npz exported with this "
                   ".tflite.")  # fmt: skip
    msg = edge_error(bench.check_outputs, dense_interp(), dict(ref, keras_outputs=np.zeros((6, 2))))
    assert msg == "model outputs (6, 3) but the reference holds (6, 2): wrong reference file."


# -- timing ---------------------------------------------------------------------------------------
class Counting:
    """The real interpreter, counting invocations."""

    def __init__(self, interp):
        self.interp, self.invokes, self.sets = interp, 0, 0

    def __getattr__(self, name):
        return getattr(self.interp, name)

    def invoke(self):
        self.invokes += 1
        self.interp.invoke()

    def set_tensor(self, index, value):
        self.sets += 1
        self.interp.set_tensor(index, value)


def scripted_clock(durations_ns, seconds=(100.0, 100.0 + 2**-9, 100.0 + 2**-7)):
    """A clock whose i-th timed invocation lasts durations_ns[i]; perf_counter reads ``seconds``
    (by default: a start, 2^-9 s later after the first invocation, 2^-7 s after the warm-up)."""
    ns = iter(t for d in durations_ns for t in (10**9, 10**9 + int(d)))
    seconds = iter(seconds)
    return types.SimpleNamespace(
        perf_counter_ns=lambda: next(ns), perf_counter=lambda: next(seconds)
    )


def test_time_model_statistics(monkeypatch):
    durations = np.random.default_rng(0).permutation(np.arange(1, 101)) * 1000  # 1..100 us
    monkeypatch.setattr(bench, "time", scripted_clock(durations))
    interp = Counting(dense_interp())
    sample = reference()["inputs"][3]
    lat = bench.time_model(interp, sample, runs=100, warmup=5)
    # sorted 1..100 us, linear interpolation: p50 = 50.5 us, p90 = 90.1 us, p99 = 99.01 us
    assert lat["p50_ms"] == pytest.approx(0.0505)
    assert lat["p90_ms"] == pytest.approx(0.0901)
    assert lat["p99_ms"] == pytest.approx(0.09901)
    assert lat["mean_ms"] == pytest.approx(0.0505)
    assert lat["throughput_per_s"] == pytest.approx(1000 / 0.0505)
    assert lat["first_invoke_ms"] == pytest.approx(1000 * 2**-9)
    assert lat["warmup_s"] == pytest.approx(2**-7)
    assert (lat["runs"], lat["warmup"]) == (100, 5)
    assert interp.invokes == 1 + 4 + 100 and interp.sets == 1  # first, warm-up, timed
    inp = interp.get_input_details()[0]
    np.testing.assert_array_equal(interp.get_tensor(inp["index"])[0], sample)


def test_time_model_warmup_zero_and_one(monkeypatch):
    for warmup in (0, 1):
        monkeypatch.setattr(bench, "time", scripted_clock([3000, 1000]))
        interp = Counting(dense_interp())
        lat = bench.time_model(interp, reference()["inputs"][0], runs=2, warmup=warmup)
        assert interp.invokes == 1 + 2 and lat["warmup"] == warmup
        assert lat["p50_ms"] == pytest.approx(0.002) and lat["p99_ms"] == pytest.approx(0.00298)


def test_time_model_real_clock():
    lat = bench.time_model(dense_interp(), reference()["inputs"][0], runs=20, warmup=2)
    assert 0 < lat["p50_ms"] <= lat["p90_ms"] <= lat["p99_ms"]
    assert lat["first_invoke_ms"] > 0 and lat["warmup_s"] >= lat["first_invoke_ms"] / 1e3


def test_time_model_quantizes_the_sample(monkeypatch):
    interp = bench.load_interpreter(DATA / "int8io.tflite")[0]
    sample = reference("int8io")["inputs"][1]
    bench.time_model(interp, sample, runs=1, warmup=0)
    inp = interp.get_input_details()[0]
    scale, zero = inp["quantization"]
    want = np.clip(np.round(sample / scale + zero), -128, 127)
    np.testing.assert_array_equal(interp.get_tensor(inp["index"])[0], want)


# -- first invocation, isolated -------------------------------------------------------------------
def test_first_invoke(tmp_path):
    assert bench.first_invoke(DATA / "dense.tflite", DATA / "dense.reference.npz") is None
    assert bench.first_invoke(DATA / "int8io.tflite", runtime="litert", threads=2, seed=3) is None
    assert "cannot load" in edge_error(bench.first_invoke, DATA / "missing.tflite")
    msg = edge_error(bench.first_invoke, DATA / "dense.tflite", tmp_path / "none.npz")
    assert "does not exist" in msg
    with pytest.raises(IndexError):  # no input tensor: the --isolate child reports exit 2
        bench.first_invoke(DATA / "noinput.tflite")


def test_isolated_first_invoke_reports_a_native_crash():
    bench.isolated_first_invoke(DATA / "dense.tflite", DATA / "dense.reference.npz", "litert", 1)
    bench.isolated_first_invoke(DATA / "dense.tflite", None, "litert", None, seed=4)
    bench.isolated_first_invoke(DATA / "noinput.tflite", None, "litert", 1)  # exit 2: no crash
    with pytest.raises(bench.NativeCrashError) as info:
        bench.isolated_first_invoke(DATA / "forged.tflite", DATA / "sparse.reference.npz",
                                    "litert", 1)  # fmt: skip
    msg = str(info.value)
    assert msg.startswith("the litert interpreter crashed in native code (SIGSEGV, signal 11) "
                          f"loading or first invoking {DATA / 'forged.tflite'}: ")  # fmt: skip
    assert (
        "Fix: export the model again with legc export, or try another runtime; do not ship" in msg
    )


def test_first_invoke_only_child_exit_codes(capsys, address_limit):
    assert bench.main([str(DATA / "dense.tflite"), "--first-invoke-only"]) == 0
    assert bench.main([str(DATA / "dense.tflite"), "--first-invoke-only", "--reference",
                       str(DATA / "dense.reference.npz"), "--threads", "2"]) == 0  # fmt: skip
    assert bench.main([str(DATA / "noinput.tflite"), "--first-invoke-only"]) == 2
    assert bench.main([str(DATA / "dense.json"), "--first-invoke-only"]) == 2
    assert bench.main([str(DATA / "dense.tflite"), "--first-invoke-only", "--threads", "-1"]) == 2
    address_limit(bench._address_space_mb() + 24)
    assert bench.main([str(DATA / "tile.tflite"), "--first-invoke-only"]) == 5
    assert capsys.readouterr().out == ""  # the child prints nothing: the parent reports


# -- benchmark ------------------------------------------------------------------------------------
def test_benchmark_result_fields(models):
    r = bench.benchmark(models / "dense.tflite", runs=4, warmup=2, threads=2)
    export = json.loads((DATA / "dense.json").read_text())
    assert r["model"] == str(models / "dense.tflite")
    assert r["model_bytes"] == (DATA / "dense.tflite").stat().st_size
    assert (r["runtime"], r["runtime_version"], r["threads"]) == ("litert", LITERT, 2)
    assert r["numpy"] == np.__version__ and r["notes"] == []
    assert r["input_shape"] == [1, 4] and r["input_dtype"] == "float32"
    assert r["load_ms"] > 0
    assert r["reference"] == str(models / "dense.reference.npz")  # found beside the model
    assert r["check"]["ok"] and r["check"]["n_reference"] == 6
    assert (r["latency"]["runs"], r["latency"]["warmup"]) == (4, 2)
    assert r["export"]["quantization"] == export["quantization"] == "float"
    assert r["export"]["layer_units"] == export["layer_units"] == {"dense": 8, "dense_1": 3}
    assert r["peak_rss_source"] == "VmHWM"  # (its value: test_peak_rss_is_vmhwm_in_bytes)
    assert 2**20 < r["peak_rss_bytes"] <= (vm("VmHWM") + 64) * 1024
    assert r["tensorflow_imported"] is ("tensorflow" in sys.modules)
    assert r["isolated_first_invoke"] is False


def test_benchmark_without_a_reference_uses_a_seeded_sample(models):
    (models / "dense.reference.npz").unlink()
    r = bench.benchmark(models / "dense.tflite", runs=2, warmup=0, seed=5)
    assert r["check"] is None and "reference" not in r
    r = bench.benchmark(models / "int8io.tflite", models / "int8io.reference.npz", runs=2,
                        warmup=0, isolate=True)  # fmt: skip
    assert r["input_dtype"] == "int8" and r["check"]["ok"] and r["export"] is None
    assert r["isolated_first_invoke"] is True


def test_benchmark_refuses_what_is_not_a_model(models):
    msg = edge_error(bench.benchmark, models / "none.tflite")
    assert (
        msg
        == f"{models / 'none.tflite'} does not exist. Fix: pass the .tflite written by legc export."
    )
    msg = edge_error(bench.benchmark, models)  # a folder
    assert msg.endswith("does not exist. Fix: pass the .tflite written by legc export.")
    for name, data in (("short", b"xxxTFL3"), ("ident", b"xxxxTFL2" + bytes(64)), ("empty", b"")):
        (models / name).write_bytes(data)
        msg = edge_error(bench.benchmark, models / name)
        assert msg == (f"{models / name} is not a TFLite model (no TFL3 identifier). Fix: pass a "
                       ".tflite file.")  # fmt: skip
    (models / "eight").write_bytes(b"xxxxTFL3")  # the identifier: the interpreter decides
    assert "cannot load this model" in edge_error(bench.benchmark, models / "eight")


def test_benchmark_of_a_model_without_an_input_tensor(models):
    msg = edge_error(bench.benchmark, models / "noinput.tflite", runs=1, warmup=0)
    assert msg == ("the litert interpreter cannot run this model: list index out of range. Fix: "
                   "export the model again with legc export; the file is damaged or not a "
                   "complete model.")  # fmt: skip


def test_benchmark_checks_the_reference_before_loading(models):
    (models / "bad.npz").write_bytes(b"PK\x03\x04junk")
    msg = edge_error(bench.benchmark, models / "forged.tflite", models / "bad.npz", isolate=True)
    assert "is not a readable reference file" in msg  # refused before the crashing model runs


def test_isolated_benchmark_of_a_crashing_model(models):
    with pytest.raises(bench.NativeCrashError) as info:
        bench.benchmark(models / "forged.tflite", models / "sparse.reference.npz", isolate=True)
    assert "(SIGSEGV, signal 11)" in str(info.value)


def test_peak_rss_is_vmhwm_in_bytes():
    before, (got, source), after = vm("VmHWM"), bench.peak_rss(), vm("VmHWM")
    # (the kernel's RSS counters lag by a few pages: 64 KiB of slack, 1/2500 of ~160 MB)
    assert source == "VmHWM" and (before - 64) * 1024 <= got <= (after + 64) * 1024


@pytest.mark.parametrize("status", [None, "VmHWM:\n", "VmHWM: many kB\n"])
def test_peak_rss_without_proc(monkeypatch, status):
    import io

    def fake_open(path, *args, **kwargs):
        if status is None:
            raise FileNotFoundError(path)
        return io.StringIO(status)

    monkeypatch.setattr(bench, "open", fake_open, raising=False)
    got, source = bench.peak_rss()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert source == "ru_maxrss (may include the parent's)" and 0 < got <= maxrss
    assert got >= maxrss // 2  # KiB on Linux, as bytes
    assert bench._address_space_mb() is None  # no VmSize either


def test_runtime_version(both_runtimes):
    assert bench._runtime_version("litert") == LITERT
    try:
        importlib.metadata.version("tflite-runtime")
    except importlib.metadata.PackageNotFoundError:  # the module's own __version__ then
        assert bench._runtime_version("tflite_runtime") == sys.modules["ai_edge_litert"].__version__


def test_runtime_version_of_an_absent_runtime(only_litert):
    try:
        importlib.metadata.version("tflite-runtime")
    except importlib.metadata.PackageNotFoundError:
        assert bench._runtime_version("tflite_runtime") is None


def test_export_info(models):
    info = bench._export_info(models / "int8sparse.tflite")
    export = json.loads((DATA / "int8sparse.json").read_text())
    keys = ("quantization", "sparse", "sparsity", "densify", "ops", "tflite_bytes", "layer_units")
    assert set(info) == {*keys, "verification", "label"}
    for key in (*keys, "verification"):
        assert info[key] == export[key], key
    assert info["label"] is None and info["quantization"] == "int8" and info["densify"] is True
    (models / "dense.json").write_text(json.dumps({**export, "label": "lenet/b90"}))
    assert bench._export_info(models / "dense.tflite")["label"] == "lenet/b90"
    assert bench._export_info(models / "int8io.tflite") is None  # no .json
    for text in ("[1, 2]", '{"sparse": true}', "{not json", '"quantization"'):
        (models / "dense.json").write_text(text)
        assert bench._export_info(models / "dense.tflite") is None, text
    (models / "dense.json").write_bytes(b"\xff\xfe")
    assert bench._export_info(models / "dense.tflite") is None


def test_write_json(tmp_path):
    path = tmp_path / "a" / "b" / "r.json"
    bench._write_json(path, {"x": [1, 2]}, force=False)
    assert path.read_text() == '{\n  "x": [\n    1,\n    2\n  ]\n}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    msg = edge_error(bench._write_json, path, {"x": 3}, False)
    assert msg == f"{path} exists. Fix: choose another --json path or pass --force."
    assert json.loads(path.read_text()) == {"x": [1, 2]}
    bench._write_json(path, {"x": 3}, force=True)
    assert json.loads(path.read_text()) == {"x": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]  # no temporary left


# -- the command line -----------------------------------------------------------------------------
def test_parser_defaults_and_types():
    args = bench._parser().parse_args(["m.tflite"])
    assert vars(args) == {
        "model": "m.tflite", "reference": None, "runtime": "auto", "threads": 1, "runs": 500,
        "warmup": 50, "pin_core": None, "memory_limit_mb": None, "constrained": False,
        "budget_ms": None, "budget_kb": None, "allow_constant_output": False, "label": None,
        "json": None, "force": False, "isolate": False, "seed": 0, "first_invoke_only": False,
    }  # fmt: skip
    args = bench._parser().parse_args(
        ["m.tflite", "--reference", "r.npz", "--runtime", "tflite-runtime", "--threads", "3",
         "--runs", "7", "--warmup", "2", "--pin-core", "1", "--memory-limit-mb", "512.5",
         "--constrained", "--budget-ms", "0.5", "--budget-kb", "20", "--allow-constant-output",
         "--label", "l/b", "--json", "o.json", "--force", "--isolate", "--seed", "9",
         "--first-invoke-only"]
    )  # fmt: skip
    assert vars(args) == {
        "model": "m.tflite", "reference": "r.npz", "runtime": "tflite-runtime", "threads": 3,
        "runs": 7, "warmup": 2, "pin_core": 1, "memory_limit_mb": 512.5, "constrained": True,
        "budget_ms": 0.5, "budget_kb": 20.0, "allow_constant_output": True, "label": "l/b",
        "json": "o.json", "force": True, "isolate": True, "seed": 9, "first_invoke_only": True,
    }  # fmt: skip
    for runtime in ("auto", "litert", "tflite-runtime", "tflite_runtime", "both"):
        assert bench._parser().parse_args(["m", "--runtime", runtime]).runtime == runtime


@pytest.mark.parametrize(
    "argv", [[], ["m", "--runtime", "ai-edge-litert"], ["m", "--threads", "1.5"],
             ["m", "--budget-ms", "x"], ["m", "--pin-core", "x"], ["m", "--seed", "x"],
             ["m", "--runs", "x"], ["m", "--warmup", "x"], ["m", "--budget-kb", "x"],
             ["m", "--memory-limit-mb", "x"]],
)  # fmt: skip
def test_argument_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2 and "usage: legc-edge" in capsys.readouterr().err


#: each option and the start of its help: what it does
HELP = {
    "model": ".tflite file",
    "--reference REFERENCE": "reference .npz from legc export (default: beside the model)",
    "--runtime {auto,litert,tflite-runtime,tflite_runtime,both}": "interpreter; both = LiteRT",
    "--pin-core PIN_CORE": "pin the process to this CPU core",
    "--memory-limit-mb MEMORY_LIMIT_MB": "cap the process address space (RLIMIT_AS)",
    "--constrained": "constrained profile: 1 thread, pinned to one core (--pin-core or the first",
    "--warmup WARMUP": "untimed invokes first",
    "--budget-ms BUDGET_MS": "fail (exit 4) when p50 latency exceeds this",
    "--budget-kb BUDGET_KB": "fail (exit 4) when the file exceeds this (KiB = 1024 B)",
    "--allow-constant-output": "do not fail (exit 6) when the outputs are the same for every",
    "--label LABEL": "a name for this model in reports (e.g. lenet/block-90)",
    "--json JSON": "write the result here",
    "--force": "overwrite --json if it exists",
    "--isolate": "load and invoke the model once in a child process first: a native crash",
    "--seed SEED": "seed of the input without a reference",
}


def test_help_says_what_each_option_does(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # one line per option
    with pytest.raises(SystemExit) as info:
        bench.main(["--help"])
    text = capsys.readouterr().out
    assert info.value.code == 0
    assert text.startswith("usage: legc-edge [-h] [--reference REFERENCE]")
    body = said(text)
    for option, start in HELP.items():
        assert f" {option} {start}" in body, option
    assert "--threads THREADS" in body and "--runs RUNS" in body
    assert "--first-invoke-only" not in body  # the --isolate child's option is hidden
    assert bench.__doc__.split("\n\n")[0].replace("\n", " ") in body
    assert body.endswith(said(bench.EXIT_CODES))
    bench._parser("legc bench").print_usage()
    assert capsys.readouterr().out.startswith("usage: legc bench ")


def test_main_ok_with_json(models, capsys):
    out = models / "r.json"
    code, stdout, stderr = run_main(capsys, models / "dense.tflite", *FAST, "--label", "tiny",
                                    "--json", out)  # fmt: skip
    assert code == 0 and stderr == ""
    r = json.loads(out.read_text())
    assert r["exit_code"] == 0 and r["label"] == "tiny" and r["constraints"] == {"threads": 1}
    assert "budget_ms" not in r and "budget_kb" not in r
    assert r["check"]["ok"] and r["latency"]["runs"] == 3
    nbytes = (DATA / "dense.tflite").stat().st_size
    assert stdout.startswith(f"{models / 'dense.tflite'}: {nbytes} bytes, litert {LITERT}, load ")
    assert f"p50 {r['latency']['p50_ms']:.4f} ms" in stdout
    assert f"peak RSS {r['peak_rss_bytes'] / 2**20:.1f} MiB" in stdout
    assert (
        f"outputs match the reference: max |error| {r['check']['max_abs_error']:.3g} <= 0.0001"
        in stdout
    )


def test_main_output_mismatch_exit_3(models, capsys):
    ref = reference()
    ref["keras_outputs"] = ref["keras_outputs"] + np.float32(0.25)
    write_ref(models / "dense.reference.npz", **ref)
    code, _, err = run_main(capsys, models / "dense.tflite", *FAST, "--budget-kb", "0.001",
                            "--json", models / "r.json")  # fmt: skip
    assert code == 3  # a wrong output outranks the budget
    assert (
        "legc-edge: OUTPUT MISMATCH (litert): max |error| 0.25 > atol 0.0001 on 6 reference" in err
    )
    # the runtime computes what LiteRT computed at export: the reference's Keras outputs moved
    assert "It differs by up to 0 from the same file as LiteRT ran it at export (which was " \
        "within 0.25 of Keras)." in err  # fmt: skip
    assert "This runtime computes the file as LiteRT did at export: the file itself differs" in err
    assert "OVER BUDGET: the model is 1.5 KiB > --budget-kb 0.001" in err
    r = json.loads((models / "r.json").read_text())
    assert r["exit_code"] == 3 and r["check"]["ok"] is False and r["budget_kb"] == 0.001


def test_main_collapsed_outputs_exit_3(models, capsys):
    ref = reference("flat")
    ref["keras_outputs"] = ref["keras_outputs"] + np.linspace(-0.02, 0.02, 18, dtype=np.float32
                                                              ).reshape(6, 3)  # fmt: skip
    ref["atol"] = np.float64(0.1)
    write_ref(models / "flat.reference.npz", **ref)
    code, _, err = run_main(capsys, models / "flat.tflite", *FAST)
    want_std = np.std(ref["keras_outputs"])
    assert code == 3
    assert (
        f"OUTPUT MISMATCH (litert): the outputs collapsed (std 0 vs the reference's {want_std:.3g})"
        in err
    )


def test_main_constant_output_exit_6_unless_allowed(models, capsys):
    code, _, err = run_main(capsys, models / "flat.tflite", *FAST, "--budget-ms", "1e-12")
    assert code == 6  # constant outranks the budget
    assert (
        "legc-edge: CONSTANT OUTPUT (litert): the outputs are the same for all 6 reference" in err
    )
    assert "inputs, so the model no longer depends on its input (a pruning mask" in err
    assert "Fix: prune less, or re-export a working model; pass --allow-constant-output if a" in err
    code, out, err = run_main(capsys, models / "flat.tflite", *FAST, "--allow-constant-output")
    assert code == 0 and "outputs match the reference" in out and "CONSTANT" not in err


def test_main_budgets_exit_4(models, capsys):
    size_kib = (models / "dense.tflite").stat().st_size / 1024
    code, _, err = run_main(capsys, models / "dense.tflite", *FAST, "--budget-ms", "1e-12")
    assert code == 4 and "legc-edge: OVER BUDGET: p50 " in err and "ms > --budget-ms 1e-12" in err
    code, _, err = run_main(capsys, models / "dense.tflite", *FAST, "--budget-ms", "1e6",
                            "--budget-kb", size_kib)  # fmt: skip
    assert code == 0 and err == ""  # exactly the budget is within it
    code, _, err = run_main(capsys, models / "dense.tflite", *FAST, "--budget-kb", size_kib - 0.01,
                            "--json", models / "r.json")  # fmt: skip
    assert code == 4
    assert f"legc-edge: OVER BUDGET: the model is {size_kib:.1f} KiB > --budget-kb" in err
    r = json.loads((models / "r.json").read_text())
    assert r["budget_kb"] == size_kib - 0.01 and "budget_ms" not in r and r["exit_code"] == 4


def report_args(**kw):
    return argparse.Namespace(**({"budget_ms": None, "budget_kb": None,
                                  "allow_constant_output": False} | kw))  # fmt: skip


def fake_result(p50=0.5, nbytes=2048, check=None, version="9.9"):
    lat = {"first_invoke_ms": 1.0, "p50_ms": p50, "p90_ms": 0.6, "p99_ms": 0.7,
           "throughput_per_s": 2000.0}  # fmt: skip
    return {"model": "m.tflite", "model_bytes": nbytes, "runtime": "litert",
            "runtime_version": version, "load_ms": 3.0, "latency": lat, "notes": ["n1", "n2"],
            "peak_rss_bytes": 3 * 2**20, "check": check}  # fmt: skip


def test_report_budgets_at_the_boundary(capsys):
    r = fake_result()
    assert bench._report(r, report_args(budget_ms=0.5, budget_kb=2.0)) == 0
    assert (r["budget_ms"], r["budget_kb"], r["exit_code"]) == (0.5, 2.0, 0)
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "m.tflite: 2048 bytes, litert 9.9, load 3.0 ms, first invoke 1.000 ms, p50 0.5000 ms  "
        "p90 0.6000 ms  p99 0.7000 ms, 2000/s, peak RSS 3.0 MiB",
        "note: n1",
        "note: n2",
    ]
    assert said(out.err) == ("warning: no reference outputs: outputs were NOT checked (pass "
                             "--reference)")  # fmt: skip
    r = fake_result(p50=0.50001, nbytes=2049)
    assert bench._report(r, report_args(budget_ms=0.5)) == 4
    assert said(capsys.readouterr().err).endswith(
        "legc-edge: OVER BUDGET: p50 0.5000 ms > --budget-ms 0.5"
    )
    assert bench._report(r, report_args(budget_kb=2.0)) == 4
    assert "the model is 2.0 KiB > --budget-kb 2.0" in capsys.readouterr().err
    bench._report(fake_result(version=None), report_args())
    assert ", litert , load 3.0 ms" in capsys.readouterr().out


def test_report_of_each_check(capsys):
    base = {"ok": True, "collapsed": False, "constant": False, "max_abs_error": 0.00123,
            "atol": 0.01, "n_reference": 4, "output_std": 0.001, "reference_std": 0.5}  # fmt: skip
    assert bench._report(fake_result(check=base), report_args()) == 0
    assert "outputs match the reference: max |error| 0.00123 <= 0.01" in capsys.readouterr().out
    bad = base | {"ok": False, "max_abs_error": 0.0123456789}
    assert bench._report(fake_result(check=bad), report_args(budget_ms=0.1)) == 3
    err = said(capsys.readouterr().err)
    assert (
        "OUTPUT MISMATCH (litert): max |error| 0.0123457 > atol 0.01 on 4 reference inputs." in err
    )
    assert "OVER BUDGET: p50" in err  # reported, but the mismatch decides the code
    collapsed = base | {"ok": False, "collapsed": True}
    assert bench._report(fake_result(check=collapsed), report_args()) == 3
    assert (
        "the outputs collapsed (std 0.001 vs the reference's 0.5) on 4" in capsys.readouterr().err
    )
    constant = base | {"constant": True}
    assert bench._report(fake_result(check=constant), report_args()) == 6
    assert bench._report(fake_result(check=constant | {"ok": False}), report_args()) == 3
    assert bench._report(fake_result(check=constant), report_args(allow_constant_output=True)) == 0
    r = fake_result(check={k: v for k, v in constant.items() if k != "constant"} | {"ok": True})
    assert bench._report(r, report_args()) == 0  # an older check without the field


def test_main_without_a_reference_warns(models, capsys):
    (models / "int8io.reference.npz").unlink()
    code, out, err = run_main(capsys, models / "int8io.tflite", *FAST, "--json", models / "r.json")
    assert code == 0 and "outputs were NOT checked (pass --reference)" in err
    assert json.loads((models / "r.json").read_text())["check"] is None


def test_main_refuses_to_overwrite_json(models, capsys):
    out = models / "r.json"
    out.write_text("keep")
    code, _, err = run_main(capsys, models / "dense.tflite", *FAST, "--json", out)
    assert code == 2 and out.read_text() == "keep"
    assert (
        err == f"legc-edge: error: {out} exists. Fix: choose another --json path or pass --force."
    )
    code, _, _ = run_main(capsys, models / "dense.tflite", *FAST, "--json", out, "--force")
    assert code == 0 and json.loads(out.read_text())["exit_code"] == 0


def test_main_errors_exit_2(models, capsys, only_litert):
    code, _, err = run_main(capsys, models / "none.tflite", *FAST)
    assert code == 2 and err.startswith("legc-edge: error: ") and "does not exist" in err
    code, _, err = run_main(capsys, models / "dense.tflite", "--runtime", "both", *FAST)
    assert code == 2 and "needs tflite_runtime, which is not installed" in err
    code, _, err = run_main(capsys, models / "noinput.tflite", *FAST, "--json", models / "r.json")
    assert code == 2 and "cannot run this model" in err and not (models / "r.json").exists()


def test_main_memory_limit_exit_5(models, capsys, address_limit):
    code, _, err = run_main(capsys, models / "dense.tflite", *FAST, "--memory-limit-mb", "1")
    assert code == 5 and err.startswith("legc-edge: MEMORY LIMIT: --memory-limit-mb 1 is below")
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY
    limit = bench._address_space_mb() + 24
    code, _, err = run_main(capsys, models / "tile.tflite", *FAST, "--memory-limit-mb", limit)
    assert code == 5 and "legc-edge: MEMORY LIMIT: the litert interpreter ran out of memory" in err


def test_main_native_crash_exit_7(models, capsys):
    code, _, err = run_main(capsys, models / "forged.tflite", "--reference",
                            models / "sparse.reference.npz", "--isolate", *FAST,
                            "--json", models / "r.json")  # fmt: skip
    assert code == 7 and not (models / "r.json").exists()
    assert err.startswith("legc-edge: NATIVE CRASH: the litert interpreter crashed in native code")


def test_main_constrained_profile(models, capsys, keep_affinity):
    out = models / "r.json"
    code, _, _ = run_main(capsys, models / "dense.tflite", *FAST, "--constrained", "--threads",
                          "3", "--json", out)  # fmt: skip
    r = json.loads(out.read_text())
    assert code == 0 and r["threads"] == 1
    assert r["constraints"] == {"threads": 1, "pinned_core": min(keep_affinity)}
    assert os.sched_getaffinity(0) == {min(keep_affinity)}
    os.sched_setaffinity(0, keep_affinity)
    code, _, _ = run_main(capsys, models / "dense.tflite", *FAST, "--constrained", "--pin-core",
                          max(keep_affinity), "--json", out, "--force")  # fmt: skip
    assert json.loads(out.read_text())["constraints"]["pinned_core"] == max(keep_affinity)
    os.sched_setaffinity(0, keep_affinity)
    code, _, _ = run_main(capsys, models / "dense.tflite", *FAST, "--threads", "3", "--json", out,
                          "--force")  # fmt: skip
    r = json.loads(out.read_text())
    assert r["threads"] == 3 and r["constraints"] == {"threads": 3}
    assert os.sched_getaffinity(0) == keep_affinity


def test_main_with_both_runtimes(models, capsys, both_runtimes):
    out = models / "r.json"
    code, stdout, _ = run_main(capsys, models / "dense.tflite", "--runtime", "both", *FAST,
                               "--json", out)  # fmt: skip
    r = json.loads(out.read_text())
    assert code == 0 and r["exit_code"] == 0
    assert set(r) == {"model", "model_bytes", "runtimes", "tensorflow_imported", "exit_code"}
    assert r["model"] == str(models / "dense.tflite") and r["model_bytes"] == 1492
    assert [x["runtime"] for x in r["runtimes"]] == ["litert", "tflite_runtime"]
    assert all(x["exit_code"] == 0 and x["constraints"] == {"threads": 1} for x in r["runtimes"])
    assert r["tensorflow_imported"] is ("tensorflow" in sys.modules)
    assert stdout.count("outputs match the reference") == 2
    code, _, _ = run_main(capsys, models / "flat.tflite", "--runtime", "both", *FAST)
    assert code == 6


def test_write_json_into_a_file_or_onto_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    msg = edge_error(bench._write_json, tmp_path / "file" / "r.json", {}, False)
    assert msg == (f"cannot write {tmp_path / 'file' / 'r.json'}: File exists. Fix: pass a --json "
                   "path in a folder you can write to.")  # fmt: skip
    (tmp_path / "d.json").mkdir()
    msg = edge_error(bench._write_json, tmp_path / "d.json", {}, True)
    assert msg.startswith(f"cannot write {tmp_path / 'd.json'}: Is a directory. Fix: pass")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "file"]  # no temporary left


def test_main_json_write_error_exit_2(models, capsys):
    (models / "file").write_text("x")
    code, _, err = run_main(
        capsys, models / "dense.tflite", *FAST, "--json", models / "file" / "r.json"
    )
    assert code == 2 and err.startswith("legc-edge: error: cannot write ")


def test_main_memory_error_reading_the_model_exit_5(models, capsys, address_limit):
    big = models / "big.tflite"
    with open(big, "wb") as f:  # 256 MiB, sparse on disk: read whole under a 24 MB margin
        f.write(b"xxxxTFL3")
        f.truncate(256 * 2**20)
    limit = bench._address_space_mb() + 24
    code, _, err = run_main(capsys, big, *FAST, "--memory-limit-mb", limit)
    assert code == 5
    assert err.startswith("legc-edge: MEMORY LIMIT: the benchmark ran out of memory trying to "
                          "read or run the model under the memory limit")  # fmt: skip


def test_one_line_strips_only_full_stops():
    assert bench._one_line(ValueError("shape X")) == "shape X"
    assert bench._one_line(ValueError("tensor XX.")) == "tensor XX"


def test_first_invoke_only_reads_the_reference_it_is_given(models, capsys):
    args = [models / "dense.tflite", "--first-invoke-only"]
    assert bench.main([str(a) for a in [*args, "--reference", models / "none.npz"]]) == 2
    (models / "bad.npz").write_bytes(b"PK\x03\x04junk")
    assert bench.main([str(a) for a in [*args, "--reference", models / "bad.npz"]]) == 2


def test_memory_limit_equal_to_the_mapped_size_is_refused(monkeypatch, address_limit):
    # What the process maps, pinned to a known value above its real size (so no limit can hurt)
    mapped = vm("VmSize") / 1024 + 10000.0
    monkeypatch.setattr(bench, "_address_space_mb", lambda: mapped)
    with pytest.raises(bench.MemoryLimitError):
        bench.apply_constraints(memory_limit_mb=mapped)  # no room at all: refused
    assert bench.apply_constraints(memory_limit_mb=mapped + 1)["address_space_before_mb"] == mapped


def test_a_model_file_over_the_memory_limit(tmp_path, address_limit):
    """Past the limit, LiteRT's mmap of a large model file fails with a ValueError naming mmap
    and allocation: the limit (exit 5), not a damaged file."""
    padded = tmp_path / "padded.tflite"  # dense.tflite padded to 256 MiB (sparse on disk)
    shutil.copy(DATA / "dense.tflite", padded)
    with open(padded, "r+b") as f:
        f.truncate(256 * 2**20)
    assert bench.load_interpreter(padded)[1] == "litert"  # a valid model without a limit
    address_limit(bench._address_space_mb() + 24)
    with pytest.raises(bench.MemoryLimitError) as info:
        bench.load_interpreter(padded)
    assert str(info.value).startswith(
        "the litert interpreter ran out of memory trying to load the model under the memory limit ("
    )


def test_running_out_of_memory_while_running_is_exit_5(models, address_limit):
    """tile.tflite's 64 MiB arena fits 100 MB of headroom; the copy of its output does not."""
    write_ref(models / "tile.reference.npz", inputs=np.ones((2, 4), np.float32),
              keras_outputs=np.zeros((2, 1), np.float32), atol=np.float64(0.1))  # fmt: skip
    address_limit(bench._address_space_mb() + 100)
    with pytest.raises(bench.MemoryLimitError) as info:
        bench.benchmark(models / "tile.tflite", runs=1, warmup=0)
    assert str(info.value).startswith(
        "the litert interpreter ran out of memory trying to run the model under the memory limit"
    )


def test_npz_stored_members_are_not_held_to_the_inflate_ratio(tmp_path):
    """A stored (uncompressed) member cannot be a zip bomb: its claimed size is checked against
    the header only, and the arrays load."""
    data = npz_bytes(tmp_path, {"inputs": np.ones((2, 4)), "keras_outputs": np.ones((2, 3)),
                                "atol": np.float64(0.1)}, compressed=False)  # fmt: skip
    at = data.rindex(b"PK\x01\x02")  # the last member's central entry: atol.npy
    size = int.from_bytes(data[at + 20 : at + 24], "little")
    (tmp_path / "r.npz").write_bytes(patch_central_sizes(data, None, 1101 * size))
    ref = bench.load_reference(tmp_path / "r.npz")
    assert float(ref["atol"]) == 0.1 and ref["inputs"].shape == (2, 4)


def test_npz_headers_do_not_overflow_on_a_huge_shape(tmp_path):
    data = npz_bytes(tmp_path, {"x": np.arange(10000.0)}, compressed=False)
    old = data[data.index(b"{'descr'") : data.index(b"\n", data.index(b"{'descr'"))]
    new = b"{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"
    forged = data.replace(old, new.ljust(len(old)))  # 2^64 values: int64 would wrap to 0
    (tmp_path / "f.npz").write_bytes(forged)
    with zipfile.ZipFile(tmp_path / "f.npz") as archive, pytest.raises(ValueError) as err:
        bench.check_npz_headers(archive)
    assert f"({2**67} bytes) but holds 80000 bytes" in str(err.value)


def test_npz_member_that_is_only_a_header(tmp_path):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.zeros(0))  # 128 bytes: the header, no data
    npy = buf.getvalue().replace(b"(0,)", b"(1,)", 1)  # claims one float64
    with zipfile.ZipFile(tmp_path / "h.npz", "w") as archive:
        archive.writestr("x.npy", npy)  # (with the CRC of the forged bytes)
    with zipfile.ZipFile(tmp_path / "h.npz") as archive, pytest.raises(ValueError) as err:
        bench.check_npz_headers(archive)
    assert str(err.value) == ("member 'x.npy' claims shape (1,) of float64 (8 bytes) but holds 0 "
                              "bytes: truncated or forged header")  # fmt: skip


class _Mkdir:
    """Unpickling this makes a folder: the proof that a file ran code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_a_reference_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "ran"
    np.savez(tmp_path / "evil.npz", inputs=np.array([_Mkdir(str(marker))], dtype=object),
             keras_outputs=np.zeros((1, 1)), atol=np.float64(0.1))  # fmt: skip
    msg = edge_error(bench.load_reference, tmp_path / "evil.npz")
    assert "is not a readable reference file" in msg and not marker.exists()


def test_parser_names_and_description():
    assert bench._parser().prog == "legc-edge" and bench._parser("legc bench").prog == "legc bench"
    help_text = said(bench._parser().format_help())
    assert "Runs the model at batch 1" not in help_text  # the first paragraph only
    assert ("a native crash of the interpreter (segfault, abort) is reported with its signal and "
            "exit 7 --seed SEED") in help_text  # fmt: skip


def test_benchmark_defaults(models):
    r = bench.benchmark(models / "dense.tflite")
    assert r["threads"] == 1 and (r["latency"]["runs"], r["latency"]["warmup"]) == (500, 50)
    msg = edge_error(bench.benchmark, models / "dense.tflite", threads=-1, runs=1, warmup=0)
    assert "cannot load this model: num_threads should >= 1" in msg


def test_benchmark_times_the_load(models, monkeypatch):
    clock = scripted_clock([2000, 4000], seconds=[50.0, 50.0 + 2**-8, 60.0, 60.0 + 2**-9,
                                                   60.0 + 2**-7])  # fmt: skip
    monkeypatch.setattr(bench, "time", clock)
    r = bench.benchmark(models / "dense.tflite", runs=2, warmup=1)
    assert r["load_ms"] == pytest.approx(1000 * 2**-8)
    assert r["latency"]["first_invoke_ms"] == pytest.approx(1000 * 2**-9)
    assert r["latency"]["p50_ms"] == pytest.approx(0.003)


def test_main_passes_the_reference_and_warmup(models, capsys):
    ref = reference()
    ref["keras_outputs"] = ref["keras_outputs"] + np.float32(1)
    write_ref(models / "other.npz", **ref)
    out = models / "r.json"
    code, _, _ = run_main(capsys, models / "dense.tflite", "--reference", models / "other.npz",
                          "--runs", "3", "--warmup", "2", "--json", out)  # fmt: skip
    r = json.loads(out.read_text())
    assert code == 3 and r["reference"] == str(models / "other.npz")
    assert (r["latency"]["runs"], r["latency"]["warmup"]) == (3, 2)


def test_isolated_first_invoke_keeps_the_childs_output(capfd):
    bench.isolated_first_invoke(DATA / "dense.tflite", None, "litert", 1)
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""  # LiteRT's INFO line stays in the child's pipe


# -- review of the last survivors (issue 19): boundaries, empty outputs, what the child gets ------
def tile_interp(shape=None):
    """tile.tflite: its output's first row is its input row, bit for bit (tf.tile copies), so
    the runtime's outputs are exactly the values a test chooses; ``shape`` resizes its input."""
    interp = bench.load_interpreter(DATA / "tile.tflite")[0]
    if shape is not None:
        interp.resize_tensor_input(interp.get_input_details()[0]["index"], shape)
        interp.allocate_tensors()
    return interp


def test_check_outputs_of_an_empty_output():
    """A model whose output has no values (tile of a (1, 0) input): no error to measure, and no
    numpy reduction over nothing (which raises)."""
    import warnings

    empty = np.zeros((1, 0), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # np.std of nothing: nan, with a warning
        check = bench.check_outputs(
            tile_interp([1, 0]), {"inputs": empty, "keras_outputs": empty, "atol": np.float64(0)}
        )
    assert (check["max_abs_error"], check["relative_error"], check["n_reference"]) == (0.0, 0.0, 1)
    assert check["ok"] is True and check["collapsed"] is False and check["constant"] is False


def test_check_outputs_collapse_at_exactly_five_percent():
    """Outputs whose std is exactly 5% of the reference's are not collapsed (strictly below is)."""
    rows = np.repeat(np.float32([[0.0], [1.0]]), 4, axis=1)  # outputs 0 and 1: std 0.5 exactly
    want = np.repeat(np.float32([[-10.0], [10.0]]), 4, axis=1)  # std 10; 0.05 * 10 == 0.5
    check = bench.check_outputs(
        tile_interp(), {"inputs": rows, "keras_outputs": want, "atol": np.float64(100)}
    )
    assert (check["output_std"], check["reference_std"]) == (0.5, 10.0)
    assert check["collapsed"] is False and check["ok"] is True
    assert check["constant"] is False  # a spread of 1 in each output, far above 1e-6 * 10
    assert check["max_abs_error"] == 10.0 and check["relative_error"] == 1.0  # |0-(-10)| / 10


def test_check_outputs_two_rows_are_enough():
    """Two reference rows tell a collapsed, a constant and a varying model apart."""
    ref = reference()
    two = {"inputs": ref["inputs"][:2], "atol": np.float64(1e9)}
    got = bench.run_model(dense_interp(), two["inputs"])
    mean = got.mean()
    check = bench.check_outputs(dense_interp(), dict(two, keras_outputs=mean + 21 * (got - mean)))
    assert check["collapsed"] is True and check["ok"] is False and check["constant"] is False
    flat = reference("flat")
    check = bench.check_outputs(
        bench.load_interpreter(DATA / "flat.tflite")[0],
        dict(two, inputs=flat["inputs"][:2], keras_outputs=flat["keras_outputs"][:2]),
    )
    assert check["constant"] is True  # two distinct inputs, the same outputs (all 0.5)


def test_check_outputs_constant_at_exactly_the_tolerance():
    """Constant when the spread is at most 1e-6 times the largest |Keras output| (here 976.5625,
    so the bound is exactly 2^-10); a spread of 2^-10 is constant, the next float above is not."""
    want = np.zeros((2, 4), np.float32)
    want[0, 1] = 976.5625  # 15625 / 16; 1e-6 * 976.5625 rounds to 2^-10 exactly
    assert 1e-6 * 976.5625 == 2**-10
    for step, constant in ((2**-10, True), (np.nextafter(np.float32(2**-10), 1), False)):
        rows = np.zeros((2, 4), np.float32)
        rows[1, 2] = step  # the outputs copy the inputs: one output spreads by `step`
        ref = {"inputs": rows, "keras_outputs": want, "atol": np.float64(1e4)}
        assert bench.check_outputs(tile_interp(), ref)["constant"] is constant


def test_check_outputs_constant_is_per_output_across_rows():
    """The spread is each output's range across the rows, not the range of all values: inputs
    that quantize to the same int8 tensor give the same three (different) outputs: constant."""
    interp = bench.load_interpreter(DATA / "int8io.tflite")[0]
    scale = interp.get_input_details()[0]["quantization"][0]  # ~0.025
    ref = reference("int8io")
    rows = np.repeat(ref["inputs"][:1], 2, axis=0)
    rows[1, 0] += scale / 100  # distinct, but the same after rounding to int8
    got = bench.run_model(interp, rows)
    assert np.ptp(got[0]) > 0.1  # the three outputs differ from one another
    check = bench.check_outputs(interp, dict(ref, inputs=rows, keras_outputs=got))
    assert check["constant"] is True and check["max_abs_error"] == 0.0


def test_time_model_defaults_are_the_benchmarks():
    interp = Counting(dense_interp())
    lat = bench.time_model(interp, reference()["inputs"][0])
    assert (lat["runs"], lat["warmup"]) == (500, 50) and interp.invokes == 1 + 49 + 500


def timed_inputs(monkeypatch) -> list:
    """The input tensor each time_model call of ``benchmark`` ran on, read from the interpreter."""
    seen, real = [], bench.time_model

    def spy(interp, sample, runs, warmup):
        lat = real(interp, sample, runs, warmup)
        seen.append(interp.get_tensor(interp.get_input_details()[0]["index"])[0].copy())
        return lat

    monkeypatch.setattr(bench, "time_model", spy)
    return seen


def test_benchmark_times_the_first_reference_row_or_a_seeded_normal(models, monkeypatch):
    seen = timed_inputs(monkeypatch)
    bench.benchmark(models / "dense.tflite", runs=1, warmup=0)
    np.testing.assert_array_equal(seen[-1], reference()["inputs"][0])
    (models / "dense.reference.npz").unlink()
    for kwargs, seed in (({}, 0), ({"seed": 5}, 5)):  # the default seed is 0
        bench.benchmark(models / "dense.tflite", runs=1, warmup=0, **kwargs)
        normal = np.random.default_rng(seed).normal(size=4).astype(np.float32)
        np.testing.assert_array_equal(seen[-1], normal)


def test_benchmark_hands_the_isolated_child_its_reference_threads_and_seed(models, monkeypatch):
    """The --isolate child must repeat the parent's first invocation: same model, reference
    (also the one found beside the model), runtime, threads and seed."""
    children, real = [], subprocess.run

    def spy(cmd, *args, **kwargs):
        if "--first-invoke-only" in cmd:
            children.append(bench._parser().parse_args(cmd[2:]))
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", spy)
    for reference_arg in (models / "dense.reference.npz", None):
        bench.benchmark(models / "dense.tflite", reference_arg, runtime="ai-edge-litert",
                        threads=2, runs=1, warmup=0, seed=7, isolate=True)  # fmt: skip
        child = children.pop()
        assert (child.model, child.reference) == (
            str(models / "dense.tflite"), str(models / "dense.reference.npz"))  # fmt: skip
        assert (child.runtime, child.threads, child.seed) == ("litert", 2, 7)
    # threads None (the interpreter's default) is handed on as 0, which load_interpreter leaves unset;
    # the seed defaults to benchmark's, 0
    bench.isolated_first_invoke(DATA / "dense.tflite", None, "litert", None)
    child = children.pop()
    assert (child.reference, child.threads, child.seed) == (None, 0, 0)
    assert children == []


def test_runtime_version_is_the_distributions(monkeypatch, tmp_path):
    """The version installed (importlib.metadata), not the module's __version__, which is only
    the fallback; tflite-runtime here is a distribution record and a module of our own."""
    import ai_edge_litert

    monkeypatch.setattr(ai_edge_litert, "__version__", "0.0.module", raising=False)
    assert bench._runtime_version("litert") == LITERT != "0.0.module"
    dist = tmp_path / "tflite_runtime-2.14.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tflite-runtime\nVersion: 2.14.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = types.ModuleType("tflite_runtime")
    module.__version__ = "0.0.module"
    monkeypatch.setitem(sys.modules, "tflite_runtime", module)
    assert bench._runtime_version("tflite_runtime") == "2.14.0"


def test_peak_rss_without_proc_on_macos(monkeypatch):
    """ru_maxrss is bytes on macOS (KiB elsewhere): taken as it is there."""
    monkeypatch.setattr(bench, "open", lambda *a, **k: (_ for _ in ()).throw(OSError()),
                        raising=False)  # fmt: skip
    monkeypatch.setattr(bench.sys, "platform", "darwin")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    got, source = bench.peak_rss()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert before <= got <= after and source == "ru_maxrss (may include the parent's)"


def test_main_times_the_seeded_sample_without_a_reference(models, capsys, monkeypatch):
    seen = timed_inputs(monkeypatch)
    (models / "dense.reference.npz").unlink()
    code, _, _ = run_main(capsys, models / "dense.tflite", "--seed", "5", *FAST)
    assert code == 0
    np.testing.assert_array_equal(seen[-1], np.random.default_rng(5).normal(size=4).astype("f4"))
