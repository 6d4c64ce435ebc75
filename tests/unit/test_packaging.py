"""What ``pip install keras-legc`` installs (setup.cfg): the wheel built from this checkout requires
only what the library imports, ships no test helpers, owns ``legc`` and registers the research
commands as entry points; unpacked as pip would, it imports and runs ``legc --help`` with
scikit-learn and matplotlib unimportable, and ``legc demo`` then names the extra to install.
"""

import ast
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from importlib.metadata import packages_distributions
from pathlib import Path

import click
import pytest

REPO = Path(__file__).resolve().parents[2]
#: What setup.cfg builds from; the rest of the checkout (tests, docs, tools) stays out of the wheel.
SOURCES = (
    "setup.cfg",
    "pyproject.toml",
    "MANIFEST.in",
    "README.md",
    "keras_legc",
    "legc_research",
    "edge",
)
RESEARCH_ONLY = ("sklearn", "matplotlib")  # imported by legc_research, never by keras_legc
# Makes the listed packages unimportable, as if not installed, for the whole child interpreter.
BLOCKER = f"""
import sys
from importlib.abc import MetaPathFinder

class _NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {RESEARCH_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built by pip from a copy (the build leaves build/ behind)."""
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools here")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        kwargs = (
            {"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}
        )
        copy(REPO / name, src / name, **kwargs)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (found,) = (tmp / "dist").glob("keras_legc-*.whl")
    return found


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    """The wheel unpacked as pip lays it out in site-packages (its .dist-info included)."""
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def metadata(wheel: Path, name: str) -> str:
    with zipfile.ZipFile(wheel) as z:
        (member,) = [n for n in z.namelist() if n.endswith(f".dist-info/{name}")]
        return z.read(member).decode()


def requirements(wheel: Path) -> dict[str, set[str]]:
    """Extra ('' for the plain install) -> the distribution names it requires."""
    out: dict[str, set[str]] = {}
    for req in Parser().parsestr(metadata(wheel, "METADATA")).get_all("Requires-Dist"):
        spec, _, marker = req.partition(";")
        name = spec.split("[")[0].split("=")[0].split("<")[0].split(">")[0].strip().lower()
        extra = marker.split("extra ==")[1].strip().strip("'\"") if "extra ==" in marker else ""
        out.setdefault(extra, set()).add(name.replace("_", "-"))
    return out


def imported_modules(package: str, *, top_level_only: bool) -> set[str]:
    """Top-level names of the third-party modules that ``package``'s code imports."""
    stdlib = set(sys.stdlib_module_names)
    found = set()
    for path in (REPO / package).rglob("*.py"):
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - stdlib - {"keras_legc", "legc_research", "legc_edge", "__future__"}


def distributions(modules: set[str]) -> set[str]:
    installed = packages_distributions()
    return {d.lower().replace("_", "-") for m in modules for d in installed.get(m, [m])}


def test_the_plain_install_requires_what_the_library_imports_and_no_more(wheel):
    reqs = requirements(wheel)
    assert {"scikit-learn", "matplotlib"} <= reqs["research"]
    assert not reqs[""] & {"scikit-learn", "matplotlib"}, reqs[""]
    # every module the library imports at load time is a plain requirement ...
    eager = distributions(imported_modules("keras_legc", top_level_only=True))
    assert eager <= reqs[""] | {"keras"}, eager - reqs[""]  # keras: tensorflow's own dependency
    # ... and scikit-learn and matplotlib are the research harness's alone (matplotlib: also
    # keras_legc.diagnostics, which imports it on use and names its own extra)
    assert "sklearn" in imported_modules("legc_research", top_level_only=False)
    assert "sklearn" not in imported_modules("keras_legc", top_level_only=False)


def test_the_wheel_ships_no_test_helpers_but_the_public_references(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert "keras_legc/testing/reference.py" in names  # public: README's numerical references
    assert "keras_legc/testing/catalogue.py" not in names
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n]
    assert "legc_research/data/legcnet/binary_cancer.csv" in names  # the research harness's data


def test_the_library_owns_legc_and_the_research_commands_are_entry_points(wheel):
    text = metadata(wheel, "entry_points.txt")
    groups: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if line.startswith("["):
            group = groups.setdefault(line.strip("[]"), {})
        elif "=" in line:
            key, value = (s.strip() for s in line.split("=", 1))
            group[key] = value
    assert groups["console_scripts"]["legc"] == "keras_legc.cli:main"
    commands = groups["keras_legc.cli_commands"]
    assert set(commands) == {"demo", "reproduce"}
    for name, target in commands.items():
        module, _, attr = target.partition(":")
        command = getattr(__import__(module, fromlist=[attr]), attr)
        assert isinstance(command, click.Command) and command.name == name


def run_unpacked(site: Path, tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` on the unpacked wheel with scikit-learn and matplotlib not importable, from a
    folder outside the checkout (nothing of it on the path)."""
    block = tmp_path / "block"
    block.mkdir(exist_ok=True)
    (block / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(block), str(site)])}
    env.pop("LEGC_DATA_DIR", None)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=300)  # fmt: skip


HELP_PROBE = f"""
import sys
for name in {RESEARCH_ONLY!r}:  # the blocker works
    try:
        __import__(name)
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit(name + " imported")
import keras_legc as kl
assert kl.__file__.startswith(sys.argv[1]), kl.__file__
assert issubclass(kl.MissingFileError, kl.LegcError)
from keras_legc.cli import main
try:
    main(["--help"], prog_name="legc")
except SystemExit as exc:
    assert exc.code == 0, exc.code
print("LOADED", sorted(m for m in {RESEARCH_ONLY!r} if m in sys.modules))
"""


def test_the_unpacked_wheel_imports_and_runs_legc_help_without_the_research_extra(site, tmp_path):
    proc = run_unpacked(site, tmp_path, HELP_PROBE, str(site))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[-1] == "LOADED []"
    commands = proc.stdout.split("Commands:")[1].splitlines()[:-1]
    listed = {line.split()[0] for line in commands if line.strip()}
    assert {"demo", "reproduce", "score", "export", "bench"} <= listed, proc.stdout
    assert "warning" not in proc.stderr


def test_legc_demo_without_the_research_extra_names_it(site, tmp_path):
    demo = 'from keras_legc.cli import main\nmain(["demo", "--quick", "--out", "out"])'
    proc = run_unpacked(site, tmp_path, demo)
    assert proc.returncode != 0
    assert "MissingDependencyError" in proc.stderr, proc.stderr[-3000:]
    assert "scikit-learn is not installed" in proc.stderr
    assert "pip install 'keras-legc[research]'" in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before any work
