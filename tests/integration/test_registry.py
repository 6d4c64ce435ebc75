"""Every registered layer kind through the whole path, on Keras 3 (TensorFlow and JAX backends) and
on tf_keras + TF-MOT: listed by ``prunable_weights``, recorded by ``WeightHistory``, scored, masked
(unstructured, conv blocks and N:M), held at exactly 0 after every optimizer step (SGD with
momentum, AdamW), saved to ``.keras`` and loaded in the middle of fine-tuning, stripped and exported
(float and int8) with output parity. Two small models hold the kinds between them (a convnet; a
sequence net), so each flavour builds two models rather than one per kind. A Keras 3 backend is
fixed per process, so each flavour runs in a subprocess (this file is the script:
``python test_registry.py <flavour>``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
FLAVOURS = ("keras3-tensorflow", "keras3-jax", "tf_keras")


def _custom_class(k):
    """A custom layer that opts in with TF-MOT's protocol (registered so .keras files load)."""
    register = getattr(getattr(k, "saving", None), "register_keras_serializable", None) or (
        k.utils.register_keras_serializable
    )

    @register(package="legc_test")
    class Mix(k.layers.Layer):
        def __init__(self, units, kernel_constraint=None, **kw):
            super().__init__(**kw)
            self.units = units
            self.kernel_constraint = k.constraints.get(kernel_constraint)

        def build(self, shape):
            self.kernel = self.add_weight(name="kernel", shape=(int(shape[-1]), self.units),
                                          constraint=self.kernel_constraint)  # fmt: skip

        def call(self, x):
            return k.ops.matmul(x, self.kernel) if hasattr(k, "ops") else x @ self.kernel

        def get_prunable_weights(self):
            return [self.kernel]

        def get_config(self):
            return {**super().get_config(), "units": self.units,
                    "kernel_constraint": k.constraints.serialize(self.kernel_constraint)}  # fmt: skip

    return Mix


def convnet(k, keras3: bool, custom: bool = True):
    """Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose, Conv1D, a custom layer, Dense
    (and, Keras 3, TimeDistributed(Dense) and a nested model). ``custom=False`` leaves the custom
    layer out: JAX models export through a TensorFlow twin in another process, where a class
    registered only in this script cannot be loaded."""
    L = k.layers
    Mix = _custom_class(k)
    inp = k.Input((6, 6, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inp)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.SeparableConv2D(8, 3, padding="same", activation="relu", name="sep")(x)
    x = L.Conv2DTranspose(4, 3, padding="same", name="convt")(x)
    x = L.Reshape((36, 4))(x)
    x = L.Conv1D(8, 3, padding="same", activation="relu", name="conv1d")(x)
    if keras3:
        x = L.TimeDistributed(L.Dense(8, name="td_dense"), name="td")(x)
    x = L.GlobalAveragePooling1D()(x)
    if custom:
        x = Mix(8, name="mix")(x)
    if keras3:
        x = k.Sequential([L.Input((8,)), L.Dense(8, activation="relu", name="inner")],
                         name="nested")(x)  # fmt: skip
    out = L.Dense(3, activation="softmax", name="head")(x)
    return k.Model(inp, out)


def embnet(k, keras3: bool):
    """Embedding and Dense (integer inputs: export's verification feeds float rows, so this one
    is checked up to the stripped model)."""
    L = k.layers
    inp = k.Input((5,), dtype="int32")
    x = L.Flatten()(L.Embedding(12, 4, name="emb")(inp))
    return k.Model(inp, L.Dense(3, activation="softmax", name="head")(x))


def seqnet(k, keras3: bool):
    """LSTM, DepthwiseConv1D, SeparableConv1D, Conv1DTranspose, EinsumDense, GRU, SimpleRNN, Dense
    (and, Keras 3, a Bidirectional LSTM)."""
    L = k.layers
    x = inp = k.Input((5, 3))
    # unroll: TFLite's builtin ops cannot run the while loop of a GRU, SimpleRNN or a backward
    # LSTM (TensorList ops); unrolled over the 5 steps they convert.
    x = L.LSTM(4, return_sequences=True, unroll=True, name="lstm")(x)
    x = L.DepthwiseConv1D(3, padding="same", name="dw1d")(x)
    x = L.SeparableConv1D(4, 3, padding="same", activation="relu", name="sep1d")(x)
    x = L.Conv1DTranspose(4, 3, padding="same", name="convt1d")(x)
    x = L.EinsumDense("abc,cd->abd", output_shape=(None, 4), name="einsum")(x)
    if keras3:
        x = L.Bidirectional(L.LSTM(3, return_sequences=True, unroll=True, name="bl"), name="bi")(x)
    x = L.GRU(4, return_sequences=True, unroll=True, name="gru")(x)
    x = L.SimpleRNN(4, unroll=True, name="rnn")(x)
    out = L.Dense(3, activation="softmax", name="head")(x)
    return k.Model(inp, out)


def _data(kind: str):
    rng = np.random.default_rng(0)
    if kind == "convnet":
        x = rng.normal(size=(96, 6, 6, 3)).astype("float32")
        y = (x[:, :3, :, 0].mean(axis=(1, 2)) > 0).astype("int64") + (x[..., 1].mean((1, 2)) > 0)
    elif kind == "seqnet":
        x = rng.normal(size=(96, 5, 3)).astype("float32")
        y = (x[:, :, 0].sum(axis=1) > 0).astype("int64") + (x[:, 0, 1] > 0)
    else:
        x = rng.integers(0, 12, size=(96, 5)).astype("int32")
        y = (x[:, 0] % 3).astype("int64")
    return x, y


def _violations(kl, model, mask) -> int:
    """Masked entries that are not exactly 0, over every prunable weight."""
    from keras_legc.keras.registry import entries_by_key

    units = entries_by_key(model, warn=False)
    return sum(
        int(np.count_nonzero(units[key].numpy()[~np.asarray(mask[key], bool)])) for key in mask
    )


def _nm_ok(w, in_axis: int) -> bool:
    """At most 2 non-zero in every 4 consecutive entries along ``in_axis``."""
    w = np.moveaxis(np.asarray(w), in_axis, -1)
    w = w.reshape(-1, w.shape[-1])
    return all(
        bool(np.all(np.count_nonzero(w[:, s : s + 4], axis=1) <= 2))
        for s in range(0, w.shape[1], 4)
    )


def _pipeline(k, kind: str, flavour: str, tmp: Path) -> dict:
    import keras_legc as kl
    from keras_legc.keras.callback import Callback

    keras3 = flavour != "tf_keras"
    k.utils.set_random_seed(0)
    build = {"convnet": convnet, "seqnet": seqnet, "embnet": embnet}[kind]
    model = build(k, keras3, **({"custom": flavour != "keras3-jax"} if kind == "convnet" else {}))
    x, y = _data(kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        listed = kl.prunable_weights(model)
    out = {"listed": [[a, b, list(s)] for a, b, s in listed],
           "uncovered_warnings": sum("does not prune" in str(w.message) for w in caught)}  # fmt: skip
    model.compile(k.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    rec = kl.WeightHistory(
        every=1,
        window=5,
        overlap=0.0,
        validation_data=(x[:32], y[:32]),
        background=False,
        target="loss",
    )
    model.fit(x, y, batch_size=8, epochs=4, callbacks=[rec], verbose=0)
    history = rec.history
    out["recorded"] = {n: list(s) for n, s in history.shapes.items()}
    scores = kl.score(history, progress=False)
    out["scored"] = int(scores.n_weights)
    masks = {"unstructured": scores.mask(sparsity=0.5),
             "m_by_n": kl.magnitude_mask(model, sparsity_m_by_n=(2, 4))}  # fmt: skip
    out["m_by_n_sparsity"] = masks["m_by_n"].sparsity
    # From the scores alone (no model): the History carried each weight's input axis.
    from keras_legc.errors import InvalidArgumentError
    from keras_legc.keras.registry import entries_by_key

    units = entries_by_key(model, warn=False)
    nm = scores.mask(sparsity_m_by_n=(2, 4), ranking="legc_pvalue")
    out["scores_nm_ok"] = all(_nm_ok(nm[key], u.spec.in_axis) for key, u in units.items())
    try:
        scores.mask(sparsity=0.5, block=(1, 4))
        out["blocks_refused"] = False
    except InvalidArgumentError:
        out["blocks_refused"] = True
    out["sparsity"] = masks["unstructured"].sparsity
    out["held"], out["nm_ok"], out["parity"] = {}, None, {}
    for name, mask in masks.items():
        for opt_name, opt in (("sgd_momentum", lambda: k.optimizers.SGD(0.1, momentum=0.9)),
                              ("adamw", lambda: k.optimizers.AdamW(0.02, weight_decay=0.5))):  # fmt: skip
            pruned = kl.prune(model, mask)
            bad = []

            class Check(Callback):
                def __init__(self, bad=bad, mask=mask):
                    super().__init__()
                    self.bad, self.mask = bad, mask

                def on_train_batch_end(self, batch, logs=None):
                    self.bad.append(_violations(kl, self.model, self.mask))

            pruned.compile(opt(), "sparse_categorical_crossentropy")
            # TF-MOT masks in the forward pass and zeroes the variables once per epoch, so tf_keras
            # is checked after fit; Keras 3 after every optimizer step.
            cbs = [*([Check()] if keras3 else []), *kl.pruning_callbacks(pruned)]
            pruned.fit(x, y, batch_size=16, epochs=1, callbacks=cbs, verbose=0)
            if not keras3:  # TF-MOT masks in the forward pass, zeroes the variables per epoch
                bad = [_violations(kl, pruned, mask)]
            if name == "unstructured" and opt_name == "adamw":  # .keras round trip mid fine-tuning
                path = tmp / f"{kind}.keras"
                kl.save_model(pruned, path)
                pruned = kl.load_model(path)
                pruned.compile(opt(), "sparse_categorical_crossentropy")
                cbs = [*([Check()] if keras3 else []), *kl.pruning_callbacks(pruned)]
                pruned.fit(x, y, batch_size=16, epochs=1, callbacks=cbs, verbose=0)
                if not keras3:
                    bad.append(_violations(kl, pruned, mask))
                from keras_legc.keras.pruning import mask_of

                held = mask_of(pruned)
                out["reloaded_mask_equal"] = all(
                    np.array_equal(held[n], np.asarray(mask[n], bool)) for n in mask
                )
            out["held"][f"{name}/{opt_name}"] = {"steps": len(bad), "violations": int(sum(bad))}
        small = kl.strip(pruned)
        out[f"strip_violations/{name}"] = _violations(kl, small, mask)
        out[f"strip_same_outputs/{name}"] = bool(np.allclose(
            small.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6))  # fmt: skip
        out[f"strip_plain/{name}"] = not any(
            "Prune" in type(layer).__name__ for layer in small.layers
        )
        if name == "m_by_n":
            from keras_legc.keras.registry import prunable_entries

            units = prunable_entries(small, warn=False)
            out["nm_ok"] = all(_nm_ok(u.numpy(), u.spec.in_axis) for u in units)
        if name == "unstructured" and kind != "embnet":
            for quant in ("float", "int8"):
                try:
                    report = kl.export_tflite(small, tmp / f"{kind}_{quant}.tflite",
                                              reference_inputs=x[:16], quantization=quant,
                                              representative_data=x[:32], overwrite=True)  # fmt: skip
                    out["parity"][quant] = bool(report["verification"]["ok"])
                except Exception as exc:  # reported, asserted on by the test
                    out["parity"][quant] = f"{type(exc).__name__}: {str(exc)[:300]}"
    # Gradual pruning over every kind: a ConstantSparsity schedule, LEGC ranking of the scores.
    from keras_legc.keras.pruning import mask_of

    wrapped = kl.prune(model, kl.Mask.keep_all(model))
    wrapped.compile(k.optimizers.SGD(0.05), "sparse_categorical_crossentropy")
    rec2 = kl.WeightHistory(every=1, window=5, overlap=0.0, validation_data=(x[:32], y[:32]),
                            background=False, target="loss")  # fmt: skip
    gradual = kl.GradualPruning(rec2, kl.ConstantSparsity(0.5, begin_step=1, frequency=3),
                                scores=scores, min_windows=5, recent_windows=5)  # fmt: skip
    wrapped.fit(x, y, batch_size=16, epochs=1, verbose=0,
                callbacks=[rec2, gradual, *kl.pruning_callbacks(wrapped)])  # fmt: skip
    held = mask_of(wrapped)
    out["gradual"] = {
        "steps": [e["step"] for e in gradual.log],
        "sparsity": gradual.mask.sparsity,
        "held_equal": all(np.array_equal(held[n], gradual.mask[n]) for n in gradual.mask),
        "violations": _violations(kl, wrapped, gradual.mask),
    }
    return out


def _run(flavour: str) -> dict:
    if flavour == "tf_keras":
        import keras_legc  # noqa: F401, I001  (tf_keras before TensorFlow)
        import tf_keras as k
    else:
        os.environ["KERAS_BACKEND"] = flavour.split("-")[1]
        import keras as k
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {kind: _pipeline(k, kind, flavour, Path(tmp)) for kind in EXPECTED}


class _FlavourRuns:
    """One subprocess per flavour, all started at once (they took 112 + 57 + 50 s one after another
    on the 2-core CI machine, the slow set's tail); each test waits for its own. Output goes to
    files, not pipes, so a process that writes much cannot block while another is awaited."""

    def __init__(self, flavours, tmp: Path):
        env = {**os.environ, "PYTHONPATH": str(HERE.parents[2]), "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("KERAS_BACKEND", None)
        self.procs = {}
        for flavour in flavours:
            out, err = (open(tmp / f"{flavour}.{n}", "w+") for n in ("out", "err"))
            proc = subprocess.Popen([sys.executable, str(HERE), flavour], stdout=out, stderr=err,
                                    text=True, env=env)  # fmt: skip
            self.procs[flavour] = (proc, out, err)

    def result(self, flavour: str) -> dict:
        proc, out, err = self.procs[flavour]
        try:
            returncode = proc.wait(timeout=900)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        out.seek(0)
        err.seek(0)
        assert returncode == 0, err.read()[-4000:]
        return json.loads(out.read().strip().splitlines()[-1])

    def close(self) -> None:
        for proc, out, err in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()
            err.close()


@pytest.fixture(scope="module")
def flavour_runs(request, tmp_path_factory):
    # only the flavours selected in this session (``-k tf_keras`` starts one process, not three)
    selected = [
        item.callspec.params["flavour"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_every_registered_layer_kind_end_to_end"
        and hasattr(item, "callspec")
    ]
    runs = _FlavourRuns(dict.fromkeys(selected), tmp_path_factory.mktemp("flavours"))
    yield runs
    runs.close()


EXPECTED = {
    "convnet": ["conv", "dw/depthwise_kernel", "sep/depthwise_kernel", "sep/pointwise_kernel",
                "convt", "conv1d", "mix", "head"],
    "seqnet": ["lstm", "lstm/recurrent_kernel", "dw1d/depthwise_kernel", "sep1d/depthwise_kernel",
               "sep1d/pointwise_kernel", "convt1d", "einsum", "gru", "gru/recurrent_kernel",
               "rnn", "rnn/recurrent_kernel", "head"],
    "embnet": ["emb/embeddings", "head"],
}  # fmt: skip
KERAS3_ONLY = {"convnet": ["td_dense", "inner"], "embnet": [],
               "seqnet": ["forward_bl", "forward_bl/recurrent_kernel", "backward_bl",
                          "backward_bl/recurrent_kernel"]}  # fmt: skip


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_every_registered_layer_kind_end_to_end(flavour, flavour_runs):
    result = flavour_runs.result(flavour)
    for kind, out in result.items():
        keys = list(out["recorded"])
        want = EXPECTED[kind] + (KERAS3_ONLY[kind] if flavour != "tf_keras" else [])
        if flavour == "keras3-jax":
            want = [w for w in want if w != "mix"]
        assert sorted(keys) == sorted(want), (kind, keys)
        assert [r[:2] for r in out["listed"]] == [
            list(k.split("/")) if "/" in k else [k, "kernel"] for k in keys
        ]
        assert out["scored"] == sum(int(np.prod(s)) for s in out["recorded"].values())
        assert out["uncovered_warnings"] == 0
        assert abs(out["sparsity"] - 0.5) < 1e-3
        # partial groups (an axis of 3, 5 or 6 inputs) keep up to n - m of fewer than n weights
        assert 0.4 < out["m_by_n_sparsity"] <= 0.5 + 1e-9 and out["nm_ok"] is True
        assert out["scores_nm_ok"] is True
        # convnet: depthwise/transposed kernels; seqnet: RNN kernels; embnet: embeddings
        assert out["blocks_refused"] is True
        for run, held in out["held"].items():
            assert held["steps"] > 0 and held["violations"] == 0, (kind, run, held)
        assert out["reloaded_mask_equal"] is True
        for name in ("unstructured", "m_by_n"):
            assert out[f"strip_violations/{name}"] == 0 and out[f"strip_plain/{name}"] is True
            assert out[f"strip_same_outputs/{name}"] is True
        if kind != "embnet":
            assert out["parity"] == {"float": True, "int8": True}, (kind, out["parity"])
        gradual = out["gradual"]
        assert gradual["steps"] == [1, 4] and abs(gradual["sparsity"] - 0.5) < 1e-3, gradual
        assert gradual["held_equal"] is True and gradual["violations"] == 0


if __name__ == "__main__":
    print(json.dumps(_run(sys.argv[1])))


# ---- in this process (Keras 3 on the TensorFlow backend beside tf_keras, TF-MOT's own code) ----


def test_m_by_n_is_tfmots_pattern_on_dense_and_conv_weights():
    import tensorflow as tf
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_utils as pu

    from keras_legc.masking.policy import m_by_n_mask

    rng = np.random.default_rng(0)
    for shape in [(12, 5), (16, 3), (3, 3, 8, 4), (1, 1, 12, 6)]:
        w = rng.normal(size=shape).astype(np.float32)
        t = tf.constant(w)
        theirs = pu.m_by_n_sparsity_mask_prepare(
            pu.generate_m_by_n_mask(pu.weights_rearrange(t), (2, 4)), t.shape
        ).numpy()
        ours = m_by_n_mask([np.abs(w)], (2, 4), in_axis=0 if len(shape) == 2 else -2)
        assert np.array_equal(ours, theirs.astype(bool)), shape
        assert pu.is_pruned_m_by_n(tf.constant(w * ours), (2, 4))


def _keras3():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":  # pragma: no cover
        pytest.skip("the in-process checks use the TF backend")
    return keras


def test_unprunable_parameters_warn_once_naming_the_layers_and_their_share():
    import keras_legc as kl
    from keras_legc.errors import LegcWarning

    keras = _keras3()

    class Opaque(keras.layers.Layer):  # a 2-D weight and no get_prunable_weights
        def build(self, shape):
            self.w = self.add_weight(name="w", shape=(int(shape[-1]), 30))

        def call(self, x):
            return keras.ops.matmul(x, self.w)

    inp = keras.Input((4,))
    x = keras.layers.Dense(10, name="d1")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    out = keras.layers.Dense(2, name="d2")(Opaque(name="opaque")(x))
    model = keras.Model(inp, out)
    with pytest.warns(LegcWarning) as caught:
        assert [r.layer for r in kl.prunable_weights(model)] == ["d1", "d2"]
        kl.magnitude_mask(model, 0.5)  # the same model: no second warning
    messages = [str(w.message) for w in caught if "does not prune" in str(w.message)]
    total = model.count_params()
    assert len(messages) == 1 and "opaque (Opaque)" in messages[0] and "bn" not in messages[0]
    assert f"{100 * 300 / total:.1f}%" in messages[0]


def test_a_custom_layer_opts_in_with_get_prunable_weights_and_blocks_are_refused_clearly():
    import keras_legc as kl
    from keras_legc.errors import InvalidArgumentError

    keras = _keras3()
    Mix = _custom_class(keras)
    inp = keras.Input((6, 6, 2))
    x = keras.layers.DepthwiseConv2D(3, name="dw")(inp)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inp, Mix(16, name="mix")(x))
    assert [tuple(r) for r in kl.prunable_weights(model)] == [
        ("dw", "depthwise_kernel", (3, 3, 2, 1)), ("mix", "kernel", (32, 16))
    ]  # fmt: skip
    with pytest.raises(
        InvalidArgumentError, match=r"no block layout .*\['dw/depthwise_kernel', 'mix'\]"
    ):
        kl.magnitude_mask(model, 0.5, block=(1, 16))
    pruned = kl.prune(model, kl.magnitude_mask(model, 0.5))
    assert type(pruned.get_layer("mix").kernel.constraint).__name__ == "MaskConstraint"
    assert pruned.get_layer("mix").get_config()["kernel_constraint"] is not None


def test_exclude_leaves_depthwise_kernels_dense_so_the_rest_can_go_in_blocks():
    # what TF-MOT does with DepthwiseConv2D (its registry prunes none): the user names the layer
    import keras_legc as kl
    from keras_legc.errors import InvalidArgumentError

    keras = _keras3()
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, name="conv")(inp)
    x = keras.layers.DepthwiseConv2D(3, name="dw")(x)
    x = keras.layers.Conv2D(32, 1, name="pw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(16, name="out")(x))
    for maker in (kl.magnitude_mask, kl.random_mask):  # random used to block it silently
        with pytest.raises(InvalidArgumentError, match="no block layout"):
            maker(model, 0.5, block=(1, 16))
    drawn = kl.random_mask(model, 0.5, block=(1, 16), exclude="dw")
    assert drawn["dw/depthwise_kernel"].all()
    mask = kl.magnitude_mask(model, 0.5, block=(1, 16), exclude=["dw"])
    assert mask["dw/depthwise_kernel"].all() and mask.info["exclude"] == ["dw/depthwise_kernel"]
    rest = [k for k in mask.layers if k != "dw/depthwise_kernel"]
    pruned = sum(int((~mask[k]).sum()) for k in rest)
    assert abs(pruned / sum(mask[k].size for k in rest) - 0.5) < 0.05
    wrapped = kl.prune(model, mask)
    wrapped.compile(keras.optimizers.SGD(0.1, momentum=0.9), "mse")
    rng = np.random.default_rng(0)
    wrapped.fit(rng.normal(size=(32, 8, 8, 3)), rng.normal(size=(32, 16)), epochs=2, verbose=0)
    small = kl.strip(wrapped)
    assert np.all(small.get_layer("dw").kernel.numpy() != 0.0)
    pw = small.get_layer("pw").kernel.numpy()
    np.testing.assert_array_equal(pw != 0, mask["pw"])
    # gradual pruning on Keras 3 with the depthwise layer left dense, re-scored from the recording
    model2 = keras.models.clone_model(model)
    model2.set_weights(model.get_weights())
    wrapped = kl.prune(model2, kl.Mask.keep_all(model2))
    wrapped.compile(keras.optimizers.SGD(0.05), "mse")
    x, y = rng.normal(size=(64, 8, 8, 3)), rng.normal(size=(64, 16))
    rec = kl.WeightHistory(every=1, window=4, overlap=0.0, validation_data=(x[:16], y[:16]),
                           background=False, target="loss")  # fmt: skip
    gradual = kl.GradualPruning(rec, kl.PolynomialDecay(0.7, begin_step=0, end_step=30,
                                                        frequency=6),
                                min_windows=5, recent_windows=5, exclude="dw")  # fmt: skip
    wrapped.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[rec, gradual])
    assert "dw/depthwise_kernel" not in gradual.mask.layers
    assert gradual.mask.n_pruned == round(0.7 * gradual.mask.n_weights)
    assert "recent windows" in {e["evidence"] for e in gradual.log}
    small = kl.strip(wrapped)
    assert np.all(small.get_layer("dw").kernel.numpy() != 0.0)
    np.testing.assert_array_equal(small.get_layer("pw").kernel.numpy() != 0, gradual.mask["pw"])
