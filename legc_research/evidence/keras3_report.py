"""The measured part of docs/keras3.md: the demo and LeNet-300-100 on Keras 3 (TensorFlow and JAX
backends) beside Keras 2 (tf_keras + TF-MOT), and seconds per epoch with and without recording.

    python tools/keras3_report.py runs/keras3-report --data-dir /path/to/shared/data
    python tools/keras3_report.py runs/keras3-report --quick          # a smoke run, ~2 minutes

Resumable: each (Keras, backend) runs in its own process (a Keras 3 backend is fixed per process)
and writes ``<out>/<flavour>.json`` when it is done; a later call skips the finished ones
(``--force`` reruns them). ``--doc docs/keras3.md`` writes the table between the markers
``<!-- keras3_report:begin -->`` and ``<!-- keras3_report:end -->`` of that file.

Per flavour, all with the same seed, data, batch order and settings:
- the demo's pipeline (``legc demo``'s stages 1-4: the 30-32-16-2 MLP on breast cancer recorded,
  scored, pruned to 80% by LEGC and by the random and magnitude anchors, fine-tuned, tested);
- LeNet-300-100 (Adam 1e-3) on the MNIST t10k split of docs/against-tfmot.md, recorded, pruned to
  90% by LEGC's default ranking and by magnitude (the anchor a user would pick), fine-tuned;
- seconds per epoch of LeNet-300-100 without a callback and with ``WeightHistory`` (median over
  the epochs after the first, which includes compilation).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

FLAVOURS = {  # name: (Keras, KERAS_BACKEND)
    "keras2": ("keras2", "tensorflow"),
    "keras3-tensorflow": ("keras3", "tensorflow"),
    "keras3-jax": ("keras3", "jax"),
}
BEGIN, END = "<!-- keras3_report:begin -->", "<!-- keras3_report:end -->"


def settings(quick: bool) -> dict:
    """Everything that determines the numbers (a finished flavour with other settings is rerun)."""
    return {
        "seed": 0,
        "demo_quick": True,  # legc demo --quick's settings: 12 epochs, window 20, 2 fine-tuning
        "lenet_rows": 1000 if quick else None,  # None: the 7,000 training images
        "lenet_epochs": 3 if quick else 6,
        "lenet_finetune_epochs": 1 if quick else 3,
        "lenet_window": 10,
        "lenet_batch_size": 64,
        "lenet_sparsity": 0.9,
        "timing_epochs": 3 if quick else 4,
    }


# ---- one flavour, in its own process -------------------------------------------------------------


def _keras(flavour: str):
    if flavour == "keras3":
        import keras

        return keras
    from keras_legc.keras.flavour import keras

    return keras()


def _seed(k, seed: int) -> None:
    from keras_legc.keras.flavour import tf

    k.utils.set_random_seed(seed)
    if k.__name__ == "tf_keras" or k.backend.backend() == "tensorflow":
        tf().config.experimental.enable_op_determinism()


def run_demo(k, out: Path, seed: int) -> dict:
    """``legc demo --quick``'s stages 1-4 with Keras module ``k``: accuracy per model."""
    from legc_research import demo
    from legc_research.datasets import breast_cancer

    cfg = demo.DemoConfig(out=out, force=True, seed=seed, quick=True, diagnose=False)
    out.mkdir(parents=True, exist_ok=True)
    _seed(k, seed)
    run = demo._Run(cfg, out, breast_cancer(seed=seed))
    run.k = k
    t0 = time.perf_counter()
    dense, history = demo._train_dense(run)
    _scores, _paper, masks = demo._score_and_mask(run, dense, history)
    models = demo._prune_all(run, dense, history, masks)
    rows = demo._evaluate(run, models)
    return {
        "accuracy": {name: row["accuracy"] for name, row in rows.items()},
        "pruned_pct": rows["LEGC"]["pruned_pct"],
        "windows": history.n_windows,
        "seconds": time.perf_counter() - t0,
    }


def _lenet(k, seed: int):
    k.utils.set_random_seed(seed)
    first = k.Input((784,)) if k.__name__ == "keras" else k.layers.InputLayer(input_shape=(784,))
    return k.Sequential([
        first,
        k.layers.Dense(300, activation="relu", name="fc1"),
        k.layers.Dense(100, activation="relu", name="fc2"),
        k.layers.Dense(10, activation="softmax", name="out"),
    ])  # fmt: skip


def _mnist(data_dir, rows: int | None, seed: int):
    from legc_research.evidence.against_tfmot import load_data

    data = load_data("mnist", data_dir=data_dir)
    order = np.random.default_rng(seed).permutation(len(data.y_train))[:rows]
    return data, data.x_train[order], data.y_train[order]  # one fixed order, shuffle=False


def _epoch_timer():
    """A callback (of either Keras) that keeps the seconds of each epoch in ``.seconds``."""
    from keras_legc.keras.callback import Callback

    class EpochTimer(Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._t0)

    return EpochTimer()


def _compile(k, model) -> None:
    model.compile(k.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")


def _accuracy(model, x, y) -> float:
    return float((np.asarray(model.predict(x, verbose=0)).argmax(axis=1) == y).mean())


def run_lenet(k, s: dict, data_dir) -> dict:
    """LeNet-300-100 recorded, LEGC (default ranking) and magnitude at the same sparsity."""
    import keras_legc as kl

    data, x, y = _mnist(data_dir, s["lenet_rows"], s["seed"])
    model = _lenet(k, s["seed"])
    _compile(k, model)
    rec = kl.WeightHistory(
        every=1, window=s["lenet_window"], validation_data=(data.x_val, data.y_val)
    )
    model.fit(x, y, batch_size=s["lenet_batch_size"], epochs=s["lenet_epochs"], shuffle=False,
              verbose=0, callbacks=[rec])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kl.LegcWarning)
        scores = kl.score(rec.history, progress=False)
    out = {"dense": _accuracy(model, data.x_test, data.y_test), "windows": rec.history.n_windows}
    legc = scores.mask(sparsity=s["lenet_sparsity"])
    for name, mask in (("LEGC", legc), ("magnitude", kl.magnitude_mask(model, legc.sparsity))):
        k.utils.set_random_seed(s["seed"])
        pruned = kl.prune(model, mask)
        _compile(k, pruned)
        pruned.fit(x, y, batch_size=s["lenet_batch_size"], epochs=s["lenet_finetune_epochs"],
                   shuffle=False, verbose=0, callbacks=kl.pruning_callbacks(pruned))  # fmt: skip
        out[name] = _accuracy(kl.strip(pruned), data.x_test, data.y_test)
    out["sparsity"] = legc.sparsity
    return out


def run_timing(k, s: dict, data_dir) -> dict:
    """Median seconds per epoch of LeNet-300-100, without and with WeightHistory."""
    import keras_legc as kl

    data, x, y = _mnist(data_dir, s["lenet_rows"], s["seed"])
    out = {}
    for name in ("plain", "recording"):
        model = _lenet(k, s["seed"])
        _compile(k, model)
        timer = _epoch_timer()
        callbacks = [timer]
        if name == "recording":
            rec = kl.WeightHistory(
                every=1, window=s["lenet_window"], validation_data=(data.x_val, data.y_val)
            )
            callbacks.insert(0, rec)
        model.fit(x, y, batch_size=s["lenet_batch_size"], epochs=s["timing_epochs"],
                  shuffle=False, verbose=0, callbacks=callbacks)  # fmt: skip
        out[name] = float(np.median(timer.seconds[1:]))
    out["ratio"] = out["recording"] / out["plain"]
    return out


def run_flavour(name: str, out: Path, s: dict, data_dir) -> dict:
    """All measurements of one flavour (this process's backend)."""
    k = _keras(FLAVOURS[name][0])
    t0 = time.perf_counter()
    result = {
        "flavour": name,
        "settings": s,
        "demo": run_demo(k, out / f"{name}-demo", s["seed"]),
        "lenet": run_lenet(k, s, data_dir),
        "timing": run_timing(k, s, data_dir),
    }
    result["seconds"] = time.perf_counter() - t0
    return result


# ---- the driver ----------------------------------------------------------------------------------


def run(out: Path, *, quick: bool, data_dir, force: bool, log=print) -> dict:
    """Run (or reuse) every flavour's measurements; ``{flavour: result}``."""
    from keras_legc._io import atomic_write_json

    out.mkdir(parents=True, exist_ok=True)
    s = settings(quick)
    results = {}
    for name, (_flavour, backend) in FLAVOURS.items():
        path = out / f"{name}.json"
        if path.exists() and not force:
            cached = json.loads(path.read_text())
            if cached.get("settings") == s:
                log(f"{name}: done before ({path})")
                results[name] = cached
                continue
        log(f"{name}: running (KERAS_BACKEND={backend}) ...")
        env = {**os.environ, "KERAS_BACKEND": backend}
        env.pop("TF_USE_LEGACY_KERAS", None)
        cmd = [sys.executable, "-m", "legc_research.evidence.keras3_report", "_one", name,
               str(out), "--data-dir", str(data_dir or "")] + (["--quick"] if quick else [])  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{done.stderr[-4000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        atomic_write_json(path, result, overwrite=True)
        results[name] = result
        log(f"{name}: {result['seconds']:.0f} s")
    return results


def table(results: dict, command: str) -> str:
    """The markdown of the measured section."""
    from legc_research.evidence._provenance import machine, today, versions

    env = machine()
    vers = versions(["keras", "tf_keras", "tensorflow", "jax"], skip_missing=True)
    lines = [
        f"Command: `{command}`; {today()}; {env['processor']}, {env['usable_cpus']} usable CPUs; "
        + ", ".join(f"{k} {v}" for k, v in vers.items())
        + ".",
        "",
        "| | demo: dense | LEGC | random | magnitude | LeNet-300-100: dense | LEGC | magnitude "
        "| s/epoch plain | s/epoch recording | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        d, le, t = r["demo"]["accuracy"], r["lenet"], r["timing"]
        lines.append(
            f"| {name} | {d['dense']:.4f} | {d['LEGC']:.4f} | {d['random']:.4f} | "
            f"{d['magnitude']:.4f} | {le['dense']:.4f} | {le['LEGC']:.4f} | {le['magnitude']:.4f} "
            f"| {t['plain']:.2f} | {t['recording']:.2f} | {t['ratio']:.2f} |"
        )
    first = next(iter(results.values()))
    lines += [
        "",
        f"Demo: `legc demo --quick` settings, pruned {first['demo']['pruned_pct']:.1f}% of the "
        f"kernel weights. LeNet-300-100: {first['lenet']['sparsity']:.0%} sparsity, test accuracy "
        "on the 2,000 held-out t10k images; seconds per epoch: median over the epochs after the "
        "first. Settings: `" + json.dumps(first["settings"]) + "`.",
    ]
    return "\n".join(lines)


def write_doc(doc: Path, markdown: str) -> None:
    """Replace the text between the report markers of ``doc`` (atomically)."""
    from keras_legc._io import atomic_write_bytes

    text = doc.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc} has no {BEGIN} ... {END} markers.")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    atomic_write_bytes(doc, f"{head}{BEGIN}\n{markdown}\n{END}{tail}".encode(), overwrite=True)


def main(argv=None) -> int:
    """The command line (see the module docstring)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_one":  # a child: one flavour, JSON on stdout
        p = argparse.ArgumentParser()
        p.add_argument("name")
        p.add_argument("out", type=Path)
        p.add_argument("--data-dir", default="")
        p.add_argument("--quick", action="store_true")
        a = p.parse_args(argv[1:])
        result = run_flavour(a.name, a.out, settings(a.quick), a.data_dir or None)
        print(json.dumps(result))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder of the per-flavour results (resumable)")
    p.add_argument("--data-dir", default=os.environ.get("LEGC_DATA_DIR"))
    p.add_argument("--quick", action="store_true", help="a smoke run on 1,000 MNIST images")
    p.add_argument("--force", action="store_true", help="rerun finished flavours")
    p.add_argument("--doc", type=Path, help="write the table into this markdown file")
    a = p.parse_args(argv)
    from legc_research.evidence._provenance import tool_command

    results = run(a.out, quick=a.quick, data_dir=a.data_dir, force=a.force)
    markdown = table(results, tool_command("keras3_report", argv))
    (a.out / "report.md").write_text(markdown + "\n")
    print(markdown)
    if a.doc is not None:
        write_doc(a.doc, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
