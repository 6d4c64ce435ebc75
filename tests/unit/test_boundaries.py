"""Module boundaries that must hold: the numerical core and the masking layer never import
TensorFlow; the library never imports the research package or the tests, and only the ``legc bench``
command reaches the device runner (legc_edge), which itself never imports the library."""

import ast
import subprocess
import sys
from pathlib import Path

import keras_legc

LIBRARY = Path(keras_legc.__file__).parent


def test_core_and_masking_import_without_tensorflow():
    code = (
        "import sys, keras_legc.core.scoring, keras_legc.core.history, keras_legc.core.lyapunov, "
        "keras_legc.core.granger, keras_legc.masking, keras_legc.masking.policy\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"TensorFlow/Keras imported by the numpy core: {out.stdout}"


def test_the_library_never_imports_the_research_package():
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            forbidden = {"legc_research", "tests"}
            if path.relative_to(LIBRARY).parts[0] != "cli":
                forbidden.add("legc_edge")  # `legc bench` is the edge runner's own command
            offenders += [f"{path.relative_to(LIBRARY)}: {n}" for n in names
                          if n.split(".")[0] in forbidden]  # fmt: skip
    assert not offenders, offenders


def test_the_edge_runner_never_imports_the_library():
    edge = LIBRARY.parent / "edge" / "bench.py"
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(ast.parse(edge.read_text()))
        if isinstance(n, (ast.Import, ast.ImportFrom))
        and (not isinstance(n, ast.ImportFrom) or n.module)
        for a in (n.names if isinstance(n, ast.Import) else [n])
    }
    assert not imported & {"keras_legc", "legc_research", "tensorflow", "tf_keras"}, imported
