"""The quiet CLI drops native log lines written to fd 2 after start-up, and keeps everything else."""

import subprocess
import sys
import textwrap

CHILD = """
import os, sys, warnings
from keras_legc import _quiet
if sys.argv[1] == "quiet":
    _quiet._QUIET = True  # what quiet_tensorflow_startup sets for the CLI without --verbose
with _quiet.native_noise_filtered():
    os.write(2, b"E0000 00:00:1795969815.014755   11842 node_def_util.cc:682] NodeDef mentions x\\n")
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
    warnings.warn("a real warning")
    os.write(2, b"a native error that matters\\n")
print("after", file=sys.stderr)
"""


def run(mode: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD), mode], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stderr


def test_quiet_cli_drops_native_log_lines_and_keeps_the_rest_in_order():
    err = run("quiet")
    assert "NodeDef mentions" not in err and "INFO: Created" not in err
    assert (
        err.index("a real warning") < err.index("a native error that matters") < err.index("after")
    )


def test_library_use_keeps_every_line():
    err = run("library")
    for line in ("NodeDef mentions", "INFO: Created", "a real warning", "a native error"):
        assert line in err
