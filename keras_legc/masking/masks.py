"""Old home of the masking names (kept while the package moves; import from keras_legc.masking)."""

from keras_legc.masking import *  # noqa: F401,F403
from keras_legc.masking.mask import FORMAT, FORMAT_VERSION  # noqa: F401
