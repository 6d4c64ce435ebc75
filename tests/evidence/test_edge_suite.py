"""The edge benchmark (legc_research.evidence.edge_suite), run for real in --quick mode: every cell
lands in results.json, measured or skipped with its reason; a rerun measures nothing again; the
doc has the table and both plots."""

import json

import keras
import numpy as np
import pytest

import keras_legc as kl
from legc_research.datasets import FASHION_FILES, find_data_dir
from legc_research.evidence import edge_suite as es
from legc_research.zoo import build, count_macs

FASHION = find_data_dir(required=FASHION_FILES)
pytestmark = pytest.mark.skipif(FASHION is None, reason="needs LEGC_DATA_DIR with fashion-mnist/")


def test_quick_run_resume_and_report(tmp_path):
    out, doc, img = tmp_path / "run", tmp_path / "docs" / "edge-suite.md", tmp_path / "docs" / "img"
    argv = ["--quick", "--out", str(out), "--doc", str(doc), "--img-dir", str(img),
            "--data-dir", str(FASHION)]  # fmt: skip
    assert es.main(argv) == 0

    results = json.loads((out / "results.json").read_text())
    config = es.config_from_args(es.parse_args(argv))
    expected = {
        ("lenet5", 0, m, round(t, 6), q) for m in es.QUICK["methods"]
        for t in es.targets(es.METHODS[m], config) for q in es.QUANTIZATIONS
    }  # fmt: skip
    assert {es.cell_key(c) for c in results["cells"]} == expected
    assert len(results["cells"]) == len(expected)

    dense = build("lenet5", keras)
    params = sum(int(np.size(w)) for w in dense.trainable_weights)
    conv_dense_kernels = sum(
        int(np.size(la.kernel)) for la in dense.layers if type(la).__name__ in ("Dense", "Conv2D")
    )
    # what keras-legc's registry prunes in this net is exactly its Conv2D and Dense kernels
    assert sum(int(np.prod(w.shape)) for w in kl.prunable_weights(dense)) == conv_dense_kernels
    cells = {(c["method"], c["quantization"]): c for c in results["cells"]}
    for c in results["cells"]:
        why = es.METHODS[c["method"]].missing()
        if why is not None:  # an API this checkout lacks: skipped, saying which
            assert c["status"] == "skipped" and c["reason"] == why
            continue
        assert c["status"] == "ok", c
        assert c["eval_rows"] == 500 and 0.0 <= c["accuracy"] <= 1.0
        assert c["export_ok"] and c["latency"]["litert"]["ok"], c  # parity on LiteRT
        # the runner's LiteRT computes the file as export's LiteRT did
        assert c["latency"]["litert"]["diff_from_export_run"] <= 1e-6, c["latency"]
        if c["quantization"] == "int8":  # exported with the suite's tolerance; both rules'
            # verdicts read off the statistics the cell keeps
            assert c["int8_policy"] == es.INT8_POLICY and c["export_rows"] == es.N_REFERENCE
            assert all(isinstance(v, bool) for v in es.default_verdicts(c)), c
        assert c["latency"]["litert"]["p50_ms"] > 0
        if c["method"] == "channels":  # a smaller model: at most half the MACs (target 2x)
            assert c["macs"] <= count_macs(dense) / 2 and c["params"] < dense.count_params()
            assert c["pruned_share"] > 0.3
            continue
        assert c["macs"] == count_macs(dense)
        # keras-legc and TF-MOT both prune every Conv2D and Dense kernel here
        if c["method"] in ("legc_magnitude", "legc_gradual", "legc_default", "legc_default_block"):
            assert c["pruned_share"] == pytest.approx(0.75 * conv_dense_kernels / params, abs=0.01)
        if c["method"] == "tfmot":
            assert c["pruned_share"] == pytest.approx(0.75 * conv_dense_kernels / params, abs=0.01)
        if c["method"] == "tfmot_2of4":
            assert c["pruned_share"] == pytest.approx(0.5 * conv_dense_kernels / params, abs=0.02)
        if c["method"] != "dense":
            assert c["macs_nonzero"] < c["macs"]
    # LeNet-5 has no layer TF-MOT leaves dense: the 2:4 like-for-like cell is legc_2of4's model
    for q in es.QUANTIZATIONS:
        same, base = cells[("legc_2of4_same_zeros", q)], cells[("legc_2of4", q)]
        assert (same["accuracy"], same["tflite_bytes"]) == (base["accuracy"], base["tflite_bytes"])
    assert cells[("dense", "float")]["accuracy"] > 0.5  # 10 classes: well above chance
    assert cells[("dense", "int8")]["tflite_bytes"] < cells[("dense", "float")]["tflite_bytes"] / 3
    assert cells[("tfmot", "float")]["tflite_bytes"] < cells[("dense", "float")]["tflite_bytes"] / 2

    # The rerun measures nothing again and trains nothing; skipped cells are re-tried (skipped).
    lines = []
    again = es.run(config, log=lines.append)
    skipped = sum(c["status"] == "skipped" for c in results["cells"])
    assert (again["cells_run"], again["cells_skipped"]) == (0, skipped)
    assert again["cells_done_before"] == len(expected) - skipped
    assert not any(line.startswith("training") for line in lines)

    text = doc.read_text()
    assert "This is a `--quick` run" in text and "NOT the evidence" in text
    for m in es.QUICK["methods"]:
        if es.METHODS[m].missing() is None:
            assert f"| lenet5 | {m} |" in text, m
    for tag in ("latency", "bytes"):
        png = img / f"edge_suite_lenet5_{tag}.png"
        assert png.stat().st_size > 10_000 and f"img/{png.name}" in text
    # channels: rounded to 8 where that reaches the target; LeNet-5's 6-channel convolution
    # cannot reach 2x in multiples of 8, so it falls back to no rounding, and the cell says so
    chan = [c for c in results["cells"] if c["method"] == "channels" and c["status"] == "ok"]
    if es.METHODS["channels"].missing() is None:
        assert chan and all(c["round_to"] == 1 for c in chan)
        assert all(c["macs"] <= count_macs(dense) / c["target"] for c in chan)
    # issue 25's TF-MOT comparison, beside it: each quick cell paired with TF-MOT's, per quant
    versus = (doc.parent / "against-tfmot-convnets.md").read_text()
    assert "A `--quick` run" in versus
    two_of_four = ("legc_2of4", "legc_2of4_same_zeros")
    for m, quant in [(m, q) for m in ("legc_magnitude", "legc_default", *two_of_four)
                     for q in es.QUANTIZATIONS]:  # fmt: skip
        assert f"| lenet5 | {quant} | {'2:4' if m in two_of_four else '75%'} | {m} | 0 |" in versus
    assert (
        "- lenet5, float: +0.00 pp (p -; share pruned"
        in versus.split("`legc_2of4_same_zeros`):")[1]
    )

    # a method the library refuses (here: a block pattern a layer cannot take) is a failed cell
    # with the error, and the run goes on to the next method
    def refused(ctx, target):
        raise kl.InvalidArgumentError("block=(1, 16) ... Fix: block=None.")

    es.METHODS["refused"] = es.Method(refused, "none", "refused by the library")
    try:
        from dataclasses import replace

        done = es.run(replace(config, methods=("refused", "dense")), log=lines.append)
    finally:
        del es.METHODS["refused"]
    failed = [c for c in done["results"]["cells"] if c["method"] == "refused"]
    assert done["cells_run"] == 2 and [c["status"] for c in failed] == ["failed", "failed"]
    assert failed[0]["error"] == "InvalidArgumentError: block=(1, 16) ... Fix: block=None."

    # --force redoes the selected cells only: every other cell of the file stays as it was
    before = {es.cell_key(c): c for c in json.loads((out / "results.json").read_text())["cells"]}
    selected = replace(config, methods=("dense",), quantizations=("float",), force=True)
    forced = es.run(selected, log=lines.append)
    after = {es.cell_key(c): c for c in json.loads((out / "results.json").read_text())["cells"]}
    redone = ("lenet5", 0, "dense", 0.0, "float")
    assert forced["cells_run"] == 1 and set(after) == set(before) and redone in after
    assert all(after[k] == before[k] for k in before if k != redone)

    # --retime exports and times a cell again from its saved model (not pruned again), so the
    # cell's float and int8 files stay one model's
    saved = next((out / "models").rglob("legc_magnitude-0.75*.keras"))
    stamp = (saved.stat().st_mtime_ns, saved.read_bytes())
    again = es.run(replace(config, methods=("legc_magnitude",), quantizations=("int8",),
                           retime=True), log=lines.append)  # fmt: skip
    assert again["cells_run"] == 1 and (saved.stat().st_mtime_ns, saved.read_bytes()) == stamp
    cell = next(c for c in again["results"]["cells"]
                if es.cell_key(c) == ("lenet5", 0, "legc_magnitude", 0.75, "int8"))  # fmt: skip
    assert cell["status"] == "ok" and cell["seconds_prune"] == 0.0


@pytest.mark.parametrize("net", ["ds_cnn", "mobilenet_v1_025"])
def test_2of4_like_tfmot_leaves_the_depthwise_kernels_dense(net):
    model = build(net, keras, seed=0)
    left = es.tfmot_leaves_dense(model)
    depthwise = [la.name for la in model.layers if type(la).__name__ == "DepthwiseConv2D"]
    assert left == sorted(depthwise) and left
    mask = kl.magnitude_mask(model, sparsity_m_by_n=(2, 4), exclude=left)
    rows = kl.prunable_weights(model)
    for r in rows:
        keep = np.asarray(mask[r.layer, r.weight])
        if r.layer in left or r.shape[-2] < 4:  # fewer than 4 input channels: no group of 4
            assert keep.all(), r
        else:  # 2 of every 4 along the input channels: half of the weights
            assert keep.mean() == pytest.approx(0.5, abs=0.01), r
    total = sum(int(np.prod(r.shape)) for r in rows)
    kept_dense = sum(int(np.prod(r.shape)) for r in rows if r.layer in left)
    assert es.tfmot_share(model) == pytest.approx((total - kept_dense) / total)
