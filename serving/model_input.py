"""What the model takes: the feature count and preprocessing version every artifact records.

Apart from :mod:`serving.hands.features` so that reading an artifact's metadata (which the
producer does for each job) does not import numpy and Pillow.
"""

# The numbers serving.hands.features.hand_features makes of one hand's landmarks.
FEATURE_COUNT = 265
# Outputs of every model: ten classes (which class is which digit, the artifact says).
NUM_CLASSES = 10
# Bump when what reaches the classifier changes (decoding, hand finding, features);
# artifacts record the version they were trained with and are refused by code that
# prepares its input differently. 3: hand landmarks replaced the 64 x 64 gray pixels;
# 4: the whole photo read first, every hand placed twice.
PREPROCESS_VERSION = 4
