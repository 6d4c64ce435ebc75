"""WeightHistory at scale: steps_per_execution blocks, tf.distribute (only the chief records), the
max_overhead budget and the on-disk LE store, on real tf_keras and Keras 3 (TensorFlow backend)."""

import json
import math
import os
import socket
import subprocess
import sys
import warnings

import numpy as np
import pytest

import keras_legc as kl
from keras_legc.core.recorder import COSTS, OPTIONAL_COSTS, _final_wait
from keras_legc.errors import InvalidArgumentError, LegcWarning
from keras_legc.keras.flavour import keras, keras3, tf

STEPS, BATCH, EPOCHS, SPE = 10, 32, 4, 4  # 10 steps per epoch: blocks of 4, 4 and 2


def _data(rows=STEPS * BATCH):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 8)).astype("float32")
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")


VAL = tuple(a[:64] for a in _data())  # the validation rows _fit also gives fit


def _flavour(name):
    if name == "keras3" and keras3().backend.backend() != "tensorflow":
        pytest.skip("the Keras 3 cases run on the TensorFlow backend")
    return keras() if name == "keras2" else keras3()


def _model(k, spe=1):
    k.utils.set_random_seed(1)
    layers = [k.layers.Dense(6, activation="relu"), k.layers.Dense(2, activation="softmax")]
    model = k.Sequential([k.Input((8,)), *layers])
    model.compile(k.optimizers.SGD(0.1), "sparse_categorical_crossentropy", steps_per_execution=spe)
    return model


def _fit(model, recorder, epochs=EPOCHS, rows=STEPS * BATCH):
    x, y = _data(rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                  validation_data=(x[:64], y[:64]), callbacks=[recorder])  # fmt: skip
    return [str(w.message) for w in caught if issubclass(w.category, LegcWarning)]


class _AtBlockEnds(kl.WeightHistory):
    """The reference: steps_per_execution=1, the kernels handed on only where a block of SPE steps
    ends (steps 4, 8, 10 of each epoch): the same weights at the same steps."""

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % SPE == 0 or batch + 1 == STEPS:
            super().on_train_batch_end(batch, logs)


@pytest.mark.parametrize("flavour", ["keras2", "keras3"])
def test_steps_per_execution_records_one_snapshot_per_executed_block(flavour):
    k = _flavour(flavour)
    blocks = EPOCHS * math.ceil(STEPS / SPE)
    for every in (1, 2):
        rec = kl.WeightHistory(
            validation_data=VAL, window=4, overlap=0.0, every=every, background=False
        )
        messages = _fit(_model(k, SPE), rec)
        assert len(messages) == 1 and f"{every * SPE} optimizer steps apart" in messages[0]
        h = rec.history
        assert h.n_snapshots == math.ceil(blocks / every)
        assert h.n_windows == h.n_snapshots // 4
        assert h.meta["steps_per_execution"] == SPE
        assert h.meta["steps_per_snapshot"] == every * SPE
        assert h.meta["optimizer_steps"] == EPOCHS * STEPS  # real steps, from the optimizer
    # every=1: the same LE and target series as a per-step run sampled at the block ends
    blocked = kl.WeightHistory(
        validation_data=VAL, every=1, window=4, overlap=0.0, background=False
    )
    _fit(_model(k, SPE), blocked)
    reference = _AtBlockEnds(validation_data=VAL, every=1, window=4, overlap=0.0, background=False)
    assert _fit(_model(k, 1), reference) == []  # no warning without steps_per_execution
    a, b = np.asarray(blocked.history.le), np.asarray(reference.history.le)
    assert a.shape == b.shape == (8 * 6 + 6 * 2, 3)
    assert np.any(a != 0)  # weights that moved: a comparison that could fail
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(blocked.history.target, reference.history.target)
    assert "steps_per_execution" not in reference.history.meta


@pytest.mark.parametrize("flavour", ["keras2", "keras3"])
def test_mirrored_strategy_records_like_a_plain_fit(flavour):
    k = _flavour(flavour)
    plain = kl.WeightHistory(validation_data=VAL, every=1, window=4, overlap=0.0, background=False)
    _fit(_model(k), plain, epochs=2)
    strategy = tf().distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _model(k)
    mirrored = kl.WeightHistory(
        validation_data=VAL, every=1, window=4, overlap=0.0, background=False
    )
    _fit(model, mirrored, epochs=2)
    assert mirrored.history is not None
    assert np.asarray(mirrored.history.le).shape == np.asarray(plain.history.le).shape
    assert mirrored.history.n_snapshots == plain.history.n_snapshots == 2 * STEPS


WORKER = """
import json, os, sys
import numpy as np
import keras_legc as kl
from keras_legc.keras.flavour import keras, tf

run_dir, out = sys.argv[1], sys.argv[2]
k = keras()
strategy = tf().distribute.MultiWorkerMirroredStrategy()
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 8)).astype("float32")
y = (x[:, 0] > 0).astype("int64")
with strategy.scope():
    k.utils.set_random_seed(1)
    model = k.Sequential([k.Input((8,)), k.layers.Dense(6, activation="relu"),
                          k.layers.Dense(2, activation="softmax")])
    model.compile(k.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
recorder = kl.WeightHistory(validation_data=(x[:64], y[:64]), every=1, window=4, overlap=0.0, run_dir=run_dir, verbose=1, background=False)
model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
          validation_data=(x[:64], y[:64]), callbacks=[recorder])
h = recorder.history
with open(out, "w") as f:
    json.dump(None if h is None else {"le": list(np.asarray(h.le).shape),
                                      "n_snapshots": h.n_snapshots}, f)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_multi_worker_two_local_workers_only_the_chief_records(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    run_dir = tmp_path / "run"  # the same run_dir for both workers: the lock must not refuse
    cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
    procs = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config), "CUDA_VISIBLE_DEVICES": ""}
        procs.append(subprocess.Popen(
            [sys.executable, str(script), str(run_dir), str(tmp_path / f"out{index}.json")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        ))  # fmt: skip
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=400)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    chief, other = (json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(2))
    assert other is None and "not the chief" in outputs[1]
    assert "not the chief" not in outputs[0]
    # the chief's history has the shape a single-worker run records (8 steps x 2 epochs)
    single = kl.WeightHistory(validation_data=VAL, every=1, window=4, overlap=0.0, background=False)
    _fit(_model(keras()), single, epochs=2, rows=256)
    assert chief == {"le": list(np.asarray(single.history.le).shape), "n_snapshots": 16}
    saved = kl.History.load(run_dir)
    assert list(np.asarray(saved.le).shape) == chief["le"]


def _costs(calibration: dict) -> dict:
    """The costs :func:`kl.budget_every` takes, from a History's calibration record."""
    return {k: calibration[k] for k in (*COSTS, *OPTIONAL_COSTS) if k in calibration}


def _budget_fit(recorder, epochs, capsys):
    messages = _fit(_model(keras()), recorder, epochs=epochs)
    return messages, [line for line in capsys.readouterr().err.splitlines() if "every=" in line]


def test_max_overhead_small_raises_every_and_the_history_says_so(tmp_path, capsys):
    rec = kl.WeightHistory(
        validation_data=VAL, window=5, overlap=0.0, max_overhead=0.01, run_dir=tmp_path / "run"
    )
    messages, lines = _budget_fit(rec, 20, capsys)
    h = rec.history
    calibration = h.meta["calibration"]
    costs = _costs(calibration)
    assert costs["fit_steps"] == 20 * STEPS  # background: the last window is waited for
    choice = kl.budget_every(costs, 0.01, stride=5)
    # the manifest: what was chosen, the budget, the estimated cost and the measured costs
    assert h.every == choice["every"] > 1
    assert h.meta["every_requested"] == 1 and h.meta["max_overhead"] == 0.01
    assert h.meta["estimated_overhead"] == pytest.approx(choice["estimated_overhead"])
    final = _final_wait(costs)  # the last window's wait: within budget, or the rest within half
    assert h.meta["estimated_overhead"] - final <= max(0.01 - final, 0.005) * (1 + 1e-12)
    # 2 steps timed, then up to window - 1 in all beside the LE timing; then replayed
    assert 3 <= calibration["steps"] == calibration["hooks"] <= 4
    # nothing discarded: the History is a recording at the chosen every from step 1
    assert h.meta["optimizer_steps"] == 20 * STEPS
    assert h.n_snapshots == math.ceil(20 * STEPS / h.every)
    # one line of output; a warning iff fewer windows than scoring needs
    assert len(lines) == 1 and f"every={h.every} (max_overhead=0.01" in lines[0]
    few = h.n_windows < 5
    assert len(messages) == few
    if few:
        assert "fewer than the 5 that scoring needs" in messages[0] and "Fix:" in messages[0]
    assert rec.overhead is not None and rec.overhead > 0
    assert kl.History.load(tmp_path / "run").every == h.every


def test_the_budget_history_equals_an_explicit_every_at_the_chosen_spacing(capsys):
    rec = kl.WeightHistory(
        validation_data=VAL, window=5, overlap=0.0, max_overhead=0.05, background=False
    )
    _budget_fit(rec, 6, capsys)
    plain = kl.WeightHistory(
        validation_data=VAL, window=5, overlap=0.0, every=rec.history.every, background=False
    )
    _fit(_model(keras()), plain, epochs=6)
    assert rec.history.n_snapshots == plain.history.n_snapshots
    np.testing.assert_array_equal(np.asarray(rec.history.le), np.asarray(plain.history.le))
    np.testing.assert_array_equal(rec.history.target, plain.history.target)


def test_max_overhead_huge_keeps_every(capsys):
    rec = kl.WeightHistory(
        validation_data=VAL, window=5, overlap=0.0, every=2, max_overhead=1e9, background=False
    )
    _, lines = _budget_fit(rec, 3, capsys)
    h = rec.history
    assert h.every == 2 and h.meta["every_requested"] == 2
    assert h.meta["calibration"]["steps"] == 4
    assert h.n_snapshots == math.ceil(3 * STEPS / 2)
    assert len(lines) == 1 and "every=2 (max_overhead=1e+09" in lines[0]


def test_the_default_is_a_budget_and_an_explicit_every_records_as_given(capsys):
    rec = kl.WeightHistory(validation_data=VAL, window=5, overlap=0.0, background=False)
    assert rec.max_overhead == kl.DEFAULT_MAX_OVERHEAD == 0.5
    _, lines = _budget_fit(rec, 3, capsys)
    assert rec.history.meta["max_overhead"] == 0.5 and len(lines) == 1
    explicit = kl.WeightHistory(
        validation_data=VAL, window=5, overlap=0.0, every=1, background=False
    )
    assert explicit.max_overhead is None
    _, lines = _budget_fit(explicit, 3, capsys)
    assert explicit.history.every == 1 and explicit.history.n_snapshots == 3 * STEPS
    assert "max_overhead" not in explicit.history.meta and lines == []


def test_training_shorter_than_the_calibration_warns_and_keeps_its_snapshots():
    rec = kl.WeightHistory(validation_data=VAL, window=50, max_overhead=0.5, background=False)
    messages = _fit(_model(keras()), rec, epochs=1)
    assert len(messages) == 1 and "calibration" in messages[0] and "Fix:" in messages[0]
    h = rec.history
    assert h.n_windows == 0 and h.meta["calibration"]["steps"] == STEPS
    assert h.every == 1 and h.n_snapshots == STEPS


def test_a_budget_that_leaves_too_few_windows_warns_with_the_budget_that_would_not(capsys):
    rec = kl.WeightHistory(
        validation_data=VAL, window=5, overlap=0.0, max_overhead=0.001, background=False
    )
    messages, _ = _budget_fit(rec, 3, capsys)
    assert rec.history.every > 6  # 30 steps: fewer than 25 snapshots, so fewer than 5 windows
    assert len(messages) == 1 and f"chose every={rec.history.every}" in messages[0]
    fix = messages[0].split("Fix: max_overhead=")[1]
    needed, every = float(fix.split(" ")[0]), int(fix.split("every=")[1].split(",")[0])
    assert math.ceil(3 * STEPS / every) >= 25 and needed > 0.001  # 5 windows of 5 at that every
    costs = _costs(rec.history.meta["calibration"])
    assert "fit_steps" not in costs  # LEs inline: no wait at the end
    assert kl.budget_every(costs, needed, stride=5)["every"] <= every


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), float("inf"), True, "0.1", [0.1]])
def test_bad_max_overhead_is_refused(bad):
    with pytest.raises(InvalidArgumentError, match="max_overhead"):
        kl.WeightHistory(max_overhead=bad)


def test_le_store_is_passed_to_the_recorder(tmp_path):
    with pytest.raises(InvalidArgumentError, match="run_dir"):
        kl.WeightHistory(every=1, le_store=True)
    in_memory = kl.WeightHistory(
        validation_data=VAL, every=1, window=4, overlap=0.0, background=False
    )
    _fit(_model(keras()), in_memory, epochs=2)
    stored = kl.WeightHistory(validation_data=VAL, every=1, window=4, overlap=0.0, le_store=True, store_chunks=(16, 2),
                              run_dir=tmp_path / "run", background=False)  # fmt: skip
    _fit(_model(keras()), stored, epochs=2)
    assert (tmp_path / "run" / "le.zarr").is_dir()
    assert type(stored.history.le).__name__ == "StoredLE"
    np.testing.assert_array_equal(np.asarray(stored.history.le), np.asarray(in_memory.history.le))


def test_making_a_recorder_loads_the_le_kernel_once_so_fit_does_not():
    from keras_legc.keras.callbacks import load_kernel_once

    load_kernel_once.cache_clear()
    x = np.zeros((4, 3), np.float32)
    kl.WeightHistory(validation_data=(x, np.zeros(4)))
    kl.WeightHistory(validation_data=(x, np.zeros(4)), every=2)
    info = load_kernel_once.cache_info()
    assert (info.misses, info.hits) == (1, 1)  # loaded by the first, not again by the second


def test_tf_keras_hands_the_recorder_its_step_logs_without_converting_them():
    # a callback with batch hooks that does not say it takes tensor logs makes tf_keras convert
    # the step's logs to numpy after every step (docs/performance.md); the
    # recorder reads no logs, so it says it takes them as they are
    k = keras()
    seen = []

    class Spy(kl.WeightHistory):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(type((logs or {}).get("loss")).__module__)
            super().on_train_batch_end(batch, logs)

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.integers(0, 2, 64)
    model = k.Sequential([k.Input((4,)), k.layers.Dense(3), k.layers.Dense(2)])
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0,
              callbacks=[Spy(window=4, every=1, validation_data=(x, y))])  # fmt: skip
    assert seen and all("tensorflow" in m for m in seen), seen
