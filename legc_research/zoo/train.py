"""One trainer for the zoo: a fixed budget per net, deterministic given a seed, cached dense checkpoints.

Every net trains the same way (Adam, sparse categorical cross-entropy, batch 128, constant learning
rate, Fashion-MNIST 55,000/5,000/10,000); only the number of epochs differs (:data:`RECIPES`).
MLPerf Tiny's own recipes train far longer (ResNet-8: 500 epochs, batch 32, Adam decayed 0.99 per
epoch, with augmentation, ``benchmark/training/image_classification/train.py``; DS-CNN and
MobileNetV1: tens of epochs with learning-rate schedules); on a 2-core CPU shared with other jobs
that is out of reach, so these recipes cut epochs to what fits, drop the schedules and
augmentation, and keep the reference architectures and regularisation. Accuracies are therefore below what these nets reach
with their full recipes, for every method alike.

While the dense net trains, a :class:`keras_legc.WeightHistory` records the weights the library
prunes (for the LEGC ranking; its cost is in the checkpoint's meta), so the ranking methods score
the very training that made the checkpoint.

Checkpoints live in ``<cache>/<net>/seed<s>-<key>/`` (``dense.keras``, ``history/``,
``scores.npz``, ``meta.json``, each written atomically; ``meta.json`` last marks it complete),
where ``<key>`` hashes everything that determines the weights (:func:`cache_key`): a changed recipe
or data subset never reuses a stale checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

import keras_legc as kl
from keras_legc._env import machine
from keras_legc._io import atomic_write_json
from keras_legc.errors import HistoryError, InvalidArgumentError, LegcWarning
from legc_research.datasets import Split, fashion_mnist
from legc_research.zoo.nets import NETS, build

#: Bump when a builder changes the weights a seed gives (so cached checkpoints are not reused).
ZOO_VERSION = 1


@dataclass(frozen=True)
class Recipe:
    """The training budget of one net (dense training and every method's fine-tuning).

    Attributes:
        epochs: dense training epochs.
        finetune_epochs: the fine-tuning budget every pruning method gets.
        batch_size: batch size of both.
        lr: Adam's learning rate of the dense training.
        finetune_lr: Adam's learning rate of the fine-tuning.
        window: the recorder's LE window, in optimizer steps.
        every: the recorder keeps one step in ``every``.
    """

    epochs: int
    finetune_epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    finetune_lr: float = 5e-4
    window: int = 50
    every: int = 1


#: The budget per net, sized to the 2-core machine (see the module docstring for what is cut).
RECIPES: dict[str, Recipe] = {
    "lenet_300_100": Recipe(epochs=10, every=2),
    "lenet5": Recipe(epochs=10),
    "ds_cnn": Recipe(epochs=8),
    "resnet8": Recipe(epochs=8),
    "mobilenet_v1_025": Recipe(epochs=8),
}
#: --quick: one epoch, fine-tuning one epoch, short LE windows (the subset has few steps).
QUICK = {"epochs": 1, "finetune_epochs": 1, "batch_size": 32, "window": 10, "every": 1}


def recipe(net: str, quick: bool = False) -> Recipe:
    """The :class:`Recipe` of ``net`` (its --quick version with ``quick``)."""
    if net not in RECIPES:
        raise InvalidArgumentError(f"unknown zoo net {net!r}. Fix: use one of {', '.join(NETS)}.")
    return replace(RECIPES[net], **QUICK) if quick else RECIPES[net]


def load_data(data_dir=None, *, subset: tuple[int, int, int] | None = None) -> Split:
    """Fashion-MNIST (:func:`legc_research.datasets.fashion_mnist`, validation split seed 0),
    optionally cut to the first ``(train, val, test)`` images (train and validation are in a
    seeded random order, so their first images are a random sample; test is the official order)."""
    data = fashion_mnist(data_dir, seed=0)
    if subset is None:
        return data
    n_tr, n_va, n_te = subset
    return replace(
        data,
        x_train=data.x_train[:n_tr], y_train=data.y_train[:n_tr],
        x_val=data.x_val[:n_va], y_val=data.y_val[:n_va],
        x_test=data.x_test[:n_te], y_test=data.y_test[:n_te],
        description=f"{data.description}; subset: first {n_tr} train / {n_va} validation / "
        f"{n_te} test",
    )  # fmt: skip


def cache_key(net: str, seed: int, rec: Recipe, data: Split) -> str:
    """A hash of everything that determines a dense checkpoint (and its recorded scores: the
    keras-legc version is in it)."""
    import keras

    blob = json.dumps(
        {"net": net, "seed": seed, "recipe": asdict(rec), "data": data.description,
         "n": [len(data.y_train), len(data.y_val)], "zoo": ZOO_VERSION,
         "keras": keras.__version__, "keras_legc": kl.__version__},  # its recording and scores
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def deterministic(seed: int) -> None:
    """Seed Python, numpy and the backend, and make TensorFlow's kernels deterministic."""
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def compile_model(model, lr: float) -> None:
    """Adam at ``lr``, sparse categorical cross-entropy, accuracy (either Keras: ``model``'s own)."""
    from keras_legc.keras.flavour import keras_of

    k = keras_of(model)
    model.compile(
        optimizer=k.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )  # fmt: skip


@dataclass
class Dense:
    """A trained dense checkpoint: the Keras 3 model, its recorded history and scores, its meta."""

    model: object
    history: kl.History | None  # None: a cached checkpoint kept without its history
    scores: kl.Scores | None  # None when the recording could not be scored (meta says why)
    meta: dict
    folder: Path


def train_dense(
    net: str, seed: int, data: Split, cache: str | Path, *, quick: bool = False, log=print
) -> Dense:
    """The dense ``net`` trained from ``seed`` on ``data``: loaded from ``cache`` when a checkpoint
    with the same :func:`cache_key` is complete there, else trained (recorded) and saved.

    Example:
        >>> dense = train_dense("lenet5", 0, load_data(), "runs/zoo-cache")
        >>> dense.meta["val_accuracy"] > 0.85
        True
    """
    import keras

    rec = recipe(net, quick)
    folder = Path(cache) / net / f"seed{seed}-{cache_key(net, seed, rec, data)}"
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        model = kl.load_model(folder / "dense.keras", compile=False)
        # a checkpoint kept without its history (the evidence's committed cache: the history is
        # megabytes, and the methods need only the model and the scores) loads without it
        history = kl.History.load(folder / "history") if (folder / "history").is_dir() else None
        scores = kl.Scores.load(folder / "scores.npz") if meta.get("scores_error") is None else None
        return Dense(model, history, scores, meta, folder)
    log(f"training {net} seed {seed}: {rec.epochs} epochs on {len(data.y_train)} images")
    deterministic(seed)
    model = build(net, keras, seed=seed)
    compile_model(model, rec.lr)
    recorder = kl.WeightHistory(
        window=rec.window, every=rec.every, validation_data=(data.x_val, data.y_val),
        run_dir=folder / "history", overwrite=True,
    )  # fmt: skip
    t0 = time.perf_counter()
    fit = model.fit(
        data.x_train, data.y_train, batch_size=rec.batch_size, epochs=rec.epochs, shuffle=True,
        callbacks=[recorder], verbose=0,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    scores, scores_error = None, None
    try:
        with warnings.catch_warnings():  # a capped lag is recorded in the scores' info instead
            warnings.simplefilter("ignore", LegcWarning)
            scores = kl.score(recorder.history, progress=False)
        scores.save(folder / "scores.npz", overwrite=True)
    except HistoryError as exc:  # e.g. a target that never moved: the ranking methods say so
        scores_error = str(exc)
        log(f"  {net} seed {seed}: the recording cannot be scored: {exc}")
    kl.save_model(model, folder / "dense.keras", overwrite=True)
    meta = {
        "net": net, "seed": seed, "recipe": asdict(rec), "data": data.description,
        "val_accuracy": accuracy(model, data.x_val, data.y_val),
        "train_loss": [float(v) for v in fit.history["loss"]],
        "seconds_train": seconds, "seconds_per_epoch": seconds / rec.epochs,
        "seconds_score": time.perf_counter() - t0 - seconds,
        "recording_overhead": getattr(recorder, "overhead", None),
        "windows": None if scores is None else scores.info.get("n_windows"),
        "scores_error": scores_error, "key": folder.name,
        # a net trained again on another CPU can differ (session 20: MobileNet 0.8612 vs 0.8684)
        "machine": machine(),
    }  # fmt: skip
    atomic_write_json(meta_path, meta, overwrite=True)  # last: marks the checkpoint complete
    log(f"  {net} seed {seed}: validation accuracy {meta['val_accuracy']:.4f} "
        f"[{seconds:.0f} s, {meta['seconds_per_epoch']:.1f} s/epoch]")  # fmt: skip
    return Dense(model, recorder.history, scores, meta, folder)


def accuracy(model, x: np.ndarray, y: np.ndarray, batch: int = 1024) -> float:
    """Top-1 accuracy of a Keras model (either flavour), by direct calls in batches."""
    pred = np.concatenate(
        [np.asarray(model(x[i : i + batch], training=False)).argmax(axis=1)
         for i in range(0, len(x), batch)]
    )  # fmt: skip
    return float(np.mean(pred == y))
