"""The ``legc`` command line: thin click commands over the public API."""

from __future__ import annotations

import sys
from pathlib import Path

import click

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
def demo(out, force, seed, sparsity, alpha, rewind, quick):
    """Train, score, prune, fine-tune, export and benchmark on embedded data; print one table."""
    from keras_legc.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out=out, force=force, seed=seed, quick=quick, sparsity=sparsity, alpha=alpha, rewind=rewind
    )
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


if __name__ == "__main__":  # pragma: no cover
    main()
