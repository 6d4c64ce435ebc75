"""``legc channels``: structured (channel) pruning of a saved Keras 3 model."""

from __future__ import annotations

from pathlib import Path

import click

from keras_legc.cli import _checks as checks
from keras_legc.cli._group import _run, load_model_echo, main, unsafe_load_option


@main.command("channels")
@click.argument("model", type=checks.MODEL)
@click.argument("out", type=checks.output_suffix((".keras",)))
@click.option("--ratio", type=float, help="Fraction of prunable channels to remove.")
@click.option("--params", type=int, help="Parameters to keep at most.")
@click.option("--macs", type=int, help="Multiply-accumulates per sample to keep at most.")
@click.option("--latency-ms", type=float,
              help="Milliseconds per invoke on LiteRT (1 thread, batch 1) to reach at most: each "
              "candidate is exported and timed (kl.prune_channels_to_latency).")  # fmt: skip
@click.option("--int8-data", type=checks.ARRAY,
              help="With --latency-ms: time int8 files, calibrated on these inputs (.npy/.npz); "
              "float without it.")  # fmt: skip
@click.option("--importance", type=click.Choice(["l2", "l1", "bn_scale", "random", "legc"]),
              default="l2", show_default=True,
              help="Channel score, lowest removed first (docs/channels.md); legc needs --history.")  # fmt: skip
@click.option("--history", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A unit-level run directory (UnitHistory(run_dir=...)) for "
              "--importance legc.")  # fmt: skip
@click.option("--round-to", type=int, default=1, show_default=True,
              help="Kept channel counts in multiples of this (e.g. 8 for SIMD).")  # fmt: skip
@click.option("--exclude", multiple=True, help="A layer whose output channels are kept (repeat).")
@click.option("--per-layer", is_flag=True, help="The same fraction from every group.")
@click.option("--groups", "show_groups", is_flag=True, help="Print the channel groups first.")
@click.option("--force", is_flag=True, help="Overwrite OUT.")
@unsafe_load_option
def channels(model, out, ratio, params, macs, latency_ms, int8_data, importance, history,
             round_to, exclude, per_layer, show_groups, force, unsafe_load):  # fmt: skip
    """Save a copy of MODEL with fewer channels (physically smaller layers) as OUT (.keras)."""
    import keras_legc as kl
    from keras_legc._io import check_writable

    if int8_data is not None and latency_ms is None:
        raise click.UsageError("--int8-data times int8 files for --latency-ms; give --latency-ms.")
    _run(check_writable, out, force)
    m = load_model_echo(model, unsafe=unsafe_load)
    if show_groups:
        for group in _run(kl.channel_groups, m, exclude=exclude):
            click.echo(str(group))
    common = {"importance": importance, "history": history, "round_to": round_to,
              "exclude": exclude, "per_layer": per_layer}  # fmt: skip
    if latency_ms is not None:
        import functools

        from keras_legc.structure import litert_p50_ms, prune_channels_to_latency

        measure = litert_p50_ms if int8_data is None else functools.partial(
            litert_p50_ms, quantization="int8", representative_data=int8_data
        )  # fmt: skip
        small = _run(prune_channels_to_latency, m, latency_ms, measure=measure, ratio=ratio,
                     params=params, macs=macs, **common)  # fmt: skip
    else:
        small = _run(kl.prune_channels, m, ratio=ratio, params=params, macs=macs, **common)
    _run(kl.save_model, small, out, overwrite=force)
    click.echo(
        f"wrote {out}: {small.count_params():,} parameters (was {m.count_params():,}), "
        f"{kl.count_macs(small):,} MACs (was {kl.count_macs(m):,}); export it with legc export"
    )
