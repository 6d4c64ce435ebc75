"""The Keras 3 path (``import keras``, TensorFlow and JAX backends; PyTorch: test_keras3_torch.py) beside tf_keras: record ->
score -> mask -> prune -> fit -> strip, masks held exactly after every optimizer step (SGD with
momentum, AdamW with weight decay), a ``.keras`` round trip in the middle of fine-tuning, and
GradualPruning. A Keras 3 backend is fixed per process, so each backend runs in a subprocess
(this file is the script: ``python test_keras3_pipeline.py <backend>``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)).astype("float32")
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype("int64")
    return x, y


def _model(k, seed: int = 0):
    k.utils.set_random_seed(seed)
    first = k.Input((6,)) if k.__name__ == "keras" else k.layers.InputLayer(input_shape=(6,))
    return k.Sequential([
        first,
        k.layers.Dense(8, activation="relu", name="h"),
        k.layers.Dense(2, activation="softmax", name="o"),
    ])  # fmt: skip


def _optimizers(k) -> dict:
    return {
        "sgd_momentum": lambda: k.optimizers.SGD(0.1, momentum=0.9),
        "adamw": lambda: k.optimizers.AdamW(0.02, weight_decay=0.5),
    }


def _violations(model, mask) -> int:
    """Masked kernel entries that are not exactly 0."""
    import keras_legc as kl

    return sum(
        int(np.count_nonzero(layer.kernel.numpy()[~np.asarray(mask[layer.name], bool)]))
        for layer in kl.dense_layers(model)
    )


def _step_checker(k, mask):
    """A callback of the model's Keras that counts mask violations after every optimizer step."""
    from keras_legc.keras.callback import Callback

    class Check(Callback):
        steps = violations = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1
            self.violations += _violations(self.model, mask)

    return Check()


def run_pipeline(flavour: str) -> dict:
    """The whole path on one Keras ("keras3" with this process's backend, or "keras2")."""
    import keras_legc as kl

    if flavour == "keras3":
        import keras as k
    else:
        import tf_keras as k
    x, y = _data()
    model = _model(k)
    model.compile(k.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    rec = kl.WeightHistory(validation_data=(x[:64], y[:64]), every=1, window=10, background=False)
    model.fit(x, y, validation_data=(x[:64], y[:64]), epochs=4, batch_size=16, shuffle=False,
              verbose=0, callbacks=[rec])  # fmt: skip
    history = rec.history
    mask = kl.score(history, progress=False).mask(sparsity=0.5)
    out = {"windows": history.n_windows, "le_finite": bool(np.isfinite(history.le).all())}
    for name, make in _optimizers(k).items():
        pruned = kl.prune(model, mask, rewind_to=history)
        pruned.compile(make(), "sparse_categorical_crossentropy")
        check = _step_checker(k, mask)
        pruned.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0,
                   callbacks=[check, *kl.pruning_callbacks(pruned)])  # fmt: skip
        small = kl.strip(pruned)
        # Keras 3 zeroes the masked weights inside every optimizer step; TF-MOT (Keras 2) masks
        # them in the forward pass and zeroes the variables at the end of each epoch.
        after = check.violations if flavour == "keras3" else _violations(pruned, mask)
        out[name] = {
            "steps": check.steps,
            "violations": after,
            "stripped_violations": _violations(small, mask),
            "strip_same_outputs": bool(np.allclose(small.predict(x, verbose=0),
                                                   pruned.predict(x, verbose=0), atol=1e-6)),
            "moved": bool(any(not np.array_equal(a, b) for a, b in
                              zip(pruned.get_weights(), model.get_weights(), strict=True))),
        }  # fmt: skip
        if flavour == "keras3":
            out[name]["stripped_constraints"] = [
                type(la.kernel.constraint).__name__ for la in kl.dense_layers(small)
            ]
    if flavour == "keras3":
        out["roundtrip"] = _roundtrip(k, model, mask)
        out["gradual"] = _gradual(k, model)
    return out


def _roundtrip(k, model, mask) -> dict:
    """Save a pruned model after one epoch of fine-tuning, load it without custom_objects, go on."""
    import keras_legc as kl
    from keras_legc.keras.pruning import mask_of

    x, y = _data()
    pruned = kl.prune(model, mask)
    pruned.compile(k.optimizers.AdamW(0.02, weight_decay=0.5), "sparse_categorical_crossentropy")
    pruned.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pruned.keras")
        pruned.save(path)
        loaded = k.saving.load_model(path)
    held = mask_of(loaded)
    same = bool(np.allclose(loaded.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=0))
    check = _step_checker(k, mask)
    loaded.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, callbacks=[check])
    return {
        "mask_equal": all(np.array_equal(held[n], np.asarray(mask[n], bool)) for n in ("h", "o")),
        "same_outputs": same,
        "steps": check.steps,
        "violations": check.violations,
    }


def _gradual(k, model) -> dict:
    import keras_legc as kl
    from keras_legc.keras.pruning import mask_of

    x, y = _data()
    wrapped = kl.prune(model, kl.Mask.keep_all(model))
    wrapped.compile(k.optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    rec = kl.WeightHistory(every=1, window=10, validation_data=(x[:64], y[:64]), background=False)
    schedule = kl.PolynomialDecay(0.8, begin_step=0, end_step=48, frequency=16)
    gradual = kl.GradualPruning(rec, schedule, min_windows=5, recent_windows=6)
    wrapped.fit(x, y, epochs=4, batch_size=16, shuffle=False, verbose=0, callbacks=[rec, gradual])
    return {
        "sparsities": [round(entry["sparsity"], 6) for entry in gradual.log],
        "final_sparsity": round(float(gradual.mask.sparsity), 6),
        "violations": _violations(wrapped, gradual.mask),
        "held_equal": all(np.array_equal(mask_of(wrapped)[n], np.asarray(gradual.mask[n], bool))
                          for n in ("h", "o")),
    }  # fmt: skip


def _run(backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.pop("TF_USE_LEGACY_KERAS", None)
    done = subprocess.run([sys.executable, str(HERE), "keras3"], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _check(result: dict, flavour: str) -> None:
    assert result["windows"] >= 5 and result["le_finite"]
    for name in ("sgd_momentum", "adamw"):
        r = result[name]
        assert r["steps"] == 2 * 16 and r["moved"], r
        assert r["violations"] == 0 and r["stripped_violations"] == 0, r
        assert r["strip_same_outputs"], r
        if flavour == "keras3":
            assert r["stripped_constraints"] == ["NoneType", "NoneType"], r


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_keras3_pipeline_on_each_backend(backend):
    pytest.importorskip(backend)
    check_keras3(_run(backend))


def check_keras3(result: dict) -> None:
    """The Keras 3 pipeline's result (also test_keras3_torch.py's, for the PyTorch backend)."""
    _check(result, "keras3")
    trip = result["roundtrip"]
    assert trip["mask_equal"] and trip["same_outputs"], trip
    assert trip["steps"] == 16 and trip["violations"] == 0, trip
    grad = result["gradual"]
    assert grad["final_sparsity"] == pytest.approx(0.8, abs=0.01), grad
    assert grad["sparsities"] == sorted(grad["sparsities"]) and len(grad["sparsities"]) == 4
    assert grad["violations"] == 0 and grad["held_equal"], grad


def test_tf_keras_pipeline_in_process():
    _check(run_pipeline("keras2"), "keras2")


if __name__ == "__main__":
    print(json.dumps(run_pipeline(sys.argv[1])))
