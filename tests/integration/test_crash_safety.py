"""SIGKILL during recording, scoring and saving: the previous complete file or none, never half.

Each case runs a real training/scoring process and kills it: at seeded random moments while it
records, and deterministically in the middle of writing a file (the child replaces ``np.savez``
with a writer that emits half an archive and then SIGKILLs its own process). Afterwards every file
on disk must load completely, the interrupted recording must still score up to its last complete
save, and the next write must report and remove what the interruption left behind.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest

import keras_legc as kl
from keras_legc import HistoryError, LegcWarning
from keras_legc._io import stale_temp_files
from keras_legc.core.history import HISTORY_FILE

RECORD = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import keras_legc as kl
    from keras_legc.keras.flavour import keras

    run_dir, kill_on_save = sys.argv[1], int(sys.argv[2])
    if kill_on_save:  # fault injection: die half-way through the kill_on_save-th .npz write
        real_savez, calls = np.savez, [0]

        def dying_savez(file, *args, **kwargs):
            calls[0] += 1
            if calls[0] < kill_on_save:
                return real_savez(file, *args, **kwargs)
            file.write(b"PK\\x03\\x04" + b"\\0" * 4096)  # the start of a zip, never finished
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        np.savez = dying_savez
    k = keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12)).astype("float32")
    y = (x[:, 0] - x[:, 1] > 0).astype("int64")
    k.utils.set_random_seed(0)
    model = k.Sequential([k.layers.Input((12,)), k.layers.Dense(16, activation="tanh"),
                          k.layers.Dense(2)])
    model.compile(k.optimizers.SGD(0.05), k.losses.SparseCategoricalCrossentropy(from_logits=True))
    rec = kl.WeightHistory(every=1, window=8, overlap=0.0, run_dir=run_dir, overwrite=True,
                           validation_data=(x[:80], y[:80]))
    print("training", flush=True)
    model.fit(x, y, batch_size=8, epochs=int(os.environ.get("EPOCHS", "60")), callbacks=[rec],
              verbose=0)
    print("finished", flush=True)
    """
)


def _run_child(script: str, *args: str, kill_after: float | None = None, env=None) -> int:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )
    if kill_after is not None:
        assert proc.stdout.readline().strip() == "training"  # TF imported, fit about to start
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=300)
    return proc.returncode


def _assert_consistent(run_dir):
    """Whatever is on disk is complete: it loads, and it scores when long enough."""
    path = run_dir / HISTORY_FILE
    if not path.exists():
        with pytest.raises(HistoryError, match="no complete history|holds no recorded history"):
            kl.History.load(run_dir)
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        history = kl.History.load(run_dir)
    assert history.le.shape == (history.n_weights, history.n_windows)
    assert np.isfinite(history.le).all() and np.isfinite(history.target).all()
    if history.n_windows >= 5:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LegcWarning)
            scores = kl.score(history, max_lag=1)
        assert scores.n_weights == history.n_weights
    return history


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_random_moments_while_recording(tmp_path, seed):
    delay = float(np.random.default_rng(seed).uniform(0.0, 2.5))
    run_dir = tmp_path / "run"
    assert _run_child(RECORD, str(run_dir), "0", kill_after=delay) == -signal.SIGKILL
    _assert_consistent(run_dir)


def test_sigkill_in_the_middle_of_a_save_keeps_the_previous_history(tmp_path):
    run_dir = tmp_path / "run"
    # .npz writes: the empty history at train begin, then one per epoch; the 4th (epoch 3) dies
    # half-way.
    code = _run_child(RECORD, str(run_dir), "4", env={"EPOCHS": "10"})
    assert code == -signal.SIGKILL
    stale = stale_temp_files(run_dir / HISTORY_FILE)
    assert len(stale) == 1 and stale[0].stat().st_size > 0  # the half file is only ever a temp
    with pytest.warns(LegcWarning, match="interrupted save left.*18 windows completed"):
        history = kl.History.load(run_dir)
    # Killed while saving epoch 3: still every window closed by then (the journal), 18 windows of
    # 8 steps from 150 snapshots, not just the 12 of the last complete save (epoch 2).
    assert history.n_windows == 18 and history.n_snapshots == 8 + 17 * 8
    assert history.initial_weights is not None
    assert _assert_consistent(run_dir).n_windows == history.n_windows
    # The next run says what it found and cleans it up; its own saves then complete normally.
    with pytest.warns(LegcWarning, match="interrupted earlier write.*removed"):
        history.save(run_dir, overwrite=True)
    assert stale_temp_files(run_dir / HISTORY_FILE) == []


def test_sigkill_in_the_first_save_leaves_no_history(tmp_path):
    run_dir = tmp_path / "run"
    assert _run_child(RECORD, str(run_dir), "1", env={"EPOCHS": "2"}) == -signal.SIGKILL
    assert not (run_dir / HISTORY_FILE).exists()
    with pytest.raises(HistoryError, match="no complete history, only .*interrupted"):
        kl.History.load(run_dir)


SCORE = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import keras_legc as kl

    real_savez_compressed = np.savez_compressed

    def dying(file, *args, **kwargs):
        file.write(b"PK\\x03\\x04" + b"\\0" * 1024)
        file.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    np.savez_compressed = dying
    scores = kl.score(sys.argv[1], max_lag=1)
    scores.save(sys.argv[2], overwrite=True)
    """
)


def test_sigkill_while_saving_scores_keeps_the_previous_scores(tmp_path):
    run_dir = tmp_path / "run"
    assert _run_child(RECORD, str(run_dir), "0", env={"EPOCHS": "3"}) == 0
    # A recording that completes leaves only the history: the window journal is folded into it.
    assert sorted(p.name for p in run_dir.iterdir()) == ["history.npz", "manifest.json"]
    out = tmp_path / "scores.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        first = kl.score(run_dir, max_lag=1)
    first.save(out)
    before = out.read_bytes()
    assert _run_child(SCORE, str(run_dir), str(out)) == -signal.SIGKILL
    assert out.read_bytes() == before  # untouched, still loads
    np.testing.assert_array_equal(kl.Scores.load(out).pvalues, first.pvalues)
    assert len(stale_temp_files(out)) == 1
    with pytest.warns(LegcWarning, match="interrupted earlier write"):
        first.save(out, overwrite=True)


def test_a_corrupt_journal_falls_back_to_the_last_complete_save(tmp_path):
    run_dir = tmp_path / "run"
    code = _run_child(RECORD, str(run_dir), "4", env={"EPOCHS": "10"})
    assert code == -signal.SIGKILL
    (run_dir / "le_journal.json").write_text("{broken")
    with pytest.warns(LegcWarning, match="ignoring the window journal"):
        history = kl.History.load(run_dir)
    assert history.n_windows == 12  # the two complete epoch saves


EXPORT = textwrap.dedent(
    """
    import os, signal, sys
    import keras_legc as kl
    from keras_legc import _io
    from keras_legc.keras.flavour import keras
    from keras_legc.keras.export import export_tflite

    k = keras()
    k.utils.set_random_seed(0)
    model = k.Sequential([k.layers.Input((6,)), k.layers.Dense(5), k.layers.Dense(2)])
    real_replace = os.replace

    def dying_replace(src, dst):  # the .tflite is complete in its temp file, not yet renamed
        if str(dst).endswith(".tflite"):
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst)

    _io.os.replace = dying_replace
    export_tflite(model, sys.argv[1], overwrite=True)
    """
)


def test_sigkill_during_export_leaves_no_tflite_and_the_next_export_reports_it(tmp_path):
    from keras_legc.keras.export import export_tflite

    out = tmp_path / "m.tflite"
    assert _run_child(EXPORT, str(out)) == -signal.SIGKILL
    assert not out.exists() and len(stale_temp_files(out)) == 1  # none, never half a model
    from keras_legc.keras.flavour import keras

    k = keras()
    model = k.Sequential([k.layers.Input((6,)), k.layers.Dense(5), k.layers.Dense(2)])
    with pytest.warns(LegcWarning, match="interrupted earlier write.*there was no complete file"):
        export_tflite(model, out)
    assert out.exists() and stale_temp_files(out) == []


def test_save_model_is_atomic_and_loads_back(tmp_path):
    from keras_legc.keras.flavour import keras

    k = keras()
    model = k.Sequential([k.layers.Input((3,)), k.layers.Dense(2)])
    path = kl.save_model(model, tmp_path / "m.keras")
    back = kl.load_model(path)
    np.testing.assert_array_equal(back.get_weights()[0], model.get_weights()[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]  # no temp file left
    kl.save_model(model, path, overwrite=True)


# -- a recording whose LE series go to an on-disk store (issue 17) --------------------------------
STORE_RECORD = textwrap.dedent(
    """
    import sys
    import numpy as np
    from keras_legc.core.recorder import Recorder

    def record(steps, **kwargs):
        rng = np.random.default_rng(0)
        targets = iter(rng.random(100_000))
        rec = Recorder(["a", "b"], {"a": (40, 20), "b": (20, 5)}, window=8, overlap=0.0,
                       target=lambda: next(targets), background=False, **kwargs)
        w = [rng.normal(size=(40, 20)), rng.normal(size=(20, 5))]
        for step in range(steps):
            w = [x + 0.05 * rng.normal(size=x.shape) for x in w]
            rec.step(w)
            if step % 40 == 39:
                rec.end_epoch()
            if step == 0:
                print("training", flush=True)
        return rec.finish()

    if __name__ == "__main__":
        record(200_000, run_dir=sys.argv[1], le_store=True, store_chunks=(256, 4))
    """
)


@pytest.mark.parametrize("seed", [0, 1])
def test_sigkill_while_recording_into_a_store(tmp_path, seed):
    delay = float(np.random.default_rng(seed).uniform(0.5, 2.5))
    run_dir = tmp_path / "run"
    assert _run_child(STORE_RECORD, str(run_dir), kill_after=delay) == -signal.SIGKILL
    history = _assert_consistent(run_dir)
    assert history is not None and history.n_windows >= 5
    # still out of core: the store, or (windows after the last save) the journal's memmap
    assert history.stored or not history.le.flags.owndata  # a view of the mapped file
    # every window it kept is the one an uninterrupted in-memory recording makes
    namespace = {}
    exec(STORE_RECORD, namespace)
    reference = namespace["record"](8 * history.n_windows)
    assert np.array_equal(np.asarray(history.le), reference.le)
    assert np.array_equal(history.target, reference.target)
