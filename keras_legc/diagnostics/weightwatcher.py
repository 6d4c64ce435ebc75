"""WeightWatcher's power-law exponent (alpha, alpha_weighted) per Dense layer, flagged against the
paper's "well trained" range 2 <= alpha <= 6."""

from __future__ import annotations

import math

import numpy as np

from keras_legc.diagnostics._common import _plain_model, _quiet, _require

#: A layer needs at least this many non-zero eigenvalues for its power-law fit to be reported.
MIN_EVALS = 10
#: The range of alpha the paper reads as "well trained".
ALPHA_RANGE = (2.0, 6.0)
#: Features shown in the SHAP bar chart (the most important ones of the dense model).
MAX_FEATURES_PLOTTED = 20

FLAG_OK = "ok"
FLAG_OUTSIDE = "outside [2, 6]"
FLAG_SMALL = "too small to fit"
FLAG_FAILED = "fit failed"


def weightwatcher_layers(model, *, min_evals: int = MIN_EVALS) -> list[dict]:
    """WeightWatcher's alpha and alpha_weighted for every Dense layer of ``model``, flagged.

    Args:
        model: a built Keras 3 (TensorFlow backend) or Keras 2 model (pruning wrappers are stripped first).
        min_evals: fewest non-zero eigenvalues a layer needs for its fit to be reported.

    Returns:
        One dict per Dense layer, in order: ``layer``, ``shape``, ``n_evals`` (min(in, out)),
        ``n_nonzero_evals``, ``alpha``, ``alpha_weighted``, ``lambda_max``, ``xmin``,
        ``tail_points`` (eigenvalues in the fitted tail), ``flag`` ("ok", "outside [2, 6]",
        "too small to fit", "fit failed"), ``reason`` (why, for the last two and the range),
        ``ww_warning`` (WeightWatcher's own label, e.g. "over-trained"), and ``eigenvalues``
        (the ESD, a numpy array, for plots).

    Example:
        >>> rows = weightwatcher_layers(model)
        >>> [(r["layer"], r["alpha"], r["flag"]) for r in rows]
    """
    ww = _require("weightwatcher", "the per-layer alpha (WeightWatcher)")
    from keras_legc.keras.layers import dense_layers

    model = _plain_model(model, "the model")
    layers = dense_layers(model)
    try:
        with _quiet():
            details = ww.WeightWatcher(model=model).analyze(min_evals=1, plot=False)
    except Exception as exc:  # keep going: every layer gets "fit failed" with the reason
        details, failure = None, f"WeightWatcher failed: {type(exc).__name__}: {exc}"
    else:
        failure = ""
    by_name = {}
    if details is not None and len(details):
        for rec in details.to_dict("records"):
            by_name[str(rec.get("name"))] = rec
    return [_layer_row(layer, by_name.get(layer.name), min_evals, failure) for layer in layers]


def _layer_row(layer, rec: dict | None, min_evals: int, failure: str) -> dict:
    """One layer's row: its ESD from the kernel, WeightWatcher's fit ``rec`` (or None), a flag."""
    kernel = layer.kernel.numpy().astype(np.float64)
    evals = np.sort(np.linalg.svd(kernel, compute_uv=False) ** 2)[::-1]
    tol = evals[0] * max(kernel.shape) * np.finfo(np.float32).eps if evals.size else 0.0
    nonzero = int((evals > tol).sum())
    row = {
        "layer": layer.name,
        "shape": [int(d) for d in kernel.shape],
        "n_evals": int(evals.size),
        "n_nonzero_evals": nonzero,
        "alpha": float("nan"),
        "alpha_weighted": float("nan"),
        "lambda_max": float(evals[0]) if evals.size else float("nan"),
        "xmin": float("nan"),
        "tail_points": 0,
        "flag": FLAG_OK,
        "reason": "",
        "ww_warning": "",
        "eigenvalues": evals,
    }
    if nonzero < min_evals:
        row["flag"] = FLAG_SMALL
        row["reason"] = (
            f"{nonzero} non-zero eigenvalue(s) < {min_evals} needed for a power-law fit"
            + (f" ({evals.size - nonzero} lost to zero rows/columns)" if nonzero < evals.size else "")
        )  # fmt: skip
    elif rec is None:
        row["flag"] = FLAG_FAILED
        row["reason"] = failure or "WeightWatcher returned no row for this layer"
    else:
        alpha = float(rec.get("alpha", float("nan")))
        row.update(
            alpha=alpha,
            alpha_weighted=float(rec.get("alpha_weighted", float("nan"))),
            xmin=float(rec.get("xmin", float("nan"))),
            tail_points=int(rec.get("num_pl_spikes", 0) or 0),
            ww_warning=str(rec.get("warning", "") or ""),
        )
        if not math.isfinite(alpha) or alpha <= 1.0:
            row["flag"] = FLAG_FAILED
            row["reason"] = f"power-law fit gave alpha = {alpha}"
        elif not ALPHA_RANGE[0] <= alpha <= ALPHA_RANGE[1]:
            row["flag"] = FLAG_OUTSIDE
            row["reason"] = (
                "alpha < 2: heavy-tailed beyond the usual range (WeightWatcher: over-trained)"
                if alpha < ALPHA_RANGE[0]
                else "alpha > 6: close to random (WeightWatcher: under-trained)"
            )
    return row
