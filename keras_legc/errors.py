"""Exception classes that keras_legc raises for bad input.

Every error names the problem and the fix. All derive from :class:`LegcError`, and each also derives
from the matching builtin (``ValueError``, ``FileExistsError``, ``ImportError``) so generic handlers
keep working.
"""

from __future__ import annotations


class LegcError(Exception):
    """Base class of every error raised by keras_legc on purpose."""


class InvalidArgumentError(LegcError, ValueError):
    """An argument is out of range or of the wrong kind (e.g. sparsity outside [0, 1))."""


class ModelStructureError(LegcError, ValueError):
    """The model cannot be handled (no Dense layer, unsupported layer, still wrapped, ...)."""


class MaskMismatchError(LegcError, ValueError):
    """A mask does not fit the model it is applied to (layer names, shapes or values)."""


class HistoryError(LegcError, ValueError):
    """A recorded history cannot be scored (too short, non-finite, constant target, corrupt)."""


class NonFiniteError(HistoryError):
    """NaN or inf in recorded weights or in the target series."""


class OutputExistsError(LegcError, FileExistsError):
    """An output path exists and overwriting was not requested."""


class MissingFileError(LegcError, FileNotFoundError):
    """An input file or folder does not exist; the message names it and what to pass instead."""


class MissingDependencyError(LegcError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ExportError(LegcError, RuntimeError):
    """Conversion to TFLite failed or its output does not match the Keras model."""


class CollapsedModelError(ExportError):
    """The model's outputs do not depend on its inputs (e.g. a mask emptied a layer)."""


__all__ = [
    "CollapsedModelError",
    "LegcError",
    "InvalidArgumentError",
    "ModelStructureError",
    "MaskMismatchError",
    "HistoryError",
    "NonFiniteError",
    "OutputExistsError",
    "MissingFileError",
    "MissingDependencyError",
    "ExportError",
]


class LegcWarning(UserWarning):
    """Something was adjusted automatically (e.g. a lag capped); the message says what and why."""


__all__.append("LegcWarning")
