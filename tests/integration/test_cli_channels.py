"""``legc channels`` (keras_legc/cli/channels.py): load, prune to a target, save; refuses to
overwrite without --force and reports library errors as one line."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

import keras_legc as kl
from keras_legc.cli import main

keras = pytest.importorskip("keras")


@pytest.fixture
def saved(tmp_path):
    keras.utils.set_random_seed(0)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="c"), L.BatchNormalization(name="bn"),
        L.ReLU(name="r"), L.Flatten(name="f"), L.Dense(12, name="h"), L.Dense(3, name="out"),
    ])  # fmt: skip
    path = tmp_path / "m.keras"
    kl.save_model(model, path)
    return model, path


def test_channels_prunes_to_a_target_and_refuses_to_overwrite(saved, tmp_path):
    model, path = saved
    out = tmp_path / "small.keras"
    run = CliRunner().invoke(main, ["channels", str(path), str(out), "--ratio", "0.5", "--groups",
                                       "--per-layer"])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "ChannelGroup" in run.output and "wrote" in run.output
    small = kl.load_model(out)
    assert small.count_params() < model.count_params()
    assert [g.size for g in kl.channel_groups(small) if g.prunable] == [4, 6]
    before = out.read_bytes()
    again = CliRunner().invoke(main, ["channels", str(path), str(out), "--macs", "1000"])
    assert again.exit_code != 0 and "OutputExistsError" in again.output
    assert out.read_bytes() == before
    forced = CliRunner().invoke(main, ["channels", str(path), str(out), "--params", "900",
                                       "--force"])  # fmt: skip
    assert forced.exit_code == 0, forced.output
    assert kl.load_model(out).count_params() <= 900


def test_channels_reports_a_bad_target_in_one_line(saved, tmp_path):
    _, path = saved
    run = CliRunner().invoke(main, ["channels", str(path), str(tmp_path / "x.keras")])
    assert run.exit_code != 0 and "InvalidArgumentError: give exactly one target" in run.output
    assert not (tmp_path / "x.keras").exists()


def test_channels_to_a_latency_measures_and_keeps_a_model_that_meets_it(saved, tmp_path):
    # a tiny convnet runs far under 1000 ms: the one candidate timed (on LiteRT, in fresh
    # processes) meets it, and nothing is removed
    model, path = saved
    out = tmp_path / "fast.keras"
    run = CliRunner().invoke(main, ["channels", str(path), str(out), "--latency-ms", "1000"])
    assert run.exit_code == 0, run.output
    assert kl.load_model(out).count_params() == model.count_params()
    assert "meets 1000.0 ms already" in run.output
    both = CliRunner().invoke(main, ["channels", str(path), str(out), "--latency-ms", "1",
                                     "--macs", "1000", "--force"])  # fmt: skip
    assert both.exit_code != 0 and "takes its target from latency_ms, not ['macs']" in both.output
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((4, 8, 8, 1), np.float32))
    alone = CliRunner().invoke(main, ["channels", str(path), str(tmp_path / "y.keras"),
                                      "--int8-data", str(data)])  # fmt: skip
    assert alone.exit_code == 2 and "--int8-data times int8 files for --latency-ms" in alone.output
