"""What the model takes: the size and preprocessing version every artifact records.

Apart from :mod:`serving.preprocess` so that reading an artifact's metadata (which the
producer does for each job) does not import numpy and Pillow.
"""

IMAGE_SIZE = 64
# Outputs of every model: ten classes (which class is which digit, the artifact says).
NUM_CLASSES = 10
# Bump when the pixels preprocess_image produces change; artifacts record the version they
# were trained with and are refused by code that preprocesses differently.
PREPROCESS_VERSION = 2
