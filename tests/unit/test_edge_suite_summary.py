"""legc_research.evidence.edge_suite without TensorFlow: cells, feature checks, the summary,
Pareto fronts, the verdicts and the compute estimate, on synthetic results."""

import json
from pathlib import Path

import numpy as np
import pytest

import keras_legc
from keras_legc.errors import InvalidArgumentError
from legc_research.evidence import edge_suite as es


def _cell(method, target, quant, acc, nbytes, p50, seed=0, ok=True, macs=1000):
    return {
        "net": "n", "seed": seed, "method": method, "target": target, "quantization": quant,
        "status": "ok", "accuracy": acc, "accuracy_keras": acc, "pruned_share": target,
        "tflite_bytes": nbytes, "macs": macs, "macs_nonzero": macs, "params": 10, "storage": "dense",
        "latency": {"litert": {"p50_ms": p50, "p50_ms_runs": [p50], "ok": ok}},
        "seconds_export": 2.0, "seconds_eval": 0.5, "eval_rows": 500, "seconds_bench": 1.0,
        "bench_runs": 30, "bench_warmup": 5,
    }  # fmt: skip


def test_pareto_keeps_exactly_the_undominated_rows():
    rng = np.random.default_rng(0)
    rows = [{"accuracy": float(a), "x": float(b)} for a, b in rng.random((40, 2))]
    rows += [dict(rows[0])]  # a tie is not dominated by its twin
    front = es.pareto(rows, "x")
    for r in rows:  # brute force: dominated iff some row is >= in accuracy, <= in x, one strict
        dominated = any(
            o["accuracy"] >= r["accuracy"] and o["x"] <= r["x"] and o != r for o in rows
        )
        assert (r in front) == (not dominated)
    assert es.pareto([{"accuracy": 0.5, "x": None}], "x") == []


def test_summary_means_over_seeds_and_compares_with_dense():
    cells = [
        _cell("dense", 0.0, "float", 0.90, 1000, 0.2, seed=0),
        _cell("dense", 0.0, "float", 0.92, 1000, 0.2, seed=1),
        _cell("legc_magnitude", 0.9, "float", 0.905, 400, 0.1, seed=0),
        _cell("legc_magnitude", 0.9, "float", 0.905, 300, 0.1, seed=1, ok=False),
        {"net": "n", "seed": 0, "method": "channels", "target": 2.0, "quantization": "float",
         "status": "skipped", "reason": "missing"},
    ]  # fmt: skip
    rows = es.summarise({"cells": cells, "runtimes": ["litert"]})
    assert [r["method"] for r in rows] == ["dense", "legc_magnitude"]  # skipped cells left out
    dense, pruned = rows
    assert dense["n"] == 2 and dense["accuracy"] == pytest.approx(0.91)
    assert dense["accuracy_sd"] == pytest.approx(np.std([0.90, 0.92], ddof=1))
    assert pruned["tflite_bytes"] == 350 and pruned["delta_pp"] == pytest.approx(-0.5)
    assert pruned["speedup"] == pytest.approx(2.0)
    assert dense["parity_litert"] and not pruned["parity_litert"]  # one seed failed its check


def test_verdicts_compare_the_best_of_each_side_within_one_point():
    cells = [
        _cell("dense", 0.0, "float", 0.900, 1000, 0.20),
        _cell("tfmot", 0.9, "float", 0.895, 500, 0.15),
        _cell("legc_magnitude", 0.9, "float", 0.899, 400, 0.18),
        _cell("legc_default", 0.95, "float", 0.850, 100, 0.05),  # smaller, but 5 pp worse
    ]
    lines = es._verdicts(es.summarise({"cells": cells, "runtimes": ["litert"]}))
    bytes_line = next(line for line in lines if "float, bytes" in line)
    assert "legc_magnitude 90% (400 B)" in bytes_line and bytes_line.endswith(": met.")
    latency_line = next(line for line in lines if "LiteRT p50" in line)
    assert "NOT met" in latency_line and "tfmot 90% (0.1500 ms)" in latency_line


def _timed(cell, runs):
    cell["latency"]["litert"].update(p50_ms=float(min(runs)), p50_ms_runs=runs)
    return cell


def test_latencies_within_the_runs_spread_are_a_tie_not_a_loss():
    # the process p50s spread 1-2% here: 0.1856 against 0.1858 ms (each cell's fastest
    # process) is a tie; 10% apart is not
    dense = _timed(_cell("dense", 0.0, "float", 0.900, 1000, 0), [0.186, 0.1862, 0.1899])
    legc = _timed(_cell("legc_magnitude", 0.75, "float", 0.899, 400, 0), [0.186, 0.1858, 0.1875])
    near = _timed(_cell("tfmot", 0.5, "float", 0.898, 900, 0), [0.1857, 0.1858, 0.1856])
    rows = es.summarise({"cells": [dense, legc, near], "runtimes": ["litert"]})
    spread = {r["method"]: r["p50_litert_spread"] for r in rows}
    assert spread["legc_magnitude"] == pytest.approx((0.1875 - 0.1858) / 0.186)
    assert {r["method"]: r["p50_litert"] for r in rows}["legc_magnitude"] == 0.1858  # fastest
    latency = next(line for line in es._verdicts(rows) if "LiteRT p50" in line)
    assert latency.endswith("met: tied (the two latencies differ by less than their runs' spread).")
    far = _timed(_cell("tfmot", 0.5, "float", 0.898, 900, 0), [0.167, 0.1672, 0.1671])
    rows = es.summarise({"cells": [dense, legc, far], "runtimes": ["litert"]})
    latency = next(line for line in es._verdicts(rows) if "LiteRT p50" in line)
    assert latency.endswith("NOT met: TF-MOT's is faster.")
    # a single run has no spread: exact comparison, as before
    assert es._tied({"p50_litert": 1.0}, {"p50_litert": 0.999}, "p50_litert") is False
    assert es._tied({"tflite_bytes": 1, "tflite_bytes_spread": 9}, {"tflite_bytes": 1},
                    "tflite_bytes") is False  # fmt: skip


def test_feature_checks_name_what_is_missing(monkeypatch):
    assert es._needs("no_such_api")() == "keras_legc.no_such_api is not in this checkout"

    def without(model, sparsity, *, block=None):
        return None

    def with_m_by_n(model, sparsity=None, *, sparsity_m_by_n=None):
        return None

    monkeypatch.setattr(keras_legc, "magnitude_mask", without)
    assert "has no sparsity_m_by_n=" in es._needs("magnitude_mask", "sparsity_m_by_n")()
    assert "has no sparsity_m_by_n=" in es.METHODS["legc_2of4"].missing()
    monkeypatch.setattr(keras_legc, "magnitude_mask", with_m_by_n)
    assert es.METHODS["legc_2of4"].missing() is None  # runs as soon as the API is there


def test_targets_and_config_checks():
    config = es.RunConfig(sparsities=(0.5, 0.9), mac_factors=(2.0,))
    assert es.targets(es.METHODS["dense"], config) == (0.0,)
    assert es.targets(es.METHODS["tfmot"], config) == (0.5, 0.9)
    assert es.targets(es.METHODS["tfmot_2of4"], config) == (0.5,)
    assert es.targets(es.METHODS["channels"], config) == (2.0,)
    for bad in ({"nets": ("resnet50",)}, {"methods": ("obd",)}, {"sparsities": (1.5,)},
                {"mac_factors": (0.5,)}, {"quantizations": ("int4",)},
                {"force": True, "retime": True}):  # fmt: skip
        with pytest.raises(InvalidArgumentError, match="Fix|need|must"):
            es.RunConfig(**bad).check()
    quick = es.RunConfig.quick_config(out=Path("/tmp/x"))
    assert quick.quick and quick.nets == ("lenet5",) and quick.bench["reps"] == 1
    assert es._floats("50,75,0.9") == (0.5, 0.75, 0.9)


def test_results_of_another_tool_are_refused_and_a_new_file_starts_empty(tmp_path):
    # --force does not reach here: it redoes the selected cells of a results file it keeps, and
    # never replaces another tool's file
    path = tmp_path / "results.json"
    assert es._load_results(path)["cells"] == []
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(InvalidArgumentError, match="not an edge-suite results file"):
        es._load_results(path)


def test_estimate_scales_measured_parts_to_the_full_run():
    # one quick cell: 2 s export, 0.5 s for 500 test rows, one 1 s runner process of 35 invokes
    cell = _cell("dense", 0.0, "float", 0.9, 1000, 0.2)
    startup = 1.0 - 35 * 0.2e-3
    full_bench = 2 * es.BENCH["reps"] * (startup + (es.BENCH["runs"] + es.BENCH["warmup"]) * 0.2e-3)
    per_cell = es.seconds_per_full_cell([cell], runtimes=2)
    assert per_cell == pytest.approx(2.0 + 0.5 * 20 + full_bench)
    times = {"nets": {"lenet5": {"seconds_per_epoch": 10.0}}}
    est = es.estimate(times, per_cell, seeds=3)["lenet5"]
    config = es.RunConfig()
    models = sum(len(es.targets(m, config)) for m in es.METHODS.values())  # dense included
    rec = es.train.recipe("lenet5")
    assert est["epochs"] == rec.epochs + models * rec.finetune_epochs
    assert est["cells"] == 3 * models * 2
    assert est["hours"] == pytest.approx(3 * (est["epochs"] * 10.0 + models * 2 * per_cell) / 3600)


def test_ranking_methods_refuse_a_recording_without_scores():
    """A dense recording that could not be scored (e.g. a target that never moved) makes the
    ranking methods fail with the reason, never fall back to another ranking silently."""
    dense = es.train.Dense(None, None, None, {"scores_error": "the target series is constant"},
                           Path("/nonexistent"))  # fmt: skip
    ctx = es.Context("lenet5", 0, None, dense, es.train.recipe("lenet5"))
    with pytest.raises(es.NoScoresError, match="lenet5 seed 0: the target series is constant"):
        ctx.scores  # noqa: B018


def test_cells_of_an_older_method_version_are_dropped_to_run_again(tmp_path):
    old = _cell("legc_default", 0.5, "float", 0.8, 100, 0.1)  # made before versions: 1
    current = {**_cell("legc_default", 0.75, "float", 0.7, 90, 0.1),
               "method_version": es.METHODS["legc_default"].version}  # fmt: skip
    anchor = _cell("tfmot", 0.5, "float", 0.8, 100, 0.1)
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"format": es.FORMAT, "version": es.VERSION, "nets": {},
                                "cells": [old, current, anchor], "invocations": []}))  # fmt: skip
    said = []
    cells = es._load_results(path, log=said.append)["cells"]
    assert es.METHODS["legc_default"].version > 1 and es.METHODS["tfmot"].version == 1
    assert cells == [current, anchor] and said and "1 cell(s)" in said[0]


def test_int8_cells_refused_by_an_older_export_policy_are_dropped_to_run_again(tmp_path):
    # int8 is now exported with INT8_TOLERANCE: a cell export refused at its default tolerance
    # goes again (from the saved model); failures for other reasons, passing cells and cells
    # refused under the current policy stay
    def failed(why, **extra):
        return {"net": "n", "seed": 0, "method": "tfmot", "target": 0.9, "quantization": "int8",
                "status": "failed", "error": why, **extra}  # fmt: skip

    refused = failed("export: verification failed: the int8 TFLite model differs ...")
    collapsed = failed("export: CollapsedModelError: the model's outputs are identical ...")
    now = failed("export: verification failed: ...", int8_policy=es.INT8_POLICY)
    float_refused = {**refused, "quantization": "float", "target": 0.5}
    passed = _cell("tfmot", 0.5, "int8", 0.8, 100, 0.1)
    path = tmp_path / "results.json"
    cells = [refused, collapsed, now, float_refused, passed]
    path.write_text(json.dumps({"format": es.FORMAT, "version": es.VERSION, "nets": {},
                                "cells": cells, "invocations": []}))  # fmt: skip
    said = []
    kept = es._load_results(path, log=said.append)["cells"]
    assert kept == [collapsed, now, float_refused, passed] and "1 cell(s)" in said[0]
    assert es.INT8_TOLERANCE >= 1.0  # int8 is judged by its test accuracy, not 16 rows' maximum


def test_int8_files_over_the_default_tolerance_are_listed_with_their_test_accuracy():
    def int8(target, max_error, mean_error, top1, scale=None, acc=0.9):
        return {**_cell("tfmot", target, "int8", acc, 100, 0.1), "accuracy_keras": 0.8675,
                "export_error": max_error, "export_mean_error": mean_error,
                "export_top1_agreement": top1,
                **({} if scale is None else {"export_reference_scale": scale})}  # fmt: skip

    healthy = int8(0.9, 0.237, 0.0045, 1.0, acc=0.8690)  # refused by the old max rule only
    wrong = int8(0.75, 0.9, 0.15, 0.25)  # refused by both
    moved = int8(0.8, 0.05, 0.03, 0.9375)  # max within 0.1, mean over 0.025: refused now only
    within = int8(0.5, 0.08, 0.003, 1.0)
    logits = int8(0.6, 0.5, 0.1, 1.0, scale=5.0)  # within both once scaled by max |output|
    older = _cell("dense", 0.0, "int8", 0.9, 100, 0.1)  # no statistics kept: not judged
    assert es.default_verdicts(healthy) == (False, True)
    assert es.default_verdicts(wrong) == (False, False)
    assert es.default_verdicts(moved) == (True, False)
    assert es.default_verdicts(within) == es.default_verdicts(logits) == (True, True)
    assert es.default_verdicts(older) == (None, None)
    lines = es._int8_over_default([healthy, wrong, moved, within, logits, older])
    assert lines[0] == "## int8 files export's default check refuses"
    assert "Of 5 int8 files with the statistics kept" in lines[2]
    assert "refuses 2; today's default" in lines[2] and "refuses 2. The test set" in lines[2]
    rows = [line for line in lines if line.startswith("| n |")]
    assert rows == [
        "| n | tfmot | 75% | 0 | 0.900 | 0.1500 | 25% | refuses | refuses | 0.9000 | 0.8675 | +3.25 |",
        "| n | tfmot | 80% | 0 | 0.050 | 0.0300 | 94% | passes | refuses | 0.9000 | 0.8675 | +3.25 |",
        "| n | tfmot | 90% | 0 | 0.237 | 0.0045 | 100% | refuses | passes | 0.8690 | 0.8675 | +0.15 |",
    ]
    assert es._int8_over_default([within, logits, older]) == []


def test_a_cells_latency_is_its_fastest_process():
    """Identical files run in a fast or a slow mode per fresh process on the development machine:
    the fastest process's p50 is the file's; a cell that kept one number gives it."""
    assert es.cell_p50({"p50_ms": 0.104, "p50_ms_runs": [0.1047, 0.0852, 0.1057]}) == 0.0852
    assert es.cell_p50({"p50_ms": 0.2}) == 0.2
    assert es.cell_p50({}) is None
    slow = _timed(_cell("tfmot", 0.5, "int8", 0.86, 100, 0), [0.1047, 0.0852, 0.1057])
    rows = es.summarise({"cells": [slow], "runtimes": ["litert"]})
    assert rows[0]["p50_litert"] == 0.0852


def test_a_latency_marked_not_comparable_is_left_out_of_every_speed_comparison():
    """A cell timed when the machine ran its net faster (``latency_unreliable``, written by
    evidence/retime_check.py) keeps its accuracy and bytes; its p50 and speed-up are not shown,
    it cannot be the fastest, and the report says why."""
    cells = [_cell("dense", 0.0, "float", 0.90, 1000, 0.2),
             _cell("tfmot_2of4", 0.5, "float", 0.90, 800, 0.2),
             _cell("legc_2of4_same_zeros", 0.5, "float", 0.90, 800, 0.1),
             _cell("channels", 1.5, "float", 0.90, 700, 0.15)]  # fmt: skip
    results = {"cells": cells, "runtimes": ["litert"]}
    before = {r["method"]: r for r in es.summarise(results)}
    assert before["legc_2of4_same_zeros"]["speedup"] == pytest.approx(2.0)
    assert es.timed_p50(cells[2]) == 0.1
    cells[2]["latency_unreliable"] = "re-timed: the dense file ran 0.1 ms against 0.2 ms"
    assert es.timed_p50(cells[2]) is None and es.timed_p50(cells[1]) == 0.2
    rows = {r["method"]: r for r in es.summarise(results)}
    mine = rows["legc_2of4_same_zeros"]
    assert mine["p50_litert"] is None and mine["speedup"] is None
    assert mine["accuracy"] == 0.90 and mine["tflite_bytes"] == 800
    fastest = es._best(list(rows.values()), rows["dense"], es.LEGC_METHODS, "p50_litert")
    assert fastest["method"] == "channels"
    from legc_research.evidence import edge_vs_tfmot as ev

    (pair,) = [r for r in ev.comparisons(results) if r["method"] == "legc_2of4_same_zeros"]
    assert pair["p50_ratio"] is None and pair["bytes_ratio"] == pytest.approx(1.0)
    section = es.latencies_not_compared(list(rows.values()))
    assert section[0] == "## Latencies not compared"
    assert section[4] == "- n legc_2of4_same_zeros 50% float: " + cells[2]["latency_unreliable"]
    assert es.latencies_not_compared(list(before.values())) == []
