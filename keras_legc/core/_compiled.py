"""Lazy import of the numba-compiled kernels, with one warning and a numpy fallback without numba.

The kernels (``_lyapunov_kernel``, ``_granger_kernel``) are imported on first use, not on
``import keras_legc``: importing numba takes about half a second, and compiling (or loading from
numba's on-disk cache) happens at that first import.
"""

from __future__ import annotations

import importlib
import sys
import threading
import warnings
from types import ModuleType

#: whether the kernels are compiled with numba's on-disk cache; switched off for the process when
#: numba cannot write it (a full disk, a read-only install), so compiling still succeeds.
CACHE = True
_loaded: dict[str, ModuleType | None] = {}
_lock = threading.Lock()
_warned = False


def compiled(name: str) -> ModuleType | None:
    """The compiled kernel module ``keras_legc.core.<name>``, or None without numba.

    Args:
        name: the module's name inside ``keras_legc.core``, e.g. ``"_lyapunov_kernel"``.

    Returns:
        The module, imported (and compiled, or loaded from numba's cache) on the first call; None
        when numba cannot be imported, after one ``RuntimeWarning`` per process.

    Example:
        >>> kernel = compiled("_lyapunov_kernel")  # doctest: +SKIP
    """
    global _warned, CACHE
    if name in _loaded:
        return _loaded[name]
    with _lock:  # two threads' first calls must not compile twice
        if name not in _loaded:
            module = f"keras_legc.core.{name}"
            try:
                _loaded[name] = importlib.import_module(module)
            except ImportError as exc:
                _loaded[name] = None
                if not _warned:
                    _warned = True
                    warnings.warn(
                        f"numba could not be imported ({exc}); Lyapunov exponents and Granger "
                        "tests fall back to numpy: the same values, several times slower. Fix: "
                        "pip install 'numba==0.68.1'.",
                        RuntimeWarning,
                        stacklevel=3,
                    )
            except OSError as exc:  # numba could not save its cache: compile in memory instead
                CACHE = False
                sys.modules.pop(module, None)
                warnings.warn(
                    f"numba could not write the compiled kernels' cache ({exc}); they are "
                    "compiled in memory for this process instead (a few seconds, once per "
                    "process). Fix: free disk space, or set NUMBA_CACHE_DIR to a writable folder.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                _loaded[name] = importlib.import_module(module)
    return _loaded[name]
