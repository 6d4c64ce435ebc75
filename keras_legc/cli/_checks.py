"""Argument and file checks of the ``legc`` commands, run by click before TensorFlow is imported.

A wrong path or file type is refused in milliseconds instead of after TensorFlow's 5-7 s import:
existence, file or folder, suffix, and the magic bytes of each format (``.keras``/``.npz`` are zip
archives, ``.h5`` starts with the HDF5 signature, ``.tflite`` carries the ``TFL3`` identifier,
``.npy`` the NumPy magic, JSON starts with ``{``). The errors and exit codes stay what they were
when the loaders found the problem: a missing path is click's ``Invalid value`` usage error (exit
2); a wrong file is the one-line ``Error: <keras_legc error>: ... Fix: ...`` of every command (exit
1), naming the error class the loader raises (:data:`ERRORS`). Only the first bytes are read; the
loaders still check the content. Standard library and click only.
"""

from __future__ import annotations

from pathlib import Path

import click

from keras_legc.cli._group import bad_input

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a local file header, or an empty archive
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
HDF5_OFFSETS = (0, 512, 1024, 2048)  # the signature may follow a user block of these sizes
NPY_MAGIC = b"\x93NUMPY"
TFLITE_ID = b"TFL3"  # the FlatBuffer file identifier, bytes 4-8
#: The files a recorded run folder (``WeightHistory(run_dir=...)``) holds; one is enough.
RUN_FILES = ("manifest.json", "history.npz")

#: The keras_legc error each kind's loader raises for a wrong file (the name the CLI prints).
ERRORS = {"model": "ModelStructureError", "run_dir": "HistoryError"}  # others: InvalidArgumentError

#: What each kind of file may be called and what the user is told to pass instead.
KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "model": (
        (".keras", ".h5", ".hdf5"),
        "a saved Keras model (.keras, .h5, or a SavedModel folder)",
    ),
    "array": ((".npy", ".npz"), "a NumPy array file (.npy, or .npz)"),
    "npz": ((".npz",), "a .npz archive (as `legc score` writes scores.npz and mask.npz)"),
    "tflite": ((".tflite",), "a TFLite model (.tflite, from `legc export`)"),
    "json": ((".json",), "a JSON file"),
}


def _head(path: Path, n: int) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        for offset in HDF5_OFFSETS:
            f.seek(offset)
            if f.read(len(HDF5_MAGIC)) == HDF5_MAGIC:
                return True
    return False


def _content_problem(path: Path, suffix: str) -> str | None:
    """Why the first bytes of ``path`` do not match ``suffix`` (None when they do)."""
    head = _head(path, 8)
    if suffix in (".keras", ".npz"):
        ok, what = head[:4] in ZIP_MAGIC, "a zip archive"
    elif suffix in (".h5", ".hdf5"):
        ok, what = _is_hdf5(path), "an HDF5 file"
    elif suffix == ".npy":
        ok, what = head[:6] == NPY_MAGIC, "a .npy file (no NumPy header)"
    elif suffix == ".tflite":
        ok, what = head[4:8] == TFLITE_ID, "a TFLite FlatBuffer (no TFL3 identifier)"
    else:  # .json
        ok, what = _head(path, 64).lstrip()[:1] in (b"{", b"["), "JSON"
    return None if ok else f"{path} is not {what}: wrong or damaged file"


def check_file(path: str | Path, kind: str) -> str | None:
    """Why ``path`` cannot be a file of ``kind`` (one line, with the fix), or None when it can.

    Reads at most a few bytes: no TensorFlow, h5py or NumPy.

    Args:
        path: the path the user gave.
        kind: a key of :data:`KINDS` (``model``, ``array``, ``npz``, ``tflite``, ``json``).

    Returns:
        None when the path exists and its suffix and first bytes fit ``kind``; else the problem.

    Example:
        >>> check_file("missing.keras", "model")
        "missing.keras does not exist. Fix: pass a saved Keras model (.keras, .h5, or a SavedModel folder)."
    """
    path = Path(path)
    suffixes, wanted = KINDS[kind]
    fix = f"Fix: pass {wanted}."
    if not path.exists():
        return f"{path} does not exist. {fix}"
    if path.is_dir():
        if kind == "model" and (path / "saved_model.pb").is_file():
            return None
        return f"{path} is a folder, not a file. {fix}"
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        return f"{path} has the suffix {path.suffix or '(none)'!r}, not {'/'.join(suffixes)}. {fix}"
    try:
        if path.stat().st_size == 0:
            return f"{path} is empty. {fix}"
        problem = _content_problem(path, suffix)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror}). Fix: check its permissions."
    return None if problem is None else f"{problem}. {fix}"


def check_run_dir(path: str | Path) -> str | None:
    """Why ``path`` is not a recorded run folder (one line, with the fix), or None when it is.

    Args:
        path: the folder given to ``WeightHistory(run_dir=...)``.

    Returns:
        None when ``path`` is a folder holding one of :data:`RUN_FILES`; else the problem.

    Example:
        >>> check_run_dir("runs/none")
        'runs/none does not exist. Fix: pass the run_dir that WeightHistory(run_dir=...) wrote.'
    """
    path = Path(path)
    fix = "Fix: pass the run_dir that WeightHistory(run_dir=...) wrote."
    if not path.exists():
        return f"{path} does not exist. {fix}"
    if not path.is_dir():
        return f"{path} is a file, not a run folder. {fix}"
    if not any((path / name).exists() for name in RUN_FILES):
        return f"{path} holds no recorded history ({' or '.join(RUN_FILES)}). {fix}"
    return None


class CheckedPath(click.Path):
    """A click path parameter that runs :func:`check_file` (or :func:`check_run_dir`) on input.

    Args:
        kind: a key of :data:`KINDS`, or ``"run_dir"``.

    Example:
        >>> @click.argument("model", type=CheckedPath("model"))  # doctest: +SKIP
    """

    def __init__(self, kind: str):
        if kind != "run_dir" and kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; one of {sorted(KINDS)} or 'run_dir'")
        super().__init__(path_type=Path)
        self.kind = kind

    def convert(self, value, param, ctx) -> Path:
        path = super().convert(value, param, ctx)
        problem = check_run_dir(path) if self.kind == "run_dir" else check_file(path, self.kind)
        if problem and not path.exists():
            self.fail(problem, param, ctx)  # a usage error (exit 2), as click.Path(exists=True)
        if problem:  # what the loader would have said after importing TensorFlow (exit 2)
            error = ERRORS.get(self.kind, "InvalidArgumentError")
            raise bad_input(f"{error}: {problem}")
        return path


def output_suffix(suffixes: tuple[str, ...]):
    """A click path parameter for an output file that must end in one of ``suffixes``.

    Args:
        suffixes: the allowed suffixes, e.g. ``(".tflite",)``.

    Example:
        >>> @click.argument("out", type=output_suffix((".tflite",)))  # doctest: +SKIP
    """

    class _Out(click.Path):
        def convert(self, value, param, ctx) -> Path:
            path = super().convert(value, param, ctx)
            if Path(path).suffix.lower() not in suffixes:  # the writer's error (exit 2)
                raise bad_input(
                    f"InvalidArgumentError: {path} does not end in {'/'.join(suffixes)}. Fix: "
                    f"name the output file {Path(path).with_suffix(suffixes[0]).name}."
                )
            return path

    return _Out(dir_okay=False, path_type=Path)


#: The parameter types the commands use.
MODEL = CheckedPath("model")
ARRAY = CheckedPath("array")
NPZ = CheckedPath("npz")
JSON = CheckedPath("json")
TFLITE = CheckedPath("tflite")
RUN_DIR = CheckedPath("run_dir")
