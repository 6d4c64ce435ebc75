"""keras/unit_history.py: UnitHistory records one series per output channel of every prunable
weight during a real fit; its LE series equal a plain recomputation from every step's weights, its
manifest names each unit's layer and axes, and channel pruning reads it (importance="legc")."""

from __future__ import annotations

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.core.lyapunov import windowed_lyapunov
from keras_legc.errors import InvalidArgumentError

keras = pytest.importorskip("keras")


def _model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((10, 10, 1))
    h = keras.layers.Conv2D(6, 3, activation="relu", name="c1")(inp)
    h = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(h)
    h = keras.layers.Conv2D(8, 1, activation="relu", name="pw")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    out = keras.layers.Dense(3, activation="softmax", name="out")(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    return model


def _data(n=320):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 10, 10, 1)).astype("float32")
    y = (x[:, :5].mean(axis=(1, 2, 3)) > 0).astype("int64") + (
        x[:, 5:, :5].mean(axis=(1, 2, 3)) > 0.1
    )
    return x, y


class _EveryStep(keras.callbacks.Callback):
    """The plain reference: every kernel after every optimizer step."""

    def __init__(self, names):
        super().__init__()
        self.names, self.steps = names, []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(
            {n: self.model.get_layer(n).weights[0].numpy().copy() for n in self.names}
        )


def _plain_norms(kernel: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Per output unit, a loop over units: the L2 norm of every entry that feeds it."""
    k = np.moveaxis(kernel.astype(np.float64), axes, range(kernel.ndim - len(axes), kernel.ndim))
    flat = k.reshape(-1, int(np.prod([kernel.shape[a] for a in axes])))
    return np.array([np.sqrt(sum(v * v for v in flat[:, j])) for j in range(flat.shape[1])])


def test_unit_history_equals_a_plain_recomputation_and_feeds_channel_pruning():
    model, (x, y) = _model(), _data()
    rec = kl.UnitHistory(
        every=1, window=12, overlap=0.0, validation_data=(x[:64], y[:64]), target="loss"
    )
    plain = _EveryStep(["c1", "dw", "pw", "out"])
    model.fit(x, y, batch_size=16, epochs=6, callbacks=[rec, plain], verbose=0, shuffle=False)
    h = rec.history
    assert h.layers == ["c1", "dw/depthwise_kernel", "pw", "out"]
    assert h.shapes == {"c1": (6,), "dw/depthwise_kernel": (12,), "pw": (8,), "out": (3,)}
    units = h.meta["units"]
    assert h.meta["granularity"] == "unit" and "layouts" not in h.meta
    assert units["dw/depthwise_kernel"]["unit_axes"] == [2, 3]
    assert units["dw/depthwise_kernel"]["layer"] == "dw"
    assert units["out"]["unit_axes"] == [1] and units["c1"]["unit_axes"] == [3]
    assert h.n_windows == len(plain.steps) // 12 == 10
    # LE of each unit's norm series, recomputed from the raw weights of every step
    for key, name in zip(h.layers, ["c1", "dw", "pw", "out"], strict=True):
        axes = tuple(units[key]["unit_axes"])
        series = np.stack([_plain_norms(s[name], axes) for s in plain.steps], axis=1)
        want = windowed_lyapunov(series.astype(np.float32), window=12, overlap=0.0)
        got = np.asarray(h.le)[h.offsets()[key]]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # final "kernels" are the unit values at the end, for the magnitude fallback
    np.testing.assert_allclose(h.final_kernels["pw"], _plain_norms(plain.steps[-1]["pw"], (3,)),
                               rtol=1e-6)  # fmt: skip
    # the history plugs into channel pruning
    small = kl.prune_channels(model, ratio=0.3, importance="legc", history=h)
    assert small.count_params() < model.count_params()
    assert kl.count_macs(small) < kl.count_macs(model)
    assert small.output_shape == model.output_shape
    # a weight-level history is refused by the unit scorer with the fix
    wrec = kl.WeightHistory(every=1, window=12, validation_data=(x[:64], y[:64]), target="loss")
    _model().fit(x, y, batch_size=16, epochs=3, callbacks=[wrec], verbose=0)
    with pytest.raises(InvalidArgumentError, match="UnitHistory|units"):
        kl.prune_channels(model, ratio=0.3, importance="legc", history=wrec.history)


def test_unit_history_refuses_an_unknown_statistic():
    with pytest.raises(InvalidArgumentError, match="statistic"):
        kl.UnitHistory(window=10, statistic="median")


def test_unit_history_scores_dense_neurons_for_the_neuron_pruner():
    # issue 27: the unit importance that channel pruning reads also ranks hidden Dense neurons
    from keras_legc import neurons
    from keras_legc.core.units import unit_importance
    from keras_legc.errors import MaskMismatchError
    from keras_legc.structure.importance import UnitLegc

    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([
        keras.Input((100,)), keras.layers.Dense(16, activation="relu", name="h1"),
        keras.layers.Dense(8, activation="relu", name="h2"),
        keras.layers.Dense(3, activation="softmax", name="out"),
    ])  # fmt: skip
    mlp.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
    x, y = _data()
    x = x.reshape(len(x), -1)
    rec = kl.UnitHistory(every=1, window=12, overlap=0.0, validation_data=(x[:64], y[:64]),
                         target="loss")  # fmt: skip
    mlp.fit(x, y, batch_size=16, epochs=6, callbacks=[rec], verbose=0, shuffle=False)
    scores = neurons.legc_units(rec.history)(mlp)
    assert scores.layers == ["h1", "h2"] and scores.method == "legc_units"
    # the same ranks as unit_importance of the history's own scores, layer by layer
    unit = UnitLegc(rec.history)
    values = rec.history.final_kernels
    want = unit_importance(unit.scores, values)
    for name in ("h1", "h2"):
        np.testing.assert_array_equal(scores.scores[name], want[name])
    record = neurons.prune_neurons(mlp, neurons.legc_units(rec.history), x[:64], y[:64],
                                   fraction=0.25)  # fmt: skip
    small = neurons.shrink(mlp, record)
    assert small.count_params() < mlp.count_params()
    # the history of another model is refused with the fix
    other = keras.Sequential([keras.Input((100,)), keras.layers.Dense(5, name="h1"),
                              keras.layers.Dense(8, name="h2"), keras.layers.Dense(3, name="out")])  # fmt: skip
    with pytest.raises(MaskMismatchError, match="no series of 5 units for Dense layer 'h1'"):
        neurons.legc_units(rec.history)(other)
