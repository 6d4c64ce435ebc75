"""The reproduction's protocol pieces on tiny data, and the quick mode end to end."""

import json
from dataclasses import replace

import numpy as np
import pytest

import keras_legc  # noqa: F401
from keras_legc.core.lyapunov import lyapunov_of_windows, windowed_lyapunov
from keras_legc.errors import InvalidArgumentError, OutputExistsError
from legc_research.datasets import Split, paper_dataset
from legc_research.mlp import MLP, train
from legc_research.reproduce import (
    PAPER_SETUPS,
    ReproduceConfig,
    StreamingRecorder,
    reproduce,
    run_paper_dataset,
)
from legc_research.results_report import analyse, paired, write_report


def _tiny_iris_like(seed=0, n=90):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, 4)) + y[:, None]  # separable enough for 0.95 to take a while
    s = slice(0, 60), slice(60, n)
    f32 = np.float32
    return Split(
        x[s[0]].astype(f32), y[s[0]], x[s[1]].astype(f32), y[s[1]], x[s[1]].astype(f32), y[s[1]],
        "tiny", 3, "synthetic 60/30", ("a", "b", "c", "d"),
    )  # fmt: skip


def test_streaming_recorder_equals_offline_le_of_the_same_trajectory():
    """LE per closed window from the ring equals windowed_lyapunov of the full recorded run."""
    split = _tiny_iris_like()
    net = MLP.init(PAPER_SETUPS["iris"].spec(), seed=0)
    rec = StreamingRecorder(net, 40, (split.x_val, split.y_val), steps_per_epoch=60)
    snapshots = []

    def both(n):
        rec(n)
        snapshots.append(np.concatenate([k.ravel() for k in n.kernels]).astype(np.float32))

    train(net, split.x_train, split.y_train, lr=0.05, batch_size=1, max_epochs=4, seed=0,
          on_step=both)  # fmt: skip
    hist = rec.history(net.kernel_dict())
    offline = windowed_lyapunov(np.array(snapshots).T, 40, 0.1)
    np.testing.assert_array_equal(hist.le, offline.astype(np.float32))
    assert hist.n_windows == len(hist.target) == offline.shape[1]
    # The PT history is a prefix: the windows closed within the first 2 epochs (120 steps).
    pt = rec.history(net.kernel_dict(), upto_epoch=2)
    assert pt.n_windows == sum(1 for s in rec.close_step if s <= 120) < hist.n_windows
    np.testing.assert_array_equal(pt.le, hist.le[:, : pt.n_windows])
    assert lyapunov_of_windows(np.array(snapshots[:40]).T).shape == (hist.n_weights,)


def test_protocol_rewinds_every_method_to_the_same_initial_weights():
    """Nothing pruned (alpha ~1: prune only p >= alpha) -> FT retrains from the same init in the same order as dense,
    so it is identical; heavy pruning -> every baseline prunes exactly FT's count."""
    split = _tiny_iris_like()
    cfg = ReproduceConfig(seeds=(0,), alpha=1 - 1e-12, extra_epochs=0, dense_cap_scale=0.02)
    record, models, _ = run_paper_dataset("iris", "paper", 0, cfg, split=split)
    m = record["methods"]
    assert m["ft"]["pruned"] == 0 and record["masks"]["ft"]["pruned"] == 0
    np.testing.assert_array_equal(models["ft"].kernels[0], models["dense"].kernels[0])
    assert m["ft"]["test_accuracy"] == m["dense"]["test_accuracy"]

    cfg = replace(cfg, alpha=1e-300)  # prune all but the most significant weights
    record, models, _ = run_paper_dataset("iris", "paper", 0, cfg, split=split)
    m, n = record["methods"], record["n_weights"]
    k = m["ft"]["pruned"]
    assert k > 0
    for method in ("random_ft", "magnitude_ft"):
        assert m[method]["pruned"] == k and m[method]["nonzero"] <= n - k
    assert m["ft"]["pct_pruned"] == pytest.approx(100 * k / n)
    # Masked weights stayed exactly zero through retraining.
    assert models["ft"].n_nonzero <= n - k


def test_a_mask_that_prunes_every_weight_is_a_result_not_a_crash(paper_data_dir):
    """Paper-mode Iris-3f, seed 1: every p-value is ~1, so FT prunes all 36 weights. The random
    and magnitude baselines at the same count are then the same empty net (no random_mask(1.0))."""
    record, models, _ = run_paper_dataset(
        "iris3f", "paper", 1, ReproduceConfig(), str(paper_data_dir)
    )
    n = record["n_weights"]
    assert record["masks"]["ft"]["pruned_all"] is True
    for method in ("ft", "random_ft", "magnitude_ft"):
        assert record["methods"][method]["pruned"] == n and models[method].n_nonzero == 0
        assert record["methods"][method]["pct_pruned"] == 100.0


def test_paired_comparison_matches_scipy_and_counts():
    from scipy.stats import ttest_rel

    a, b = [0.9, 0.8, 0.85, 0.7], [0.88, 0.8, 0.80, 0.75]
    c = paired(a, b)
    assert (c["wins"], c["ties"], c["losses"]) == (2, 1, 1)
    assert c["p"] == pytest.approx(ttest_rel(a, b).pvalue)
    assert c["mean"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert np.isnan(paired([0.5, 0.5], [0.5, 0.5])["p"])  # identical: no test


def test_verdicts_follow_the_stated_rules():
    def run(seed, dense, ft, rnd, mag):
        meth = {"dense": dense, "ft": ft, "random_ft": rnd, "magnitude_ft": mag}
        return {
            "mode": "paper", "dataset": "cancer", "seed": seed, "n_weights": 60,
            "masks": {"ft": {"pruned": 6}},
            "methods": {
                k: {"test_accuracy": v, "macro_f1": v, "epochs": 10, "pct_pruned": 10.0}
                for k, v in meth.items()
            },
        }  # fmt: skip

    runs = [run(s, 0.9, 0.9 - 0.05 - 0.001 * s, 0.7 + 0.001 * s, 0.95 + 0.001 * s)
            for s in range(5)]  # fmt: skip
    verdicts = {v["claim"]: v for v in analyse({"runs": runs})["paper"]["verdicts"]}
    keep = next(v for c, v in verdicts.items() if c.startswith("LEGC-FT"))
    assert keep["verdict"] == "not reproduced" and "cancer" in keep["why"]
    beats_random = next(v for c, v in verdicts.items() if "random" in c)
    assert beats_random["verdict"] == "reproduced"
    vs_mag = next(v for c, v in verdicts.items() if "magnitude" in c)
    assert vs_mag["verdict"] == "not reproduced"


def test_missing_or_corrupt_data_is_refused_clearly(tmp_path):
    with pytest.raises(InvalidArgumentError, match="not found.*Fix"):
        paper_dataset("vowel", tmp_path)  # not shipped: Cancer would come from the package
    (tmp_path / "legcnet").mkdir()
    (tmp_path / "legcnet/binary_cancer.csv").write_text("1,2,3\n")
    with pytest.raises(InvalidArgumentError, match="SHA-256.*Fix"):
        paper_dataset("cancer", tmp_path)
    with pytest.raises(InvalidArgumentError, match="unknown paper dataset"):
        paper_dataset("cifar", tmp_path)


def test_quick_reproduction_end_to_end_through_the_cli(tmp_path, paper_data_dir):
    from click.testing import CliRunner

    from legc_research.cli import main

    out, docs = tmp_path / "run", tmp_path / "docs"
    args = [
        "reproduce",
        "--quick",
        "--out",
        str(out),
        "--docs",
        str(docs),
        "--data-dir",
        str(paper_data_dir),
    ]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert {(r["mode"], r["dataset"]) for r in results["runs"]} == {
        (m, d) for m in ("paper", "clean") for d in ("iris", "banknote")
    }
    for r in results["runs"]:
        assert set(r["methods"]) >= {"dense"}
        for v in r["methods"].values():
            assert 0.0 <= v["test_accuracy"] <= 1.0 and 0.0 <= v["macro_f1"] <= 1.0
    text = (docs / "results.md").read_text()
    assert "## Verdicts" in text and "Iris" in text and "| LEGC-FT |" in text
    assert any(v in text for v in ("**reproduced**", "**not reproduced**", "**inconclusive**"))
    assert (docs / "img/results_sweep_mnist-784-50-30-10.png").stat().st_size > 1000
    assert (out / "models/paper/iris/seed0/dense.keras").is_file()
    # The saved models are diagnosed (banknote is one of the paper's SHAP datasets).
    diag = json.loads((docs / "diagnostics.json").read_text())
    assert set(diag["agreement"]["datasets"]) == {"banknote"}
    assert diag["agreement"]["verdicts"]["banknote/ft"]["verdict"] == "inconclusive"  # 2 seeds
    assert "feature-importance verdict" in res.output
    # Never overwrites without --force; --report-only regenerates from results.json.
    res = CliRunner().invoke(main, args)
    assert res.exit_code != 0 and "OutputExistsError" in res.output
    res = CliRunner().invoke(main, [*args, "--report-only", "--force", "--no-diagnose"])
    assert res.exit_code == 0, res.output
    assert "diagnosing" not in res.output


def test_overwrite_refused_and_bad_config(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="Fix"):
        reproduce(tmp_path, ReproduceConfig.quick())
    with pytest.raises(InvalidArgumentError, match="unknown dataset"):
        reproduce(tmp_path / "x", ReproduceConfig(datasets=("cifar",)))
    with pytest.raises(OutputExistsError):
        write_report({"runs": []}, _existing_docs(tmp_path))


def _existing_docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "results.md").write_text("x")
    return d
