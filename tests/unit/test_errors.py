"""Every error class keras_legc raises is public: exported from ``keras_legc`` (keras_legc/errors.py),
found by reading the library's source for its ``raise`` statements."""

import ast
import builtins
import inspect
from pathlib import Path

import keras_legc as kl
from keras_legc import errors

LIBRARY = Path(kl.__file__).parent
# How modules of the library name the errors module when they raise through it (``E.HistoryError``).
ERRORS_ALIASES = {"E", "errors"}


def raised_names() -> dict[str, list[str]]:
    """Class name -> the ``file:line`` of each ``raise Name(...)`` / ``raise E.Name(...)`` in keras_legc."""
    found: dict[str, list[str]] = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Raise) or node.exc is None:
                continue
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name):
                name = target.id
            elif (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id in ERRORS_ALIASES
            ):
                name = target.attr
            else:
                continue  # click.ClickException and the like: other packages' classes
            if name[:1].isupper():  # a class, not a caught exception re-raised (`raise exc`)
                found.setdefault(name, []).append(
                    f"{path.relative_to(LIBRARY.parent)}:{node.lineno}"
                )
    return found


def test_every_class_the_library_raises_is_builtin_or_exported():
    found = raised_names()
    assert "MissingFileError" in found and "InvalidArgumentError" in found  # the walk sees raises
    own = {
        name: sites
        for name, sites in found.items()
        if not isinstance(getattr(builtins, name, None), type)
    }
    missing = {name: sites for name, sites in own.items() if name not in kl.__all__}
    assert not missing, f"raised but not exported from keras_legc: {missing}"
    for name in own:
        assert issubclass(getattr(kl, name), kl.LegcError), name


def test_every_error_and_warning_class_of_the_errors_module_is_exported():
    classes = {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if cls.__module__ == errors.__name__ and issubclass(cls, Exception | Warning)
    }
    assert {"LegcError", "MissingFileError", "LegcWarning"} <= set(classes)
    for name, cls in classes.items():
        assert name in errors.__all__, name
        assert name in kl.__all__, name
        assert getattr(kl, name) is cls, name
