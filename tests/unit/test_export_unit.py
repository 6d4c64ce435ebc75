"""The export module's logic that needs no converter (issue 19, "Tests that bite"): sidecar paths,
the collapsed-output test, input checks, the sparse-storage advice, the argument checks that run
before a model is loaded, and the atomic, never-overwriting write of the three files.

numpy only (no TensorFlow): the mutation run executes these for each mutant of
keras_legc/keras/export.py. The parts that need TensorFlow are in test_export_tf.py.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from keras_legc.errors import InvalidArgumentError, ModelStructureError, OutputExistsError
from keras_legc.keras import export as E


def says(message: str, *facts: str) -> None:
    """Assert that an error or warning states each key fact (not the whole sentence)."""
    for fact in facts:
        assert fact in message, f"{fact!r} missing from: {message}"


# -- sidecar_paths ----------------------------------------------------------------------------


def test_sidecar_paths_put_the_json_and_reference_beside_the_tflite(tmp_path):
    out = tmp_path / "sub" / "net.tflite"
    paths = E.sidecar_paths(str(out))  # a str is accepted as well as a Path
    assert paths == {
        "tflite": out,
        "json": tmp_path / "sub" / "net.json",
        "reference": tmp_path / "sub" / "net.reference.npz",
        "failed": tmp_path / "sub" / "net.failed.tflite",  # where a failed verification goes
    }


@pytest.mark.parametrize("name", ["net.tfl", "net.TFLITE", "net", "net.tflite.json"])
def test_sidecar_paths_refuse_another_suffix(name):
    with pytest.raises(InvalidArgumentError) as err:
        E.sidecar_paths(name)
    says(
        str(err.value),
        "must end in .tflite",
        f"got {name}",
        "Fix: name it e.g. model.tflite (the .json and .reference.npz are written beside it)",
    )


# -- constant_outputs -------------------------------------------------------------------------


def test_constant_outputs_true_only_when_every_row_is_the_same():
    row = np.array([0.25, -3.0, 7.5])
    assert E.constant_outputs(np.tile(row, (2, 1)))  # two rows are enough to tell
    assert E.constant_outputs(np.tile(row, (5, 1)))
    varied = np.tile(row, (5, 1))
    varied[3, 1] += 1e-3
    assert not E.constant_outputs(varied)


def test_constant_outputs_needs_two_rows():
    assert not E.constant_outputs(np.array([[0.1, 0.9]]))  # one row cannot show a dependence


def test_constant_outputs_compares_rows_not_columns():
    # every row is [0, 1]: constant per output, though the outputs differ from each other
    assert E.constant_outputs(np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]]))


def test_constant_outputs_of_higher_rank_outputs_compares_whole_rows():
    out = np.stack([np.arange(6.0).reshape(2, 3)] * 4)  # (4, 2, 3): four identical rows
    assert E.constant_outputs(out)
    out[2, 1, 2] += 0.5
    assert not E.constant_outputs(out)


def test_constant_outputs_tolerance_is_relative_to_the_largest_output_but_at_least_1():
    # outputs below 1: the absolute tolerance rtol * 1 = 1e-6 (difference exactly 1e-6 is constant)
    assert E.constant_outputs(np.array([[0.0], [1e-6]]))
    assert not E.constant_outputs(np.array([[0.0], [1.5e-6]]))
    # large outputs: rtol * 1000 = 1e-3 absolute
    assert E.constant_outputs(np.array([[1000.0], [1000.0 + 1e-4]]))
    assert not E.constant_outputs(np.array([[1000.0], [1000.0 + 2e-3]]))
    # the default rtol is 1e-6; a looser one is the caller's choice
    assert not E.constant_outputs(np.array([[0.5], [0.501]]))
    assert E.constant_outputs(np.array([[0.5], [0.501]]), rtol=1e-2)


def test_constant_outputs_of_integer_outputs_do_not_wrap():
    # a quantized model's int8 outputs at both extremes: far from constant (in int8 arithmetic
    # 127 - (-128) would wrap to -1)
    assert not E.constant_outputs(np.array([[-128], [127]], dtype=np.int8))


# -- _as_inputs and load_inputs ---------------------------------------------------------------


def test_as_inputs_returns_finite_float32_rows_of_the_model_input():
    rows = [[1, 2, 3, 4], [5, 6, 7, 8]]
    x = E._as_inputs(rows, (4,), "reference inputs")
    assert x.dtype == np.float32 and x.shape == (2, 4)
    np.testing.assert_array_equal(x, np.array(rows, dtype=np.float32))
    cube = np.ones((5, 2, 3))
    assert E._as_inputs(cube, (2, 3), "x").shape == (5, 2, 3)


@pytest.mark.parametrize(
    ("shape", "input_shape", "want"),
    [
        ((3, 5), (4,), "(n, 4)"),
        ((4,), (4,), "(n, 4)"),
        ((3, 4, 1), (4,), "(n, 4)"),
        ((2, 3, 2), (2, 3), "(n, 2, 3)"),
    ],
)
def test_as_inputs_refuses_rows_of_another_shape(shape, input_shape, want):
    got = str(shape)
    with pytest.raises(InvalidArgumentError) as err:
        E._as_inputs(np.zeros(shape), input_shape, "representative data")
    says(
        str(err.value),
        f"representative data must have shape {want} to match the model input",
        f"got {got}",
        "Fix: pass rows of this model's inputs",
    )


def test_as_inputs_refuses_no_rows():
    # a verification on no rows would compare nothing and say "OK"; calibration needs rows too
    with pytest.raises(InvalidArgumentError) as err:
        E._as_inputs(np.zeros((0, 4)), (4,), "reference inputs")
    says(str(err.value), "reference inputs have no rows", "Fix: pass at least one row of inputs.")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_as_inputs_refuses_non_finite_rows(bad):
    x = np.zeros((3, 4))
    x[1, 2] = bad
    with pytest.raises(InvalidArgumentError) as err:
        E._as_inputs(x, (4,), "reference inputs")
    says(str(err.value), "reference inputs contain NaN or inf", "Fix: pass finite inputs")


def test_load_inputs_reads_npy_and_npz(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", x=x)
    np.testing.assert_array_equal(E.load_inputs(tmp_path / "a.npy"), x)
    np.testing.assert_array_equal(E.load_inputs(str(tmp_path / "b.npz"), "reference inputs"), x)


def test_load_inputs_names_what_is_missing(tmp_path):
    with pytest.raises(InvalidArgumentError) as err:
        E.load_inputs(tmp_path / "none.npy")
    assert str(err.value).startswith(f"inputs file {tmp_path / 'none.npy'} does not exist")
    with pytest.raises(InvalidArgumentError) as err:
        E.load_inputs(tmp_path / "none.npy", "representative data")
    assert str(err.value).startswith("representative data file")


# -- _sparse_warnings -------------------------------------------------------------------------


def kernel(n_in: int, n_out: int, zero_fraction: float) -> np.ndarray:
    """A kernel with the first ``zero_fraction`` of its (flattened) weights 0, the rest 1."""
    k = np.ones(n_in * n_out)
    k[: round(zero_fraction * k.size)] = 0.0
    return k.reshape(n_in, n_out)


def test_sparse_warnings_below_storage_sparsity_say_only_that():
    kernels = {"a": kernel(16, 4, 0.3)}
    notes = E._sparse_warnings(True, 0.3, kernels, {"a": 0.0}, ["DENSIFY", "FULLY_CONNECTED"])
    assert len(notes) == 1  # the densify note is beside the point below 50%
    says(
        notes[0],
        "sparse storage was asked for but the kernels are only 30.0% zeros",
        "TFLite stores a tensor sparsely only from 50% zeros",
        "below that the file is as large as dense (int8 at 50% is larger)",
        "Fix: prune to a higher sparsity or export without sparse.",
    )


def test_sparse_warnings_name_the_unstructured_layers():
    kernels = {
        "exact_half": kernel(16, 4, 0.5),  # 50% zeros counts as stored sparsely
        "blocky": kernel(16, 4, 0.75),
        "at_threshold": kernel(16, 4, 0.75),
        "dense_ish": kernel(16, 4, 0.25),  # not stored sparsely: not named even if unstructured
    }
    structure = {"exact_half": 0.5, "blocky": 1.0, "at_threshold": 0.9, "dense_ish": 0.0}
    notes = E._sparse_warnings(True, 0.56, kernels, structure, ["FULLY_CONNECTED"])
    assert len(notes) == 1
    says(
        notes[0],
        "the sparsity is unstructured (zeros not in blocks of 1 output x 16 consecutive inputs: "
        "layers exact_half), so the converter adds a DENSIFY op",
        "the runtime expands the weights at load: the file is smaller but there is no speed-up",
        "Fix: prune with block=(1, 16) (Scores.mask / magnitude_mask / random_mask) for the sparse "
        "kernel.",
    )


def test_sparse_warnings_list_every_unstructured_layer():
    kernels = {"a": kernel(16, 4, 0.75), "b": kernel(16, 4, 0.75)}
    notes = E._sparse_warnings(True, 0.75, kernels, {"a": 0.0, "b": 0.2}, ["FULLY_CONNECTED"])
    says(notes[0], "consecutive inputs: layers a, b), so the converter")


def test_sparse_warnings_densify_in_the_ops_alone_is_enough():
    kernels = {"a": kernel(16, 4, 0.9)}
    notes = E._sparse_warnings(True, 0.9, kernels, {"a": 1.0}, ["DENSIFY", "FULLY_CONNECTED"])
    assert len(notes) == 1
    says(notes[0], "consecutive inputs), so the converter adds a DENSIFY op")  # no layer list
    assert "layers" not in notes[0]


@pytest.mark.parametrize(("sparsity", "text"), [(0.5, "50.0"), (0.625, "62.5")])
def test_sparse_warnings_block_sparse_below_the_speedup_level(sparsity, text):
    kernels = {"a": kernel(16, 4, sparsity)}
    notes = E._sparse_warnings(True, sparsity, kernels, {"a": 1.0}, ["FULLY_CONNECTED"])
    assert len(notes) == 1
    says(
        notes[0],
        f"block-sparse at {text}%: the sparse kernel is slower than dense below about 80% "
        "(measured 2.5x slower at 50%)",
        "Fix: prune to >= 80% for a speed-up, or export without sparse for speed.",
    )


@pytest.mark.parametrize("sparsity", [0.8, 0.95])
def test_sparse_warnings_none_for_block_sparse_from_the_speedup_level(sparsity):
    kernels = {"a": kernel(16, 4, sparsity)}
    assert E._sparse_warnings(True, sparsity, kernels, {"a": 1.0}, ["FULLY_CONNECTED"]) == []


def conv_kernel(zero_fraction: float) -> np.ndarray:
    """A (3, 3, 8, 16) convolution kernel with the first ``zero_fraction`` of its weights 0."""
    return kernel(3 * 3 * 8, 16, zero_fraction).reshape(3, 3, 8, 16)


def test_sparse_warnings_say_convolutions_get_no_speed_up_and_name_channel_pruning():
    # a sparse convolution is densified at load (the DENSIFY op is its): one note, about it,
    # with the measurement and the fix; a dense Dense head gets no note of its own
    kernels = {"conv": conv_kernel(0.8), "head": kernel(16, 4, 0.0)}
    structure = {"conv": 0.0, "head": 0.0}
    notes = E._sparse_warnings(True, 0.79, kernels, structure, ["DENSIFY", "CONV_2D"])
    assert len(notes) == 1
    says(
        notes[0],
        "convolution kernels stored sparse (layers conv) are expanded at load",
        "LiteRT has no sparse convolution kernel here (measured 2026-12-06 on x86",
        "0.99-1.01x the dense file's speed; docs/layers.md",
        "XNNPACK runs sparse 1x1 convolutions only on ARM builds, and only in float",
        "Fix: for speed on every runtime, int8 included, remove channels instead "
        "(keras_legc.prune_channels).",
    )


def test_sparse_warnings_for_convolutions_and_dense_kernels_together():
    # an unstructured Dense kernel beside the convolution: both notes; a Dense kernel in blocks
    # below 80%: the block note, at the Dense kernels' own sparsity (not the model's)
    kernels = {"conv": conv_kernel(0.9), "fc": kernel(16, 4, 0.75)}
    both = E._sparse_warnings(True, 0.9, kernels, {"conv": 0.0, "fc": 0.0}, ["DENSIFY"])
    assert [n.split(" ")[0] for n in both] == ["convolution", "the"]
    says(both[1], "consecutive inputs: layers fc), so the converter adds a DENSIFY op")
    blocks = {"conv": conv_kernel(0.9), "fc": kernel(16, 4, 0.625)}
    notes = E._sparse_warnings(True, 0.89, blocks, {"conv": 0.0, "fc": 1.0}, ["DENSIFY"])
    assert len(notes) == 2 and notes[1].startswith("block-sparse at 62.5%: the sparse kernel")
    # a convolution below the storage level is not stored sparse: no convolution note
    light = {"conv": conv_kernel(0.3), "fc": kernel(16, 4, 0.9)}
    assert E._sparse_warnings(True, 0.6, light, {"conv": 0.0, "fc": 1.0}, []) == []


# -- the argument checks before any model is loaded -------------------------------------------


def test_prepare_refuses_an_unknown_quantization_before_loading(tmp_path):
    with pytest.raises(InvalidArgumentError) as err:
        E.export_tflite(None, tmp_path / "m.tflite", quantization="int4")
    says(
        str(err.value),
        "quantization must be one of ('float', 'float16', 'dynamic', 'int8'), got 'int4'",
        "Fix: 'float' (exact), 'dynamic' (int8 weights, no data needed) or 'int8' (with "
        "representative_data)",
    )
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []


@pytest.mark.parametrize("n", [0, -1, 2.0, True])
def test_prepare_refuses_a_bad_n_reference(tmp_path, n):
    with pytest.raises(InvalidArgumentError, match="n_reference must be a positive integer"):
        E._prepare(None, tmp_path / "m.tflite", "float", None, None, n, False, 0)


@pytest.mark.parametrize("existing", ["m.tflite", "m.json", "m.reference.npz"])
def test_prepare_refuses_any_existing_output_before_loading(tmp_path, existing):
    (tmp_path / existing).write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="already exists"):
        # None is no model: the refusal comes first, so nothing is loaded or converted
        E._prepare(None, tmp_path / "m.tflite", "float", None, None, 16, False, 0)
    assert (tmp_path / existing).read_bytes() == b"keep"
    with pytest.raises(ModelStructureError, match="expected a Keras model"):
        E._prepare(None, tmp_path / "m.tflite", "float", None, None, 16, True, 0)


def test_prepare_checks_the_output_name(tmp_path):
    with pytest.raises(InvalidArgumentError, match="must end in .tflite"):
        E._prepare(None, tmp_path / "m.lite", "float", None, None, 16, False, 0)


def test_export_to_a_path_another_process_is_exporting_to_is_refused(tmp_path):
    out = tmp_path / "m.tflite"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputExistsError) as err:
            E.export_tflite(None, out)  # refused at start: no model is even looked at
        says(str(err.value), f"{out} is in use: process {holder.pid} (", "is exporting to it now")
    finally:
        holder.kill()
        holder.wait()


HOLD_LOCK = """
import sys, time
from keras_legc._io import TargetLock
lock = TargetLock(sys.argv[1], "exporting to").acquire()
print("held", flush=True)
time.sleep(60)
"""


# -- _write -----------------------------------------------------------------------------------


OK_REPORT = {"verification": {"ok": True}}


def prepared_and_check(out):
    rng = np.random.default_rng(3)
    inputs = rng.standard_normal((5, 4)).astype(np.float32)
    keras_out = rng.standard_normal((5, 2)).astype(np.float32)
    tflite_out = keras_out + np.float32(1e-3)
    prepared = E._Prepared(E.sidecar_paths(out), None, None, (4,), None, inputs, True)
    check = E._Check(keras_out, tflite_out, ["FULLY_CONNECTED"], 2.5, 2.5e-4)
    return prepared, check


@pytest.mark.parametrize(("ok", "tflite"), [(True, "m.tflite"), (False, "m.failed.tflite")])
def test_write_puts_each_of_the_three_files_in_place(tmp_path, ok, tflite):
    """A .tflite that failed verification is kept under a name that says so, never at OUT."""
    prepared, check = prepared_and_check(tmp_path / "m.tflite")
    report = {"verification": {"ok": ok}, "n": 3}
    E._write(prepared, b"TFL3-bytes", check, report, False)
    assert (tmp_path / tflite).read_bytes() == b"TFL3-bytes"
    assert json.loads((tmp_path / "m.json").read_text()) == report
    with np.load(tmp_path / "m.reference.npz") as ref:
        assert sorted(ref.files) == ["atol", "inputs", "keras_outputs", "tflite_outputs"]
        np.testing.assert_array_equal(ref["inputs"], prepared.reference_inputs)
        np.testing.assert_array_equal(ref["keras_outputs"], check.keras_out)
        np.testing.assert_array_equal(ref["tflite_outputs"], check.tflite_out)
        assert ref["atol"].dtype == np.float64 and float(ref["atol"]) == 2.5e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["m.json", "m.reference.npz", tflite]
    )  # no temp file left


@pytest.mark.parametrize("existing", ["m.tflite", "m.json", "m.reference.npz"])
def test_write_replaces_an_existing_file_only_when_asked(tmp_path, existing):
    prepared, check = prepared_and_check(tmp_path / "m.tflite")
    (tmp_path / existing).write_bytes(b"old")
    with pytest.raises(OutputExistsError):
        E._write(prepared, b"new", check, OK_REPORT, False)
    assert (tmp_path / existing).read_bytes() == b"old"
    E._write(prepared, b"new", check, OK_REPORT, True)
    assert (tmp_path / "m.tflite").read_bytes() == b"new"
    assert json.loads((tmp_path / "m.json").read_text()) == OK_REPORT
    with np.load(tmp_path / "m.reference.npz") as ref:
        np.testing.assert_array_equal(ref["inputs"], prepared.reference_inputs)
