"""One callback base for both Kerases: a keras_legc callback works in Keras 3 ``fit`` (any
backend) and in tf_keras ``fit``, decided by the model it is given, not by a global switch.

Both ``CallbackList`` classes call the callback's hooks by name, and tf_keras also asks it which
batch hooks it implements; the class below is a subclass of both ``Callback`` classes, so each
``fit`` finds what it expects and ``isinstance`` checks of either Keras hold.
"""

from __future__ import annotations

from keras_legc.keras.flavour import keras, keras3, model_flavour


class Callback(keras3().callbacks.Callback, keras().callbacks.Callback):
    """Base of keras_legc callbacks: a Keras 3 and a tf_keras callback at once.

    :attr:`model` returns the model after, on the JAX backend, syncing the training state into
    its variables (Keras 3's JAX ``fit`` keeps the state outside the variables mid-epoch), so
    subclasses read and write weights through ``self.model`` on every backend.

    Example:
        >>> class Count(Callback):
        ...     def on_train_batch_end(self, batch, logs=None):
        ...         self.steps = getattr(self, "steps", 0) + 1
    """

    def __init__(self):
        # Neither base __init__ is called: tf_keras' assigns ``self.model``, a property here.
        self.params = None
        self._model = None
        self.validation_data = None
        self._chief_worker_only = None
        self._supports_tf_logs = False

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        model = self._model
        sync = getattr(model, "jax_state_sync", None)
        if sync is not None and keras3().backend.backend() == "jax":
            sync()
        return model

    @model.setter
    def model(self, model):
        self._model = model

    @property
    def flavour(self) -> str:
        """``"keras3"`` or ``"keras2"``: the Keras of the model this callback is attached to."""
        return model_flavour(self._model)
