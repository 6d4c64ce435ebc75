"""``legc demo``: the whole pipeline on the embedded breast-cancer data, from fit to a benchmarked .tflite
and a health check of every pruned model.

train dense + WeightHistory -> score -> LEGC mask -> prune + fine-tune; the same for random and
magnitude masks at the same number of pruned weights -> strip -> export -> edge benchmark ->
diagnostics (WeightWatcher alpha, SHAP agreement with the dense model) -> table.
A composition of the public API: nothing here that a user could not write.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from keras_legc._io import atomic_write_bytes, atomic_write_json
from keras_legc._quiet import native_noise_filtered
from keras_legc.errors import ExportError, OutputExistsError


@dataclass
class DemoConfig:
    out: Path | None = None
    force: bool = False
    seed: int = 0
    quick: bool = False
    sparsity: float | None = 0.8
    alpha: float | None = None
    rewind: bool = False
    hidden: tuple[int, ...] = (32, 16)
    epochs: int = 40
    finetune_epochs: int = 10
    batch_size: int = 8
    learning_rate: float = 0.05
    window: int = 50
    max_lag: int = 14
    bench_runs: int = 2000
    diagnose: bool = True
    shap_rows: int = 100

    def __post_init__(self):
        if self.quick:
            self.epochs, self.finetune_epochs, self.window, self.bench_runs = 12, 2, 20, 200
            self.shap_rows = 40


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_demo(cfg: DemoConfig) -> dict:
    """Run the demo; returns the summary (also written to ``<out>/summary.json``).

    Args:
        cfg: the demo's settings.

    Example:
        >>> summary = run_demo(DemoConfig(out=Path("runs/demo"), quick=True))
    """
    from legc_research.datasets import breast_cancer

    t_start = time.perf_counter()
    out = _output_folder(cfg)
    _seed(cfg)
    run = _Run(cfg, out, breast_cancer(seed=cfg.seed))
    dense, history = _train_dense(run)
    scores, paper_mask, masks = _score_and_mask(run, dense, history)
    plot = plot_series(history, scores, out / PLOT_FILE, overwrite=cfg.force)
    models = _prune_all(run, dense, history, masks)
    rows = _evaluate(run, models)
    _export_all(run, models, rows)
    _bench_all(run, models, rows)
    # 7. diagnostics: is each pruned model still healthy, does it rank features like the dense one?
    diagnostics = None
    if cfg.diagnose:
        diagnostics = _diagnose(cfg, out, models, run.data, run.stages)
        if diagnostics is not None:
            for name, agreement in diagnostics["agreement"].items():
                rows[name]["shap_spearman"] = agreement["spearman"]
                rows[name]["shap_topk_overlap"] = agreement["topk_overlap"]
    summary = {
        "config": {k_: (str(v) if isinstance(v, Path) else v) for k_, v in cfg.__dict__.items()},
        "data": run.data.description,
        "history": {
            "snapshots": history.n_snapshots,
            "windows": history.n_windows,
            "weights": history.n_weights,
        },
        "scores": {
            "max_lag": scores.max_lag,
            "degenerate": scores.degenerate_counts(),
            "paper_mode_alpha_0.05_pruned_pct": 100.0 * paper_mask.sparsity,
        },
        "mask": {
            "mode": "alpha" if cfg.alpha is not None else "sparsity",
            "pruned_pct": 100.0 * masks["LEGC"].sparsity,
        },
        "results": rows,
        "diagnostics": diagnostics,
        "seconds": time.perf_counter() - t_start,
        "out": str(out),
    }
    _write_summary(cfg, out, summary, rows, paper_mask, diagnostics, plot)
    return summary


def _output_folder(cfg: DemoConfig) -> Path:
    out = Path(cfg.out) if cfg.out else Path("runs") / f"demo-{datetime.now():%Y%m%d-%H%M%S}"
    if out.exists() and any(out.iterdir()) and not cfg.force:
        raise OutputExistsError(
            f"{out} exists and is not empty. Fix: choose another --out, or pass --force."
        )
    out.mkdir(parents=True, exist_ok=True)
    return out


def _seed(cfg: DemoConfig) -> None:
    """Seed Keras and turn op determinism on (before the data and the models are made)."""
    from keras_legc.keras.flavour import keras, tf

    keras().utils.set_random_seed(cfg.seed)
    tf().config.experimental.enable_op_determinism()


class _Run:
    """What every stage shares: the settings, the output folder, the data, Keras."""

    def __init__(self, cfg: DemoConfig, out: Path, data):
        from keras_legc.keras.flavour import keras

        self.cfg, self.out, self.data, self.k = cfg, out, data, keras()
        self.stages = 7 if cfg.diagnose else 6

    def build(self):
        k, cfg, data = self.k, self.cfg, self.data
        layers = [k.layers.Input(shape=(data.x_train.shape[1],))]
        layers += [k.layers.Dense(h, activation="relu") for h in cfg.hidden]
        layers += [k.layers.Dense(data.n_classes, activation="softmax")]
        return k.Sequential(layers, name="mlp")

    def compile(self, model):
        model.compile(
            optimizer=self.k.optimizers.SGD(self.cfg.learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model


def _train_dense(run: _Run):
    """Stage 1: the dense MLP trained with the recorder; returns ``(model, history)``."""
    import keras_legc as kl

    cfg, data, out, stages = run.cfg, run.data, run.out, run.stages
    n_steps = cfg.epochs * int(np.ceil(len(data.x_train) / cfg.batch_size))
    _say(f"[1/{stages}] training the dense MLP 30-{'-'.join(map(str, cfg.hidden))}-2 for {cfg.epochs} "
         f"epochs ({n_steps} steps) with WeightHistory(window={cfg.window}) ...")  # fmt: skip
    dense = run.compile(run.build())
    recorder = kl.WeightHistory(
        every=1, window=cfg.window, validation_data=(data.x_val, data.y_val),
        run_dir=out / "history", overwrite=cfg.force,
    )  # fmt: skip
    t0 = time.perf_counter()
    with native_noise_filtered():  # TF's "E0000 ... NodeDef mentions" line on the first fit
        dense.fit(
            data.x_train, data.y_train, batch_size=cfg.batch_size, epochs=cfg.epochs,
            validation_data=(data.x_val, data.y_val), callbacks=[recorder], verbose=0,
        )  # fmt: skip
    history = recorder.history
    _say(f"      {history.n_snapshots} snapshots -> {history.n_windows} LE windows of "
         f"{history.n_weights} weights in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    kl.save_model(dense, out / "dense.keras", overwrite=cfg.force)
    return dense, history


def _score_and_mask(run: _Run, dense, history):
    """Stage 2: LEGC scores, the paper-mode mask, and the LEGC/random/magnitude masks."""
    import keras_legc as kl

    cfg, out = run.cfg, run.out
    _say(f"[2/{run.stages}] scoring: windowed LE -> Granger ({history.n_weights} weights) ...")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", kl.LegcWarning)
        scores = kl.score(history, max_lag=cfg.max_lag)
    for w in caught:
        _say(f"      note: {w.message}")
    scores.save(out / "scores.npz", overwrite=cfg.force)
    paper_mask = scores.mask(alpha=0.05)
    _say("      " + scores.summary().replace("\n", "\n      "))
    if cfg.alpha is not None:
        legc = scores.mask(alpha=cfg.alpha)
    else:
        legc = scores.mask(sparsity=cfg.sparsity)
    n_pruned_frac = legc.sparsity
    masks = {
        "LEGC": legc,
        "random": kl.random_mask(dense, n_pruned_frac, seed=cfg.seed),
        "magnitude": kl.magnitude_mask(dense, n_pruned_frac),
    }
    for name, m in masks.items():
        m.save(out / f"mask_{name.lower()}.npz", overwrite=cfg.force)
    return scores, paper_mask, masks


def _prune_all(run: _Run, dense, history, masks: dict) -> dict:
    """Stage 3: prune with each mask and fine-tune (or rewind and retrain); ``{name: model}``."""
    import keras_legc as kl

    cfg, data, out, k = run.cfg, run.data, run.out, run.k
    how = (
        f"rewound to the initial weights, {cfg.epochs} epochs"
        if cfg.rewind
        else f"fine-tuned {cfg.finetune_epochs} epochs"
    )
    _say(
        f"[3/{run.stages}] pruning {100 * masks['LEGC'].sparsity:.1f}% of kernel weights with each mask, {how} ..."
    )
    models = {"dense": dense}
    for name, m in masks.items():
        k.utils.set_random_seed(cfg.seed)
        pruned = run.compile(kl.prune(dense, m, rewind_to=history if cfg.rewind else None))
        with native_noise_filtered():  # a TF-MOT graph's "E0000 ... NodeDef mentions" line
            pruned.fit(
                data.x_train, data.y_train, batch_size=cfg.batch_size,
                epochs=cfg.epochs if cfg.rewind else cfg.finetune_epochs,
                callbacks=kl.pruning_callbacks(), verbose=0,
            )  # fmt: skip
        models[name] = kl.strip(pruned)
        kl.save_model(models[name], out / f"{name.lower()}.keras", overwrite=cfg.force)
    return models


def _evaluate(run: _Run, models: dict) -> dict:
    """Stage 4: accuracy, macro-F1 and pruned share of each model on the test split."""
    from sklearn.metrics import f1_score

    import keras_legc as kl

    data = run.data
    _say(f"[4/{run.stages}] evaluating on the held-out test split ({len(data.x_test)} rows) ...")
    rows = {}
    for name, model in models.items():
        pred = np.asarray(model(data.x_test, training=False)).argmax(axis=1)
        kernels = [layer.kernel.numpy() for layer in kl.dense_layers(model)]
        n_weights = sum(w.size for w in kernels)
        nonzero = sum(int(np.count_nonzero(w)) for w in kernels)
        rows[name] = {
            "accuracy": float((pred == data.y_test).mean()),
            "macro_f1": float(f1_score(data.y_test, pred, average="macro")),
            "pruned_pct": 100.0 * (1 - nonzero / n_weights),
            "nonzero_weights": nonzero,
        }
    return rows


def _export_all(run: _Run, models: dict, rows: dict) -> None:
    """Stage 5: float TFLite of each model (sparse storage for pruned ones), verified."""
    import keras_legc as kl
    from keras_legc.keras.export import export_tflite

    cfg, data, out = run.cfg, run.data, run.out
    _say(
        f"[5/{run.stages}] exporting each model to float TFLite (sparse storage for pruned ones) ..."
    )
    export_notes: set[str] = set()
    for name, model in models.items():
        path = out / "tflite" / f"{name.lower()}.tflite"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", kl.LegcWarning)
            report = export_tflite(
                model, path, sparse=name != "dense", representative_data=data.x_train,
                reference_inputs=data.x_test, overwrite=cfg.force,
            )  # fmt: skip
        for w in caught:  # the same advice for every pruned model: say it once
            first = str(w.message).split("(")[0]  # the advice, without the layer names
            if issubclass(w.category, kl.LegcWarning) and first not in export_notes:
                export_notes.add(first)
                _say(f"      note: {w.message}")
            elif not issubclass(w.category, kl.LegcWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if not report["verification"]["ok"]:
            raise ExportError(
                f"{path}: TFLite outputs differ from Keras ({report['verification']})."
            )
        rows[name]["tflite"] = str(path)
        rows[name]["tflite_bytes"] = report["tflite_bytes"]


def _bench_all(run: _Run, models: dict, rows: dict) -> None:
    """Stage 6: the edge benchmark, in a separate process that never imports TensorFlow."""
    _say(
        f"[6/{run.stages}] benchmarking each .tflite with the edge runner (LiteRT, batch 1, 1 thread) ..."
    )
    for name in models:
        tflite = Path(rows[name]["tflite"])
        result_path = tflite.with_suffix(".bench.json")
        cmd = [sys.executable, "-m", "legc_edge.bench", str(tflite), "--runs", str(run.cfg.bench_runs),
               "--json", str(result_path), "--force"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ExportError(
                f"edge benchmark of {tflite} failed (exit {proc.returncode}):\n{proc.stderr}"
            )
        bench = json.loads(result_path.read_text())
        rows[name]["p50_us"] = 1000.0 * bench["latency"]["p50_ms"]
        rows[name]["edge_check_max_abs_error"] = bench["check"]["max_abs_error"]


def _write_summary(
    cfg, out: Path, summary: dict, rows: dict, paper_mask, diagnostics, plot: Path | None = None
) -> None:
    """summary.json, summary.md, and the table and notes on stdout."""
    table = format_table(rows)
    atomic_write_json(out / "summary.json", summary, overwrite=True)
    atomic_write_bytes(out / "summary.md", (table + "\n").encode(), overwrite=True)
    print(table)
    print(
        f"\nPaper mode (prune p >= 0.05) would prune {100 * paper_mask.sparsity:.1f}% here; this run "
        f"used {'alpha=' + str(cfg.alpha) if cfg.alpha is not None else f'target sparsity {cfg.sparsity}'}."
    )
    print(f"Artefacts in {out}/: history/ (LE series), dense.keras, scores.npz, mask_*.npz, "
          f"<method>.keras, tflite/*.tflite|.json|.reference.npz|.bench.json, "
          f"{'diagnostics/ (report.md, alpha.png, shap.png), ' if diagnostics else ''}"
          f"{PLOT_FILE + ' (LE and target series), ' if plot else ''}"
          f"summary.json, summary.md")  # fmt: skip
    print(f"Done in {summary['seconds']:.0f} s.")


#: The demo's plot of a few weights' LE series and the validation-error series, per window.
PLOT_FILE = "le_target.png"


def plot_series(
    history, scores, path: str | Path, *, n_each: int = 3, overwrite: bool = False
) -> Path | None:
    """Plot what LEGC tests: a few weights' LE series above the target (validation error) series.

    Shows the ``n_each`` testable weights with the lowest Granger p-value (their LE series help
    most to predict the validation error) and the ``n_each`` with the highest (least causal), over
    the same windows as the target. Written atomically as a PNG.

    Args:
        history: the recorded :class:`keras_legc.History`.
        scores: its :class:`keras_legc.Scores`.
        path: the PNG to write.
        n_each: weights shown from each end of the p-value ranking.
        overwrite: replace an existing file.

    Returns:
        The path, or None (with one line saying how to get it) when matplotlib is not installed.

    Example:
        >>> plot_series(history, kl.score(history), "runs/demo/le_target.png")  # doctest: +SKIP
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        _say(
            "      plot skipped: matplotlib is not installed. Fix: pip install 'keras-legc[diagnostics]'"
        )
        return None
    picks = _extreme_weights(scores, n_each)
    names = _weight_names(history)
    windows = np.arange(1, history.n_windows + 1)
    # Figure + Agg canvas, not pyplot: no global backend or figure state in the caller's process.
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    for i, (row, lowest) in enumerate(picks):
        top.plot(
            windows, history.le[row], marker="o", ms=3, ls="-" if lowest else "--",
            color=f"C{i}", label=f"{names[row]}  {_p_text(scores.pvalues[row])}",
        )  # fmt: skip
    top.axhline(0.0, color="0.6", lw=0.8)
    top.set_ylabel("LE of the weight's trajectory")
    top.set_title(
        f"LE series of the {n_each} weights with the lowest Granger p (solid) and the {n_each} "
        "with the highest (dashed)", fontsize=10,
    )  # fmt: skip
    top.legend(fontsize=7, ncol=2)
    bottom.plot(windows, history.target, marker="o", ms=3, color="k")
    bottom.set_ylabel("validation error")
    bottom.set_xlabel(
        f"window (each {history.window} snapshots; {history.n_windows} windows, "
        f"{history.n_weights} weights recorded)"
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return atomic_write_bytes(path, buf.getvalue(), overwrite=overwrite)


def _extreme_weights(scores, n_each: int) -> list[tuple[int, bool]]:
    """Rows of the ``n_each`` lowest and highest p-values among testable weights, ``(row, lowest)``."""
    testable = np.flatnonzero((scores.degenerate == 0) & np.isfinite(scores.pvalues))
    order = testable[np.argsort(scores.pvalues[testable], kind="stable")]
    n = min(n_each, len(order) // 2)
    return [(int(r), True) for r in order[:n]] + [(int(r), False) for r in order[::-1][:n]]


def _p_text(p: float) -> str:
    return "p<0.001" if p < 1e-3 else f"p={p:.2g}"


def _weight_names(history) -> list[str]:
    """``layer[i,j]`` for every row of ``history.le``."""
    names = []
    for layer in history.layers:
        names += [f"{layer}[{i},{j}]" for i, j in np.ndindex(*history.shapes[layer])]
    return names


def _diagnose(cfg: DemoConfig, out: Path, models: dict, data, stages: int) -> dict | None:
    """Stage 7: WeightWatcher alphas and SHAP agreement (None, with a note, without the extra)."""
    import keras_legc as kl
    from keras_legc.errors import MissingDependencyError

    _say(f"[7/{stages}] diagnostics: WeightWatcher alpha per layer, SHAP importance on "
         f"{cfg.shap_rows} test rows, agreement with the dense model ...")  # fmt: skip
    dense, pruned = models["dense"], {k: v for k, v in models.items() if k != "dense"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", kl.LegcWarning)  # small layers: flagged in the report
            d = kl.diagnose(
                dense, pruned, data.x_test, background=cfg.shap_rows, explain=cfg.shap_rows,
                feature_names=data.feature_names or None, seed=cfg.seed,
                out_dir=out / "diagnostics", overwrite=cfg.force,
            )  # fmt: skip
    except MissingDependencyError as e:
        _say(f"      skipped: {e}")
        return None
    _say("      " + d.summary().replace("\n", "\n      "))
    return {"report": str(out / "diagnostics" / "report.md"), "agreement": d.agreement}


def format_table(rows: dict) -> str:
    """The demo's result table in Markdown (with SHAP agreement columns when diagnosed)."""
    shap = any("shap_spearman" in r for r in rows.values())
    head = "| model | accuracy | macro-F1 | pruned % | non-zero weights | .tflite bytes | p50 latency (us) |"
    rule = "|---|---:|---:|---:|---:|---:|---:|"
    if shap:
        head += " SHAP Spearman vs dense | SHAP top-k overlap |"
        rule += "---:|---:|"
    lines = [head, rule]
    for name, r in rows.items():
        line = (
            f"| {name} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | {r['pruned_pct']:.1f} | "
            f"{r['nonzero_weights']} | {r['tflite_bytes']} | {r['p50_us']:.2f} |"
        )
        if shap:
            line += (
                f" {r['shap_spearman']:.3f} | {r['shap_topk_overlap']:.2f} |"
                if "shap_spearman" in r
                else " (reference) | (reference) |"
            )
        lines.append(line)
    return "\n".join(lines)
