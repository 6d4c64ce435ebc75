"""legc_research.evidence.width_latency: narrower and channel-pruned zoo nets exported and timed by
the edge runner against the full-width net (a quick run: DS-CNN at 2x fewer MACs)."""

from __future__ import annotations

import json

import keras
import pytest

from legc_research.evidence import width_latency as wl
from legc_research.zoo import count_macs
from legc_research.zoo import nets as zoo


def test_quick_run_times_the_full_and_the_narrower_net(tmp_path, capsys):
    out = tmp_path / "rows.json"
    assert wl.main(["--quick", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["quantization"], r["factor"]) for r in rows] == [
        ("float", 1.0), ("float", 2.0), ("int8", 1.0), ("int8", 2.0)
    ]  # fmt: skip
    full_macs = count_macs(zoo.ds_cnn(keras))
    for r in rows:
        # MACs recounted from an independently built net of that width
        assert r["macs"] == count_macs(zoo.ds_cnn(keras, filters=r["width"]))
        assert r["mac_reduction"] == pytest.approx(full_macs / r["macs"])
        assert r["p50_ms"] > 0 and r["bytes"] > 1000
    narrow = [r for r in rows if r["factor"] == 2.0]
    # the closest width to half the MACs: no other width is closer
    target = full_macs / 2
    err = abs(narrow[0]["macs"] - target)
    assert all(abs(count_macs(zoo.ds_cnn(keras, filters=w)) - target) >= err
               for w in wl.WIDTHS["ds_cnn"][2])  # fmt: skip
    for quant in ("float", "int8"):
        base, small = (r for r in rows if r["quantization"] == quant)
        assert small["speedup"] == pytest.approx(base["p50_ms"] / small["p50_ms"])
        assert small["speedup_over_reduction"] == pytest.approx(
            small["speedup"] / small["mac_reduction"])  # fmt: skip
    assert "| ds_cnn | int8 |" in capsys.readouterr().out
    # nothing is overwritten; bad input is refused by name
    assert wl.main(["--quick", "--json", str(out)]) == 2
    assert wl.main(["--nets", "vgg", "--json", str(tmp_path / "x.json")]) == 2


def test_pruned_rows_meet_their_mac_target_and_unreachable_ones_say_so():
    rows = wl.run(("resnet8",), (2.0,), wl.QUICK["bench"], log=lambda s: None,
                  quants=("int8",), round_tos=(8, 16))  # fmt: skip
    full = count_macs(zoo.resnet8(keras))
    r8 = next(r for r in rows if r["width"] == "pruned, round_to=8")
    assert r8["macs"] <= full // 2 and r8["mac_reduction"] >= 2.0
    # 16-channel groups cannot shrink at round_to=16: 2x is out of reach, and the row says so
    r16 = next(r for r in rows if r["width"] == "pruned, round_to=16")
    assert "cannot be reached" in r16["error"]
    assert "not reachable" in wl.table(rows)


def test_reference_shapes_build_the_mlperf_tiny_nets():
    """--reference-shapes: the nets at MLPerf Tiny's input shapes, with its MAC counts (DS-CNN
    2.66M, ResNet-8 12.5M, MobileNetV1-0.25 7.49M), narrower widths included."""
    for net, macs in (("ds_cnn", 2_656_768), ("resnet8", 12_501_632),
                      ("mobilenet_v1_025", 7_489_664)):  # fmt: skip
        spec = zoo.NETS[net]
        full = wl._build(net, wl.WIDTHS[net][1], reference=True)
        assert full.input_shape[1:] == spec.reference_input
        assert full.output_shape[-1] == spec.reference_classes
        assert wl._macs(net, wl.WIDTHS[net][1], True) == count_macs(full) == macs
        width, narrow_macs = wl.narrower(net, 2.0, reference=True)
        assert narrow_macs == count_macs(wl._build(net, width, reference=True)) < macs
        # the 28x28x1 net of the same width is counted apart (the cache is per shape)
        assert wl._macs(net, wl.WIDTHS[net][1]) == count_macs(wl._build(net, wl.WIDTHS[net][1]))
        assert wl._build(net, wl.WIDTHS[net][1]).input_shape[1:] == zoo.INPUT_SHAPE
