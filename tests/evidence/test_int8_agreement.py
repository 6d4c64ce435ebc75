"""legc_research.evidence.int8_agreement: a .tflite's outputs against its Keras model's on many
rows (accuracy of both, top-1 agreement, error statistics), checked against a plain loop and
against what export itself measured on its reference rows."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest

from keras_legc import OutputExistsError
from keras_legc.keras.export import export_tflite
from legc_research.evidence import int8_agreement as ia


def test_compare_against_a_loop():
    rng = np.random.default_rng(3)
    keras_out, tflite_out = rng.random((50, 4)), rng.random((50, 4))
    tflite_out[:20] = keras_out[:20] + 0.001  # some rows agree
    y = rng.integers(0, 4, 50)
    got = ia.compare(keras_out, tflite_out, y)
    top = lambda row: max(range(4), key=lambda j: row[j])  # noqa: E731
    same = sum(top(a) == top(b) for a, b in zip(keras_out, tflite_out, strict=True))
    per_image = sorted(max(abs(a - b)) for a, b in zip(keras_out, tflite_out, strict=True))
    assert got["rows"] == 50 and got["top1_agreement"] == pytest.approx(same / 50)
    right = [(top(a) == t, top(b) == t) for a, b, t in zip(keras_out, tflite_out, y, strict=True)]
    assert got["accuracy_keras"] == pytest.approx(sum(k for k, _ in right) / 50)
    assert got["accuracy_tflite"] == pytest.approx(sum(t for _, t in right) / 50)
    assert got["max_error"] == pytest.approx(per_image[-1])
    assert got["mean_abs_error"] == pytest.approx(np.abs(keras_out - tflite_out).sum() / 200)
    assert per_image[48] <= got["p99_image_error"] <= per_image[49]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small softmax convnet on Fashion-MNIST-shaped inputs, saved and exported int8."""
    folder = tmp_path_factory.mktemp("int8")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.save(folder / "m.keras")
    calibration = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    export_tflite(model, folder / "m.tflite", quantization="int8",
                  representative_data=calibration)  # fmt: skip
    return folder


def test_the_tflite_outputs_are_the_ones_export_verified(exported):
    ref = np.load(exported / "m.reference.npz")
    out = ia.run_tflite(exported / "m.tflite", ref["inputs"])
    np.testing.assert_allclose(out, ref["tflite_outputs"], atol=1e-6)
    # TFLite's reference kernels compute the same int8 graph, up to the optimised kernels' rounding
    slow = ia.run_tflite(exported / "m.tflite", ref["inputs"], reference_kernels=True)
    assert np.max(np.abs(slow - out)) <= 4 / 256  # a few steps of the softmax's int8 output


@pytest.mark.skipif(not os.environ.get("LEGC_DATA_DIR"), reason="needs LEGC_DATA_DIR")
def test_main_measures_and_writes_without_overwriting(exported, tmp_path, capsys):
    out = tmp_path / "rows.json"
    pair = [str(exported / "m.keras"), str(exported / "m.tflite")]
    assert ia.main([*pair, "--rows", "300", "--reference-kernels", "--json", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["rows"] == 300 and 0.0 <= row["top1_agreement"] <= 1.0
    assert row["max_error"] >= row["p99_image_error"] >= 0.0
    assert "same top class on" in capsys.readouterr().out
    with pytest.raises(OutputExistsError):
        ia.main([*pair, "--rows", "300", "--json", str(out)])


def test_group_verdicts_against_a_loop():
    """Export's check on each 16-row group, both rules, written out row by row."""
    rng = np.random.default_rng(4)
    keras_out = rng.dirichlet(np.ones(10) * 0.3, size=70)  # softmax-like rows, scale 1
    tflite_out = keras_out + rng.normal(0, 0.004, keras_out.shape)
    tflite_out[5, 0] += 0.3  # group 0: one large error (the max rule refuses, the mean passes)
    tflite_out[16:32] = keras_out[16:32, ::-1]  # group 1: every output moved (both refuse)
    tflite_out[40:48] += 0.06  # group 2: half its rows off by 0.06 (mean 0.03): only the mean
    got = ia.group_verdicts(keras_out, tflite_out, 16)
    assert got["groups"] == 4  # 70 rows: the last 6 are not a group
    old, new, means, kept_share = [], [], [], []
    for g in range(4):
        want, out = keras_out[16 * g : 16 * g + 16], tflite_out[16 * g : 16 * g + 16]
        diffs = [abs(a - b) for rw, ro in zip(want, out, strict=True)
                 for a, b in zip(rw, ro, strict=True)]  # fmt: skip
        kept = sum(list(rw).index(max(rw)) == list(ro).index(max(ro))
                   for rw, ro in zip(want, out, strict=True)) / 16  # fmt: skip
        means.append(sum(diffs) / len(diffs))
        kept_share.append(kept)
        old.append(max(diffs) > 0.1)
        new.append(means[-1] > 0.025)
    assert old == [True, True, False, False] and new == [False, True, True, False]
    assert got["refused_by_max_rule"] == pytest.approx(np.mean(old))
    assert got["refused_by_default"] == pytest.approx(np.mean(new))
    assert got["group_mean_error"] == pytest.approx([min(means), np.median(means), max(means)])
    assert got["group_top1"] == pytest.approx([min(kept_share), max(kept_share)])


@pytest.mark.skipif(not os.environ.get("LEGC_DEVICE_PYTHON"), reason="needs LEGC_DEVICE_PYTHON")
def test_tflite_runtime_outputs_through_the_edge_runner(exported):
    """The device-python path runs the file on tflite-runtime (another build of the same int8
    kernels): the outputs match LiteRT's to a few steps of the softmax's int8 output."""
    ref = np.load(exported / "m.reference.npz")
    out = ia.run_on_device_python(os.environ["LEGC_DEVICE_PYTHON"], exported / "m.tflite",
                                  ref["inputs"])  # fmt: skip
    assert out.shape == ref["tflite_outputs"].shape
    assert np.max(np.abs(out - ref["tflite_outputs"])) <= 4 / 256


def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys):
    """A group of no rows, or an MLP folder holding an earlier run's files: a usage error."""
    with pytest.raises(SystemExit) as exc:
        ia.main(["a.keras", "a.tflite", "--group", "0", "--data-dir", str(tmp_path)])
    assert exc.value.code == 2 and "--group must be between 1 and --rows" in capsys.readouterr().err
    (tmp_path / "old.tflite").write_bytes(b"x")
    with pytest.raises(SystemExit) as exc:
        ia.main(["--mnist-block-mlps", str(tmp_path), "--data-dir", str(tmp_path)])
    assert exc.value.code == 2 and "holds files of an earlier run" in capsys.readouterr().err
