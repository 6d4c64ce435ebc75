"""The catalogue of bad inputs: each case builds one, calls the API/CLI/export/edge runner with it,
and names the error it must raise. ``tests/integration/test_catalogue.py`` runs every case;
``legc_research.evidence.reliability_doc`` (tools/reliability_doc.py) runs them again and writes docs/reliability.md from what they say.
A test helper (broken-model forgeries), so it lives under tests/ and is not in the wheel.

A case is ``Case(area, bad input, error class, call)``; ``call()`` must raise ``error`` (a
``keras_legc`` error class, or ``EdgeError`` of the standalone edge runner, which cannot import
keras_legc) whose message contains ``Fix`` and matches ``names`` (the problem it names).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import keras_legc as kl
from keras_legc import errors as E
from keras_legc.keras.export import export_tflite
from keras_legc.keras.flavour import keras

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Case:
    area: str
    bad_input: str
    error: type
    call: Callable[[Path], object]
    names: str  # regex: the problem, as the message must name it


class SubprocessError(Exception):
    """A failure reported by a child process: its exception class name and message."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


# -- small real models and histories ------------------------------------------------------------
def mlp(seed=0, d=6, hidden=5, name=None):
    k = keras()
    k.utils.set_random_seed(seed)
    layers = [k.layers.Input((d,)), k.layers.Dense(hidden, activation="tanh"), k.layers.Dense(2)]
    return k.Sequential(layers, name=name)


def history(k_windows=12, n=(6, 5), seed=0, le=None, target=None):
    rng = np.random.default_rng(seed)
    shapes = {"a": n, "b": (n[1], 2)}
    size = int(np.prod(n) + n[1] * 2)
    return kl.History(
        layers=["a", "b"], shapes=shapes,
        le=rng.normal(size=(size, k_windows)) if le is None else le,
        target=rng.normal(size=k_windows) if target is None else target,
        window=20, overlap=0.1, every=1, n_snapshots=20 + 18 * max(k_windows - 1, 0),
    )  # fmt: skip


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def no_dense():
    k = keras()
    return k.Sequential([k.layers.Input((4,)), k.layers.Flatten()])


def subclassed():
    k = keras()

    class Sub(k.Model):
        def __init__(self):
            super().__init__()
            self.d = k.layers.Dense(3)

        def call(self, x):
            return self.d(x)

    m = Sub()
    m(np.zeros((1, 4), "float32"))
    return m


def shared():
    k = keras()
    inp = k.Input((4,))
    d = k.layers.Dense(4)
    return k.Model(inp, d(d(inp)))


def nested():
    k = keras()
    inner = k.Sequential([k.layers.Input((4,)), k.layers.Dense(3)], name="inner")
    return k.Sequential([k.layers.Input((4,)), inner, k.layers.Dense(2)])


def unbuilt():
    k = keras()
    return k.Sequential([k.layers.Dense(3)])


def layer_names(model):
    return [layer.name for layer in model.layers]


def two_inputs():
    k = keras()
    a, b = k.Input((3,)), k.Input((2,))
    return k.Model([a, b], k.layers.Dense(2)(k.layers.Concatenate()([a, b])))


def unknown_dims():
    k = keras()
    inp = k.Input((None,))
    return k.Model(inp, k.layers.Dense(2)(k.layers.Reshape((-1, 1))(inp)))


def saved_history(tmp, **kwargs):
    history(**kwargs).save(tmp / "run")
    return tmp / "run"


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def cli(*args):
    from click.testing import CliRunner

    from keras_legc.cli import main

    result = CliRunner().invoke(main, list(args))
    if result.exit_code == 0:
        return result.output
    text = (result.output or "") + str(result.exception or "")
    name = text.split("Error: ", 1)[-1].split(":", 1)[0].strip()
    raise SubprocessError(name, text)


def edge(*args, hide: str | None = None):
    """Run the edge runner; ``hide``: a module it must find not installed (e.g. tflite_runtime)."""
    run = "import sys\nfrom legc_edge.bench import main\nsys.exit(main(sys.argv[1:]))"
    if hide:
        run = f"import sys\nsys.modules[{hide!r}] = None\n" + run
    out = subprocess.run(
        [sys.executable, "-c", run, *map(str, args)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if out.returncode == 0:
        return out.stdout
    raise SubprocessError("EdgeError", f"exit {out.returncode}: {out.stderr.strip()}")


def _child_path() -> str:
    """PYTHONPATH for a child that imports this module (``tests.catalogue``): the checkout first."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def without_interpreters(code: str):
    """Run ``code`` in a child where no TFLite interpreter can be imported (as if not installed)."""
    prelude = (
        "import sys\nsys.modules['ai_edge_litert'] = None\nsys.modules['tflite_runtime'] = None\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": _child_path()},
    )  # fmt: skip
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if last.startswith("RAISED "):
        name, message = last[len("RAISED ") :].split(" ", 1)
        raise SubprocessError(name, message)
    raise AssertionError(f"the child raised nothing it reported: {out.stderr[-1500:]}")


def exported(tmp: Path, name="m") -> Path:
    export_tflite(mlp(), tmp / f"{name}.tflite")
    return tmp / f"{name}.tflite"


def fit_with(recorder, lr=0.1, epochs=2, validation=True, target_scale=1.0):
    k = keras()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    model = mlp()
    model.compile(k.optimizers.SGD(lr), "mse")
    kwargs = {"validation_data": (x[:30], y[:30])} if validation else {}
    if validation:  # the recorder's own validation data (Keras does not hand it fit's)
        recorder.validation_data = kwargs["validation_data"]
    model.fit(x, k.utils.to_categorical(y, 2) * target_scale, batch_size=4, epochs=epochs,
              callbacks=[recorder], verbose=0, **kwargs)  # fmt: skip


def newer_version(path: Path, mask) -> None:
    """Save ``mask`` as if by a future keras-legc whose mask format is version 99."""
    from keras_legc._io import write_npz
    from keras_legc.masking import mask as masks

    meta = {"format": masks.FORMAT, "version": 99, "layers": mask.layers}
    write_npz(path, meta, {f"layer_{i}": mask[n] for i, n in enumerate(mask.layers)})


def mask_for(model, value=1):
    return kl.Mask({layer.name: np.full(tuple(layer.kernel.shape), value) for layer in
                    model.layers})  # fmt: skip


def series(n=3, steps=80):
    """``n`` seeded random-walk series of ``steps`` steps, like recorded weights."""
    return np.random.default_rng(1).normal(size=(n, steps)).cumsum(axis=1)


def with_nan(x, at=-1):
    """``x`` (a copy) with NaN at flat position ``at``."""
    x = np.array(x, dtype=float)
    x.flat[at] = np.nan
    return x


def reference_with(tmp: Path, **change):
    """Export a model, rewrite its reference with ``change`` (arrays, or functions of the array
    they replace), and run the edge runner on it."""
    exported(tmp)
    ref = dict(np.load(tmp / "m.reference.npz"))
    ref.update({k: v(ref[k]) if callable(v) else v for k, v in change.items()})
    np.savez(tmp / "r.npz", **ref)
    return edge(tmp / "m.tflite", "--reference", tmp / "r.npz")


# -- the catalogue --------------------------------------------------------------------------------
CASES: list[Case] = [
    # Models
    Case("API: model", "model with no prunable weight", E.ModelStructureError,
         lambda t: kl.magnitude_mask(no_dense(), 0.5), "no prunable weight"),
    Case("API: model", "subclassed tf.keras.Model", E.ModelStructureError,
         lambda t: kl.magnitude_mask(subclassed(), 0.5), "subclassed"),
    Case("API: model", "Dense layer shared (called twice)", E.ModelStructureError,
         lambda t: kl.magnitude_mask(shared(), 0.5), "shared"),
    Case("API: model", "tf_keras: pruning layers inside a nested model", E.ModelStructureError,
         lambda t: (m := nested(), kl.prune(m, kl.Mask.keep_all(m))), "nested model"),
    Case("API: model", "model that is not built", E.ModelStructureError,
         lambda t: kl.magnitude_mask(unbuilt(), 0.5), "not built"),
    Case("API: model", "not a Keras model at all (a numpy array)", E.ModelStructureError,
         lambda t: kl.magnitude_mask(np.zeros((3, 3)), 0.5), "expected a Keras model"),
    Case("API: numerics", "non-numeric (string) series for windowed_lyapunov",
         E.InvalidArgumentError,
         lambda t: kl.windowed_lyapunov(np.array([["a"] * 60]), 50), "real numbers"),
    Case("API: numerics", "complex cause series for granger_pvalues", E.InvalidArgumentError,
         lambda t: kl.granger_pvalues(np.ones((2, 20), complex), np.arange(20.0), 2),
         "real numbers"),
    # Masks
    Case("API: mask", "mask with the wrong kernel shape", E.MaskMismatchError,
         lambda t: (m := mlp(), kl.prune(m, kl.Mask({n: np.ones((2, 2)) for n in
                                                     layer_names(m)}))),
         r"does not match.*\(2, 2\)"),
    Case("API: mask", "mask with values other than 0/1 (float 0.5)", E.MaskMismatchError,
         lambda t: mask_for(mlp(), 0.5), "only 0 and 1"),
    Case("API: mask", "mask built for another model (other layer names)", E.MaskMismatchError,
         lambda t: kl.prune(mlp(), kl.Mask({"x": np.ones((6, 5)), "y": np.ones((5, 2))})),
         "does not match"),
    Case("API: mask", "a dict instead of a Mask", E.MaskMismatchError,
         lambda t: kl.prune(mlp(), {"dense": np.ones((6, 5))}), "must be a keras_legc.Mask"),
    Case("API: mask", "mask file that is not a mask (random bytes)", E.MaskMismatchError,
         lambda t: (t / "m.npz").write_bytes(os.urandom(64)) and kl.Mask.load(t / "m.npz"),
         "not a readable keras_legc mask"),
    Case("API: mask", "mask file of another model, loaded against this one",
         E.MaskMismatchError,
         lambda t: (kl.magnitude_mask(mlp(hidden=7), 0.5).save(t / "m.npz"),
                    kl.Mask.load(t / "m.npz", model=mlp())), "does not match the model"),
    Case("API: mask", "mask file written by a newer keras-legc format version",
         E.MaskMismatchError,
         lambda t: (newer_version(t / "m.npz", mask_for(mlp())), kl.Mask.load(t / "m.npz")),
         "newer than this keras_legc reads"),
    Case("API: scores", "scores file of another model, loaded against this one",
         E.MaskMismatchError,
         lambda t: (quiet(kl.score, history()).save(t / "s.npz"),
                    kl.Scores.load(t / "s.npz", model=mlp())), "belong to another model"),
    Case("API: mask", "sparsity outside [0, 1)", E.InvalidArgumentError,
         lambda t: kl.magnitude_mask(mlp(), 1.5), "sparsity"),
    # Histories
    Case("API: history", "empty history (no LE window)", E.HistoryError,
         lambda t: kl.score(history(k_windows=0)), "0 LE window"),
    Case("API: history", "history too short for a Granger test at lag 1 (4 windows)",
         E.HistoryError, lambda t: kl.score(history(k_windows=4)), "at least 5"),
    Case("API: history", "history with NaN in the LE series", E.NonFiniteError,
         lambda t: kl.score(history(le=np.full((40, 12), np.nan))), "NaN or inf"),
    Case("API: history", "history with inf in the target series", E.NonFiniteError,
         lambda t: kl.score(history(target=np.r_[np.ones(11), np.inf])), "NaN or inf"),
    Case("API: history", "constant target (misclassification never changes)", E.HistoryError,
         lambda t: quiet(kl.score, history(target=np.full(12, 0.2))), "constant"),
    Case("API: history", "history file truncated on disk", E.HistoryError,
         lambda t: (truncate(saved_history(t) / "history.npz"), kl.History.load(t / "run")),
         "unreadable or corrupt"),
    Case("API: history", "history file replaced by random bytes", E.HistoryError,
         lambda t: ((saved_history(t) / "history.npz").write_bytes(os.urandom(256)),
                    kl.History.load(t / "run")), "unreadable or corrupt"),
    Case("API: history", "run_dir without any recorded history", E.HistoryError,
         lambda t: kl.History.load(t), "no recorded history"),
    Case("API: history", "LE array inconsistent with the layers", E.HistoryError,
         lambda t: history(le=np.zeros((7, 12))), "inconsistent history"),
    Case("API: history", "rewinding to the initial weights of a different model",
         E.MaskMismatchError,
         lambda t: (m := mlp(), kl.prune(m, mask_for(m), rewind_to=mlp(hidden=7).get_weights())),
         "rewind_to holds weights"),
    Case("API: scores", "every weight degenerate (constant LE series)", E.HistoryError,
         lambda t: quiet(kl.score, history(le=np.ones((40, 12)))).mask(alpha=0.05),
         "all 40 weights are degenerate"),
    Case("API: scores", "alpha outside (0, 1)", E.InvalidArgumentError,
         lambda t: quiet(kl.score, history()).mask(alpha=0.0), "alpha must be in"),
    Case("API: scores", "both alpha and sparsity", E.InvalidArgumentError,
         lambda t: quiet(kl.score, history()).mask(alpha=0.05, sparsity=0.5), "not both"),
    Case("API: scores", "fixed lag too large for the number of windows", E.HistoryError,
         lambda t: kl.score(history(), lag=6), "lag 6 needs more than 19 points"),
    Case("API: scores", "scores file that is a mask file", E.HistoryError,
         lambda t: (mask_for(mlp()).save(t / "m.npz"), kl.Scores.load(t / "m.npz")),
         "not a readable keras_legc scores"),
    # Recording
    Case("API: recording", "fit without any validation data", E.HistoryError,
         lambda t: fit_with(kl.WeightHistory(every=1, window=10), validation=False),
         "needs validation data"),
    Case("API: recording", "window shorter than 4 steps", E.InvalidArgumentError,
         lambda t: kl.WeightHistory(every=1, window=2), "window must be an integer >= 4"),
    Case("API: recording", "run_dir that already holds a history", E.OutputExistsError,
         lambda t: kl.WeightHistory(every=1, run_dir=saved_history(t)), "already holds a recorded"),
    Case("API: recording", "threads=0 for the LE kernel", E.InvalidArgumentError,
         lambda t: kl.WeightHistory(every=1, threads=0), "threads must be a positive integer"),
    Case("API: recording", "save_snapshots without a run_dir", E.InvalidArgumentError,
         lambda t: kl.WeightHistory(every=1, save_snapshots=True), "needs a run_dir"),
    Case("API: recording", "training that diverges to NaN", E.NonFiniteError,
         lambda t: fit_with(kl.WeightHistory(every=1, window=4, overlap=0.0), lr=1e30, target_scale=1e20),
         "diverged"),
    Case("API: model", "saving a model over an existing file", E.OutputExistsError,
         lambda t: (kl.save_model(mlp(), t / "m.keras"), kl.save_model(mlp(), t / "m.keras")),
         "already exists"),
    # Export
    Case("export", "output path that already exists", E.OutputExistsError,
         lambda t: (exported(t), export_tflite(mlp(), t / "m.tflite")), "already exists"),
    Case("export", "output that is not a .tflite path", E.InvalidArgumentError,
         lambda t: export_tflite(mlp(), t / "m.bin"), "must end in .tflite"),
    Case("export", "model with two inputs", E.ModelStructureError,
         lambda t: export_tflite(two_inputs(), t / "m.tflite"), "2 inputs"),
    Case("export", "reference inputs of the wrong shape", E.InvalidArgumentError,
         lambda t: export_tflite(mlp(), t / "m.tflite", reference_inputs=np.zeros((4, 3))),
         "must have shape"),
    Case("export", "int8 without representative data", E.InvalidArgumentError,
         lambda t: export_tflite(mlp(), t / "m.tflite", quantization="int8"),
         "representative"),
    Case("export", "no TFLite interpreter installed (the edge extra missing)",
         E.MissingDependencyError,
         lambda t: without_interpreters(f"""
             import keras_legc as kl
             from tests.catalogue import mlp
             from keras_legc.keras.export import export_tflite
             try:
                 export_tflite(mlp(), {str(t / 'm.tflite')!r})
             except kl.LegcError as e:
                 print('RAISED', type(e).__name__, str(e).replace(chr(10), ' '))
         """), r"keras-legc\[edge\]"),
    # CLI
    Case("CLI", "legc score on a folder without a history", E.HistoryError,
         lambda t: cli("score", str(t)), "no recorded history"),
    Case("CLI", "legc export over an existing file without --force", E.OutputExistsError,
         lambda t: (mlp().save(t / "m.keras"), (t / "o.tflite").write_bytes(b"x"),
                    cli("export", str(t / "m.keras"), str(t / "o.tflite"))), "already exists"),
    # Edge runner (standalone: no keras_legc import, so its own EdgeError and exit code 2)
    Case("edge runner", "a .tflite that is not a model", "EdgeError",
         lambda t: ((t / "x.tflite").write_bytes(os.urandom(200)), edge(t / "x.tflite")),
         "not a TFLite model"),
    Case("edge runner", "a reference file that belongs to another model", "EdgeError",
         lambda t: (exported(t, "a"), export_tflite(mlp(d=9), t / "b.tflite"),
                    edge(t / "a.tflite", "--reference", t / "b.reference.npz")),
         "belongs to another model"),
    Case("edge runner", "a reference file that is not a reference", "EdgeError",
         lambda t: (exported(t), np.savez(t / "r.npz", x=np.zeros(3)),
                    edge(t / "m.tflite", "--reference", t / "r.npz")), "not a legc export"),
    # Numerics on their own (issue 19: grown from 50 to more than 80 cases)
    Case("API: numerics", "window shorter than 4 for windowed_lyapunov", E.InvalidArgumentError,
         lambda t: kl.windowed_lyapunov(series(), 2), "window must be an integer >= 4"),
    Case("API: numerics", "overlap of 1 for windowed_lyapunov", E.InvalidArgumentError,
         lambda t: kl.windowed_lyapunov(series(), 20, overlap=1.0), r"overlap must be in \[0, 1\)"),
    Case("API: numerics", "NaN in the series for windowed_lyapunov", E.NonFiniteError,
         lambda t: kl.windowed_lyapunov(with_nan(series()), 20), "non-finite value"),
    Case("API: numerics", "LE window longer than the series", E.HistoryError,
         lambda t: kl.windowed_lyapunov(series(steps=30), 50), "shorter than one LE window"),
    Case("API: numerics", "threads=0 for windowed_lyapunov", E.InvalidArgumentError,
         lambda t: kl.windowed_lyapunov(series(), 20, threads=0), "threads must be a positive"),
    Case("API: numerics", "NaN in the effect series for granger_pvalues", E.NonFiniteError,
         lambda t: kl.granger_pvalues(series(), with_nan(series(1)[0], 0), 2),
         "effect series contains NaN"),
    # Masks and scores
    Case("API: mask", "negative sparsity", E.InvalidArgumentError,
         lambda t: kl.magnitude_mask(mlp(), -0.1), r"sparsity must be in \[0, 1\).*-0.1"),
    Case("API: mask", "block with a zero size", E.InvalidArgumentError,
         lambda t: kl.magnitude_mask(mlp(), 0.5, block=(1, 0)), "block must be two positive"),
    Case("API: mask", "block with three dimensions", E.InvalidArgumentError,
         lambda t: kl.magnitude_mask(mlp(), 0.5, block=(1, 2, 3)), r"got \(1, 2, 3\)"),
    Case("API: mask", "random mask of sparsity 1 (every weight)", E.InvalidArgumentError,
         lambda t: kl.random_mask(mlp(), 1.0), r"sparsity must be in \[0, 1\).*1.0"),
    Case("API: mask", "mask holding NaN", E.MaskMismatchError,
         lambda t: kl.Mask({"a": np.full((2, 2), np.nan)}), "only 0 and 1.*nan"),
    Case("API: mask", "mask file that is a scores file", E.MaskMismatchError,
         lambda t: (quiet(kl.score, history()).save(t / "s.npz"), kl.Mask.load(t / "s.npz")),
         "format 'keras_legc.scores'"),
    Case("API: mask", "saving a mask over an existing file", E.OutputExistsError,
         lambda t: (mask_for(mlp()).save(t / "m.npz"), mask_for(mlp()).save(t / "m.npz")),
         "m.npz already exists"),
    Case("API: scores", "saving scores over an existing file", E.OutputExistsError,
         lambda t: (s := quiet(kl.score, history()), s.save(t / "s.npz"), s.save(t / "s.npz")),
         "s.npz already exists"),
    Case("API: scores", "scores mask of sparsity 1", E.InvalidArgumentError,
         lambda t: quiet(kl.score, history()).mask(sparsity=1.0), r"sparsity must be in \[0, 1\)"),
    Case("API: scores", "unknown ranking name", E.InvalidArgumentError,
         lambda t: quiet(kl.score, history()).mask(sparsity=0.5, ranking="best"),
         "unknown ranking 'best'"),
    Case("API: scores", "weights selection of the wrong length", E.InvalidArgumentError,
         lambda t: kl.score(history(), weights=np.ones(3)), r"shape \(40,\).*\(3,\)"),
    # Histories
    Case("API: history", "history saved over an existing run_dir", E.OutputExistsError,
         lambda t: (history().save(t / "run"), history().save(t / "run")), "already exists"),
    Case("API: history", "target series shorter than the LE series", E.HistoryError,
         lambda t: history(target=np.arange(10.0)), "target series has 10 windows"),
    Case("API: history", "1-D LE array", E.HistoryError,
         lambda t: history(le=np.zeros(12)), r"inconsistent history: LE array \(12,\)"),
    Case("API: history", "history path that is a file, not a run_dir", E.HistoryError,
         lambda t: ((t / "f").write_text("x"), kl.History.load(t / "f")), "no recorded history"),
    Case("API: history", "snapshots of a run recorded without them", E.HistoryError,
         lambda t: kl.load_snapshots(saved_history(t)), "holds no raw snapshots"),
    # Recording and schedules
    Case("API: recording", "overlap of 1 for WeightHistory", E.InvalidArgumentError,
         lambda t: kl.WeightHistory(every=1, overlap=1.0), r"overlap must be in \[0, 1\)"),
    Case("API: recording", "window that is not an integer (10.5)", E.InvalidArgumentError,
         lambda t: kl.WeightHistory(every=1, window=10.5), "window must be an integer.*10.5"),
    Case("API: recording", "unknown target series", E.InvalidArgumentError,
         lambda t: kl.WeightHistory(every=1, target="accuracy"), "target must be one of"),
    Case("API: recording", "pruning schedule ending before it begins", E.InvalidArgumentError,
         lambda t: kl.PolynomialDecay(0.8, begin_step=100, end_step=10), "begin_step < end_step"),
    Case("API: recording", "pruning schedule to sparsity 1", E.InvalidArgumentError,
         lambda t: kl.PolynomialDecay(1.0, 0, 100), r"sparsity must be in \[0, 1\)"),
    Case("API: recording", "pruning schedule with frequency 0", E.InvalidArgumentError,
         lambda t: kl.PolynomialDecay(0.5, 0, 100, frequency=0), "frequency=0"),
    # Export
    Case("export", "representative data file that does not exist", E.InvalidArgumentError,
         lambda t: export_tflite(mlp(), t / "m.tflite", quantization="int8",
                                 representative_data=t / "none.npy"), "none.npy does not exist"),
    Case("export", "representative data of the wrong shape", E.InvalidArgumentError,
         lambda t: export_tflite(mlp(), t / "m.tflite", quantization="int8",
                                 representative_data=np.zeros((50, 3))), r"\(n, 6\).*\(50, 3\)"),
    Case("export", "reference inputs holding NaN", E.InvalidArgumentError,
         lambda t: export_tflite(mlp(), t / "m.tflite", reference_inputs=with_nan(np.ones((4, 6)))),
         "NaN or inf"),
    Case("export", "saved-model path that does not exist", E.InvalidArgumentError,
         lambda t: export_tflite(t / "none.keras", t / "m.tflite"), "no saved model at"),
    Case("export", "an unknown quantization", E.InvalidArgumentError,
         lambda t: export_tflite(mlp(), t / "m.tflite", quantization="int4"), "int4"),
    Case("export", "no reference rows (n_reference=0)", E.InvalidArgumentError,
         lambda t: export_tflite(mlp(), t / "m.tflite", n_reference=0), "n_reference"),
    # Files that do not exist, and arguments of the wrong type
    Case("API: mask", "a mask file that does not exist", E.MissingFileError,
         lambda t: kl.Mask.load(t / "none.npz"), "none.npz does not exist"),
    Case("API: scores", "a scores file that does not exist", E.MissingFileError,
         lambda t: kl.Scores.load(t / "none.npz"), "none.npz does not exist"),
    Case("API: mask", "sparsity given as a string", E.InvalidArgumentError,
         lambda t: kl.magnitude_mask(mlp(), sparsity="0.5"), "'0.5'"),
    Case("API: scores", "fdr given as a string", E.InvalidArgumentError,
         lambda t: kl.score(history(), fdr="yes"), "fdr must be True or False"),
    Case("API: numerics", "an unknown Granger test", E.InvalidArgumentError,
         lambda t: kl.granger_pvalues(np.ones((2, 20)), np.arange(20.0), 2, test="lr"), "'lr'"),
    Case("API: numerics", "a Granger chunk_size of 0", E.InvalidArgumentError,
         lambda t: kl.granger_test(np.random.default_rng(0).normal(size=(2, 20)),
                                   np.random.default_rng(1).normal(size=20), 2, chunk_size=0),
         "chunk_size"),
    # Edge runner
    Case("edge runner", "a model file that does not exist", "EdgeError",
         lambda t: edge(t / "none.tflite"), "none.tflite does not exist"),
    Case("edge runner", "an empty model file", "EdgeError",
         lambda t: ((t / "e.tflite").write_bytes(b""), edge(t / "e.tflite")),
         "not a TFLite model"),
    Case("edge runner", "a negative memory limit", "EdgeError",
         lambda t: edge(exported(t), "--memory-limit-mb", "-5"), "must be positive"),
    Case("edge runner", "a --json file that exists, without --force", "EdgeError",
         lambda t: ((t / "o.json").write_text("{}"), edge(exported(t), "--json", t / "o.json")),
         "o.json exists"),
    Case("edge runner", "a reference holding a NaN input", "EdgeError",
         lambda t: reference_with(t, inputs=lambda x: with_nan(x).astype(np.float32)),
         "NaN or inf"),
    Case("edge runner", "a reference with a negative tolerance", "EdgeError",
         lambda t: reference_with(t, atol=np.float64(-1)), "not one finite non-negative"),
    Case("edge runner", "a reference with fewer outputs than inputs", "EdgeError",
         lambda t: reference_with(t, keras_outputs=np.zeros((1, 2), np.float32)),
         "1 outputs for 16 inputs"),
    Case("edge runner", "a reference holding strings", "EdgeError",
         lambda t: reference_with(t, atol=np.array("x")), "not numbers"),
    Case("edge runner", "a truncated reference file", "EdgeError",
         lambda t: (exported(t), truncate(t / "m.reference.npz"), edge(t / "m.tflite")),
         "not an .npz archive"),
    Case("edge runner", "a runtime that is not installed", "EdgeError",
         lambda t: edge(exported(t), "--runtime", "tflite-runtime", hide="tflite_runtime"),
         "tflite_runtime, which is not installed"),
]  # fmt: skip
