"""``legc diagnose``: WeightWatcher alphas and SHAP agreement of pruned models with the dense one."""

from __future__ import annotations

from pathlib import Path

import click

from keras_legc.cli import _checks as checks
from keras_legc.cli._group import _run, bad_input, load_model_echo, main, unsafe_load_option


@main.command()
@click.argument("dense", type=checks.MODEL)
@click.argument("pruned", nargs=-1, required=True, type=checks.MODEL)
@click.option(
    "--data", required=True, type=checks.ARRAY,
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
@unsafe_load_option
def diagnose(
    dense, pruned, data, key, out, background, explain, top_k, seed, progress, force, unsafe_load
):
    """WeightWatcher alphas and SHAP agreement of DENSE vs each PRUNED model (.keras files).

    Model names are the file stems. Writes OUT/report.json, report.md and PNG plots.
    """
    import keras_legc as kl
    from keras_legc.diagnostics import load_inputs

    x, names = _run(load_inputs, data, key)
    models = {}
    for path in pruned:
        if path.stem in models or path.stem == dense.stem:
            raise bad_input(
                f"two models are named {path.stem!r} (file stems). Fix: rename one file."
            )
        models[path.stem] = load_model_echo(path, unsafe=unsafe_load)
    result = _run(
        kl.diagnose, load_model_echo(dense, unsafe=unsafe_load), models, x, background=background,
        explain=explain, top_k=top_k, feature_names=names, seed=seed, dense_name=dense.stem,
        out_dir=out, overwrite=force, progress=progress,
    )  # fmt: skip
    click.echo(result.summary())
    click.echo(f"wrote {out / 'report.md'}, {out / 'report.json'} and plots")


# ---- legc neurons (issue 5): thin commands over keras_legc.neurons ----------------------------------
