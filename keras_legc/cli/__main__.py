"""``python -m keras_legc.cli``: ``legc`` (the library's commands plus the installed plugins')."""

from keras_legc.cli import main

main()
