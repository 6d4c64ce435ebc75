"""Device-side tools of keras-legc: they need only numpy and a TFLite interpreter, never TensorFlow.

``bench.py`` is a single file on purpose: copy it to a device and run ``python bench.py``.
"""
