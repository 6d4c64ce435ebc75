"""Export of block-sparse, unstructured and shrunk models: the converter's op list, warnings,
representative data files, held-out verification and never overwriting."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import LegcWarning, OutputExistsError
from keras_legc.keras.export import WRONG_RUNTIMES, export_tflite
from keras_legc.keras.flavour import keras

k = keras()
ROOT = Path(__file__).resolve().parents[2]


def mlp(sizes=(64, 48, 10), seed=0):
    k.utils.set_random_seed(seed)
    layers = [k.layers.Input(shape=(sizes[0],))]
    layers += [k.layers.Dense(s, activation="relu") for s in sizes[1:-1]]
    return k.Sequential([*layers, k.layers.Dense(sizes[-1])])


def masked(model, mask):
    out = k.models.clone_model(model)
    out.set_weights(model.get_weights())
    for layer in kl.dense_layers(out):
        w, b = layer.get_weights()
        layer.set_weights([w * mask[layer.name], b])
    return out


def op_names(path):
    """The converted flatbuffer's operators, read by the interpreter without any delegate."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(
        model_path=str(path),
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    return sorted({op["op_name"] for op in interp._get_ops_details()})


@pytest.fixture(scope="module")
def models():
    base = mlp()
    x = np.random.default_rng(0).normal(size=(120, 64)).astype("float32")
    block = masked(base, kl.magnitude_mask(base, 0.9, block=(1, 16)))
    unstructured = masked(base, kl.random_mask(base, 0.9, seed=0))
    return base, block, unstructured, x


@pytest.mark.parametrize("quantization", ["float", "int8"])
def test_block_sparse_export_has_no_densify_and_unstructured_has(models, tmp_path, quantization):
    _, block, unstructured, x = models
    # block-sparse at 90%: nothing to warn about, but for int8 the runtime that computes it wrongly
    wrong_on = ["tflite_runtime<=2.14"] if quantization == "int8" else []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LegcWarning)
        rb = export_tflite(
            block, tmp_path / "b.tflite", quantization=quantization, sparse=True,
            representative_data=x,
        )  # fmt: skip
    assert [str(w.message) for w in caught] == [WRONG_RUNTIMES[n] for n in wrong_on]
    assert "DENSIFY" not in op_names(tmp_path / "b.tflite")
    assert "FULLY_CONNECTED" in op_names(tmp_path / "b.tflite")
    assert rb["densify"] is False and rb["wrong_on_runtimes"] == wrong_on
    assert rb["warnings"] == [WRONG_RUNTIMES[n] for n in wrong_on]
    assert all(v == 1.0 for n, v in rb["block_structured_zeros"].items() if n != "block")
    with pytest.warns(LegcWarning, match="unstructured.*DENSIFY.*block=\\(1, 16\\)"):
        ru = export_tflite(
            unstructured, tmp_path / "u.tflite", quantization=quantization, sparse=True,
            representative_data=x,
        )  # fmt: skip
    assert "DENSIFY" in op_names(tmp_path / "u.tflite")
    assert ru["densify"] is True and len(ru["warnings"]) == 1
    assert rb["verification"]["ok"] and ru["verification"]["ok"]
    saved = json.loads((tmp_path / "u.json").read_text())
    assert saved["warnings"] == ru["warnings"]


def test_low_sparsity_with_sparse_storage_warns(models, tmp_path):
    base, *_ = models
    half = masked(base, kl.magnitude_mask(base, 0.3, block=(1, 16)))
    with pytest.warns(LegcWarning, match="only 30.*% zeros.*Fix:"):
        export_tflite(half, tmp_path / "h.tflite", sparse=True)
    sixty = masked(base, kl.magnitude_mask(base, 0.6, block=(1, 16)))
    with pytest.warns(LegcWarning, match="slower than dense below about 80%"):
        export_tflite(sixty, tmp_path / "s.tflite", sparse=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LegcWarning)
        export_tflite(half, tmp_path / "d.tflite")  # dense storage: nothing to warn about


def test_representative_file_and_held_out_reference(models, tmp_path):
    _, block, _, x = models
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x, y=np.zeros(len(x)))
    r1 = export_tflite(block, tmp_path / "a.tflite", quantization="int8",
                       representative_data=tmp_path / "x.npy")  # fmt: skip
    r2 = export_tflite(block, tmp_path / "b.tflite", quantization="int8",
                       representative_data=tmp_path / "x.npz")  # fmt: skip
    assert r1["verification"]["held_out"] is True and r1["verification"]["ok"]
    ref = np.load(tmp_path / "a.reference.npz")
    np.testing.assert_array_equal(ref["inputs"], x[-16:])  # the held-out last rows
    assert r1["tflite_bytes"] == r2["tflite_bytes"]
    # The tolerance scales with the outputs (logits here) and is stated.
    v = r1["verification"]
    assert v["atol"] == pytest.approx(0.1 * v["reference_scale"]) and "max(1" in v["tolerance"]
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(kl.InvalidArgumentError, match="several arrays.*Fix:"):
        export_tflite(block, tmp_path / "c.tflite", representative_data=tmp_path / "two.npz")


def test_a_shrunk_model_exports(tmp_path):
    """A neuron-pruned (shrunk) model is a plain smaller Dense stack; export takes it as is."""
    base = mlp((64, 48, 10))
    keep = np.arange(0, 48, 2)  # drop every other hidden unit
    if hasattr(kl, "shrink"):
        small = kl.shrink(base, {kl.dense_layers(base)[0].name: np.arange(1, 48, 2).tolist()})
    else:
        small = mlp((64, 24, 10))
        (w1, b1), (w2, b2) = (layer.get_weights() for layer in kl.dense_layers(base))
        small.set_weights([w1[:, keep], b1[keep], w2[keep], b2])
    report = export_tflite(small, tmp_path / "small.tflite")
    dense = export_tflite(base, tmp_path / "base.tflite")
    assert report["verification"]["ok"]
    assert list(report["layer_units"].values()) == [24, 10]
    assert report["tflite_bytes"] < 0.6 * dense["tflite_bytes"]


def test_export_never_overwrites_any_of_its_files(models, tmp_path):
    base, *_ = models
    (tmp_path / "m.json").write_text("{}")  # only the sidecar exists
    with pytest.raises(OutputExistsError, match="m.json.*overwrite=True"):
        export_tflite(base, tmp_path / "m.tflite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]  # nothing else written
    assert (tmp_path / "m.json").read_text() == "{}"
    export_tflite(base, tmp_path / "m.tflite", overwrite=True)
    assert json.loads((tmp_path / "m.json").read_text())["tflite"] == "m.tflite"


def test_cli_representative_alias(models, tmp_path):
    _, block, _, x = models
    block.save(tmp_path / "b.keras")
    np.save(tmp_path / "x.npy", x)
    cmd = [sys.executable, "tools/export", str(tmp_path / "b.keras"), str(tmp_path / "b.tflite"),
           "-q", "int8", "--sparse", "--representative", str(tmp_path / "x.npy")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode != 0 and "--force" in again.stderr
