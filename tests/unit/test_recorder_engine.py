"""The recorder engine (keras_legc.core.recorder) on its own, and the numpy Dense stack.

The engine is numpy only: fed the snapshots that WeightHistory saved, it gives the same History
(LE series, target, counts) as WeightHistory did during fit.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.core.dense import DenseStack, activate, predicted_class
from keras_legc.core.history import History, load_snapshots
from keras_legc.core.lyapunov import windowed_lyapunov
from keras_legc.core.recorder import Recorder
from keras_legc.errors import InvalidArgumentError, NonFiniteError, OutputExistsError


def test_engine_and_its_dense_stack_import_no_tensorflow():
    code = (
        "import sys, keras_legc.core.recorder, keras_legc.core.dense; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', "
        "'keras')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _split(row, shapes):
    """One flat snapshot row back into kernels, in layer order."""
    out, start = [], 0
    for shape in shapes.values():
        size = int(np.prod(shape))
        out.append(row[start : start + size].reshape(shape))
        start += size
    return out


def test_engine_alone_gives_the_history_of_weight_history(tmp_path):
    from keras_legc.keras.flavour import keras

    k = keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 5)).astype("float32")
    y = (x[:, 0] + x[:, 1] > 0).astype("int64")
    k.utils.set_random_seed(0)
    model = k.Sequential([k.layers.Input((5,)), k.layers.Dense(6, activation="tanh"),
                          k.layers.Dense(2, activation="softmax")])  # fmt: skip
    model.compile(k.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    every = 2
    rec = kl.WeightHistory(
        window=10, overlap=0.2, every=every, validation_data=(x[:60], y[:60]),
        run_dir=tmp_path / "run", save_snapshots=True,
    )  # fmt: skip
    model.fit(x, y, batch_size=4, epochs=3, callbacks=[rec], verbose=0)
    keras_history = rec.history
    snapshots = np.asarray(load_snapshots(tmp_path / "run"))

    targets = iter(keras_history.target.tolist())  # the target sampled in fit, replayed
    engine = Recorder(
        keras_history.layers, keras_history.shapes, window=10, overlap=0.2, every=every,
        target=lambda: next(targets), background=False,
        meta={"model": model.name, "target": "misclassification"},
    )  # fmt: skip
    steps = keras_history.meta["optimizer_steps"]
    for step in range(steps):
        if step % every:
            # Not a recorded step: the engine must not even look at the kernels.
            engine.step(iter(lambda: pytest.fail("kernels read on a skipped step"), None))
        else:
            engine.step(_split(snapshots[step // every], keras_history.shapes))
    history = engine.finish(keras_history.final_kernels)

    np.testing.assert_array_equal(history.le, keras_history.le)
    np.testing.assert_array_equal(history.target, keras_history.target)
    assert history.n_windows == keras_history.n_windows >= 8
    assert history.n_snapshots == keras_history.n_snapshots == len(snapshots)
    assert (history.window, history.overlap, history.every) == (10, 0.2, every)
    assert history.meta == keras_history.meta
    # ... and both are the offline LE of the full trajectory.
    offline = windowed_lyapunov(snapshots.T, 10, 0.2).astype(np.float32)
    np.testing.assert_array_equal(history.le, offline)


def _stream(engine, n_steps, n=6, seed=0):
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(size=(n_steps, n)), axis=0)
    for row in walk:
        engine.step([row[:4].reshape(2, 2), row[4:].reshape(2, 1)])
    return walk


SHAPES = {"a": (2, 2), "b": (2, 1)}


def test_background_and_inline_engines_agree_and_match_offline_le():
    histories = []
    for background in (False, True):
        engine = Recorder(["a", "b"], SHAPES, window=12, overlap=0.25, target=lambda: 0.5,
                          background=background, threads=1)  # fmt: skip
        walk = _stream(engine, 100)
        histories.append(engine.finish())
    np.testing.assert_array_equal(histories[0].le, histories[1].le)
    offline = windowed_lyapunov(walk.astype(np.float32).T, 12, 0.25).astype(np.float32)
    np.testing.assert_array_equal(histories[0].le, offline)
    assert histories[0].n_snapshots == 100 and histories[0].final_kernels is None


def test_a_prefix_is_the_recording_as_it_stood_when_its_last_window_closed():
    engine = Recorder(["a", "b"], SHAPES, window=10, overlap=0.0, target=lambda: 0.25,
                      background=False, expected_windows=1)  # grows past one row  # fmt: skip
    _stream(engine, 47)
    full = engine.history()
    assert full.n_windows == 4 and full.n_snapshots == 47
    assert engine.close_snapshot == [10, 20, 30, 40]
    k = engine.windows_closed_by(25)
    prefix = engine.history(n_windows=k)
    assert k == 2 and prefix.n_snapshots == 20 and prefix.meta["optimizer_steps"] == 20
    np.testing.assert_array_equal(prefix.le, full.le[:, :2])
    assert engine.history(n_windows=0).le.shape == (6, 0)
    with pytest.raises(InvalidArgumentError, match="n_windows"):
        engine.history(n_windows=5)


def test_engine_run_dir_saves_a_loadable_history_and_refuses_to_overwrite(tmp_path):
    current = {"a": np.ones((2, 2)), "b": np.zeros((2, 1))}
    engine = Recorder(["a", "b"], SHAPES, window=8, overlap=0.0, target=lambda: 0.1,
                      run_dir=tmp_path, kernels=lambda: current)  # fmt: skip
    assert History.load(tmp_path).n_windows == 0  # the empty history is on disk at once
    _stream(engine, 20)
    engine.end_epoch()
    assert History.load(tmp_path).n_windows == 2
    history = engine.finish()
    loaded = History.load(tmp_path)
    np.testing.assert_array_equal(loaded.le, history.le)
    np.testing.assert_array_equal(loaded.final_kernels["a"], current["a"])
    assert not (tmp_path / "le_journal.json").exists()  # the complete history holds every window
    assert json.loads((tmp_path / "manifest.json").read_text())["optimizer_steps"] == 20
    with pytest.raises(OutputExistsError, match="already holds a recorded history"):
        Recorder(["a", "b"], SHAPES, window=8, target=lambda: 0.1, run_dir=tmp_path)


def test_engine_refuses_a_diverged_window():
    engine = Recorder(["a", "b"], SHAPES, window=4, overlap=0.0, target=lambda: 0.0,
                      background=False)  # fmt: skip
    with pytest.raises(NonFiniteError, match="diverged"):
        for _ in range(4):
            engine.step([np.full((2, 2), np.nan), np.zeros((2, 1))])


# ---- the numpy Dense stack -------------------------------------------------------------------------


def test_predicted_class_makes_the_linear_output_rule_explicit():
    out = np.array([[-0.3], [0.2], [0.7]])
    np.testing.assert_array_equal(predicted_class(out), [0, 0, 1])  # a probability: above 0.5
    np.testing.assert_array_equal(predicted_class(out, logits=True), [0, 1, 1])  # a logit: above 0
    np.testing.assert_array_equal(predicted_class(np.array([[0.1, 0.9], [2.0, 1.0]])), [1, 0])


def test_the_mlp_and_the_neuron_view_share_one_forward_pass():
    from keras_legc.neurons import DenseNet
    from legc_research.mlp import MLP, MLPSpec

    net = MLP.init(MLPSpec((4, 5, 3), ("tanh", "softmax")), seed=0)
    view = DenseNet(["d0", "d1"], net.kernels, net.biases, ["tanh", "softmax"],
                    {"d0": np.ones(5, bool)}, (4,))  # fmt: skip
    x = np.random.default_rng(1).normal(size=(7, 4))
    assert isinstance(net, DenseStack) and isinstance(view, DenseStack)
    np.testing.assert_array_equal(net.predict(x), view.output(x))
    masked = view.with_removed({"d0": [2]})
    hidden = activate("tanh", x @ net.kernels[0] + net.biases[0])
    hidden[:, 2] = 0.0
    want = activate("softmax", hidden @ net.kernels[1] + net.biases[1])
    np.testing.assert_allclose(masked.output(x), want, rtol=0, atol=1e-15)
