"""prune_channels and the channel importance (keras_legc/structure/prune.py, importance.py):
targets met, round_to, minimum per group, the classifier and exclude kept; scores checked against
independent computations (L1/L2 from the layers' weights, Taylor against finite differences)."""

from __future__ import annotations

import numpy as np
import pytest

import keras_legc as kl
import keras_legc.structure  # noqa: F401  (kl.structure)
from keras_legc.errors import InvalidArgumentError
from keras_legc.structure import build_graph, prune_iteratively, random_importance
from keras_legc.structure.importance import Taylor, bn_scale, l1, l2

keras = pytest.importorskip("keras")
L = keras.layers


def convnet(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((12, 12, 1))
    x = L.Conv2D(16, 3, name="c1")(inp)
    x = L.BatchNormalization(name="bn1")(x)
    x = L.ReLU()(x)
    y = L.Conv2D(16, 3, padding="same", name="c2")(x)
    x = L.Add(name="res")([x, y])
    x = L.Conv2D(24, 3, strides=2, name="c3")(x)
    x = L.Flatten(name="fl")(x)
    x = L.Dense(32, activation="relu", name="d1")(x)
    return keras.Model(inp, L.Dense(10, name="out")(x))


def sizes(model) -> dict[str, int]:
    return {", ".join(g.layers): g.size for g in kl.channel_groups(model)}


def prunable_total(model) -> int:
    return sum(g.size for g in kl.channel_groups(model) if g.prunable)


def test_global_ratio_removes_that_fraction_of_prunable_channels():
    model = convnet()
    before = prunable_total(model)  # 16 + 24 + 32
    small = kl.prune_channels(model, ratio=0.25)
    assert prunable_total(small) == before - round(0.25 * before)
    assert sizes(small)["out"] == 10  # the classifier keeps its outputs
    assert small.output_shape == model.output_shape


def test_per_layer_ratio_and_round_to():
    model = convnet()
    small = kl.prune_channels(model, ratio=0.3, per_layer=True)
    assert sizes(small) == {"input": 1, "c1, c2": 16 - 4, "c3": 24 - 7, "d1": 32 - 9, "out": 10}
    rounded = kl.prune_channels(model, ratio=0.3, per_layer=True, round_to=8)
    assert sizes(rounded) == {"input": 1, "c1, c2": 16, "c3": 24, "d1": 24, "out": 10}
    rounded = kl.prune_channels(model, ratio=0.6, round_to=8)
    for name, n in sizes(rounded).items():
        assert name in ("input", "out") or n % 8 == 0, (name, n)


def test_never_zero_channels_and_excluded_layers_keep_theirs():
    model = convnet()
    small = kl.prune_channels(model, ratio=0.99, per_layer=True)
    assert min(sizes(small).values()) >= 1
    small = kl.prune_channels(model, ratio=0.5, exclude=["d1"])
    assert sizes(small)["d1"] == 32 and sizes(small)["c3"] < 24


@pytest.mark.parametrize("kind", ["params", "macs"])
@pytest.mark.parametrize("per_layer", [False, True])
def test_params_and_macs_targets_are_met(kind, per_layer):
    model = convnet()
    graph = build_graph(model)
    now = graph.count_params() if kind == "params" else graph.count_macs()
    target = int(now * 0.6)
    small = kl.prune_channels(model, **{kind: target}, per_layer=per_layer)
    got = small.count_params() if kind == "params" else kl.count_macs(small)
    assert got <= target
    assert got > now * 0.3  # not far beyond the target
    with pytest.raises(InvalidArgumentError, match="cannot be reached"):
        kl.prune_channels(model, **{kind: 10})


def test_bad_arguments_are_refused():
    model = convnet()
    cases = [
        (dict(), "exactly one"), (dict(ratio=0.2, params=100), "exactly one"),
        (dict(ratio=1.0), r"\[0, 1\)"), (dict(params=-5), "positive"),
        (dict(ratio=0.2, round_to=0), "round_to"), (dict(ratio=0.2, importance="nope"), "unknown"),
        (dict(ratio=0.2, importance="legc"), "needs history="),
        (dict(ratio=0.2, history=object()), "history"),
        (dict(ratio=0.2, importance="taylor"), r"data=\(x, y\)"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(InvalidArgumentError, match=message):
            kl.prune_channels(model, **kwargs)


def weights_of(model, name):
    return [
        np.asarray(w.numpy(), dtype=np.float64) for w in model.get_layer(name).trainable_weights
    ]


def test_l1_and_l2_pool_every_coupled_weight():
    model = convnet()
    graph = build_graph(model)
    group = next(g for g in graph.groups if g.layers == ["c3"])
    k3, b3 = weights_of(model, "c3")
    d1 = weights_of(model, "d1")[0]  # rows p*24 + c of the flattened (4, 4, 24) map
    rows = d1.reshape(16, 24, 32)
    want_l1 = np.abs(k3).sum(axis=(0, 1, 2)) + np.abs(b3) + np.abs(rows).sum(axis=(0, 2))
    want_l2 = np.sqrt((k3**2).sum(axis=(0, 1, 2)) + b3**2 + (rows**2).sum(axis=(0, 2)))
    np.testing.assert_allclose(l1(graph, group), want_l1, rtol=1e-12)
    np.testing.assert_allclose(l2(graph, group), want_l2, rtol=1e-12)


def test_l2_prunes_the_weakest_channel_first():
    model = convnet()
    k = model.get_layer("c3")
    kernel, bias = k.get_weights()
    kernel[..., 5] *= 1e-3
    k.set_weights([kernel, bias])
    d1 = model.get_layer("d1")
    rows = d1.get_weights()[0].reshape(16, 24, 32)
    rows[:, 5, :] *= 1e-3
    d1.set_weights([rows.reshape(384, 32), d1.get_weights()[1]])
    graph = build_graph(model)
    group = next(g for g in graph.groups if g.layers == ["c3"])
    small = kl.prune_channels(model, ratio=1 / 72)  # one channel of 72
    assert int(np.argmin(l2(graph, group))) == 5 and sizes(small)["c3"] == 23


def test_bn_scale_ranks_by_gamma_and_skips_groups_without_bn():
    model = convnet()
    bn = model.get_layer("bn1")
    gamma = np.linspace(1.0, 2.0, 16)
    gamma[[3, 9]] = 0.01
    bn.set_weights([gamma] + bn.get_weights()[1:])
    graph = build_graph(model)
    group = next(g for g in graph.groups if "c1" in g.layers)
    np.testing.assert_allclose(bn_scale(graph, group), np.abs(gamma), rtol=1e-6)
    assert bn_scale(graph, next(g for g in graph.groups if g.layers == ["c3"])) is None
    small = kl.prune_channels(model, ratio=2 / 16, importance="bn_scale")
    assert sizes(small)["c1, c2"] == 14 and sizes(small)["c3"] == 24  # only the BN group
    kept = small.get_layer("bn1").get_weights()[0]
    np.testing.assert_allclose(kept, np.delete(gamma, [3, 9]), rtol=1e-6)


def test_random_is_seeded_and_callables_are_used():
    model = convnet()
    graph = build_graph(model)
    g = next(g for g in graph.groups if g.prunable)
    np.testing.assert_array_equal(random_importance(3)(graph, g), random_importance(3)(graph, g))
    assert not np.array_equal(random_importance(3)(graph, g), random_importance(4)(graph, g))
    a = kl.prune_channels(model, ratio=0.3, importance="random")
    b = kl.prune_channels(model, ratio=0.3, importance="random")
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)

    def last_first(graph, group):  # remove the highest-index channels
        return -np.arange(group.size, dtype=float)

    small = kl.prune_channels(model, ratio=0.5, per_layer=True, importance=last_first)
    np.testing.assert_array_equal(small.get_layer("c3").get_weights()[0],
                                  model.get_layer("c3").get_weights()[0][..., :8, :12])  # fmt: skip


def test_taylor_equals_finite_differences_of_the_loss():
    keras.utils.set_random_seed(5)
    inp = keras.Input((3,))
    h = L.Dense(4, activation="tanh", name="h")(inp)
    model = keras.Model(inp, L.Dense(2, name="out")(h))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3)).astype("float32")
    y = rng.integers(0, 2, size=20)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    graph = build_graph(model)
    group = next(g for g in graph.groups if g.layers == ["h"])
    got = Taylor(model, (x, y), batch_size=7)(graph, group)

    def total_loss():  # summed over the same batches as the scorer
        return sum(float(loss(y[i : i + 7], model(x[i : i + 7]))) for i in range(0, 20, 7))

    want = np.zeros(4)
    eps = 1e-3
    for layer, axis in (("h", 1), ("out", 0)):
        for wi, var in enumerate(model.get_layer(layer).weights):
            if layer == "out" and wi == 1:
                continue  # the output bias is not in h's group
            base = np.array(var.numpy(), dtype=np.float64)
            for idx in np.ndindex(base.shape):
                bumped = base.copy()
                bumped[idx] += eps
                var.assign(bumped.astype("float32"))
                up = total_loss()
                bumped[idx] -= 2 * eps
                var.assign(bumped.astype("float32"))
                down = total_loss()
                var.assign(base.astype("float32"))
                channel = idx[axis] if len(idx) > 1 else idx[0]
                want[channel] += (up - down) / (2 * eps) * base[idx]
    np.testing.assert_allclose(got, want**2, rtol=2e-2, atol=1e-6)


def test_iterative_pruning_reaches_the_target_with_a_fine_tune_per_step():
    model = convnet()
    target = build_graph(model).count_macs() // 3
    seen = []

    def fine_tune(m):
        seen.append(kl.count_macs(m))
        m.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        x = np.random.default_rng(len(seen)).normal(size=(8, 12, 12, 1)).astype("float32")
        m.fit(x, np.arange(8) % 10, epochs=1, verbose=0)

    small = prune_iteratively(model, fine_tune, steps=3, macs=target)
    assert len(seen) == 3 and seen[0] > seen[1] > seen[2] == kl.count_macs(small) <= target
    ratio = prune_iteratively(model, lambda m: None, steps=2, ratio=0.5)
    assert prunable_total(ratio) <= prunable_total(model) * 0.55
    with pytest.raises(InvalidArgumentError, match="steps"):
        prune_iteratively(model, lambda m: None, steps=0, ratio=0.5)


def test_every_layer_keeps_a_channel_when_a_group_spans_several():
    """A Concatenate's branches merged into a residual stream are one group (InceptionResNetV2);
    leaving one channel in the group could leave a branch with none."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 1))
    stream = L.Conv2D(4, 1, name="stream")(inp)
    a = L.Conv2D(2, 1, name="a")(stream)
    b = L.Conv2D(2, 1, name="b")(stream)
    x = L.Add(name="res")([stream, L.Concatenate(name="cat")([a, b])])
    model = keras.Model(inp, L.Dense(2, name="out")(L.Flatten()(x)))
    graph = build_graph(model)
    group = next(g for g in graph.groups if "a" in g.layers)
    assert group.layers == ["a", "b", "stream"] and group.size == 4
    with pytest.raises(InvalidArgumentError, match="'b' with no channels"):
        kl.structure.remove_channels(graph, {group.id: [2, 3]})
    small = kl.prune_channels(model, ratio=0.9, per_layer=True)
    assert small.get_layer("a").filters == 1 and small.get_layer("b").filters == 1


def test_a_registered_channel_scorer_is_used_by_name():
    from keras_legc.structure.importance import BUILTIN, register_channel_scorer

    def first_first(graph, group):
        return np.arange(group.size, dtype=float)

    register_channel_scorer("first_first", first_first)
    try:
        with pytest.raises(InvalidArgumentError, match="already exists"):
            register_channel_scorer("first_first", first_first)
        with pytest.raises(InvalidArgumentError, match="already exists"):
            register_channel_scorer("taylor", first_first, overwrite=True)
        model = convnet()
        small = kl.prune_channels(model, ratio=0.5, per_layer=True, importance="first_first")
        np.testing.assert_array_equal(small.get_layer("c3").get_weights()[0],
                                      model.get_layer("c3").get_weights()[0][..., 8:, 12:])  # fmt: skip
    finally:
        BUILTIN.pop("first_first", None)


def test_taylor_picks_the_loss_from_the_labels():
    from keras_legc.structure.importance import _loss_fn

    model = convnet()
    assert isinstance(
        _loss_fn(model, np.arange(4), None), keras.losses.SparseCategoricalCrossentropy
    )
    one_hot = np.eye(10)[[1, 2, 3]]
    assert isinstance(_loss_fn(model, one_hot, None), keras.losses.CategoricalCrossentropy)
    assert isinstance(_loss_fn(model, one_hot * 0.5, None), keras.losses.MeanSquaredError)
    model.compile("sgd", "mae")  # the compiled loss, reduced to one number
    y, pred = np.array([[1.0, 2.0]]), np.array([[0.0, 4.0]])
    assert float(_loss_fn(model, np.arange(4), None)(y, pred)) == pytest.approx(1.5)


def _unit_history(model, layer: str, drivers: list[int], static: list[int], seed: int = 0):
    """A unit-level History of ``layer``'s kernel (one series per output channel) in which the
    channels in ``drivers`` follow a logistic map whose parameter sets the next window's target,
    those in ``static`` never move, and the rest follow independent logistic maps."""
    from keras_legc.core.recorder import Recorder
    from keras_legc.core.units import UnitSpec, UnitView

    kernel = model.get_layer(layer).kernel
    shape = tuple(kernel.shape)
    n = shape[-1]
    rng = np.random.default_rng(seed)
    window, n_windows = 30, 80
    r = rng.uniform(3.6, 4.0, size=(n_windows, n))
    steps = []
    for k in range(n_windows):
        x = np.empty((window, n))
        x[0] = rng.uniform(0.2, 0.8, n)
        for t in range(1, window):
            x[t] = r[k] * x[t - 1] * (1 - x[t - 1])
        x[:, static] = 0.5
        steps += list(x)
    target = np.concatenate([[0.5], r[:-1, drivers].mean(axis=1)]) + rng.normal(0, 0.005, n_windows)
    closed = iter(target)
    view = UnitView([UnitSpec(layer, (n,), (0,), layer=layer, weight="kernel")])
    rec = Recorder(view.layers, view.shapes, window=window, overlap=0.0, background=False,
                   target=lambda: float(next(closed)), meta={"units": view.manifest()})  # fmt: skip
    for values in steps:
        rec.step(view([values]))
    manifest = view.manifest()
    manifest[layer].update(unit_axes=[len(shape) - 1], shape=list(shape))  # the kernel's layout
    history = rec.finish({layer: np.ones(n)})
    history.meta["units"] = manifest
    return history


def test_legc_importance_keeps_the_causal_channels_and_prunes_never_moved_first():
    model = convnet()
    drivers, static = [3, 11], [0, 5, 7]
    history = _unit_history(model, "c3", drivers, static)
    graph = build_graph(model)
    group = next(g for g in graph.groups if g.layers == ["c3"])
    scorer = kl.structure.UnitLegc(history)
    scores = scorer(graph, group)
    assert scores.shape == (24,)
    assert np.all(scores[static] == 0)  # never moved: pruned first
    others = np.setdiff1d(np.arange(24), drivers + static)
    assert scores[drivers].min() > scores[others].max()  # the causal ones are kept longest
    # groups without a recorded producer are not scored (not pruned)
    assert scorer(graph, next(g for g in graph.groups if g.layers == ["d1"])) is None
    small = kl.prune_channels(model, ratio=0.25, importance="legc", history=history,
                              exclude=("d1",))  # fmt: skip
    kernel = small.get_layer("c3").kernel.numpy()
    kept = kernel.shape[-1]
    assert kept == 24 - 6
    before = model.get_layer("c3").kernel.numpy()
    pruned = [c for c in range(24) if not any(np.array_equal(before[..., c], kernel[..., j])
                                               for j in range(kept))]  # fmt: skip
    assert set(static) <= set(pruned) and not set(drivers) & set(pruned)


def test_legc_importance_refuses_a_weight_level_history():
    from keras_legc.core.history import History

    h = History(layers=["d1"], shapes={"d1": (2,)}, le=np.zeros((2, 6), np.float32),
                target=np.arange(6.0), window=4, overlap=0.0, every=1, n_snapshots=24)  # fmt: skip
    with pytest.raises(InvalidArgumentError, match="UnitHistory"):
        kl.prune_channels(convnet(), ratio=0.2, importance="legc", history=h)


def test_round_to_chunks_keep_multiples_and_follow_each_groups_order():
    from keras_legc.structure.prune import _chunks

    rng = np.random.default_rng(0)
    sizes_ = {0: 16, 1: 10, 2: 8, 3: 64}
    scores = {g: rng.random(n) + 0.1 for g, n in sizes_.items()}
    chunks = _chunks(scores, sizes_, 8)
    per_group = {g: [c for c in chunks if c[1] == g] for g in sizes_}
    # kept counts reachable: the full size, or multiples of 8 from 8 up; 8 or fewer: none
    assert [c[3] for c in per_group[0]] == [8] and [c[3] for c in per_group[1]] == [2]
    assert per_group[2] == [] and [c[3] for c in per_group[3]] == [8] * 7
    for g, cs in per_group.items():
        assert [c[2] for c in cs] == list(range(len(cs)))  # in the group's own order
        normed = np.sort(scores[g] / scores[g].mean())
        start = 0
        for c in cs:  # each chunk is the next-lowest channels of its group, scored by their mean
            assert c[0] == pytest.approx(normed[start : start + c[3]].mean())
            start += c[3]
    assert [c[0] for c in chunks] == sorted(c[0] for c in chunks)


def test_fill_chunks_meets_the_target_closer_than_the_first_prefix():
    from keras_legc.structure.prune import _fill_chunks

    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        # (score, group, index in group, channels): scores sorted, a group's chunks in order
        groups = rng.integers(0, 3, n)
        chunks = []
        seen = {}
        for score, g in zip(np.sort(rng.random(n)), groups, strict=True):
            chunks.append((float(score), int(g), seen.get(int(g), 0), 8))
            seen[int(g)] = seen.get(int(g), 0) + 1
        weight = {c: float(rng.integers(1, 100)) for c in chunks}
        total = sum(weight.values()) + 10.0

        def cost(taken, weight=weight, total=total):
            return total - sum(weight[c] for c in taken)

        value = float(rng.uniform(10.0, total + 5.0))  # above total: met with nothing removed
        got = _fill_chunks(chunks, cost, value)
        if total <= value:
            assert got == []
            continue
        prefix = next((chunks[: i + 1] for i in range(n) if cost(chunks[: i + 1]) <= value), None)
        if prefix is None:
            assert got is None
            continue
        assert cost(got) <= value and cost(got) >= cost(prefix)
        for g in set(groups.tolist()):  # a group's chunks go in its order: a prefix of them
            idx = sorted(c[2] for c in got if c[1] == g)
            assert idx == list(range(len(idx)))


def test_round_to_reaches_a_mac_target_without_jumping_past_it():
    # ResNet-8's 16-channel stage halves in one step at round_to=8: rounding channel by channel
    # took a 1.5x target to 2.1x; chunks that skip an overshooting step land near it
    from legc_research.zoo import build

    model = build("resnet8", keras, seed=0)
    dense = kl.count_macs(model)
    for factor in (1.5, 2.0, 3.0):
        small = kl.prune_channels(model, macs=int(dense / factor), round_to=8)
        macs = kl.count_macs(small)
        assert macs <= dense / factor and dense / macs < 1.1 * factor, factor
        for g in kl.channel_groups(small):
            assert not g.prunable or g.size % 8 == 0 or g.size < 8, (g.layers, g.size)


def test_a_mac_target_lands_closest_below_with_the_last_channel_of_any_group():
    # Reference, written out here: remove the globally lowest channels (each group's scores over
    # their mean, a channel kept per group) until one more would meet the target, then try
    # every group's next channel and keep the plan whose MACs are the largest at or under it.
    from keras_legc.structure.prune import choose, keep_every_layer

    model = convnet()
    graph = build_graph(model)
    rng = np.random.default_rng(0)
    prunable = [g for g in graph.groups if g.prunable]
    dense = graph.count_macs()
    closer = 0
    for trial in range(30):
        scores = {g.id: rng.random(g.size) + 0.1 for g in prunable}
        value = int(dense * rng.uniform(0.25, 0.95))
        rows = sorted(
            (float(s[c] / s.mean()), gid, int(c))
            for gid, s in scores.items()
            for c in np.argsort(s, kind="stable")[: len(s) - 1]
        )

        def macs(counts, scores=scores):
            plan = {g: np.sort(np.argsort(scores[g], kind="stable")[:n])
                    for g, n in counts.items() if n}  # fmt: skip
            return graph.count_macs(keep_every_layer(graph, scores, plan))

        counts = dict.fromkeys(scores, 0)
        k = 0
        while macs({**counts, rows[k][1]: counts[rows[k][1]] + 1}) > value:
            counts[rows[k][1]] += 1
            k += 1
        first = macs({**counts, rows[k][1]: counts[rows[k][1]] + 1})  # the lowest-scored next
        candidates = [macs({**counts, g: counts[g] + 1}) for g in scores if
                      counts[g] < len(scores[g]) - 1]  # fmt: skip
        want = max(c for c in candidates if c <= value)
        got = graph.count_macs(choose(graph, scores, ("macs", value), 1, False))
        assert got == want and first <= got <= value, trial
        closer += got > first
    assert closer > 0  # the case this is for happened


def test_resnet8_mac_targets_land_within_one_percent_channel_by_channel():
    # the lowest-scored last channel alone left it 1.9% under 1.5x and 5.9% under 4x (seed 0)
    from legc_research.zoo import build

    model = build("resnet8", keras, seed=0)
    dense = kl.count_macs(model)
    for factor in (1.5, 2.0, 3.0, 4.0):
        macs = kl.count_macs(kl.prune_channels(model, macs=int(dense / factor)))
        assert 0.99 * dense / factor <= macs <= dense / factor, factor
