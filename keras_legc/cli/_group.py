"""The ``legc`` command group and the one error-to-exit-code rule every command shares.

Exit codes, the same for every ``legc`` command (``legc bench`` included; README, "Command line"):
0 done; 2 bad input (options, files, model, data: click's usage errors and every keras_legc error);
3 the .tflite's outputs differ from the model's (export's verification, the benchmark's check);
4 over a budget (bench); 5 over the memory limit (bench); 6 the model's outputs are constant;
7 the interpreter crashed (bench).
"""

from __future__ import annotations

import warnings

import click

from keras_legc.cli._plugins import PluginGroup
from keras_legc.errors import LegcError

EXIT_USAGE, EXIT_MISMATCH, EXIT_CONSTANT = 2, 3, 6


def bad_input(message: str) -> click.ClickException:
    """A bad-input error of a command: one line, ``Error: <message>``, exit 2 (as click's usage
    errors and ``legc bench``)."""
    error = click.ClickException(message)
    error.exit_code = EXIT_USAGE
    return error


def _run(fn, *args, **kwargs):
    """Call into the library; turn a keras_legc error into a one-line message and exit 2."""
    try:
        return fn(*args, **kwargs)
    except LegcError as exc:
        raise bad_input(f"{type(exc).__name__}: {exc}") from exc


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the CLI prints it: its class and message, no source location."""
    return f"{category.__name__}: {message}\n"


def load_model_echo(path, *, unsafe: bool):
    """Load a saved model of either flavour (``kl.load_model``) and say which flavour it is."""
    from keras_legc.keras.saving import describe_flavour, load_model

    model = _run(load_model, path, compile=False, unsafe=unsafe)
    click.echo(f"loaded {path}: {describe_flavour(model)} model")
    return model


#: ``--unsafe-load``, for every command that loads a saved model.
unsafe_load_option = click.option(
    "--unsafe-load", "unsafe_load", is_flag=True,
    help="Allow model files with Lambda layers, i.e. run the Python code stored in them (refused "
    "by default). Only for files you trust as you would a script.",
)  # fmt: skip


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-legc")
@click.option(
    "--verbose", is_flag=True, envvar="LEGC_VERBOSE",
    help="Show TensorFlow's C++ start-up log lines (hidden by default). Also LEGC_VERBOSE=1.",
)  # fmt: skip
def main(verbose):
    """keras-legc: prune Keras networks (weights or whole channels), ship them to TFLite.

    Exit codes: 0 done; 2 bad input (options, files, model, data); 3 the .tflite's outputs differ
    from the model's; 4 over a budget and 5 over the memory limit (bench); 6 the model's outputs
    are constant; 7 the interpreter crashed (bench).
    """
    warnings.formatwarning = _one_line_warning
    if not verbose:
        from keras_legc._quiet import quiet_tensorflow_startup

        quiet_tensorflow_startup()
