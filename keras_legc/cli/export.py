"""``legc export`` and ``legc bench``: .keras -> .tflite (+ verification), and the edge runner."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from keras_legc.cli import _checks as checks
from keras_legc.cli._group import _run, load_model_echo, main, unsafe_load_option

COLLAPSED_EXIT = 6  # the edge runner uses the same code for constant outputs


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
@click.option("--n-reference", default=16, show_default=True)
@click.option(
    "--allow-constant-output",
    is_flag=True,
    help="Export even when the outputs are the same for every reference input (refused with "
    "exit code 6 by default: such a model ignores its input).",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@unsafe_load_option
def export(
    model, out, quantization, sparse, representative_data, reference_inputs, n_reference,
    allow_constant_output, force, unsafe_load,
):  # fmt: skip
    """Convert a saved Keras MODEL (pruned or not) to OUT (.tflite) + .json + .reference.npz.

    Exit codes: 0 written and verified, 3 verification over tolerance, 6 the model's outputs are
    constant (collapsed), 1 any other keras_legc error."""
    from keras_legc.errors import CollapsedModelError
    from keras_legc.keras.export import export_tflite

    if unsafe_load:  # export_tflite loads a path in safe mode; hand it the model instead
        model = load_model_echo(model, unsafe=True)
    try:
        report = _run(
            export_tflite, model, out, quantization=quantization, sparse=sparse,
            representative_data=representative_data, reference_inputs=reference_inputs,
            n_reference=n_reference, overwrite=force, allow_constant_output=allow_constant_output,
        )  # fmt: skip
    except click.ClickException as exc:
        if isinstance(exc.__cause__, CollapsedModelError):
            exc.exit_code = COLLAPSED_EXIT
        raise
    v = report["verification"]
    k3 = report.get("keras3")
    flavour = f"Keras 3, {k3['backend']} backend" if k3 else "Keras 2 (tf_keras)"
    click.echo(
        f"wrote {out} ({flavour} model; {report['tflite_bytes']} bytes, {quantization}{', sparse' if sparse else ''}; "
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
    import subprocess

    # The device-side runner is a program of its own (one copyable file); the library runs it
    # rather than importing it, under this command's name (its usage says "legc bench").
    run = "import sys; from legc_edge.bench import main; sys.exit(main(sys.argv[1:], 'legc bench'))"
    sys.exit(subprocess.call([sys.executable, "-c", run, *args]))
