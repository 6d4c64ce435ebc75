"""Same seed, same bits: three independent processes record, score and mask identically.

Each run is a fresh Python process (fresh TensorFlow), seeded with
``tf.keras.utils.set_random_seed`` and ``tf.config.experimental.enable_op_determinism()``. It
prints SHA-256 digests of the LE series, the target series, the p-values (scored with two chunk
sizes and thread counts) and three masks; all must agree across the runs.
"""

import json
import os
import subprocess
import sys
import textwrap

RUN = textwrap.dedent(
    """
    import hashlib, json, warnings
    import numpy as np
    import keras_legc as kl
    from keras_legc.keras.flavour import keras, tf

    def digest(*arrays):
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    k = keras()
    tf().config.experimental.enable_op_determinism()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(480, 10)).astype("float32")
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).astype("int64")
    k.utils.set_random_seed(7)
    model = k.Sequential([k.layers.Input((10,)), k.layers.Dense(12, activation="relu"),
                          k.layers.Dense(8, activation="tanh"), k.layers.Dense(2)])
    model.compile(k.optimizers.SGD(0.05), k.losses.SparseCategoricalCrossentropy(from_logits=True))
    rec = kl.WeightHistory(every=1, window=10, validation_data=(x[400:], y[400:]))
    model.fit(x[:400], y[:400], batch_size=8, epochs=6, callbacks=[rec], verbose=0, shuffle=True)
    h = rec.history
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = kl.score(h, max_lag=4, chunk_size=4096, threads=1)
        b = kl.score(h, max_lag=4, chunk_size=7, threads=2)
    masks = [a.mask(sparsity=0.6), a.mask(sparsity=0.6, per_layer=True),
             kl.random_mask(model, 0.6, seed=3)]
    print(json.dumps({
        "le": digest(h.le), "target": digest(h.target),
        "pvalues": digest(a.pvalues, a.degenerate), "pvalues_chunked": digest(b.pvalues, b.degenerate),
        "masks": [digest(*[m[n] for n in m.layers]) for m in masks],
        "weights": digest(*model.get_weights()),
    }))
    """
)


def test_three_runs_are_bit_identical():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs = []
    for _ in range(3):
        out = subprocess.run(
            [sys.executable, "-c", RUN], capture_output=True, text=True, env=env, timeout=300
        )
        assert out.returncode == 0, out.stderr[-2000:]
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    assert runs[0] == runs[1] == runs[2]
    assert runs[0]["pvalues"] == runs[0]["pvalues_chunked"]  # chunks/threads change no bit
