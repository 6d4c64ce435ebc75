"""Neuron pruning: brute force (batched == naive == Keras), Taylor terms vs finite differences,
shrink == masked model, refusals, the removal loop, LEGC aggregation, export and the CLI."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import keras_legc as kl
from keras_legc import neurons as N
from keras_legc.errors import InvalidArgumentError, MaskMismatchError, ModelStructureError
from keras_legc.keras.flavour import keras

k = keras()


def make_model(sizes, acts, seed=0, scale=1.0, input_shape=None, flatten=False):
    """A Dense chain with seeded random weights (no training needed)."""
    rng = np.random.default_rng(seed)
    layers = [k.layers.Input(shape=input_shape or (sizes[0],))]
    if flatten:
        layers.append(k.layers.Flatten())
    for i, (units, act) in enumerate(zip(sizes[1:], acts, strict=True)):
        layers.append(k.layers.Dense(units, activation=act, name=f"d{i}"))
    model = k.Sequential(layers)
    for layer, (a, b) in zip(
        model.layers[-len(acts) :], zip(sizes[:-1], sizes[1:], strict=True), strict=True
    ):
        w = rng.normal(0, scale / np.sqrt(a), (a, b)).astype("float32")
        layer.set_weights([w, rng.normal(0, 0.3, b).astype("float32")])
    return model


def data(model, n=64, seed=1, classes=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, *model.input_shape[1:])).astype("float32")
    c = classes or model.output_shape[-1]
    y = rng.integers(0, c, n)
    return x, y


# One case per supported output/loss combination and hidden activation.
CASES = {
    "sigmoid-1h-sse": ([5, 7, 3], ["sigmoid", "sigmoid"], "sse"),
    "sigmoid-2h-sse": ([5, 6, 4, 3], ["sigmoid", "sigmoid", "sigmoid"], "sse"),
    "tanh-relu-softmax-ce": ([5, 6, 5, 4], ["tanh", "relu", "softmax"], "crossentropy"),
    "relu-linear-sse": ([4, 6, 2], ["relu", "linear"], "sse"),
    "tanh-sigmoid-bce": ([4, 6, 3], ["tanh", "sigmoid"], "crossentropy"),
}


def keras_loss(model, x, t, loss):
    """Plain reference: E from Keras outputs."""
    o = np.asarray(model(x), dtype=np.float64)
    if loss == "sse":
        return 0.5 * np.sum((o - t) ** 2)
    if model.layers[-1].activation.__name__ == "softmax":
        return -np.sum(t * np.log(o))
    return -np.sum(t * np.log(o) + (1 - t) * np.log(1 - o))


def onehot(y, c):
    return np.eye(c)[y]


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_forward_equals_keras(case):
    sizes, acts, _ = CASES[case]
    model = make_model(sizes, acts, scale=2.0)
    x, _ = data(model)
    net = N.DenseNet.from_model(model)
    np.testing.assert_allclose(net.output(x), np.asarray(model(x)), rtol=0, atol=1e-5)
    assert net.hidden == [f"d{i}" for i in range(len(acts) - 1)]


@pytest.mark.parametrize("case", list(CASES))
def test_batched_brute_force_equals_naive_and_keras(case):
    sizes, acts, loss = CASES[case]
    model = make_model(sizes, acts, scale=2.0, seed=3)
    x, y = data(model, n=50)
    t = onehot(y, sizes[-1])
    # chunk_elements small: several chunks per layer
    batched = N.brute_force(loss, chunk_elements=200)(model, x, y)
    naive = N.brute_force(loss, batched=False)(model, x, y)
    base = keras_loss(model, x, t, loss)
    ref = {}
    clone = k.models.clone_model(model)
    for li, name in enumerate(batched.layers):  # independent: zero the unit's outgoing row
        ref[name] = np.empty(sizes[li + 1])
        for j in range(sizes[li + 1]):
            ws = [w.copy() for w in model.get_weights()]
            ws[2 * (li + 1)][j, :] = 0.0
            clone.set_weights(ws)
            ref[name][j] = keras_loss(clone, x, t, loss) - base
    for name in batched.layers:
        np.testing.assert_allclose(batched[name], naive[name], rtol=1e-6, atol=1e-9 * abs(base))
        np.testing.assert_allclose(batched[name], ref[name], rtol=1e-3, atol=1e-4 * abs(base))
    assert batched.info["loss"] == loss


def test_brute_force_with_masked_units_equals_naive():
    model = make_model([5, 8, 6, 3], ["sigmoid", "tanh", "sigmoid"], scale=2.0)
    x, y = data(model)
    net = N.DenseNet.from_model(model).with_removed({"d0": [1, 4], "d1": [0]})
    a = N.brute_force("sse", chunk_elements=100)(net, x, y)
    b = N.brute_force("sse", batched=False)(net, x, y)
    assert np.isnan(a["d0"][[1, 4]]).all() and np.isnan(a["d1"][0])
    ok = ~np.isnan(b["d0"])
    np.testing.assert_allclose(a["d0"][ok], b["d0"][ok], rtol=1e-6, atol=1e-12)
    assert ("d0", 1) not in a.ranking() and len(a.ranking()) == 8 + 6 - 3


def reference_loss_scaled(model, x, t, loss, layer_index, unit, s):
    """Plain numpy forward with hidden unit `unit` of layer `layer_index` scaled by s."""
    a = x.reshape(len(x), -1).astype(np.float64)
    dense = [la for la in model.layers if isinstance(la, k.layers.Dense)]
    for i, layer in enumerate(dense):
        w, b = (v.astype(np.float64) for v in layer.get_weights())
        z = a @ w + b
        f = layer.activation.__name__
        if f == "sigmoid":
            a = 1 / (1 + np.exp(-z))
        elif f == "tanh":
            a = np.tanh(z)
        elif f == "relu":
            a = np.maximum(z, 0)
        elif f == "softmax":
            e = np.exp(z - z.max(1, keepdims=True))
            a = e / e.sum(1, keepdims=True)
        else:
            a = z
        if i == layer_index:
            a = a.copy()
            a[:, unit] *= s
    if loss == "sse":
        return 0.5 * np.sum((a - t) ** 2)
    if dense[-1].activation.__name__ == "softmax":
        return -np.sum(t * np.log(a))
    return -np.sum(t * np.log(a) + (1 - t) * np.log(1 - a))


@pytest.mark.parametrize("case", list(CASES))
def test_taylor_terms_equal_finite_differences(case):
    """-O dE/dO = -dE/ds and 0.5 O^2 d2E/dO2 = 0.5 d2E/ds2 where s scales the unit's output.

    The first order is exact everywhere. The diagonal second order is exact for the last hidden
    layer when the loss is elementwise in the output pre-activations (SSE on elementwise outputs,
    sigmoid + BCE); otherwise (softmax-CE, earlier layers) the paper drops off-diagonal terms, and
    it is checked against a plain per-sample loop of the paper's recursion instead (next test).
    """
    sizes, acts, loss = CASES[case]
    model = make_model(sizes, acts, scale=1.5, seed=5)
    x, y = data(model, n=40)
    t = onehot(y, sizes[-1])
    first, second = N.Taylor(2, loss).terms(model, x, y)
    h = 1e-4
    last = len(acts) - 2
    exact_second = acts[-1] != "softmax"
    for li, name in enumerate(first):
        for j in range(sizes[li + 1]):
            e = [reference_loss_scaled(model, x, t, loss, li, j, 1 + d) for d in (-h, 0.0, h)]
            d1 = (e[2] - e[0]) / (2 * h)
            d2 = (e[2] - 2 * e[1] + e[0]) / h**2
            assert first[name][j] == pytest.approx(-d1, rel=1e-5, abs=1e-6)
            if li == last and exact_second:
                assert second[name][j] == pytest.approx(0.5 * d2, rel=2e-3, abs=1e-4)


def paper_recursion_reference(model, x, t, loss):
    """The paper's diagonal second-derivative back-propagation, one sample and unit at a time."""
    dense = [la for la in model.layers if isinstance(la, k.layers.Dense)]
    ws = [la.get_weights()[0].astype(np.float64) for la in dense]
    bs = [la.get_weights()[1].astype(np.float64) for la in dense]
    fs = [la.activation.__name__ for la in dense]
    out = {la.name: np.zeros(w.shape[1]) for la, w in zip(dense[:-1], ws[:-1], strict=True)}

    def f_and_derivs(name, z):
        if name == "sigmoid":
            s = 1 / (1 + np.exp(-z))
            return s, s * (1 - s), s * (1 - s) * (1 - 2 * s)
        if name == "tanh":
            a = np.tanh(z)
            return a, 1 - a * a, -2 * a * (1 - a * a)
        if name == "relu":
            return max(z, 0.0), float(z > 0), 0.0
        return z, 1.0, 0.0

    for n in range(len(x)):
        acts, zs = [x[n].astype(np.float64)], []
        for w, b, f in zip(ws, bs, fs, strict=True):
            z = acts[-1] @ w + b
            zs.append(z)
            if f == "softmax":
                e = np.exp(z - z.max())
                acts.append(e / e.sum())
            else:
                acts.append(np.array([f_and_derivs(f, zz)[0] for zz in z]))
        o = acts[-1]
        c = len(o)
        if loss == "crossentropy":
            g = [o[i] - t[n, i] for i in range(c)]
            hh = [o[i] * (1 - o[i]) for i in range(c)]
        else:
            g, hh = [], []
            for i in range(c):
                _, d1, d2 = f_and_derivs(fs[-1], zs[-1][i])
                g.append((o[i] - t[n, i]) * d1)
                hh.append(d1 * d1 + (o[i] - t[n, i]) * d2)
        for li in range(len(dense) - 2, -1, -1):
            w = ws[li + 1]
            units = w.shape[0]
            ga = [sum(g[i] * w[j, i] for i in range(len(g))) for j in range(units)]
            ha = [sum(hh[i] * w[j, i] ** 2 for i in range(len(hh))) for j in range(units)]
            for j in range(units):
                a = acts[li + 1][j]
                out[dense[li].name][j] += -a * ga[j] + 0.5 * a * a * ha[j]
            new_g, new_h = [], []
            for j in range(units):
                _, d1, d2 = f_and_derivs(fs[li], zs[li][j])
                new_g.append(ga[j] * d1)
                new_h.append(ha[j] * d1 * d1 + ga[j] * d2)
            g, hh = new_g, new_h
    return out


@pytest.mark.parametrize("case", ["sigmoid-2h-sse", "tanh-relu-softmax-ce"])
def test_taylor2_equals_plain_loop_of_the_paper_recursion(case):
    sizes, acts, loss = CASES[case]
    model = make_model(sizes, acts, scale=1.5, seed=7)
    x, y = data(model, n=12)
    ref = paper_recursion_reference(model, x, onehot(y, sizes[-1]), loss)
    got = N.taylor2(loss)(model, x, y)
    for name in ref:
        np.testing.assert_allclose(got[name], ref[name], rtol=1e-9, atol=1e-12)


def test_taylor_refuses_softmax_with_sse():
    model = make_model([4, 5, 3], ["sigmoid", "softmax"])
    x, y = data(model)
    with pytest.raises(InvalidArgumentError, match="Fix:"):
        N.taylor2("sse")(model, x, y)
    with pytest.raises(InvalidArgumentError, match="Fix:"):
        N.brute_force("crossentropy")(make_model([4, 5, 2], ["relu", "linear"]), x, y[:, None] % 2)


def masked_reference(model, x, remove):
    """Independent: the original Keras model with the removed units' outgoing rows zeroed."""
    clone = k.models.clone_model(model)
    ws = [w.copy() for w in model.get_weights()]
    names = [la.name for la in model.layers if isinstance(la, k.layers.Dense)]
    for name, units in remove.items():
        ws[2 * (names.index(name) + 1)][list(units), :] = 0.0
    clone.set_weights(ws)
    return np.asarray(clone(x))


@pytest.mark.parametrize("case", list(CASES))
def test_shrunk_model_equals_masked_model(case):
    sizes, acts, _ = CASES[case]
    model = make_model(sizes, acts, scale=2.0)
    x, _ = data(model)
    remove = {"d0": [0, 2, 3]} if len(acts) == 2 else {"d0": [1, 3], "d1": [0, 2]}
    small = kl.shrink(model, remove)
    assert isinstance(small, k.Sequential)
    dense = [la for la in small.layers if isinstance(la, k.layers.Dense)]
    assert [la.name for la in dense] == [f"d{i}" for i in range(len(acts))]
    assert [la.activation.__name__ for la in dense] == acts
    assert dense[0].units == sizes[1] - len(remove["d0"])
    np.testing.assert_allclose(small(x), masked_reference(model, x, remove), rtol=0, atol=1e-5)
    assert N.count_macs(small) < N.count_macs(model)


def test_shrink_with_flatten_input_and_record():
    model = make_model([12, 9, 4], ["relu", "softmax"], input_shape=(3, 4), flatten=True)
    x, y = data(model)
    rec = kl.prune_neurons(model, "brute_force", x.reshape(len(x), -1), y, n=4)
    small = kl.shrink(model, rec)
    assert small.input_shape == (None, 3, 4)
    np.testing.assert_allclose(
        small(x), masked_reference(model, x, rec.as_dict()), rtol=0, atol=1e-5
    )


def test_shrink_folding_mean_activations_equals_units_replaced_by_means():
    model = make_model([5, 8, 6, 3], ["sigmoid", "tanh", "sigmoid"], scale=2.0)
    x, _ = data(model, n=80)
    remove = {"d0": [2, 5], "d1": [1]}
    small = kl.shrink(model, remove, fold_mean_activations=x)
    # plain reference: forward, replacing removed units' outputs by their mean over x, in order
    a = x.astype(np.float64)
    dense = [la for la in model.layers if isinstance(la, k.layers.Dense)]
    for la in dense:
        w, b = (v.astype(np.float64) for v in la.get_weights())
        z = a @ w + b
        a = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}[la.activation.__name__](z)
        for j in remove.get(la.name, []):
            a[:, j] = a[:, j].mean()
    np.testing.assert_allclose(small(x), a, rtol=0, atol=1e-5)
    # and it differs from plain removal (the fold did something)
    assert np.max(np.abs(small(x) - kl.shrink(model, remove)(x))) > 1e-3


def test_shrink_refusals():
    model = make_model([4, 5, 3, 2], ["relu", "relu", "softmax"])
    with pytest.raises(InvalidArgumentError, match=r"all 5 units of layer 'd0'.*Fix:"):
        kl.shrink(model, {"d0": [0, 1, 2, 3, 4]})
    with pytest.raises(InvalidArgumentError, match="output layer.*Fix:"):
        kl.shrink(model, {"d2": [0]})
    with pytest.raises(InvalidArgumentError, match="no Dense layer named 'nope'.*Fix:"):
        kl.shrink(model, {"nope": [0]})
    with pytest.raises(InvalidArgumentError, match="0..4.*Fix:"):
        kl.shrink(model, {"d0": [5]})
    with pytest.raises(InvalidArgumentError, match="Fix:"):
        kl.shrink(model, [("d0", 1)])


def test_refuses_models_that_are_not_plain_dense_chains():
    inp = k.layers.Input((4,))
    h = k.layers.Dense(5, activation="relu")(inp)
    model = k.Sequential([k.layers.Input((4,)), k.layers.Dense(5), k.layers.Dropout(0.1),
                          k.layers.Dense(2)])  # fmt: skip
    with pytest.raises(ModelStructureError, match="Dropout.*Fix:"):
        N.DenseNet.from_model(model)
    skip = k.Model(inp, k.layers.Dense(4)(k.layers.Add()([h, k.layers.Dense(5)(inp)])))
    with pytest.raises(ModelStructureError, match="Add.*Fix:"):
        kl.shrink(skip, {})
    gelu = k.Sequential([k.layers.Input((4,)), k.layers.Dense(5, "gelu"), k.layers.Dense(2)])
    with pytest.raises(ModelStructureError, match="gelu.*Fix:"):
        N.brute_force()(gelu, np.zeros((3, 4)), np.zeros(3, int))
    single = k.Sequential([k.layers.Input((4,)), k.layers.Dense(2)])
    with pytest.raises(ModelStructureError, match="no hidden neuron.*Fix:"):
        N.DenseNet.from_model(single)


def test_prune_neurons_iterative_brute_force_removes_the_exact_best_each_step():
    model = make_model([6, 8, 6, 3], ["sigmoid", "sigmoid", "sigmoid"], scale=3.0, seed=11)
    x, y = data(model, n=100)
    xv, yv = data(model, n=60, seed=2)
    rec = kl.prune_neurons(model, "brute_force", x, y, n=6, x_val=xv, y_val=yv)
    assert len(rec.removed) == 6 and len(rec.accuracy) == 7 and rec.iterative
    net = N.DenseNet.from_model(model)
    for step, (layer, unit) in enumerate(rec.removed):
        scores = N.brute_force()(net, x, y)
        assert (layer, unit) == scores.ranking()[0]
        net = net.with_removed({layer: [unit]})
        assert rec.accuracy[step + 1] == pytest.approx(N.accuracy(net, xv, yv))
    assert rec.accuracy[0] == pytest.approx(N.accuracy(model, xv, yv))
    np.testing.assert_allclose(rec.fraction_removed, np.arange(7) / 14)


def test_prune_neurons_single_pass_follows_the_first_ranking_and_keeps_a_unit_per_layer():
    model = make_model([4, 3, 2, 3], ["tanh", "tanh", "softmax"], seed=4)
    x, y = data(model)
    rec = kl.prune_neurons(model, N.taylor1(), x, y, n=3, iterative=False)
    first = rec.first_scores.ranking()
    assert not rec.iterative and rec.method == "taylor1"
    # the order is the first ranking, skipping a layer's last unit
    expected, left = [], {"d0": 3, "d1": 2}
    for layer, unit in first:
        if left[layer] > 1 and len(expected) < 3:
            expected.append((layer, unit))
            left[layer] -= 1
    assert rec.removed == expected
    with pytest.raises(InvalidArgumentError, match="at most 3 can go.*Fix:"):
        kl.prune_neurons(model, "random", x, y, n=4)
    everything = kl.prune_neurons(model, "random", x, y, max_drop=1.0)
    assert len(everything.removed) == 3 and {len(v) for v in everything.as_dict().values()} <= {
        1,
        2,
    }


def test_prune_neurons_max_drop_and_fraction():
    model = make_model([6, 10, 3], ["sigmoid", "sigmoid"], scale=3.0, seed=8)
    x, y = data(model, n=120)
    rec = kl.prune_neurons(model, "brute_force", x, y, max_drop=0.02)
    assert rec.accuracy[0] - rec.accuracy.min() <= 0.02 + 1e-12
    if len(rec.removed) < 9:  # it stopped because the next removal would exceed the drop
        nxt = N.brute_force()(N.DenseNet.from_model(model).with_removed(rec.as_dict()), x, y)
        layer, unit = nxt.ranking()[0]
        net = (
            N.DenseNet.from_model(model)
            .with_removed({**rec.as_dict()})
            .with_removed({layer: [unit]})
        )
        assert rec.accuracy[0] - N.accuracy(net, x, y) > 0.02
    assert len(kl.prune_neurons(model, "random", x, y, fraction=0.5).removed) == 5
    for bad in ({}, {"n": 1, "fraction": 0.1}, {"fraction": 1.0}, {"n": -1}, {"max_drop": 2}):
        with pytest.raises(InvalidArgumentError):
            kl.prune_neurons(model, "random", x, y, **bad)
    with pytest.raises(InvalidArgumentError, match="unknown neuron scorer.*Fix:"):
        kl.prune_neurons(model, "taylor3", x, y, n=1)


def test_custom_scorer_and_random_determinism():
    model = make_model([4, 6, 3], ["relu", "softmax"])
    x, y = data(model)

    def by_bias(net, x, y):  # a user's own scorer: smallest bias first
        net = N.DenseNet.from_model(net)
        return N.NeuronScores({"d0": np.where(net.keep["d0"], net.biases[0], np.nan)}, "bias")

    rec = kl.prune_neurons(model, by_bias, x, y, n=2)
    b = model.layers[0].get_weights()[1]
    assert [u for _, u in rec.removed] == list(np.argsort(b)[:2])
    r1 = N.random(3)(model, x, y).ranking()
    assert r1 == N.random(3)(model, x, y).ranking() and r1 != N.random(4)(model, x, y).ranking()


def test_legc_aggregation_equals_plain_loop():
    from keras_legc.core.scoring import Scores

    model = make_model([3, 4, 2, 2], ["relu", "relu", "softmax"])
    shapes = {"d0": (3, 4), "d1": (4, 2), "d2": (2, 2)}
    rng = np.random.default_rng(0)
    p = rng.random(12 + 8 + 4)
    p[[0, 5]] = np.nan  # degenerate weights
    deg = np.isnan(p).astype(np.int8)
    scores = Scores(layers=list(shapes), shapes=shapes, pvalues=p, degenerate=deg, max_lag=2,
                    test="ssr_chi2")  # fmt: skip
    by = scores.pvalues_by_layer()
    got = N.legc(scores)(model)
    got_frac = N.legc(scores, how="fraction_noncausal", alpha=0.5)(model)
    names = list(shapes)
    for li, name in enumerate(names[:-1]):
        for j in range(shapes[name][1]):
            vals = [v for v in list(by[name][:, j]) + list(by[names[li + 1]][j, :]) if v == v]
            assert got[name][j] == pytest.approx(-np.mean(vals))
            assert got_frac[name][j] == pytest.approx(-np.mean(np.array(vals) >= 0.5))
    other = Scores(layers=["d0"], shapes={"d0": (3, 4)}, pvalues=p[:12], degenerate=deg[:12],
                   max_lag=2, test="ssr_chi2")  # fmt: skip
    with pytest.raises(MaskMismatchError, match="Fix:"):
        N.legc(other)(model)


def test_bad_data_is_refused():
    model = make_model([4, 5, 3], ["relu", "softmax"])
    x, y = data(model)
    with pytest.raises(InvalidArgumentError, match="do not fit.*Fix:"):
        N.brute_force()(model, x[:, :3], y)
    with pytest.raises(InvalidArgumentError, match="labels must lie in 0..2"):
        N.brute_force()(model, x, y + 5)
    with pytest.raises(InvalidArgumentError, match="rows but y has"):
        N.taylor2()(model, x, y[:-1])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidArgumentError, match="NaN"):
        N.brute_force()(model, bad, y)


def test_shrunk_model_exports_to_tflite(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from keras_legc.keras.export import export_tflite

    model = make_model([20, 16, 8, 4], ["relu", "relu", "softmax"], seed=2)
    x, y = data(model)
    small = kl.shrink(model, {"d0": list(range(0, 16, 2)), "d1": [0, 1, 2]})
    report = export_tflite(small, tmp_path / "small.tflite", reference_inputs=x[:8])
    assert report["verification"]["ok"] and report["kernel_weights"] == 20 * 8 + 8 * 5 + 5 * 4
    interp = Interpreter(model_path=str(tmp_path / "small.tflite"))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.set_tensor(inp["index"], x[:1])
    interp.invoke()
    want = masked_reference(model, x[:1], {"d0": list(range(0, 16, 2)), "d1": [0, 1, 2]})
    np.testing.assert_allclose(interp.get_tensor(out["index"]), want, atol=1e-5)


def test_cli_neurons_remove_shrink_and_export(tmp_path):
    from keras_legc.cli import main

    model = make_model([10, 12, 6, 3], ["sigmoid", "sigmoid", "softmax"], scale=2.0)
    x, y = data(model, n=80)
    kl.save_model(model, tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    runner = CliRunner()
    common = ["--x", str(tmp_path / "x.npy"), "--y", str(tmp_path / "y.npy")]
    res = runner.invoke(main, ["neurons", "score", str(tmp_path / "m.keras"), *common,
                               "--method", "taylor2", "--top", "3", "--out",
                               str(tmp_path / "s.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "s.json").read_text())["scores"]["d0"]) == 12
    args = ["neurons", "remove", str(tmp_path / "m.keras"), *common, "--n", "5", "--out",
            str(tmp_path / "r.json"), "--shrink-to", str(tmp_path / "small.keras")]  # fmt: skip
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "removed 5 of 18 hidden neurons" in res.output
    rec = N.NeuronPruning.load(tmp_path / "r.json")
    small = kl.load_model(tmp_path / "small.keras", compile=False)
    np.testing.assert_allclose(small(x), masked_reference(model, x, rec.as_dict()), atol=1e-5)
    res = runner.invoke(main, args)  # refuses to overwrite
    assert res.exit_code != 0 and "already exists" in res.output and "--force" in res.output
    res = runner.invoke(main, ["neurons", "shrink", str(tmp_path / "m.keras"),
                               str(tmp_path / "r.json"), str(tmp_path / "s3.keras"), "--n", "3"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert N.count_macs(kl.load_model(tmp_path / "s3.keras")) > N.count_macs(small)
    res = runner.invoke(main, ["export", str(tmp_path / "small.keras"),
                               str(tmp_path / "small.tflite")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "OK" in res.output and (tmp_path / "small.tflite").stat().st_size > 0
    res = runner.invoke(main, ["neurons", "remove", str(tmp_path / "m.keras"), *common,
                               "--method", "legc", "--n", "1", "--out", str(tmp_path / "q.json")])  # fmt: skip
    assert res.exit_code != 0 and "--legc-scores" in res.output


def test_record_roundtrip_and_no_overwrite(tmp_path):
    model = make_model([4, 6, 3], ["relu", "softmax"])
    x, y = data(model)
    rec = kl.prune_neurons(model, "taylor2", x, y, n=2)
    rec.save(tmp_path / "r.json")
    back = N.NeuronPruning.load(tmp_path / "r.json")
    assert back.removed == rec.removed and np.allclose(back.accuracy, rec.accuracy)
    with pytest.raises(kl.OutputExistsError, match="Fix:"):
        rec.save(tmp_path / "r.json")
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(InvalidArgumentError, match="Fix:"):
        N.NeuronPruning.load(tmp_path / "bad.json")


def test_prune_neurons_progress_bar_with_eta(capsys):
    model = make_model([6, 10, 3], ["sigmoid", "sigmoid"], scale=3.0, seed=8)
    x, y = data(model, n=120)
    kl.prune_neurons(model, "brute_force", x, y, n=4, progress=True)
    err = capsys.readouterr().err
    assert "prune_neurons (brute_force)" in err and "4/4" in err and "ETA" in err
    assert err.endswith("\n")
    # stopped early by max_drop: the bar's line is still ended, short of its total (9 removable)
    rec = kl.prune_neurons(model, "brute_force", x, y, max_drop=0.0, progress=True)
    err = capsys.readouterr().err
    assert f"{len(rec.removed)}/9" in err and err.endswith("\n")
    kl.prune_neurons(model, "brute_force", x, y, n=2, progress=False)
    assert capsys.readouterr().err == ""


def test_progress_lines_print_above_the_bar(capsys):
    from keras_legc._progress import Progress

    bar = Progress(3, "runs", enabled=True)
    bar.update(1)
    bar.write("run 1 done")
    out = capsys.readouterr().err
    # the bar's line is cleared, the line printed, the bar drawn again below it
    assert "\r\x1b[2Krun 1 done\n\rruns [" in out and "1/3" in out.split("run 1 done")[1]
    quiet = Progress(3, "runs", enabled=False)
    quiet.update(1)
    quiet.write("still printed")
    assert capsys.readouterr().err == "still printed\n"


@pytest.mark.parametrize("iterative", [True, False])
def test_record_accuracy_folded_is_the_folded_shrunk_models(iterative):
    model = make_model([6, 12, 8, 3], ["relu", "relu", "softmax"], scale=2.0, seed=4)
    x, y = data(model, n=150)
    xv, yv = data(model, n=90, seed=7)
    rec = kl.prune_neurons(model, "brute_force", x, y, fraction=0.4, x_val=xv, y_val=yv,
                           iterative=iterative)  # fmt: skip
    folded = kl.shrink(model, rec, fold_mean_activations=x)
    zeroed = kl.shrink(model, rec)
    assert rec.info["accuracy_folded"] == np.mean(folded(xv).numpy().argmax(1) == yv)
    assert rec.accuracy[-1] == np.mean(zeroed(xv).numpy().argmax(1) == yv)
