"""Diagnostics: agreement metrics on hand-made vectors, WeightWatcher and SHAP against plain
references, the report files, the CLI, the missing-extra error, and tools/diagnose_paper.py."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.diagnostics import (
    FLAG_SMALL,
    diagnose,
    shap_importance,
    spearman_agreement,
    topk_overlap,
    weightwatcher_layers,
)
from keras_legc.errors import InvalidArgumentError, OutputExistsError

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- plain references


def _avg_ranks(v):
    """Ranks 1..n, ties get the mean of the ranks they span (plain loop, independent of scipy)."""
    v = list(v)
    order = sorted(range(len(v)), key=lambda i: v[i])
    ranks = [0.0] * len(v)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
            j += 1
        for t in range(i, j + 1):
            ranks[order[t]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _ref_spearman(a, b):
    ra, rb = _avg_ranks(a), _avg_ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    va = sum((x - ma) ** 2 for x in ra)
    vb = sum((y - mb) ** 2 for y in rb)
    return cov / math.sqrt(va * vb)


# ---------------------------------------------------------------- agreement metrics


@pytest.mark.parametrize(
    "a, b",
    [
        ([0.1, 0.5, 0.3, 0.9], [1.0, 3.0, 2.0, 4.0]),  # same order
        ([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]),  # reversed
        ([1, 2, 2, 3, 5, 5], [2, 1, 3, 3, 6, 4]),  # ties in both
        ([0.3, 0.0, 0.0, 0.0, 0.7], [0.2, 0.1, 0.0, 0.0, 0.9]),  # many ties (pruned zeros)
    ],
)
def test_spearman_matches_plain_reference(a, b):
    assert spearman_agreement(a, b) == pytest.approx(_ref_spearman(a, b), abs=1e-12)


def test_spearman_hand_values():
    assert spearman_agreement([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman_agreement([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # one swap of neighbours among 4: rho = 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman_agreement([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(0.8)


def test_constant_importances_are_undefined_not_invented():
    assert math.isnan(spearman_agreement([0, 0, 0], [1, 2, 3]))
    assert math.isnan(spearman_agreement([1, 2, 3], [5, 5, 5]))
    assert math.isnan(topk_overlap([0, 0, 0, 0], [1, 2, 3, 4], 2))


def test_topk_overlap_hand_values():
    assert topk_overlap([5, 4, 3, 2, 1], [4, 5, 0, 3, 1], 2) == 1.0
    assert topk_overlap([5, 4, 3, 2, 1], [1, 2, 3, 4, 5], 2) == 0.0
    assert topk_overlap([5, 4, 3, 2, 1], [5, 0, 4, 3, 1], 2) == 0.5
    assert topk_overlap([5, 4, 3, 2, 1], [5, 0, 4, 3, 1], 3) == pytest.approx(2 / 3)
    # k = n: every feature is in both top-n
    assert topk_overlap([1, 2, 3], [3, 1, 2], 3) == 1.0
    # a tie at the boundary is broken by feature index (earlier first): top-2 of b is {0, 1}
    assert topk_overlap([9, 8, 7, 1], [5, 5, 5, 1], 2) == 1.0
    assert topk_overlap([1, 8, 9, 7], [5, 5, 5, 1], 2) == 0.5


@pytest.mark.parametrize("k", [0, 4, -1, 2.0, True])
def test_topk_rejects_bad_k(k):
    with pytest.raises(InvalidArgumentError, match="Fix:"):
        topk_overlap([1, 2, 3], [3, 2, 1], k)


@pytest.mark.parametrize(
    "a, b",
    [([1, 2, 3], [1, 2]), ([1], [1]), ([1, np.nan, 3], [1, 2, 3]), ([[1, 2]], [[1, 2]])],
)
def test_agreement_rejects_bad_vectors(a, b):
    with pytest.raises(InvalidArgumentError, match="Fix:"):
        spearman_agreement(a, b)
    with pytest.raises(InvalidArgumentError, match="Fix:"):
        topk_overlap(a, b, 1)


# ---------------------------------------------------------------- tiny models


def _data(n=300, f=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = (x[:, 0] + 0.8 * x[:, 1] - 0.6 * x[:, 2] > 0).astype(np.int64)
    return x, y


@pytest.fixture(scope="module")
def tiny():
    """A trained 24-24-10-2 softmax MLP, a magnitude-pruned copy and a random-pruned copy."""
    from keras_legc.keras.flavour import keras

    k = keras()
    k.utils.set_random_seed(0)
    x, y = _data()
    dense = k.Sequential(
        [
            k.layers.Input((24,)),
            k.layers.Dense(24, activation="relu", name="h1"),
            k.layers.Dense(10, activation="relu", name="h2"),
            k.layers.Dense(2, activation="softmax", name="out"),
        ]
    )
    dense.compile(k.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    dense.fit(x, y, epochs=15, batch_size=32, verbose=0)
    pruned = {}
    for name, mask in (
        ("magnitude", kl.magnitude_mask(dense, 0.5)),
        ("random", kl.random_mask(dense, 0.6, seed=0)),
    ):
        p = kl.prune(dense, mask)
        p.compile(k.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        p.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=kl.pruning_callbacks())
        pruned[name] = kl.strip(p)
    # a degenerate "pruned" net: every input weight pruned, so the output ignores the input
    dead = k.models.clone_model(dense)
    weights = dense.get_weights()
    weights[0] = np.zeros_like(weights[0])
    dead.set_weights(weights)
    pruned["dead"] = dead
    return dense, pruned, x, y


@pytest.fixture(scope="module")
def diag(tiny, tmp_path_factory):
    dense, pruned, x, y = tiny
    out = tmp_path_factory.mktemp("diag") / "report"
    d = diagnose(
        dense,
        {"self": dense, **pruned},
        (x, y),
        background=50,
        explain=60,
        top_k=5,
        seed=3,
        out_dir=out,
        progress=False,
    )
    return d, out


def test_dense_compared_with_itself_agrees_perfectly(diag):
    d, _ = diag
    a = d.agreement["self"]
    assert a["spearman"] == pytest.approx(1.0) and a["topk_overlap"] == 1.0 and a["note"] == ""
    np.testing.assert_array_equal(d.importances["self"], d.importances["dense"])
    assert d.layers["self"][0]["alpha"] == d.layers["dense"][0]["alpha"]


def test_importance_finds_the_informative_features(diag):
    d, _ = diag
    # y depends on x0, x1, x2 only: the dense model's top 3 are exactly those
    top3 = set(np.argsort(-d.importances["dense"])[:3].tolist())
    assert top3 == {0, 1, 2}
    # the 60% random-pruned net (2 epochs of fine-tuning) agrees less than the dense with itself
    assert -1 <= d.agreement["random"]["spearman"] < 0.99


def test_a_net_that_ignores_its_input_gets_undefined_agreement_with_the_reason(diag):
    d, out = diag
    np.testing.assert_array_equal(d.importances["dead"], 0.0)
    a = d.agreement["dead"]
    assert math.isnan(a["spearman"]) and math.isnan(a["topk_overlap"])
    assert "importances of dead are constant" in a["note"]
    assert (
        "| dead | undefined | undefined | undefined: the importances of dead"
        in (out / "report.md").read_text()
    )
    rows = {r["layer"]: r for r in d.layers["dead"]}
    assert rows["h1"]["flag"] == FLAG_SMALL and rows["h1"]["n_nonzero_evals"] == 0


def test_weightwatcher_rows_flags_and_reference_alpha(diag, tiny):
    d, _ = diag
    rows = {r["layer"]: r for r in d.layers["dense"]}
    assert list(rows) == ["h1", "h2", "out"]
    assert (
        rows["out"]["flag"] == FLAG_SMALL
        and "2 non-zero eigenvalue(s) < 10" in rows["out"]["reason"]
    )
    assert math.isnan(rows["out"]["alpha"])
    for name in ("h1", "h2"):
        r = rows[name]
        assert r["flag"] in ("ok", "outside [2, 6]") and math.isfinite(r["alpha"])
        assert (r["flag"] == "ok") == (2 <= r["alpha"] <= 6)
        # alpha_weighted = alpha * log10(lambda_max), lambda_max = largest squared singular value
        kernel = tiny[0].get_layer(name).kernel.numpy().astype(np.float64)
        lam_max = np.linalg.svd(kernel, compute_uv=False).max() ** 2
        assert r["lambda_max"] == pytest.approx(lam_max, rel=1e-5)
        assert r["alpha_weighted"] == pytest.approx(r["alpha"] * math.log10(lam_max), rel=1e-4)
    # h1 has 24 eigenvalues (>= 20: WeightWatcher's plain power-law MLE), so alpha is the Hill
    # estimator on the eigenvalues >= xmin: alpha = 1 + n / sum(ln(x / xmin))
    r = rows["h1"]
    ev = np.asarray(r["eigenvalues"])
    tail = ev[ev >= r["xmin"] * (1 - 1e-6)]
    assert len(tail) == r["tail_points"]
    assert r["alpha"] == pytest.approx(1 + len(tail) / np.log(tail / r["xmin"]).sum(), rel=1e-4)


def test_weightwatcher_dead_units_lower_the_rank_and_too_small_is_flagged(tiny):
    from keras_legc.keras.flavour import keras

    k = keras()
    dense = tiny[0]
    model = k.models.clone_model(dense)
    weights = dense.get_weights()
    weights[0] = weights[0].copy()
    weights[0][:, :18] = 0.0  # 18 of 24 units of h1 dead: 6 non-zero eigenvalues left
    model.set_weights(weights)
    rows = {r["layer"]: r for r in weightwatcher_layers(model)}
    assert rows["h1"]["n_nonzero_evals"] == 6 and rows["h1"]["flag"] == FLAG_SMALL
    assert "18 lost to zero rows/columns" in rows["h1"]["reason"]
    assert rows["h2"]["flag"] != FLAG_SMALL


def test_shap_of_a_linear_model_matches_the_closed_form():
    """For f(x) = w.x + b, SHAP_j = w_j (x_j - mean(background_j)) exactly."""
    from keras_legc.keras.flavour import keras

    k = keras()
    rng = np.random.default_rng(1)
    model = k.Sequential([k.layers.Input((6,)), k.layers.Dense(1, name="lin")])
    w = rng.normal(size=(6, 1)).astype(np.float32)
    model.get_layer("lin").set_weights([w, np.array([0.3], np.float32)])
    bg = rng.normal(size=(40, 6)).astype(np.float32)
    x = rng.normal(loc=0.5, size=(25, 6)).astype(np.float32)
    imp, info = shap_importance(model, bg, x)
    ref = np.abs(w[:, 0].astype(np.float64) * (x - bg.mean(axis=0)).astype(np.float64)).mean(axis=0)
    np.testing.assert_allclose(imp, ref, rtol=1e-4, atol=1e-6)
    assert info["n_outputs"] == 1 and info["additivity_error"] < 1e-4


def test_report_files_and_json(diag):
    d, out = diag
    for f in ("report.json", "report.md", "alpha.png", "shap.png", "esd/dense__h1.png"):
        assert (out / f).exists() and (out / f).stat().st_size > 0, f
    assert (out / "alpha.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "esd/dense__out.png").exists()  # not fitted: no ESD plot
    rep = json.loads((out / "report.json").read_text())
    assert rep["models"] == ["dense", "self", "magnitude", "random", "dead"]
    assert rep["settings"]["n_background"] == 50 and rep["settings"]["n_explain"] == 60
    assert rep["importance"]["dense"] == pytest.approx(d.importances["dense"].tolist())
    assert rep["agreement"]["self"]["spearman"] == pytest.approx(1.0)
    assert rep["weightwatcher"]["dense"][2]["alpha"] is None  # NaN written as null
    assert "eigenvalues" not in rep["weightwatcher"]["dense"][0]
    md = (out / "report.md").read_text()
    assert "| self | 1.000 | 1.00 |" in md and "too small to fit" in md and "](shap.png)" in md
    # no temp files left behind
    assert not list(out.rglob("*.tmp"))


def test_save_refuses_to_overwrite_and_writes_nothing(diag, tmp_path):
    d, out = diag
    before = (out / "report.md").stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="Fix:"):
        d.save(out)
    assert (out / "report.md").stat().st_mtime_ns == before
    # a fresh folder with only report.md present: refused before any PNG is written
    (tmp_path / "report.md").write_text("keep me")
    with pytest.raises(OutputExistsError):
        d.save(tmp_path)
    assert not (tmp_path / "alpha.png").exists()
    assert (tmp_path / "report.md").read_text() == "keep me"


def test_deterministic_given_the_seed(tiny):
    dense, pruned, x, _ = tiny
    kw = dict(background=30, explain=20, seed=7, weightwatcher=False, progress=False)
    a = diagnose(dense, pruned["magnitude"], x, **kw)
    b = diagnose(dense, pruned["magnitude"], x, **kw)
    np.testing.assert_array_equal(a.importances["pruned"], b.importances["pruned"])
    c = diagnose(dense, pruned["magnitude"], x, **{**kw, "seed": 8})
    assert not np.array_equal(a.importances["dense"], c.importances["dense"])


def test_bad_input_is_refused_with_a_fix(tiny):
    dense, pruned, x, _ = tiny
    cases = [
        dict(data=x[:, :5]),  # wrong feature count
        dict(data=np.full_like(x, np.nan)),
        dict(feature_names=["a", "b"]),
        dict(pruned={"dense": pruned["magnitude"]}),  # clashes with the dense name
        dict(pruned={}),
        dict(background=0),
        dict(weightwatcher=False, shap=False),
    ]
    for case in cases:
        kw = dict(pruned=pruned["magnitude"], data=x, progress=False, **{})
        kw.update(case)
        with pytest.raises(InvalidArgumentError, match="Fix:"):
            diagnose(dense, kw.pop("pruned"), kw.pop("data"), **kw)
    with pytest.raises(kl.ModelStructureError, match="Fix:"):
        diagnose("not a model", pruned["magnitude"], x)


def test_top_k_not_below_feature_count_is_capped_with_a_warning(tiny):
    dense, pruned, x, _ = tiny
    with pytest.warns(kl.LegcWarning, match="using top_k=23"):
        d = diagnose(dense, pruned["magnitude"], x, top_k=30, background=10, explain=5,
                     weightwatcher=False, progress=False)  # fmt: skip
    assert d.agreement["pruned"]["k"] == 23


# ---------------------------------------------------------------- CLI and missing extras


def test_cli_diagnose_end_to_end(tiny, tmp_path):
    dense, pruned, x, _ = tiny
    kl.save_model(dense, tmp_path / "dense.keras")
    kl.save_model(pruned["magnitude"], tmp_path / "magnitude.keras")
    np.savez(tmp_path / "x.npz", x=x[:80], feature_names=np.array([f"f{j}" for j in range(24)]))
    cmd = [sys.executable, "-m", "keras_legc.cli", "diagnose", str(tmp_path / "dense.keras"),
           str(tmp_path / "magnitude.keras"), "--data", str(tmp_path / "x.npz"),
           "--out", str(tmp_path / "out"), "--background", "20", "--explain", "20"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "magnitude vs dense: Spearman" in proc.stdout
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["models"] == ["dense", "magnitude"] and rep["feature_names"][0] == "f0"
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0 and "OutputExistsError" in proc.stderr and "--force" in proc.stderr


_BLOCKED = """
import importlib, sys
import numpy as np
import keras_legc as kl
from keras_legc.keras.flavour import keras
k = keras()
m = k.Sequential([k.layers.Input((4,)), k.layers.Dense(3), k.layers.Dense(1)])
x = np.zeros((10, 4), np.float32)
cases = [("shap", {"weightwatcher": False}), ("weightwatcher", {"shap": False}),
         ("matplotlib", {"shap": False, "weightwatcher": False, "out_dir": "never_written"}),
         ("matplotlib", {"shap": False})]
for mod, kw in cases:
    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n == mod or n.startswith(mod + ".")}
    sys.modules[mod] = None  # a blocked import: `import mod` raises ImportError
    try:
        kl.diagnose(m, m, x, **kw)
    except ValueError as exc:  # nothing to diagnose (both off): the check order is visible
        print("VALUE", mod, exc)
    except kl.MissingDependencyError as exc:
        print("ERR", exc)
    del sys.modules[mod]
    sys.modules.update(saved)
"""


def test_missing_extra_names_what_to_install(tmp_path):
    """Each optional package blocked in turn (sys.modules[name] = None makes `import` fail)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", _BLOCKED], capture_output=True, text=True,
                          cwd=tmp_path, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ERR")]
    assert len(lines) == 4, proc.stdout
    for line, mod in zip(lines, ("shap", "weightwatcher", "matplotlib", "matplotlib"), strict=True):
        assert line.startswith(f"ERR {mod} is not installed"), line
        assert line.endswith("Fix: pip install 'keras-legc[diagnostics]'"), line
    assert not (tmp_path / "never_written").exists()


# ---------------------------------------------------------------- tools/diagnose_paper.py


def _load_tool():
    from legc_research.evidence import diagnose_paper

    return diagnose_paper


def test_paper_verdict_rules():
    tool = _load_tool()
    good = [0.95, 0.9, 0.92, 0.97]
    bad = [0.2, 0.4, 0.1, 0.3]
    assert tool.verdict(good, bad)[0] == "reproduced"
    assert tool.verdict(bad, good)[0] == "not reproduced"
    assert tool.verdict(good[:2], bad[:2])[0] == "inconclusive"  # too few seeds
    assert tool.verdict([0.9, 0.3, 0.95], [0.5, 0.6, 0.4])[0] == "inconclusive"  # not significant
    assert tool.verdict([0.6, 0.62, 0.65], [0.1, 0.2, 0.15])[0] == "not reproduced"  # < 0.8
    # undefined (NaN) seeds are dropped from the pairs
    v, why, stats = tool.verdict([0.9, float("nan"), 0.95, 0.93], [0.1, 0.2, float("nan"), 0.3])
    assert stats["n_pairs"] == 2 and v == "inconclusive" and "2 seed(s)" in why


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """The reproduction's layout with tiny models: 2 datasets x 2 seeds, plus an MNIST-shaped net."""
    from keras_legc.keras.flavour import keras

    k = keras()
    run = tmp_path_factory.mktemp("run")
    for ds, f in (("cancer", 8), ("banknote", 4)):
        x, y = _data(n=120, f=f, seed=1)
        (run / "data/paper").mkdir(parents=True, exist_ok=True)
        np.savez(run / f"data/paper/{ds}.npz", x_train=x[:80], y_train=y[:80], x_test=x[80:],
                 y_test=y[80:], feature_names=np.array([f"{ds}_{j}" for j in range(f)]))  # fmt: skip
        for seed in (0, 1):
            k.utils.set_random_seed(seed)
            dense = k.Sequential([k.layers.Input((f,)), k.layers.Dense(12, activation="relu"),
                                  k.layers.Dense(2, activation="softmax")])  # fmt: skip
            dense.compile(k.optimizers.Adam(0.02), "sparse_categorical_crossentropy")
            dense.fit(x[:80], y[:80], epochs=5, verbose=0)
            folder = run / f"models/paper/{ds}/seed{seed}"
            kl.save_model(dense, folder / "dense.keras")
            for m, mask in (("ft", kl.magnitude_mask(dense, 0.3)),
                            ("random_ft", kl.random_mask(dense, 0.7, seed=seed))):  # fmt: skip
                kl.save_model(kl.strip(kl.prune(dense, mask)), folder / f"{m}.keras")
    k.utils.set_random_seed(0)
    mnist = k.Sequential([k.layers.Input((784,)), k.layers.Dense(50, activation="relu"),
                          k.layers.Dense(30, activation="relu"), k.layers.Dense(10, activation="softmax")])  # fmt: skip
    kl.save_model(mnist, run / "models/paper/mnist/seed0/dense.keras")
    kl.save_model(kl.strip(kl.prune(mnist, kl.random_mask(mnist, 0.5, seed=0))),
                  run / "models/paper/mnist/seed0/random_ft.keras")  # fmt: skip
    return run


def test_diagnose_paper_on_a_fake_run(fake_run, tmp_path):
    tool = _load_tool()
    out = tmp_path / "diagnostics.md"
    args = [
        str(fake_run),
        "--out",
        str(out),
        "--background",
        "20",
        "--explain",
        "20",
        "--no-progress",
    ]
    assert tool.main(args) == 0
    md = out.read_text()
    rep = json.loads(out.with_suffix(".json").read_text())
    assert set(rep["agreement"]["datasets"]) == {"cancer", "banknote"}
    assert "titanic: skipped" in md
    cancer = rep["agreement"]["datasets"]["cancer"]
    assert cancer["k"] == 4 and sorted(cancer["per_seed"]) == ["0", "1"]
    assert rep["agreement"]["datasets"]["banknote"]["k"] == 2  # 4 features: top-2
    # the table's mean matches the per-seed numbers
    rhos = [cancer["per_seed"][s]["ft"]["spearman"] for s in ("0", "1")]
    assert f"| LEGCNet-FT | {np.mean(rhos):.2f} +/- {np.std(rhos, ddof=1):.2f} (n=2) |" in md
    # 2 seeds only: no verdict can be reached
    assert rep["agreement"]["verdicts"]["cancer/ft"]["verdict"] == "inconclusive"
    assert "Verdict on the paper's claim" in md and "inconclusive" in md
    # MNIST alpha table beside Table 4, in the paper's layout
    assert "| model | L1 784-50 | L2 50-30 | L3 30-10 |" in md
    assert "(2.19 / 1.63)" in md and "(2.30 / 1.53)" in md
    dense_l1 = rep["alpha"]["ours"]["dense"][0]["alpha"]
    assert f"| Dense | {dense_l1:.2f}" in md
    assert tool.main(args) == 2  # refuses to overwrite without --force
    assert out.read_text() == md
