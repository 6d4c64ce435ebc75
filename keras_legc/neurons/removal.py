"""The removal loop: :func:`prune_neurons` ranks all hidden units together (one global ranking),
single pass or with re-ranking after every removal, and stops at a count, a fraction or a maximum
accuracy drop; :class:`NeuronPruning` records what it removed (and reads/writes it as JSON).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_legc._progress import Progress
from keras_legc.core.dense import predicted_class
from keras_legc.errors import InvalidArgumentError
from keras_legc.neurons.losses import _check_xy, _loss_from_z, _targets
from keras_legc.neurons.scorers import NeuronScorer, NeuronScores, get_scorer
from keras_legc.neurons.view import DenseNet

FORMAT = "keras_legc.neuron_removal"
FORMAT_VERSION = 1


@dataclass
class NeuronPruning:
    """What :func:`prune_neurons` removed, in order, and the accuracy after each removal.

    Attributes:
        removed: ``[(layer name, unit), ...]`` in removal order.
        accuracy: validation accuracy after 0, 1, ..., len(removed) removals.
        loss: the scorer-side loss E on the scoring data after each removal (same length).
        sizes: units per hidden layer of the original model.
        method, iterative, info: how it was made; ``info["accuracy_folded"]`` is the final
            validation accuracy with the removed units replaced by their mean over the scoring
            data instead of 0, i.e. of ``shrink(model, rec, fold_mean_activations=x)``: compare
            it with ``accuracy[-1]`` to choose (see :func:`~keras_legc.neurons.shrink`).

    Example:
        >>> rec = keras_legc.prune_neurons(model, "brute_force", x, y, fraction=0.5)
        >>> small = keras_legc.shrink(model, rec)          # or rec.as_dict()
    """

    removed: list[tuple[str, int]]
    accuracy: np.ndarray
    loss: np.ndarray
    sizes: dict[str, int]
    method: str
    iterative: bool
    info: dict = field(default_factory=dict)
    first_scores: NeuronScores | None = None

    @property
    def n_hidden(self) -> int:
        return int(sum(self.sizes.values()))

    @property
    def fraction_removed(self) -> np.ndarray:
        """Fraction of hidden units removed at each point of ``accuracy``."""
        return np.arange(len(self.removed) + 1) / self.n_hidden

    def as_dict(self, n: int | None = None) -> dict[str, list[int]]:
        """``{layer: sorted unit indices}`` of the first ``n`` removals (all by default)."""
        out: dict[str, list[int]] = {}
        for name, unit in self.removed[: len(self.removed) if n is None else n]:
            out.setdefault(name, []).append(int(unit))
        return {k: sorted(v) for k, v in out.items()}

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "removed": [[n, int(u)] for n, u in self.removed],
            "accuracy": [float(a) for a in self.accuracy],
            "loss": [float(v) for v in self.loss],
            "sizes": self.sizes,
            "method": self.method,
            "iterative": self.iterative,
            "info": self.info,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the record as JSON, atomically; refuses to overwrite unless ``overwrite``."""
        from keras_legc._io import atomic_write_json

        return atomic_write_json(path, self.to_json(), overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> NeuronPruning:
        """Read a record written by :meth:`save`."""
        try:
            d = json.loads(Path(path).read_text())
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r}")
            return cls(
                [(str(n), int(u)) for n, u in d["removed"]], np.asarray(d["accuracy"]),
                np.asarray(d["loss"]), {k: int(v) for k, v in d["sizes"].items()}, d["method"],
                bool(d["iterative"]), d.get("info", {}),
            )  # fmt: skip
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidArgumentError(
                f"{path} is not a readable neuron removal record ({exc}). Fix: pass a file "
                "written by NeuronPruning.save (legc neurons remove --out)."
            ) from exc


def _count(n, fraction, max_drop, total, n_layers) -> tuple[int, float | None]:
    given = [v is not None for v in (n, fraction, max_drop)]
    if sum(given) != 1:
        raise InvalidArgumentError(
            "give exactly one stopping rule: n (a neuron count), fraction (of the hidden neurons) "
            "or max_drop (largest allowed drop in validation accuracy). Fix: pass one of them."
        )
    limit = total - n_layers  # at least one unit stays in every hidden layer
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise InvalidArgumentError(f"n must be a non-negative integer, got {n!r}.")
        count = int(n)
    elif fraction is not None:
        if not isinstance(fraction, (int, float)) or not (0.0 <= fraction < 1.0):
            raise InvalidArgumentError(
                f"fraction must be in [0, 1), got {fraction!r}. Fix: pass e.g. 0.5 to remove half "
                "of the hidden neurons."
            )
        count = int(round(fraction * total))
    else:
        if not isinstance(max_drop, (int, float)) or not (0.0 <= max_drop <= 1.0):
            raise InvalidArgumentError(
                f"max_drop must be an accuracy difference in [0, 1], got {max_drop!r}. Fix: pass "
                "e.g. 0.01 for at most one point of accuracy."
            )
        return limit, float(max_drop)
    if count > limit:
        raise InvalidArgumentError(
            f"cannot remove {count} of {total} hidden neurons: every hidden layer keeps at least "
            f"one unit ({n_layers} layers), so at most {limit} can go. Fix: ask for fewer."
        )
    return count, None


def prune_neurons(
    model,
    scorer: NeuronScorer | str,
    x,
    y,
    *,
    n: int | None = None,
    fraction: float | None = None,
    max_drop: float | None = None,
    x_val=None,
    y_val=None,
    iterative: bool = True,
    loss: str = "auto",
    progress: bool | None = None,
) -> NeuronPruning:
    """Remove hidden neurons by a global ranking, without retraining.

    Single pass (``iterative=False``): score once, remove down the ranking. Iterative: re-score
    the pruned network after every removal and remove the lowest-scored unit (the paper's
    headline setting). Scorers marked ``static`` (LEGC, random) are scored once either way. The
    last remaining unit of a layer is never removed.

    Args:
        model: a Keras model (plain chain of Dense layers) or a :class:`DenseNet`.
        scorer: a callable ``(model, x, y) -> NeuronScores`` or a name (``"brute_force"``,
            ``"taylor1"``, ``"taylor2"``, ``"random"``).
        x, y: the data the scorer evaluates (e.g. the training set or a subsample).
        n, fraction, max_drop: exactly one stopping rule: a count, a fraction of all hidden
            units, or the largest allowed drop in validation accuracy (removal stops before the
            first step that would exceed it).
        x_val, y_val: data for the accuracy curve and ``max_drop`` (default: x, y).
        iterative: re-rank after every removal.
        loss: the loss recorded in the curve (and used by scorers given by name).
        progress: a progress bar with ETA on stderr, one step per removal (None: only when
            stderr is a terminal). With ``max_drop`` the total is every removable unit, so the
            bar may stop short when the drop is reached.

    Returns:
        :class:`NeuronPruning`.

    Example:
        >>> rec = keras_legc.prune_neurons(model, "brute_force", x_tr, y_tr, fraction=0.5,
        ...                                x_val=x_te, y_val=y_te)
        >>> rec.accuracy[-1], rec.as_dict()
    """
    scorer = get_scorer(scorer, loss)
    net = DenseNet.from_model(model)
    xs, t, loss = _check_xy(net, x, y, loss)
    if (x_val is None) != (y_val is None):
        raise InvalidArgumentError("pass both x_val and y_val, or neither.")
    if x_val is None:
        x_val, y_val = xs, y
    xv = net._as_input(x_val)
    _targets(net, y_val, len(xv))  # validates y_val
    count, drop = _count(n, fraction, max_drop, net.n_hidden, len(net.hidden))
    static = bool(getattr(scorer, "static", False))
    t0 = time.perf_counter()
    evaluate = _evaluator(net, xs, t, loss, xv, y_val)
    name = getattr(scorer, "name", type(scorer).__name__)
    bar = Progress(count, f"prune_neurons ({name})", enabled=progress)
    try:
        net, removed, accs, losses, first = _removal_loop(
            net, scorer, xs, y, evaluate, count, drop, rescore=iterative and not static,
            advance=bar.update,
        )  # fmt: skip
    finally:
        bar.close()
    # The same removals with each unit replaced by its mean over the scoring data instead of 0
    # (shrink(..., fold_mean_activations=x)): it helps after a single-pass ranking and can hurt
    # after an iterative one, which chose each removal with the earlier ones at 0.
    folded_accuracy = evaluate(net.with_means_folded(xs))[0]
    info = {
        "loss": loss,
        "accuracy_folded": folded_accuracy,
        "seconds": time.perf_counter() - t0,
        "n_eval": int(len(xs)),
        "n_val": int(len(xv)),
        "stop": {"n": n, "fraction": fraction, "max_drop": max_drop},
    }
    return NeuronPruning(
        removed, np.asarray(accs), np.asarray(losses), net.sizes, name,
        bool(iterative and not static), info, first,
    )  # fmt: skip


# ---- prune_neurons' stages -------------------------------------------------------------------------


def _evaluator(net: DenseNet, xs, t, loss: str, xv, y_val) -> Callable[[DenseNet], tuple]:
    """``evaluate(net) -> (validation accuracy, scoring loss)`` of a masked copy of ``net``."""
    z0_x = xs @ net.kernels[0] + net.biases[0]  # unchanged by removals: computed once
    z0_v = xv @ net.kernels[0] + net.biases[0]
    if net.kernels[-1].shape[1] > 1:
        labels_v = _targets(net, y_val, len(xv)).argmax(axis=1)
    else:  # one output unit: 0/1 labels (or targets) split at 0.5, like the outputs
        labels_v = np.asarray(y_val).reshape(-1) > 0.5

    def evaluate(cur: DenseNet) -> tuple[float, float]:
        out = cur.forward(None, z0=z0_v)[1][-1]
        acc = float(np.mean(predicted_class(out) == labels_v))
        return acc, float(_loss_from_z(cur, cur.forward(None, z0=z0_x)[0][-1], t, loss))

    return evaluate


def _removal_loop(
    net, scorer, xs, y, evaluate, count: int, drop: float | None, rescore: bool, advance
):
    """Remove up to ``count`` units down the ranking (re-scored after every removal when
    ``rescore``), stopping early at ``drop``; the final net, removals, curves, first scores.
    ``advance(1)`` is called after every removal (the progress bar)."""
    acc0, loss0 = evaluate(net)
    accs, losses, removed = [acc0], [loss0], []
    first = None
    queue: list[tuple[str, int]] = []
    while len(removed) < count:
        if not queue or rescore:
            scores = _checked_scores(scorer(net, xs, y), net)
            first = first or scores
            queue = [(ln, u) for ln, u in scores.ranking() if net.keep[ln][u]]
        pick = _next_removable(queue, net)
        if pick is None:
            break  # only last units of layers remain
        trial = net.with_removed({pick[0]: [pick[1]]})
        acc, lv = evaluate(trial)
        if drop is not None and acc0 - acc > drop + 1e-12:
            break
        net = trial
        removed.append(pick)
        accs.append(acc)
        losses.append(lv)
        advance(1)
    return net, removed, accs, losses, first


def _checked_scores(scores, net: DenseNet) -> NeuronScores:
    if not isinstance(scores, NeuronScores):
        raise InvalidArgumentError(
            f"the scorer returned {type(scores).__name__}, not NeuronScores. Fix: return "
            "keras_legc.neurons.NeuronScores({layer: scores}, 'name')."
        )
    if scores.layers != net.hidden:
        raise InvalidArgumentError(
            f"the scorer scored layers {scores.layers}, the model's hidden layers are "
            f"{net.hidden}. Fix: return one score array per hidden Dense layer."
        )
    return scores


def _next_removable(queue: list[tuple[str, int]], net: DenseNet) -> tuple[str, int] | None:
    """Pop the queue up to its first unit still present and not the last of its layer."""
    while queue:
        ln, u = queue.pop(0)
        if net.keep[ln][u] and net.keep[ln].sum() > 1:
            return ln, u
    return None


__all__ = ["FORMAT", "FORMAT_VERSION", "NeuronPruning", "prune_neurons"]
