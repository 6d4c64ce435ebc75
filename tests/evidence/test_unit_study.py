"""Issue 27's unit study (legc_research.evidence.unit_study): the activation recorder records what
the network computes, and a short run goes end to end, resumes, and writes its report."""

import keras
import numpy as np
import pytest

from legc_research.evidence import unit_study as study
from legc_research.evidence.unit_study_report import write_report


def _conv_bn_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(6, activation="relu", name="fc")(x)
    out = keras.layers.Dense(3, activation="softmax", name="out")(x)
    return keras.Model(inputs, out)


def test_activation_series_are_the_mean_absolute_activation_after_bn_and_relu(tmp_path):
    """The last recorded unit values equal an independent computation: the mean |output| of the
    layer after its BatchNormalization and ReLU (conv), or of the layer itself (Dense), on the
    probe, with the weights at the last recorded step."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 3, 96)
    model = _conv_bn_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    probe = x[:16]
    rec = study.activation_history_class()(
        probe, window=5, every=1, validation_data=(x[:32], y[:32]), background=False, verbose=0,
        save_snapshots=True, run_dir=tmp_path / "act",
    )  # fmt: skip
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[rec])  # 12 steps
    h = rec.history
    assert h.meta["granularity"] == "unit"
    relu = keras.Model(model.inputs, model.get_layer("relu").output)(probe, training=False)
    fc = keras.Model(model.inputs, model.get_layer("fc").output)(probe, training=False)
    want = {
        "conv": np.abs(np.asarray(relu)).mean(axis=(0, 1, 2)),
        "fc": np.abs(np.asarray(fc)).mean(axis=0),
    }
    from keras_legc.core.history import load_snapshots

    last = np.asarray(load_snapshots(tmp_path / "act"))[-1]  # the step-12 unit values
    offsets = np.cumsum([0] + [int(np.prod(h.shapes[n])) for n in h.layers])
    got = {
        n.split("/")[0]: last[a:b]
        for n, a, b in zip(h.layers, offsets[:-1], offsets[1:], strict=True)
    }
    for layer, values in want.items():
        key = next(k for k in got if k.startswith(layer))
        np.testing.assert_allclose(got[key], values, rtol=1e-5, atol=1e-6)


def test_a_short_study_runs_resumes_and_reports(tmp_path):
    short = {"digits_mlp": study.Budget(epochs=12, batch_size=32, finetune_steps=45)}
    kwargs = dict(nets=["digits_mlp"], seeds=[0], criteria=["legc_act", "l2", "bn_scale"],
                  reductions=(2.0,), budgets=short, log=lambda m: None)  # fmt: skip
    path = study.run(tmp_path, **kwargs)
    rows = study.read_results(path)
    by = {r["criterion"]: r for r in rows}
    assert set(by) == {"dense", "legc_act", "l2", "bn_scale"}
    assert by["bn_scale"]["status"] == "n/a"  # no BatchNormalization in an MLP: said, not skipped
    dense_macs = by["dense"]["macs"]
    for c in ("legc_act", "l2"):
        assert by[c]["macs"] <= dense_macs / 2 and 0 <= by[c]["acc_before"] <= 1
        assert 0 <= by[c]["acc_after"] <= 1
    ev = by["legc_act"]["evidence"]
    assert ev["units"] == 96 + 48 + 10 and 0 <= ev["causal"] <= ev["tested"] <= ev["units"]
    # a rerun finds every cell done and appends nothing
    study.run(tmp_path, **kwargs)
    assert len(study.read_results(path)) == len(rows)
    doc = write_report(path, tmp_path / "units.md")
    text = first = doc.read_text()
    assert "digits" in text and "legc_act" in text and "Spearman" in text
    assert "validation loss" not in text

    # The unit LEGC criteria again against the validation loss: rows of their own, the same
    # dense net (the recorders do not change training), a section of the report of their own.
    study.run(tmp_path, **{**kwargs, "criteria": ["legc_act"]}, target="loss")
    loss = study.of_target(study.read_results(path), "loss")
    assert {(r["criterion"], r["target"]) for r in loss} == {
        ("dense", "loss"),
        ("legc_act", "loss"),
    }
    assert study.of_target(study.read_results(path)) == rows  # the study's rows unchanged
    dense = [r["acc_before"] for r in study.read_results(path) if r["criterion"] == "dense"]
    assert dense[0] == dense[1]
    text = write_report(path, tmp_path / "units.md").read_text()
    section = text.split("## The unit LEGC criteria against the validation loss")[1]
    assert "| digits_mlp | mean abs. activation | 0 |" in section and "| yes |" in section
    tables = "## Test accuracy"  # the study's tables: its own target's rows only
    assert text.split(tables)[1] == first.split(tables)[1]


def test_unknown_net_or_criterion_is_refused(tmp_path):
    from keras_legc.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="unknown net or criterion"):
        study.run(tmp_path, nets=["vgg16"], seeds=[0])
    with pytest.raises(InvalidArgumentError, match="unknown target"):
        study.run(tmp_path, nets=["digits_mlp"], seeds=[0], target="accuracy")
    with pytest.raises(InvalidArgumentError, match="--criteria legc_weight,legc_act"):
        study.run(tmp_path, nets=["digits_mlp"], seeds=[0], criteria=["l2"], target="loss")
    assert not (tmp_path / "results.jsonl").exists()


def test_a_separable_convs_depthwise_units_keep_their_weight_norms(tmp_path):
    """A SeparableConv2D's depthwise kernel does not feed the layer's output channels one to one,
    even when it has as many units as the layer has filters: its series stays the weight norm."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 4))
    x = keras.layers.SeparableConv2D(4, 3, name="sep")(inputs)  # 4 x 1 depthwise units, 4 filters
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax", name="out")(x))
    model.compile("adam", "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x_data, y = rng.normal(size=(32, 6, 6, 4)).astype("float32"), rng.integers(0, 2, 32)
    rec = study.activation_history_class()(
        x_data[:8], window=4, every=1, validation_data=(x_data, y), background=False, verbose=0,
        save_snapshots=True, run_dir=tmp_path / "act",
    )  # fmt: skip
    model.fit(x_data, y, batch_size=8, epochs=2, verbose=0, callbacks=[rec])
    from keras_legc.core.history import load_snapshots
    from keras_legc.core.units import unit_statistic

    h = rec.history
    last = np.asarray(load_snapshots(tmp_path / "act"))[-1]
    offsets = dict(zip(h.layers, np.cumsum([0] + [h.shapes[n][0] for n in h.layers]), strict=False))
    key = next(k for k in h.layers if "depthwise" in k)
    depthwise = model.get_layer("sep").depthwise_kernel.numpy()
    np.testing.assert_allclose(last[offsets[key] : offsets[key] + 4],
                               unit_statistic(depthwise, (2, 3)), rtol=1e-5)  # fmt: skip
