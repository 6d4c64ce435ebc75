"""keras_legc.core.scoring: ``Scores`` checked value by value (construction, the summary text,
paper and target mode masks, the mode checks, save/load), each against values computed here from
arrays, and ``score``'s defaults, its run_dir path and its ``weights`` selection. Numpy only.
(score() at its edges: test_scoring_numerics.py.)
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.core.scoring import Scores
from keras_legc.errors import HistoryError, InvalidArgumentError, LegcWarning
from keras_legc.masking.policy import lamp_sparsities

LAYERS = ["a", "b"]
SHAPES = {"a": (2, 3), "b": [3, 1]}
P = np.array([0.01, 0.2, np.nan, 0.04, 0.5, 0.05, np.nan, 0.001, 0.3])
DEG = np.array([0, 0, 1, 0, 0, 0, 2, 0, 0])


def _scores(**kw):
    args = dict(
        layers=LAYERS, shapes=SHAPES, pvalues=P, degenerate=DEG, max_lag=3, test="ssr_ftest"
    )
    args.update(kw)
    return Scores(**args)


def test_construction_converts_and_defaults():
    s = _scores(static=[0, 1, 0, 0, 0, 0, 1, 0, 0], f_pvalue=[0.1] * 9, partial_r2=[0.2] * 9,
                selected_lag=[1] * 9, info={"fdr": False})  # fmt: skip
    assert s.shapes == {"a": (2, 3), "b": (3, 1)} and s.layers == LAYERS
    assert s.pvalues.dtype == np.float64 and s.degenerate.dtype == np.int8
    assert s.static.dtype == bool and s.f_pvalue.dtype == np.float64
    assert s.partial_r2.dtype == np.float64 and s.selected_lag.dtype == np.int16
    assert s.lags == (1, 2, 3) and s.max_lag == 3 and s.test == "ssr_ftest"
    assert s.qvalues is None and s.kernels is None and s.info == {"fdr": False}
    assert (s.n_weights, s.n_degenerate, s.n_static) == (9, 2, 2)
    assert _scores().n_static == 0 and _scores().info == {} and _scores().static is None
    assert _scores(lags=[2]).lags == (2,)
    assert s.pvalues_by_layer()["b"].shape == (3, 1)


@pytest.mark.parametrize("name", ["pvalues", "degenerate", "qvalues", "static", "f_pvalue",
                                  "partial_r2", "selected_lag"])  # fmt: skip
def test_construction_refuses_arrays_of_the_wrong_length(name):
    with pytest.raises(HistoryError) as err:
        _scores(**{name: np.zeros(8)})
    msg = str(err.value)
    assert msg == (
        f"inconsistent scores: {name} has shape (8,) but the layers {{'a': (2, 3), 'b': (3, 1)}} "
        "have 9 weights. Fix: score the history again."
    )


def test_degenerate_counts_and_summary_text():
    s = _scores(static=[0, 1, 0, 0, 0, 0, 1, 0, 0], info={"differenced": True})
    assert s.degenerate_counts() == {
        "constant cause series": 1,
        "cause lags collinear with the target's own lags": 1,
    }
    valid = DEG == 0
    causal = int((P[valid] < 0.05).sum())
    assert s.summary().split("\n") == [
        "Scores: 9 weights, Granger ssr_ftest, lags 1..3 (min p), differenced",
        f"  the paper's test (lags 1..3 (min p)): causal (p < 0.05): {causal}   "
        f"non-causal: {int(valid.sum()) - causal}   degenerate (kept, no valid test): 2",
        "    constant cause series: 1",
        "    cause lags collinear with the target's own lags: 1",
        "  static (LE 0 in every window, did not move; pruned first in target mode): 2",
    ]
    q = np.where(np.isnan(P), np.nan, 0.2)
    q[0] = 0.001
    fdr = _scores(qvalues=q, lags=[2], info={"fdr": True, "differenced": True})
    assert fdr.summary(alpha=0.01).split("\n")[:2] == [
        "Scores: 9 weights, Granger ssr_ftest, lag 2 only, differenced, fdr",
        "  the paper's test (lag 2 only): causal (q < 0.01): 1   non-causal: 6   "
        "degenerate (kept, no valid test): 2",
    ]
    assert _scores(degenerate=np.zeros(9)).summary().split("\n")[0] == (
        "Scores: 9 weights, Granger ssr_ftest, lags 1..3 (min p)"
    )
    assert repr(s) == "Scores(weights=9, max_lag=3, test='ssr_ftest', degenerate=2)"


def test_paper_mode_mask_keeps_degenerate_and_causal():
    s = _scores(info={"fdr": False, "differenced": True})
    m = s.mask()
    flat = np.concatenate([m[n].ravel() for n in LAYERS])
    expected = (DEG != 0) | (np.nan_to_num(P, nan=1.0) < 0.05)
    assert flat.tolist() == expected.tolist()  # p == 0.05 is pruned
    assert m.info == {"method": "legc", "test": "ssr_ftest", "max_lag": 3, "fdr": False,
                      "differenced": True, "alpha": 0.05, "empty_layers": []}  # fmt: skip
    m2 = s.mask(0.3)
    flat = np.concatenate([m2[n].ravel() for n in LAYERS])
    assert flat.tolist() == ((DEG != 0) | (np.nan_to_num(P, nan=1.0) < 0.3)).tolist()
    one_lag = _scores(lags=[2]).mask(alpha=0.1)
    assert one_lag.info["lag"] == 2 and one_lag.info["fdr"] is False
    assert "lag" not in m.info
    q = np.full(9, 0.9)
    q[4] = 0.01
    by_q = _scores(qvalues=q, info={"fdr": True}).mask()
    flat = np.concatenate([by_q[n].ravel() for n in LAYERS])
    assert flat.tolist() == ((DEG != 0) | (np.arange(9) == 4)).tolist()
    assert by_q.info["fdr"] is True
    for bad in (0.0, 1.0, True, "0.1", -0.5):
        with pytest.raises(InvalidArgumentError) as err:
            s.mask(bad)
        assert str(err.value) == (
            f"alpha must be in (0, 1), got {bad!r}. Fix: pass a significance level such as 0.05."
        )


def test_mode_checks():
    s = _scores()
    with pytest.raises(InvalidArgumentError) as err:
        s.mask(0.05, sparsity=0.5)
    assert str(err.value) == (
        "give either alpha (paper mode) or sparsity (target mode), not both. Fix: drop one of them."
    )
    for kw, what in (({"block": (1, 2)}, "block="), ({"ranking": "legc"}, "ranking=")):
        with pytest.raises(InvalidArgumentError) as err:
            s.mask(**kw)
        assert str(err.value) == (
            f"{what} applies to target mode (a sparsity to reach); paper mode (alpha) decides "
            f"weight by weight. Fix: pass sparsity=... together with {what}."
        )
    with pytest.raises(InvalidArgumentError) as err:
        s.mask(sparsity=0.5, ranking="magnitude")
    assert str(err.value).startswith(
        "unknown ranking 'magnitude'. Fix: use one of ['static_magnitude', 'legc_pvalue'"
    )
    assert str(err.value).endswith("or build a mask from any scorer with "
                                   "keras_legc.mask_from_importance.")  # fmt: skip
    dead = _scores(degenerate=np.full(9, 3))
    with pytest.raises(HistoryError) as err:
        dead.mask()
    assert str(err.value).startswith(
        "all 9 weights are degenerate ({'perfect fit (zero residual)': 9}), so there is no "
        "causal evidence to prune by. Fix: record more windows"
    )


def test_target_mode_ranking_default_and_untestable_share():
    rng = np.random.default_rng(0)
    kernels = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=(3, 1))}
    s = _scores(static=np.zeros(9, bool), f_pvalue=np.where(DEG == 0, P, np.nan),
                partial_r2=np.linspace(0.1, 0.9, 9), selected_lag=np.ones(9), kernels=kernels)  # fmt: skip
    m = s.mask(sparsity=1 / 3, ranking="legc_protect")
    assert m.info["ranking"] == "legc_protect" and m.info["method"] == "legc"
    assert s.mask(sparsity=1 / 3).info["ranking"] == "static_magnitude"
    kept = np.concatenate([m[n].ravel() for n in LAYERS])
    assert m.info["kept_untestable"] == (kept & (DEG != 0)).sum() / kept.sum()
    assert s.mask(sparsity=1 / 3, ranking="legc").info["ranking"] == "legc"
    many = _scores(degenerate=np.array([1, 1, 1, 1, 1, 1, 0, 0, 0]), static=np.zeros(9, bool),
                   f_pvalue=P, partial_r2=np.linspace(0.1, 0.9, 9), kernels=kernels)  # fmt: skip
    with pytest.warns(LegcWarning, match=r"% of the weights this mask keeps \("):
        low = many.mask(sparsity=0.0)
    assert low.info["kept_untestable"] == 6 / 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        half = _scores(degenerate=np.array([1, 1, 0, 0, 0, 0, 0, 0, 0]), static=np.zeros(9, bool),
                       f_pvalue=P, partial_r2=np.linspace(0.1, 0.9, 9), kernels=kernels)  # fmt: skip
        assert half.mask(sparsity=0.0).info["kept_untestable"] == 2 / 9


def test_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    kernels = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=(3, 1))}
    s = _scores(qvalues=np.linspace(0, 1, 9), static=np.arange(9) % 2 == 0, f_pvalue=P,
                partial_r2=np.linspace(0.1, 0.9, 9), selected_lag=np.arange(9) % 3 + 1,
                kernels=kernels, lags=[1, 2, 3], info={"fdr": True, "windows": 12})  # fmt: skip
    path = s.save(tmp_path / "s.npz")
    back = Scores.load(path)
    assert back.layers == LAYERS and back.shapes == s.shapes and back.lags == (1, 2, 3)
    assert (back.max_lag, back.test, back.info) == (3, "ssr_ftest", {"fdr": True, "windows": 12})
    for a in ("pvalues", "degenerate", "qvalues", "static", "f_pvalue", "partial_r2",
              "selected_lag"):  # fmt: skip
        np.testing.assert_array_equal(getattr(back, a), getattr(s, a))
    for n in LAYERS:
        np.testing.assert_array_equal(back.kernels[n], kernels[n])
    bare = Scores.load(_scores().save(tmp_path / "bare.npz"))
    assert bare.kernels is None and bare.qvalues is None and bare.static is None
    with pytest.raises(FileExistsError):
        s.save(path)
    np.savez(tmp_path / "bad.npz", x=np.zeros(1))
    with pytest.raises(HistoryError) as err:
        Scores.load(tmp_path / "bad.npz")
    assert str(err.value).endswith(
        "Fix: pass a file written by Scores.save, or score the history again."
    )


def test_arrays_given_as_integers_become_float64():
    ints = [0, 1, 0, 1, 0, 1, 0, 1, 0]
    s = _scores(pvalues=ints, qvalues=ints, f_pvalue=ints, partial_r2=ints)
    for a in ("pvalues", "qvalues", "f_pvalue", "partial_r2"):
        assert getattr(s, a).dtype == np.float64, a


def _target_scores(degenerate, **kw):
    rng = np.random.default_rng(2)
    kernels = {"a": rng.normal(size=(2, 3)), "b": rng.normal(size=(3, 1))}
    return _scores(degenerate=degenerate, static=np.zeros(9, bool), f_pvalue=P,
                   partial_r2=np.linspace(0.1, 0.9, 9), kernels=kernels, **kw)  # fmt: skip


def test_target_mode_provenance_and_nothing_kept():
    m = _target_scores(DEG, lags=[2]).mask(sparsity=0.5, per_layer=False)
    assert (m.info["test"], m.info["max_lag"], m.info["lag"], m.info["fdr"]) == (
        "ssr_ftest", 3, 2, False)  # fmt: skip
    with pytest.warns(LegcWarning):  # every layer emptied
        none_kept = _target_scores(DEG).mask(sparsity=0.99, per_layer=False)
    assert none_kept.n_kept == 0 and none_kept.info["kept_untestable"] == 0.0


def test_untestable_warning_text_threshold_and_caller():
    eight = dict(layers=["a"], shapes={"a": (2, 4)}, pvalues=np.full(8, 0.5), max_lag=2,
                 test="ssr_ftest", static=np.zeros(8, bool), f_pvalue=np.full(8, 0.5),
                 partial_r2=np.linspace(0.1, 0.8, 8), kernels={"a": np.ones((2, 4))})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exactly one half: no warning (above one half warns)
        half = Scores(degenerate=[1, 1, 1, 1, 0, 0, 0, 0], **eight).mask(sparsity=0.0)
    assert half.info["kept_untestable"] == 0.5
    with pytest.warns(LegcWarning) as rec:
        Scores(degenerate=[1, 1, 1, 1, 1, 0, 0, 0], **eight).mask(sparsity=0.0)
    (w,) = [r for r in rec if "valid Granger test" in str(r.message)]
    assert str(w.message) == (
        "62% of the weights this mask keeps (5 of 8) have no valid Granger test (never moved, "
        "collinear or exact fits): the mask rests on fallback ranks, not causal evidence. Fix: "
        "record more windows (train longer, a smaller window, every=1), or a lower sparsity."
    )


@pytest.mark.parametrize(
    "kwargs, fix",
    [
        ({"alpha": 0.001}, "a higher alpha, or target mode: sparsity=..., per_layer='lamp'"),
        (
            {"sparsity": 0.4, "per_layer": False},
            "per_layer='lamp' (per-layer sparsities that keep every layer's largest weights), "
            "per_layer=True (the same sparsity in every layer), or a lower sparsity",
        ),
        ({"sparsity": 0.99, "per_layer": True}, "a lower sparsity"),
    ],
)
def test_empty_layer_warning_names_the_fix(kwargs, fix):
    # layer b: no degenerate weight, p >= 0.001 (paper mode prunes it all), no causal weight and
    # the smallest kernels (target mode's global ranking prunes it first)
    s = _target_scores(np.array([1, 0, 0, 0, 0, 0, 0, 0, 0]))
    s.f_pvalue = np.full(9, 0.5)
    s.kernels["b"] = s.kernels["b"] * 1e-6
    with pytest.warns(LegcWarning) as rec:
        s.mask(**kwargs)
    texts = [str(r.message) for r in rec if "prunes every kernel weight" in str(r.message)]
    assert texts and texts[0].endswith(f"Fix: {fix}.")


def test_saved_meta_and_lags(tmp_path):
    import keras_legc
    from keras_legc._io import read_npz

    path = _scores(lags=[2]).save(tmp_path / "s.npz")
    meta, _ = read_npz(path, "keras_legc.scores", 1)
    assert meta["version"] == 1 and meta["keras_legc"] == keras_legc.__version__
    assert meta["lags"] == [2] and meta["shapes"] == {"a": [2, 3], "b": [3, 1]}
    assert Scores.load(path).lags == (2,)


def test_all_degenerate_message_ends_with_the_fix():
    with pytest.raises(HistoryError) as err:
        _scores(degenerate=np.full(9, 1)).mask()
    assert str(err.value).endswith(
        "a smaller window, or check that the weights actually move during training."
    )


def history(seed=0, k=30):
    rng = np.random.default_rng(seed)
    le = rng.normal(size=(40, k))
    le[5] = 0.0  # a weight that never moved: static
    return kl.History(
        layers=["a", "b"], shapes={"a": (6, 5), "b": (5, 2)}, le=le,
        target=rng.normal(size=k).cumsum(), window=20, overlap=0.1, every=1,
        n_snapshots=20 + 18 * (k - 1),
    )  # fmt: skip


def score(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return kl.score(*args, **kwargs)


def test_score_defaults_are_the_documented_ones():
    h = history()
    default = score(h)
    explicit = score(h, max_lag="auto", test="ssr_chi2", fdr=False, difference=False,
                     lag=None, criterion="bic")  # fmt: skip
    np.testing.assert_array_equal(default.pvalues, explicit.pvalues)
    assert default.qvalues is None and default.info["fdr"] is False
    assert default.info["differenced"] is False
    # and each default matters: the other choice changes the result
    assert not np.array_equal(score(h, difference=True).pvalues, default.pvalues, equal_nan=True)
    assert score(h, fdr=True).qvalues is not None


def test_score_of_a_run_dir_equals_score_of_its_history(tmp_path):
    h = history()
    h.save(tmp_path / "run")
    np.testing.assert_array_equal(score(tmp_path / "run").pvalues, score(h).pvalues)
    np.testing.assert_array_equal(score(str(tmp_path / "run")).pvalues, score(h).pvalues)


def test_scoring_selected_weights_tests_those_and_marks_the_rest_untested():
    h = history()
    chosen = np.zeros(h.n_weights, bool)
    chosen[::3] = True
    full, part = score(h), score(h, weights=chosen)
    np.testing.assert_array_equal(part.pvalues[chosen], full.pvalues[chosen])
    assert np.isnan(part.pvalues[~chosen]).all()
    assert part.static[~chosen].all()  # untested weights count as static (kept last)
    assert not part.static[chosen].any() and full.static[5] and not full.static[4]
    assert part.pvalues.shape == full.pvalues.shape == (h.n_weights,)
    with pytest.raises(InvalidArgumentError, match="selects no weight"):
        score(h, weights=np.zeros(h.n_weights, bool))


def test_scores_save_refuses_to_overwrite_by_default_and_round_trips(tmp_path):
    s = score(history(), fdr=True)
    s.save(tmp_path / "s.npz")
    with pytest.raises(kl.OutputExistsError):
        s.save(tmp_path / "s.npz")
    s.save(tmp_path / "s.npz", overwrite=True)
    back = kl.Scores.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.pvalues, s.pvalues)
    np.testing.assert_array_equal(back.qvalues, s.qvalues)
    np.testing.assert_array_equal(back.static, s.static)
    assert back.layers == s.layers and back.info["fdr"] is True


def test_target_mode_shares_the_sparsity_by_lamp_by_default(rng):
    # layer b's kernels are 1000x smaller: a global ranking empties it, LAMP (the default) keeps
    # its largest weights and prunes the same total; without kernels the ranking is global
    s = _target_scores(DEG)
    s.kernels["b"] = s.kernels["b"] * 1e-3
    default = s.mask(sparsity=0.6)
    assert default.info["per_layer"] == "lamp" and default["b"].any()
    want = lamp_sparsities(s.kernels, 0.6)
    assert {n: round(v, 9) for n, v in default.layer_sparsity().items()} == {
        n: round(v, 9) for n, v in want.items()
    }
    with pytest.warns(LegcWarning, match="every kernel weight of layer"):
        assert not s.mask(sparsity=0.6, per_layer=False)["b"].any()
    assert s.mask(sparsity=0.6, per_layer=True).info["per_layer"] is True
    assert s.mask(sparsity_m_by_n=(2, 4)).info.get("per_layer") is None  # N:M: no allocation
    s.kernels = None
    assert s.mask(sparsity=0.6).info["per_layer"] is False
    with pytest.raises(InvalidArgumentError, match="per_layer must be"):
        s.mask(sparsity=0.6, per_layer="global")


@pytest.mark.parametrize("mode", [{"sparsity": 0.5}, {"alpha": 0.05},
                                  {"sparsity": 0.5, "ranking": "legc_protect"}])  # fmt: skip
def test_mask_exclude_keeps_the_named_layer_whole_in_both_modes(mode):
    s = _target_scores(DEG)
    m = s.mask(exclude=["b"], **mode)
    assert m["b"].all() and m.info["exclude"] == ["b"]
    if "sparsity" in mode:  # target mode: the sparsity is that of the other layer
        assert m.layer_sparsity()["a"] == 0.5
        # the counts of kept weights are of layer a's (b's are kept by no evidence): 3 of 6,
        # 1 of them untestable (DEG[2])
        assert m.info["kept_by_evidence"] + m.info["kept_by_magnitude"] == 3
        assert m.info["kept_untestable"] == pytest.approx(int(m["a"].ravel()[2]) / 3)
    else:  # paper mode: the other layer's weights as without exclude
        np.testing.assert_array_equal(m["a"], s.mask(**mode)["a"])
    with pytest.raises(InvalidArgumentError, match=r"exclude names \['c'\]"):
        s.mask(exclude="c", **mode)
