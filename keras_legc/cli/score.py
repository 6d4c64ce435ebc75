"""``legc score``: a run directory's history -> scores.npz and a mask."""

from __future__ import annotations

from pathlib import Path

import click

from keras_legc.cli import _checks as checks
from keras_legc.cli._group import _run, main


@main.command()
@click.argument("run_dir", type=checks.RUN_DIR)
@click.option(
    "--max-lag", default="auto", show_default=True,
    help="Largest lag: an integer, or auto (14 or what the windows allow).",
)  # fmt: skip
@click.option(
    "--test", type=click.Choice(["ssr_chi2", "ssr_ftest"]), default="ssr_chi2", show_default=True,
    help="The paper's Granger statistic (chi-square, as the paper) or the F-test.",
)  # fmt: skip
@click.option(
    "--alpha", type=float, help="Paper mode: prune weights with p >= alpha (default 0.05)."
)
@click.option(
    "--sparsity", type=float, help="Target mode: prune this fraction, least causal first."
)
@click.option(
    "--allocation", type=click.Choice(["lamp", "global", "uniform"]),
    help="Target mode: how the sparsity is shared among layers (default lamp: LAMP's per-layer "
    "sparsities; global: one ranking of all weights; uniform: the same in every layer).",
)  # fmt: skip
@click.option(
    "--per-layer", is_flag=True, help="In target mode, reach the sparsity in every layer "
    "(= --allocation uniform).",
)  # fmt: skip
@click.option(
    "--ranking",
    type=click.Choice(
        ["static_magnitude", "legc_protect", "legc", "legc_rank_product", "legc_pvalue"]
    ),
    help="Target mode's ranking (default static_magnitude: never-moved weights first, then "
    "|w|; see README, 'Target mode').",
)
@click.option(
    "--exclude", multiple=True, help="A layer (or weight key) the mask keeps whole, as TF-MOT "
    "leaves layers it is not given (repeat); --sparsity is then that of the other weights.",
)  # fmt: skip
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
@click.option(
    "--scheduler", metavar="ADDRESS",
    help="Score on a Dask cluster by its scheduler address (tcp://host:8786); its workers must "
    "see RUN_DIR. Needs keras-legc[distributed].",
)  # fmt: skip
@click.option(
    "--scheduler-timeout", default=10.0, show_default=True, type=float,
    help="Seconds to wait for the scheduler.",
)  # fmt: skip
def score(
    run_dir, max_lag, test, alpha, sparsity, allocation, per_layer, ranking, exclude, out, lag, fdr,
    difference, chunk_size, threads, progress, force, scheduler, scheduler_timeout,
):  # fmt: skip
    """Score a recorded RUN_DIR (from WeightHistory(run_dir=...)) and write scores and a mask."""
    import keras_legc as kl
    from keras_legc._io import check_writable
    from keras_legc.core.scoring import check_mask_options

    if max_lag != "auto":
        try:
            max_lag = int(max_lag)
        except ValueError:
            raise click.BadParameter("an integer >= 1, or auto", param_hint="--max-lag") from None
    # every option and output before any scoring or file is written
    _run(check_mask_options, alpha, sparsity, None, ranking)
    if per_layer and allocation not in (None, "uniform"):
        raise click.UsageError(f"--per-layer is --allocation uniform; it contradicts --allocation "
                               f"{allocation}. Fix: give one of them.")  # fmt: skip
    share = {None: None, "lamp": "lamp", "global": False, "uniform": True}[
        "uniform" if per_layer else allocation
    ]
    for path in (run_dir / "scores.npz", out or run_dir / "mask.npz"):
        _run(check_writable, path, force)
    # the names exclude gives are checked against the recording before it is scored (minutes)
    history = _run(kl.History.load, run_dir)
    if exclude:
        from keras_legc.masking.policy import check_exclude

        _run(check_exclude, exclude, [str(k) for k in history.layers])
    client = owned = None
    if scheduler:
        from keras_legc.core.distributed import connect

        client, owned = _run(connect, scheduler, scheduler_timeout)
    try:
        scores = _run(
            kl.score, history, max_lag=max_lag, test=test, lag=lag, fdr=fdr,
            difference=difference, chunk_size=chunk_size, threads=threads, progress=progress,
            client=client,
        )  # fmt: skip
    finally:
        if owned:
            client.close()
    _run(scores.save, run_dir / "scores.npz", overwrite=force)
    mask = _run(scores.mask, alpha, sparsity=sparsity, per_layer=share, ranking=ranking,
                exclude=exclude or None)  # fmt: skip
    path = _run(mask.save, out or run_dir / "mask.npz", overwrite=force)
    click.echo(scores.summary())
    click.echo(mask.summary())
    click.echo(f"wrote {run_dir / 'scores.npz'} and {path}")
