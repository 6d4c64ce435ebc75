"""``legc export`` and ``legc bench``: .keras -> .tflite (+ verification), and the edge runner."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from keras_legc.cli import _checks as checks
from keras_legc.cli._group import (
    EXIT_CONSTANT,
    EXIT_MISMATCH,
    _run,
    load_model_echo,
    main,
    unsafe_load_option,
)

COLLAPSED_EXIT = EXIT_CONSTANT  # the edge runner uses the same code for constant outputs


@main.command()
@click.argument("model", type=checks.MODEL)
@click.argument("out", type=checks.output_suffix((".tflite",)))
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
    type=checks.ARRAY,
    help=".npy/.npz of your model inputs (int8 calibration; the last rows are held out to verify).",
)
@click.option(
    "--reference-inputs",
    type=checks.ARRAY,
    help=".npy/.npz of inputs for the reference outputs.",
)
@click.option("--n-reference", default=16, show_default=True, type=click.IntRange(min=1),
              help="How many reference rows are verified and kept for the device check.")  # fmt: skip
@click.option(
    "--allow-constant-output",
    is_flag=True,
    help="Export even when the outputs are the same for every reference input (refused with "
    "exit code 6 by default: such a model ignores its input).",
)
@click.option(
    "--tolerance",
    type=float,
    default=None,
    help="Verification tolerance: max |TFLite - Keras| <= T x max(1, max |Keras output|). "
    "Default per quantization: float 1e-4, float16 1e-2, dynamic 5e-2; int8 is judged instead by "
    "its mean error instead (<= 0.025 x the same scale). Pass "
    "it only after reading a failed verification's numbers; the device check uses it too.",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@unsafe_load_option
def export(
    model, out, quantization, sparse, representative_data, reference_inputs, n_reference,
    allow_constant_output, tolerance, force, unsafe_load,
):  # fmt: skip
    """Convert a saved Keras MODEL (pruned or not) to OUT (.tflite) + .json + .reference.npz.

    Exit codes: 0 written and verified, 2 bad input, 3 verification over tolerance (the .tflite
    is kept as OUT's .failed.tflite), 6 the model's outputs are constant (collapsed)."""
    from keras_legc.errors import CollapsedModelError
    from keras_legc.keras.export import check_combination, check_tolerance, export_tflite

    # options first, before TensorFlow or the model is loaded
    _run(check_combination, quantization, sparse)
    _run(check_tolerance, tolerance)
    if quantization == "int8" and representative_data is None:
        raise click.UsageError(
            "-q int8 needs --representative-data (a .npy of a few hundred of your model's "
            "inputs) to calibrate activations. Fix: pass it, or use -q dynamic (no data needed)."
        )
    if unsafe_load:  # export_tflite loads a path in safe mode; hand it the model instead
        model = load_model_echo(model, unsafe=True)
    try:
        report = _run(
            export_tflite, model, out, quantization=quantization, sparse=sparse,
            representative_data=representative_data, reference_inputs=reference_inputs,
            n_reference=n_reference, overwrite=force, allow_constant_output=allow_constant_output,
            tolerance=tolerance,
        )  # fmt: skip
    except click.ClickException as exc:
        if isinstance(exc.__cause__, CollapsedModelError):
            exc.exit_code = COLLAPSED_EXIT
        raise
    v = report["verification"]
    k3 = report.get("keras3")
    flavour = f"Keras 3, {k3['backend']} backend" if k3 else "Keras 2 (tf_keras)"
    written = out if v["ok"] else Path(out).with_suffix(".failed.tflite")
    click.echo(
        f"wrote {written} ({flavour} model; {report['tflite_bytes']} bytes, {quantization}"
        f"{', sparse' if sparse else ''}; {_sparsity_line(report)}), "
        f"{Path(out).with_suffix('.json')}, {Path(out).with_suffix('.reference.npz')}"
    )
    status = "OK" if v["ok"] else f"OVER TOLERANCE: {out} not written, see the warning above"
    if v.get("rule") == "mean":
        measured = (
            f"mean |tflite - keras| = {v['mean_abs_error']:.3g} (tolerance {v['mean_atol']:.3g})"
            f"{_agreement(v)}, largest {v['max_abs_error']:.3g}"
        )
    else:
        measured = (
            f"max |tflite - keras| = {v['max_abs_error']:.3g} (atol {v['atol']:.3g}"
            f"{', given' if v.get('tolerance_given') else ''}){_agreement(v)}"
        )
    click.echo(f"verification on {v['n_inputs']} inputs: {measured}: {status}")
    if "sparse_tflite_bytes" in report:
        click.echo(
            f"hint: {100 * report['sparsity']:.0f}% of the Dense kernels are zero but stored "
            f"dense; --sparse stores them sparsely: {report['sparse_tflite_bytes']} bytes instead "
            f"of {report['tflite_bytes']}."
        )
    if not v["ok"]:
        sys.exit(EXIT_MISMATCH)


def _agreement(verification: dict) -> str:
    """ ", top class kept on K of N", where the outputs have a top class."""
    share = verification.get("top1_agreement")
    n = verification["n_inputs"]
    return "" if share is None else f", top class kept on {round(share * n)} of {n}"


def _sparsity_line(report: dict) -> str:
    """Zeros over every parameter, next to the pruned Dense kernels' own sparsity."""
    return (
        f"{100 * report['parameter_sparsity']:.1f}% of all {report['parameters']:,} parameters "
        f"zero; Dense kernels {100 * report['sparsity']:.1f}%"
    )


@main.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args):
    """Run the edge benchmark (same as legc-edge / python edge/bench.py); --help for options."""
    import subprocess

    # The device-side runner is a program of its own (one copyable file); the library runs it
    # rather than importing it, under this command's name (its usage says "legc bench").
    run = "import sys; from legc_edge.bench import main; sys.exit(main(sys.argv[1:], 'legc bench'))"
    sys.exit(subprocess.call([sys.executable, "-c", run, *args]))
