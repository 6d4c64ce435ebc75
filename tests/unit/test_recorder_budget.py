"""The recording budget's choice of ``every`` (:func:`keras_legc.core.recorder.budget_every`): a
pure function of the measured costs, so stable for identical costs and monotone in the budget."""

import math

import numpy as np
import pytest

from keras_legc.core.recorder import _final_wait, budget_every, estimated_overhead
from keras_legc.errors import InvalidArgumentError

# the calibration's costs on LeNet-300-100 (2-core development machine, under load)
LENET = {"train_s": 0.0022, "snapshot_s": 0.0006, "lyapunov_s": 0.19, "target_s": 0.013}


def _random_costs(rng):
    costs = {
        "train_s": float(rng.uniform(1e-4, 0.05)),
        "snapshot_s": float(rng.uniform(1e-6, 0.01)),
        "lyapunov_s": float(rng.uniform(0.0, 2.0)),
        "target_s": float(rng.uniform(0.0, 0.5)),
    }
    if rng.random() < 0.7:  # a background recorder, whose last window is waited for
        costs["fit_steps"] = int(rng.integers(1, 100_000))
        if rng.random() < 0.7:  # and its snapshots beside the LEs, measured by the calibration
            costs["snapshot_beside_s"] = costs["snapshot_s"] * float(rng.uniform(0.5, 20))
    return costs


def test_the_choice_follows_the_cost_model_by_hand():
    per_snapshot = 0.0006 + (0.19 + 0.013) / 45  # copy + one window's LE and target / stride
    for budget in (0.05, 0.1, 0.5, 1.0, 3.0):
        expected = max(1, math.ceil(per_snapshot / (budget * 0.0022)))
        got = budget_every(LENET, budget, stride=45)
        assert got["every"] == expected
        assert got["record_s_per_snapshot"] == pytest.approx(per_snapshot, rel=1e-12)
        assert got["estimated_overhead"] == pytest.approx(per_snapshot / (expected * 0.0022))


def test_snapshots_beside_the_les_cost_more_for_the_share_of_time_the_les_run():
    # the 2026-12-05 benchmark's calibration (tf_keras LeNet-300-100) with the whole fit's mean
    # snapshot beside the LEs: 0.59 ms alone, 2.46 ms over the fit
    costs = {"train_s": 0.0026, "snapshot_s": 0.00059, "lyapunov_s": 0.267, "target_s": 0.021}
    beside = {**costs, "snapshot_beside_s": 0.008}
    for every in (1, 3, 7, 20, 400):
        share = min(1.0, 0.267 / (45 * every * 0.0026))  # of the training time the LEs run
        snapshot = 0.00059 + share * (0.008 - 0.00059)
        by_hand = (45 * snapshot + 0.021 + 0.267) / (45 * every * 0.0026)
        assert estimated_overhead(beside, every, 45) == pytest.approx(by_hand, rel=1e-12)
        assert estimated_overhead(beside, every, 45) > estimated_overhead(costs, every, 45)
    # no slower beside the LEs (or faster): the model without it
    same = {**costs, "snapshot_beside_s": 0.0004}
    assert estimated_overhead(same, 7, 45) == estimated_overhead(costs, 7, 45)
    assert budget_every(beside, 0.5, 45)["every"] > budget_every(costs, 0.5, 45)["every"]


def test_identical_costs_give_the_identical_choice():
    rng = np.random.default_rng(0)
    for _ in range(200):
        costs, budget = _random_costs(rng), float(rng.uniform(0.01, 2))
        assert budget_every(dict(costs), budget, 45) == budget_every(dict(costs), budget, 45)


def test_a_larger_budget_never_gives_a_larger_every_and_the_estimate_fits_the_budget():
    rng = np.random.default_rng(1)
    budgets = np.sort(rng.uniform(0.001, 5.0, size=60))
    for _ in range(100):
        costs, stride, floor = (
            _random_costs(rng),
            int(rng.integers(1, 200)),
            int(rng.integers(1, 9)),
        )
        chosen = [budget_every(costs, float(b), stride, floor) for b in budgets]
        everys = [c["every"] for c in chosen]
        assert all(a >= b for a, b in zip(everys, everys[1:], strict=False))
        assert min(everys) >= floor
        final = _final_wait(costs)
        for b, c in zip(budgets, chosen, strict=True):
            # within budget (the rest within half of it where the last window's wait takes more
            # than half), and the next smaller every would not be (unless at the floor)
            allowed = max(b - final, b / 2)
            assert c["estimated_overhead"] - final <= allowed * (1 + 1e-12)
            if final <= b / 2:
                assert c["estimated_overhead"] <= b * (1 + 1e-12)
            if c["every"] > floor:
                assert estimated_overhead(costs, c["every"] - 1, stride) - final > allowed


def test_a_background_recorder_adds_the_wait_for_the_last_window_once():
    # LeNet-300-100 on 2 cores (calibrated beside training): LEs 0.2 s per window; 1,250 steps
    costs = {**LENET, "lyapunov_s": 0.2, "fit_steps": 1250}
    inline = {k: v for k, v in costs.items() if k != "fit_steps"}
    for every in (1, 2, 4, 8, 16):
        window = 45 * 0.0006 + 0.013 + 0.2
        assert estimated_overhead(inline, every, 45) == pytest.approx(
            window / (45 * every * 0.0022), rel=1e-12
        )
        assert estimated_overhead(costs, every, 45) == pytest.approx(
            window / (45 * every * 0.0022) + 0.2 / (1250 * 0.0022), rel=1e-12
        )
    # the wait for the last window alone over half the budget (a short fit): the rest held to
    # half of it, and the estimate says the budget is missed
    short = {**costs, "fit_steps": 100}  # 0.2 s against 0.22 s of training
    got = budget_every(short, 0.5, 45)
    assert got["estimated_overhead"] - _final_wait(short) <= 0.25 * (1 + 1e-12)
    assert got["estimated_overhead"] > 0.5
    assert estimated_overhead(short, got["every"] - 1, 45) - _final_wait(short) > 0.25


def test_free_recording_keeps_the_requested_every():
    free = {"train_s": 0.01, "snapshot_s": 0.0, "lyapunov_s": 0.0, "target_s": 0.0}
    assert budget_every(free, 0.01, 45, every=3) == {
        "every": 3, "estimated_overhead": 0.0, "record_s_per_snapshot": 0.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    "costs, budget, message",
    [
        ({"train_s": 1.0}, 0.5, "costs lack"),
        (LENET, 0.0, "budget"),
        (LENET, float("nan"), "budget"),
        (LENET, -1.0, "budget"),
    ],
)
def test_bad_costs_or_budget_are_refused(costs, budget, message):
    with pytest.raises(InvalidArgumentError, match=message):
        budget_every(costs, budget, 45)
