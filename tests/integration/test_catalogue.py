"""Every bad input of tests/catalogue.py raises its error class, naming the problem and the fix."""

import re

import pytest

from tests.catalogue import CASES, SubprocessError


def run_case(case, tmp_path):
    """``(error class name, message)`` that the case raised; fails if it raised nothing."""
    try:
        case.call(tmp_path)
    except SubprocessError as exc:
        return exc.name, str(exc)
    except Exception as exc:  # noqa: BLE001 - the type is what is being checked
        return type(exc).__name__, str(exc)
    pytest.fail(f"{case.bad_input}: no error raised")


def test_the_catalogue_has_at_least_80_cases():
    assert len(CASES) >= 80
    assert len({c.bad_input for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.bad_input for c in CASES])
def test_bad_input_gives_a_clear_error(case, tmp_path):
    name, message = run_case(case, tmp_path)
    expected = case.error if isinstance(case.error, str) else case.error.__name__
    assert name == expected, f"{case.bad_input}: got {name}: {message}"
    assert re.search(case.names, message, re.S), f"message does not name the problem: {message}"
    assert "Fix" in message, f"message does not name the fix: {message}"
