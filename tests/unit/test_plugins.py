"""Commands other packages add to ``legc`` through the ``keras_legc.cli_commands`` entry points
(keras_legc/cli/_plugins.py): found, loaded only when needed, and a broken one never breaks ``legc``.

Each test installs made-up distributions the way pip lays them out (a ``*.dist-info`` folder with
``entry_points.txt`` beside the modules) in a temporary folder on PYTHONPATH, so the real
``importlib.metadata`` finds them, and runs ``python -m keras_legc.cli`` in a fresh interpreter.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

GOOD = '''
import click

@click.command()
@click.option("--name", default="world")
def hello(name):
    """Say hello (a plugin command)."""
    click.echo(f"hello {name}")

NOT_A_COMMAND = 42
'''
BROKEN = 'raise ImportError("needs somelib, which is not installed")\n'


def install(site: Path, dist: str, modules: dict[str, str], commands: dict[str, str]) -> None:
    for name, source in modules.items():
        (site / f"{name}.py").write_text(source)
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in commands.items())
    (info / "entry_points.txt").write_text(f"[keras_legc.cli_commands]\n{lines}")


def legc(site: Path, *args: str, loaded: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """``legc ARGS`` in a fresh interpreter; prints, last, which of ``loaded`` modules it imported."""
    code = textwrap.dedent(f"""
        import sys
        from keras_legc.cli import main
        try:
            main({list(args)!r}, prog_name="legc")
        finally:
            print("IMPORTED", sorted(m for m in {list(loaded)!r} if m in sys.modules))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=site, timeout=120)  # fmt: skip


@pytest.fixture
def site(tmp_path):
    install(tmp_path, "goodplug", {"goodplug": GOOD},
            {"hello": "goodplug:hello", "score": "goodplug:hello"})  # fmt: skip
    install(tmp_path, "badplug", {"badplug": BROKEN, "oddplug": "VALUE = 1\n"},
            {"broken": "badplug:cmd", "odd": "oddplug:VALUE"})  # fmt: skip
    return tmp_path


def test_help_lists_plugins_and_warns_once_per_broken_one(site):
    proc = legc(site, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "hello" in proc.stdout and "Say hello (a plugin command)." in proc.stdout
    assert "export" in proc.stdout and "bench" in proc.stdout  # the library's own are all there
    listed = [line.split()[0] for line in proc.stdout.split("Commands:")[1].splitlines() if line]
    assert "broken" not in listed and "odd" not in listed
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning: legc:")]
    assert len(warnings) == 2, proc.stderr
    broken = next(w for w in warnings if "'broken'" in w)
    assert "badplug:cmd (from badplug 1.0)" in broken
    assert "ImportError: needs somelib" in broken and "Fix: reinstall" in broken
    assert "not a click command" in next(w for w in warnings if "'odd'" in w)


def test_a_plugin_runs_and_is_imported_only_when_needed(site):
    proc = legc(site, "hello", "--name", "plugins", loaded=("goodplug", "badplug"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["hello plugins", "IMPORTED ['goodplug']"]
    assert proc.stderr == ""  # the broken plugin is never imported, so it says nothing
    proc = legc(site, "export", "--help", loaded=("goodplug", "badplug"))
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "IMPORTED []", proc.stderr


def test_the_library_command_wins_over_a_plugin_of_its_name(site):
    proc = legc(site, "score", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Score a recorded RUN_DIR" in proc.stdout and "hello" not in proc.stdout.lower()


def test_running_a_broken_plugin_says_why_it_is_missing(site):
    proc = legc(site, "broken")
    assert proc.returncode == 2
    assert "command 'broken' left out" in proc.stderr and "No such command 'broken'" in proc.stderr
