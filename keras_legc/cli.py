"""The ``legc`` command line: thin click commands over the public API."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import numpy as np

from keras_legc.errors import LegcError


def _run(fn, *args, **kwargs):
    """Call into the library; turn a keras_legc error into a one-line message and exit 2."""
    try:
        return fn(*args, **kwargs)
    except LegcError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-legc")
def main():
    """keras-legc: prune dense Keras networks by chaos and causality, ship them to TFLite."""


@main.command()
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output folder (default runs/demo-<time>)."
)
@click.option("--force", is_flag=True, help="Reuse a non-empty --out, overwriting its files.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--sparsity", default=0.8, show_default=True, help="Target sparsity of the LEGC mask."
)
@click.option(
    "--alpha", type=float, help="Paper mode instead: prune weights with Granger p >= alpha."
)
@click.option(
    "--rewind",
    is_flag=True,
    help="Rewind to the initial weights and retrain (paper) instead of fine-tuning.",
)
@click.option("--quick", is_flag=True, help="A short run for tests (fewer epochs, smaller window).")
@click.option(
    "--no-diagnose",
    is_flag=True,
    help="Skip the diagnostics stage (WeightWatcher alphas, SHAP agreement with the dense model).",
)
def demo(out, force, seed, sparsity, alpha, rewind, quick, no_diagnose):
    """Train, score, prune, fine-tune, export, benchmark and diagnose on embedded data; one table."""
    from keras_legc.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out=out, force=force, seed=seed, quick=quick, sparsity=sparsity, alpha=alpha,
        rewind=rewind, diagnose=not no_diagnose,
    )  # fmt: skip
    _run(run_demo, cfg)


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--max-lag", default=14, show_default=True)
@click.option(
    "--test", type=click.Choice(["ssr_chi2", "ssr_ftest"]), default="ssr_chi2", show_default=True
)
@click.option(
    "--alpha", type=float, help="Paper mode: prune weights with p >= alpha (default 0.05)."
)
@click.option(
    "--sparsity", type=float, help="Target mode: prune this fraction, least causal first."
)
@click.option(
    "--per-layer", is_flag=True, help="In target mode, reach the sparsity in every layer."
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Mask file (default RUN_DIR/mask.npz)."
)
@click.option("--lag", type=int, help="Beyond the paper: test this single lag only.")
@click.option(
    "--fdr", is_flag=True, help="Beyond the paper: Benjamini-Hochberg across weights (q-values)."
)
@click.option(
    "--difference", is_flag=True, help="Beyond the paper: difference both series jointly first."
)
@click.option("--chunk-size", default=4096, show_default=True, help="Weights per batch (memory).")
@click.option("--threads", type=int, help="Worker threads (default: every usable core).")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option("--force", is_flag=True, help="Overwrite existing scores/mask files.")
def score(
    run_dir, max_lag, test, alpha, sparsity, per_layer, out, lag, fdr, difference, chunk_size,
    threads, progress, force,
):  # fmt: skip
    """Score a recorded RUN_DIR (from WeightHistory(run_dir=...)) and write scores and a mask."""
    import keras_legc as kl

    scores = _run(
        kl.score, run_dir, max_lag=max_lag, test=test, lag=lag, fdr=fdr, difference=difference,
        chunk_size=chunk_size, threads=threads, progress=progress,
    )  # fmt: skip
    _run(scores.save, run_dir / "scores.npz", overwrite=force)
    mask = _run(scores.mask, alpha, sparsity=sparsity, per_layer=per_layer)
    path = _run(mask.save, out or run_dir / "mask.npz", overwrite=force)
    click.echo(scores.summary())
    click.echo(mask.summary())
    click.echo(f"wrote {run_dir / 'scores.npz'} and {path}")


@main.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--quantization", "-q", type=click.Choice(["float", "float16", "dynamic", "int8"]),
    default="float", show_default=True,
    help="dynamic = dynamic-range int8 weights; int8 = full integer (needs --representative-data).",
)  # fmt: skip
@click.option("--sparse", is_flag=True, help="Store weights with >= 50% zeros as sparse tensors.")
@click.option(
    "--representative-data",
    "--representative",
    "representative_data",
    type=click.Path(exists=True, path_type=Path),
    help=".npy/.npz of your model inputs (int8 calibration; the last rows are held out to verify).",
)
@click.option(
    "--reference-inputs",
    type=click.Path(exists=True, path_type=Path),
    help=".npy/.npz of inputs for the reference outputs.",
)
@click.option("--n-reference", default=16, show_default=True)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def export(
    model, out, quantization, sparse, representative_data, reference_inputs, n_reference, force
):
    """Convert a saved Keras MODEL (pruned or not) to OUT (.tflite) + .json + .reference.npz."""
    from keras_legc.export import export_tflite

    report = _run(
        export_tflite, model, out, quantization=quantization, sparse=sparse,
        representative_data=representative_data, reference_inputs=reference_inputs,
        n_reference=n_reference, overwrite=force,
    )  # fmt: skip
    v = report["verification"]
    click.echo(
        f"wrote {out} ({report['tflite_bytes']} bytes, {quantization}{', sparse' if sparse else ''}; "
        f"kernel sparsity {100 * report['sparsity']:.1f}%), {Path(out).with_suffix('.json')}, "
        f"{Path(out).with_suffix('.reference.npz')}"
    )
    status = "OK" if v["ok"] else "OVER TOLERANCE"
    click.echo(
        f"verification on {v['n_inputs']} inputs: max |tflite - keras| = {v['max_abs_error']:.3g} (atol {v['atol']}): {status}"
    )
    if not v["ok"]:
        sys.exit(3)


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args):
    """Run the edge benchmark (same as legc-edge / python edge/bench.py); --help for options."""
    from legc_edge.bench import main as bench_main

    sys.exit(bench_main(list(args)))


@main.command()
@click.argument("dense", type=click.Path(exists=True, path_type=Path))
@click.argument("pruned", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--data", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=".npy of model inputs, or .npz with them under --key (and optional feature_names).",
)  # fmt: skip
@click.option("--key", default="x", show_default=True, help="Array name in a .npz --data file.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Report folder.")
@click.option("--background", default=100, show_default=True, help="SHAP background rows.")
@click.option("--explain", default=200, show_default=True, help="Rows whose SHAP is averaged.")
@click.option("--top-k", default=5, show_default=True, help="Top features compared.")
@click.option("--seed", default=0, show_default=True, help="Seeds the row sampling.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option("--force", is_flag=True, help="Overwrite existing report files in --out.")
def diagnose(dense, pruned, data, key, out, background, explain, top_k, seed, progress, force):
    """WeightWatcher alphas and SHAP agreement of DENSE vs each PRUNED model (.keras files).

    Model names are the file stems. Writes OUT/report.json, report.md and PNG plots.
    """
    import keras_legc as kl
    from keras_legc.diagnostics import load_inputs

    x, names = _run(load_inputs, data, key)
    models = {}
    for path in pruned:
        if path.stem in models or path.stem == dense.stem:
            raise click.ClickException(
                f"two models are named {path.stem!r} (file stems). Fix: rename one file."
            )
        models[path.stem] = _run(kl.load_model, path, compile=False)
    result = _run(
        kl.diagnose, _run(kl.load_model, dense, compile=False), models, x, background=background,
        explain=explain, top_k=top_k, feature_names=names, seed=seed, dense_name=dense.stem,
        out_dir=out, overwrite=force, progress=progress,
    )  # fmt: skip
    click.echo(result.summary())
    click.echo(f"wrote {out / 'report.md'}, {out / 'report.json'} and plots")


# ---- legc neurons (issue 5): thin commands over keras_legc.neurons ----------------------------------


def _load_npy(path, what):
    from keras_legc.errors import InvalidArgumentError

    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise click.ClickException(
            f"{InvalidArgumentError.__name__}: cannot read {what} from {path} ({exc}). Fix: pass "
            "a .npy file written by numpy.save."
        ) from exc


def _neuron_scorer(method, loss, legc_scores, model):
    from keras_legc import neurons

    if method != "legc":
        return neurons.get_scorer(method, loss)
    if legc_scores is None:
        raise click.ClickException(
            "InvalidArgumentError: --method legc needs --legc-scores scores.npz (from legc "
            "score). Fix: pass the scores of the history recorded while training this model."
        )
    import keras_legc as kl

    return neurons.legc(kl.Scores.load(legc_scores, model))


_NEURON_METHODS = click.Choice(["brute_force", "taylor1", "taylor2", "legc", "random"])


@main.group()
def neurons():
    """Neuron-level pruning without retraining: score, remove, shrink (and save)."""


@neurons.command("score")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--x", "x_path", required=True, type=click.Path(exists=True, path_type=Path),
              help=".npy of evaluation inputs.")  # fmt: skip
@click.option("--y", "y_path", required=True, type=click.Path(exists=True, path_type=Path),
              help=".npy of labels (or one-hot targets).")  # fmt: skip
@click.option("--method", type=_NEURON_METHODS, default="brute_force", show_default=True)
@click.option("--loss", type=click.Choice(["auto", "sse", "crossentropy"]), default="auto",
              show_default=True)  # fmt: skip
@click.option("--legc-scores", type=click.Path(exists=True, path_type=Path),
              help="scores.npz from `legc score` (for --method legc).")  # fmt: skip
@click.option("--top", default=10, show_default=True, help="How many of the ranking to print.")
@click.option("--out", type=click.Path(path_type=Path), help="Write all scores as JSON here.")
@click.option("--force", is_flag=True, help="Overwrite --out.")
def neurons_score(model, x_path, y_path, method, loss, legc_scores, top, out, force):
    """Score every hidden neuron of MODEL (lower = remove first); print the global ranking."""
    import keras_legc as kl
    from keras_legc._io import atomic_write_json

    m = _run(kl.load_model, model, compile=False)
    x, y = _load_npy(x_path, "--x"), _load_npy(y_path, "--y")
    scorer = _run(_neuron_scorer, method, loss, legc_scores, m)
    scores = _run(scorer, m, x, y)
    for rank, (layer, unit) in enumerate(scores.ranking()[:top], 1):
        click.echo(f"{rank:>4}  {layer}[{unit}]  {scores[layer][unit]:.6g}")
    if out:
        _run(atomic_write_json, out, scores.to_dict(), overwrite=force)
        click.echo(f"wrote {out}")


@neurons.command("remove")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--x", "x_path", required=True, type=click.Path(exists=True, path_type=Path),
              help=".npy of inputs the scorer evaluates.")  # fmt: skip
@click.option("--y", "y_path", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--x-val", type=click.Path(exists=True, path_type=Path),
              help=".npy of validation inputs (accuracy curve, --max-drop); default --x.")  # fmt: skip
@click.option("--y-val", type=click.Path(exists=True, path_type=Path))
@click.option("--method", type=_NEURON_METHODS, default="brute_force", show_default=True)
@click.option("--loss", type=click.Choice(["auto", "sse", "crossentropy"]), default="auto",
              show_default=True)  # fmt: skip
@click.option("--legc-scores", type=click.Path(exists=True, path_type=Path))
@click.option("--n", "count", type=int, help="Remove this many neurons.")
@click.option("--fraction", type=float, help="Remove this fraction of the hidden neurons.")
@click.option("--max-drop", type=float, help="Remove while validation accuracy drops <= this.")
@click.option("--single-pass", is_flag=True, help="Rank once instead of re-ranking each step.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="The removal record (.json).")  # fmt: skip
@click.option("--shrink-to", type=click.Path(path_type=Path),
              help="Also shrink MODEL and save the smaller model here (.keras).")  # fmt: skip
@click.option("--fold-means", is_flag=True,
              help="With --shrink-to: fold removed units' mean activations (over --x) into biases.")  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def neurons_remove(
    model, x_path, y_path, x_val, y_val, method, loss, legc_scores, count, fraction, max_drop,
    single_pass, out, shrink_to, fold_means, force,
):  # fmt: skip
    """Remove hidden neurons of MODEL by a global ranking (no retraining); write the record."""
    import keras_legc as kl
    from keras_legc import neurons as nmod

    m = _run(kl.load_model, model, compile=False)
    x, y = _load_npy(x_path, "--x"), _load_npy(y_path, "--y")
    xv = _load_npy(x_val, "--x-val") if x_val else None
    yv = _load_npy(y_val, "--y-val") if y_val else None
    from keras_legc._io import check_writable

    _run(check_writable, out, force)
    if shrink_to:
        _run(check_writable, shrink_to, force)
    scorer = _run(_neuron_scorer, method, loss, legc_scores, m)
    rec = _run(
        nmod.prune_neurons, m, scorer, x, y, n=count, fraction=fraction, max_drop=max_drop,
        x_val=xv, y_val=yv, iterative=not single_pass, loss=loss,
    )  # fmt: skip
    _run(rec.save, out, overwrite=force)
    click.echo(
        f"removed {len(rec.removed)} of {rec.n_hidden} hidden neurons ({rec.method}, "
        f"{'iterative' if rec.iterative else 'single pass'}): accuracy {rec.accuracy[0]:.4f} -> "
        f"{rec.accuracy[-1]:.4f}; per layer {{{', '.join(f'{k}: {len(v)}' for k, v in rec.as_dict().items())}}}"
    )
    click.echo(f"wrote {out}")
    if shrink_to:
        small = _run(nmod.shrink, m, rec, fold_mean_activations=x if fold_means else None)
        _run(kl.save_model, small, shrink_to, overwrite=force)
        click.echo(f"wrote {shrink_to} ({small.count_params()} parameters, was {m.count_params()})")


@neurons.command("shrink")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.argument("record", type=click.Path(exists=True, path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--n", "count", type=int, help="Use only the first N removals of the record.")
@click.option("--fold-x", type=click.Path(exists=True, path_type=Path),
              help=".npy of inputs: fold removed units' mean activations into the next biases.")  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite OUT.")
def neurons_shrink(model, record, out, count, fold_x, force):
    """Save a smaller copy of MODEL without the neurons in RECORD (from `legc neurons remove`)."""
    import keras_legc as kl
    from keras_legc import neurons as nmod

    m = _run(kl.load_model, model, compile=False)
    rec = _run(nmod.NeuronPruning.load, record)
    fold = _load_npy(fold_x, "--fold-x") if fold_x else None
    from keras_legc._io import check_writable

    _run(check_writable, out, force)
    small = _run(nmod.shrink, m, rec.as_dict(count), fold_mean_activations=fold)
    _run(kl.save_model, small, out, overwrite=force)
    click.echo(
        f"wrote {out}: {small.count_params()} parameters (was {m.count_params()}), "
        f"{nmod.count_macs(small)} MACs (was {nmod.count_macs(m)}); export it with legc export"
    )


@main.command()
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("runs/reproduce"), show_default=True,
    help="Run directory: results.json, models/<mode>/<dataset>/seed<s>/<method>.keras, data/.",
)  # fmt: skip
@click.option(
    "--docs", type=click.Path(path_type=Path), default=Path("docs"), show_default=True,
    help="Where results.md and img/results_*.png are written.",
)  # fmt: skip
@click.option(
    "--data-dir", type=click.Path(path_type=Path), envvar="LEGC_DATA_DIR",
    help="Folder with legcnet/ and mnist/ (default $LEGC_DATA_DIR).",
)  # fmt: skip
@click.option("--quick", is_flag=True, help="A short run for tests (2 datasets, 2 seeds).")
@click.option("--datasets", help="Comma-separated subset, e.g. cancer,iris (default: all).")
@click.option("--modes", help="Comma-separated subset of paper,clean (default: both).")
@click.option("--seeds", help="Comma-separated seeds (default 0,1,2,3,4).")
@click.option("--no-sweep", is_flag=True, help="Skip the accuracy-vs-sparsity sweep.")
@click.option("--no-models", is_flag=True, help="Do not save the trained models.")
@click.option(
    "--report-only", is_flag=True, help="Only (re)write the report from OUT/results.json."
)
@click.option(
    "--no-diagnose",
    is_flag=True,
    help="Skip docs/diagnostics.md (SHAP agreement over seeds, MNIST alpha table).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing results.json and report.")
def reproduce(out, docs, data_dir, quick, datasets, modes, seeds, no_sweep, no_models,
              report_only, no_diagnose, force):  # fmt: skip
    """Reproduce the LEGCNet paper's tables (FT, PT, random, magnitude; paper and clean modes)
    plus an accuracy-vs-sparsity sweep, and write docs/results.md with verdicts; then diagnose the
    saved models (docs/diagnostics.md) when the diagnostics extra is installed."""
    from dataclasses import replace

    from keras_legc.reproduce import ReproduceConfig, load_results
    from keras_legc.reproduce import reproduce as run
    from keras_legc.results_report import write_report

    def split(text):
        return tuple(t.strip() for t in text.split(",") if t.strip())

    if report_only:
        results = _run(load_results, out)
    else:
        cfg = ReproduceConfig.quick() if quick else ReproduceConfig()
        try:
            if datasets:
                cfg = replace(cfg, datasets=split(datasets))
            if modes:
                cfg = replace(cfg, modes=split(modes))
            if seeds:
                cfg = replace(cfg, seeds=tuple(int(s) for s in split(seeds)))
        except ValueError:
            raise click.BadParameter("seeds must be comma-separated integers, e.g. 0,1,2") from None
        if no_sweep:
            cfg = replace(cfg, sweep=())
        if no_models:
            cfg = replace(cfg, save_models=False)
    command = "legc reproduce " + " ".join(sys.argv[2:]) if len(sys.argv) > 1 else "legc reproduce"
    if not report_only:
        results = _run(run, out, cfg, data_dir=data_dir, overwrite=force, command=command.strip())
    path = _run(write_report, results, docs, command=command.strip(), data_dir=data_dir,
                overwrite=force)  # fmt: skip
    click.echo(f"wrote {out / 'results.json'} and {path}")
    if not no_diagnose:
        _diagnose_reproduction(out, docs, command.strip(), quick, force)


def _diagnose_reproduction(out: Path, docs: Path, command: str, quick: bool, force: bool) -> None:
    from keras_legc.errors import MissingDependencyError
    from keras_legc.paper_diagnostics import DiagnosticsSettings, write_diagnostics

    mode = next((m for m in ("paper", "clean") if (out / "models" / m).is_dir()), None)
    if mode is None:
        click.echo("diagnostics skipped: no saved models (the run used --no-models).")
        return
    # --quick (tests): few SHAP rows; otherwise the defaults docs/diagnostics.md was made with.
    settings = DiagnosticsSettings(background=20, explain=20) if quick else DiagnosticsSettings()
    click.echo(f"diagnosing the saved {mode}-mode models (SHAP agreement, WeightWatcher) ...")
    try:
        record = write_diagnostics(
            out, docs / "diagnostics.md", mode=mode, settings=settings, overwrite=force,
            command=command,
        )  # fmt: skip
    except MissingDependencyError as exc:  # the run's results stand without the optional extra
        click.echo(f"diagnostics skipped: {exc}")
        return
    except LegcError as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    verdict = record["agreement"].get("overall", "no verdict") if record["agreement"] else "none"
    click.echo(f"wrote {docs / 'diagnostics.md'} (feature-importance verdict: {verdict})")


if __name__ == "__main__":  # pragma: no cover
    main()
