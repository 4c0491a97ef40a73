"""signdigits: batch classification of sign-language digit photos."""

import os

# TensorFlow's C++ start-up chatter (oneDNN, CPU features) would bury our one-line
# messages; set before any module imports TensorFlow. Errors still print.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
