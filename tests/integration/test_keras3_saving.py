"""kl.save_model / kl.load_model for both flavours: a Keras 3 model comes back as Keras 3, a tf_keras
model as tf_keras, with the same weights and outputs; code in a Keras 3 file is refused by default."""

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.errors import ModelStructureError, OutputExistsError
from keras_legc.keras.flavour import keras as tf_keras
from keras_legc.keras.flavour import model_flavour
from keras_legc.keras.saving import describe_flavour, keras3, keras_file_flavour


def keras3_mlp(seed=0):
    k = keras3()
    k.utils.set_random_seed(seed)
    return k.Sequential(
        [k.Input((6,)), k.layers.Dense(5, activation="tanh"), k.layers.Dense(2)], name="k3"
    )


def keras2_mlp(seed=0):
    k = tf_keras()
    k.utils.set_random_seed(seed)
    return k.Sequential(
        [k.layers.Input((6,)), k.layers.Dense(5, activation="tanh"), k.layers.Dense(2)], name="k2"
    )


@pytest.mark.parametrize(("build", "flavour"), [(keras3_mlp, "keras3"), (keras2_mlp, "keras2")])
def test_round_trip_keeps_flavour_weights_and_outputs(tmp_path, build, flavour):
    model = build()
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    model.fit(x, x[:, :2], epochs=1, verbose=0)  # optimizer state exists and is saved too
    path = kl.save_model(model, tmp_path / "m.keras")
    assert keras_file_flavour(path) == flavour
    back = kl.load_model(path)
    assert model_flavour(back) == flavour
    for want, got in zip(model.get_weights(), back.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(model(x)))
    assert back.optimizer is not None  # compile=True restores the optimizer
    with pytest.raises(OutputExistsError):
        kl.save_model(model, path)
    kl.save_model(model, path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # no temp file left


def test_describe_flavour_names_the_backend():
    assert describe_flavour(keras3_mlp()) == f"Keras 3 ({keras3().backend.backend()} backend)"
    assert describe_flavour(keras2_mlp()) == "Keras 2 (tf_keras)"


def test_save_model_refuses_what_is_not_a_keras_model(tmp_path):
    with pytest.raises(ModelStructureError, match="expected a Keras model"):
        kl.save_model(object(), tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_keras3_safe_mode_refuses_a_lambda_model_unless_unsafe(tmp_path):
    k = keras3()
    model = k.Sequential([k.Input((4,)), k.layers.Lambda(lambda t: t * 2), k.layers.Dense(2)])
    path = kl.save_model(model, tmp_path / "lam.keras")
    with pytest.raises(ModelStructureError, match=r"Lambda.*executes Python code.*unsafe=True"):
        kl.load_model(path, compile=False)
    back = kl.load_model(path, compile=False, unsafe=True)
    x = np.ones((3, 4), "float32")
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(model(x)), rtol=1e-6)


def test_a_garbage_keras_file_gives_the_clear_error(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"\x00garbage" * 20)
    with pytest.raises(ModelStructureError, match="is not a Keras model file.*Fix: pass a model"):
        kl.load_model(path)


def test_old_import_path_still_works():
    from keras_legc.keras import pruning, saving

    assert pruning.save_model is saving.save_model and pruning.load_model is saving.load_model
    assert kl.save_model is saving.save_model and kl.load_model is saving.load_model


def test_a_keras3_h5_file_loads_as_keras3_in_the_library_and_the_cli(tmp_path):
    """Since TF 2.16, model.save("x.h5") and ModelCheckpoint("best.h5") write Keras 3 HDF5."""
    from click.testing import CliRunner

    from keras_legc.cli import main

    model = keras3_mlp()
    path = tmp_path / "best.h5"
    model.save(path)
    assert keras_file_flavour(path) == "keras3"
    back = kl.load_model(path, compile=False)
    assert model_flavour(back) == "keras3"
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    np.testing.assert_allclose(np.asarray(back(x)), np.asarray(model(x)), rtol=1e-6)
    done = CliRunner().invoke(main, ["export", str(path), str(tmp_path / "m.tflite")])
    assert done.exit_code == 0, done.output
    assert "Keras 3" in done.output
