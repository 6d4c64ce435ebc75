"""The edge benchmark: the zoo's nets on Fashion-MNIST, every pruning method, float and int8, on device.

A cell is (net, seed, method, target, quantization). Per (net, seed) the dense net is trained once
(:func:`legc_research.zoo.train.train_dense`: a fixed budget, cached by a hash of its recipe,
recorded by ``keras_legc.WeightHistory`` for the LEGC rankings). Every method starts from those
weights and gets the same fine-tuning budget (the net's ``finetune_epochs``, Adam at
``finetune_lr``, the same batch size). Its model is then, per quantization:

- exported by ``keras_legc.keras.export.export_tflite`` (verified against Keras; float or full
  int8 calibrated on 500 training images; sparse storage for pruned models, see below);
- scored on the test set by the .tflite itself (LiteRT, batch 1), the whole 10,000 images
  (``--eval-rows`` or ``--quick`` take the first N);
- timed by the edge runner ``edge/bench.py`` in fresh processes (1 thread, batch 1; the p50 is
  the smallest of ``--reps`` processes' p50s, see :func:`cell_p50`) on LiteRT, and on tflite-runtime from the device
  virtualenv (``--device-python`` / ``$LEGC_DEVICE_PYTHON``; ``bash .ci/device_env.sh`` makes it)
  where it runs; each run also checks the outputs against the export's reference (parity);
- counted: .tflite bytes, MACs (structural, and over non-zero weights), the share of the dense
  net's parameters that are zero or removed.

Results go to ``<out>/results.json`` after every cell (atomically); a rerun skips the cells it
has (``--force`` redoes the selected ones and keeps the others), and re-tries the cells that were skipped because a method's
keras-legc API is not there yet. Pruned models are kept in ``<out>/models/`` so a rerun that adds a
quantization does not prune again (``--force`` prunes again: do so after a library change;
``--retime`` exports and times the selected cells again from their saved models, so a cell's
float and int8 files stay one model's). ``docs/edge-suite.md`` and its plots are written from the
results (``--report-only`` rewrites them without running anything).

A method is one entry of :data:`METHODS`: a :class:`Method` (a function ``(Context, target) ->
Keras 3 model``, which targets it takes, and a feature check that names what is missing).

    python tools/edge_suite.py --quick                       # one net, one seed, a few cells
    python tools/edge_suite.py --nets ds_cnn,resnet8 --seeds 0,1,2
    python tools/edge_suite.py --report-only                 # the doc again from results.json
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import keras_legc as kl
from keras_legc._env import cpu, machine_summary
from keras_legc._io import atomic_write_json
from keras_legc.errors import ExportError, InvalidArgumentError, LegcError, LegcWarning
from legc_research.evidence import against_tfmot, edge_vs_tfmot
from legc_research.evidence._provenance import REPO, machine, made_by, package_version, today
from legc_research.zoo import nets as zoo
from legc_research.zoo import train

FORMAT = "keras_legc.edge_suite"
VERSION = 1
SEEDS = (0, 1, 2)
SPARSITIES = (0.5, 0.75, 0.9)
#: Channel pruning targets: this many times fewer MACs than the dense net.
MAC_FACTORS = (1.5, 2.0, 3.0)
QUANTIZATIONS = ("float", "int8")
#: What a cell says when its sparse .tflite could not run and dense storage was used instead.
SPARSE_FALLBACK = (
    "sparse storage refused: the export's verification could not run the sparse file (LiteRT "
    "2.3's XNNPACK fails to prepare a sparse int8 FULLY_CONNECTED at the first invoke, after "
    "export's delegate fallback, which only covers allocation); exported with dense storage"
)
N_CALIBRATION = 500  # training images that calibrate int8
N_REFERENCE = 16  # validation images: the export's and the runner's parity check
#: int8 files are exported with this tolerance (times max(1, max |Keras output|)): export's
#: default, 0.1 on the 16 reference rows, refused healthy files (2026-12-06, tools/
#: int8_agreement.py on 2,000 test images: the dense MobileNetV1-0.25 at 0.237, its int8 file
#: 0.15 pp MORE accurate than Keras and the same class on 97.5%; DS-CNN at 90%, 0.112, 0.85 pp
#: below, 91.4%). Export's int8 default is now the mean rule (docs/export.md); the suite keeps
#: this tolerance so that every int8 cell is judged alike, by its accuracy on the test set; the
#: 16-row statistics are kept in each cell and :func:`default_verdicts` reads both rules off them.
INT8_TOLERANCE = 1.0
#: version of the int8 export policy: an int8 cell that failed verification under an older one
#: is dropped on load and exported again from the saved model
INT8_POLICY = 2
BENCH = {"runs": 500, "warmup": 50, "reps": 3}
#: --quick: LeNet-5, seed 0, 75%, a data subset, one bench process of 30 runs.
QUICK = {
    "nets": ("lenet5",), "seeds": (0,), "sparsities": (0.75,), "mac_factors": (2.0,),
    "subset": (2000, 300, 500), "bench": {"runs": 30, "warmup": 5, "reps": 1},
    "methods": ("dense", "tfmot", "tfmot_2of4", "legc_magnitude", "legc_gradual", "legc_default",
                "legc_default_block", "legc_2of4", "legc_2of4_same_zeros", "channels"),
}  # fmt: skip


# ---- the per-(net, seed) context -----------------------------------------------------------------


class NoScoresError(InvalidArgumentError):
    """A ranking method needs the dense training's scores, and that recording had none."""


@dataclass
class Context:
    """What every method gets for one (net, seed): the dense checkpoint, the data, the budget."""

    net: str
    seed: int
    data: object  # legc_research.datasets.Split
    dense: train.Dense
    recipe: train.Recipe
    #: what a method chose on the way, per (method, target), saved with its cells
    notes: dict = field(default_factory=dict)
    #: where this (net, seed)'s models are saved (:func:`_model`); None: nothing to reuse
    models: Path | None = None

    def dense_model(self):
        """A fresh Keras 3 copy of the trained dense net."""
        import keras

        model = zoo.build(self.net, keras)
        model.set_weights(self.dense.model.get_weights())
        return model

    def twin(self):
        """The same trained net in tf_keras (for TF-MOT)."""
        import tf_keras

        model = zoo.build(self.net, tf_keras)
        model.set_weights(self.dense.model.get_weights())
        return model

    @property
    def scores(self) -> kl.Scores:
        """The dense training's LEGC scores; refused when the recording could not be scored."""
        if self.dense.scores is None:
            raise NoScoresError(
                f"no LEGC scores for {self.net} seed {self.seed}: {self.dense.meta['scores_error']}"
            )
        return self.dense.scores

    @property
    def steps_per_epoch(self) -> int:
        return -(-len(self.data.y_train) // self.recipe.batch_size)

    def finetune(self, model, callbacks: Sequence = ()) -> None:
        """Compile with a fresh Adam at the fine-tuning rate and fit the fine-tuning budget; the
        data order is seeded the same for every method."""
        train.deterministic(1000 + self.seed)
        train.compile_model(model, self.recipe.finetune_lr)
        model.fit(
            self.data.x_train, self.data.y_train, batch_size=self.recipe.batch_size,
            epochs=self.recipe.finetune_epochs, shuffle=True, callbacks=list(callbacks),
            verbose=0,
        )  # fmt: skip

    def as_keras3(self, tf_keras_model):
        """A Keras 3 model with the weights of a (stripped) tf_keras twin: every method is
        exported by the same converter, so only the weights differ."""
        import keras

        model = zoo.build(self.net, keras)
        weights = tf_keras_model.get_weights()
        if [w.shape for w in weights] != [tuple(w.shape) for w in model.weights]:
            raise InvalidArgumentError(f"the tf_keras twin of {self.net} has other weights.")
        model.set_weights(weights)
        return model


# ---- methods -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    """One pruning method of the suite.

    Attributes:
        run: ``(ctx, target) -> Keras 3 model`` (stripped, fine-tuned).
        targets: ``"none"`` (dense), ``"sparsity"`` (``--sparsities``), ``"2:4"`` (0.5) or
            ``"macs"`` (``--mac-factors``: that many times fewer MACs).
        missing: ``() -> str | None``: why the method cannot run in this checkout (a keras-legc
            API not there yet), or None. Its cells are recorded as skipped and re-tried next run.
        sparse: export with TFLite's sparse storage.
        about: one line for the report.
        version: raised when what the method does changes (a library default): its cells of an
            older version are dropped from the results and run again.
    """

    run: Callable
    targets: str
    about: str
    missing: Callable[[], str | None] = lambda: None
    sparse: bool = True
    version: int = 1


def _dense(ctx: Context, target) -> object:
    """The dense net trained on for the same fine-tuning budget: the baseline every pruned model
    is compared with has had as many epochs as they have."""
    model = ctx.dense_model()
    ctx.finetune(model)
    return model


def _tfmot_schedule(ctx: Context) -> tuple[int, int]:
    """(frequency, end step) of PolynomialDecay within the fine-tuning: against_tfmot's."""
    view = SimpleNamespace(
        steps_per_epoch=ctx.steps_per_epoch, net=ctx.recipe, tfmot_ramp=against_tfmot.TFMOT_RAMP
    )
    return against_tfmot.tfmot_schedule(view)


def _tfmot(ctx: Context, schedule, **params):
    """TF-MOT ``prune_low_magnitude`` on every layer it supports of the tf_keras twin (its
    default use: Conv2D, Dense; DepthwiseConv2D has no prunable weight in its registry),
    fine-tuned, stripped, and copied into the Keras 3 net."""
    from keras_legc.keras.flavour import tfmot

    sp = tfmot().sparsity.keras
    wrapped = sp.prune_low_magnitude(ctx.twin(), pruning_schedule=schedule, **params)
    ctx.finetune(wrapped, [sp.UpdatePruningStep()])
    return ctx.as_keras3(sp.strip_pruning(wrapped))


def tfmot_polynomial(ctx: Context, sparsity: float):
    """TF-MOT's ``PolynomialDecay`` 0 -> ``sparsity`` over 70% of the fine-tuning (against_tfmot's
    anchor schedule), per layer, then recovery at the target."""
    from keras_legc.keras.flavour import tfmot

    frequency, end = _tfmot_schedule(ctx)
    schedule = tfmot().sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0, end_step=end,
        frequency=frequency,
    )  # fmt: skip
    return _tfmot(ctx, schedule)


def tfmot_2of4(ctx: Context, target):
    """TF-MOT's 2:4 (``sparsity_m_by_n=(2, 4)``, the TF-MOT guide's ConstantSparsity(0.5))."""
    from keras_legc.keras.flavour import tfmot

    frequency, _ = _tfmot_schedule(ctx)
    schedule = tfmot().sparsity.keras.ConstantSparsity(0.5, begin_step=0, frequency=frequency)
    return _tfmot(ctx, schedule, sparsity_m_by_n=(2, 4))


def masked(make_mask: Callable[[Context, float], kl.Mask]) -> Callable:
    """A method from a mask maker: the mask of the trained weights, held while fine-tuning
    (``kl.prune``), then ``kl.strip``. It prunes what the library prunes (``kl.prunable_weights``)."""

    def run(ctx: Context, target):
        with warnings.catch_warnings():  # emptied layers show in the accuracy instead
            warnings.simplefilter("ignore", LegcWarning)
            mask = make_mask(ctx, target)
        pruned = kl.prune(ctx.dense_model(), mask)
        ctx.finetune(pruned, kl.pruning_callbacks(pruned))
        return kl.strip(pruned)

    return run


def legc_gradual(ctx: Context, sparsity: float):
    """``kl.GradualPruning`` on TF-MOT's schedule with the default LEGC ranking (against_tfmot's
    settings): the dense training's scores until the fine-tuning recorder has enough windows."""
    frequency, end = _tfmot_schedule(ctx)
    model = ctx.dense_model()
    wrapped = kl.prune(model, kl.Mask.keep_all(model))
    recorder = kl.WeightHistory(
        every=1,
        window=against_tfmot.GRADUAL_WINDOW,
        validation_data=(ctx.data.x_val, ctx.data.y_val),
    )
    gradual = kl.GradualPruning(
        recorder, kl.PolynomialDecay(sparsity, begin_step=0, end_step=end, frequency=frequency),
        scores=ctx.scores, recent_windows=against_tfmot.GRADUAL_RECENT,
        min_windows=against_tfmot.GRADUAL_MIN,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)
        ctx.finetune(wrapped, [recorder, gradual])
    return kl.strip(wrapped)


def no_block_layout(model) -> list[str] | None:
    """The keys of ``model``'s prunable weights that no LiteRT sparse kernel runs in blocks
    (depthwise kernels), which ``block=`` refuses: left dense (``exclude=``) by
    ``legc_default_block``. None where there are none (ResNet-8: the method is unchanged)."""
    from keras_legc.keras.registry import layouts

    return [k for k, (_axis, layout) in layouts(model).items() if layout is None] or None


def tfmot_leaves_dense(model) -> list[str]:
    """The layers whose prunable weights TF-MOT's registry does not prune: DepthwiseConv2D (it
    lists no prunable weight for it)."""
    return sorted({r.layer for r in kl.prunable_weights(model)
                   if type(model.get_layer(r.layer)).__name__ == "DepthwiseConv2D"})  # fmt: skip


def tfmot_share(model) -> float:
    """The share of keras-legc's prunable weights that TF-MOT's registry prunes too: all but
    those of :func:`tfmot_leaves_dense`."""
    rows = kl.prunable_weights(model)
    left = set(tfmot_leaves_dense(model))
    total = sum(int(np.prod(r.shape)) for r in rows)
    dense = sum(int(np.prod(r.shape)) for r in rows if r.layer in left)
    return (total - dense) / total


def _base_model(ctx: Context, base: str, target: float, note: dict):
    """``base``'s saved model at ``target`` (None if it has none), for a like-for-like method
    that prunes exactly what ``base`` prunes on this net; ``note`` records that it was reused."""
    saved = None if ctx.models is None else ctx.models / _model_name(base, target)
    if saved is None or not saved.is_file():
        return None
    note["same_model_as"] = base
    return kl.load_model(saved, compile=False)


def same_zeros(base: str, run: Callable[[Context, float], object]) -> Callable:
    """``run`` (method ``base``) to as many zeros as TF-MOT at ``sparsity``: TF-MOT prunes
    ``sparsity`` of every layer but the depthwise ones, so keras-legc's target over all its
    prunable weights is ``sparsity x`` :func:`tfmot_share`. The target reached is saved. Where
    TF-MOT prunes every kernel (share 1) it is ``base``'s run, so ``base``'s saved model is used."""
    name = f"{base}_same_zeros"

    def method(ctx: Context, sparsity: float):
        share = tfmot_share(ctx.dense.model)
        target = sparsity * share
        note = {"sparsity_over_prunable": target}
        ctx.notes[(name, sparsity)] = note
        reused = _base_model(ctx, base, sparsity, note) if share == 1.0 else None
        return reused if reused is not None else run(ctx, target)

    method.__name__ = method.__qualname__ = name
    return method


legc_gradual_same_zeros = same_zeros("legc_gradual", legc_gradual)


_legc_default = masked(lambda ctx, s: ctx.scores.mask(sparsity=s))


legc_default_same_zeros = same_zeros("legc_default", _legc_default)


def _two_of_four(exclude: list[str] | None = None) -> Callable:
    """keras-legc's magnitude 2:4 (TF-MOT's ``sparsity_m_by_n``), ``exclude=`` layers left dense."""
    return masked(lambda ctx, _t: kl.magnitude_mask(ctx.dense_model(), sparsity_m_by_n=(2, 4),
                                                    exclude=exclude))  # fmt: skip


_legc_2of4 = _two_of_four()


def legc_2of4_same_zeros(ctx: Context, target: float):
    """keras-legc's 2:4 on the weights TF-MOT's 2:4 prunes: the layers of
    :func:`tfmot_leaves_dense` left dense (``exclude=``). Where there are none it is
    ``legc_2of4``'s run, so that method's saved model is used."""
    left = tfmot_leaves_dense(ctx.dense.model)
    note = ctx.notes[("legc_2of4_same_zeros", target)] = {"excluded": left}
    reused = None if left else _base_model(ctx, "legc_2of4", target, note)
    return reused if reused is not None else _two_of_four(left or None)(ctx, target)


def _needs(name: str, parameter: str | None = None) -> Callable[[], str | None]:
    """A feature check: ``keras_legc.<name>`` exists (and takes ``parameter``)."""

    def missing() -> str | None:
        fn = getattr(kl, name, None)
        if fn is None:
            return f"keras_legc.{name} is not in this checkout"
        if parameter is not None and parameter not in inspect.signature(fn).parameters:
            return f"keras_legc.{name} has no {parameter}= in this checkout"
        return None

    return missing


#: Kept channel counts rounded up to multiples of 8: LiteRT's XNNPACK kernels here compute whole
#: tiles of output channels, so a count between two tiles costs the next tile's time; on
#: random-weight zoo nets round_to=8 raised int8 speed-up per MAC reduction from 0.60 to 0.69
#: (DS-CNN) and 0.52 to 0.59 (ResNet-8) (``tools/width_latency.py --round-to 1,8,16``,
#: docs/channels.md). 16 leaves ResNet-8's 16-channel groups unprunable.
CHANNEL_ROUND_TO = 8


def channels(ctx: Context, factor: float):
    """``kl.prune_channels`` to at most 1/``factor`` of the dense MACs (global L2 importance, the
    library's default; counts rounded to :data:`CHANNEL_ROUND_TO`, or not rounded where rounding
    cannot reach the target: LeNet-5's 6- and 16-channel convolutions), then the fine-tuning
    budget. The ``round_to`` used is saved with the cells."""
    dense = ctx.dense_model()
    macs = int(zoo.count_macs(dense) / factor)
    round_to = CHANNEL_ROUND_TO
    try:
        model = kl.prune_channels(dense, macs=macs, round_to=round_to)
    except InvalidArgumentError as exc:
        if "cannot be reached" not in str(exc):
            raise
        round_to = 1  # not reachable in multiples of CHANNEL_ROUND_TO
        model = kl.prune_channels(ctx.dense_model(), macs=macs)
    ctx.notes[("channels", factor)] = {"round_to": round_to}
    ctx.finetune(model)
    return model


METHODS: dict[str, Method] = {
    "dense": Method(_dense, "none", "the dense net, trained on for the fine-tuning budget",
                    sparse=False),
    "tfmot": Method(tfmot_polynomial, "sparsity",
                    "TF-MOT prune_low_magnitude + PolynomialDecay, every supported layer"),
    "tfmot_2of4": Method(tfmot_2of4, "2:4", "TF-MOT prune_low_magnitude, sparsity_m_by_n=(2, 4)"),
    "legc_magnitude": Method(masked(lambda ctx, s: kl.magnitude_mask(ctx.dense_model(), s)),
                             "sparsity", "keras-legc global magnitude mask, fine-tuned"),
    # version 2: the library's default allocation became LAMP (it was one global ranking)
    "legc_gradual": Method(legc_gradual, "sparsity",
                           "keras-legc GradualPruning, default ranking, TF-MOT's schedule",
                           version=2),
    "legc_gradual_same_zeros": Method(
        legc_gradual_same_zeros, "sparsity",
        "keras-legc GradualPruning as legc_gradual, to as many zeros as TF-MOT at that sparsity "
        "(TF-MOT leaves depthwise kernels dense)"),
    "legc_default": Method(_legc_default, "sparsity",
                           "keras-legc default ranking (Scores.mask), unstructured, fine-tuned",
                           version=2),
    "legc_default_same_zeros": Method(
        legc_default_same_zeros, "sparsity",
        "keras-legc default ranking as legc_default, to as many zeros as TF-MOT at that sparsity "
        "(TF-MOT leaves depthwise kernels dense)"),
    "legc_default_block": Method(
        masked(lambda ctx, s: ctx.scores.mask(sparsity=s, block=(1, 16),
                                              exclude=no_block_layout(ctx.dense.model))),
        "sparsity", "keras-legc default ranking in (1, 16) blocks, fine-tuned; weights with no "
        "LiteRT block layout (depthwise kernels) left dense (exclude=)", version=2),
    "legc_2of4": Method(_legc_2of4, "2:4", "keras-legc magnitude 2:4, fine-tuned",
                        missing=_needs("magnitude_mask", "sparsity_m_by_n")),
    "legc_2of4_same_zeros": Method(
        legc_2of4_same_zeros, "2:4", "keras-legc magnitude 2:4 as legc_2of4, on the weights "
        "TF-MOT's 2:4 prunes (depthwise kernels left dense, exclude=)",
        missing=_needs("magnitude_mask", "sparsity_m_by_n")),
    "channels": Method(channels, "macs", "keras-legc channel pruning (kl.prune_channels, L2, "
                       f"round_to={CHANNEL_ROUND_TO})",
                       # v2 (2026-12-06): round_to removes whole chunks and skips an overshooting
                       # one (ResNet-8's 1.5x target had landed at 2.1x)
                       missing=_needs("prune_channels"), sparse=False, version=2),
}  # fmt: skip


def targets(method: Method, config: RunConfig) -> tuple[float, ...]:
    """The targets a method runs at: 0 (dense), sparsities, 0.5 (2:4) or MAC factors."""
    return {
        "none": (0.0,), "sparsity": config.sparsities, "2:4": (0.5,), "macs": config.mac_factors,
    }[method.targets]  # fmt: skip


# ---- measuring one model -------------------------------------------------------------------------


def zero_share(model, dense_params: int) -> float:
    """Share of the dense net's trainable parameters that are zero or gone in ``model``."""
    nonzero = sum(int(np.count_nonzero(np.asarray(w))) for w in model.trainable_weights)
    return 1.0 - nonzero / dense_params


def tflite_accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a .tflite on ``x`` (LiteRT, batch 1)."""
    from keras_legc.keras.tflite_runner import load_interpreter, run_rows

    interp, _ = load_interpreter(path.read_bytes(), threads=1)
    return float(np.mean(run_rows(interp, x).argmax(axis=1) == y))


def cell_p50(latency: dict) -> float | None:
    """A cell's latency on one runtime: the smallest p50 of its runner processes. On this machine
    a fresh process runs a file in one of two modes: the edge suite's MobileNetV1-0.25 int8 files
    stored dense (the same 320,136 bytes and ops, 13 of them) gave per-process p50s of 0.085 ms
    or 0.104 ms (+23%), one, two or three of a cell's three processes slow at random, so the
    median of three compared equal files as 20% apart. The fastest process is the file's own
    speed; cells that kept only ``p50_ms`` (one process) give it."""
    runs = latency.get("p50_ms_runs") or ([latency["p50_ms"]] if "p50_ms" in latency else [])
    return float(min(runs)) if runs else None


def timed_p50(cell: dict, runtime: str = "litert") -> float | None:
    """:func:`cell_p50` of a cell on ``runtime``, or None where the cell's latency is marked not
    comparable with its net's other cells (``latency_unreliable``: the reason, e.g. timed when
    this machine ran the net's dense file measurably faster, ``evidence/retime_check.py``)."""
    if cell.get("latency_unreliable"):
        return None
    return cell_p50((cell.get("latency") or {}).get(runtime, {}))


def bench(
    runtime: str, python: str, path: Path, label: str, bench_cfg: dict, allow_constant: bool
) -> dict:
    """The edge runner in ``reps`` fresh processes: the fastest process's p50 (see
    :func:`cell_p50`) and the parity check."""
    from legc_research.evidence.edge_report import bench as run_bench

    runs = []
    for rep in range(bench_cfg["reps"]):
        out = path.with_name(f"{path.stem}.{runtime}.{rep}.bench.json")
        res = run_bench(python, path, label, out, bench_cfg["runs"], bench_cfg["warmup"],
                        allow_constant)  # fmt: skip
        if res is None:
            return {"ok": False, "error": "the runner failed (see the log)"}
        runs.append(res)
    check = runs[-1].get("check") or {}
    p50s = [r["latency"]["p50_ms"] for r in runs]
    return {
        "p50_ms": cell_p50({"p50_ms_runs": p50s}), "p50_ms_runs": p50s,
        "runtime_version": runs[-1].get("runtime_version"),
        "ok": bool(check.get("ok")), "max_abs_error": check.get("max_abs_error"),
        "atol": check.get("atol"), "collapsed": bool(check.get("collapsed")),
        # this runtime against the same file as LiteRT ran it at export (int8's parity at the
        # suite's tolerance is a collapse check; this says whether the runtime agrees)
        "diff_from_export_run": check.get("max_abs_diff_from_export_run"),
    }  # fmt: skip


def export(model, path: Path, quant: str, sparse: bool, ctx: Context, quick: bool) -> dict:
    """``export_tflite`` with sparse storage when asked; when the runtime cannot run the sparse
    file (LiteRT 2.3's XNNPACK refuses sparse int8 FULLY_CONNECTED at the first invoke), dense
    storage instead, and the report says so."""
    from keras_legc.keras.export import export_tflite

    kwargs = {
        "quantization": quant, "representative_data": ctx.data.x_train[:N_CALIBRATION],
        "reference_inputs": ctx.data.x_val[:N_REFERENCE], "overwrite": True,
        "allow_constant_output": quick,
        **({"tolerance": INT8_TOLERANCE} if quant == "int8" else {}),
    }  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegcWarning)  # sparse-storage notes are in the report
        if sparse:
            try:
                return {**export_tflite(model, path, sparse=True, **kwargs), "storage": "sparse"}
            except (RuntimeError, ExportError) as exc:  # the runtime refused the sparse file
                detail = str(exc).splitlines()[0][:160]
                return {**export_tflite(model, path, **kwargs), "storage": "dense",
                        "note": SPARSE_FALLBACK, "note_detail": detail}  # fmt: skip
        return {**export_tflite(model, path, **kwargs), "storage": "dense"}


# ---- the run -------------------------------------------------------------------------------------


@dataclass
class RunConfig:
    """What to run; see :func:`parse_args` for the command line."""

    nets: tuple[str, ...] = tuple(zoo.NETS)
    seeds: tuple[int, ...] = SEEDS
    methods: tuple[str, ...] = tuple(METHODS)
    sparsities: tuple[float, ...] = SPARSITIES
    mac_factors: tuple[float, ...] = MAC_FACTORS
    quantizations: tuple[str, ...] = QUANTIZATIONS
    quick: bool = False
    out: Path = REPO / "runs" / "edge-suite"
    cache: Path | None = None
    data_dir: str | None = None
    device_python: str | None = None
    eval_rows: int | None = None
    bench: dict = field(default_factory=lambda: dict(BENCH))
    force: bool = False
    retime: bool = False  # redo the selected cells' export and timing from their saved models

    def check(self) -> None:
        bad = [n for n in self.nets if n not in zoo.NETS] + [
            m for m in self.methods if m not in METHODS
        ] + [q for q in self.quantizations if q not in QUANTIZATIONS]  # fmt: skip
        if bad:
            raise InvalidArgumentError(
                f"unknown net/method/quantization {bad}. Fix: nets from {', '.join(zoo.NETS)}; "
                f"methods from {', '.join(METHODS)}; quantizations from {QUANTIZATIONS}."
            )
        if not self.seeds or any(not 0.0 < s < 1.0 for s in self.sparsities):
            raise InvalidArgumentError("need seeds, and sparsities in (0, 1) (e.g. 0.5,0.9).")
        if any(f <= 1.0 for f in self.mac_factors):
            raise InvalidArgumentError("MAC factors are reductions: each must be > 1 (e.g. 2).")
        if self.force and self.retime:
            raise InvalidArgumentError(
                "--force prunes the selected cells again, --retime re-times them from their saved "
                "models. Fix: pass one of them."
            )

    @classmethod
    def quick_config(cls, **overrides) -> RunConfig:
        q = {k: QUICK[k] for k in ("nets", "seeds", "sparsities", "mac_factors", "methods")}
        return cls(quick=True, bench=dict(QUICK["bench"]), **{**q, **overrides})


def cell_key(c: dict) -> tuple:
    return c["net"], int(c["seed"]), c["method"], round(float(c["target"]), 6), c["quantization"]


def method_version(c: dict) -> int:
    """The method version a cell was made with (cells from before versions were kept: 1)."""
    return int(c.get("method_version", 1))


def _old_int8_refusal(cell: dict) -> bool:
    """An int8 cell that export's verification refused under an older :data:`INT8_POLICY`."""
    return (
        cell["quantization"] == "int8" and cell["status"] == "failed"
        and str(cell.get("error", "")).startswith("export: verification failed")
        and cell.get("int8_policy", 1) < INT8_POLICY
    )  # fmt: skip


def _load_results(path: Path, log=lambda line: None) -> dict:
    """The results so far, without the cells of an older method version (run again). ``--force``
    does not drop them: it redoes the selected cells, and keeps every other cell of the file."""
    if path.exists():
        results = json.loads(path.read_text())
        if results.get("format") != FORMAT:
            raise InvalidArgumentError(f"{path} is not an edge-suite results file.")
        current = [c for c in results["cells"]
                   if (c["method"] not in METHODS
                       or method_version(c) == METHODS[c["method"]].version)
                   and not _old_int8_refusal(c)]  # fmt: skip
        dropped = len(results["cells"]) - len(current)
        if dropped:
            log(
                f"{dropped} cell(s) of an older method version or int8 export policy dropped: "
                "they run again"
            )
            results["cells"] = current
        return results
    return {"format": FORMAT, "version": VERSION, "nets": {}, "cells": [], "invocations": []}


def run(
    config: RunConfig, log: Callable[[str], None] | None = None, argv: Sequence[str] | None = None
) -> dict:
    """Run every missing cell; returns ``{"results", "cells_run", "cells_skipped",
    "cells_done_before"}``.

    Example:
        >>> run(RunConfig.quick_config(out=Path("/tmp/q")))["cells_run"]
        10
    """
    config.check()
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = _load_results(path, log)
    argv = list(sys.argv[1:] if argv is None else argv)
    results["invocations"].append({"argv": argv, "date": time.strftime("%Y-%m-%d %H:%M"),
                                   "cpu": cpu()})  # fmt: skip
    results["quick"] = config.quick
    results["bench"] = config.bench
    # --force: nothing counts as done, so the selected cells run again (each replaces its old
    # row when saved); cells outside the selection stay as they are
    done = set() if config.force or config.retime else {
        cell_key(c) for c in results["cells"] if c["status"] != "skipped"
    }  # fmt: skip
    stats = {"cells_run": 0, "cells_skipped": 0, "cells_done_before": 0}
    subset = QUICK["subset"] if config.quick else None
    data = train.load_data(config.data_dir, subset=subset)
    eval_rows = config.eval_rows or len(data.y_test)
    runtimes = [("litert", sys.executable)]
    if config.device_python and Path(config.device_python).exists():
        runtimes.append(("tflite_runtime", config.device_python))
    results["runtimes"] = [name for name, _ in runtimes]
    cache = Path(config.cache) if config.cache else out / "dense-cache"

    def save(cell: dict) -> None:
        results["cells"] = [c for c in results["cells"] if cell_key(c) != cell_key(cell)]
        results["cells"].append(cell)
        atomic_write_json(path, results, overwrite=True)

    for net in config.nets:
        for seed in config.seeds:
            todo = [
                (m, t, q) for m in config.methods for t in targets(METHODS[m], config)
                for q in config.quantizations
                if (net, seed, m, round(t, 6), q) not in done
            ]  # fmt: skip
            stats["cells_done_before"] += sum(
                len(targets(METHODS[m], config)) * len(config.quantizations)
                for m in config.methods
            ) - len(todo)  # fmt: skip
            if not todo:
                continue
            dense = train.train_dense(net, seed, data, cache, quick=config.quick, log=log)
            results["nets"][f"{net}/seed{seed}"] = {
                **dense.meta, "params": dense.model.count_params(),
                "macs": zoo.count_macs(dense.model),
            }  # fmt: skip
            models = out / "models" / net / dense.folder.name
            models.mkdir(parents=True, exist_ok=True)
            ctx = Context(net, seed, data, dense, train.recipe(net, config.quick), models=models)
            dense_params = sum(int(np.size(w)) for w in dense.model.trainable_weights)
            for method, target in dict.fromkeys((m, t) for m, t, _ in todo):
                quants = [q for m, t, q in todo if (m, t) == (method, target)]
                base = {"net": net, "seed": seed, "method": method, "target": target,
                        "method_version": METHODS[method].version}  # fmt: skip
                why = METHODS[method].missing()
                if why is not None:
                    for q in quants:
                        save({**base, "quantization": q, "status": "skipped", "reason": why})
                        stats["cells_skipped"] += 1
                    log(f"{net} seed {seed} {method} {target:g}: skipped ({why})")
                    continue
                try:
                    model, seconds = _model(ctx, method, target,
                                            models / _model_name(method, target),
                                            config.force)  # fmt: skip
                except LegcError as exc:  # refused by the library (no scores; a pattern a
                    # layer cannot take): recorded as failed with why, redone with --force
                    error = f"{type(exc).__name__}: {exc}"[:400]
                    for q in quants:
                        save({**base, "quantization": q, "status": "failed", "error": error})
                        stats["cells_run"] += 1
                    log(f"{net} seed {seed} {method} {target:g}: failed ({exc})")
                    continue
                info = {
                    "accuracy_keras": train.accuracy(model, data.x_test[:eval_rows],
                                                     data.y_test[:eval_rows]),
                    "pruned_share": zero_share(model, dense_params),
                    "params": int(model.count_params()), "macs": zoo.count_macs(model),
                    "macs_nonzero": zoo.count_macs(model, nonzero=True), "seconds_prune": seconds,
                    **ctx.notes.get((method, target), {}),
                }  # fmt: skip
                for q in quants:
                    cell = _measure(ctx, model, method, target, q, models, runtimes, config,
                                    eval_rows)  # fmt: skip
                    save({**base, "quantization": q, **info, **cell})
                    stats["cells_run"] += 1
                    lat = cell.get("latency", {}).get("litert", {}).get("p50_ms")
                    log(f"{net} seed {seed} {method} {target:g} {q}: {cell['status']}, accuracy "
                        f"{cell.get('accuracy', float('nan')):.4f}, {cell.get('tflite_bytes')} B, "
                        f"p50 {lat if lat is None else f'{lat:.4f} ms'}")  # fmt: skip
                _clear_sessions()
    atomic_write_json(path, results, overwrite=True)
    return {"results": results, **stats}


def _model_name(method: str, target: float) -> str:
    """The file a method's model is saved to (a new method version makes a new file)."""
    version = METHODS[method].version
    return f"{method}-{target:g}" + (f"-v{version}" if version > 1 else "") + ".keras"


def _model(
    ctx: Context, method: str, target: float, saved: Path, force: bool
) -> tuple[object, float]:
    """The method's model: from ``saved`` when an earlier run made it (unless ``force``), else
    made and saved."""
    if saved.is_file() and not force:
        return kl.load_model(saved, compile=False), 0.0
    t0 = time.perf_counter()
    model = METHODS[method].run(ctx, target)
    seconds = time.perf_counter() - t0
    kl.save_model(model, saved, overwrite=True)
    return model, seconds


def _clear_sessions() -> None:
    """Free what Keras keeps per session (both Kerases) between models of a long run; layer names
    are fixed, so nothing depends on the name counters."""
    import keras
    import tf_keras

    keras.backend.clear_session()
    tf_keras.backend.clear_session()


def _measure(ctx, model, method, target, quant, folder, runtimes, config, eval_rows) -> dict:
    """Export one model at one quantization, score the .tflite, time it on each runtime."""
    path = folder / f"{method}-{target:g}-{quant}.tflite"
    t0 = time.perf_counter()
    try:
        report = export(model, path, quant, METHODS[method].sparse, ctx, config.quick)
    except Exception as exc:  # noqa: BLE001 - recorded in the results, the run goes on
        return {"status": "failed", "error": f"export: {type(exc).__name__}: {exc}"[:400]}
    if not report["verification"]["ok"]:  # kept aside as .failed.tflite, not written to path
        why = str(report["verification"].get("failure", "")).split(": the runtime")[0]
        v = report["verification"]
        return {"status": "failed", "error": f"export: verification failed: {why}"[:400],
                "export_error": v["max_abs_error"], "export_mean_error": v.get("mean_abs_error"),
                "export_top1_agreement": v.get("top1_agreement"),
                **({"int8_policy": INT8_POLICY} if quant == "int8" else {})}  # fmt: skip
    t1 = time.perf_counter()
    v = report["verification"]
    cell = {
        "status": "ok", "tflite_bytes": report["tflite_bytes"], "storage": report["storage"],
        "export_ok": v["ok"], "export_error": v["max_abs_error"],
        "export_mean_error": v.get("mean_abs_error"),
        "export_top1_agreement": v.get("top1_agreement"),
        "export_reference_scale": v["reference_scale"], "export_rows": v["n_inputs"],
        **({"int8_policy": INT8_POLICY} if quant == "int8" else {}),
        "accuracy": tflite_accuracy(path, ctx.data.x_test[:eval_rows],
                                    ctx.data.y_test[:eval_rows]),
        "eval_rows": eval_rows, "latency": {}, "seconds_export": t1 - t0,
        "bench_runs": config.bench["runs"], "bench_warmup": config.bench["warmup"],
    }  # fmt: skip
    t2 = time.perf_counter()
    cell["seconds_eval"] = t2 - t1
    for key in ("note", "note_detail"):
        if key in report:
            cell[key] = report[key]
    label = f"{ctx.net}/{method}-{target:g}"
    for name, python in runtimes:
        cell["latency"][name] = bench(name, python, path, label, config.bench, config.quick)
    cell["seconds_bench"] = time.perf_counter() - t2
    # 1, 5 and 15 min load averages: latencies measured on a busy machine read high
    cell["load_after_bench"] = os.getloadavg()
    return cell


# ---- compute estimate ----------------------------------------------------------------------------


def time_epochs(out: Path, nets: Sequence[str] = tuple(zoo.NETS), steps: int = 25) -> dict:
    """Seconds per full Fashion-MNIST epoch (55,000 images) of each net's recipe on this machine:
    ``steps`` timed optimizer steps after three warm-up steps, on random images (speed does not
    depend on the values). Written to ``<out>/epoch_times.json`` for the doc's estimate."""
    import keras

    times = {}
    rng = np.random.default_rng(0)
    for net in nets:
        rec = train.recipe(net)
        x = rng.random((rec.batch_size * steps, 28, 28, 1), dtype=np.float32)
        y = rng.integers(0, 10, len(x))
        train.deterministic(0)
        model = zoo.build(net, keras, seed=0)
        train.compile_model(model, rec.lr)
        model.fit(x[: 3 * rec.batch_size], y[: 3 * rec.batch_size], batch_size=rec.batch_size,
                  epochs=1, verbose=0)  # fmt: skip
        t0 = time.perf_counter()
        model.fit(x, y, batch_size=rec.batch_size, epochs=1, verbose=0)
        per_step = (time.perf_counter() - t0) / steps
        times[net] = {"seconds_per_step": per_step,
                      "seconds_per_epoch": per_step * -(-55000 // rec.batch_size)}  # fmt: skip
    record = {
        "date": today(),
        "machine": machine(),
        "steps": steps,
        "nets": times,
        "load_average_1min": os.getloadavg()[0],
    }  # the machine is shared: say how busy
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "epoch_times.json", record, overwrite=True)
    return record


def seconds_per_full_cell(cells: list[dict], runtimes: int) -> float | None:
    """What one exported cell of the full run costs, from the measured parts of ``cells``:
    export, the test accuracy scaled to 10,000 images, and :data:`BENCH`'s runner processes
    (each one's start-up as measured, plus its invokes at the measured p50)."""
    parts = []
    for c in cells:
        lat = (c.get("latency") or {}).get("litert") or {}
        if c.get("status") != "ok" or "p50_ms" not in lat or "seconds_bench" not in c:
            continue
        n_proc = len(c["latency"]) * len(lat["p50_ms_runs"])
        quick_invokes = n_proc * (c["bench_runs"] + c["bench_warmup"]) * lat["p50_ms"] / 1e3
        startup = max(0.0, (c["seconds_bench"] - quick_invokes) / n_proc)
        full_bench = (
            runtimes
            * BENCH["reps"]
            * (startup + (BENCH["runs"] + BENCH["warmup"]) * lat["p50_ms"] / 1e3)
        )
        parts.append(c["seconds_export"] + c["seconds_eval"] * 10000 / c["eval_rows"] + full_bench)
    return float(np.mean(parts)) if parts else None


def estimate(epoch_times: dict, seconds_per_cell: float, seeds: int = len(SEEDS)) -> dict:
    """The full run's cells and hours: dense training plus every method's fine-tuning, at the
    measured seconds per epoch, plus a measured cost per exported cell (export, test accuracy,
    runner processes)."""
    config = RunConfig()
    models = sum(len(targets(METHODS[m], config)) for m in METHODS)  # dense fine-tunes too
    rows = {}
    for net, t in epoch_times["nets"].items():
        rec = train.recipe(net)
        epochs = rec.epochs + models * rec.finetune_epochs
        cells = models * len(QUANTIZATIONS)
        hours = seeds * (epochs * t["seconds_per_epoch"] + cells * seconds_per_cell) / 3600
        rows[net] = {"epochs": epochs, "cells": cells * seeds, "hours": hours,
                     "seconds_per_epoch": t["seconds_per_epoch"]}  # fmt: skip
    return rows


# ---- report --------------------------------------------------------------------------------------

LEGC_METHODS = ("legc_magnitude", "legc_gradual", "legc_gradual_same_zeros", "legc_default",
                "legc_default_same_zeros", "legc_default_block", "legc_2of4",
                "legc_2of4_same_zeros", "channels")  # fmt: skip
TFMOT_METHODS = ("tfmot", "tfmot_2of4")
#: "within 1 pp of dense": the issue's accuracy band.
BAND = 0.01


def summarise(results: dict) -> list[dict]:
    """One row per (net, method, target, quantization) over its ok seeds: means of accuracy,
    bytes, MACs, p50 per runtime, parity (all seeds ok), speed-up against the dense row."""
    groups: dict = {}
    for c in results["cells"]:
        if c["status"] == "ok":
            groups.setdefault((c["net"], c["method"], c["target"], c["quantization"]), []).append(c)
    rows = []
    for (net, method, target, quant), cells in groups.items():
        row = {"net": net, "method": method, "target": target, "quantization": quant,
               "n": len(cells), "storage": cells[0]["storage"]}  # fmt: skip
        for key in ("accuracy", "accuracy_keras", "pruned_share", "tflite_bytes", "macs",
                    "macs_nonzero", "params"):  # fmt: skip
            row[key] = float(np.mean([c[key] for c in cells]))
        row["accuracy_sd"] = float(np.std([c["accuracy"] for c in cells], ddof=1)) if len(
            cells) > 1 else None  # fmt: skip
        row["latency_unreliable"] = sorted({c["latency_unreliable"] for c in cells
                                            if c.get("latency_unreliable")})  # fmt: skip
        for runtime in results.get("runtimes", ["litert"]):
            lat = [c["latency"].get(runtime, {}) for c in cells]
            p50 = [v for c in cells if (v := timed_p50(c, runtime)) is not None]
            row[f"p50_{runtime}"] = float(np.mean(p50)) if len(p50) == len(cells) else None
            row[f"parity_{runtime}"] = all(x.get("ok") for x in lat)
            # the spread of a cell's process p50s (max - min over their median): how finely
            # this machine tells two latencies apart
            spreads = [np.ptp(x["p50_ms_runs"]) / np.median(x["p50_ms_runs"])
                       for x in lat if len(x.get("p50_ms_runs") or ()) > 1]  # fmt: skip
            row[f"p50_{runtime}_spread"] = float(np.mean(spreads)) if spreads else 0.0
        rows.append(row)
    dense = {(r["net"], r["quantization"]): r for r in rows if r["method"] == "dense"}
    for r in rows:
        d = dense.get((r["net"], r["quantization"]))
        r["delta_pp"] = None if d is None else 100 * (r["accuracy"] - d["accuracy"])
        r["speedup"] = (
            d["p50_litert"] / r["p50_litert"] if d and d.get("p50_litert") and r["p50_litert"]
            else None
        )  # fmt: skip
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(rows, key=lambda r: (r["net"], r["quantization"], order.get(r["method"], 99),
                                       r["target"]))  # fmt: skip


def pareto(rows: list[dict], x: str) -> list[dict]:
    """The rows no other row beats: at least as accurate and at most as large in ``x``, one
    strictly."""
    pts = [r for r in rows if r.get(x) is not None]
    return [
        r for r in pts
        if not any(o["accuracy"] >= r["accuracy"] and o[x] <= r[x]
                   and (o["accuracy"] > r["accuracy"] or o[x] < r[x]) for o in pts)
    ]  # fmt: skip


def _label(r: dict) -> str:
    if r["method"] == "dense":
        return "dense"
    t = r["target"]
    if METHODS.get(r["method"]) and METHODS[r["method"]].targets == "macs":
        return f"{r['method']} {t:g}x MACs"
    return f"{r['method']} {100 * t:.0f}%"


def plot(rows: list[dict], net: str, x: str, xlabel: str, path: Path) -> Path:
    """Accuracy against ``x`` for one net: every method (colour), float (o) and int8 (^), the
    Pareto front of each quantization dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = {m: plt.cm.tab10(i % 10) for i, m in enumerate(METHODS)}
    mine = [r for r in rows if r["net"] == net and r.get(x) is not None]
    for quant, marker in (("float", "o"), ("int8", "^")):
        sel = [r for r in mine if r["quantization"] == quant]
        for r in sel:
            ax.scatter(r[x], 100 * r["accuracy"], marker=marker, color=colours[r["method"]],
                       s=40, edgecolor="black", linewidth=0.4)  # fmt: skip
            ax.annotate(_label(r), (r[x], 100 * r["accuracy"]), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")  # fmt: skip
        front = sorted(pareto(sel, x), key=lambda r: r[x])
        if front:
            ax.plot([r[x] for r in front], [100 * r["accuracy"] for r in front], ls="--", lw=0.8,
                    color="grey", marker=None)  # fmt: skip
    handles = [plt.Line2D([], [], ls="", marker="o", color=colours[m], label=m)
               for m in METHODS if any(r["method"] == m for r in mine)]  # fmt: skip
    handles += [plt.Line2D([], [], ls="", marker=mk, color="black", mfc="none", label=q)
                for q, mk in (("float", "o"), ("int8", "^"))]  # fmt: skip
    ax.legend(handles=handles, fontsize=7, loc="best")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%), .tflite")
    ax.set_title(
        f"{net}: accuracy vs {xlabel}\n(dashed: Pareto front per quantization)", fontsize=10
    )
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def table(rows: list[dict], runtimes: Sequence[str]) -> list[str]:
    """The Markdown table, one line per summarised row."""
    tfr = "tflite_runtime" in runtimes
    head = ("| net | method | target | quant | n | test acc. | vs dense (pp) | zero/removed params "
            "| .tflite bytes | MACs | non-zero MACs | LiteRT p50 ms | speed-up |"
            + (" tflite-rt p50 ms |" if tfr else "") + " parity | storage |")  # fmt: skip
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        parity = "ok" if all(r[f"parity_{rt}"] for rt in runtimes) else "**MISMATCH**"
        acc = f"{r['accuracy']:.4f}" + (f" ± {r['accuracy_sd']:.4f}" if r["accuracy_sd"] else "")
        lines.append(
            f"| {r['net']} | {r['method']} | {_label(r).split(' ', 1)[-1] if r['method'] != 'dense' else '-'} "
            f"| {r['quantization']} | {r['n']} | {acc} | {_fmt(r['delta_pp'], '+.2f')} "
            f"| {100 * r['pruned_share']:.1f}% | {r['tflite_bytes']:,.0f} | {r['macs']:,.0f} "
            f"| {r['macs_nonzero']:,.0f} | {_fmt(r['p50_litert'], '.4f')} "
            f"| {_fmt(r['speedup'], '.2f')}{'x' if r['speedup'] else ''} |"
            + (f" {_fmt(r.get('p50_tflite_runtime'), '.4f')} |" if tfr else "")
            + f" {parity} | {r['storage']} |"
        )  # fmt: skip
    return lines


def _best(rows: list[dict], dense: dict, methods: Sequence[str], x: str) -> dict | None:
    """The row of ``methods`` smallest in ``x`` among those within :data:`BAND` of dense."""
    ok = [r for r in rows if r["method"] in methods and r.get(x) is not None
          and r["accuracy"] >= dense["accuracy"] - BAND]  # fmt: skip
    return min(ok, key=lambda r: r[x]) if ok else None


def _by_net_quant(rows: list[dict]):
    """``(net, quantization, its rows, its dense row)`` for each pair that has a dense row."""
    for net in sorted({r["net"] for r in rows}):
        for quant in QUANTIZATIONS:
            sel = [r for r in rows if r["net"] == net and r["quantization"] == quant]
            dense = next((r for r in sel if r["method"] == "dense"), None)
            if dense is not None:
                yield net, quant, sel, dense


def _verdicts(rows: list[dict]) -> list[str]:
    """The issue's targets, per net and quantization, from the numbers."""
    lines = []
    for net, quant, sel, dense in _by_net_quant(rows):
        for x, what in (("tflite_bytes", "bytes"), ("p50_litert", "LiteRT p50")):
            legc = _best(sel, dense, LEGC_METHODS, x)
            tfmot = _best(sel, dense, TFMOT_METHODS, x)
            front = {id(r) for r in pareto(sel, x)}
            unit = (lambda v: f"{v:,.0f} B") if x == "tflite_bytes" else (lambda v: f"{v:.4f} ms")
            if legc is None:
                verdict = "NOT met: no keras-legc model within 1 pp of dense" + (
                    " (nor any TF-MOT model)" if tfmot is None else ""
                )
            elif tfmot is not None and tfmot[x] < legc[x] and not _tied(legc, tfmot, x):
                verdict = f"NOT met: TF-MOT's is {'smaller' if x == 'tflite_bytes' else 'faster'}"
            elif tfmot is not None and tfmot[x] < legc[x]:
                verdict = "met: tied (the two latencies differ by less than their runs' spread)"
            else:
                verdict = "met" + ("" if id(legc) in front else " (but not on the front)")
            lines.append(
                f"- {net}, {quant}, {what}: best keras-legc within 1 pp "
                f"{'-' if legc is None else f'{_label(legc)} ({unit(legc[x])})'}; best TF-MOT "
                f"{'-' if tfmot is None else f'{_label(tfmot)} ({unit(tfmot[x])})'}: {verdict}."
            )
    for r in rows:
        if r["method"] == "channels" and r["quantization"] == "int8" and r["speedup"]:
            dense = next(d for d in rows if d["net"] == r["net"] and d["method"] == "dense"
                         and d["quantization"] == "int8")  # fmt: skip
            reduction = dense["macs"] / r["macs"]
            ratio = r["speedup"] / reduction
            lines.append(
                f"- {r['net']} channels {r['target']:g}x int8: speed-up {r['speedup']:.2f}x for "
                f"{reduction:.2f}x fewer MACs = {ratio:.2f} of it: "
                f"{'met' if ratio >= 0.75 else 'NOT met'} (target >= 0.75)."
            )
    if not any(r["method"] == "channels" for r in rows):
        why = METHODS["channels"].missing() or "no channels cell in these results yet"
        lines.append("- Channel pruning int8 speed-up >= 0.75x its MAC reduction: not measured "
                     f"({why}).")  # fmt: skip
    return lines


def default_verdicts(cell: dict) -> tuple[bool | None, bool | None]:
    """Would export's default check have passed this cell's file (int8 cells are exported with
    :data:`INT8_TOLERANCE`)? ``(the max rule used until 2026-12-06, today's default)``, from the
    statistics the cell keeps; None where it keeps none. The zoo nets end in softmax, so the
    reference scale of cells that predate ``export_reference_scale`` is 1."""
    from keras_legc.keras.export import INT8_MEAN_TOLERANCE, TOLERANCE

    if cell.get("status") != "ok" or cell.get("export_error") is None:
        return None, None
    quant, scale = cell["quantization"], cell.get("export_reference_scale", 1.0)
    max_rule = cell["export_error"] <= TOLERANCE[quant] * scale
    if quant != "int8":
        return max_rule, max_rule
    mean = cell.get("export_mean_error")
    return max_rule, None if mean is None else mean <= INT8_MEAN_TOLERANCE * scale


def _int8_over_default(cells: list[dict]) -> list[str]:
    """The int8 files export's old max rule (or today's default) would have refused, with what
    the test set says of them: evidence for how export judges int8 files."""
    judged = [(c, *default_verdicts(c)) for c in cells if c["quantization"] == "int8"]
    judged = [(c, old, new) for c, old, new in judged if new is not None]
    over = [(c, old, new) for c, old, new in judged if old is False or new is False]
    if not over:
        return []
    lines = [
        "## int8 files export's default check refuses",
        "",
        f"Of {len(judged)} int8 files with the statistics kept, the max rule export used until "
        "2026-12-06 (largest error on the 16 reference rows <= 0.1 x max(1, max |Keras "
        f"output|)) refuses {sum(old is False for _, old, _ in judged)}; today's default (mean "
        "error <= 0.025 x the same scale) refuses "
        f"{sum(new is False for _, _, new in judged)}. The test set says how far each file "
        "really is from its Keras model:",
        "",
        "| net | method | target | seed | 16-row max error | mean error | top class kept (16 rows) "
        "| max rule | default | test acc. .tflite | test acc. Keras | diff (pp) |",
        "|---|---|---|---|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    verdict = {True: "passes", False: "refuses"}
    for c, old, new in sorted(over, key=lambda t: (t[0]["net"], t[0]["seed"], t[0]["method"],
                                                     t[0]["target"])):  # fmt: skip
        kept = c.get("export_top1_agreement")
        lines.append(
            f"| {c['net']} | {c['method']} | {_label(c).removeprefix(c['method']).strip() or '-'} "
            f"| {c['seed']} | {c['export_error']:.3f} | {_fmt(c.get('export_mean_error'), '.4f')} "
            f"| {'-' if kept is None else f'{kept:.0%}'} | {verdict[old]} | {verdict[new]} "
            f"| {c['accuracy']:.4f} | {c['accuracy_keras']:.4f} "
            f"| {100 * (c['accuracy'] - c['accuracy_keras']):+.2f} |"
        )
    return [*lines, ""]


def _tied(a: dict, b: dict, x: str) -> bool:
    """Two latencies this machine cannot tell apart: they differ by no more than the larger of
    the two cells' process-to-process spread (bytes are exact: never tied)."""
    if x == "tflite_bytes":
        return False
    spread = max(a.get(f"{x}_spread", 0.0), b.get(f"{x}_spread", 0.0))
    return abs(a[x] - b[x]) <= spread * max(a[x], b[x])


def _advice(rows: list[dict]) -> list[str]:
    """'Which method should I use', per net, from the numbers."""
    lines = []
    for net, quant, sel, dense in _by_net_quant(rows):
        small = _best(sel, dense, [r["method"] for r in sel], "tflite_bytes")
        fast = _best(sel, dense, [r["method"] for r in sel], "p50_litert")
        text = (
            f"- **{net}, {quant}** (dense {dense['accuracy']:.4f}, "
            f"{dense['tflite_bytes']:,.0f} B, {_fmt(dense['p50_litert'], '.4f')} ms): within "
            f"1 pp of dense the smallest file is {_label(small)} ({small['tflite_bytes']:,.0f} "
            f"B, {small['accuracy']:.4f}) and the fastest is {_label(fast)} "
            f"({_fmt(fast['p50_litert'], '.4f')} ms, {fast['accuracy']:.4f})."
        )
        pruned = [r for r in sel if r["method"] != "dense"]
        if pruned and small["method"] == "dense" and fast["method"] == "dense":
            top = max(pruned, key=lambda r: r["accuracy"])
            text += (
                f" No pruned model is within 1 pp: the most accurate is {_label(top)} "
                f"({top['delta_pp']:+.2f} pp, {top['tflite_bytes']:,.0f} B, "
                f"{_fmt(top['p50_litert'], '.4f')} ms)."
            )
        lines.append(text)
    by_quant = {}
    for q in QUANTIZATIONS:
        d = [r for r in rows if r["method"] == "dense" and r["quantization"] == q]
        if d:
            by_quant[q] = d
    if "float" in by_quant and "int8" in by_quant:
        ratios = [i["tflite_bytes"] / f["tflite_bytes"] for f in by_quant["float"]
                  for i in by_quant["int8"] if i["net"] == f["net"]]  # fmt: skip
        lines.append(
            f"- int8 alone makes the dense file {1 / np.mean(ratios):.1f}x smaller; unstructured "
            "zeros shrink a file only where TFLite stores the tensor sparsely (float here), and "
            "speed up only block-sparse Dense kernels on LiteRT (see docs/edge.md)."
        )
    return lines


def latencies_not_compared(rows: list[dict]) -> list[str]:
    """The report's section on rows whose latency is marked not comparable (their p50 is left out
    of the table, the speed-ups and the verdicts), each with its reason; empty if there are none."""
    unreliable = [r for r in rows if r.get("latency_unreliable")]
    if not unreliable:
        return []
    lines = ["## Latencies not compared", "",
             "These rows' files were timed when this machine ran their net's files faster than in "
             "the runs that timed the other rows, so their p50 is left out of the table, the "
             "speed-ups and the verdicts above (accuracy and bytes stand):", ""]  # fmt: skip
    for r in unreliable:
        lines.append(f"- {r['net']} {_label(r)} {r['quantization']}: "
                     f"{'; '.join(r['latency_unreliable'])}")  # fmt: skip
    return lines + [""]


def write_doc(results: dict, doc: Path, img_dir: Path, command: str, out: Path) -> Path:
    """``docs/edge-suite.md`` and its plots from ``results`` (and ``<out>/epoch_times.json``)."""
    rows = summarise(results)
    runtimes = results.get("runtimes", ["litert"])
    quick = results.get("quick", False)
    lines = ["# The edge benchmark: MLPerf Tiny-shaped nets on Fashion-MNIST", ""]
    if quick:
        lines += [
            "> **This is a `--quick` run: one net (LeNet-5), one seed, one sparsity, 2,000 "
            "training images for 1 epoch, 500 test images, one runner process of 30 invokes. It "
            "shows that the harness works end to end; it is NOT the evidence.** The full run "
            '(every net, 3 seeds) is sized in "How to run" below.',
            "",
        ]
    runs = made_by(results.get("invocations", []), command, f"`{out}/results.json`")
    lines += [
        f"{runs} on {today()}, on the 2-core CPU development machine "
        f"({machine_summary()}), shared with other jobs; Python "
        f"{sys.version.split()[0]}, TensorFlow {package_version('tensorflow')}, Keras "
        f"{package_version('keras')}, TF-MOT {package_version('tensorflow-model-optimization')}, "
        f"LiteRT {package_version('ai-edge-litert')}. Training ran on this CPU.",
        "",
        "Source: `legc_research/evidence/edge_suite.py` (protocol in its docstring); nets and "
        "trainer: `legc_research/zoo/`. Latencies are from this shared machine, not a device: "
        "compare rows within a table.",
        "",
        "## Nets and budget",
        "",
        "| net | params | MACs | epochs | fine-tune epochs | batch | lr / fine-tune lr | "
        "validation acc. | s/epoch (this run) |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for key, m in sorted(results["nets"].items()):
        rec = m["recipe"]
        lines.append(
            f"| {key} | {m['params']:,} | {m['macs']:,} | {rec['epochs']} | "
            f"{rec['finetune_epochs']} | {rec['batch_size']} | {rec['lr']:g} / "
            f"{rec['finetune_lr']:g} | {m['val_accuracy']:.4f} | {m['seconds_per_epoch']:.1f} |"
        )
    lines += [
        "",
        "The zoo (MACs: Conv2D, DepthwiseConv2D and Dense multiply-accumulates per image; BN "
        "folds at export):",
        "",
        *_zoo_table(),
        "",
        "Nets (`legc_research/zoo/nets.py`): DS-CNN (64 filters), ResNet-8 (`resnet_v1_eembc` "
        f"with **{zoo.RESNET8_FILTERS} first-stage filters**, the reference's original width; its "
        "2026 default is 26), MobileNetV1-0.25 (13 DW/PW blocks), LeNet-300-100, a LeNet-5-style "
        "convnet; 28x28x1 input, 10 classes. Built at the MLPerf Tiny input shapes they reproduce "
        "the reference parameter and MAC counts (tests/integration/test_zoo.py). Data: "
        f"{next(iter(results['nets'].values()))['data']}. "
        "Budget of the full run (`legc_research/zoo/train.py` `RECIPES`; the first table shows "
        "what this run used): "
        + "; ".join(f"{net} {r.epochs} epochs" for net, r in train.RECIPES.items())
        + f"; every net: batch {train.RECIPES['lenet5'].batch_size}, Adam at "
        f"{train.RECIPES['lenet5'].lr:g} (fine-tuning {train.RECIPES['lenet5'].finetune_lr:g}), "
        f"{train.RECIPES['lenet5'].finetune_epochs} fine-tuning epochs per method, constant "
        "learning rate, no augmentation. Cut from MLPerf Tiny's recipes to fit the 2-core "
        "machine: ResNet-8 trains 500 epochs there at batch 32 with Adam decayed 0.99 per epoch "
        "and augmentation (`image_classification/train.py`), DS-CNN and MobileNetV1 tens of "
        "epochs with learning-rate schedules; the accuracies here are therefore lower, for every "
        "method alike.",
        "",
        "Methods (every one from the same dense checkpoint, the same fine-tuning budget):",
        "",
    ]
    lines += [f"- `{name}`: {m.about}." for name, m in METHODS.items()]
    lines += [
        "",
        "Per cell: the model is exported by `keras_legc.keras.export.export_tflite` (float, or "
        f"full int8 calibrated on {N_CALIBRATION} training images; {N_REFERENCE} validation "
        "images are the parity reference; int8 with the tolerance "
        f"{INT8_TOLERANCE:g}, so every int8 file is judged alike, by its test accuracy below; "
        "the last section says which files export's default check refuses), TF-MOT's models after their weights are copied into "
        "the Keras 3 net, so one converter makes every file. Test accuracy is the .tflite's "
        f"(LiteRT, batch 1) on the first {results['cells'][0].get('eval_rows', '?')} test images "
        "(all 10,000 in a full run). Latency: `edge/bench.py` at batch 1, 1 thread, "
        f"{results['bench']['runs']} invokes after {results['bench']['warmup']} warm-up, the "
        f"smallest p50 of {results['bench']['reps']} fresh process(es) (a fresh process runs a "
        "file in one of two modes here, the slow one about 23% slower: same-sized dense int8 "
        "MobileNet files gave 0.085 or 0.104 ms per process), on "
        f"{' and '.join(runtimes)}; parity = the runner's output check against the Keras "
        'reference. "zero/removed params": share of the dense net\'s trainable parameters that '
        "are zero (or removed) in the model; keras-legc prunes every registered kernel "
        "(`kl.prunable_weights`: convolutions, depthwise and Dense), TF-MOT every Conv2D and "
        "Dense kernel but no depthwise one (`legc_default_same_zeros` and "
        "`legc_gradual_same_zeros` match its count of zeros, `legc_2of4_same_zeros` its 2:4 "
        "weights). A cell that failed (refused, or "
        "its export's verification failed) is listed "
        'under "Cells not measured" with its reason, not dropped. Non-zero MACs count only non-zero '
        "weights; MACs are structural (what the runtime computes without sparse kernels).",
        "",
        "## Targets (issue 28)",
        "",
    ]
    lines += _verdicts(rows)
    lines += ["", "## Which method should I use", ""]
    if quick:
        lines += ["From this quick run's numbers (one net, one seed; not the evidence):", ""]
    lines += _advice(rows)
    lines += ["", "## Results", ""]
    lines += table(rows, runtimes)
    lines += [""]
    for net in sorted({r["net"] for r in rows}):
        for x, xlabel, tag in (("p50_litert", "LiteRT p50 latency (ms)", "latency"),
                               ("tflite_bytes", ".tflite bytes", "bytes")):  # fmt: skip
            png = plot(rows, net, x, xlabel, img_dir / f"edge_suite_{net}_{tag}.png")
            lines += [f"![{net}: accuracy vs {tag}]({os.path.relpath(png, doc.parent)})", ""]
    lines += latencies_not_compared(rows)
    other = [c for c in results["cells"] if c["status"] != "ok"]
    if other:
        lines += ["## Cells not measured", ""]
        seen = {}
        for c in other:
            seen.setdefault((c["method"], c["status"], c.get("reason") or c.get("error")),
                            []).append(c)  # fmt: skip
        for (method, status, why), cells in seen.items():
            where = ", ".join(
                f"{c['net']} {_label(c).removeprefix(method).strip()} {c['quantization']} seed "
                f"{c['seed']}"
                for c in cells
            )
            lines.append(f"- `{method}` ({where}): {status}: {why}.")
        lines += [""]
    mismatches = [
        f"{c['net']} {c['method']} {c['target']:g} {c['quantization']} (seed {c['seed']}) on "
        f"{runtime}: max |error| {lat.get('max_abs_error', float('nan')):.3g} (tolerance "
        f"{lat.get('atol', float('nan')):.3g})"
        + ("; outputs collapsed (their spread < 5% of Keras')" if lat.get("collapsed") else "")
        + ("" if "error" not in lat else f"; {lat['error']}")
        for c in results["cells"] if c["status"] == "ok"
        for runtime, lat in c["latency"].items() if not lat.get("ok")
    ]  # fmt: skip
    if mismatches:
        lines += [
            "## Parity failures",
            "",
            "The runner's output check failed here (the .tflite on that runtime does not compute "
            "what Keras does; tflite-runtime 2.14's block-sparse int8 kernels are known to give "
            "wrong outputs, see edge/bench.py):",
            "",
        ]
        lines += [f"- {m}" for m in mismatches] + [""]
    lines += _int8_over_default(results["cells"])
    notes: dict = {}
    for c in results["cells"]:
        if c.get("note"):
            notes.setdefault(c["note"], []).append(f"{c['method']} {c['quantization']}")
    if notes:
        lines += ["## Notes", ""]
        lines += [f"- {n} ({len(cells)} cells: {', '.join(sorted(set(cells)))})."
                  for n, cells in notes.items()]  # fmt: skip
        lines += [""]
    lines += _how_to_run(results, out)
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_name(f".{doc.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, doc)
    return doc


def _zoo_table() -> list[str]:
    """Parameters and MACs of every zoo net, on 28x28x1 and at its MLPerf Tiny reference shape."""
    import keras

    lines = [
        "| net | params (28x28x1, 10 classes) | MACs | MLPerf Tiny shape | params there | "
        "MACs there |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for name, net in zoo.NETS.items():
        model = zoo.build(name, keras)
        there = ["-", "-", "-"]
        if net.reference_input is not None:
            ref = zoo.build(name, keras, reference=True)
            shape = "x".join(map(str, net.reference_input))
            there = [f"{shape}, {net.reference_classes} classes", f"{ref.count_params():,}",
                     f"{zoo.count_macs(ref):,}"]  # fmt: skip
        lines.append(
            f"| {name} | {model.count_params():,} | {zoo.count_macs(model):,} | "
            + " | ".join(there)
            + " |"
        )
    keras.backend.clear_session()
    return lines


def _how_to_run(results: dict, out: Path) -> list[str]:
    config = RunConfig()
    n_models = sum(len(targets(METHODS[m], config)) for m in METHODS)
    lines = [
        "## How to run",
        "",
        "```bash",
        "export LEGC_DATA_DIR=/path/to/shared/data            # holds fashion-mnist/",
        "export LEGC_DEVICE_PYTHON=$(bash .ci/device_env.sh | tail -1)   # tflite-runtime rows",
        "python tools/edge_suite.py --quick                  # ~2-3 min: this page (runs/edge-suite-quick)",
        "python tools/edge_suite.py --time-epochs --out runs/edge-suite-quick   # s/epoch, the estimate",
        "python tools/edge_suite.py --nets ds_cnn,resnet8 --seeds 0,1,2  # resumable; rerun to go on",
        "python tools/edge_suite.py --report-only            # this page from <out>/results.json",
        "```",
        "",
        f"A full run is {len(zoo.NETS)} nets x {len(SEEDS)} seeds x {n_models} models "
        f"({', '.join(f'{m}: {len(targets(METHODS[m], config))}' for m in METHODS)}) x "
        f"{len(QUANTIZATIONS)} quantizations = "
        f"{len(zoo.NETS) * len(SEEDS) * n_models * len(QUANTIZATIONS)} cells. Results land in "
        "`<out>/results.json` after every cell; `--force` redoes cells, and cells skipped for a "
        "missing keras-legc API are re-tried on every run.",
        "",
    ]
    times_path = Path(out) / "epoch_times.json"
    per_cell = seconds_per_full_cell(results["cells"], len(results.get("runtimes", ["litert"])))
    if times_path.is_file() and per_cell is not None:
        times = json.loads(times_path.read_text())
        est = estimate(times, per_cell)
        total = sum(r["hours"] for r in est.values())
        lines += [
            f"Estimated cost of the full run on this machine (`--time-epochs`, {times['date']}, "
            f"1-minute load average {times.get('load_average_1min', float('nan')):.1f} on 2 "
            f"cores: {times['steps']} timed steps of each net's recipe; {per_cell:.0f} s per "
            "exported cell, scaled from this run's measured export, test-set and runner times "
            "(its nets'; larger nets take some seconds more per cell) to 10,000 test images and "
            f"{BENCH['reps']} processes of {BENCH['runs']} invokes):",
            "",
            "| net | s/epoch | epochs per seed (dense + fine-tuning) | cells | hours |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {net} | {r['seconds_per_epoch']:.0f} | {r['epochs']} | {r['cells']} | "
            f"{r['hours']:.1f} |"
            for net, r in est.items()
        ]
        lines += [
            f"| **total** | | | {sum(r['cells'] for r in est.values())} | **{total:.1f}** |",
            "",
            "Not counted: what recording costs while the dense nets train and while "
            "`legc_gradual` fine-tunes (recorded weights only: the Dense kernels; LeNet-300-100 "
            "records one step in 2), and the Granger scoring after each dense training. Shared "
            "with other jobs the machine is slower (at load 8 the conv nets took 2-4x longer per "
            "epoch); the GPU machine, where lent, trains faster (the runner's latencies must still "
            "come from one CPU).",
            "",
        ]
    return lines


# ---- command line --------------------------------------------------------------------------------


def _floats(text: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in text.split(",") if v)
    return tuple(v / 100 if v > 1 else v for v in values)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", help=f"comma-separated, from {', '.join(zoo.NETS)} (default all)")
    p.add_argument("--seeds", help="comma-separated (default 0,1,2)")
    p.add_argument("--methods", help=f"comma-separated, from {', '.join(METHODS)} (default all)")
    p.add_argument("--sparsities", help="comma-separated, e.g. 50,75,90 (default)")
    p.add_argument("--mac-factors", help="channel pruning: times fewer MACs (default 1.5,2,3)")
    p.add_argument("--quantizations", help="float,int8 (default both)")
    p.add_argument("--quick", action="store_true", help="LeNet-5, seed 0, a few cells, a subset")
    p.add_argument("--out", help="results folder (default runs/edge-suite, --quick: -quick)")
    p.add_argument("--cache", help="dense checkpoints (default <out>/dense-cache)")
    p.add_argument("--data-dir", default=None, help="holds fashion-mnist/ (default $LEGC_DATA_DIR)")
    p.add_argument(
        "--device-python",
        default=os.environ.get("LEGC_DEVICE_PYTHON"),
        help="python of the tflite-runtime venv (default $LEGC_DEVICE_PYTHON)",
    )
    p.add_argument("--eval-rows", type=int, help="test images each .tflite is scored on")
    p.add_argument("--runs", type=int, help=f"runner invokes (default {BENCH['runs']})")
    p.add_argument("--reps", type=int, help=f"runner processes (default {BENCH['reps']})")
    p.add_argument("--force", action="store_true",
                   help="redo the selected cells that are done (the file keeps every other cell)")  # fmt: skip
    p.add_argument("--retime", action="store_true",
                   help="export and time the selected cells again from their saved models "
                   "(not pruned again)")  # fmt: skip
    p.add_argument("--report-only", action="store_true", help="only write the doc from results")
    p.add_argument("--time-epochs", action="store_true", help="time each net's epoch, then stop")
    p.add_argument("--doc", default=str(REPO / "docs" / "edge-suite.md"))
    p.add_argument("--img-dir", default=str(REPO / "docs" / "img"))
    p.add_argument("--no-doc", action="store_true", help="do not write the doc")
    return p.parse_args(argv)


def config_from_args(a: argparse.Namespace) -> RunConfig:
    given = {}
    if a.nets:
        given["nets"] = tuple(a.nets.split(","))
    if a.seeds:
        given["seeds"] = tuple(int(s) for s in a.seeds.split(","))
    if a.methods:
        given["methods"] = tuple(a.methods.split(","))
    if a.sparsities:
        given["sparsities"] = _floats(a.sparsities)
    if a.mac_factors:
        given["mac_factors"] = tuple(float(v) for v in a.mac_factors.split(","))
    if a.quantizations:
        given["quantizations"] = tuple(a.quantizations.split(","))
    default_out = REPO / "runs" / ("edge-suite-quick" if a.quick else "edge-suite")
    given.update(out=Path(a.out) if a.out else default_out, data_dir=a.data_dir,
                 device_python=a.device_python, eval_rows=a.eval_rows, force=a.force,
                 retime=a.retime,
                 cache=Path(a.cache) if a.cache else None)  # fmt: skip
    config = RunConfig.quick_config(**given) if a.quick else RunConfig(**given)
    if a.quick and a.eval_rows is None:
        config.eval_rows = QUICK["subset"][2]
    for key in ("runs", "reps"):
        if getattr(a, key):
            config.bench[key] = getattr(a, key)
    return config


def main(argv: Sequence[str] | None = None) -> int:
    from legc_research.evidence._provenance import tool_command

    args = parse_args(argv)
    try:
        config = config_from_args(args)
        config.check()
        if args.time_epochs:
            record = time_epochs(Path(config.out), config.nets)
            for net, t in record["nets"].items():
                print(f"{net}: {t['seconds_per_epoch']:.1f} s per epoch")
            return 0
        path = Path(config.out) / "results.json"
        if args.report_only:
            if not path.is_file():
                raise InvalidArgumentError(f"{path} does not exist. Fix: run the suite first.")
            results = json.loads(path.read_text())
        else:
            results = run(config, argv=sys.argv[1:] if argv is None else argv)["results"]
        if not args.no_doc:  # the command that ran the cells (the last run, not --report-only)
            command = tool_command("edge_suite", results["invocations"][-1]["argv"])
            doc = write_doc(results, Path(args.doc), Path(args.img_dir), command, Path(config.out))
            print(f"wrote {doc}", file=sys.stderr)
            # issue 25's comparison with TF-MOT, from the same cells, beside it
            versus = Path(args.doc).with_name("against-tfmot-convnets.md")
            print(f"wrote {edge_vs_tfmot.write_doc(results, versus, command, machine_summary())}",
                  file=sys.stderr)  # fmt: skip
    except InvalidArgumentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
