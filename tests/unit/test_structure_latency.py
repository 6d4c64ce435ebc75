"""prune_channels_to_latency (keras_legc/structure/latency.py): the MAC target searched against a
measured latency. The search is checked with a deterministic measure (a staircase in the MACs,
as LiteRT's is); the LiteRT timer itself on a real export."""

from __future__ import annotations

import math

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.errors import InvalidArgumentError
from keras_legc.structure import latency as L

keras = pytest.importorskip("keras")


def convnet(seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(32, 3, activation="relu", name="c1")(inp)
    x = keras.layers.Conv2D(32, 3, activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(10, name="out")(x))


def staircase(model) -> float:
    """A stand-in latency: 1 ms per 100,000 MACs in steps of 20,000 (a tile), plus 0.05 ms."""
    return 0.05 + math.ceil(kl.count_macs(model) / 20_000) * 0.2


def test_the_largest_measured_model_within_the_target_is_returned():
    model = convnet()
    dense = staircase(model)
    measured = []

    def measure(m):
        measured.append((kl.count_macs(m), staircase(m)))
        return staircase(m)

    for share in (0.7, 0.5, 0.3):
        measured.clear()
        small = L.prune_channels_to_latency(model, share * dense, measure=measure, verbose=False)
        assert staircase(small) <= share * dense
        fits = [macs for macs, ms in measured if ms <= share * dense]
        assert kl.count_macs(small) == max(fits)  # the largest candidate that met it
        # bracketed: a larger candidate was measured too slow; the search is bounded
        assert any(ms > share * dense and macs > kl.count_macs(small) for macs, ms in measured)
        assert len(measured) <= 1 + L.MAX_HALVINGS + 6
    assert small.output_shape == model.output_shape


def test_a_model_that_meets_the_target_loses_nothing(capsys):
    model = convnet()
    small = L.prune_channels_to_latency(model, staircase(model) + 1.0, measure=staircase)
    assert kl.count_macs(small) == kl.count_macs(model) and small is not model
    assert "meets" in capsys.readouterr().err
    x = np.random.default_rng(0).random((2, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(small(x), model(x), rtol=1e-6, atol=1e-6)


def test_an_unreachable_latency_names_the_fastest_measured():
    model = convnet()
    with pytest.raises(InvalidArgumentError, match=r"cannot be reached: the fastest .* 0\.2500 ms"):
        L.prune_channels_to_latency(model, 0.01, measure=staircase, verbose=False)


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, "fast", True, None])
def test_bad_latency_is_refused(bad):
    with pytest.raises(InvalidArgumentError, match="latency_ms must be a finite number > 0"):
        L.prune_channels_to_latency(convnet(), bad, measure=staircase)


@pytest.mark.parametrize("bad", [None, "0.1", math.nan, -1.0, 0.0])
def test_a_measure_that_returns_no_latency_is_refused(bad):
    with pytest.raises(InvalidArgumentError, match="measure\\(model\\) must return the latency"):
        L.prune_channels_to_latency(convnet(), 1.0, measure=lambda m: bad, verbose=False)


def test_a_second_target_or_bad_bisections_is_refused():
    with pytest.raises(InvalidArgumentError, match=r"not \['macs'\]"):
        L.prune_channels_to_latency(convnet(), 1.0, measure=staircase, macs=100)
    with pytest.raises(InvalidArgumentError, match="bisections must be"):
        L.prune_channels_to_latency(convnet(), 1.0, measure=staircase, bisections=-1)


def test_litert_timer_on_a_real_export():
    # a positive finite median; the same model timed twice agrees within a factor of 3 (timing
    # on a shared machine); a quarter of the MACs is not slower than 3x the full model
    model = convnet()
    a, b = (
        L.litert_p50_ms(model, runs=50, warmup=5, reps=1),
        L.litert_p50_ms(model, runs=50, warmup=5, reps=1),
    )
    assert 0 < a < 1000 and 0 < b < 1000 and max(a, b) / min(a, b) < 3
    small = kl.prune_channels(model, macs=kl.count_macs(model) // 4)
    assert L.litert_p50_ms(small, runs=50, warmup=5, reps=1) < 3 * max(a, b)
    x = np.random.default_rng(1).random((32, 12, 12, 1)).astype("float32")
    assert L.litert_p50_ms(model, quantization="int8", representative_data=x, runs=20, reps=1) > 0
