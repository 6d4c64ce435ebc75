"""Hide TensorFlow's C++ start-up log lines in the ``legc`` command line.

TensorFlow 2.21 writes 6-7 lines to file descriptor 2 while it is imported and while it first looks
for devices (``oneDNN custom operations are on``, ``Could not find cuda drivers``, and an alarming
``E0000 ... failed call to cuInit: INTERNAL: CUDA error`` on every machine without a GPU). They come
from native code before absl logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` does not stop them;
only redirecting fd 2 itself does. The CLI does that for exactly those two moments and restores fd 2
afterwards, so every later error or warning still prints.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator


def quiet_tensorflow_startup() -> None:
    """Hide TensorFlow's native start-up lines whenever this process first imports TensorFlow.

    Installs a one-shot import hook: the import of ``tensorflow`` (and TensorFlow's first device
    scan, where the ``cuInit`` error comes from) runs with fd 2 pointed at a temp file, which is
    thrown away when the import succeeds and replayed to stderr when it fails. TensorFlow is not
    imported by this call, so commands that never need it (``legc bench``, ``--help``) stay fast
    and TensorFlow-free. Does nothing if TensorFlow is already imported or the hook is installed.

    Example:
        >>> quiet_tensorflow_startup()  # then `import tensorflow` prints no C++ lines
    """
    global _QUIET
    _QUIET = True
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())


# Lines native code writes straight to fd 2 after start-up: TensorFlow's C++ log lines
# ("E0000 00:00:17... 11179 node_def_util.cc:682] ...") and LiteRT's "INFO: Created TensorFlow
# Lite XNNPACK delegate for CPU." on every interpreter; the TFLite converter's settings line.
_NATIVE_NOISE = re.compile(
    rb"^([WIE]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.]+:\d+\] |INFO: Created TensorFlow Lite "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    rb"|fully_quantize: \d+, inference_type: )"  # the int8 converter's settings line
)
_QUIET = False  # set by quiet_tensorflow_startup (the CLI without --verbose)


@contextlib.contextmanager
def native_noise_filtered() -> Iterator[None]:
    """In the quiet CLI, drop native log lines written to fd 2 inside the block; keep the rest.

    Everything else written to stderr in the block (Python warnings, errors) is replayed when the
    block ends, in order. Outside the quiet CLI (library use, ``legc --verbose``) this does
    nothing.

    Example:
        >>> with native_noise_filtered():
        ...     interpreter = Interpreter(model_content=flatbuffer)  # no "INFO: Created ..." line
    """
    if not _QUIET:
        yield
        return
    with _fd2_captured(keep=lambda line: not _NATIVE_NOISE.match(line)):
        yield


@contextlib.contextmanager
def _fd2_captured(keep: Callable[[bytes], bool] | None = None) -> Iterator[None]:
    """Point fd 2 at a temp file; on exit restore it and replay the captured lines ``keep``
    accepts (with no ``keep``: all of them if an error escapes, none otherwise)."""
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if keep is not None or failed:
                sink.seek(0)
                lines = sink.read().splitlines(True)
                kept = [ln for ln in lines if keep is None or keep(ln)]
                if kept:
                    os.write(2, b"".join(kept))


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` with the other finders and wraps its loader in :class:`_QuietLoader`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from recursing
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader with fd 2 captured, then hands the module its real loader back."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # TensorFlow must see its own loader (resources, reloads), not this wrapper.
        module.__loader__ = module.__spec__.loader = self.loader
        with _fd2_captured():
            self.loader.exec_module(module)
            module.config.list_physical_devices()  # the cuInit line comes from this first scan
