"""``python -m keras_legc.cli``: the library's commands (``legc`` adds demo and reproduce)."""

from keras_legc.cli import main

main()
