"""Neuron-level pruning without retraining: scorers, the removal loop, and ``shrink``.

Removing a hidden neuron of a Dense stack deletes a column of its kernel, one bias entry and a
row of the next kernel, so the model becomes genuinely smaller dense layers (fewer multiply-
accumulates on every runtime). This package follows Wolfe et al., *The Incredible Shrinking Neural
Network* (see ``../shared/spec/neuron-pruning.md``):

- :mod:`~keras_legc.neurons.view`: :class:`DenseNet`, the numpy view of a Keras Dense chain (the
  shared :class:`~keras_legc.core.dense.DenseStack` plus a keep-mask per hidden layer);
  :mod:`~keras_legc.neurons.losses`: the targets, losses and accuracy evaluated on it;
- :mod:`~keras_legc.neurons.scorers`: a **neuron scorer** is a callable
  ``(model, x, y) -> NeuronScores`` giving one score per hidden unit (lower = remove first):
  :func:`brute_force`, :func:`taylor1`, :func:`taylor2`, :func:`legc` (per-weight evidence),
  :func:`legc_units` (a unit-level history) and :func:`random`;
- :mod:`~keras_legc.neurons.removal`: :func:`prune_neurons` ranks all hidden units together (one
  global ranking), single pass or re-ranked after every removal, and stops at a count, a fraction
  or a maximum accuracy drop; its :class:`NeuronPruning` record reads and writes JSON;
- :mod:`~keras_legc.neurons.shrinking`: :func:`shrink` returns a new, smaller plain Keras model
  without the removed units (optionally with their mean activations folded into the next layer's
  bias); :func:`count_macs`.

Example:
    >>> from keras_legc import neurons
    >>> rec = neurons.prune_neurons(model, "brute_force", x, y, fraction=0.5)
    >>> small = neurons.shrink(model, rec)
"""

# ACTIVATIONS, LOSSES, FORMAT*, DEFAULT_CHUNK_ELEMENTS, SCORERS, NeuronScorer: names the flat module
# offered besides __all__, kept importable from here.
from keras_legc.core.dense import ACTIVATIONS  # noqa: F401
from keras_legc.neurons.losses import LOSSES, accuracy, loss_value  # noqa: F401
from keras_legc.neurons.removal import (  # noqa: F401
    FORMAT,
    FORMAT_VERSION,
    NeuronPruning,
    prune_neurons,
)
from keras_legc.neurons.scorers import (  # noqa: F401
    DEFAULT_CHUNK_ELEMENTS,
    SCORERS,
    BruteForce,
    LegcNeurons,
    LegcUnitNeurons,
    NeuronScorer,
    NeuronScores,
    RandomNeurons,
    Taylor,
    brute_force,
    get_scorer,
    legc,
    legc_units,
    random,
    taylor1,
    taylor2,
)
from keras_legc.neurons.shrinking import count_macs, shrink
from keras_legc.neurons.view import DenseNet

__all__ = [
    "DenseNet",
    "NeuronScores",
    "NeuronPruning",
    "BruteForce",
    "Taylor",
    "LegcNeurons",
    "LegcUnitNeurons",
    "RandomNeurons",
    "brute_force",
    "taylor1",
    "taylor2",
    "legc",
    "legc_units",
    "random",
    "get_scorer",
    "prune_neurons",
    "shrink",
    "accuracy",
    "loss_value",
    "count_macs",
]
