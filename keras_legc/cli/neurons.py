"""``legc neurons score|remove|shrink``: neuron pruning without retraining."""

from __future__ import annotations

from pathlib import Path

import click

from keras_legc.cli import _checks as checks
from keras_legc.cli._group import _run, bad_input, load_model_echo, main, unsafe_load_option


def _load_npy(path, what):
    from keras_legc._inputs import load_array

    return _run(load_array, path, what)


def _neuron_scorer(method, loss, legc_scores, model):
    from keras_legc import neurons

    if method != "legc":
        return neurons.get_scorer(method, loss)
    if legc_scores is None:
        raise bad_input(
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
@click.argument("model", type=checks.MODEL)
@click.option("--x", "x_path", required=True, type=checks.ARRAY,
              help=".npy of evaluation inputs.")  # fmt: skip
@click.option("--y", "y_path", required=True, type=checks.ARRAY,
              help=".npy of labels (or one-hot targets).")  # fmt: skip
@click.option("--method", type=_NEURON_METHODS, default="brute_force", show_default=True,
              help="How neurons are ranked (lowest score removed first).")  # fmt: skip
@click.option("--loss", type=click.Choice(["auto", "sse", "crossentropy"]), default="auto",
              show_default=True, help="The loss the scorers measure (auto: from the labels).")  # fmt: skip
@click.option("--legc-scores", type=checks.NPZ,
              help="scores.npz from `legc score` (for --method legc).")  # fmt: skip
@click.option("--top", default=10, show_default=True, help="How many of the ranking to print.")
@click.option("--out", type=click.Path(path_type=Path), help="Write all scores as JSON here.")
@click.option("--force", is_flag=True, help="Overwrite --out.")
@unsafe_load_option
def neurons_score(model, x_path, y_path, method, loss, legc_scores, top, out, force, unsafe_load):
    """Score every hidden neuron of MODEL (lower = remove first); print the global ranking."""
    from keras_legc._io import atomic_write_json

    m = load_model_echo(model, unsafe=unsafe_load)
    x, y = _load_npy(x_path, "--x"), _load_npy(y_path, "--y")
    scorer = _run(_neuron_scorer, method, loss, legc_scores, m)
    scores = _run(scorer, m, x, y)
    for rank, (layer, unit) in enumerate(scores.ranking()[:top], 1):
        click.echo(f"{rank:>4}  {layer}[{unit}]  {scores[layer][unit]:.6g}")
    if out:
        _run(atomic_write_json, out, scores.to_dict(), overwrite=force)
        click.echo(f"wrote {out}")


@neurons.command("remove")
@click.argument("model", type=checks.MODEL)
@click.option("--x", "x_path", required=True, type=checks.ARRAY,
              help=".npy of inputs the scorer evaluates.")  # fmt: skip
@click.option("--y", "y_path", required=True, type=checks.ARRAY,
              help=".npy of the labels of --x (or one-hot targets).")  # fmt: skip
@click.option("--x-val", type=checks.ARRAY,
              help=".npy of validation inputs (accuracy curve, --max-drop); default --x.")  # fmt: skip
@click.option("--y-val", type=checks.ARRAY, help=".npy of the labels of --x-val; default --y.")
@click.option("--method", type=_NEURON_METHODS, default="brute_force", show_default=True,
              help="How neurons are ranked (lowest score removed first).")  # fmt: skip
@click.option("--loss", type=click.Choice(["auto", "sse", "crossentropy"]), default="auto",
              show_default=True, help="The loss the scorers measure (auto: from the labels).")  # fmt: skip
@click.option("--legc-scores", type=checks.NPZ,
              help="scores.npz from `legc score` (for --method legc).")  # fmt: skip
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
@unsafe_load_option
def neurons_remove(
    model, x_path, y_path, x_val, y_val, method, loss, legc_scores, count, fraction, max_drop,
    single_pass, out, shrink_to, fold_means, force, unsafe_load,
):  # fmt: skip
    """Remove hidden neurons of MODEL by a global ranking (no retraining); write the record."""
    import keras_legc as kl
    from keras_legc import neurons as nmod

    m = load_model_echo(model, unsafe=unsafe_load)
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
@click.argument("model", type=checks.MODEL)
@click.argument("record", type=checks.JSON)
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--n", "count", type=int, help="Use only the first N removals of the record.")
@click.option("--fold-x", type=checks.ARRAY,
              help=".npy of inputs: fold removed units' mean activations into the next biases.")  # fmt: skip
@click.option("--force", is_flag=True, help="Overwrite OUT.")
@unsafe_load_option
def neurons_shrink(model, record, out, count, fold_x, force, unsafe_load):
    """Save a smaller copy of MODEL without the neurons in RECORD (from `legc neurons remove`)."""
    import keras_legc as kl
    from keras_legc import neurons as nmod

    m = load_model_echo(model, unsafe=unsafe_load)
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
