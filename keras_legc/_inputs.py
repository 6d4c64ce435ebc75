"""The one loader of model inputs from ``.npy`` / ``.npz`` files (export, diagnostics, the CLI)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_legc.errors import InvalidArgumentError

# Array names tried, in order, in a .npz when the caller names none.
DEFAULT_KEYS = ("x", "inputs", "x_train")


def load_array(
    path: str | os.PathLike,
    what: str = "inputs",
    *,
    key: str | None = None,
    with_names: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[str] | None]:
    """An array from a ``.npy`` file, or one array of a ``.npz``.

    Args:
        path: the file.
        what: what the array is, for error messages (e.g. ``"reference inputs"``, ``"--x"``).
        key: the array's name inside a ``.npz``; None picks ``x``, ``inputs`` or ``x_train``,
            else the only array.
        with_names: also return the ``.npz``'s ``feature_names`` (None when absent or a .npy).

    Returns:
        The array, or ``(array, feature names or None)`` with ``with_names``.

    Raises:
        InvalidArgumentError: missing or unreadable file, or no such array in the ``.npz``.

    Example:
        >>> x = load_array("calibration.npy")
        >>> x, names = load_array("data/cancer.npz", key="x_test", with_names=True)
    """
    path = Path(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return (loaded, None) if with_names else loaded
        with loaded:
            x = loaded[_pick(path, loaded.files, key)]
            names = None
            if with_names and "feature_names" in loaded.files:
                names = [str(n) for n in loaded["feature_names"]]
            return (x, names) if with_names else x
    except FileNotFoundError:
        raise InvalidArgumentError(
            f"{what} file {path} does not exist. Fix: pass a .npy of model inputs."
        ) from None
    except InvalidArgumentError:
        raise
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, pickle errors...
        raise InvalidArgumentError(
            f"{path} is not a readable .npy/.npz of {what} ({type(exc).__name__}: {exc}). Fix: "
            "save the inputs with numpy.save or numpy.savez (a float array of shape "
            "(n, *input_shape))."
        ) from exc


def _pick(path: Path, files: list[str], key: str | None) -> str:
    """The array of a .npz to read: ``key``, else the first of DEFAULT_KEYS, else the only one."""
    if key is not None:
        if key not in files:
            raise InvalidArgumentError(
                f"{path} has no array {key!r} (it has {sorted(files)}). Fix: pass --key with the "
                "name of the model inputs."
            )
        return key
    names = [n for n in DEFAULT_KEYS if n in files] or files
    if len(names) != 1 and names == files:
        raise InvalidArgumentError(
            f"{path} holds several arrays {files} and none is named x or inputs. Fix: save the "
            "inputs alone with np.save, or as np.savez(path, x=inputs)."
        )
    return names[0]
