"""The Keras-model branches of masking and scoring (issue 19: survivors the numpy unit tests could
not reach): kernels and shapes read from a real model, and Scores.load(model=) refusing the scores
of another model. A two-layer tf_keras/Keras model; expected values are read from its layers."""

import warnings

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import LegcWarning, MaskMismatchError
from keras_legc.keras.flavour import keras
from keras_legc.masking.mask import kernels_of, shapes_of


def model_of(hidden: int, seed: int = 0):
    k = keras()
    k.utils.set_random_seed(seed)
    return k.Sequential(
        [k.layers.Input(shape=(5,)), k.layers.Dense(hidden, activation="tanh"), k.layers.Dense(2)]
    )


def kernels_by_hand(model) -> dict[str, np.ndarray]:
    return {layer.name: np.asarray(layer.get_weights()[0]) for layer in model.layers}


def test_kernels_and_shapes_come_from_the_models_dense_layers():
    model = model_of(4)
    want = kernels_by_hand(model)
    got = kernels_of(model)
    assert sorted(got) == sorted(want)
    for name, kernel in want.items():
        np.testing.assert_array_equal(got[name], kernel)
    assert shapes_of(model) == {name: kernel.shape for name, kernel in want.items()}


def scores_of(model, rng):
    shapes = {name: kernel.shape for name, kernel in kernels_by_hand(model).items()}
    n, k = sum(int(np.prod(s)) for s in shapes.values()), 30
    history = kl.History(layers=list(shapes), shapes=shapes, le=rng.normal(size=(n, k)),
                         target=rng.normal(size=k), window=10, overlap=0.1, every=1,
                         n_snapshots=10 + 9 * (k - 1))  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        return kl.score(history, 2, progress=False)


def test_scores_load_against_their_own_model_and_refuse_another(rng, tmp_path):
    model = model_of(4)
    scores_of(model, rng).save(tmp_path / "s.npz")
    loaded = kl.Scores.load(tmp_path / "s.npz", model=model)
    assert loaded.shapes == shapes_of(model)
    other = model_of(3)  # same layer count, other shapes (and names)
    with pytest.raises(MaskMismatchError) as info:
        kl.Scores.load(tmp_path / "s.npz", model=other)
    have = {name: kernel.shape for name, kernel in kernels_by_hand(model).items()}
    want = {name: kernel.shape for name, kernel in kernels_by_hand(other).items()}
    assert str(info.value) == (
        f"the scores in {tmp_path / 's.npz'} belong to another model: layers/shapes {have}, the "
        f"model has {want}. Fix: score this model's own history."
    )


def test_lamp_on_a_depthwise_separable_keras_model_keeps_every_layer():
    # DS-CNN's shape in small: depthwise kernels (9 weights per channel, small after training)
    # between 1x1 convolutions; global magnitude at 90% empties the depthwise layer, LAMP keeps
    # part of every kernel and prunes exactly 90% of all
    k = keras()
    k.utils.set_random_seed(0)
    model = k.Sequential([
        k.layers.Input(shape=(8, 8, 1)),
        k.layers.Conv2D(16, 3, name="conv"),
        k.layers.DepthwiseConv2D(3, name="dw"),
        k.layers.Conv2D(32, 1, name="pw"),
        k.layers.GlobalAveragePooling2D(),
        k.layers.Dense(4, name="out"),
    ])  # fmt: skip
    dw = model.get_layer("dw")
    dw.set_weights([w * 0.01 if w.ndim == 4 else w for w in dw.get_weights()])
    with pytest.warns(LegcWarning, match="dw"):
        glob = kl.magnitude_mask(model, 0.9)
    assert not glob["dw/depthwise_kernel"].any()
    lamp = kl.magnitude_mask(model, 0.9, per_layer="lamp")
    assert all(keep.any() for _, keep in lamp.items())
    assert lamp.n_pruned == round(0.9 * lamp.n_weights)
    assert set(lamp.layers) == {"conv", "dw/depthwise_kernel", "pw", "out"}
