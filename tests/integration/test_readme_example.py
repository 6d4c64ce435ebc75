"""The README's "In Python" example, copied literally, runs for seeds 0-7: seeds 0-3 on the
TensorFlow backend and 4-7 on JAX (issue 30: on some seeds the validation error reached 0 and the
example raised instead of giving its 80% mask; half the seeds per backend keeps CI under 20 min).
Each backend runs in a fresh process (a Keras 3 backend is fixed per process); this file is the
script: ``python test_readme_example.py 0,1,2,3``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
README = HERE.parents[2] / "README.md"
SEEDS = {"tensorflow": [0, 1, 2, 3], "jax": [4, 5, 6, 7]}


def example() -> str:
    """The first python block under the README's "## In Python"."""
    text = README.read_text()
    section = text[text.index("## In Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run_seeds(seeds) -> list[dict]:
    import keras

    code = compile(example(), "README.md", "exec")
    results = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        scope: dict = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exec(code, scope)  # noqa: S102 - the README's own code
        for name in ("pruned.keras", "mid-fine-tuning.keras"):  # what the example writes
            os.remove(name)
        shutil.rmtree("runs")
        mask = scope["mask"]
        results.append({
            "seed": seed,
            "sparsity": mask.sparsity,
            "small_zero": 1.0 - sum(int((la.kernel.numpy() != 0).sum()) for la in
                                    __import__("keras_legc").dense_layers(scope["small"]))
            / mask.n_weights,
            "warnings": [str(w.message)[:200] for w in caught if "Legc" in w.category.__name__],
        })  # fmt: skip
    return results


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_readme_example_runs_for_seeds_0_to_7(backend, tmp_path):
    seeds = SEEDS[backend]
    pytest.importorskip(backend)
    pytest.importorskip("sklearn")
    env = {**os.environ, "KERAS_BACKEND": backend}
    env.pop("TF_USE_LEGACY_KERAS", None)
    done = subprocess.run([sys.executable, str(HERE), ",".join(map(str, seeds))], env=env,
                          cwd=tmp_path,
                          capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["seed"] for r in results] == seeds
    for r in results:
        # the 80% mask, not the alpha mask of the paper's line (a comment in the README)
        assert r["sparsity"] == pytest.approx(0.8, abs=0.01), r
        assert r["small_zero"] >= r["sparsity"] - 1e-9, r  # masked weights are exactly 0


if __name__ == "__main__":
    print(json.dumps(run_seeds([int(s) for s in sys.argv[1].split(",")])))
