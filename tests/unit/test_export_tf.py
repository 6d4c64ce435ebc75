"""Export with real TensorFlow, tf_keras, Keras 3 and LiteRT, on tiny Dense models (issue 19,
"Tests that bite"): what each quantization stores, that verification fails when the .tflite is
wrong, that int8 calibrates on the user's representative data, the report's numbers, the
collapsed-model refusal, the Keras 3 paths and the twin converter's subprocess side.

Every expected number comes from a numpy forward pass of the known weights or from LiteRT run
here directly, not from export's own output. Each conversion takes ~0.3 s.

These run under the mutation run too (tools/mutation.py runs tests/unit), which forks one child
per mutant from the process that ran the tests first. A TensorFlow session's inter-op threads do
not survive a fork, so a conversion in the child would wait for them forever (measured: a deadlock
in DirectSession::RunCallable); TF_NUM_INTEROP_THREADS=-1 runs session ops in the caller's thread,
which forks safely. It is set under mutmut only, before TensorFlow starts its first session.
"""

import json
import os

if "MUTANT_UNDER_TEST" in os.environ:  # mutmut's process (see the docstring)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "-1")

import sys
import warnings

import numpy as np
import pytest

from keras_legc import LegcWarning
from keras_legc._version import __version__
from keras_legc.errors import (
    CollapsedModelError,
    ExportError,
    InvalidArgumentError,
    ModelStructureError,
)
from keras_legc.keras import export as E

# (input, hidden, output) sizes of the tiny model: the hidden kernel has >= 1024 weights, the least
# the converter quantizes in "dynamic" mode
SIZES = (32, 40, 3)
D = SIZES[0]


def weights(seed=0, sizes=SIZES, scale=1.0):
    """Kernels and biases of a Dense stack, [(W, b), ...], float32."""
    rng = np.random.default_rng(seed)
    return [
        (
            (scale * rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32),
            (0.1 * rng.standard_normal(b)).astype(np.float32),
        )
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def forward(params, x):
    """The model's outputs in numpy: relu hidden layers, a linear last layer."""
    h = np.asarray(x, dtype=np.float64)
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = np.maximum(h, 0.0)
    return h


def tf_keras_model(params, names=None):
    from keras_legc.keras.flavour import keras

    k = keras()
    names = names or [f"d{i}" for i in range(len(params))]
    layers = [k.layers.Input(shape=(params[0][0].shape[0],))]
    for i, ((w, _), name) in enumerate(zip(params, names, strict=True)):
        act = "relu" if i < len(params) - 1 else None
        layers.append(k.layers.Dense(w.shape[1], activation=act, name=name))
    model = k.Sequential(layers)
    for layer, (w, b) in zip(model.layers, params, strict=True):
        layer.set_weights([w, b])
    return model


def keras3_model(params):
    from keras_legc.keras.saving import keras3

    k = keras3()
    layers = [k.Input((params[0][0].shape[0],))]
    for i, (w, _) in enumerate(params):
        act = "relu" if i < len(params) - 1 else None
        layers.append(k.layers.Dense(w.shape[1], activation=act, name=f"k{i}"))
    model = k.Sequential(layers)
    for layer, (w, b) in zip(model.layers, params, strict=True):
        layer.set_weights([w, b])
    return model


def litert(flatbuffer, x, resolver=None):
    """Outputs of ``flatbuffer`` on rows ``x`` (LiteRT directly, one row at a time; its default
    delegates unless another ``resolver``), its ops and the dtypes of its tensors."""
    from ai_edge_litert.interpreter import Interpreter

    options = {} if resolver is None else {"experimental_op_resolver_type": resolver}
    interp = Interpreter(model_content=bytes(flatbuffer), **options)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for row in np.asarray(x, dtype=np.float32):
        interp.set_tensor(inp["index"], row[None])
        interp.invoke()
        rows.append(interp.get_tensor(out["index"])[0])
    ops = {op["op_name"] for op in interp._get_ops_details()}
    dtypes = {np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    return np.array(rows), ops, dtypes, (np.dtype(inp["dtype"]).name, np.dtype(out["dtype"]).name)


def n_sparse_tensors(flatbuffer):
    """How many tensors ``flatbuffer`` stores in TFLite's sparse format."""
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_content=bytes(flatbuffer)).get_tensor_details()
    return sum(bool(t.get("sparsity_parameters")) for t in details)


def block_sparse_params():
    """64 -> 32 -> 3 with 29 of the 32 hidden units' kernel columns zero: 87% of all kernel
    weights, every zero in whole (1 output x 16 inputs) blocks."""
    params = weights(sizes=(64, 32, 3))
    w0 = params[0][0].copy()
    w0[:, 3:] = 0.0
    return [(w0, params[0][1]), params[1]]


@pytest.fixture(scope="module")
def params():
    return weights()


@pytest.fixture(scope="module")
def model(params):
    return tf_keras_model(params)


def rows(n, seed=1, loc=0.0, scale=1.0, d=SIZES[0]):
    return (loc + scale * np.random.default_rng(seed).standard_normal((n, d))).astype(np.float32)


def max_error(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# -- what each quantization converts to ----------------------------------------------------------


@pytest.mark.parametrize(
    ("quantization", "stored", "not_stored"),
    [
        ("float", {"float32"}, {"float16", "int8"}),
        ("float16", {"float16"}, {"int8"}),
        ("dynamic", {"int8"}, {"float16"}),
        ("int8", {"int8"}, {"float16"}),
    ],
)
def test_each_quantization_stores_its_weight_type_behind_a_float_interface(
    model, params, quantization, stored, not_stored
):
    x = rows(64)
    flatbuffer = E._convert(model, quantization, False, x)
    out, ops, dtypes, interface = litert(flatbuffer, x[:8])
    assert interface == ("float32", "float32")
    assert stored <= dtypes and not (not_stored & dtypes), dtypes
    # full int8 quantizes the activations too; dynamic keeps them float
    assert ("QUANTIZE" in ops) == (quantization == "int8"), ops
    want = forward(params, x[:8])
    scale = max(1.0, float(np.max(np.abs(want))))
    assert max_error(out, want) <= E.TOLERANCE[quantization] * scale


def test_sparse_export_of_a_block_sparse_model(tmp_path):
    wide = block_sparse_params()
    model = tf_keras_model(wide)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)  # >= 80% in blocks: nothing to warn of
        report = E.export_tflite(model, tmp_path / "m.tflite", sparse=True)
    sparse = (tmp_path / "m.tflite").read_bytes()
    dense = E._convert(model, "float", False, None)
    assert n_sparse_tensors(sparse) >= 1 and n_sparse_tensors(dense) == 0
    assert report["tflite_bytes"] == len(sparse) < 0.5 * len(dense)
    assert report["warnings"] == [] and report["densify"] is False
    x = rows(4, d=64)
    np.testing.assert_allclose(litert(sparse, x)[0], forward(wide, x), atol=1e-4)


def test_converter_settings_map_each_mode(params):
    import tensorflow as tf

    lite = tf.lite
    assert E._converter_settings("float", False, None) == {"optimizations": [], "target_spec": {}}
    assert E._converter_settings("float", True, None) == {
        "optimizations": [lite.Optimize.EXPERIMENTAL_SPARSITY],
        "target_spec": {},
    }
    assert E._converter_settings("dynamic", True, None) == {
        "optimizations": [lite.Optimize.DEFAULT, lite.Optimize.EXPERIMENTAL_SPARSITY],
        "target_spec": {},
    }
    assert E._converter_settings("float16", False, None) == {
        "optimizations": [lite.Optimize.DEFAULT],
        "target_spec": {"supported_types": [tf.float16]},
    }
    data = rows(600)
    s = E._converter_settings("int8", False, data)
    assert s["optimizations"] == [lite.Optimize.DEFAULT]
    assert s["target_spec"] == {"supported_ops": [lite.OpsSet.TFLITE_BUILTINS_INT8]}
    batches = list(s["representative_dataset"]())
    # the user's own rows, in order, one at a time, at most 500 of them
    assert len(batches) == 500
    assert all(len(b) == 1 and b[0].shape == (1, SIZES[0]) for b in batches)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), data[:500])
    few = list(E._converter_settings("int8", False, data[:7])["representative_dataset"]())
    assert len(few) == 7


def test_conversion_failure_is_an_export_error_naming_the_cause(model):
    # int8 without calibration rows: the converter's own error, wrapped with the fix
    with pytest.raises(ExportError) as err:
        E._convert(model, "int8", False, None)
    message = str(err.value)
    try:  # the representative-data generator slices None: Python's own words for that
        None[:500]
    except TypeError as exc:
        cause = str(exc)
    assert message.startswith(f"TFLite conversion failed (TypeError: {cause}). Fix: ")
    assert "\n" not in message  # only the first line of the converter's message
    assert message.endswith(
        "Fix: check that every layer has a TFLite builtin op (Dense/activations do)."
    )
    assert isinstance(err.value.__cause__, TypeError)


# -- _verify: the comparison that must be able to fail --------------------------------------


def test_verify_compares_keras_and_tflite_on_the_reference_rows(params):
    big = [(w * 8.0, b) for w, b in params]  # outputs well above 1: the tolerance scales
    model = tf_keras_model(big)
    x = rows(10)
    check = E._verify(model, E._convert(model, "float", False, None), x, "float16")
    want = forward(big, x)
    np.testing.assert_allclose(check.keras_out, want, rtol=1e-5, atol=1e-5)
    assert check.keras_out.dtype == np.float32 and check.tflite_out.shape == want.shape
    np.testing.assert_allclose(check.tflite_out, want, rtol=1e-5, atol=1e-4)
    assert "FULLY_CONNECTED" in check.ops
    assert check.error == max_error(check.tflite_out, check.keras_out) < 1e-3
    scale = float(np.max(np.abs(check.keras_out)))
    assert scale > 1.0 and check.scale == scale
    assert check.atol == pytest.approx(1e-2 * scale)  # float16's tolerance x the scale


def test_verify_reports_the_difference_of_a_wrong_tflite(params):
    model = tf_keras_model(params)
    other = weights(seed=7)
    wrong = E._convert(tf_keras_model(other), "float", False, None)
    x = rows(10)
    check = E._verify(model, wrong, x, "float")
    want = max_error(forward(other, x), forward(params, x))
    assert check.error == pytest.approx(want, rel=1e-4) and want > 0.1
    assert check.scale == 1.0 or check.scale == float(np.max(np.abs(check.keras_out)))
    assert check.atol == pytest.approx(1e-4 * check.scale)


def test_verify_scale_is_at_least_one(params):
    small = [(w * 0.01, b * 0.01) for w, b in params]  # outputs far below 1
    model = tf_keras_model(small)
    check = E._verify(model, E._convert(model, "float", False, None), rows(5), "dynamic")
    assert check.scale == 1.0 and check.atol == pytest.approx(5e-2)


def test_export_says_when_the_tflite_model_differs(tmp_path, params):
    """int8 calibrated on tiny rows, verified on large ones: the activations saturate. The
    report says so, a warning says so, and the files are still written for inspection."""
    model = tf_keras_model(params)
    calibration = rows(100, seed=2, scale=0.01)
    reference = rows(8, seed=3, scale=10.0)
    with pytest.warns(LegcWarning) as caught:
        report = E.export_tflite(
            model,
            tmp_path / "m.tflite",
            quantization="int8",
            representative_data=calibration,
            reference_inputs=reference,
        )
    v = report["verification"]
    # the failed file is not left where the user asked for it, but kept under a name saying so
    assert not (tmp_path / "m.tflite").exists() and report["tflite"] == "m.failed.tflite"
    tflite_out = litert((tmp_path / "m.failed.tflite").read_bytes(), reference)[0]
    keras_out = forward(params, reference)
    error = max_error(tflite_out, keras_out)
    mean_error = float(np.mean(np.abs(tflite_out - keras_out)))
    scale = max(1.0, float(np.max(np.abs(keras_out))))
    # the case is real: LiteRT's typical error is beyond int8's default, not just its largest
    assert mean_error > E.INT8_MEAN_TOLERANCE * scale and v["rule"] == "mean"
    assert v["ok"] is False and v["max_abs_error"] == pytest.approx(error, rel=1e-3)
    assert v["mean_abs_error"] == pytest.approx(mean_error, rel=1e-3)
    assert v["mean_atol"] == pytest.approx(E.INT8_MEAN_TOLERANCE * scale, rel=1e-5)
    assert v["atol"] == pytest.approx(0.1 * scale, rel=1e-5)
    kept = int(np.sum(np.argmax(tflite_out, 1) == np.argmax(keras_out, 1)))
    assert v["top1_agreement"] == pytest.approx(kept / 8) and v["tolerance_given"] is False
    messages = [str(w.message) for w in caught]
    assert any(
        m.startswith("the int8 TFLite model differs from the Keras model on the 8 reference ")
        and f"by {v['mean_abs_error']:.3g} on average (tolerance {v['mean_atol']:.3g}; " in m
        and f"{kept} of 8 keep their top output; " in m
        and f"largest difference {v['max_abs_error']:.3g}" in m
        and f"kept as {tmp_path / 'm.failed.tflite'}, not written to m.tflite" in m
        and "inputs the model will see" in m
        and "quantization 'float16' or 'float'" in m
        and "tolerance=... (CLI --tolerance)" in m
        for m in messages
    ), messages
    with np.load(tmp_path / "m.reference.npz") as ref:  # the device check applies the same rule
        assert float(ref["mean_atol"]) == pytest.approx(v["mean_atol"])
    assert (tmp_path / "m.json").exists() and (tmp_path / "m.reference.npz").exists()
    on_disk = json.loads((tmp_path / "m.json").read_text())
    assert on_disk["verification"]["failure"] in messages and on_disk["tflite"] == "m.failed.tflite"


def test_a_given_tolerance_decides_the_verification_and_the_device_check(tmp_path, params):
    """The saturating int8 case above passes with a tolerance just above its error and fails
    with one just below; the reference file carries the tolerance the device check applies."""
    model = tf_keras_model(params)
    calibration, reference = rows(100, seed=2, scale=0.01), rows(8, seed=3, scale=10.0)
    kwargs = {"quantization": "int8", "representative_data": calibration,
              "reference_inputs": reference}  # fmt: skip
    with pytest.warns(LegcWarning):
        first = E.export_tflite(model, tmp_path / "a.tflite", **kwargs)["verification"]
    ratio = first["max_abs_error"] / first["reference_scale"]
    above = E.export_tflite(model, tmp_path / "b.tflite", tolerance=ratio * 1.01, **kwargs)
    v = above["verification"]
    assert v["ok"] is True and v["tolerance_given"] is True and (tmp_path / "b.tflite").exists()
    assert v["atol"] == pytest.approx(ratio * 1.01 * v["reference_scale"], rel=1e-9)
    assert v["rule"] == "max" and "mean_atol" not in v  # a given tolerance: the max rule
    with np.load(tmp_path / "b.reference.npz") as ref:
        assert float(ref["atol"]) == pytest.approx(v["atol"]) and "mean_atol" not in ref
    with pytest.warns(LegcWarning, match="differs from the Keras model"):
        below = E.export_tflite(model, tmp_path / "c.tflite", tolerance=ratio * 0.99, **kwargs)
    assert below["verification"]["ok"] is False and not (tmp_path / "c.tflite").exists()


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), True, "0.1x", [0.1]])
def test_a_bad_tolerance_is_refused_before_anything_is_written(tmp_path, params, bad):
    with pytest.raises(InvalidArgumentError, match="tolerance must be a finite number > 0"):
        E.export_tflite(tf_keras_model(params), tmp_path / "m.tflite", tolerance=bad)
    assert list(tmp_path.iterdir()) == []


def test_top1_agreement_against_a_loop(params):
    rng = np.random.default_rng(5)
    for shape in [(7, 10), (3, 2), (4, 2, 3), (1, 5)]:
        a, b = rng.normal(size=shape), rng.normal(size=shape)
        b[0] = a[0]  # one row certain to agree
        flat_a, flat_b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        same = [list(ra).index(max(ra)) == list(rb).index(max(rb))
                for ra, rb in zip(flat_a, flat_b, strict=True)]  # fmt: skip
        assert E.top1_agreement(a, b) == pytest.approx(sum(same) / len(same))
    assert E.top1_agreement(np.ones((4, 1)), np.zeros((4, 1))) is None  # no top output


# -- inference mode, and what the reference file holds ----------------------------------------


def dropout_model(params):
    """``params``' Dense stack with Dropout(0.5) after each layer: in training mode its outputs
    are random, in inference mode they are ``forward(params, x)``."""
    from keras_legc.keras.flavour import keras

    k = keras()
    layers = [k.layers.Input((params[0][0].shape[0],))]
    for i, (w, _) in enumerate(params):
        act = "relu" if i < len(params) - 1 else None
        layers += [k.layers.Dense(w.shape[1], activation=act), k.layers.Dropout(0.5)]
    model = k.Sequential(layers)
    for layer, (w, b) in zip(model.layers[::2], params, strict=True):
        layer.set_weights([w, b])
    return model


@pytest.fixture
def training_phase():
    """tf_keras' global learning phase set to training (what an old script's
    ``backend.set_learning_phase(1)`` does): a model called without ``training=`` then runs its
    Dropout layers in training mode."""
    from keras_legc.keras.flavour import keras

    with keras().backend.learning_phase_scope(1):
        yield


@pytest.mark.filterwarnings("ignore:`tf.keras.backend.learning_phase_scope`")
def test_export_verifies_inference_outputs_whatever_the_learning_phase(
    tmp_path, params, training_phase
):
    model = dropout_model(params)
    x = rows(8, seed=9)
    want = forward(params, x)  # the Dense stack without Dropout
    assert max_error(model(x), want) > 0.1  # the case is real: a plain call drops units here
    report = E.export_tflite(model, tmp_path / "m.tflite", reference_inputs=x)
    again = E.export_tflite(model, tmp_path / "n.tflite", reference_inputs=x)
    v = report["verification"]
    assert v["ok"] is True and v["max_abs_error"] < 1e-4 and again["verification"] == v
    with np.load(tmp_path / "m.reference.npz") as ref:
        np.testing.assert_allclose(ref["keras_outputs"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:`tf.keras.backend.learning_phase_scope`")
def test_a_collapsed_model_with_dropout_is_refused_whatever_the_learning_phase(
    tmp_path, params, training_phase
):
    # last kernel 0: the inference outputs are its bias for every input; Dropout in training
    # mode would make them random, and a random output is not a constant one
    model = dropout_model([params[0], (0.0 * params[1][0], params[1][1])])
    with pytest.raises(CollapsedModelError, match="identical for all 16 reference inputs"):
        E.export_tflite(model, tmp_path / "m.tflite")


def test_the_reference_file_holds_float32_outputs_of_a_float64_model(tmp_path, params):
    """A model whose output is cast to float64 (TFLite converts the CAST): its Keras outputs are
    stored, and compared, as float32, the dtype of the TFLite interface and of tflite_outputs."""
    import tensorflow as tf

    from keras_legc.keras.flavour import keras

    k = keras()
    inp = h = k.layers.Input((D,))
    for layer in tf_keras_model(params).layers:
        h = layer(h)
    model = k.Model(inp, k.layers.Lambda(lambda t: tf.cast(t, tf.float64))(h))
    x = rows(6, seed=10)
    assert model(x).dtype == tf.float64  # the case is real
    report = E.export_tflite(model, tmp_path / "m.tflite", reference_inputs=x)
    assert report["verification"]["ok"] is True
    with np.load(tmp_path / "m.reference.npz") as ref:
        assert ref["keras_outputs"].dtype == ref["tflite_outputs"].dtype == np.float32
        np.testing.assert_allclose(ref["keras_outputs"], forward(params, x), rtol=1e-5, atol=1e-5)


# -- int8 calibration uses the user's rows -------------------------------------------------


def test_int8_calibrates_on_the_representative_data_and_holds_out_the_reference(tmp_path, params):
    """Inputs far from standard normal (mean 6, sd 3): calibrated on them, int8 is within its
    tolerance; calibrated on standard-normal rows instead (the anchor a careless converter would
    use), the same model fails it on the same rows."""
    model = tf_keras_model(params)
    data = rows(200, seed=4, loc=6.0, scale=3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)  # a passing export warns of nothing
        report = E.export_tflite(
            model, tmp_path / "m.tflite", quantization="int8", representative_data=data
        )
    v = report["verification"]
    held = data[-16:]  # the last n_reference rows, out of the calibration (200 > 2 x 16)
    with np.load(tmp_path / "m.reference.npz") as ref:
        np.testing.assert_array_equal(ref["inputs"], held)
    want = forward(params, held)
    scale = max(1.0, float(np.max(np.abs(want))))
    mine = max_error(litert((tmp_path / "m.tflite").read_bytes(), held)[0], want)
    assert v["ok"] is True and v["held_out"] is True and v["n_inputs"] == 16
    assert mine <= 0.1 * scale and v["max_abs_error"] == pytest.approx(mine, rel=1e-3, abs=1e-6)
    anchor = E._convert(model, "int8", False, rows(200, seed=4))
    assert max_error(litert(anchor, held)[0], want) > 0.1 * scale


def test_few_representative_rows_calibrate_and_verify_with_all_of_them(tmp_path, model):
    data = rows(20, seed=5)  # <= 2 x n_reference: nothing held out
    prepared = E._prepare(model, tmp_path / "m.tflite", "int8", data, None, 16, False, 0)
    np.testing.assert_array_equal(prepared.calibration, data)
    np.testing.assert_array_equal(prepared.reference_inputs, data[-16:])
    assert prepared.held_out is False
    data = rows(32, seed=5)  # exactly 2 x 16: still all of them calibrate
    prepared = E._prepare(model, tmp_path / "m.tflite", "int8", data, None, 16, False, 0)
    np.testing.assert_array_equal(prepared.calibration, data)
    assert prepared.held_out is False
    data = rows(33, seed=5)  # > 2 x 16: the last 16 are held out
    prepared = E._prepare(model, tmp_path / "m.tflite", "dynamic", data, None, 16, False, 0)
    np.testing.assert_array_equal(prepared.calibration, data[:-16])
    np.testing.assert_array_equal(prepared.reference_inputs, data[-16:])
    assert prepared.held_out is True


def test_prepare_without_data_draws_seeded_normal_reference_rows(tmp_path, model):
    prepared = E._prepare(model, tmp_path / "m.tflite", "float", None, None, 5, False, 11)
    want = np.random.default_rng(11).standard_normal((5, SIZES[0])).astype(np.float32)
    np.testing.assert_array_equal(prepared.reference_inputs, want)
    assert prepared.calibration is None and prepared.held_out is True
    assert prepared.input_shape == (SIZES[0],) and prepared.source is None
    assert prepared.paths == E.sidecar_paths(tmp_path / "m.tflite")


def test_prepare_takes_the_callers_reference_rows_and_files(tmp_path, model):
    data, reference = rows(50, seed=6), rows(9, seed=8)
    np.save(tmp_path / "data.npy", data)
    np.savez(tmp_path / "ref.npz", x=reference)
    prepared = E._prepare(
        model, tmp_path / "m.tflite", "int8", tmp_path / "data.npy", str(tmp_path / "ref.npz"),
        4, False, 0,
    )  # fmt: skip
    np.testing.assert_array_equal(prepared.calibration, data)  # all of it: the caller chose
    np.testing.assert_array_equal(prepared.reference_inputs, reference[:4])
    assert prepared.held_out is None  # unknown whether the caller's rows calibrated too


def test_prepare_checks_the_rows_against_the_model_input(tmp_path, model):
    with pytest.raises(
        InvalidArgumentError, match=rf"representative data must have shape \(n, {D}\)"
    ):
        E._prepare(model, tmp_path / "m.tflite", "int8", np.zeros((8, 5)), None, 4, False, 0)
    with pytest.raises(InvalidArgumentError, match=rf"reference inputs must have shape \(n, {D}\)"):
        E._prepare(model, tmp_path / "m.tflite", "float", None, np.zeros((8, 3)), 4, False, 0)
    with pytest.raises(InvalidArgumentError) as err:
        E._prepare(model, tmp_path / "m.tflite", "int8", None, None, 4, False, 0)
    message = str(err.value)
    assert message.startswith("full int8 quantization needs representative data")
    assert "Fix: pass representative_data (CLI: --representative inputs.npy) with a few" in message
    with pytest.raises(InvalidArgumentError, match="representative data file"):
        E._prepare(model, tmp_path / "m.tflite", "int8", tmp_path / "no.npy", None, 4, False, 0)
    with pytest.raises(InvalidArgumentError, match="reference inputs file"):
        E._prepare(model, tmp_path / "m.tflite", "float", None, tmp_path / "no.npy", 4, False, 0)


def test_export_from_a_saved_model_file_names_its_source(tmp_path, model, params):
    path = tmp_path / "net.keras"
    model.save(path)
    report = E.export_tflite(path, tmp_path / "m.tflite", n_reference=3, seed=2)
    assert report["source"] == str(path)
    with np.load(tmp_path / "m.reference.npz") as ref:
        inputs = np.random.default_rng(2).standard_normal((3, SIZES[0])).astype(np.float32)
        np.testing.assert_array_equal(ref["inputs"], inputs)
        np.testing.assert_allclose(ref["keras_outputs"], forward(params, inputs), atol=1e-5)
        np.testing.assert_allclose(ref["tflite_outputs"], forward(params, inputs), atol=1e-4)
        assert float(ref["atol"]) == report["verification"]["atol"]


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_export_from_a_file_compiled_with_an_unregistered_loss(tmp_path, params, suffix):
    """Export needs the model only: a file compiled with the user's own loss function, which
    this process cannot import, exports as the uncompiled model would."""
    import tensorflow as tf

    def my_loss(a, b):
        return tf.reduce_mean((a - b) ** 2)

    model = tf_keras_model(params)
    model.compile(optimizer="sgd", loss=my_loss)
    model.save(tmp_path / f"net{suffix}")
    report = E.export_tflite(tmp_path / f"net{suffix}", tmp_path / "m.tflite", n_reference=4)
    assert report["verification"]["ok"] is True
    with np.load(tmp_path / "m.reference.npz") as ref:
        np.testing.assert_allclose(ref["keras_outputs"], forward(params, ref["inputs"]), atol=1e-5)


def test_export_defaults_and_never_overwrites(tmp_path, model, params):
    report = E.export_tflite(model, tmp_path / "m.tflite")
    v = report["verification"]
    with np.load(tmp_path / "m.reference.npz") as ref:
        want = np.random.default_rng(0).standard_normal((16, SIZES[0])).astype(np.float32)
        np.testing.assert_array_equal(ref["inputs"], want)  # seed 0, n_reference 16
    assert report["quantization"] == "float" and report["sparse"] is False
    assert v["ok"] is True and v["n_inputs"] == 16 and v["held_out"] is True
    assert json.loads((tmp_path / "m.json").read_text()) == report  # the .json is the report
    before = (tmp_path / "m.tflite").read_bytes()
    with pytest.raises(FileExistsError):
        E.export_tflite(model, tmp_path / "m.tflite")
    assert (tmp_path / "m.tflite").read_bytes() == before
    again = E.export_tflite(model, tmp_path / "m.tflite", overwrite=True, quantization="dynamic")
    assert again["quantization"] == "dynamic"


def test_export_warns_of_what_sparse_storage_will_not_buy(tmp_path, model):
    with pytest.warns(LegcWarning) as caught:
        report = E.export_tflite(model, tmp_path / "m.tflite", sparse=True)
    assert report["sparse"] is True and len(report["warnings"]) == 1
    assert [str(w.message) for w in caught] == report["warnings"]
    assert report["warnings"][0].startswith("sparse storage was asked for but the kernels")


# -- the report -------------------------------------------------------------------------------


def report_model():
    """32 inputs -> 2 ('blocky': 16 zeros in one (1 output x 16 inputs) block) -> 3 ('scattered':
    one zero, in no all-zero block)."""
    params = weights(sizes=(32, 2, 3))
    w0, w1 = params[0][0].copy(), params[1][0].copy()
    w0[np.abs(w0) < 1e-9] = 0.1
    w1[np.abs(w1) < 1e-9] = 0.1
    w0[16:, 0] = 0.0
    w1[0, 1] = 0.0
    params = [(w0, params[0][1]), (w1, params[1][1])]
    return tf_keras_model(params, names=["blocky", "scattered"])


@pytest.mark.parametrize(("sparse", "ok"), [(0, True), (1, False)])
def test_report_counts_the_kernels_and_states_the_verification(tmp_path, sparse, ok):
    import tensorflow as tf

    model = report_model()
    prepared = E._Prepared(
        E.sidecar_paths(tmp_path / "r.tflite"), model, "net.keras", (32,), None,
        np.zeros((2, 32), np.float32), False,
    )  # fmt: skip
    keras_out = np.array([[1.0, -2.0], [0.5, 0.0]], np.float32)
    tflite_out = keras_out + np.array([[0.01, 0.0], [-0.02, 0.03]], np.float32)
    error = float(np.max(np.abs(tflite_out.astype(np.float64) - keras_out)))  # 0.03 in float32
    atol = error if ok else float(np.nextafter(error, 0))  # error <= atol, the boundary included
    check = E._Check(keras_out, tflite_out, ["FULLY_CONNECTED", "DENSIFY"], 2.0, atol)
    report = E._report(prepared, b"x" * 123, check, "float16", sparse)
    # 64 + 6 kernel weights, 16 + 1 of them zero
    assert report["kernel_weights"] == 70 and report["nonzero_kernel_weights"] == 53
    assert report["sparsity"] == pytest.approx(17 / 70)
    assert report["layer_sparsity"] == pytest.approx({"blocky": 16 / 64, "scattered": 1 / 6})
    assert report["layer_units"] == {"blocky": 2, "scattered": 3}
    assert report["block_structured_zeros"] == {"block": [1, 16], "blocky": 1.0, "scattered": 0.0}
    assert report["densify"] is True and report["ops"] == ["FULLY_CONNECTED", "DENSIFY"]
    assert report["tflite_bytes"] == 123 and report["tflite"] == "r.tflite"
    assert report["source"] == "net.keras" and report["input_shape"] == [32]
    assert report["quantization"] == "float16" and report["sparse"] is bool(sparse)
    assert report["keras_legc"] == __version__ and report["tensorflow"] == tf.__version__
    assert "keras3" not in report
    # sparse asked at 24% zeros: the one note says it will not pay
    assert len(report["warnings"]) == sparse
    assert all("only 24.3% zeros" in n for n in report["warnings"])
    assert report["verification"] == {
        "n_inputs": 2,
        "held_out": False,
        "rule": "max",
        "max_abs_error": error,
        "mean_abs_error": pytest.approx((0.01 + 0.0 + 0.02 + 0.03) / 4, rel=1e-6),
        "reference_scale": 2.0,
        "atol": atol,
        "tolerance": "max |tflite - keras| <= 0.01 x max(1, max |keras output|)",
        "tolerance_given": False,
        "top1_agreement": 1.0,  # both rows keep their first output on top
        "ok": ok,
    }


def test_report_of_a_model_without_kernel_weights(tmp_path):
    """A Dense layer fed a zero-width slice has a (0, 3) kernel: no weights, so none of them is
    zero and the sparsity is 0.0 (not a division by zero, nor 'fully sparse')."""
    from keras_legc.keras.flavour import keras

    k = keras()
    inp = k.layers.Input((4,))
    model = k.Model(inp, k.layers.Dense(3, name="d")(k.layers.Lambda(lambda t: t[:, :0])(inp)))
    prepared = E._Prepared(E.sidecar_paths(tmp_path / "r.tflite"), model, None, (4,), None,
                           np.zeros((2, 4), np.float32), True)  # fmt: skip
    out = np.zeros((2, 3), np.float32)
    check = E._Check(out, out, ["FULLY_CONNECTED"], 1.0, 1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no 0 / 0 for the empty layer either
        report = E._report(prepared, b"x", check, "float", False)
    assert report["kernel_weights"] == 0 and report["nonzero_kernel_weights"] == 0
    assert report["sparsity"] == 0.0 and report["layer_sparsity"] == {"d": 0.0}
    json.dumps(report, allow_nan=False)  # valid JSON: no NaN in the report


# -- the collapsed-model refusal ---------------------------------------------------------------


def collapsed(params, layer):
    """The model with every kernel weight of layer ``layer`` zero: its outputs are constant."""
    params = [(w * 0.0, b) if i == layer else (w, b) for i, (w, b) in enumerate(params)]
    return tf_keras_model(params, names=["hidden", "out"])


@pytest.mark.parametrize(("layer", "name"), [(0, "hidden"), (1, "out")])
def test_export_refuses_a_collapsed_model_before_writing(tmp_path, params, layer, name):
    with pytest.raises(CollapsedModelError) as err:
        E.export_tflite(collapsed(params, layer), tmp_path / "m.tflite")
    message = str(err.value)
    assert message.startswith(
        f"the model's outputs are identical for all 16 reference inputs (every kernel weight of "
        f"['{name}'] is 0): it no longer depends on its input"
    )
    assert "so it would export and verify 'OK' while being useless. Fix: prune less, or" in message
    assert (
        "(per_layer='lamp', Scores.mask's default, or per_layer=True); or pass "
        "allow_constant_output=True "
        "(CLI: --allow-constant-output) if a constant"
    ) in message
    assert message.endswith("if a constant model is what you want.")
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == []
    report = E.export_tflite(
        collapsed(params, layer), tmp_path / "m.tflite", allow_constant_output=True
    )
    assert report["verification"]["ok"] is True


def test_constant_outputs_without_an_empty_layer_are_refused_too(tmp_path, params):
    (w0, b0), second = params
    dead = [(w0, b0 - 100.0), second]  # every hidden relu is 0 for these inputs
    model = tf_keras_model(dead)
    prepared = E._Prepared(E.sidecar_paths(tmp_path / "m.tflite"), model, None, (D,), None,
                           rows(6), True)  # fmt: skip
    with pytest.raises(CollapsedModelError) as err:
        E._check_responds(prepared, False)
    assert str(err.value).startswith(
        "the model's outputs are identical for all 6 reference inputs: it no longer depends"
    )
    two = E._Prepared(prepared.paths, model, None, (D,), None, rows(2), True)
    with pytest.raises(CollapsedModelError, match="identical for all 2 reference inputs"):
        E._check_responds(two, False)  # two distinct rows are enough to tell


def test_check_responds_cannot_tell_from_identical_or_single_rows(tmp_path, params):
    model = collapsed(params, 1)
    paths = E.sidecar_paths(tmp_path / "m.tflite")
    same = np.tile(rows(1), (5, 1))
    for reference in (same, rows(1)):
        E._check_responds(E._Prepared(paths, model, None, (D,), None, reference, True), False)
    E._check_responds(E._Prepared(paths, model, None, (D,), None, rows(5), True), True)
    responsive = tf_keras_model(params)
    E._check_responds(E._Prepared(paths, responsive, None, (D,), None, rows(5), True), False)


# -- model structure ---------------------------------------------------------------------------


def test_input_shape_of_a_model(params):
    from keras_legc.keras.flavour import keras

    k = keras()
    assert E._input_shape(tf_keras_model(params)) == (D,)
    inp = k.Input((2, 3))
    cube = k.Model(inp, k.layers.Dense(2)(inp))
    shape = E._input_shape(cube)
    assert shape == (2, 3) and all(type(d) is int for d in shape)
    a, b = k.Input((3,)), k.Input((3,))
    two = k.Model([a, b], k.layers.Dense(2)(k.layers.Concatenate()([a, b])))
    with pytest.raises(ModelStructureError) as err:
        E._input_shape(two)
    assert str(err.value) == (
        "the model has 2 inputs; export supports single-input models. Fix: export a model with "
        "one input tensor."
    )
    seq = k.Input((None, 3))
    free = k.Model(seq, k.layers.Dense(2)(seq))
    with pytest.raises(ModelStructureError) as err:
        E._input_shape(free)
    assert str(err.value).endswith(
        "has unknown dimensions besides the batch. Fix: give the Input layer a fixed shape."
    )
    empty = k.Input((0,))
    with pytest.raises(ModelStructureError) as err:
        E._input_shape(k.Model(empty, k.layers.Dense(2)(empty)))
    assert str(err.value).startswith("the model input shape (None, 0) has a dimension of size 0")
    assert str(err.value).endswith("Fix: give the Input layer at least one value per dimension.")


@pytest.mark.parametrize("allow", [False, True])
def test_a_model_that_outputs_nothing_is_refused_before_conversion(tmp_path, allow):
    # an output sliced to zero width: no value to convert or verify (was a raw numpy ValueError)
    from keras_legc.keras.flavour import keras

    k = keras()
    inp = k.Input((4,))
    nothing = k.Model(inp, k.layers.Lambda(lambda t: t[:, :0])(k.layers.Dense(3)(inp)))
    with pytest.raises(ModelStructureError) as err:
        E.export_tflite(nothing, tmp_path / "m.tflite", allow_constant_output=allow)
    assert str(err.value) == (
        "the model output shape (None, 0) has a dimension of size 0: the model outputs nothing. "
        "Fix: end the model in a layer with at least one unit."
    )
    assert list(tmp_path.iterdir()) == []  # refused before anything is written
    E._check_output_shape(k.Model(inp, k.layers.Dense(3)(inp)))  # one unit or more: fine
    two = k.Model(inp, [k.layers.Dense(3)(inp), k.layers.Lambda(lambda t: t[:, :0])(inp)])
    with pytest.raises(ModelStructureError, match=r"output shape \(None, 0\)"):
        E._check_output_shape(two)  # every output is checked


def test_a_tf_mot_pruned_model_is_stripped_before_conversion(tmp_path, params):
    import keras_legc as kl

    model = tf_keras_model(params)
    mask = kl.magnitude_mask(model, 0.5)
    pruned = kl.prune(model, mask)
    plain = E._plain(pruned)
    assert [type(layer).__name__ for layer in plain.layers] == ["Dense", "Dense"]
    report = E.export_tflite(pruned, tmp_path / "m.tflite")
    assert report["nonzero_kernel_weights"] == mask.n_kept  # the masked weights are exact zeros
    assert report["kernel_weights"] == D * 40 + 40 * 3 and report["verification"]["ok"] is True


def test_not_a_keras_model_is_refused(tmp_path):
    with pytest.raises(ModelStructureError, match="expected a Keras model"):
        E._prepare(object(), tmp_path / "m.tflite", "float", None, None, 4, False, 0)


# -- Keras 3 (TensorFlow backend in this process) ----------------------------------------------


# The Keras 3 conversions (~1 s each) and the two twin-subprocess tests are in tests/conftest.py
# SLOW: the mutation run and `make test-slow` run them; `make test` has the Keras 3 export
# integration tests (tests/integration/test_keras3_export.py) already.


@pytest.fixture(scope="module")
def k3(params):
    from keras_legc.keras.saving import keras3_backend

    if keras3_backend() != "tensorflow":
        pytest.skip("Keras 3 runs on another backend in this process")
    return keras3_model(params)


def test_keras3_exports_through_its_litert_export(tmp_path, k3, params, capsys, monkeypatch):
    from keras_legc.keras.saving import keras3

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    report = E.export_tflite(k3, tmp_path / "m.tflite", quantization="dynamic")
    assert capsys.readouterr().out == ""  # Keras' "Saved artifact at ..." stays quiet
    assert list((tmp_path / "cwd").iterdir()) == []  # its work files go to a temp folder
    assert report["keras3"] == {
        "keras": keras3().__version__,
        "backend": "tensorflow",
        "converter": "keras model.export(format='litert')",
    }
    x = rows(8)
    out, ops, dtypes, _ = litert((tmp_path / "m.tflite").read_bytes(), x)
    assert "int8" in dtypes and not any(op.startswith("Flex") for op in ops)  # builtins only
    scale = max(1.0, float(np.max(np.abs(forward(params, x)))))
    assert max_error(out, forward(params, x)) <= 5e-2 * scale
    assert report["verification"]["ok"] is True


def test_keras3_before_3_13_converts_from_a_saved_model(tmp_path, k3, params, monkeypatch, capsys):
    assert E._keras_has_litert() is True  # this Keras is >= 3.13
    monkeypatch.setattr(E, "KERAS_LITERT_MIN", (99, 0))
    assert E._keras_has_litert() is False
    report = E.export_tflite(k3, tmp_path / "m.tflite", quantization="float16")
    assert capsys.readouterr().out == ""  # no "Saved artifact ... endpoints" listing
    assert report["keras3"]["converter"] == (
        "keras model.export(format='tf_saved_model') + tf.lite.TFLiteConverter"
    )
    x = rows(8)
    out, ops, dtypes, _ = litert((tmp_path / "m.tflite").read_bytes(), x)
    assert "float16" in dtypes and not any(op.startswith("Flex") for op in ops)
    np.testing.assert_allclose(out, forward(params, x), atol=1e-2)


def test_keras3_litert_version_gate(monkeypatch):
    from keras_legc.keras.saving import keras3

    major, minor = (int(p) for p in keras3().__version__.split(".")[:2])
    monkeypatch.setattr(E, "KERAS_LITERT_MIN", (major, minor))
    assert E._keras_has_litert() is True  # equal counts
    monkeypatch.setattr(E, "KERAS_LITERT_MIN", (major, minor + 1))
    assert E._keras_has_litert() is False
    # only major.minor is read: a pre-release patch part does not matter
    monkeypatch.setattr(keras3(), "__version__", f"{major}.{minor + 1}.0rc1")
    assert E._keras_has_litert() is True


def test_keras3_info_names_the_twin_path_on_other_backends(k3, monkeypatch):
    from keras_legc.keras import saving

    monkeypatch.setattr(saving, "keras3_backend", lambda: "jax")
    info = E._keras3_info(k3)
    assert info["backend"] == "jax" and info["keras"] == saving.keras3().__version__
    assert info["converter"] == (
        "TensorFlow-backend twin (subprocess) + keras model.export(format='litert')"
    )


def test_keras3_int8_and_sparse_settings_reach_the_converter(k3, params):
    x = rows(64)
    out, ops, dtypes, interface = litert(E._convert(k3, "int8", False, x), x[:8])
    assert "QUANTIZE" in ops and interface == ("float32", "float32")
    scale = max(1.0, float(np.max(np.abs(forward(params, x[:8])))))
    assert max_error(out, forward(params, x[:8])) <= 0.1 * scale


def twin_source(tmp_path):
    """A block-sparse Keras 3 model ending in a Lambda layer (Python code: only an unsafe load
    opens it), compiled with a custom loss (only an uncompiled load ignores it), saved."""
    from keras_legc.keras.saving import keras3

    k = keras3()
    params = block_sparse_params()
    model = keras3_model(params)
    model = k.Sequential([k.Input((64,)), *model.layers, k.layers.Lambda(lambda t: t * 2.0)])

    def my_loss(a, b):
        return k.ops.mean((a - b) ** 2)

    model.compile(optimizer="sgd", loss=my_loss)
    model.save(tmp_path / "m.keras")
    return params


def test_twin_main_converts_a_keras_file(tmp_path, k3, monkeypatch):
    """The subprocess side of the JAX/PyTorch path, run here in-process on a saved file."""
    params = twin_source(tmp_path)
    x = rows(64, d=64)
    np.save(tmp_path / "cal.npy", x)
    want = 2.0 * forward(params, x[:8])
    scale = max(1.0, float(np.max(np.abs(want))))
    for quantization, sparse, calibration in (
        ("int8", "True", "cal.npy"),
        ("float", "False", "absent.npy"),
    ):
        out = tmp_path / f"{quantization}.tflite"
        argv = [tmp_path / "m.keras", out, quantization, sparse, tmp_path / calibration]
        monkeypatch.setattr(sys, "argv", ["-c", *map(str, argv)])
        E._twin_main()
        flatbuffer = out.read_bytes()
        got, ops, _, _ = litert(flatbuffer, x[:8])
        assert ("QUANTIZE" in ops) == (quantization == "int8")
        assert (n_sparse_tensors(flatbuffer) > 0) == (sparse == "True")
        assert max_error(got, want) <= E.TOLERANCE[quantization] * scale


def test_a_conversion_error_without_a_message_names_its_type_and_the_fix(k3):
    """A Keras 3 layer without a graph implementation raises a bare NotImplementedError while the
    converter traces it; with Keras' traceback filtering off (a debugging setting) nothing adds
    text to it. The error names the exception, with nothing after it, and the fix."""
    import tensorflow as tf

    from keras_legc.keras.saving import keras3

    k = keras3()

    class EagerOnly(k.layers.Layer):
        def call(self, t):
            if not tf.executing_eagerly():
                raise NotImplementedError
            return t

        def compute_output_shape(self, shape):
            return shape

    model = k.Sequential([k.Input((D,)), k.layers.Dense(3), EagerOnly()])
    filtering = k.config.is_traceback_filtering_enabled()
    k.config.disable_traceback_filtering()
    try:
        with pytest.raises(ExportError) as err:
            E._convert(model, "float", False, None)
    finally:
        if filtering:
            k.config.enable_traceback_filtering()
    assert str(err.value.__cause__) == ""  # the case is real: the cause has no message
    assert str(err.value).startswith(
        "TFLite conversion failed (NotImplementedError: ). Fix: check that every layer"
    )


# The subprocess of the JAX/PyTorch path: a fresh Python that imports TensorFlow (~5 s each).
@pytest.fixture
def as_jax(monkeypatch):
    """keras_legc sees a JAX-backend Keras 3 (the model stays a TF-backend one: its .keras file is
    backend-independent, which is what the twin relies on)."""
    from keras_legc.keras import saving

    monkeypatch.setattr(saving, "keras3_backend", lambda: "jax")


def test_the_twin_refuses_to_start_another_twin(k3, as_jax, monkeypatch):
    # were the twin's Keras not on TensorFlow, each twin would start the next one without end
    monkeypatch.setenv(E.TWIN_ENV, "1")
    model = keras3_model(block_sparse_params())
    with pytest.raises(ExportError) as err:
        E._convert(model, "float", False, None)
    message = str(err.value)
    assert message.startswith(
        "the TensorFlow-backend twin found Keras on the jax backend, although it was started "
        "with KERAS_BACKEND=tensorflow. Fix: check that nothing in the environment (a "
        "sitecustomize, a keras.json"
    )
    assert message.endswith(
        "forces a backend, or export from a process with KERAS_BACKEND=tensorflow."
    )


def test_the_twin_starts_on_tensorflow_whatever_the_callers_backend(k3, monkeypatch):
    """The twin's environment, checked before it would start (the next test runs a real one)."""
    import subprocess

    class NotStarted(Exception):
        pass

    def capture(cmd, **kwargs):
        seen.update(kwargs, cmd=cmd)
        raise NotStarted

    seen = {}
    monkeypatch.setenv("KERAS_BACKEND", "jax")  # the caller's shell chose JAX
    monkeypatch.setattr(subprocess, "run", capture)
    with pytest.raises(NotStarted):
        E._convert_twin(k3, "float", False, None)
    env = seen["env"]
    assert env["KERAS_BACKEND"] == "tensorflow" and env[E.TWIN_ENV] == "1"
    assert env["PATH"] == os.environ["PATH"]  # the rest of the caller's environment is kept
    assert seen["cmd"][:2] == [sys.executable, "-c"] and seen["cmd"][-3:-1] == ["float", "False"]


def test_other_backends_convert_through_a_tensorflow_subprocess(k3, as_jax, tmp_path, monkeypatch):
    params = block_sparse_params()
    model = keras3_model(params)
    x = rows(64, d=64)
    monkeypatch.chdir(tmp_path)
    flatbuffer = E._convert(model, "int8", True, x)
    assert list(tmp_path.iterdir()) == []  # the twin's files stay in its temp folder
    out, ops, _, interface = litert(flatbuffer, x[:8])
    assert "QUANTIZE" in ops and interface == ("float32", "float32")  # calibrated on x
    assert n_sparse_tensors(flatbuffer) > 0  # the sparse flag reached the twin
    scale = max(1.0, float(np.max(np.abs(forward(params, x[:8])))))
    assert max_error(out, forward(params, x[:8])) <= 0.1 * scale


@pytest.mark.parametrize("status", [0, 3])
def test_a_twin_that_ends_silently_is_an_export_error(k3, as_jax, tmp_path, monkeypatch, status):
    """A twin that ends before it writes or says anything (here a sitecustomize on the caller's
    PYTHONPATH ends the interpreter at startup, with exit status 0 or 3): no .tflite and an empty
    stderr. Either status is a failure, and the error says there was no output."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"import os\nos._exit({status})\n")
    path = [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    with pytest.raises(ExportError) as err:
        E._convert(k3, "float", False, None)
    assert str(err.value).startswith(
        "converting the jax-backend model through its TensorFlow-backend twin failed: no error "
        "output. Fix: install TensorFlow"
    )


def test_twin_failure_names_the_subprocess_error_and_the_fix(k3, as_jax):
    with pytest.raises(ExportError) as err:
        E._convert(k3, "int8", False, None)  # no calibration rows: the twin's converter fails
    message = str(err.value)
    assert message.startswith(
        "converting the jax-backend model through its TensorFlow-backend twin failed: "
        "keras_legc.errors.ExportError: TFLite conversion failed (TypeError"
    ), message
    assert message.endswith(
        "Fix: install TensorFlow beside Keras 3 (the twin needs it), or export from a process "
        "with KERAS_BACKEND=tensorflow."
    )


def test_dynamic_range_sparse_is_refused_before_anything_is_done(tmp_path):
    model = tf_keras_model(block_sparse_params())
    with pytest.raises(InvalidArgumentError, match=r"XNNPACK delegate.*Fix: int8 with repr"):
        E.export_tflite(model, tmp_path / "m.tflite", quantization="dynamic", sparse=True)
    assert list(tmp_path.iterdir()) == []


def test_why_dynamic_range_sparse_is_refused_the_default_delegate_computes_it_wrongly():
    """The converter's file is right (LiteRT's builtin kernels agree with numpy); LiteRT's default
    XNNPACK delegate is what breaks it. When this test fails, the runtime was fixed: lift the
    refusal in check_combination."""
    from ai_edge_litert.interpreter import OpResolverType

    wide = weights(sizes=(64, 64, 10))
    w0 = wide[0][0].copy()  # 90% zeros in (1 output x 16 inputs) blocks scattered over the kernel
    keep = np.random.default_rng(0).random((4, 64)) < 0.1
    w0 *= np.repeat(keep, 16, axis=0)
    wide = [(w0, wide[0][1]), wide[1]]
    model = tf_keras_model(wide)
    flatbuffer = E._run_converter(
        E.tf().lite.TFLiteConverter.from_keras_model(model),
        E._converter_settings("dynamic", True, None),
    )
    assert n_sparse_tensors(flatbuffer) >= 1
    x = rows(8, d=64)
    want = forward(wide, x)
    tolerance = E.TOLERANCE["dynamic"] * max(1.0, float(np.max(np.abs(want))))
    builtin = litert(flatbuffer, x, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)[0]
    assert max_error(builtin, want) <= tolerance
    default = litert(flatbuffer, x)[0]
    assert not max_error(default, want) <= tolerance  # NaN or far off


@pytest.mark.parametrize(("quantization", "wrong_on"), [("int8", ["tflite_runtime<=2.14"]),
                                                        ("float", [])])  # fmt: skip
def test_int8_block_sparse_names_the_runtime_that_computes_it_wrongly(tmp_path, quantization,
                                                                      wrong_on):  # fmt: skip
    model = tf_keras_model(block_sparse_params())
    data = rows(64, d=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = E.export_tflite(model, tmp_path / "m.tflite", quantization=quantization,
                                 sparse=True, representative_data=data)  # fmt: skip
    assert report["wrong_on_runtimes"] == wrong_on and report["verification"]["ok"]
    said = [str(w.message) for w in caught if "tflite-runtime 2.14 and older" in str(w.message)]
    assert len(said) == len(wrong_on)
    assert all("Fix: run it on the device with LiteRT" in m for m in said)


def test_report_gives_the_sparsity_over_all_parameters_beside_the_dense_kernels(tmp_path):
    """A convnet whose Dense head alone is 80% pruned: most of its parameters are convolution
    weights, so the sparsity over all parameters is far below the Dense kernels' 80%."""
    from keras_legc.keras.saving import keras3

    k = keras3()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.Input((8, 8, 1)), k.layers.Conv2D(32, 3), k.layers.GlobalAveragePooling2D(),
                          k.layers.Dense(4, name="head")])  # fmt: skip
    head = model.get_layer("head")
    w, b = head.get_weights()
    w[np.argsort(np.abs(w), axis=None).reshape(w.shape) < int(0.8 * w.size)] = 0.0
    head.set_weights([w, b])
    report = E.export_tflite(model, tmp_path / "c.tflite")
    values = model.get_weights()
    n, nonzero = sum(v.size for v in values), sum(int(np.count_nonzero(v)) for v in values)
    assert report["parameters"] == n == 3 * 3 * 32 + 32 + 32 * 4 + 4
    assert report["nonzero_parameters"] == nonzero
    assert report["parameter_sparsity"] == pytest.approx(1 - nonzero / n)
    assert report["layer_sparsity"]["head"] == pytest.approx(0.8, abs=1 / w.size)
    assert report["parameter_sparsity"] < 0.7 < report["layer_sparsity"]["head"]


@pytest.mark.parametrize(("quantization", "wrong_on"), [("int8", ["tflite_runtime<=2.14"]),
                                                        ("float", [])])  # fmt: skip
def test_int8_block_sparse_convolutions_name_the_runtime_too(tmp_path, quantization, wrong_on):
    """A convolution pruned in (1, 16) blocks is densified at load (DENSIFY), yet tflite-runtime
    2.14 collapsed the edge suite's ResNet-8 so pruned to 90%: export names that runtime for int8
    sparse files however their weights are stored; an unstructured one is not named."""
    import keras_legc as kl
    from keras_legc.keras.saving import keras3

    k = keras3()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.Input((8, 8, 16)), k.layers.Conv2D(32, 3, name="conv"),
                          k.layers.GlobalAveragePooling2D(), k.layers.Dense(4, name="head")])  # fmt: skip
    data = np.random.default_rng(0).random((64, 8, 8, 16), dtype=np.float32)
    reports = {}
    for name, block in (("blocks", (1, 16)), ("unstructured", None)):
        mask = kl.magnitude_mask(model, 0.9, block=block)
        pruned = kl.strip(kl.prune(model, mask))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reports[name] = E.export_tflite(pruned, tmp_path / f"{name}.tflite", sparse=True,
                                            quantization=quantization, representative_data=data)  # fmt: skip
        reports[name]["said"] = [str(w.message) for w in caught]
    blocks = reports["blocks"]
    assert blocks["block_structured_zeros"]["conv"] == 1.0 and blocks["verification"]["ok"]
    assert blocks["layer_sparsity"]["conv"] >= 0.5 and "DENSIFY" in blocks["ops"]
    assert blocks["wrong_on_runtimes"] == wrong_on
    assert sum("ResNet-8 with (1, 16)-block convolutions" in m for m in blocks["said"]) == len(
        wrong_on
    )
    assert reports["unstructured"]["wrong_on_runtimes"] == []
