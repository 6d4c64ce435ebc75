"""Issue 27's study: does chaos-causality at the unit level carry information beyond magnitude?

A cell is (net, seed, criterion, MAC reduction). Per (net, seed) the dense net is trained once
with two unit-level recorders in the same ``fit`` (every step, LE window 50):

- ``kl.UnitHistory`` (statistic ``"l2"``): per unit (a filter, a depthwise channel, a Dense
  neuron) the L2 norm of its incoming weights at each step;
- :class:`ActivationHistory`: per unit its mean absolute activation on a fixed probe batch of
  256 validation images at each step (after the BatchNormalization and activation that follow
  the layer, where they do): the series the first probe of issue 27 found causal most often.

Each series is scored as ``importance="legc"`` scores it (LE windows, Granger F-test at the BIC
lag against the validation misclassification, Benjamini-Hochberg, effect sizes; never-moved
units first). Then every criterion removes channels with ``kl.prune_channels(macs=...)`` (global
ranking, the same call for all) to 1.5x, 2x and 3x fewer MACs; the pruned model is scored on the
test set before and after a fixed fine-tuning budget (the same for every criterion).

Criteria: ``legc_weight`` and ``legc_act`` (the two unit series), ``l1``, ``l2``, ``bn_scale``
(nets with BatchNormalization), ``taylor`` (first order, 512 training images) and ``random``
(seeded by the cell's seed).

Nets: the digits MLP (64-96-48-10 on sklearn's digits, issue 27's held-out problem; its own split
per seed), and the zoo's nets on Fashion-MNIST (``legc_research.zoo``; 55,000 / 5,000 / 10,000):
LeNet-300-100, the LeNet-5-style convnet, DS-CNN, ResNet-8 and MobileNetV1-0.25. Keras 3 on the
TensorFlow backend, deterministic ops.

Results go to ``<out>/results.jsonl`` one row per cell, appended as each finishes; a rerun
skips the cells it has. Recorded checkpoints are cached in ``<out>/cache/<net>/seed<s>/``.

    python tools/unit_study.py --nets digits_mlp,lenet_300_100 --seeds 0,1,2
    python tools/unit_study.py --report docs/units.md        # the doc from results.jsonl
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

import keras_legc as kl
from keras_legc._io import atomic_write_json
from keras_legc.errors import InvalidArgumentError, LegcWarning

SEEDS = (0, 1, 2)
REDUCTIONS = (1.5, 2.0, 3.0)
CRITERIA = ("legc_weight", "legc_act", "l1", "l2", "bn_scale", "taylor", "random")
#: what unit LEGC must beat: the best of these at 2x fewer MACs before fine-tuning (issue 27)
BASELINES = ("l1", "bn_scale", "taylor")
PROBE_ROWS = 256
TAYLOR_ROWS = 512
VAL_ROWS = 2000  # the recorders' target: misclassification on these validation images
#: The recorders' target series (``WeightHistory(target=...)``). The study's cells use the first;
#: ``target="loss"`` reruns the unit LEGC criteria against the validation loss, which keeps moving
#: where the error rate stands still (the recorder's own advice), in a cache of its own.
TARGETS = ("misclassification", "loss")


@dataclass(frozen=True)
class Budget:
    """Dense training and fine-tuning of one net (Adam; batch, epochs, fine-tuning steps)."""

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    finetune_steps: int = 300
    finetune_lr: float = 5e-4
    window: int = 50


#: Sized to the 2-core machine: the zoo's dense epochs (``legc_research.zoo.train.RECIPES``) and
#: 300 fine-tuning steps (0.7 epoch of Fashion-MNIST) for every criterion; the digits MLP as
#: issue 27's test trains it (batch 32) with 10 epochs of fine-tuning (450 steps).
BUDGETS: dict[str, Budget] = {
    "digits_mlp": Budget(epochs=60, batch_size=32, finetune_steps=450),
    "lenet_300_100": Budget(epochs=10),
    "lenet5": Budget(epochs=10),
    "ds_cnn": Budget(epochs=8),
    "resnet8": Budget(epochs=8),
    "mobilenet_v1_025": Budget(epochs=8),
}
NETS = tuple(BUDGETS)


# ---- the activation recorder ---------------------------------------------------------------


def _follow(layer):
    """The last layer of the chain ``layer -> BatchNormalization / Activation / ReLU`` whose
    output is the layer's channels after normalisation and non-linearity (only through layers
    with one consumer)."""
    import keras

    passthrough = (keras.layers.BatchNormalization, keras.layers.Activation, keras.layers.ReLU)
    while True:
        nodes = getattr(layer, "_outbound_nodes", [])
        if len(nodes) != 1 or not isinstance(nodes[0].operation, passthrough):
            return layer
        layer = nodes[0].operation


def activation_history_class():
    """:class:`ActivationHistory`, made on first use (it subclasses ``kl.UnitHistory``)."""

    class ActivationHistory(kl.UnitHistory):
        """``kl.UnitHistory`` whose unit value at each step is the unit's mean absolute
        activation on a fixed probe batch (the output channel after its BatchNormalization and
        activation), not a statistic of its weights. Units whose layer output does not hold
        them one per channel (a SeparableConv2D's depthwise units) keep the weight statistic."""

        def __init__(self, probe: np.ndarray, **kwargs):
            super().__init__(**kwargs)
            self.probe = np.asarray(probe)
            self._probe_fn = None

        def on_train_begin(self, logs=None):
            self._probe_fn = None
            super().on_train_begin(logs)

        def _probe(self):
            if self._probe_fn is None:
                import keras

                outputs, self._slots = [], []
                view = self._unit_view()
                per_layer = Counter(id(e.layer) for e in self._prunables)
                for unit, spec in zip(self._prunables, view.specs, strict=True):
                    out = _follow(unit.layer).output
                    # only a layer's sole prunable weight feeds its output channels one to one
                    # (not a SeparableConv's depthwise kernel, not an RNN's gate kernels)
                    if (
                        per_layer[id(unit.layer)] == 1
                        and out.shape[-1] == spec.n_units
                        and (unit.spec.out_axes[-1] % len(unit.shape) == len(unit.shape) - 1)
                    ):
                        self._slots.append(len(outputs))
                        outputs.append(out)
                    else:
                        self._slots.append(None)
                probe_model = keras.Model(self.model.inputs, outputs)
                self._probe_fn = probe_model.predict_on_batch
            return self._probe_fn

        def _kernel_arrays(self):
            fn = self._probe()
            weights = super()._kernel_arrays()  # lazy: the weight statistic per unit
            return _activation_values(fn, self.probe, self._slots, weights)

    return ActivationHistory


def _activation_values(fn, probe, slots, weight_values):
    acts = fn(probe)
    acts = acts if isinstance(acts, (list, tuple)) else [acts]
    for slot, w in zip(slots, weight_values, strict=True):
        if slot is None:
            yield w
        else:
            a = np.abs(np.asarray(acts[slot], dtype=np.float64))
            yield a.reshape(-1, a.shape[-1]).mean(axis=0)


# ---- data and nets ------------------------------------------------------------------------


def load(net: str, seed: int, data_dir=None):
    """The split a net trains on: digits (its own split per seed) or Fashion-MNIST (fixed)."""
    from legc_research import datasets
    from legc_research.zoo.train import load_data

    if net == "digits_mlp":
        return datasets.digits(seed=seed)
    return load_data(data_dir)


def build(net: str, seed: int):
    import keras

    from legc_research.zoo.nets import build as zoo_build

    if net == "digits_mlp":
        keras.utils.set_random_seed(seed)
        return keras.Sequential(
            [keras.layers.Input((64,)), keras.layers.Dense(96, activation="relu", name="fc1"),
             keras.layers.Dense(48, activation="relu", name="fc2"),
             keras.layers.Dense(10, activation="softmax", name="out")], name="digits_mlp",
        )  # fmt: skip
    return zoo_build(net, keras, seed=seed)


def _compile(model, lr: float) -> None:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])  # fmt: skip


@dataclass
class Recorded:
    model: object
    weight_history: kl.History
    act_history: kl.History
    meta: dict


def train_recorded(net: str, seed: int, data, cache: Path, log=print, budget=None,
                   target: str = TARGETS[0]) -> Recorded:  # fmt: skip
    """The dense net trained from ``seed``, with both unit recorders (their target series:
    ``target``); cached in ``cache``."""
    import keras

    from legc_research.zoo.train import deterministic

    budget = budget or BUDGETS[net]
    folder = cache / net / (f"seed{seed}" if target == TARGETS[0] else f"seed{seed}-{target}")
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        return Recorded(kl.load_model(folder / "dense.keras", compile=False),
                        kl.History.load(folder / "weight"), kl.History.load(folder / "act"),
                        json.loads(meta_path.read_text()))  # fmt: skip
    log(
        f"training {net} seed {seed}: {budget.epochs} epochs, recording units every step "
        f"(target: {target})"
    )
    deterministic(seed)
    model = build(net, seed)
    _compile(model, budget.lr)
    val = (data.x_val[:VAL_ROWS], data.y_val[:VAL_ROWS])
    common = dict(window=budget.window, every=1, validation_data=val, target=target, verbose=0,
                  overwrite=True)  # fmt: skip
    rec_w = kl.UnitHistory(run_dir=folder / "weight", **common)
    rec_a = activation_history_class()(data.x_val[-PROBE_ROWS:], run_dir=folder / "act", **common)
    t0 = time.perf_counter()
    model.fit(data.x_train, data.y_train, batch_size=budget.batch_size, epochs=budget.epochs,
              shuffle=True, callbacks=[rec_w, rec_a], verbose=0)  # fmt: skip
    seconds = time.perf_counter() - t0
    kl.save_model(model, folder / "dense.keras", overwrite=True)
    meta = {"net": net, "seed": seed, "budget": asdict(budget), "seconds_train": seconds,
            "windows": rec_w.history.n_windows, "data": data.description,
            "test_accuracy": accuracy(model, data.x_test, data.y_test),
            "keras_legc": kl.__version__, "keras": keras.__version__}  # fmt: skip
    atomic_write_json(meta_path, meta, overwrite=True)  # last: marks the checkpoint complete
    log(f"  test accuracy {meta['test_accuracy']:.4f}, {meta['windows']} windows, "
        f"{seconds:.0f} s")  # fmt: skip
    return Recorded(model, rec_w.history, rec_a.history, meta)


def accuracy(model, x, y, batch: int = 1000) -> float:
    from legc_research.zoo.train import accuracy as zoo_accuracy

    return zoo_accuracy(model, x, y, batch)


# ---- scoring the units ----------------------------------------------------------------------


def legc_scorer(history):
    from keras_legc.structure.importance import UnitLegc

    return UnitLegc(history)


def unit_evidence(scorer, history) -> dict:
    """Share of units causal (target mode's test: F-test at the BIC lag, BH q < 0.05), never
    moved, and Spearman's rho between the unit LEGC importance and the unit's final L2 norm."""
    from scipy.stats import spearmanr

    from keras_legc.masking import importance

    scores = scorer.scores
    causal = importance.causal_weights(scores)
    tested = np.isfinite(scores.f_pvalue)
    imp = np.concatenate([scorer.by_weight[k][2] for k in scorer.by_weight])
    final = history.final_kernels or {}
    norms = np.concatenate([np.asarray(final[n], dtype=np.float64).ravel()
                            for n in history.layers]) if final else None  # fmt: skip
    rho = None
    if norms is not None and len(norms) == len(imp) and np.ptp(imp) > 0:
        rho = float(spearmanr(imp, norms).statistic)
    return {"units": int(scores.n_weights), "tested": int(tested.sum()),
            "causal": int(causal.sum()), "static": int(np.sum(scores.static)),
            "max_lag": int(scores.max_lag), "spearman_l2": rho}  # fmt: skip


def criterion_importance(criterion: str, scorers: dict, data, seed: int):
    """What ``prune_channels(importance=...)`` gets for a criterion (and its ``data``)."""
    from keras_legc.structure.importance import random_importance

    if criterion == "legc_weight":
        return scorers["weight"], None
    if criterion == "legc_act":
        return scorers["act"], None
    if criterion == "random":
        return random_importance(seed), None
    if criterion == "taylor":
        return "taylor", (data.x_train[:TAYLOR_ROWS], data.y_train[:TAYLOR_ROWS])
    return criterion, None


def fine_tune(model, data, budget: Budget, seed: int) -> float:
    """A fixed budget: ``finetune_steps`` Adam steps on a seeded shuffle of the training set."""
    import keras

    keras.utils.set_random_seed(seed)
    _compile(model, budget.finetune_lr)
    n = min(len(data.y_train), budget.finetune_steps * budget.batch_size)
    order = np.random.default_rng(seed).permutation(len(data.y_train))
    steps_per_pass = int(np.ceil(n / budget.batch_size))
    epochs = max(1, round(budget.finetune_steps / steps_per_pass))
    x, y = data.x_train[order[:n]], data.y_train[order[:n]]
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=budget.batch_size, epochs=epochs, shuffle=True, verbose=0)
    return time.perf_counter() - t0


# ---- the run -----------------------------------------------------------------------------


def _key(row: dict) -> tuple:
    return (row["net"], row["seed"], row["criterion"], row.get("reduction"), target_of(row))


def target_of(row: dict) -> str:
    """The recorders' target of a row (rows before the option have the first of :data:`TARGETS`)."""
    return row.get("target", TARGETS[0])


def of_target(rows: list[dict], target: str = TARGETS[0]) -> list[dict]:
    """The rows recorded against ``target`` (the study's tables use the first target's)."""
    return [r for r in rows if target_of(r) == target]


def read_results(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _append(path: Path, row: dict) -> None:
    """One row appended and flushed to disk (a crash loses at most the cell in flight)."""
    with open(path, "a") as f:
        f.write(json.dumps(row, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def run(out: Path, nets=NETS, seeds=SEEDS, criteria=CRITERIA, reductions=REDUCTIONS,
        data_dir=None, log=print, budgets: dict | None = None, target: str = TARGETS[0]) -> Path:  # fmt: skip
    """Every missing cell of ``nets x seeds x criteria x reductions``; returns the results file.
    ``budgets`` replaces :data:`BUDGETS` entries (the tests' short runs). ``target``: the
    recorders' target; other than the first of :data:`TARGETS`, only the unit LEGC criteria
    (the others do not read it), from a dense net trained again with those recorders."""
    budgets = {**BUDGETS, **(budgets or {})}
    import keras

    from legc_research.zoo.train import deterministic

    unknown = [n for n in nets if n not in BUDGETS] + [c for c in criteria if c not in CRITERIA]
    if unknown:
        raise InvalidArgumentError(
            f"unknown net or criterion {unknown}. Fix: nets from {list(NETS)}, criteria from "
            f"{list(CRITERIA)}."
        )
    if target not in TARGETS:
        raise InvalidArgumentError(f"unknown target {target!r}. Fix: use one of {list(TARGETS)}.")
    if target != TARGETS[0] and any(not c.startswith("legc") for c in criteria):
        raise InvalidArgumentError(
            f"target={target!r} changes the unit LEGC criteria only. Fix: "
            f"--criteria {','.join(c for c in CRITERIA if c.startswith('legc'))}."
        )
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    done = {_key(r) for r in read_results(path)}
    for net in nets:
        for seed in seeds:
            todo = [(c, f) for c in criteria for f in reductions
                    if (net, seed, c, f, target) not in done]  # fmt: skip
            if not todo and (net, seed, "dense", None, target) in done:
                continue
            data = load(net, seed, data_dir)
            rec = train_recorded(net, seed, data, out / "cache", log, budgets[net], target)
            base_macs = kl.count_macs(rec.model)
            tag = {} if target == TARGETS[0] else {"target": target}
            if (net, seed, "dense", None, target) not in done:
                _append(path, {"net": net, "seed": seed, "criterion": "dense", "reduction": None,
                               "macs": base_macs, "params": int(rec.model.count_params()),
                               "acc_before": rec.meta["test_accuracy"], **rec.meta, **tag})  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LegcWarning)
                scorers = {"weight": legc_scorer(rec.weight_history),
                           "act": legc_scorer(rec.act_history)}  # fmt: skip
            evidence = {k: unit_evidence(s, h) for (k, s), h in zip(
                scorers.items(), (rec.weight_history, rec.act_history), strict=True)}  # fmt: skip
            for criterion, factor in todo:
                row = {"net": net, "seed": seed, "criterion": criterion, "reduction": factor, **tag}
                importance, calib = criterion_importance(criterion, scorers, data, seed)
                t0 = time.perf_counter()
                try:
                    small = kl.prune_channels(rec.model, macs=int(base_macs / factor),
                                              importance=importance, data=calib)  # fmt: skip
                except InvalidArgumentError as exc:  # bn_scale on a net without BN
                    row.update(status="n/a", reason=str(exc).splitlines()[0])
                    _append(path, row)
                    log(f"  {net} s{seed} {criterion} {factor}x: n/a")
                    continue
                row.update(
                    status="ok", seconds_prune=time.perf_counter() - t0,
                    macs=kl.count_macs(small), params=int(small.count_params()),
                    acc_before=accuracy(small, data.x_test, data.y_test),
                )  # fmt: skip
                deterministic(seed)
                row["seconds_finetune"] = fine_tune(small, data, budgets[net], seed)
                row["acc_after"] = accuracy(small, data.x_test, data.y_test)
                if criterion.startswith("legc"):
                    row["evidence"] = evidence["weight" if criterion == "legc_weight" else "act"]
                _append(path, row)
                log(f"  {net} s{seed} {criterion:11s} {factor}x: before {row['acc_before']:.4f} "
                    f"after {row['acc_after']:.4f}")  # fmt: skip
                keras.backend.clear_session()
    return path


# ---- the report ----------------------------------------------------------------------------


def _mean_sd(values):
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return None, None, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0, int(v.size)


def summarise(rows: list[dict]) -> dict:
    """``{(net, criterion, reduction): {before, after: (mean, sd, n)}}`` of ``rows`` (the caller
    chooses the target: :func:`of_target`)."""
    cells: dict = {}
    for r in rows:
        if r.get("status") == "n/a":
            continue
        cells.setdefault((r["net"], r["criterion"], r["reduction"]), []).append(r)
    out = {}
    for key, rs in cells.items():
        out[key] = {"before": _mean_sd(r.get("acc_before") for r in rs),
                    "after": _mean_sd(r.get("acc_after") for r in rs),
                    "seeds": sorted(r["seed"] for r in rs)}  # fmt: skip
    return out


def verdicts(rows: list[dict]) -> list[dict]:
    """Per net: the best unit LEGC against the best of :data:`BASELINES` at 2x before fine-tuning
    (paired by seed), and whether it clears issue 27's 1 pp (the study's target only)."""
    rows = of_target(rows)
    out = []
    for net in dict.fromkeys(r["net"] for r in rows):
        by = {}
        for r in rows:
            if r["net"] == net and r.get("reduction") == 2.0 and r.get("status") == "ok":
                by.setdefault(r["criterion"], {})[r["seed"]] = r["acc_before"]
        legc = {c: by[c] for c in ("legc_weight", "legc_act") if c in by}
        base = {c: by[c] for c in BASELINES if c in by}
        if not legc or not base:
            continue
        mean = {c: float(np.mean(list(v.values()))) for c, v in {**legc, **base}.items()}
        best_legc = max(legc, key=mean.get)
        best_base = max(base, key=mean.get)
        seeds = sorted(set(legc[best_legc]) & set(base[best_base]))
        diff = [legc[best_legc][s] - base[best_base][s] for s in seeds]
        d_mean, d_sd, n = _mean_sd(diff)
        out.append({"net": net, "legc": best_legc, "baseline": best_base, "seeds": n,
                    "diff_pp": 100 * d_mean, "diff_sd_pp": 100 * (d_sd or 0.0),
                    "meets": d_mean is not None and d_mean >= 0.01})  # fmt: skip
    return out
