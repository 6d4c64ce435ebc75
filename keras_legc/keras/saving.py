"""Saving and loading Keras models of both flavours: Keras 3 (``import keras``) and Keras 2 (tf_keras).

A ``.keras`` file is a zip whose ``metadata.json`` names the Keras version that wrote it, so its
flavour is read without importing TensorFlow or Keras (:func:`keras_file_flavour`). Keras 3 files
load with ``keras.saving.load_model`` in safe mode, Keras 2 files (and ``.h5`` / SavedModel
directories) with tf_keras inside TF-MOT's ``prune_scope``. Writes are atomic and never replace a
file unless asked.
"""

from __future__ import annotations

import importlib
import json
import os
import zipfile
from pathlib import Path
from types import ModuleType

from keras_legc.errors import InvalidArgumentError, MissingDependencyError, ModelStructureError
from keras_legc.keras.flavour import keras, model_flavour

FLAVOUR_NAMES = {"keras2": "Keras 2 (tf_keras)", "keras3": "Keras 3"}
# Modules whose import registers keras_legc's Keras 3 serialisable objects (the mask constraint).
# Imported before a Keras 3 file is loaded, so a pruned model loads without custom_objects.
_KERAS3_REGISTRIES = ("keras_legc.keras.constraints", "keras_legc.keras.keras3")

_UNSAFE = (
    "{path} holds {what}: loading or running it executes Python code stored in the file, so it "
    "is refused by default. Fix: if you trust the file as you would a script, load it with "
    "load_model(path, unsafe=True) (CLI: --unsafe-load); otherwise rebuild the layer without "
    "Lambda."
)


def keras3() -> ModuleType:
    """The Keras 3 module (``keras``), imported on first use.

    Raises:
        MissingDependencyError: Keras 3 is not installed.

    Example:
        >>> keras3().__version__.startswith("3.")
        True
    """
    try:
        import keras as k
    except ImportError as exc:  # pragma: no cover - TensorFlow >= 2.16 depends on it
        raise MissingDependencyError(
            "Keras 3 is not installed. Fix: pip install 'keras>=3.13'."
        ) from exc
    return k


def keras3_backend() -> str:
    """The Keras 3 backend of this process (``keras.backend.backend()``; fixed per process).

    Example:
        >>> keras3_backend()  # doctest: +SKIP
        'tensorflow'
    """
    return keras3().backend.backend()


def keras_file_flavour(path: str | os.PathLike) -> str:
    """``"keras3"`` or ``"keras2"``: which Keras wrote the saved model at ``path``.

    Read from the file alone (no TensorFlow or Keras import): a ``.keras`` zip's ``metadata.json``
    names the Keras version (its ``config.json`` decides when the metadata is missing); a ``.h5``
    file's root attribute ``keras_version`` does the same (Keras 3 writes 3.x: ``model.save("x.h5")``
    and ``ModelCheckpoint("best.h5")`` since TF 2.16; without it, Keras 2); SavedModel directories
    are Keras 2.

    Args:
        path: a ``.keras`` file, a ``.h5``/``.hdf5`` file or a SavedModel directory.

    Raises:
        InvalidArgumentError: no file at ``path``.
        ModelStructureError: the file is not a Keras model file of either kind.

    Example:
        >>> keras_file_flavour("pruned.keras")  # doctest: +SKIP
        'keras3'
    """
    path = Path(path)
    if not path.exists():
        raise InvalidArgumentError(f"no saved model at {path}. Fix: check the path.")
    if path.is_dir():
        return "keras2"
    if path.suffix.lower() in {".h5", ".hdf5"}:
        return "keras3" if _h5_attr(path, "keras_version").startswith("3.") else "keras2"
    not_keras = (
        f"{path} is not a Keras model file ({{why}}). Fix: pass a model saved with "
        "model.save('model.keras') (Keras 3 or tf_keras), a .h5 file or a SavedModel folder."
    )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            metadata = _zip_json(archive, "metadata.json", names)
            config = _zip_json(archive, "config.json", names)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelStructureError(not_keras.format(why="not a .keras zip archive")) from exc
    except ValueError as exc:
        raise ModelStructureError(not_keras.format(why=f"unreadable JSON inside: {exc}")) from exc
    version = str((metadata or {}).get("keras_version", ""))
    if version.split(".")[0] in {"2", "3"}:
        return "keras2" if version.startswith("2") else "keras3"
    if isinstance(config, dict) and "class_name" in config:
        # No version recorded: Keras 3 configs carry "build_config"/"batch_shape", Keras 2 ones
        # "batch_input_shape".
        return "keras2" if '"batch_input_shape"' in json.dumps(config) else "keras3"
    raise ModelStructureError(
        not_keras.format(why="a zip without the metadata.json/config.json Keras writes")
    )


def _zip_json(archive: zipfile.ZipFile, name: str, names: set[str]):
    return json.loads(archive.read(name)) if name in names else None


def save_model(model, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Save a Keras 3 or tf_keras ``model`` as ``.keras``, atomically.

    Keras writes to a temp file beside ``path`` that is renamed once complete, so a crash never
    leaves a half-written model; an existing file is never replaced unless ``overwrite``.

    Args:
        model: a Keras 3 ``keras.Model`` (any backend) or a tf_keras model.
        path: the ``.keras`` path.
        overwrite: replace an existing file.

    Returns:
        ``path``.

    Raises:
        InvalidArgumentError: ``path`` does not end in ``.keras``.
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        ModelStructureError: ``model`` is not a Keras model.

    Example:
        >>> save_model(model, "pruned.keras")  # doctest: +SKIP
        PosixPath('pruned.keras')
    """
    from keras_legc._io import check_writable, create_temp_file, remove_stale_temp_files

    path = Path(path)
    if path.suffix != ".keras":
        raise InvalidArgumentError(
            f"save_model writes the Keras v3 format and needs a .keras path, got {path}. Fix: "
            "name it e.g. pruned.keras."
        )
    model_flavour(model)  # a clear error for anything but a Keras model
    check_writable(path, overwrite)
    remove_stale_temp_files(path)
    fd, tmp = create_temp_file(path, ".tmp.keras")  # umask-respecting mode, kept by Keras
    os.close(fd)
    try:
        model.save(tmp, overwrite=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_model(path: str | os.PathLike, *, compile: bool = True, unsafe: bool = False):
    """Load a Keras 3 or tf_keras model (pruned or not) from ``.keras``, ``.h5`` or SavedModel.

    The flavour is read from the file (:func:`keras_file_flavour`); the model comes back in the
    flavour that wrote it. A model file can carry Python code (a ``Lambda`` layer's bytecode) that
    runs when it is loaded or called, so by default this refuses it: ``.keras`` files load in
    Keras' safe mode, and a ``.h5`` file whose model config holds a ``Lambda`` layer is refused
    before Keras reads it (Keras itself has no safe mode for ``.h5``).

    Args:
        path: the saved model.
        compile: restore the optimizer and loss too.
        unsafe: allow Lambda layers, i.e. run the Python code stored in the file. Only for files
            you trust as you would trust a script (CLI: ``--unsafe-load``).

    Returns:
        The Keras model (``keras.Model`` for Keras 3 files, ``tf_keras.Model`` for Keras 2).

    Raises:
        InvalidArgumentError: no file at ``path``.
        ModelStructureError: not a Keras model file, unreadable, or code in the file and
            ``unsafe`` is False.

    Example:
        >>> model = load_model("pruned.keras", compile=False)  # doctest: +SKIP
    """
    path = Path(path)
    flavour = keras_file_flavour(path)
    if not unsafe and path.suffix.lower() in {".h5", ".hdf5"} and _h5_has_lambda(path):
        raise ModelStructureError(
            _UNSAFE.format(path=path, what="a Lambda layer (in its .h5 config)")
        )
    try:
        if flavour == "keras3":
            return _load_keras3(path, compile, unsafe)
        return _load_keras2(path, compile, unsafe)
    except Exception as exc:
        if "arbitrary code execution" in str(exc):
            raise ModelStructureError(
                _UNSAFE.format(path=path, what="a Lambda layer with Python code")
            ) from exc
        if isinstance(exc, (ModelStructureError, MissingDependencyError)):
            raise
        name = FLAVOUR_NAMES[flavour]
        raise ModelStructureError(
            f"could not load {path} as a {name} model: {exc}. Fix: save it with "
            f"model.save('model.keras') from {'keras' if flavour == 'keras3' else 'tf_keras'}, "
            "in a process where the same custom layers are importable."
        ) from exc


def _load_keras3(path: Path, compile: bool, unsafe: bool):
    """``keras.saving.load_model`` after registering keras_legc's Keras 3 objects."""
    for module in _KERAS3_REGISTRIES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but something it needs does not
                raise
    return keras3().saving.load_model(path, compile=compile, safe_mode=not unsafe)


def _load_keras2(path: Path, compile: bool, unsafe: bool):
    """tf_keras' loader in TF-MOT's prune scope (pruning wrappers and their schedule)."""
    from keras_legc.keras.pruning import FixedMaskSchedule, _sparsity

    with _sparsity.prune_scope():
        return keras().models.load_model(
            path,
            compile=compile,
            custom_objects={"FixedMaskSchedule": FixedMaskSchedule},
            safe_mode=not unsafe,
        )


def _h5_attr(path: Path, name: str) -> str:
    """A root attribute of a ``.h5`` file as text ("" when absent or not HDF5: Keras' own error
    then says so), read without Keras."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            value = f.attrs.get(name)
    except OSError:
        return ""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _h5_has_lambda(path: Path) -> bool:
    """Whether the model config of a ``.h5`` file holds a Lambda layer (read without Keras)."""
    config = _h5_attr(path, "model_config")
    if not config:
        return False
    try:
        config = json.loads(config)
    except ValueError:
        return False  # a corrupt config: Keras' own error says so

    def walk(node) -> bool:
        if isinstance(node, dict):
            return node.get("class_name") == "Lambda" or any(walk(v) for v in node.values())
        return isinstance(node, list) and any(walk(v) for v in node)

    return walk(config)


def describe_flavour(model) -> str:
    """A short name for the model's flavour, e.g. ``"Keras 3 (jax backend)"``, for CLI output.

    Example:
        >>> describe_flavour(model)  # doctest: +SKIP
        'Keras 3 (tensorflow backend)'
    """
    flavour = model_flavour(model)
    if flavour == "keras3":
        return f"Keras 3 ({keras3_backend()} backend)"
    return FLAVOUR_NAMES[flavour]
