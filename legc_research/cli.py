"""The research package's ``legc`` commands, ``demo`` and ``reproduce``. The library never imports
legc_research: ``legc`` (``keras_legc.cli.main``) finds these two through the
``keras_legc.cli_commands`` entry points that setup.cfg declares. :data:`main` is ``legc`` with them
added directly, for a checkout whose entry points are not installed (``python -m legc_research.cli``,
the tests); the library's group itself is left as it is."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import click

from keras_legc.cli import main as library_main
from keras_legc.cli._group import _run
from keras_legc.errors import LegcError


def _require_research(command: str, *modules: str) -> None:
    """Refuse a command whose research extra is not installed, before any work."""
    from keras_legc.diagnostics._common import _require

    for module in modules:
        _run(_require, module, f"legc {command}", extra="research")


@click.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default runs/demo-<time>).",
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
    _require_research("demo", "sklearn")
    from legc_research.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out=out, force=force, seed=seed, quick=quick, sparsity=sparsity, alpha=alpha,
        rewind=rewind, diagnose=not no_diagnose,
    )  # fmt: skip
    _run(run_demo, cfg)


@click.command()
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/reproduce"), show_default=True,
    help="Run directory: results.json, models/<mode>/<dataset>/seed<s>/<method>.keras, data/.",
)  # fmt: skip
@click.option(
    "--docs", type=click.Path(file_okay=False, path_type=Path), default=Path("docs"), show_default=True,
    help="Where results.md and img/results_*.png are written.",
)  # fmt: skip
@click.option(
    "--data-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
    envvar="LEGC_DATA_DIR",
    help="Folder with legcnet/ and mnist/ (default $LEGC_DATA_DIR; without it: the package's "
    "tabular data and Keras' MNIST cache).",
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

    _require_research("reproduce", "sklearn", "matplotlib")
    from legc_research.reproduce import ReproduceConfig, load_results
    from legc_research.reproduce import reproduce as run
    from legc_research.results_report import write_report

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
    from legc_research.paper_diagnostics import DiagnosticsSettings, write_diagnostics

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


#: ``legc`` with this package's commands whether or not its entry points are installed: a copy of
#: the library's group (whose own commands and plugins it keeps) with ``demo`` and ``reproduce``.
main = copy.copy(library_main)
main.commands = {**library_main.commands, "demo": demo, "reproduce": reproduce}

if __name__ == "__main__":  # pragma: no cover
    main()
